"""When should ``--tune``'s best setting replace the default path's choice? A backtest on
training data only (issue 10; no test split is read).

Each dataset's training data is cut into a fitting part and a pseudo-test: for the nine shared
series (the eight SLIM-KL series and ``builtin:co2``), the last test-sized block, as in
``horizon_backtest.py``; for regression data (``--datasets``, default ``ale80,airfoil600``), a
seeded random fifth. ``distgp fit --tune 32`` runs on the fitting part (inline backend), and
each rule below picks among the same evaluations; the pick is refitted on the fitting part and
scored on the pseudo-test:

* ``default``: the default path's choice, never replaced;
* ``K-SE``: the lowest held-out MSE when it beats the default by more than ``K`` standard errors
  of the paired per-fold differences (1: Breiman's rule; 2: ``GUARD_ERRORS``, the default);
* ``every fold``: the lowest when it beats the default on every fold;
* ``lowest``: the lowest held-out MSE, unguarded;
* ``mix K``: the equal-weight average of the forecasts of the default path's choice and the
  ``K - 1`` other settings with the lowest held-out MSE (a forecast combination).

::

    python benchmarks/tune_guard_backtest.py [--data-dir ../shared/data/slimkl]
        [--datasets ale80,airfoil600] [--tunables trend,levels,...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from horizon_backtest import ratio_row, shared_series

import distgp.holdout as holdout
import distgp.tune as tuning
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.data import load_dataset
from distgp.driver import fit

BUDGET = 32


def pseudo_tests(folder, regression: list[str]) -> dict[str, tuple]:
    """``name -> (X_fit, y_fit, X_pseudo, y_pseudo, series)``."""
    out = {}
    for name, (x, y, T) in shared_series(folder).items():  # the nine shared series
        out[name] = (x[:-T], y[:-T], x[-T:], y[-T:], True)
    for name in regression:
        data = load_dataset(str(folder / f"{name}.mat"))
        order = np.random.default_rng(0).permutation(len(data.y_train))
        cut = len(order) // 5
        held, kept = np.sort(order[:cut]), np.sort(order[cut:])
        X, y = data.X_train, data.y_train
        out[name] = (X[kept], y[kept], X[held], y[held], False)
    return out


def rules(evaluations: list, series: bool, config: FitConfig) -> dict:
    """Each rule's pick among one tuning run's evaluations."""
    searched = next((i for i, e in enumerate(evaluations) if "=" in e.name), 0) or 1
    first = evaluations[:searched]  # the default path's candidates (or its one setting)
    default = tuning.default_choice(first, config.tune.origins, len(first[0].folds), series)
    lowest = min((e for e in evaluations if not e.stopped), key=lambda e: e.mse)

    def wins_every_fold(e) -> bool:
        same = len(e.folds) == len(default.folds)
        return same and bool(np.all(np.subtract(e.folds, default.folds) < 0))

    guarded = {
        "1-SE": lowest.clearly_better_than(default, errors=1.0),
        "2-SE": lowest.clearly_better_than(default, errors=2.0),
        "every fold": lowest.mse < default.mse and wins_every_fold(lowest),
        "lowest": True,
    }
    picks = {"default": default, **{k: lowest if ok else default for k, ok in guarded.items()}}
    return {k: [v] for k, v in picks.items()} | {
        f"mix {k}": [default, *others(evaluations, default)[: k - 1]] for k in MIXES
    }


MIXES = (2, 3)


def others(evaluations: list, default) -> list:
    """The fully scored settings other than ``default``, lowest held-out MSE first, each once."""
    seen = {json.dumps(default.overrides, sort_keys=True)}
    out = []
    for e in sorted((e for e in evaluations if not e.stopped), key=lambda e: e.mse):
        key = json.dumps(e.overrides, sort_keys=True)
        if key not in seen and np.isfinite(e.mse):
            seen.add(key)
            out.append(e)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    parser.add_argument("--datasets", default="ale80,airfoil600", help="regression datasets")
    parser.add_argument("--json", default=None, help="write the pseudo-test MSEs here")
    parser.add_argument(
        "--tunables", default=None, help="what --tune searches (default: tune.tunables)"
    )
    args = parser.parse_args()
    sets = pseudo_tests(data_dir(args.data_dir), [d for d in args.datasets.split(",") if d])
    table: dict[str, dict[str, float]] = {}
    names = ["default", "1-SE", "2-SE", "every fold", "lowest", *(f"mix {k}" for k in MIXES)]
    print("| dataset | tuning s | " + " | ".join(names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for name, (X, y, Xp, yp, series) in sets.items():
        config = FitConfig()
        tic = time.perf_counter()
        searched = (args.tunables or config.tune.tunables).split(",")
        _, evaluations, _ = tuning.tune(X, y, config, series, BUDGET, searched, X_test=Xp)
        seconds = time.perf_counter() - tic
        forecasts: dict[str, np.ndarray] = {}
        row = {}
        for rule, picks in rules(evaluations, series, config).items():
            for pick in picks:
                key = json.dumps(pick.overrides, sort_keys=True)
                if key not in forecasts:
                    trial = holdout.configured(FitConfig(), pick.overrides)
                    forecasts[key] = fit(X, y, trial, X_test=Xp).forecast()
            mean = np.mean([forecasts[json.dumps(p.overrides, sort_keys=True)] for p in picks], 0)
            row[rule] = float(np.mean((mean - yp) ** 2))
        table[name] = row
        cells = " | ".join(f"{row[r]:.4g}" for r in names)
        print(f"| {name} | {seconds:.0f} | {cells} |", flush=True)
    summarise(table, names[1:], args.json)


def summarise(table: dict[str, dict[str, float]], rules: list[str], path: str | None) -> None:
    """Print each rule's pseudo-test MSE against the default's; write ``table`` to ``path``."""
    print("\n| rule | datasets | better than default | worse | geometric mean ratio |")
    print("|---|---|---|---|---|")
    base = np.array([table[n]["default"] for n in table])
    for rule in rules:
        print(ratio_row(rule, np.array([table[n][rule] for n in table]) / base))
    if path:
        with open(path, "w") as fh:
            json.dump(table, fh)


if __name__ == "__main__":
    main()
