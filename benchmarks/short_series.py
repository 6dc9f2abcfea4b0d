"""Short unseen series against the training mean (issue 10, small data).

statsmodels' El Nino sea temperatures (yearly means of the monthly values, and the December
column; 1950-2010) and the Nile's yearly flow, bundled with statsmodels (nothing is downloaded).
Each series trains on its first 80% and forecasts the rest with ``GSMPRegressor()`` defaults;
the table shows the test MSE beside the training mean's and the candidate the default path
chose::

    python benchmarks/short_series.py
"""

from __future__ import annotations

import numpy as np
import statsmodels.api as sm

from distgp import GSMPRegressor


def series() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    elnino = sm.datasets.elnino.load_pandas().data
    nile = sm.datasets.nile.load_pandas().data
    years = elnino["YEAR"].to_numpy(float)
    return {
        "El Nino, yearly mean": (years, elnino.iloc[:, 1:].mean(axis=1).to_numpy()),
        "El Nino, December": (years, elnino["DEC"].to_numpy()),
        "Nile": (nile["year"].to_numpy(float), nile["volume"].to_numpy()),
    }


def main() -> None:
    print("| series | n train | test MSE | training mean's | chosen |")
    print("|---|---|---|---|---|")
    for name, (x, y) in series().items():
        k = round(0.8 * len(y))
        model = GSMPRegressor(random_state=0).fit(x[:k, None], y[:k])
        mse = np.mean((model.predict(x[k:, None]) - y[k:]) ** 2)
        mean = np.mean((y[:k].mean() - y[k:]) ** 2)
        chosen = ", ".join(e.name for e in model.tune_evaluations_ if e.chosen)
        print(f"| {name} | {k} | {mse:.4g} | {mean:.4g} | {chosen} |")


if __name__ == "__main__":
    main()
