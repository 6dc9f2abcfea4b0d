"""How should the default path of a series turn its candidates' held-out scores into a forecast?
A backtest on training data only (issue 10; no test split is read).

The same 21 series and pseudo-tests as ``horizon_backtest.py`` (the last test-sized block of
each series' training data). Every candidate of the default path is scored once on up to
``--origins`` rolling origins of the pseudo-test's horizon (the last two are the default
path's own folds) and fitted once on the whole fitting part; the rules below then turn the
same scores and forecasts into one forecast each, scored on the pseudo-test:

* ``select K``: the simplest candidate within 1% of the lowest held-out MSE on the last ``K``
  origins (``select 2`` is the default path);
* ``top-2 mean K``: the mean of the two candidates with the lowest held-out MSE on ``K``
  origins (a forecast combination: Bates and Granger 1969, the M4 competition);
* ``inverse-MSE K``: every candidate weighted by the inverse of its held-out MSE on ``K``
  origins.

::

    python benchmarks/selection_backtest.py [--data-dir ../shared/data/slimkl] [--origins 4]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from horizon_backtest import ratio_row, shared_series, statsmodels_series

import distgp.holdout as holdout
import distgp.selection as selection
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.driver import fit


def scored(x: np.ndarray, y: np.ndarray, T: int, origins: int) -> dict:
    """Per candidate: per-origin held-out MSEs (oldest origin first) and the pseudo-test
    forecast of a fit on the whole fitting part."""
    xf, yf = x[:-T], y[:-T]
    h = max(T, holdout.MIN_HORIZON)
    while origins > 2 and not holdout.has_room(len(yf), origins, h):
        origins -= 1
    config = holdout.configured(FitConfig(), {"tune.horizon": h, "tune.origins": origins})
    splits = holdout.holdout_splits(len(yf), True, h, origins)
    out = {}
    positive = bool(np.all(y > 0))
    for name, overrides in selection.default_candidates(config, True, positive, len(yf)).items():
        tic = time.perf_counter()
        e = holdout.evaluate(xf, yf, config, name, overrides, splits)
        result = fit(xf, yf, holdout.configured(config, overrides), X_test=x[-T:])
        out[name] = {
            "folds": e.folds,
            "forecast": result.forecast().tolist(),
            "seconds": time.perf_counter() - tic,
        }
    return out


def forecast_by(rule: str, k: int, cands: dict) -> np.ndarray | None:
    """One rule's forecast from the candidates' scores on their last ``k`` origins."""
    names = list(cands)
    if any(len(c["folds"]) < k for c in cands.values()):
        return None
    mse = np.array([np.mean(cands[n]["folds"][-k:]) for n in names])
    mse = np.where(np.isfinite(mse), mse, np.inf)
    f = np.array([cands[n]["forecast"] for n in names])
    if rule == "select":
        return f[int(np.argmax(mse <= mse.min() * (1 + selection.SIMPLER_TOLERANCE)))]
    if rule == "top-2 mean":
        return f[np.argsort(mse, kind="stable")[:2]].mean(axis=0)
    if rule == "inverse-MSE":
        w = 1.0 / mse
        return (w[:, None] * f).sum(axis=0) / w.sum()
    raise ValueError(rule)


RULES = [(r, k) for r in ("select", "top-2 mean", "inverse-MSE") for k in (2, 3, 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    parser.add_argument("--origins", type=int, default=4, help="rolling origins scored (>= 2)")
    parser.add_argument("--json", default=None, help="write the scores and forecasts here")
    args = parser.parse_args()
    every = {**shared_series(data_dir(args.data_dir)), **statsmodels_series()}
    table, ratios = {}, {f"{r} {k}": [] for r, k in RULES}
    print("Pseudo-test MSE of `select 2` (the default path), then each rule's as a ratio of it:\n")
    print("| series | n fit | T | select 2 MSE | " + " | ".join(ratios) + " |")
    print("|---" * (4 + len(ratios)) + "|")
    for name, (x, y, T) in every.items():
        cands = scored(x, y, T, args.origins)
        truth = y[-T:]
        row = {}
        for r, k in RULES:
            f = forecast_by(r, k, cands)
            row[f"{r} {k}"] = None if f is None else float(np.mean((f - truth) ** 2))
        table[name] = {"T": T, "n": len(y) - T, "mse": row, "candidates": cands}
        base = row["select 2"]
        cells = []
        for key, v in row.items():
            cells.append("-" if v is None else f"{v / base:.3g}")
            if v is not None:
                ratios[key].append(v / base)
        head = f"| {name} | {len(y) - T} | {T} | {base:.4g} | "
        print(head + " | ".join(cells) + " |", flush=True)
    print("\n| rule | series | lower | higher | geometric mean vs select 2 |")
    print("|---|---|---|---|---|")
    for key, r in ratios.items():
        print(ratio_row(key, r))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh)


if __name__ == "__main__":
    main()
