"""Would stacking the search's best settings beat one setting? A backtest on training data
only (issue 10; no test split is read).

The same pseudo-tests and ``--tune 32`` runs as ``tune_guard_backtest.py``. For the default
path's choice and the ``K - 1`` other fully scored settings with the lowest held-out MSE, the
held-out forecasts of the search's own splits are recomputed; the combination weights ``w``
(non-negative, summing to one) minimise the squared error of ``sum_k w_k f_k`` over those
held-out points (forecast stacking: Breiman 1996, Yao et al. 2018); the weighted forecast of
the settings refitted on the fitting part is scored on the pseudo-test (MSE). ``stack K
(shrunk)`` halves the weights' distance from the default path's choice.

::

    python benchmarks/stacking_backtest.py [--data-dir ../shared/data/slimkl]
        [--datasets ale80,airfoil600]
"""

from __future__ import annotations

import argparse
import time

import cvxpy as cp
import numpy as np
from tune_guard_backtest import BUDGET, others, pseudo_tests, rules, summarise

import distgp.holdout as holdout
import distgp.tune as tuning
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.driver import fit

SIZES = (2, 3)


def search_splits(X, y, Xp, series: bool, config: FitConfig) -> list:
    """The splits a ``--tune`` run on ``(X, y)`` predicting at ``Xp`` scored on."""
    config = holdout.horizon_reported(config, X, series, Xp, lambda *a: None)
    t = config.tune
    origins = tuning.tune_origins(config, series, len(y))
    splits = holdout.holdout_splits(len(y), series, t.horizon, origins, t.folds, config.seed)
    return holdout.in_input_order(splits, X) if series else splits


def simplex_weights(errors: np.ndarray) -> np.ndarray:
    """``w >= 0``, ``sum w = 1`` minimising ``|errors @ w|^2`` (``errors``: points x K)."""
    scale = np.sqrt(np.mean(errors**2))
    w = cp.Variable(errors.shape[1])
    cp.Problem(cp.Minimize(cp.sum_squares(errors / scale @ w)), [w >= 0, cp.sum(w) == 1]).solve()
    return np.clip(np.asarray(w.value), 0, None) / np.sum(np.clip(w.value, 0, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    parser.add_argument("--datasets", default="ale80,airfoil600", help="regression datasets")
    parser.add_argument("--series", default=None, help="only these of the nine series")
    parser.add_argument("--json", default=None, help="write the pseudo-test MSEs here")
    args = parser.parse_args()
    sets = pseudo_tests(data_dir(args.data_dir), [d for d in args.datasets.split(",") if d])
    if args.series is not None:
        keep = set(args.series.split(",")) | set(args.datasets.split(","))
        sets = {k: v for k, v in sets.items() if k in keep}
    names = ["default", "2-SE"]
    for k in SIZES:
        names += [f"stack {k}", f"stack {k} (shrunk)"]
    table: dict[str, dict[str, float]] = {}
    print("| dataset | tuning s | " + " | ".join(names) + " | weights stack 3 |")
    print("|---" * (3 + len(names)) + "|")
    for name, (X, y, Xp, yp, series) in sets.items():
        config = FitConfig()
        tic = time.perf_counter()
        _, evaluations, _ = tuning.tune(X, y, config, series, BUDGET, None, X_test=Xp)
        seconds = time.perf_counter() - tic
        picks = rules(evaluations, series, config)
        default, guarded = picks["default"][0], picks["2-SE"][0]
        members = [default, *others(evaluations, default)[: max(SIZES) - 1]]
        splits = search_splits(X, y, Xp, series, config)
        held = np.concatenate([h for _, h in splits])
        errors, tests = [], []
        for e in members:
            trial = holdout.configured(FitConfig(), e.overrides)
            f = [fit(X[tr], y[tr], trial, X_test=X[h]).forecast() for tr, h in splits]
            errors.append(y[held] - np.concatenate(f))
            tests.append(fit(X, y, trial, X_test=Xp).forecast())
        E, F = np.column_stack(errors), np.column_stack(tests)
        mse = {e.name: float(np.mean((F[:, i] - yp) ** 2)) for i, e in enumerate(members)}
        row = {"default": mse[default.name], "2-SE": mse.get(guarded.name, np.nan)}
        weights = {}
        for k in SIZES:
            w = simplex_weights(E[:, :k])
            weights[k] = w
            one = np.eye(k)[0]
            row[f"stack {k}"] = float(np.mean((F[:, :k] @ w - yp) ** 2))
            row[f"stack {k} (shrunk)"] = float(np.mean((F[:, :k] @ ((w + one) / 2) - yp) ** 2))
        table[name] = row
        cells = " | ".join(f"{row[r]:.4g}" for r in names)
        w3 = ", ".join(f"{v:.2f}" for v in weights[max(SIZES)])
        print(f"| {name} | {seconds:.0f} | {cells} | {w3} |", flush=True)
    summarise(table, names[1:], args.json)


if __name__ == "__main__":
    main()
