"""Dates as a time axis: a CSV column of ISO 8601 dates is read as the number of units (years,
quarters, months, weeks, days, hours, minutes or seconds) since 1970-01-01, the unit chosen
from the column's spacing, and written back as dates.

Months, quarters and years are calendar units, used for dates that keep to one day of the month
(the 15th; the 31st standing for every month's last day): a date's value is its month's index
plus its day's place in a 31-day month, the last day of every month counting as the 31st, so
that such a series is whole steps apart however long the months. Other dates (every 28 or 45
days, business days) are counted in fixed lengths of time. The epoch is fixed, so shards of one
series read on different nodes agree without exchanging anything but the unit's name.
"""

from __future__ import annotations

import re

import numpy as np

from distgp.exceptions import ConfigError, InputDataError

MONTHS_PER_UNIT = {"year": 12, "quarter": 3, "month": 1}
SECONDS_PER_UNIT = {"week": 604_800, "day": 86_400, "hour": 3_600, "minute": 60, "second": 1}
UNITS = (*MONTHS_PER_UNIT, *SECONDS_PER_UNIT)
CALENDAR_DAYS = 26.0  # a median spacing of this many days or more may be counted in months
# the fixed unit of a spacing: the longest whose length the median spacing (days) reaches this
# share of
FIXED_SPACING_DAYS = (("week", 6.0), ("day", 0.9), ("hour", 0.9 / 24), ("minute", 0.9 / 1440))
EPOCH_YEAR = 1970
LAST_YEAR = 9999  # four-digit years (and matplotlib's dates) end here
MONTH_DAYS = 31  # a calendar unit's days: the last day of every month is the 31st
MIN_WEEKDAY_SERIES = 10  # daily dates with no weekend among at least these many are weekdays
WEEKDAYS_RULE = "weekdays"
SNAP_MICROSECONDS = 5  # float rounding far from 1970; a timestamp this close to a second is one
UTC_OFFSET = re.compile(r"[T ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$", re.I)
"""A time of day followed by a UTC offset (``T13:00+02:00``, ``T13:00:00Z``)."""


def parse_dates(values, what: str):
    """A CSV column's texts as timezone-naive UTC timestamps (a pandas ``DatetimeIndex``);
    ``None`` for numbers, or where fewer than half of the values are ISO 8601 dates or times
    (not a date column). Surrounding spaces are ignored. An empty or impossible value
    (``2010-02-30``) in a date column is an error naming its first row (``what``: the column,
    for the message; rows numbered as a CSV file's lines)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):  # numbers are not dates written out
        return None
    texts = pd.Series(values).astype("string").str.strip()
    try:
        parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    except (ValueError, TypeError, OverflowError):
        return None
    read = parsed.notna().to_numpy()
    if 2 * read.sum() < len(read) or not read.any():
        return None
    if not read.all():
        blank = (texts.isna() | (texts == "")).to_numpy()
        if blank.any():
            raise InputDataError(
                f"{what} has no date in {int(blank.sum())} row(s) (first: row "
                f"{int(np.flatnonzero(blank)[0]) + 2}); fill them in or drop those rows"
            )
        row = int(np.flatnonzero(~read)[0])
        raise InputDataError(
            f"{what}, row {row + 2}: {texts.iloc[row]!r} is not an ISO 8601 date or time "
            "(YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS); correct it or drop the row"
        )
    return pd.DatetimeIndex(parsed).tz_convert(None)


def has_offsets(values) -> bool:
    """Whether any text of a date column gives a UTC offset (the column is read in UTC)."""
    import pandas as pd

    texts = pd.Series(values).astype("string").str.strip().dropna()
    return any(UTC_OFFSET.search(text) for text in texts)


def first_unreadable(values) -> tuple[int, str]:
    """The first value of a column that is not an ISO 8601 date: its row (as a CSV file's
    line) and text."""
    import pandas as pd

    texts = pd.Series(values).astype("string").str.strip()
    parsed = pd.to_datetime(texts, format="ISO8601", errors="coerce", utc=True)
    row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
    return row + 2, str(texts.iloc[row])


def calendar_day(dates) -> int | None:
    """The day of the month every date falls on (31: each month's last day, so the 30th of a
    30th series counts in February as its 28th), or ``None`` when they keep to no one day."""
    days = dates.day.to_numpy()
    ends = dates.is_month_end
    if ends.all():
        return MONTH_DAYS
    values, counts = np.unique(days[~ends], return_counts=True)
    day = int(values[np.argmax(counts)])
    fits = (days == day) | (ends & (dates.days_in_month.to_numpy() < day))
    return day if fits.all() else None


def unit_of(dates) -> str:
    """The unit a column of dates is counted in: a calendar unit for dates on one day of the
    month at least :data:`CALENDAR_DAYS` apart (years for steps of whole years, quarters for
    whole quarters, else months), else the longest fixed unit the median spacing of the
    distinct dates reaches (6 days or more: weeks, ...)."""
    distinct = np.unique(_seconds(dates))
    if distinct.size < 2:
        return "day"
    days = float(np.median(np.diff(distinct))) / SECONDS_PER_UNIT["day"]
    if days >= CALENDAR_DAYS and calendar_day(dates) is not None:
        months = np.unique(dates.year.to_numpy() * 12 + dates.month.to_numpy())
        step = int(np.median(np.diff(months))) if months.size > 1 else 1
        return "year" if step % 12 == 0 else "quarter" if step % 3 == 0 else "month"
    return next((unit for unit, least in FIXED_SPACING_DAYS if days >= least), "second")


def series_rule(dates, unit: str) -> str | None:
    """How a series of these dates continues past its end (:func:`following`): ``day N`` for
    a calendar unit (its day of the month, 31 for month ends), ``weekdays`` for daily dates
    with no weekend among :data:`MIN_WEEKDAY_SERIES` or more, else ``None`` (even steps)."""
    if unit in MONTHS_PER_UNIT:
        day = calendar_day(dates)
        return None if day is None else f"day {day}"
    weekend = dates.day_of_week.to_numpy() >= 5
    if unit == "day" and len(dates) >= MIN_WEEKDAY_SERIES and not weekend.any():
        return WEEKDAYS_RULE
    return None


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
    """Float ``unit``s since 1970-01-01 as timestamps (:func:`to_numbers`'s inverse), to the
    microsecond, and to the second where within :data:`SNAP_MICROSECONDS` of one (float
    rounding of dates far from 1970)."""
    import pandas as pd

    values = np.asarray(values, dtype=float)
    if unit in SECONDS_PER_UNIT:
        micro = np.round(values * SECONDS_PER_UNIT[unit] * 1e6)
        dates = pd.DatetimeIndex(pd.Timestamp(EPOCH_YEAR, 1, 1) + pd.to_timedelta(micro, "us"))
        return _snapped(dates)
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
    return _snapped(start + pd.to_timedelta(days, unit="D") + pd.to_timedelta(time_of_day, "us"))


def _snapped(dates):
    import pandas as pd

    seconds = dates.round(pd.Timedelta(seconds=1))
    near = abs(dates - seconds) <= pd.Timedelta(microseconds=SNAP_MICROSECONDS)
    return dates.where(~near, seconds)


def following(last, unit: str, step: float, count: int, rule: str | None = None):
    """The ``count`` dates after ``last``, ``step`` units apart, as the series' ``rule``
    (:func:`series_rule`) continues it: on its day of the month (month ends stay month ends, a
    30th series on the 30th, in February on its last day), on weekdays, or at even steps.
    Dates past :data:`LAST_YEAR` are a :class:`ConfigError`."""
    import pandas as pd

    k = np.arange(1, count + 1)
    try:
        if unit in MONTHS_PER_UNIT:
            ahead = _on_day(last, max(1, round(step * MONTHS_PER_UNIT[unit])) * k, rule)
        elif rule == WEEKDAYS_RULE:
            days = max(1, round(step))
            ahead = pd.DatetimeIndex([last + pd.offsets.BDay(days * int(i)) for i in k])
        else:
            micro = np.round(k * step * SECONDS_PER_UNIT[unit] * 1e6)
            ahead = _snapped(pd.DatetimeIndex(last + pd.to_timedelta(micro, unit="us")))
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        ahead = None
    if ahead is None or ahead.max().year > LAST_YEAR:
        raise ConfigError(
            f"{count} steps after {format_dates(pd.DatetimeIndex([last]))[0]} pass the last date "
            f"ISO 8601 writes (year {LAST_YEAR}); "
            "forecast fewer steps"
        )
    return ahead


def _on_day(last, months: np.ndarray, rule: str | None):
    """``last`` moved on by ``months`` whole months, each on the rule's day of the month (that
    month's last day where it is shorter), at ``last``'s time of day."""
    import pandas as pd

    day = int(rule.split()[1]) if rule else MONTH_DAYS if last.is_month_end else last.day
    index = last.year * 12 + last.month - 1 + months
    start = pd.DatetimeIndex(
        pd.to_datetime({"year": index // 12, "month": index % 12 + 1, "day": 1})
    )
    offset = np.minimum(day, start.days_in_month.to_numpy()) - 1
    return start + pd.to_timedelta(offset, unit="D") + (last - last.normalize())


def format_dates(dates, utc: bool = False) -> list[str]:
    """ISO 8601 texts, as fine as the timestamps need: dates only when all fall at midnight,
    then whole seconds, then microseconds; ``utc``: times in UTC, marked ``Z`` (for a column
    read with offsets: naive times would read as local ones)."""
    import pandas as pd

    if bool((dates == dates.normalize()).all()) and not utc:
        pattern = "%Y-%m-%d"
    elif bool((dates == dates.floor(pd.Timedelta(seconds=1))).all()):
        pattern = "%Y-%m-%dT%H:%M:%S"
    else:
        pattern = "%Y-%m-%dT%H:%M:%S.%f"
    return [str(d) + ("Z" if utc else "") for d in dates.strftime(pattern)]
