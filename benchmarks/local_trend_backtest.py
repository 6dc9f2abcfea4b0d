"""Should the default path of a series try the ``local`` trend (random-walk level and slope)
instead of the full grid alone? A backtest on training data only (issue 10; no test split is
read).

The same 21 series and pseudo-tests as ``horizon_backtest.py`` (the last test-sized block of
each series' training data). The default path of ``distgp fit`` runs on the rest twice: with
the full grid alone as its third candidate (and, for a positive series, its fifth, of
``log y``: ``before``) and with the ``local`` trend there (``after``, the default), and is
scored on the pseudo-test beside the best trivial forecast (mean, naive, drift; for a monthly or
quarterly series also seasonal naive, with and without drift)::

    python benchmarks/local_trend_backtest.py [--data-dir ../shared/data/slimkl]
"""

from __future__ import annotations

import time

import numpy as np
from horizon_backtest import backtest_series

import distgp.selection as selection
from distgp.bench import baselines, forecasts
from distgp.config import FitConfig
from distgp.data import Dataset

BEFORE = {"local trend": ("stationary", "none"), "local trend, log": ("stationary, log", "none")}
MONTHLY = {"electricitydata", "passengerdata", "hoteldata", "employmentdata", "unemployment"}
MONTHLY |= {"clay", "CO2", "builtin:co2", "Mauna Loa CO2, first 300 months"}


def swapped(candidates: dict, before: bool) -> dict:
    """``candidates`` with the local trend replaced by the full grid alone when ``before``."""
    if not before:
        return dict(candidates)
    out = {}
    for name, overrides in candidates.items():
        if name in BEFORE:
            label, trend = BEFORE[name]
            name, overrides = label, {**overrides, "kernel.trend": trend}
        out[name] = overrides
    return out


def backtest(x: np.ndarray, y: np.ndarray, T: int, before: bool) -> tuple[float, str, float]:
    """Pseudo-test MSE, the chosen candidate and the seconds of the default path."""
    tables = (selection.DEFAULT_CANDIDATES, selection.LOG_CANDIDATES)
    saved = [dict(table) for table in tables]
    for table, original in zip(tables, saved, strict=True):
        table.clear()
        table.update(swapped(original, before))
    try:
        tic = time.perf_counter()
        result, evaluations = selection.fit_selected(
            x[:-T], y[:-T], FitConfig(), True, X_test=x[-T:]
        )
        seconds = time.perf_counter() - tic
    finally:
        for table, original in zip(tables, saved, strict=True):
            table.clear()
            table.update(original)
    chosen = next(e.name for e in evaluations if e.chosen)
    return float(np.mean((result.forecast() - y[-T:]) ** 2)), chosen, seconds


def best_trivial(name: str, x: np.ndarray, y: np.ndarray, T: int) -> float:
    """The lowest pseudo-test MSE of the trivial forecasts of ``distgp bench kernel``
    (:mod:`distgp.bench.forecasts`) from the fitting part, seasonal ones at the series' period."""
    data = Dataset(x[:-T], y[:-T], x[-T:], y[-T:], name, series=True)
    scores = [baselines.train_mean(data), forecasts.naive(data), forecasts.drift(data)]
    period = 12 if name in MONTHLY else 4 if name.startswith("macro") else None
    if period:
        scores += [baselines.seasonal_naive(data, drift=d, period=period) for d in (False, True)]
    return min(float(score["mse"]) for score in scores)


def main() -> None:
    every = backtest_series(__doc__)
    print(
        "| series | n fit | T | best trivial | MSE before | chose | s | MSE after | chose | s "
        "| ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios, slower, beaten = [], [], [0, 0]
    for name, (x, y, T) in every.items():
        a, b = backtest(x, y, T, before=True), backtest(x, y, T, before=False)
        trivial = best_trivial(name, x, y, T)
        beaten[0] += a[0] <= trivial
        beaten[1] += b[0] <= trivial
        ratios.append(b[0] / a[0])
        slower.append(b[2] / a[2])
        print(
            f"| {name} | {len(y) - T} | {T} | {trivial:.4g} | {a[0]:.4g} | {a[1]} | {a[2]:.1f} | "
            f"{b[0]:.4g} | {b[1]} | {b[2]:.1f} | {ratios[-1]:.3g} |",
            flush=True,
        )
    r = np.array(ratios)
    print(
        f"\nwith the local trend: lower pseudo-test MSE on {int(np.sum(r < 1 - 1e-9))}, higher on "
        f"{int(np.sum(r > 1 + 1e-9))} of {len(r)}; geometric mean ratio "
        f"{np.exp(np.mean(np.log(r))):.3g}; median time ratio {np.median(slower):.2f}; at or "
        f"below the best trivial forecast on {beaten[0]} before, {beaten[1]} after"
    )


if __name__ == "__main__":
    main()
