"""Should the default path scale its predictive variance by the held-out errors? A backtest on
training data only (issue 10; no test split is read).

The same 21 series and pseudo-tests as ``horizon_backtest.py``: each series' training data is
cut into a fitting part and its last ``T`` points. The default path of ``distgp fit`` runs on
the fitting part once (its rolling origins give the chosen setting's held-out z-scores), and
its forecast of the pseudo-test is scored three ways: the evidence's own variance (``none``),
the variance times the held-out mean squared z-score (``scaled``), and the same factor only
where it widens the intervals (``widen``, factor at least 1: ``tune.calibrate``, the
default)::

    python benchmarks/calibration_backtest.py [--data-dir ../shared/data/slimkl]
"""

from __future__ import annotations

import math

import numpy as np
from horizon_backtest import backtest_series

from distgp.config import FitConfig
from distgp.gp import regression_metrics
from distgp.holdout import configured
from distgp.selection import fit_selected

RULES = ("none", "scaled", "widen")


def backtest(x: np.ndarray, y: np.ndarray, T: int) -> dict:
    """Pseudo-test NLPD and 95% coverage under each rule, and the held-out factor."""
    config = configured(FitConfig(), {"tune.calibrate": False})
    result, evaluations = fit_selected(x[:-T], y[:-T], config, True, X_test=x[-T:])
    scale = next(e for e in evaluations if e.chosen).mean_z2
    mean, raw = result.prediction  # the evidence's own predictive std
    row = {"scale": scale}
    for rule, factor in zip(RULES, (1.0, scale, max(1.0, scale)), strict=True):
        scores = regression_metrics(y[-T:], mean, raw * math.sqrt(factor), result.model.transform)
        row[rule] = (scores["nlpd"], scores["coverage95"])
    return row


def main() -> None:
    every = backtest_series(__doc__)
    print(
        "| series | n fit | T | factor | NLPD none | NLPD scaled | NLPD widen | "
        "cover none | cover scaled | cover widen |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    nlpd = {rule: [] for rule in RULES}
    cover = {rule: [] for rule in RULES}
    for name, (x, y, T) in every.items():
        r = backtest(x, y, T)
        for rule in RULES:
            nlpd[rule].append(r[rule][0])
            cover[rule].append(r[rule][1])
        cells = " | ".join(f"{r[rule][0]:.4g}" for rule in RULES)
        covers = " | ".join(f"{r[rule][1]:.3g}" for rule in RULES)
        print(f"| {name} | {len(y) - T} | {T} | {r['scale']:.3g} | {cells} | {covers} |")
    base = np.array(nlpd["none"])
    for rule in RULES[1:]:
        d = np.array(nlpd[rule]) - base
        print(
            f"\n{rule}: NLPD lower than none on {int(np.sum(d < -1e-9))}, higher on "
            f"{int(np.sum(d > 1e-9))} of {len(d)}; mean NLPD change {d.mean():+.3f} nats"
        )
    for rule in RULES:
        c = np.array(cover[rule])
        print(
            f"{rule}: mean 95% coverage {np.mean(c):.3g}, median {np.median(c):.3g}, below 0.8 on "
            f"{int(np.sum(c < 0.8))} of {len(c)}"
        )


if __name__ == "__main__":
    main()
