"""The seasonal period of a series, read from the autocorrelation of its changes.

A series that repeats itself every ``p`` steps has changes ``y_t - y_(t-1)`` that correlate at
lag ``p`` (differencing first removes a trend's slow drift, which would otherwise correlate at
every lag). The period is the lag of the largest autocorrelation of the changes among the
lags where it peaks (at least as high as at the lags either side), if that peak is significant:
both its height and its rise above the lowest autocorrelation at the shorter lags exceed the
level that the largest of the ``m`` lags tried reaches with probability 5% for white-noise
changes (Bonferroni over the lags; the autocorrelation of white noise is about ``N(0, 1/n)`` at
each lag, Box and Jenkins 1976). A repeat dips and rises again; the changes of a smooth series
correlate most at short lags and less at each longer one, a decline with no repeat in it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from distgp.data import step_multiples

MIN_CYCLES = 3
"""The series must hold this many periods (a seasonal walk learns a phase from its earlier
cycles, and the rolling origins hold out data from the end)."""
MIN_LAG = 2
SIGNIFICANCE = 0.05


def seasonal_period(X: np.ndarray, y: np.ndarray) -> float | None:
    """The seasonal period of a one-input series with no missing points, in input units (the
    lag times the mean step: months in days give 365.25 for a year), or ``None`` when no lag
    from :data:`MIN_LAG` to ``n / MIN_CYCLES`` steps has a significant peak of the
    autocorrelation of the changes, or the series has gaps or is none (lags in steps would
    mean nothing).

    Args:
        X: ``n x 1`` inputs (any order; sorted here).
        y: ``n`` outputs.
    """
    x = np.asarray(X, float)[:, 0]
    order = np.argsort(x, kind="stable")
    multiples = step_multiples(x[order])
    if multiples is None or np.any(multiples != 1):
        return None
    raw = np.diff(np.asarray(y, float)[order])
    changes = raw - raw.mean()
    n = len(changes)
    lags = np.arange(MIN_LAG, n // MIN_CYCLES + 1)
    energy = float(changes @ changes)
    if len(lags) == 0 or energy <= 1e-12 * float(raw @ raw):  # constant changes: a line
        return None
    acf = _autocovariance(changes)[: lags[-1] + 2] / energy  # lags 0 .. last + 1
    # the normal quantile from the standard library: scipy.stats costs 0.3-0.5 s to import
    level = NormalDist().inv_cdf(1.0 - SIGNIFICANCE / len(lags)) / math.sqrt(n)
    trough = np.minimum.accumulate(acf[1:])[lags - 2]  # lowest at lags 1 .. k - 1
    peaks = lags[
        (acf[lags] >= acf[lags - 1])
        & (acf[lags] >= acf[lags + 1])
        & (acf[lags] > level)
        & (acf[lags] - trough > level)
    ]
    if len(peaks) == 0:
        return None
    even = np.allclose(np.diff(x[order]), x[order][1] - x[order][0], atol=0.0)
    step = series_step(X) if even else float(np.ptp(x)) / (len(x) - 1)
    return float(peaks[int(np.argmax(acf[peaks]))] * step)


def _autocovariance(v: np.ndarray) -> np.ndarray:
    """``sum_t v_t v_(t+k)`` for every lag ``k`` of ``v`` (FFT with zero padding: no circular
    wrap-around; ``O(n log n)`` instead of a product per lag)."""
    size = 1 << (2 * len(v) - 1).bit_length()
    spectrum = np.fft.rfft(v, size)
    return np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(v)]


def series_step(X: np.ndarray) -> float:
    """The step of a one-input series in input units: the median gap between its sorted
    distinct inputs (0 for fewer than two)."""
    gaps = np.diff(np.unique(np.asarray(X, float)[:, 0]))
    return float(np.median(gaps)) if len(gaps) else 0.0
