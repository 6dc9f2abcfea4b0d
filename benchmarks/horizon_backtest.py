"""Which rolling-origin horizon should the default path of a series use? A backtest on training
data only (issue 10; no test split is read).

For each series, its training data is cut into a fitting part and a pseudo-test: the last ``T``
training points, ``T`` the size of the real test split (the shared SLIM-KL series and
``builtin:co2``: only the split's size is read) or 20% of the first 80% of a statsmodels series
(whose last 20% is never read). The default path of ``distgp fit`` runs on the fitting part
twice, with the rolling origins holding out 10% of n each (``h10%``) and the pseudo-test's own
horizon ``T`` (``hT``), and is scored on the pseudo-test::

    python benchmarks/horizon_backtest.py [--data-dir ../shared/data/slimkl]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import statsmodels.api as sm

from distgp.bench.kernel import DATASETS
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.data import load_dataset
from distgp.holdout import configured, rolling_horizon
from distgp.selection import fit_selected


def shared_series(folder) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """``name -> (x, y, T)``: training data in time order and the test split's size."""
    out = {}
    for name in (*DATASETS, "builtin:co2"):
        source = name if name.startswith("builtin:") else str(folder / f"{name}.mat")
        data = load_dataset(source)
        if not data.series:
            continue
        order = np.argsort(data.X_train[:, 0])
        out[name] = (data.X_train[order], data.y_train[order], len(data.X_test))
    return out


def statsmodels_series() -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """``name -> (x, y, T)`` from statsmodels' bundled data: the first 80% of each series."""
    elnino = sm.datasets.elnino.load_pandas().data
    macro = sm.datasets.macrodata.load_pandas().data
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    raw = {
        "El Nino yearly mean": elnino.iloc[:, 1:].mean(axis=1).to_numpy(),
        "Nile": sm.datasets.nile.load_pandas().data["volume"].to_numpy(float),
        "sunspots": sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(float),
        **{
            f"macro {c}": macro[c].to_numpy(float)
            for c in ("realgdp", "cpi", "unemp", "tbilrate", "m1", "realcons", "infl", "pop")
        },
        "Mauna Loa CO2, first 300 months": co2.to_numpy()[:300],
    }
    out = {}
    for name, y in raw.items():
        y = y[: round(0.8 * len(y))]
        out[name] = (np.arange(len(y), dtype=float)[:, None], y, math.ceil(0.2 * len(y)))
    return out


def backtest_series(doc: str) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """The backtests' series (``name -> (x, y, T)``, shared then statsmodels), after parsing a
    script's ``--data-dir`` (``doc``: its docstring, for ``--help``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    args = parser.parse_args()
    return {**shared_series(data_dir(args.data_dir)), **statsmodels_series()}


def ratio_row(label: str, ratios) -> str:
    """A summary table row: how many ``ratios`` (a rule's pseudo-test MSE over the baseline's)
    are below and above 1, and their geometric mean."""
    r = np.asarray(ratios, float)
    below, above = int(np.sum(r < 1 - 1e-9)), int(np.sum(r > 1 + 1e-9))
    return f"| {label} | {len(r)} | {below} | {above} | {math.exp(np.mean(np.log(r))):.3g} |"


def backtest(x: np.ndarray, y: np.ndarray, T: int) -> dict:
    """Pseudo-test MSE of the default path with either horizon, and the candidate chosen."""
    row = {}
    tenth = rolling_horizon(len(y) - T)  # what the default path uses without prediction inputs
    for label, overrides in (("h10%", {"tune.horizon": tenth}), ("hT", {"tune.horizon": T})):
        config = configured(FitConfig(), overrides)
        result, evaluations = fit_selected(x[:-T], y[:-T], config, True, X_test=x[-T:])
        row[label] = float(np.mean((result.prediction[0] - y[-T:]) ** 2))
        row[f"{label} chose"] = next(e.name for e in evaluations if e.chosen)
    return row


def main() -> None:
    every = backtest_series(__doc__)
    print("| series | n fit | T | MSE h10% | chose | MSE hT | chose | hT / h10% |")
    print("|---|---|---|---|---|---|---|---|")
    better = worse = 0
    for name, (x, y, T) in every.items():
        r = backtest(x, y, T)
        ratio = r["hT"] / r["h10%"]
        better += ratio < 1 - 1e-9
        worse += ratio > 1 + 1e-9
        print(
            f"| {name} | {len(y) - T} | {T} | {r['h10%']:.4g} | {r['h10% chose']} | "
            f"{r['hT']:.4g} | {r['hT chose']} | {ratio:.3g} |"
        )
    print(f"\nhT lower on {better}, higher on {worse}, equal on the rest")


if __name__ == "__main__":
    main()
