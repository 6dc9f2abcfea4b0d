"""Datasets: loading, validation, standardisation statistics and sharding.

Sources (``--data SOURCE``):

* ``.mat``: MATLAB files with ``xtrain``, ``ytrain``, ``xtest``, ``ytest`` (the SLIM-KL splits).
* ``.csv``: a header row, numeric columns; ``target`` names the output column (default: last).
* ``.npz``: arrays ``X`` and ``y``, or ``xtrain``/``ytrain``/``xtest``/``ytest``.
* ``builtin:co2``: monthly Mauna Loa CO2 (statsmodels), the embedded default.

Files without a stored test split are split with ``test_fraction``: randomly (seeded) for
regression data, or the last points for a 1-D series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distgp.exceptions import InputDataError
from distgp.io import read_npz

MAT_KEYS = ("xtrain", "ytrain", "xtest", "ytest")
MAX_ABS_VALUE = 1e150  # squares of larger values overflow float64 (max ~1.8e308)
_RELATIVE_TINY = 1e-12  # spreads below this fraction of the mean are rounding noise
BUILTINS = ("co2",)


@dataclass
class Dataset:
    """Training and test arrays in raw units.

    Attributes:
        X_train: ``n x P`` inputs.
        y_train: ``n`` outputs.
        X_test: ``n_test x P`` inputs (``n_test`` may be 0).
        y_test: ``n_test`` outputs.
        name: short name used in reports.
        feature_names: ``P`` column names.
        groups_train: optional ``n`` labels (a site id) used to shard by column.
        series: True when the single input is a time index (forecasting task).
        target_name: the output column of a CSV or built-in dataset (``None`` for files
            without named columns).
        time_units: input columns that held dates, each with the calendar unit its numbers
            count since 1970-01-01 (:mod:`distgp.calendar`).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str
    feature_names: list[str] = field(default_factory=list)
    groups_train: np.ndarray | None = None
    series: bool = False
    target_name: str | None = None
    time_units: dict[str, str] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return int(self.X_train.shape[1])


def check_X_y(
    X, y, *, what: str = "training", min_points: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs and outputs once, at the entry; return float64 arrays ``(n x P, n)``."""
    X = _as_float_matrix(X, f"{what} inputs X")
    y = _as_float_vector(y, f"{what} outputs y")
    if X.shape[0] != y.shape[0]:
        raise InputDataError(
            f"{what} inputs X have {X.shape[0]} rows but outputs y have {y.shape[0]}; "
            "give one output per input row"
        )
    if X.shape[0] < min_points:
        raise InputDataError(
            f"{what} data has {X.shape[0]} point(s); at least {min_points} are needed"
        )
    return X, y


def check_varying_inputs(X: np.ndarray) -> None:
    """Refuse training inputs that never vary: a kernel of constant inputs is constant, and
    the model could only learn the mean (some constant columns among varying ones are fine).
    Columns that vary only at rounding level (a spread below ``1e-12`` of their values, as in
    :func:`varying_columns`) count as constant."""
    if len(X) < 2:
        return
    if np.any(_real_spread(np.std(X, axis=0), np.mean(X, axis=0))):
        return
    if np.any(np.ptp(X, axis=0) > 0):
        raise InputDataError(
            "training inputs X vary only at rounding level in every column (a spread below "
            f"{_RELATIVE_TINY:g} of their values); subtract an offset, such as their first "
            "value, from them"
        )
    raise InputDataError(
        "training inputs X take a single value in every column; there is nothing to learn "
        "from them: add an input that varies"
    )


def check_y(y, n: int, what: str = "outputs y") -> np.ndarray:
    """Validate ``n`` known outputs (a vector, or an ``n x 1`` column) against predictions."""
    v = _as_float_vector(y, what)
    if len(v) != n:
        raise InputDataError(f"{what} have {len(v)} values for {n} predictions")
    return v


def check_X(X, *, dims: int | None = None, what: str = "inputs X") -> np.ndarray:
    """Validate prediction inputs; ``dims`` is the number of features seen in ``fit``."""
    X = _as_float_matrix(X, what)
    if dims is not None and X.shape[1] != dims:
        raise InputDataError(f"{what} have {X.shape[1]} columns but the model expects {dims}")
    return X


def _as_float_matrix(X, what: str) -> np.ndarray:
    _refuse_complex(X, what)
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{what} must be numeric: {exc}") from None
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[1] == 0:
        raise InputDataError(f"{what} must be a 2-D array (n x P), got shape {A.shape}")
    if A.shape[0] == 0:
        raise InputDataError(f"{what} is empty")
    _check_values(A, what)
    return A


def _refuse_complex(values, what: str) -> None:
    """Complex numbers would lose their imaginary part in the float64 cast, silently."""
    if np.iscomplexobj(values):
        raise InputDataError(
            f"{what} are complex numbers; pass real values (e.g. their real part or modulus)"
        )


def _check_values(
    values: np.ndarray, what: str, columns: list[str] | None = None, first_row: int = 1
) -> None:
    """Refuse NaN or infinite values, and values whose squares overflow float64 (variances and
    kernels would be inf). The error names the first bad value's row (the first row numbered
    ``first_row``: 2 for the line of a CSV file under its header) and, given ``columns``, its
    column."""
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        where = np.argwhere(~finite.reshape(len(values), -1))[0]
        at = f"row {int(where[0]) + first_row}"
        if columns is not None:
            at += f", column {columns[int(where[1])]}"
        raise InputDataError(
            f"{what}: {bad} NaN or infinite value(s) (first: {at}); remove or impute them"
        )
    largest = float(np.abs(values).max())
    if largest > MAX_ABS_VALUE:
        raise InputDataError(
            f"{what} reach {largest:.3g}, beyond {MAX_ABS_VALUE:.0e} where squares overflow "
            "float64; rescale them (e.g. divide by a power of 10)"
        )


def _as_float_vector(y, what: str) -> np.ndarray:
    _refuse_complex(y, what)
    try:
        v = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{what} must be numeric: {exc}") from None
    if v.ndim == 2 and 1 in v.shape:
        v = v.reshape(-1)
    if v.ndim != 1:
        raise InputDataError(f"{what} must be a vector, got shape {v.shape}")
    if v.size == 0:
        raise InputDataError(f"{what} is empty")
    _check_values(v, what)
    return v


# ----------------------------------------------------------------------------------------------
# Loading


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    test_fraction: float | None = None,
    shard_column: str | None = None,
    seed: int = 0,
) -> Dataset:
    """Load ``source`` (a path or ``builtin:NAME``) and validate it."""
    if test_fraction is not None:
        from distgp.config import FitConfig
        from distgp.settings import require

        require(FitConfig, "data.test_fraction", test_fraction)
    if source.startswith("builtin:"):
        name = source.split(":", 1)[1].lower()
        if name not in BUILTINS:
            raise InputDataError(
                f"unknown built-in dataset {name!r}; choose one of: "
                + ", ".join(f"builtin:{b}" for b in BUILTINS)
            )
        if shard_column is not None:
            raise InputDataError("built-in datasets have no shard column; use random or contiguous")
        return _load_co2(test_fraction)
    path = Path(source)
    if not path.exists():
        raise InputDataError(f"data file {source} does not exist{_from_here(path)}; check the path")
    if not path.is_file():
        raise InputDataError(f"data source {source} is not a file")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        if shard_column is not None:
            raise InputDataError(".mat files have no named columns; shard by column needs a CSV")
        return _load_mat(path)
    if suffix == ".csv":
        return _load_csv(path, target, test_fraction, shard_column, seed)
    if suffix == ".npz":
        if shard_column is not None:
            raise InputDataError(".npz files have no named columns; shard by column needs a CSV")
        return _load_npz(path, test_fraction, seed)
    raise InputDataError(
        f"data file {source} has an unsupported type {suffix or '(none)'}; "
        "use .mat, .csv, .npz or builtin:co2"
    )


def _finish(
    X_train, y_train, X_test, y_test, name, feature_names=None, groups=None, series=None
) -> Dataset:
    X_train, y_train = check_X_y(X_train, y_train, what="training")
    if X_test is None or len(X_test) == 0:
        X_test = np.zeros((0, X_train.shape[1]))
        y_test = np.zeros(0)
    else:
        X_test, y_test = check_X_y(X_test, y_test, what="test", min_points=1)
        if X_test.shape[1] != X_train.shape[1]:
            raise InputDataError(
                f"test inputs have {X_test.shape[1]} columns but training inputs have "
                f"{X_train.shape[1]}"
            )
    if np.ptp(y_train) == 0:
        raise InputDataError(
            "training outputs y have a single distinct value; there is nothing to learn"
        )
    check_varying_inputs(X_train)
    if series is None:
        series = is_series(X_train)
    names = list(feature_names) if feature_names else default_input_names(X_train.shape[1])
    return Dataset(X_train, y_train, X_test, y_test, name, names, groups, bool(series))


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 (hex) of the float64 values of ``arrays``, in order: one-way, it reveals no
    value, and tells whether data changed."""
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, float).tobytes())
    return digest.hexdigest()


def default_input_names(dims: int) -> list[str]:
    """The names of inputs that have none (arrays, .mat, .npz): ``x0 .. x{dims-1}``."""
    return [f"x{p}" for p in range(dims)]


def load_test_file(
    path: str,
    target: str | None,
    dims: int | None,
    inputs: Sequence[str] | None = None,
    time_units: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation data of ``--test``: every row of a CSV or ``X``/``y`` .npz, the test
    split of an .npz that has one, or the ``xtest``/``ytest`` arrays of a .mat file (its
    training arrays may be absent); ``n_test x P`` inputs and ``n_test`` outputs, ``P``
    checked against ``dims`` when given. A CSV's columns are matched by name to the training
    file's ``inputs`` and ``target`` when they are known, its dates read in the training
    data's ``time_units``."""
    if inputs is not None and target is not None and Path(path).suffix.lower() == ".csv":
        X, y = _named_columns(_read_csv(Path(path)), Path(path), inputs, target, time_units)
        if y is None:
            raise InputDataError(
                f"test file {path} has no column {target!r}, the training data's output; "
                "add it to the test file"
            )
        return X, y
    if Path(path).suffix.lower() == ".mat":
        X, y = _mat_test_split(Path(path))
    else:
        test = load_dataset(path, target=target, test_fraction=0.0)  # an .npz may hold a split
        X, y = (test.X_test, test.y_test) if len(test.y_test) else (test.X_train, test.y_train)
    if dims is not None and X.shape[1] != dims:
        raise InputDataError(
            f"test file {path} has {X.shape[1]} input column(s) but the training data has "
            f"{dims}; pass a test file with the same columns"
        )
    return X, y


def with_test_file(
    dataset: Dataset, source: str, path: str, target: str | None, test_fraction: float | None
) -> Dataset:
    """``dataset`` (loaded whole, no test split) with ``path``'s rows as its test split; a CSV
    test file must hold the training file's output column."""
    import dataclasses

    if test_fraction is not None:
        raise InputDataError(
            f"--test-fraction does not apply with --test {path} (the --data file then trains "
            "whole); drop one of them"
        )
    if len(dataset.y_test):
        raise InputDataError(
            f"{source} has its own test split, and --test {path} gives another; pass one of them"
        )
    named = dataset.feature_names if dataset.target_name is not None else None
    X, y = load_test_file(
        path, target or dataset.target_name, dataset.dims, named, dataset.time_units
    )
    return dataclasses.replace(dataset, X_test=X, y_test=y)


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


def _read_mat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise InputDataError(f"cannot read {path} as a MATLAB file: {exc}") from None


def _from_here(path: Path) -> str:
    """`` (read from FOLDER)`` for a relative path: relative paths, those of a config file
    too, are read from the current folder."""
    return "" if Path(path).is_absolute() else f" (relative paths are read from {Path.cwd()})"


def _mat_test_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``xtest``, ``ytest`` of a .mat file (its training arrays may be absent)."""
    if not path.is_file():
        raise InputDataError(f"test file {path} does not exist{_from_here(path)}; check the path")
    content = _read_mat(path)
    if "xtest" not in content or "ytest" not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise InputDataError(
            f"{path.name} lacks xtest or ytest; a .mat test file needs both "
            f"(found: {', '.join(found) or 'nothing'})"
        )
    return check_X_y(content["xtest"], content["ytest"], what="test", min_points=1)


def _load_mat(path: Path) -> Dataset:
    content = _read_mat(path)
    missing = [k for k in MAT_KEYS if k not in content]
    if missing:
        found = sorted(k for k in content if not k.startswith("__"))
        raise InputDataError(
            f"{path.name} lacks {', '.join(missing)}; a .mat file needs xtrain, ytrain, xtest, "
            f"ytest (found: {', '.join(found) or 'nothing'})"
        )
    return _finish(*(content[k] for k in MAT_KEYS), name=path.stem)


def _split(n: int, test_fraction: float, seed: int, series: bool) -> tuple[np.ndarray, np.ndarray]:
    n_test = round(n * test_fraction)
    if n_test and n - n_test < 2:
        raise InputDataError(f"test fraction {test_fraction} leaves fewer than 2 training points")
    order = np.arange(n) if series else np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n - n_test]), np.sort(order[n - n_test :])


def _load_csv(
    path: Path, target: str | None, test_fraction: float | None, shard_column: str | None, seed: int
) -> Dataset:
    import pandas as pd

    frame = _read_csv(path)
    columns = list(frame.columns)
    target_given = target is not None
    target = target or columns[-1]
    if target not in columns:
        raise InputDataError(
            f"target column {target!r} is not in {path.name}; columns are: {', '.join(columns)}"
        )
    groups = None
    features = [c for c in columns if c != target]
    if shard_column is not None:
        if shard_column not in columns:
            raise InputDataError(
                f"shard column {shard_column!r} is not in {path.name}; columns are: "
                + ", ".join(columns)
            )
        if shard_column == target:
            raise InputDataError(
                f"the shard column {shard_column!r} is also the target column"
                + ("" if target_given else " (the last column, by default)")
                + "; name the output column with --target"
            )
        missing = frame[shard_column].isna() | (frame[shard_column].astype(str).str.strip() == "")
        if missing.any():
            raise InputDataError(
                f"shard column {shard_column!r} has no value in {int(missing.sum())} row(s) "
                f"(first: row {int(np.flatnonzero(missing.to_numpy())[0]) + 2} of {path.name}); "
                "fill them with a site, or drop those rows"
            )
        groups = frame[shard_column].to_numpy()
        features.remove(shard_column)
    if not features:
        raise InputDataError(f"{path.name} has no input columns besides the target {target!r}")
    frame, time_units = _read_dates(frame, path, features)
    bad = [c for c in [*features, target] if not pd.api.types.is_numeric_dtype(frame[c])]
    _refuse_other_dates(frame, path, [c for c in bad if c != target])
    if bad:
        raise InputDataError(
            f"column(s) {', '.join(bad)} of {path.name} are not numeric; encode or drop them"
        )
    X = frame[features].to_numpy(dtype=np.float64)
    y = frame[target].to_numpy(dtype=np.float64)
    # the whole file, before any split; rows numbered as the file's lines
    _check_values(
        np.column_stack([X, y]), f"columns of {path.name}", [*features, target], first_row=2
    )
    X, y, groups = in_time_order(X, y, groups)
    series = is_series(X)
    fraction = 0.2 if test_fraction is None else test_fraction
    train, test = _split(len(y), fraction, seed, series)
    dataset = _finish(
        X[train],
        y[train],
        X[test],
        y[test],
        path.stem,
        features,
        None if groups is None else groups[train],
        series,
    )
    dataset.target_name = target
    dataset.time_units = time_units
    return dataset


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


def _read_dates(frame, path: Path, columns: Sequence[str]):
    """``frame`` with its text ``columns`` of ISO 8601 dates as numbers, each in the calendar
    unit of its spacing (:mod:`distgp.calendar`), and those units by column."""
    import pandas as pd

    from distgp import calendar

    units = {}
    for column in columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            continue
        dates = calendar.parse_dates(frame[column], f"column {column} of {path.name}")
        if dates is not None:
            units[column] = calendar.unit_of(dates)
            frame = frame.assign(**{column: calendar.to_numbers(dates, units[column])})
    return frame, units


def _refuse_other_dates(frame, path: Path, columns: Sequence[str]) -> None:
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


def _repeated_names(path: Path) -> list[str]:
    """Column names the header row of CSV ``path`` holds more than once (pandas would read
    ``x,x`` as ``x`` and ``x.1``)."""
    import csv
    from collections import Counter

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = [name.strip() for name in next(csv.reader(f), [])]
    return [name for name, count in Counter(header).items() if count > 1]


def _read_csv(path: Path):
    """``path`` as a pandas frame with string column names; one-line errors for an unreadable,
    empty or header-less file."""
    import pandas as pd

    if not path.is_file():
        raise InputDataError(f"data file {path} does not exist; check the path")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path} is empty; a CSV needs a header row and data rows") from None
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
    if len(columns) == 1 and ";" in columns[0]:
        raise InputDataError(
            f"{path} has one column named {columns[0]!r}; distgp reads comma-separated files: "
            "convert the semicolons to commas"
        )
    unnamed = [i for i, c in enumerate(columns) if re.fullmatch(r"Unnamed: \d+", c)]
    if unnamed:  # pandas' name for an empty header field
        raise InputDataError(
            f"column {unnamed[0] + 1} of {path.name} has no name in the header (pandas writes "
            "its row index so: DataFrame.to_csv(path, index=False) leaves it out); drop it, or "
            "name it to use it"
        )
    twice = _repeated_names(path)
    if twice:
        raise InputDataError(
            f"{path} names column(s) {', '.join(map(repr, twice))} more than once in its "
            "header; give each column its own name"
        )
    return frame


def _named_columns(
    frame,
    path: Path,
    inputs: Sequence[str],
    target: str | None,
    time_units: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The columns ``inputs`` of a CSV frame, in that order, and its ``target`` column when it
    has one (``None`` otherwise); other columns are ignored. The columns of ``time_units`` hold
    dates, read in those units."""
    columns = list(frame.columns)
    missing = [c for c in inputs if c not in columns]
    if missing:
        raise InputDataError(
            f"{path.name} lacks the input column(s) {', '.join(map(repr, missing))} of the "
            f"training data; its columns are: {', '.join(columns)}"
        )
    frame = _dates_in_units(frame, path, inputs, time_units or {})
    X = check_X(frame[list(inputs)].to_numpy(), what=f"inputs of {path.name}")
    return X, _known_outputs(frame, path, target)


def _known_outputs(frame, path: Path, target: str | None) -> np.ndarray | None:
    """The ``target`` column of a prediction file, or ``None`` where it has none or it is
    empty (the outputs of future rows are not known yet)."""
    if target is None or target not in frame.columns or frame[target].isna().all():
        return None
    blank = frame[target].isna().to_numpy()
    if blank.any():
        raise InputDataError(
            f"column {target} of {path.name} is empty in {int(blank.sum())} of {len(blank)} "
            f"row(s) (first: row {int(np.flatnonzero(blank)[0]) + 2}): predict the rows with "
            "outputs and those without in two files, or drop the column"
        )
    return _as_float_vector(frame[target].to_numpy(), f"column {target} of {path.name}")


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


def _load_npz(path: Path, test_fraction: float | None, seed: int) -> Dataset:
    try:
        arrays = read_npz(path)
    except ValueError as exc:
        raise InputDataError(
            f"cannot read {path} ({exc}); pass an .npz written by numpy.savez"
        ) from None
    if all(k in arrays for k in MAT_KEYS):
        return _finish(*(arrays[k] for k in MAT_KEYS), name=path.stem)
    if "X" in arrays and "y" in arrays:
        X, y = check_X_y(arrays["X"], arrays["y"])
        X, y, _ = in_time_order(X, y)
        series = is_series(X)
        fraction = 0.2 if test_fraction is None else test_fraction
        train, test = _split(len(y), fraction, seed, series)
        return _finish(X[train], y[train], X[test], y[test], path.stem, series=series)
    raise InputDataError(
        f"{path.name} holds {', '.join(sorted(arrays)) or 'nothing'}; an .npz needs arrays X "
        "and y, "
        "or xtrain, ytrain, xtest, ytest"
    )


def _load_co2(test_fraction: float | None) -> Dataset:
    """Monthly mean Mauna Loa CO2 (ppm) 1958-2001, indexed by month; test = last 10%."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from statsmodels.datasets import co2

        weekly = co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate().to_numpy()
    x = np.arange(1.0, len(monthly) + 1.0)[:, None]
    fraction = 0.1 if test_fraction is None else test_fraction
    train, test = _split(len(monthly), fraction, 0, series=True)
    data = _finish(x[train], monthly[train], x[test], monthly[test], "co2", ["month"], series=True)
    data.target_name = "co2"  # statsmodels' name: prediction files are matched by column name
    return data


# ----------------------------------------------------------------------------------------------
# Standardisation from per-shard summaries (no raw data leaves a shard)


@dataclass(frozen=True)
class ShardSummary:
    """Aggregate statistics of one shard: all an agent reveals about its data before learning.

    Only counts, means and sums of squared deviations (merged with Chan et al.'s parallel
    formulas, stable for data far from zero): no data point, not even an extreme one, can be read
    off a summary.

    Attributes:
        n: number of points.
        x_mean, x_m2: per-input-dimension means and sums of squared deviations (P).
        y_mean, y_m2: mean and sum of squared deviations of the outputs.
    """

    n: int
    x_mean: np.ndarray
    x_m2: np.ndarray
    y_mean: float
    y_m2: float

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray) -> ShardSummary:
        x_mean = X.mean(0)
        y_mean = float(y.mean())
        return cls(
            n=int(X.shape[0]),
            x_mean=x_mean,
            x_m2=((X - x_mean) ** 2).sum(0),
            y_mean=y_mean,
            y_m2=float(((y - y_mean) ** 2).sum()),
        )

    @property
    def dims(self) -> int:
        return int(self.x_mean.shape[0])

    def to_wire(self) -> dict:
        return {
            "n": self.n,
            "x_mean": self.x_mean,
            "x_m2": self.x_m2,
            "y_mean": self.y_mean,
            "y_m2": self.y_m2,
        }

    @classmethod
    def from_wire(cls, fields: dict) -> ShardSummary:
        return cls(
            int(fields["n"]),
            np.asarray(fields["x_mean"], float),
            np.asarray(fields["x_m2"], float),
            float(fields["y_mean"]),
            float(fields["y_m2"]),
        )

    @classmethod
    def merge(cls, parts: list[ShardSummary]) -> ShardSummary:
        total = parts[0]
        for part in parts[1:]:
            n = total.n + part.n
            dx = part.x_mean - total.x_mean
            dy = part.y_mean - total.y_mean
            total = cls(
                n=n,
                x_mean=total.x_mean + dx * part.n / n,
                x_m2=total.x_m2 + part.x_m2 + dx**2 * total.n * part.n / n,
                y_mean=total.y_mean + dy * part.n / n,
                y_m2=total.y_m2 + part.y_m2 + dy**2 * total.n * part.n / n,
            )
        return total


def has_spread(y: np.ndarray) -> bool:
    """Whether outputs ``y`` (``n``) vary beyond rounding: a model can be learned from them."""
    y = np.asarray(y, float)
    return bool(len(y)) and bool(_real_spread(np.std(y), np.mean(y)))


def _real_spread(scale, mean):
    """Whether spreads ``scale`` exceed rounding at values around ``mean`` (elementwise)."""
    return (scale > 0) & (scale > _RELATIVE_TINY * np.abs(mean))


def varying_columns(s: ShardSummary) -> np.ndarray:
    """``P`` booleans: whether each input column varies beyond rounding (a constant column
    carries no signal)."""
    return _real_spread(np.sqrt(np.asarray(s.x_m2, float) / s.n), np.asarray(s.x_mean, float))


@dataclass(frozen=True)
class Scaler:
    """Affine maps between raw and standardised units: ``x_std = (x - x_mean) / x_scale``."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def from_summary(cls, s: ShardSummary, standardize_inputs: bool = True) -> Scaler:
        x_mean = np.asarray(s.x_mean, float)
        # A column that does not vary beyond rounding keeps unit scale (it carries no signal).
        x_scale = np.where(varying_columns(s), np.sqrt(np.asarray(s.x_m2, float) / s.n), 1.0)
        if not standardize_inputs:
            x_mean, x_scale = np.zeros_like(x_mean), np.ones_like(x_scale)
        y_scale = float(np.sqrt(s.y_m2 / s.n))
        if not bool(_real_spread(y_scale, s.y_mean)):
            if y_scale > 0 and abs(s.y_mean) >= 1.0:  # a spread lost against a large offset
                raise InputDataError(
                    f"training outputs y vary too little (std {y_scale:.3g}) against their "
                    f"mean ({s.y_mean:.3g}) to be told from rounding; subtract an offset "
                    "(e.g. their mean) first"
                )
            raise InputDataError(
                "training outputs y have (numerically) zero variance: constant (nothing to "
                f"learn), or so small (mean {s.y_mean:.3g}) that their squares underflow "
                "float64; rescale them (e.g. multiply by a power of 10)"
            )
        return cls(x_mean, x_scale, float(s.y_mean), y_scale)

    def x(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_mean) / self.x_scale

    def y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_mean) / self.y_scale

    def y_back(self, y_std: np.ndarray) -> np.ndarray:
        return y_std * self.y_scale + self.y_mean

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "x_mean": self.x_mean,
            "x_scale": self.x_scale,
            "y_mean": np.asarray(self.y_mean),
            "y_scale": np.asarray(self.y_scale),
        }

    @classmethod
    def from_dict(cls, d) -> Scaler:
        return cls(
            np.asarray(d["x_mean"], float),
            np.asarray(d["x_scale"], float),
            float(d["y_mean"]),
            float(d["y_scale"]),
        )


# ----------------------------------------------------------------------------------------------
# Sharding

SHARD_METHODS = ("random", "contiguous")


def shard_indices(
    n: int, agents: int, method: str = "random", groups: np.ndarray | None = None, seed: int = 0
) -> list[np.ndarray]:
    """Split ``n`` training points over ``agents`` shards; each shard gets at least 2 points.

    Args:
        method: ``random`` (default; a seeded permutation), ``contiguous`` (consecutive blocks, as
            the paper) or ``column`` (one shard per distinct value of ``groups``, e.g. a site id;
            with more sites than agents, sites are dealt to agents round-robin).
    """
    if agents < 1:
        raise InputDataError(f"agents must be at least 1, got {agents}")
    if method == "column":
        if groups is None:
            raise InputDataError("sharding by column needs a CSV with that column")
        labels = site_labels(groups)
        if len(labels) < agents:
            raise InputDataError(
                f"the shard column has {len(labels)} distinct value(s) but {agents} agents were "
                f"asked for; use at most {len(labels)} agents"
            )
        shards = [np.flatnonzero(np.isin(groups, labels[a::agents])) for a in range(agents)]
    elif method in SHARD_METHODS:
        if 2 * agents > n:
            raise InputDataError(
                f"{agents} agents need at least {2 * agents} training points (2 each), "
                f"but there are {n}; use at most {n // 2} agents"
            )
        order = (
            np.arange(n) if method == "contiguous" else np.random.default_rng(seed).permutation(n)
        )
        shards = [np.sort(part) for part in np.array_split(order, agents)]
    else:
        raise InputDataError(
            f"unknown shard method {method!r}; use random, contiguous or column:NAME"
        )
    small = [i for i, s in enumerate(shards) if len(s) < 2]
    if small and method == "column":
        raise InputDataError(
            f"shard of agent {small[0]} (site {agent_sites(groups, agents, small[0])}) holds "
            "fewer than 2 points; use fewer agents (sites are pooled), or drop that site's rows"
        )
    if small:
        raise InputDataError(f"shard(s) {small} hold fewer than 2 points; use fewer agents")
    return shards


def site_labels(groups: np.ndarray) -> list:
    """The distinct values of a shard column, in order of first appearance (agent ``a`` of
    ``N`` gets sites ``a, a + N, ...``)."""
    return list(dict.fromkeys(np.asarray(groups).tolist()))


def agent_sites(groups: np.ndarray, agents: int, agent: int) -> str:
    """The sites dealt to ``agent`` of ``agents`` (:func:`shard_indices`), for messages."""
    return ", ".join(map(str, site_labels(groups)[agent::agents]))


def is_csv_source(source: str) -> bool:
    """Whether a data source is a CSV file (named columns), whatever the suffix's case."""
    return Path(source).suffix.lower() == ".csv" and not source.startswith("builtin:")


def load_prediction_inputs(
    source: str,
    dims: int,
    target: str | None = None,
    inputs: Sequence[str] | None = None,
    require_target: bool = False,
    time_units: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Inputs (and outputs when known) to predict at, checked against the model's ``dims``.

    Files with a stored test split give that split; a CSV gives all rows. A CSV is matched by
    name to the model's ``inputs`` (the columns of the data it was fitted on, when they had
    names: other columns, such as a shard column, are ignored) and its ``target`` column is
    taken as the known outputs. A model without names (fitted on arrays, .mat or .npz data)
    matches the columns ``x0 .. x{dims-1}`` that ``distgp predict`` writes, with ``y`` (or the
    named ``target``) as the outputs, where the file has them all; otherwise the columns are
    taken in order, and the target is the named column or an extra last one. A built-in
    dataset must have the model's ``inputs``. ``require_target``: a CSV without the ``target``
    column is an error (a column the user named), not a file of inputs only. The columns of
    ``time_units`` hold dates, read in those units.
    """
    if is_csv_source(source):
        path = Path(source)
        frame = _read_csv(path)
        if require_target and target not in frame.columns:
            raise InputDataError(
                f"target column {target!r} is not in {path.name}; its columns are: "
                f"{', '.join(map(str, frame.columns))}"
            )
        if inputs is not None:
            if target is not None and target in inputs:
                raise InputDataError(
                    f"target column {target!r} is one of the model's inputs "
                    f"({', '.join(map(str, inputs))}); name the output column"
                )
            X, y = _named_columns(frame, path, inputs, target, time_units)
            return X, y, list(inputs)
        columns = list(frame.columns)
        unnamed = default_input_names(dims)  # what distgp writes for a model without names
        if set(unnamed) <= set(columns):
            X, y = _named_columns(frame, path, unnamed, target or "y")
            return X, y, unnamed
        y = None
        if target is not None or len(columns) == dims + 1:
            name = target or columns[-1]
            if name not in columns:
                raise InputDataError(f"target column {name!r} is not in {path.name}")
            y = _known_outputs(frame, path, name)
            columns.remove(name)
        X = check_X(frame[columns].to_numpy(), dims=dims, what=f"inputs of {path.name}")
        return X, y, columns
    dataset = load_dataset(source, test_fraction=None)
    if (
        inputs is not None
        and dataset.target_name is not None
        and (list(inputs) != dataset.feature_names)
    ):
        raise InputDataError(
            f"{source} has the input(s) {', '.join(dataset.feature_names)}, the model "
            f"{', '.join(map(str, inputs))}; predict at a CSV file with those columns"
        )
    if len(dataset.y_test):
        X, y = dataset.X_test, dataset.y_test
    else:
        X, y = dataset.X_train, dataset.y_train
    return check_X(X, dims=dims, what=f"inputs of {source}"), y, dataset.feature_names
