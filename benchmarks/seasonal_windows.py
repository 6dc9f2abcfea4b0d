"""Short seasonal series nobody tuned on: windows of statsmodels' monthly El Nino temperatures.

Issue 10's small-data rule (a series of under 100 points must not forecast worse than its
training mean) and the season among the default path's candidates, checked on data the
backtests never saw: the monthly sea temperatures of statsmodels' El Nino set (1950-2010, 732
months, bundled; nothing is downloaded), cut into windows of 48, 72 and 96 training months
starting every 10 years, each forecasting the next 12 months with ``GSMPRegressor()``
defaults (with ``--horizon``, told that the forecast is 12 months long, as ``distgp fit`` reads
from its test inputs). The table gives the test MSE beside the training mean's and seasonal
naive's (the last 12 training months), and the candidate the default path chose::

    python benchmarks/seasonal_windows.py [--horizon]
"""

from __future__ import annotations

import argparse

import numpy as np
import statsmodels.api as sm

from distgp import GSMPRegressor

STARTS = (0, 120, 240, 360, 480, 600)  # months after January 1950
TRAINING = (48, 72, 96)
HORIZON = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", action="store_true", help="rolling origins of 12 months")
    horizon = HORIZON if parser.parse_args().horizon else None
    months = sm.datasets.elnino.load_pandas().data.iloc[:, 1:].to_numpy(float).ravel()
    print("| start | n train | test MSE | training mean's | seasonal naive's | chosen |")
    print("|---|---|---|---|---|---|")
    scores = []
    for start in STARTS:
        for n in TRAINING:
            y = months[start : start + n + HORIZON]
            x = np.arange(len(y), dtype=float)[:, None]
            model = GSMPRegressor(random_state=0, horizon=horizon).fit(x[:n], y[:n])
            mse = float(np.mean((model.predict(x[n:]) - y[n:]) ** 2))
            mean = float(np.mean((y[:n].mean() - y[n:]) ** 2))
            naive = float(np.mean((y[n - 12 : n] - y[n:]) ** 2))
            chosen = next(e.name for e in model.tune_evaluations_ if e.chosen)
            scores.append((mse, mean, naive))
            row = f"| {start} | {n} | {mse:.4g} | {mean:.4g} | {naive:.4g} | {chosen} |"
            print(row, flush=True)
    mse, mean, naive = np.array(scores).T
    print(
        f"\nWorse than the training mean on {int(np.sum(mse > mean))} of {len(mse)}, than "
        f"seasonal naive on {int(np.sum(mse > naive))}; geometric mean of the test MSE ratio: "
        f"{np.exp(np.mean(np.log(mse / mean))):.3g} of the mean's, "
        f"{np.exp(np.mean(np.log(mse / naive))):.3g} of seasonal naive's"
    )


if __name__ == "__main__":
    main()
