"""BKBSampler against Optuna's TPE and random samplers on the built-in test functions.

Median simple regret (best value found minus the optimum) over seeds, after ``T`` trials of a
study whose parameters are the function's coordinates (``suggest_float`` within its bounds),
and the number of trials that repeated an earlier configuration::

    python benchmarks/optuna_samplers.py [--trials 50] [--seeds 4] [--functions branin,hartmann6]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import optuna

from distgp.bandit.functions import get_function
from distgp.integrations.optuna import BKBSampler

SAMPLERS = {
    "BKBSampler": lambda seed: BKBSampler(seed=seed),
    "TPE": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def study_regret(name: str, sampler, trials: int) -> tuple[float, int]:
    """Simple regret after ``trials`` and how many trials repeated earlier parameters."""
    fn = get_function(name)
    bounds = np.asarray(fn.bounds, float)

    def objective(trial) -> float:
        x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        return float(fn.evaluate_true(np.array(x)))

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=trials)
    seen = [tuple(sorted(t.params.items())) for t in study.trials]
    return study.best_value - fn.optimal_value, len(seen) - len(set(seen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--functions", default="branin,hartmann6")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    print(f"| function | sampler | median regret after {args.trials} | regrets | repeats | s |")
    print("|---|---|---|---|---|---|")
    for name in args.functions.split(","):
        for label, make in SAMPLERS.items():
            tic = time.perf_counter()
            runs = [study_regret(name, make(seed), args.trials) for seed in range(args.seeds)]
            regrets = [r for r, _ in runs]
            print(
                f"| {name} | {label} | {np.median(regrets):.4g} | "
                f"{', '.join(f'{r:.3g}' for r in regrets)} | {sum(d for _, d in runs)} | "
                f"{time.perf_counter() - tic:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
