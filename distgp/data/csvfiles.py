"""CSV files: reading with one-line errors, columns matched by name, dates read as numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from distgp.data.checks import as_float_vector, check_X
from distgp.exceptions import InputDataError

# a column of text where the model reads numbers (predict, --test files)
PREDICT_TEXT_ADVICE = "write numbers there, as in the training data"


def read_dates(frame, path: Path, columns: Sequence[str]):
    """``frame`` with its text ``columns`` of ISO 8601 dates as numbers, each in the calendar
    unit of its spacing (:mod:`distgp.calendar`), those units by column, and the columns whose
    times gave UTC offsets (read in UTC)."""
    import pandas as pd

    from distgp import calendar

    units, utc = {}, []
    for column in columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            continue
        dates = calendar.parse_dates(frame[column], f"column {column} of {path.name}")
        if dates is not None:
            units[column] = calendar.unit_of(dates)
            if calendar.has_offsets(frame[column]):
                utc.append(column)
            frame = frame.assign(**{column: calendar.to_numbers(dates, units[column])})
    return frame, units, utc


def refuse_other_dates(frame, path: Path, columns: Sequence[str]) -> None:
    """A one-line error for a text column of dates not written as ISO 8601 (``03/01/2020``)."""
    import warnings

    import pandas as pd

    from distgp import calendar

    for column in columns:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns when it guesses a format per value
            try:
                pd.to_datetime(frame[column].astype("string").str.strip(), format="mixed")
            except (ValueError, TypeError, OverflowError):
                continue
        row, text = calendar.first_unreadable(frame[column])
        raise InputDataError(
            f"column {column} of {path.name} holds dates not written in ISO 8601 (row {row}: "
            f"{text!r}); write them as YYYY-MM-DD (times as YYYY-MM-DDTHH:MM:SS), which distgp "
            "reads as a time axis"
        )


def read_as_numbers(values):
    """Text values stripped, the numbers they read as (NaN where not one), and whether at
    least half of them are numbers: a column of numbers with a few stray values (a typo, a
    note), not one of text (categories, dates)."""
    import pandas as pd

    texts = pd.Series(values).astype("string").str.strip()
    numbers = pd.to_numeric(texts, errors="coerce")
    return texts, numbers, 2 * int(numbers.notna().sum()) >= len(texts)


def refuse_text(
    frame, path: Path, columns: Sequence[str], advice: str = "encode or drop them"
) -> None:
    """A one-line error for ``columns`` of a CSV frame that do not hold numbers. A column of
    numbers but for a few values (a typo, a stray note) is named with its first such value and
    row (as the file's line, as dates are); a column mostly of text (categories) gets
    ``advice``. Empty cells are not text: the check of missing values names them."""
    import pandas as pd

    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    for column in bad:
        texts, numbers, mostly_numbers = read_as_numbers(frame[column])
        odd = (numbers.isna() & texts.notna() & (texts != "")).to_numpy(dtype=bool)
        if odd.any() and mostly_numbers:
            row = int(np.flatnonzero(odd)[0])
            raise InputDataError(
                f"column {column} of {path.name}, row {row + 2}: {texts.iloc[row]!r} is not a "
                "number; correct or remove the row"
            )
    if bad:
        raise InputDataError(f"column(s) {', '.join(bad)} of {path.name} are not numeric; {advice}")


def _repeated_names(path: Path) -> list[str]:
    """Column names the header row of CSV ``path`` holds more than once (pandas would read
    ``x,x`` as ``x`` and ``x.1``)."""
    import csv
    from collections import Counter

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = [name.strip() for name in next(csv.reader(f), [])]
    return [name for name, count in Counter(header).items() if count > 1]


def _first_bad_byte(path: Path, error: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8: its first undecodable byte, position and line (pandas'
    ``error`` counts in the block it read)."""
    content = path.read_bytes()
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        lines = content.count(b"\n", 0, exc.start) + 1
        error, line = exc, f", line {lines}"
    else:
        line = ""
    return f"byte 0x{error.object[error.start]:02x} at position {error.start}{line}"


def read_csv_frame(path: Path):
    """``path`` as a pandas frame with string column names; one-line errors for an unreadable,
    empty or header-less file."""
    import pandas as pd

    if not path.is_file():
        raise InputDataError(f"data file {path} does not exist; check the path")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path} is empty; a CSV needs a header row and data rows") from None
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{path} is not UTF-8 text ({_first_bad_byte(path, exc)}); save it as UTF-8"
        ) from None
    except pd.errors.ParserError as exc:
        ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if ragged is None:
            raise InputDataError(f"cannot read {path} as CSV: {exc}") from None
        expected, line, seen = ragged.groups()
        raise InputDataError(
            f"line {line} of {path.name} has {seen} fields but its header names {expected} "
            "columns; remove the extra values (quote a value that holds a comma), or name the "
            "column in the header"
        ) from None
    except Exception as exc:
        raise InputDataError(f"cannot read {path} as CSV: {exc}") from None
    if frame.shape[0] == 0:
        raise InputDataError(f"{path} has a header but no data rows")
    columns = [str(c).strip() for c in frame.columns]  # "t, y" names "y", not " y"
    frame.columns = columns
    numeric_like = [c for c in columns if _looks_numeric(c)]
    if numeric_like and len(numeric_like) == len(columns):
        raise InputDataError(
            f"{path} seems to have no header row (column names {numeric_like[:3]} are numbers); "
            "add a header line naming the columns"
        )
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(columns) == 1 and separator in columns[0]:
            raise InputDataError(
                f"{path} has one column named {columns[0]!r}; distgp reads comma-separated "
                f"files: convert the {name} to commas"
            )
    unnamed = [i for i, c in enumerate(columns) if re.fullmatch(r"Unnamed: \d+", c)]
    if unnamed:  # pandas' name for an empty header field
        raise InputDataError(_unnamed_column(frame, path, unnamed[0]))
    twice = _repeated_names(path)
    if twice:
        raise InputDataError(
            f"{path} names column(s) {', '.join(map(repr, twice))} more than once in its "
            "header; give each column its own name"
        )
    return frame


def _unnamed_column(frame, path: Path, index: int) -> str:
    """The error for column ``index`` of a CSV frame, left without a name in the header: a
    pandas row index (the first column), the empty field after a comma that ends every line
    (an empty last column), or a column to name or drop."""
    columns = len(frame.columns)
    if index == columns - 1 and frame.iloc[:, index].isna().all():
        return (
            f"the lines of {path.name} end with a comma, which adds an empty last column with "
            "no name in the header; remove the trailing commas"
        )
    if index == columns - 1:
        return (
            f"the header of {path.name} ends with a comma: its last column ({index + 1}) has "
            "no name; name it in the header to use it, or drop the column"
        )
    if index == 0:
        return (
            f"column 1 of {path.name} has no name in the header (pandas writes its row index "
            "so: DataFrame.to_csv(path, index=False) leaves it out); drop it, or name it to "
            "use it"
        )
    return (
        f"column {index + 1} of {path.name} has no name in the header (an empty field between "
        "two commas); name it to use it, or drop the column"
    )


def named_columns(
    frame,
    path: Path,
    inputs: Sequence[str],
    target: str | None,
    time_units: Mapping[str, str] | None = None,
    unknown_rows: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The columns ``inputs`` of a CSV frame, in that order, and its ``target`` column when it
    has one (``None`` otherwise; see :func:`known_outputs` for ``unknown_rows``); other columns
    are ignored. The columns of ``time_units`` hold dates, read in those units."""
    columns = list(frame.columns)
    missing = [c for c in inputs if c not in columns]
    if missing:
        raise InputDataError(
            f"{path.name} lacks the input column(s) {', '.join(map(repr, missing))} of the "
            f"training data; its columns are: {', '.join(columns)}"
        )
    frame = _dates_in_units(frame, path, inputs, time_units or {})
    refuse_text(frame, path, list(inputs), PREDICT_TEXT_ADVICE)
    X = check_X(
        frame[list(inputs)].to_numpy(),
        what=f"inputs of {path.name}",
        columns=list(inputs),
        first_row=2,
    )
    return X, known_outputs(frame, path, target, unknown_rows)


def known_outputs(
    frame, path: Path, target: str | None, unknown_rows: bool = False
) -> np.ndarray | None:
    """The ``target`` column of a file (``n``), or ``None`` where it has none or it is empty
    (the outputs of future rows are not known yet). ``unknown_rows``: rows left empty among
    filled ones are NaN (a prediction file appending future rows to known ones); otherwise
    they are an error (a test file needs every output)."""
    if target is None or target not in frame.columns or frame[target].isna().all():
        return None
    refuse_text(frame, path, [target], PREDICT_TEXT_ADVICE)
    blank = frame[target].isna().to_numpy()
    if blank.any() and not unknown_rows:
        raise InputDataError(
            f"column {target} of {path.name} is empty in {int(blank.sum())} of {len(blank)} "
            f"row(s) (first: row {int(np.flatnonzero(blank)[0]) + 2}); a test file needs the "
            "output of every row: fill those rows, or drop them"
        )
    values = np.where(blank, 0.0, frame[target].to_numpy())  # rows keep their numbers
    y = as_float_vector(values, f"column {target} of {path.name}", first_row=2)
    y[blank] = np.nan
    return y


def _dates_in_units(frame, path: Path, inputs: Sequence[str], time_units: Mapping[str, str]):
    """``frame`` with the date columns of ``time_units`` as numbers in their units; dates in
    another of the model's ``inputs`` (numbers in its fit) are an error, while columns the
    model does not read are left as they are."""
    import pandas as pd

    from distgp import calendar

    for column in inputs:
        if column in time_units or pd.api.types.is_numeric_dtype(frame[column]):
            continue
        if calendar.parse_dates(frame[column], f"column {column} of {path.name}") is not None:
            raise InputDataError(
                f"column {column} of {path.name} holds dates, but the model was fitted on "
                f"numbers in {column}; write them as the training data did"
            )
    for column, unit in time_units.items():
        dates = calendar.parse_dates(frame[column], f"column {column} of {path.name}")
        if dates is None:
            row, text = calendar.first_unreadable(frame[column])
            raise InputDataError(
                f"column {column} of {path.name} does not hold ISO 8601 dates (row {row}: "
                f"{text}), but the training data's {column} did; write its values as "
                "YYYY-MM-DD (times as YYYY-MM-DDTHH:MM:SS)"
            )
        frame = frame.assign(**{column: calendar.to_numbers(dates, unit)})
    return frame


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
