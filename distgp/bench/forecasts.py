"""Forecasting baselines for 1-D series (Hyndman and Athanasopoulos, *FPP3*, 5.2 and 8.6).

Every function takes a :class:`~distgp.data.Dataset` whose training inputs are an evenly spaced
time index and whose test inputs lie after it, and returns the common baseline record (``mse``,
``nlpd``, ``coverage95``, ``seconds``). The horizon of a test point is its number of steps past
the last training point. Definitions (``T`` training points, ``m`` points per season):

* ``naive``: the last value; std ``sigma sqrt(h)`` with ``sigma`` the root mean square of the
  one-step changes (a walk's residuals are the changes themselves; ``forecast::rwf``).
* ``drift``: the last value plus ``h (y_T - y_1) / (T - 1)`` (drift over the whole span); std
  ``sigma sqrt(h (1 + h / (T - 1)))`` with ``sigma`` the sd of the one-step changes about the
  drift (``ddof`` 1). The drift is the mean of the ``T - 1`` changes, variance
  ``sigma^2 / (T - 1)``: hence ``h / (T - 1)`` (``forecast::rwf``'s drift standard error;
  FPP3 5.5's ``h / T`` approximates it).
* seasonal naive, with and without drift: :func:`distgp.bench.baselines.seasonal_naive`.
* ``ets``: statsmodels ``ETSModel``, every valid combination of additive or multiplicative error,
  no / additive / damped additive trend and no / additive / multiplicative seasonality of period
  ``m`` (multiplicative parts only for positive data), the lowest AICc kept; its mean forecast and
  its 95% prediction interval (``std`` = interval half-width / 1.96 for the NLPD).
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

import numpy as np

from distgp.bench.baselines import SEASON, STD_FLOOR, _scored, walk_sigma
from distgp.data import Dataset
from distgp.exceptions import InputDataError
from distgp.gp import Z95


def horizons(dataset: Dataset) -> np.ndarray:
    """Steps ahead (``1, 2, ...``) of each test point past the last training point."""
    if not dataset.series:
        raise InputDataError(f"{dataset.name} is not a 1-D series; forecasts do not apply")
    x = dataset.X_train[:, 0]
    step = float(x[1] - x[0])
    h = np.rint((dataset.X_test[:, 0] - x[-1]) / step).astype(int)
    if np.any(h < 1):
        raise InputDataError(f"{dataset.name}: test inputs do not follow the training window")
    return h


def naive(dataset: Dataset, seed: int = 0) -> dict[str, Any]:
    """The last training value, with a random walk's widening interval."""
    start = time.perf_counter()
    h = horizons(dataset)
    y = dataset.y_train
    sigma = walk_sigma(np.diff(y))
    return _scored(dataset, np.full(len(h), y[-1]), sigma * np.sqrt(h), start)


def drift(dataset: Dataset, seed: int = 0) -> dict[str, Any]:
    """The line through the first and last training values, extended ``h`` steps."""
    start = time.perf_counter()
    h = horizons(dataset)
    y = dataset.y_train
    T = len(y)
    slope = (y[-1] - y[0]) / (T - 1)
    sigma = walk_sigma(np.diff(y), slope)
    return _scored(dataset, y[-1] + h * slope, sigma * np.sqrt(h * (1 + h / (T - 1))), start)


def ets(dataset: Dataset, seed: int = 0, period: int = SEASON) -> dict[str, Any]:
    """statsmodels ETS with error, trend, damping and seasonality chosen by AICc; ``seed`` seeds
    the simulated prediction interval of a model with a multiplicative part."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    start = time.perf_counter()
    h = horizons(dataset)
    y = dataset.y_train
    positive = bool(np.all(y > 0))
    kinds = ("add", "mul") if positive else ("add",)
    seasonal = (None, *kinds) if len(y) >= 2 * period else (None,)
    best, best_aicc, label = None, np.inf, ""
    for error, trend, season in itertools.product(kinds, (None, "add", "damped"), seasonal):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = ETSModel(
                    pd.Series(y),
                    error=error,
                    trend="add" if trend == "damped" else trend,
                    damped_trend=trend == "damped",
                    seasonal=season,
                    seasonal_periods=period if season else None,
                )
                fit = model.fit(disp=False, maxiter=2000)
            except (ValueError, np.linalg.LinAlgError):
                continue
        if np.isfinite(fit.aicc) and fit.aicc < best_aicc:
            best, best_aicc = fit, float(fit.aicc)
            label = f"ETS({error[0].upper()},{_short(trend)},{_short(season)})"
    if best is None:
        raise InputDataError(f"{dataset.name}: no ETS model could be fitted")
    frame = _prediction_frame(best, len(y), int(h.max()), seed)
    mean = frame["mean"].to_numpy()[h - 1]
    half = (frame["pi_upper"].to_numpy() - frame["pi_lower"].to_numpy())[h - 1] / 2
    result = _scored(dataset, mean, np.maximum(half / Z95, STD_FLOOR), start, model=label)
    lower, upper = frame["pi_lower"].to_numpy()[h - 1], frame["pi_upper"].to_numpy()[h - 1]
    result["coverage95"] = float(np.mean((dataset.y_test >= lower) & (dataset.y_test <= upper)))
    return result


def _prediction_frame(fit: Any, start: int, steps: int, seed: int) -> Any:
    """Mean and 95% interval of ``steps`` forecasts from ``start``. A model with a multiplicative
    part has a simulated interval: its generator is seeded from ``seed``, so that the NLPD and
    coverage reproduce run to run."""
    import inspect

    key = "rng" if "rng" in inspect.signature(fit.simulate).parameters else "random_state"
    seeded = {key: np.random.default_rng(seed)}  # statsmodels 0.15: rng; 0.14: random_state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prediction = fit.get_prediction(start=start, end=start + steps - 1, **seeded)
        return prediction.summary_frame(alpha=0.05)


def _short(part: str | None) -> str:
    return {None: "N", "add": "A", "mul": "M", "damped": "Ad"}[part]
