"""Dates as a time axis: a CSV column of ISO 8601 dates is read as the number of calendar units
(years, quarters, months, weeks, days, hours, minutes or seconds) since 1970-01-01, the unit
chosen from the column's spacing, and written back as dates.

Months, quarters and years are calendar units: a date's value is its month's index plus its
day's place in a 31-day month, the last day of every month counting as the 31st, so that a
series on the 15th, or at month ends, is whole steps apart however long the months; the others
are fixed lengths of time. The epoch is fixed, so shards of one series
read on different nodes agree without exchanging anything but the unit's name.
"""

from __future__ import annotations

import numpy as np

from distgp.exceptions import InputDataError

MONTHS_PER_UNIT = {"year": 12, "quarter": 3, "month": 1}
SECONDS_PER_UNIT = {"week": 604_800, "day": 86_400, "hour": 3_600, "minute": 60, "second": 1}
UNITS = (*MONTHS_PER_UNIT, *SECONDS_PER_UNIT)
# the unit of a spacing: the longest unit the median spacing (in days) is at least this share of
SPACING_DAYS = (
    ("year", 300.0),
    ("quarter", 80.0),
    ("month", 26.0),
    ("week", 6.0),
    ("day", 0.9),
    ("hour", 0.9 / 24),
    ("minute", 0.9 / 1440),
)
EPOCH_YEAR = 1970
MONTH_DAYS = 31  # a calendar unit's days: the last day of every month is the 31st


def parse_dates(values, what: str):
    """``values`` (texts) as timezone-naive UTC timestamps (a pandas ``DatetimeIndex``), or
    ``None`` when some value is not an ISO 8601 date or time; an empty value is an error naming
    its row (``what``: the column, for the message; rows numbered as a CSV file's lines)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):  # numbers are not dates written out
        return None
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601", utc=True))
    except (ValueError, TypeError, OverflowError):
        return None
    missing = np.flatnonzero(dates.isna())
    if missing.size:
        raise InputDataError(
            f"{what} has no date in {missing.size} row(s) (first: row {missing[0] + 2}); fill "
            "them in or drop those rows"
        )
    return dates.tz_convert(None)


def unit_of(dates) -> str:
    """The calendar unit of a column of dates: the longest whose length the median spacing of
    its distinct dates reaches (26 days or more is monthly, 6 or more weekly, ...)."""
    distinct = np.unique(_seconds(dates))
    if distinct.size < 2:
        return "day"
    days = float(np.median(np.diff(distinct))) / SECONDS_PER_UNIT["day"]
    return next((unit for unit, least in SPACING_DAYS if days >= least), "second")


def to_numbers(dates, unit: str) -> np.ndarray:
    """Timestamps as float ``unit``s since 1970-01-01 (calendar units: whole months plus the
    day's place in a 31-day month, the last day of a month as the 31st)."""
    if unit in SECONDS_PER_UNIT:
        return _seconds(dates) / SECONDS_PER_UNIT[unit]
    months = (dates.year.to_numpy() - EPOCH_YEAR) * 12 + dates.month.to_numpy() - 1
    time_of_day = (_seconds(dates) - _seconds(dates.normalize())) / SECONDS_PER_UNIT["day"]
    day = dates.day.to_numpy()
    day = np.where(day == dates.days_in_month.to_numpy(), MONTH_DAYS, day)
    return (months + (day - 1 + time_of_day) / MONTH_DAYS) / MONTHS_PER_UNIT[unit]


def _seconds(dates) -> np.ndarray:
    """Seconds since 1970-01-01 of naive timestamps, whatever their pandas resolution."""
    import pandas as pd

    return np.asarray((dates - pd.Timestamp(EPOCH_YEAR, 1, 1)) / pd.Timedelta(seconds=1), float)


def to_dates(values: np.ndarray, unit: str):
    """Float ``unit``s since 1970-01-01 as timestamps to the microsecond (:func:`to_numbers`'s
    inverse)."""
    import pandas as pd

    values = np.asarray(values, dtype=float)
    if unit in SECONDS_PER_UNIT:
        micro = np.round(values * SECONDS_PER_UNIT[unit] * 1e6)
        return pd.DatetimeIndex(pd.Timestamp(EPOCH_YEAR, 1, 1) + pd.to_timedelta(micro, unit="us"))
    months = values * MONTHS_PER_UNIT[unit]
    whole = np.floor(months + 1e-9)
    start = pd.DatetimeIndex(
        pd.to_datetime(
            {
                "year": (EPOCH_YEAR + whole // 12).astype(int),
                "month": (whole % 12 + 1).astype(int),
                "day": 1,
            }
        )
    )
    micro = np.round((months - whole).clip(min=0.0) * MONTH_DAYS * SECONDS_PER_UNIT["day"] * 1e6)
    days, time_of_day = np.divmod(micro, SECONDS_PER_UNIT["day"] * 1e6)
    days = np.minimum(days, start.days_in_month.to_numpy() - 1)  # the 31st: the month's last day
    return start + pd.to_timedelta(days, unit="D") + pd.to_timedelta(time_of_day, unit="us")


def following(last, unit: str, step: float, count: int):
    """The ``count`` dates after ``last`` at ``step`` units apart, on the calendar: a series of
    month ends continues at month ends, one on the 15th on the 15th (calendar units step by
    the nearest whole number of months)."""
    import pandas as pd

    k = np.arange(1, count + 1)
    if unit in SECONDS_PER_UNIT:
        return last + pd.to_timedelta(np.round(k * step * SECONDS_PER_UNIT[unit]), unit="s")
    months = max(1, round(step * MONTHS_PER_UNIT[unit]))
    if last.is_month_end:
        ahead = [last + pd.offsets.MonthEnd(months * int(i)) for i in k]
    else:
        ahead = [last + pd.DateOffset(months=months * int(i)) for i in k]
    return pd.DatetimeIndex(ahead)


def format_dates(dates) -> list[str]:
    """ISO 8601 texts, as fine as the timestamps need: dates only when all fall at midnight,
    then whole seconds, then microseconds."""
    import pandas as pd

    if bool((dates == dates.normalize()).all()):
        pattern = "%Y-%m-%d"
    elif bool((dates == dates.floor(pd.Timedelta(seconds=1))).all()):
        pattern = "%Y-%m-%dT%H:%M:%S"
    else:
        pattern = "%Y-%m-%dT%H:%M:%S.%f"
    return [str(d) for d in dates.strftime(pattern)]


def unit_label(unit: str) -> str:
    """``months since 1970-01`` and the like, for axis labels and messages."""
    since = "1970-01" if unit in MONTHS_PER_UNIT else "1970-01-01"
    return f"{unit}s since {since}"
