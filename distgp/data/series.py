"""Time indices: whether inputs are a series, the gaps of an uneven one, time order, and notes
on inputs that read as time but are no series."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from distgp.data.readers import Dataset

STEP_TOLERANCE = 0.1
"""A series' step may differ from a whole number of its median step by this fraction of it:
calendar months in days (28 to 31), years with leap days, a missing observation."""
MIN_UNEVEN_SERIES = 8  # fewer points are a series only when evenly spaced


def is_series(X: np.ndarray) -> bool:
    """Whether ``n x P`` inputs are a time index: one increasing column whose steps are whole
    numbers of a common step (:func:`step_multiples`)."""
    return X.shape[1] == 1 and step_multiples(X[:, 0]) is not None


def step_multiples(x: np.ndarray) -> np.ndarray | None:
    """How many steps of the series each of increasing ``x``'s ``n - 1`` gaps spans (1: the
    next point, 2: one point missing), or ``None`` when ``x`` is no series.

    Evenly spaced to a relative 1e-5 (whatever the unit), with more than two points; or, from
    :data:`MIN_UNEVEN_SERIES` points, every gap within :data:`STEP_TOLERANCE` of a whole number
    of the median gap and no more points missing than present (dates as numbers: months in
    days, a year with a gap). Scattered inputs fail the second rule (their gaps spread far
    more), so they are scored by random folds, not as a forecast."""
    x = np.asarray(x, float)
    steps = np.diff(x)
    if len(x) <= 2 or not np.all(steps > 0):
        return None
    if np.allclose(steps, steps[0], atol=0.0):
        return np.ones(len(steps))
    if len(x) < MIN_UNEVEN_SERIES:
        return None
    step = np.median(steps)
    multiples = np.rint(steps / step)
    spans = multiples * step
    regular = np.all(multiples >= 1) and np.all(np.abs(steps - spans) <= STEP_TOLERANCE * spans)
    if not regular or float(np.sum(multiples - 1)) > len(x):
        return None
    return multiples


def in_time_order(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None):
    """Rows sorted by the one input when, sorted, it is a time index (:func:`is_series`; a file
    listing the newest first, or its rows shuffled), so that a series is in time order: its
    test split is then the latest points and its rolling origins run forward. Other data as
    given (the GP itself does not depend on the row order)."""
    if X.shape[1] != 1:
        return X, y, groups
    order = np.argsort(X[:, 0], kind="stable")
    if step_multiples(X[order, 0]) is None or np.array_equal(order, np.arange(len(order))):
        return X, y, groups
    return X[order], y[order], None if groups is None else groups[order]


def time_input_note(dataset: Dataset) -> str | None:
    """A note on one input that reads as time but is not used as a series: a column of dates
    that is no series (repeated dates: a local clock's autumn hour, say), or integers written
    as YYYYMM or YYYYMMDD dates; ``None`` otherwise."""
    from distgp import calendar

    if dataset.dims != 1 or dataset.series:
        return None
    name = dataset.feature_names[0]
    x = np.concatenate([dataset.X_train[:, 0], dataset.X_test[:, 0]])
    unit = dataset.time_units.get(name)
    if unit is not None:
        values, counts = np.unique(x, return_counts=True)
        why = (
            f"{int((counts > 1).sum())} date(s) appear more than once (first: "
            f"{calendar.format_dates(calendar.to_dates(values[counts > 1][:1], unit))[0]})"
            if (counts > 1).any()
            else "their steps are not whole numbers of one step"
        )
        return (
            f"the dates in {name} are no series ({why}): points are split and scored at random, "
            "and predict --ahead is not available"
        )
    if np.all(x == np.round(x)) and (_yyyymm(x) or _yyyymm(x // 100)):
        return (
            f"{name} looks like dates written as numbers (YYYYMM or YYYYMMDD), whose steps "
            "jump at each year's end; write them as YYYY-MM or YYYY-MM-DD to read them as dates"
        )
    return None


def _yyyymm(x: np.ndarray) -> bool:
    """Whether integers read as YYYYMM: years 1000-2999, months 1-12, more than one year."""
    years, months = x // 100, x % 100
    plausible = (years >= 1000) & (years <= 2999) & (months >= 1) & (months <= 12)
    return bool(plausible.all() and np.ptp(years) > 0)
