"""The seasonal period of a series from the autocorrelation of its changes."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.seasonality import seasonal_period


def _monthly(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.arange(n, dtype=float)
    y = 0.5 * x + 5 * np.sin(2 * np.pi * x / 12) + rng.normal(size=n)
    return x[:, None], y


def test_a_monthly_season_under_a_trend_has_period_twelve():
    X, y = _monthly()
    assert seasonal_period(X, y) == 12.0


def test_the_period_is_in_input_units_and_the_order_does_not_matter():
    X, y = _monthly()
    order = np.random.default_rng(1).permutation(len(y))
    assert seasonal_period(X[order] / 12.0, y[order]) == pytest.approx(1.0)  # years


@pytest.mark.parametrize(
    "kind", ["white noise", "random walk", "line", "constant", "smooth", "slow cycle"]
)
def test_a_series_without_a_season_has_none(kind):
    rng = np.random.default_rng(2)
    n = 200
    t = np.arange(n, dtype=float)
    y = {
        "white noise": rng.normal(size=n),
        "random walk": np.cumsum(rng.normal(size=n)),
        "line": 0.3 * t,
        "constant": np.full(n, 4.0),
        # changes that correlate most at lag 1 and less at each longer lag: no repeat in them
        "smooth": np.cumsum(np.cumsum(rng.normal(size=n))),
        "slow cycle": np.sin(t / 40) + 0.05 * t,  # a cycle longer than a third of the series
    }[kind]
    assert seasonal_period(np.arange(n, dtype=float)[:, None], y) is None


def test_a_smooth_cycle_has_its_own_period_not_the_shortest_lag():
    t = np.arange(100, dtype=float)
    y = 10 + np.sin(t / 5) + 0.01 * t  # period 2 pi 5 = 31.4 steps
    assert seasonal_period(t[:, None], y) == 31.0


def test_unevenly_spaced_inputs_have_none():
    X, y = _monthly()
    X = X.copy()
    X[5] += 0.5
    assert seasonal_period(X, y) is None


def test_a_series_shorter_than_three_seasons_has_none():
    X, y = _monthly(n=30)
    assert seasonal_period(X, y) is None
