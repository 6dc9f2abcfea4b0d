"""Should the default path of a positive series also try models of ``log y``? A backtest on
training data only (issue 10; no test split is read).

The same 21 series and pseudo-tests as ``horizon_backtest.py`` (the last test-sized block of
each series' training data). The default path of ``distgp fit`` runs on the rest twice: with
the four candidates of ``DEFAULT_CANDIDATES`` only (``without``) and with the two of
``LOG_CANDIDATES`` added where every value is positive (``with``, the default), and is scored
on the pseudo-test::

    python benchmarks/log_candidates_backtest.py [--data-dir ../shared/data/slimkl]
"""

from __future__ import annotations

import time

import numpy as np
from horizon_backtest import backtest_series

import distgp.selection as selection
from distgp.config import FitConfig


def backtest(x: np.ndarray, y: np.ndarray, T: int, log: bool) -> tuple[float, str, float]:
    """Pseudo-test MSE, the chosen candidate and the seconds of the default path."""
    added = dict(selection.LOG_CANDIDATES)
    if not log:
        selection.LOG_CANDIDATES.clear()
    try:
        tic = time.perf_counter()
        result, evaluations = selection.fit_selected(
            x[:-T], y[:-T], FitConfig(), True, X_test=x[-T:]
        )
        seconds = time.perf_counter() - tic
    finally:
        selection.LOG_CANDIDATES.update(added)
    chosen = next(e.name for e in evaluations if e.chosen)
    return float(np.mean((result.forecast() - y[-T:]) ** 2)), chosen, seconds


def main() -> None:
    every = backtest_series(__doc__)
    print("| series | n fit | T | MSE without | chose | s | MSE with | chose | s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratios, slower = [], []
    for name, (x, y, T) in every.items():
        a, b = backtest(x, y, T, log=False), backtest(x, y, T, log=True)
        ratios.append(b[0] / a[0])
        slower.append(b[2] / a[2])
        print(
            f"| {name} | {len(y) - T} | {T} | {a[0]:.4g} | {a[1]} | {a[2]:.1f} | {b[0]:.4g} | "
            f"{b[1]} | {b[2]:.1f} | {ratios[-1]:.3g} |"
        )
    r = np.array(ratios)
    print(
        f"\nwith the log candidates: lower pseudo-test MSE on {int(np.sum(r < 1 - 1e-9))}, "
        f"higher on {int(np.sum(r > 1 + 1e-9))} of {len(r)}; geometric mean ratio "
        f"{np.exp(np.mean(np.log(r))):.3g}; median time ratio {np.median(slower):.2f}"
    )


if __name__ == "__main__":
    main()
