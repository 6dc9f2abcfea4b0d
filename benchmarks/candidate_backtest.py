"""Would more (or fewer) candidates help the default path of a series? A backtest on training
data only (issue 10; no test split is read).

The same 21 series and pseudo-tests as ``horizon_backtest.py`` (the last test-sized block of
each series' training data). Every candidate of the default path, and every extra candidate
given as config overrides, is scored on the default path's own rolling origins (two, of the
pseudo-test's horizon) and fitted once on the whole fitting part. The reference set is the
default path's candidates less those named by ``--without``; the default path's rule (the
simplest candidate within 1% of the lowest held-out MSE, in the default path's order, extras
last) then chooses within the reference set, within it and each left-out or extra candidate,
within the default path's own set (``default``: the reference and the left-out ones) and within
all of them. The table gives each choice's pseudo-test MSE as a ratio of the reference choice's,
and how many choices are at or below the best trivial forecast
(``local_trend_backtest.best_trivial``)::

    python benchmarks/candidate_backtest.py [--without '["NAME", ...]']
        [--extra '{"NAME": {"kernel.levels": 3}}'] [--extra-log '{"NAME, log": {...}}']
        [--extra-seasonal '{"NAME": {...}}'] [--data-dir ../shared/data/slimkl] [--json FILE]

``--extra-log`` candidates join only for series of positive values (as the log candidates do),
``--extra-seasonal`` ones only for series with a seasonal period
(``distgp.seasonality.seasonal_period`` of the fitting part), with ``kernel.season`` set to it
(and, with a ``kernel.transform``, only for positive values).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from horizon_backtest import ratio_row, shared_series, statsmodels_series
from local_trend_backtest import best_trivial

import distgp.holdout as holdout
import distgp.selection as selection
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.driver import fit
from distgp.seasonality import seasonal_period


def scored(x: np.ndarray, y: np.ndarray, T: int, extra: dict, seasonal: dict) -> dict:
    """Per candidate: its evaluation on the default path's two rolling origins
    (``holdout.evaluate_many``, the held-out MSE it chooses by) and the pseudo-test MSE of a fit on
    the whole fitting part; the ``seasonal`` extras with the series' period, if it has one."""
    xf, yf = x[:-T], y[:-T]
    h = max(T, holdout.MIN_HORIZON)
    if not holdout.has_room(len(yf), 2, h):
        h = holdout.rolling_horizon(len(yf))
    config = holdout.configured(FitConfig(), {"tune.horizon": h})
    splits = holdout.holdout_splits(len(yf), True, h, 2)
    period = seasonal_period(xf, yf)
    positive = bool(np.all(y > 0))
    candidates = {**selection.default_candidates(config, True, positive, len(yf), period), **extra}
    for name, overrides in seasonal.items() if period else ():
        if positive or "kernel.transform" not in overrides:  # a transform: positive series only
            candidates[name] = {**overrides, "kernel.season": period}
    evaluations = holdout.evaluate_many(xf, yf, config, list(candidates.items()), splits)
    out = {}
    for e in evaluations:
        forecast = fit(xf, yf, holdout.configured(config, e.overrides), X_test=x[-T:]).forecast()
        out[e.name] = (e, float(np.mean((forecast - y[-T:]) ** 2)))
    return out


def chosen(cands: dict, names: list[str]) -> str:
    """The default path's rule (``selection.simplest_best``) over ``names``, in the order of
    ``cands``."""
    return selection.simplest_best([e for n, (e, _) in cands.items() if n in names]).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    parser.add_argument("--without", default="[]", help="JSON: default candidates left out")
    parser.add_argument("--extra", default="{}", help="JSON: name -> config overrides")
    parser.add_argument("--extra-log", default="{}", help="JSON: extras for positive series")
    parser.add_argument(
        "--extra-seasonal", default="{}", help="JSON: extras for series with a season"
    )
    parser.add_argument("--json", default=None, help="write every candidate's scores here")
    args = parser.parse_args()
    without, extra = json.loads(args.without), json.loads(args.extra)
    extra_log, seasonal = json.loads(args.extra_log), json.loads(args.extra_seasonal)
    every = {**shared_series(data_dir(args.data_dir)), **statsmodels_series()}
    added = [*without, *extra, *extra_log, *seasonal]
    reference = "default" if not without else "without"
    members = {reference: []} | {f"+ {n}": [n] for n in added}
    if without and (extra or extra_log or seasonal):
        members["default"] = without
    if len(added) > 1:
        members["+ all"] = added
    sets = list(members)
    table, ratios, beaten = {}, {label: [] for label in sets}, dict.fromkeys(sets, 0)
    print(f"Pseudo-test MSE of the choice among the reference set ({reference}), then each set's")
    print("as a ratio of it:\n")
    print("| series | n fit | T | best trivial | MSE | chose | " + " | ".join(sets) + " |")
    print("|---" * (6 + len(sets)) + "|")
    for name, (x, y, T) in every.items():
        positive = bool(np.all(y > 0))
        cands = scored(x, y, T, {**extra, **(extra_log if positive else {})}, seasonal)
        base = [n for n in cands if n not in added]
        trivial = best_trivial(name, x, y, T)
        pick = chosen(cands, base)
        cells = []
        for label in sets:
            mse = cands[chosen(cands, base + members[label])][1]
            ratios[label].append(mse / cands[pick][1])
            beaten[label] += mse <= trivial
            cells.append(f"{ratios[label][-1]:.3g}")
        table[name] = {
            "T": T,
            "trivial": trivial,
            "candidates": {n: {"heldout": e.mse, "test": t} for n, (e, t) in cands.items()},
        }
        head = f"| {name} | {len(y) - T} | {T} | {trivial:.4g} | {cands[pick][1]:.4g} | "
        print(head + f"{pick} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n| candidates | series | lower | higher | geometric mean vs {reference} |")
    print("|---|---|---|---|---|")
    for label, r in ratios.items():
        print(ratio_row(label, r))
    counts = ", ".join(f"{label} {count}" for label, count in beaten.items())
    print(f"\nAt or below the best trivial forecast (of {len(every)}): {counts}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh)


if __name__ == "__main__":
    main()
