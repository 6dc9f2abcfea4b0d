"""Should small data with several inputs get the default path's held-out choice? A backtest on
training data only (issue 10, item 4; no test split is read).

Regression data with several inputs: statsmodels' and scikit-learn's bundled sets and, for
sets of more points, seeded random subsets of ``--subset`` rows of their training part (the
shared SLIM-KL sets' training splits, scikit-learn's diabetes, Friedman's first function with
unit noise). Each set is cut ``--splits`` times at random into a fitting part (80%) and a
pseudo-test (20%); on the fitting part ``distgp fit``'s default path runs twice, without the
choice (``stationary``: the full grid, trend none, the default for several inputs before) and
with it (``selected``: :data:`distgp.selection.MULTI_INPUT_CANDIDATES` scored on 4 folds of
the fitting part, where it has fewer than ``SMALL_MULTI_INPUT_N`` points and room for the
folds), and both are scored on the pseudo-test beside the fitting part's mean::

    python benchmarks/small_regression_backtest.py [--data-dir ../shared/data/slimkl]
        [--splits 5] [--subset 90]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import numpy as np
import statsmodels.api as sm
from horizon_backtest import ratio_row
from sklearn.datasets import load_diabetes, load_linnerud, make_friedman1

from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.data import load_dataset
from distgp.holdout import configured
from distgp.selection import fit_selected


def bundled() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (X, y)``: statsmodels' and scikit-learn's small regression sets, whole."""

    def frame(loader, target: str):
        data = loader.load_pandas().data
        return data.drop(columns=[target]).to_numpy(float), data[target].to_numpy(float)

    linnerud = load_linnerud()
    out = {
        "longley": frame(sm.datasets.longley, "TOTEMP"),
        "stackloss": frame(sm.datasets.stackloss, "STACKLOSS"),
        "copper": frame(sm.datasets.copper, "WORLDCONSUMPTION"),
        "spector GPA": frame(sm.datasets.spector, "GPA"),
        "scotland YES": frame(sm.datasets.scotland, "YES"),
        "cpunish": frame(sm.datasets.cpunish, "EXECUTIONS"),
    }
    for j, name in enumerate(linnerud.target_names):
        out[f"linnerud {name}"] = (linnerud.data.astype(float), linnerud.target[:, j].astype(float))
    return out


def subsets(folder, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (X, y)``: a seeded random ``size``-row subset of larger sets' training data."""
    diabetes = load_diabetes()
    X_f, y_f = make_friedman1(n_samples=1000, n_features=6, noise=1.0, random_state=0)
    large = {"diabetes": (diabetes.data, diabetes.target), "friedman1": (X_f, y_f)}
    for name in ("ale80", "airfoil600", "cccp1000", "concrete824"):
        data = load_dataset(str(folder / f"{name}.mat"))
        large[name] = (data.X_train, data.y_train)
    out = {}
    for name, (X, y) in large.items():
        rows = np.sort(np.random.default_rng(1).permutation(len(y))[: min(size, len(y))])
        out[f"{name} ({len(rows)})"] = (X[rows], y[rows])
    return out


def backtest(X: np.ndarray, y: np.ndarray, splits: int) -> dict:
    """Mean pseudo-test MSE of each rule over ``splits`` random 80/20 cuts, and the choices."""
    rules = {"stationary": {"kernel.trend": "none"}, "selected": {}}
    totals = {"mean": 0.0, **{rule: 0.0 for rule in rules}}
    chosen: Counter = Counter()
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(y))
        cut = len(y) - max(1, round(0.2 * len(y)))
        fit_rows, test_rows = np.sort(order[:cut]), np.sort(order[cut:])
        Xf, yf, Xp, yp = X[fit_rows], y[fit_rows], X[test_rows], y[test_rows]
        totals["mean"] += float(np.mean((yp - yf.mean()) ** 2)) / splits
        for rule, overrides in rules.items():
            config = configured(FitConfig(), overrides)
            result, evaluations = fit_selected(Xf, yf, config, False, X_test=Xp)
            totals[rule] += float(np.mean((result.forecast() - yp) ** 2)) / splits
            if rule == "selected":
                chosen[next((e.name for e in evaluations if e.chosen), "no choice")] += 1
    return {**totals, "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    parser.add_argument("--splits", type=int, default=5, help="random 80/20 cuts per set")
    parser.add_argument("--subset", type=int, default=90, help="rows of the larger sets' subsets")
    args = parser.parse_args()
    sets = {**bundled(), **subsets(data_dir(args.data_dir), args.subset)}
    print("| data | n | P | mean | stationary | selected | selected / stationary | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    ratios, worse_than_mean = [], Counter()
    tic = time.perf_counter()
    for name, (X, y) in sets.items():
        row = backtest(X, y, args.splits)
        ratio = row["selected"] / row["stationary"]
        ratios.append(ratio)
        for rule in ("stationary", "selected"):
            worse_than_mean[rule] += row[rule] > row["mean"]
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(row["chosen"].items()))
        cells = " | ".join(f"{row[k]:.4g}" for k in ("mean", "stationary", "selected"))
        line = f"| {name} | {len(y)} | {X.shape[1]} | {cells} | {ratio:.3g} | {chosen} |"
        print(line, flush=True)
    print("\n| rule | sets | lower than stationary | higher | geometric mean ratio |")
    print("|---|---|---|---|---|")
    print(ratio_row("selected", ratios))
    print(
        f"\nworse than the fitting part's mean: stationary on {worse_than_mean['stationary']} "
        f"of {len(sets)} sets, selected on {worse_than_mean['selected']}; "
        f"{math.ceil(time.perf_counter() - tic)} s"
    )


if __name__ == "__main__":
    main()
