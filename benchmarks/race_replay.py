"""How much does ``--tune``'s race save, and does it change the choice? (issue 10; training data
and test inputs only: no test output is read.)

For each dataset, ``distgp fit --tune BUDGET`` (inline backend) runs twice on the training set,
with the test inputs setting a series' forecast horizon as the CLI does: once with the race
off (``distgp.holdout.RACE_FACTOR`` set to infinity: every setting scored on every fold), once as
installed. The un-raced run's ``tune.csv`` is then replayed: each searched setting stops after
the first fold where its squared error so far exceeds ``factor`` times the default path's
choice's (``distgp.holdout.behind``), and the guard picks among the settings left; the table gives
the fold fits each factor leaves and whether its choice is the un-raced one. The last columns
are the raced run's own fold fits, seconds and choice (its BKB proposals may differ: a stopped
setting tells BKB its score on fewer folds)::

    python benchmarks/race_replay.py [--datasets airfoil600,ale80,hoteldata,unemployment]
        [--budget 32] [--data-dir ../shared/data/slimkl]
"""

from __future__ import annotations

import argparse
import math
import time

import distgp.holdout as holdout
import distgp.tune as tuning
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.data import load_dataset

FACTORS = (1.0, 1.1, 1.25, 1.5, 2.0)


def tuned(data, budget: int) -> tuple[list, object, float]:
    """``(evaluations, chosen, seconds)`` of one ``--tune`` run on the training set."""
    config = FitConfig()
    tic = time.perf_counter()
    _, evaluations, best = tuning.tune(
        data.X_train, data.y_train, config, data.series, budget, X_test=data.X_test
    )
    return evaluations, best, time.perf_counter() - tic


def replay(evaluations: list, default, searched: int, factor: float) -> tuple[int, str]:
    """Fold fits a race at ``factor`` would leave of an un-raced run, and the guard's choice
    among the settings it would complete (the first ``searched`` are the default path's)."""
    K = len(default.folds)
    fits, complete = 0, list(evaluations[:searched])
    fits += sum(len(e.folds) for e in complete)
    for e in evaluations[searched:]:
        k = 1
        while k < K and not holdout.behind(e.folds[:k], default.folds, e.counts, factor):
            k += 1
        fits += k
        complete += [e] if k == K else []
    lowest = min(complete, key=lambda e: e.mse)
    return fits, (lowest if lowest.clearly_better_than(default) else default).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="airfoil600,ale80,hoteldata,unemployment")
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    args = parser.parse_args()
    folder = data_dir(args.data_dir)
    factors = " | ".join(f"x{f:g} fits | x{f:g} same" for f in FACTORS)
    print(
        f"| dataset | n | un-raced fits | un-raced s | {factors} | raced fits | raced s | "
        "raced choice = un-raced |"
    )
    print("|---|---|---|---|" + "---|---|" * len(FACTORS) + "---|---|---|")
    installed = holdout.RACE_FACTOR
    for name in args.datasets.split(","):
        data = load_dataset(str(folder / f"{name}.mat"))
        holdout.RACE_FACTOR = math.inf
        try:
            plain, plain_best, plain_s = tuned(data, args.budget)
        finally:
            holdout.RACE_FACTOR = installed
        searched = next((i for i, e in enumerate(plain) if "=" in e.name), len(plain)) or 1
        default = tuning.default_choice(
            plain[:searched], FitConfig().tune.origins, len(plain[0].folds), data.series
        )
        cells = []
        for factor in FACTORS:
            fits, choice = replay(plain, default, searched, factor)
            cells += [str(fits), "yes" if choice == plain_best.name else "no"]
        raced, raced_best, raced_s = tuned(data, args.budget)
        print(
            f"| {name} | {len(data.y_train)} | {sum(len(e.folds) for e in plain)} | "
            f"{plain_s:.1f} | {' | '.join(cells)} | {sum(len(e.folds) for e in raced)} | "
            f"{raced_s:.1f} | {'yes' if raced_best.name == plain_best.name else 'no'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
