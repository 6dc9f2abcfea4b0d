"""Loading ``--data`` sources into a :class:`Dataset`, and test and prediction files against a
model's columns."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distgp.data.checks import (
    check_values,
    check_varying_inputs,
    check_X,
    check_X_y,
    check_y,
)
from distgp.data.csvfiles import (
    PREDICT_TEXT_ADVICE,
    known_outputs,
    named_columns,
    read_as_numbers,
    read_csv_frame,
    read_dates,
    refuse_other_dates,
    refuse_text,
)
from distgp.data.series import in_time_order, is_series
from distgp.exceptions import ConfigError, InputDataError
from distgp.io import read_npz

MAT_KEYS = ("xtrain", "ytrain", "xtest", "ytest")
BUILTIN_COLUMNS = {"co2": ("month", "co2")}  # each built-in's input and output columns
BUILTINS = tuple(BUILTIN_COLUMNS)


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
        utc_inputs: those of them whose times gave UTC offsets (read, and written back, in UTC).
        own_split: the test split is the file's own (a .mat file, an .npz with ``xtest`` and
            ``ytest``), not one made by ``test_fraction``.
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
    utc_inputs: list[str] = field(default_factory=list)
    own_split: bool = False

    @property
    def dims(self) -> int:
        return int(self.X_train.shape[1])


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    test_fraction: float | None = None,
    shard_column: str | None = None,
    seed: int = 0,
    whole: bool = True,
) -> Dataset:
    """Load ``source`` (a path or ``builtin:NAME``) and validate it.

    ``whole``: ``source`` is a whole training set, refused when its outputs or inputs never
    vary; ``False`` for one agent's shard file, which only needs to be readable, numeric,
    finite and large enough: a shard whose outputs or inputs are constant is fine beside
    others that vary, so those checks apply to the merged summaries of every shard (in the
    driver, :class:`~distgp.data.Scaler` and :func:`~distgp.data.refuse_flat_inputs`)."""
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
    path = _existing_file(source)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        if shard_column is not None:
            raise InputDataError(".mat files have no named columns; shard by column needs a CSV")
        return _load_mat(path, whole)
    if suffix == ".csv":
        return _load_csv(path, target, test_fraction, shard_column, seed, whole)
    if suffix == ".npz":
        if shard_column is not None:
            raise InputDataError(".npz files have no named columns; shard by column needs a CSV")
        return _load_npz(path, test_fraction, seed, whole)
    raise InputDataError(
        f"data file {source} has an unsupported type {suffix or '(none)'}; "
        "use .mat, .csv, .npz or builtin:co2"
    )


def _existing_file(source: str) -> Path:
    """``source`` as a path; refused unless it names a file."""
    path = Path(source)
    if not path.exists():
        raise InputDataError(f"data file {source} does not exist{_from_here(path)}; check the path")
    if not path.is_file():
        raise InputDataError(f"data source {source} is not a file")
    return path


def _finish(
    X_train,
    y_train,
    X_test,
    y_test,
    name,
    feature_names=None,
    groups=None,
    series=None,
    own_split: bool = False,
    whole: bool = True,
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
    if whole and np.ptp(y_train) == 0:
        raise InputDataError(
            "training outputs y have a single distinct value; there is nothing to learn"
        )
    names = list(feature_names) if feature_names else default_input_names(X_train.shape[1])
    if whole:
        check_varying_inputs(X_train, names)
    if series is None:
        series = is_series(X_train)
    return Dataset(
        X_train, y_train, X_test, y_test, name, names, groups, bool(series), own_split=own_split
    )


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
        frame = read_csv_frame(Path(path))
        X, y = named_columns(frame, Path(path), inputs, target, time_units)
        if y is None and target in frame.columns:
            raise InputDataError(
                f"column {target!r} of test file {path} is empty; a test file needs known "
                "outputs: fill them in, or predict at its inputs with distgp predict"
            )
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


def _load_mat(path: Path, whole: bool = True) -> Dataset:
    content = _read_mat(path)
    missing = [k for k in MAT_KEYS if k not in content]
    if missing:
        found = sorted(k for k in content if not k.startswith("__"))
        raise InputDataError(
            f"{path.name} lacks {', '.join(missing)}; a .mat file needs xtrain, ytrain, xtest, "
            f"ytest (found: {', '.join(found) or 'nothing'})"
        )
    return _finish(*(content[k] for k in MAT_KEYS), name=path.stem, own_split=True, whole=whole)


def _split(n: int, test_fraction: float, seed: int, series: bool) -> tuple[np.ndarray, np.ndarray]:
    n_test = round(n * test_fraction)
    if n_test and n - n_test < 2:
        largest = math.floor(100 * (n - 2) / n) / 100  # two training points, in hundredths
        raise InputDataError(
            f"test fraction {test_fraction} leaves fewer than 2 of {n} points to train on; give "
            f"a smaller --test-fraction (at most {largest:g} here), or a test file with --test "
            "FILE"
        )
    order = np.arange(n) if series else np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n - n_test]), np.sort(order[n - n_test :])


def _holds_dates(values) -> bool:
    """Whether a text column is one of ISO 8601 dates (a bad value or two included); a column
    of numbers with a bad value (``2019, 2020, NA?``: ISO 8601 reads ``2019`` as a year) is
    not."""
    from distgp import calendar

    if read_as_numbers(values)[2]:
        return False
    try:
        return calendar.parse_dates(values, "") is not None
    except InputDataError:  # a date column with an empty or impossible value
        return True


def _load_csv(
    path: Path,
    target: str | None,
    test_fraction: float | None,
    shard_column: str | None,
    seed: int,
    whole: bool = True,
) -> Dataset:
    import pandas as pd

    frame = read_csv_frame(path)
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
    frame, time_units, utc_inputs = read_dates(frame, path, features)
    bad = [c for c in [*features, target] if not pd.api.types.is_numeric_dtype(frame[c])]
    refuse_other_dates(frame, path, [c for c in bad if c != target])
    if target in bad and _holds_dates(frame[target]):
        raise InputDataError(
            f"column {target} of {path.name}"
            + ("" if target_given else " (the output, by default: the last column)")
            + " holds dates, which distgp reads as a time axis (an input), not an output; name "
            "the output column with --target"
        )
    refuse_text(frame, path, bad)
    X = frame[features].to_numpy(dtype=np.float64)
    y = frame[target].to_numpy(dtype=np.float64)
    # the whole file, before any split; rows numbered as the file's lines
    check_values(
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
        whole=whole,
    )
    dataset.target_name = target
    dataset.time_units = time_units
    dataset.utc_inputs = utc_inputs
    return dataset


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except ValueError as exc:
        raise InputDataError(
            f"cannot read {path} ({exc}); pass an .npz written by numpy.savez"
        ) from None


def _load_npz(path: Path, test_fraction: float | None, seed: int, whole: bool = True) -> Dataset:
    arrays = _read_npz(path)
    if all(k in arrays for k in MAT_KEYS):
        return _finish(*(arrays[k] for k in MAT_KEYS), name=path.stem, own_split=True, whole=whole)
    if "X" in arrays and "y" in arrays:
        X, y = check_X_y(arrays["X"], arrays["y"])
        X, y, _ = in_time_order(X, y)
        series = is_series(X)
        fraction = 0.2 if test_fraction is None else test_fraction
        train, test = _split(len(y), fraction, seed, series)
        return _finish(X[train], y[train], X[test], y[test], path.stem, series=series, whole=whole)
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
    utc: set[str] | None = None,
    scored: list[str] | None = None,
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
    ``time_units`` hold dates, read in those units; those whose times give UTC offsets are
    added to ``utc`` when given (to be written back in UTC). The name of the CSV column taken
    as the known outputs is appended to ``scored`` when given.
    """
    if is_csv_source(source):
        path = Path(source)
        frame = read_csv_frame(path)
        if utc is not None:
            from distgp import calendar

            dated = [c for c in time_units or {} if c in frame.columns]
            utc.update(c for c in dated if calendar.has_offsets(frame[c]))
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
            X, y = named_columns(frame, path, inputs, target, time_units, unknown_rows=True)
            _note_scored(scored, y, target)
            return X, y, list(inputs)
        columns = list(frame.columns)
        unnamed = default_input_names(dims)  # what distgp writes for a model without names
        if set(unnamed) <= set(columns):
            X, y = named_columns(frame, path, unnamed, target or "y", unknown_rows=True)
            _note_scored(scored, y, target or "y")
            return X, y, unnamed
        y = None
        if target is not None or len(columns) == dims + 1:
            name = target or columns[-1]
            if name not in columns:
                raise InputDataError(f"target column {name!r} is not in {path.name}")
            y = known_outputs(frame, path, name, unknown_rows=True)
            _note_scored(scored, y, name)
            columns.remove(name)
        if len(columns) != dims:
            found = (
                f"{len(columns)} input column(s)" if y is not None else f"{len(columns)} columns"
            )
            expected = ", ".join(unnamed) if dims <= 3 else f"x0, ..., x{dims - 1}"
            raise InputDataError(
                f"{path.name} has {found} ({', '.join(columns)}), but the model was fitted on "
                f"{dims} unnamed input(s) (arrays, .mat or .npz data): give a file with the "
                f"columns {expected} (and y to score), or with {dims} input columns in the "
                "model's order (then the output)"
            )
        refuse_text(frame, path, columns, PREDICT_TEXT_ADVICE)
        X = check_X(
            frame[columns].to_numpy(),
            dims=dims,
            what=f"inputs of {path.name}",
            columns=columns,
            first_row=2,
        )
        return X, y, columns
    if require_target:
        check_fixed_target(source, str(target), "--target")
    if not source.startswith("builtin:") and Path(source).suffix.lower() in (".mat", ".npz"):
        X, y = _prediction_arrays(_existing_file(source), dims)
        return X, y, default_input_names(dims)
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


def _note_scored(scored: list[str] | None, y: np.ndarray | None, name: str) -> None:
    if scored is not None and y is not None:
        scored.append(name)


def check_fixed_target(source: str, target: str, named_by: str) -> None:
    """Refuse an output column ``target`` (set by ``named_by``: ``--target``, ``data.target``)
    for data whose output is fixed (.mat, .npz, a built-in), unless it names a built-in's own
    output column; for a CSV, nothing to check here."""
    if is_csv_source(source):
        return
    builtin = source.partition(":")[2].lower() if source.startswith("builtin:") else None
    if builtin is not None and builtin not in BUILTIN_COLUMNS:
        return  # loading it names the built-ins
    if builtin is not None:
        columns = BUILTIN_COLUMNS[builtin]
        if target == columns[-1]:
            return
        raise ConfigError(
            f"{source}'s columns are {', '.join(columns)} and its output is fixed "
            f"({columns[-1]}); set {named_by} to {columns[-1]} or drop it",
            setting="data.target",
        )
    raise ConfigError(
        f"{named_by} names a CSV column, but {Path(source).name} has none: its outputs are its "
        f"arrays; drop {named_by}",
        setting="data.target",
    )


def _prediction_arrays(path: Path, dims: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The inputs to predict at in a .mat or .npz file, checked against the model's ``dims``,
    and their outputs where the file holds them: its test split ``xtest`` (``ytest``) when it
    has one, otherwise every row of an .npz's ``X`` (``y``). Training arrays are not read."""
    npz = path.suffix.lower() == ".npz"
    arrays = _read_npz(path) if npz else _read_mat(path)
    if "xtest" in arrays:
        x_key, y_key = "xtest", "ytest"
    elif npz and "X" in arrays:
        x_key, y_key = "X", "y"
    else:
        found = sorted(k for k in arrays if not k.startswith("__"))
        raise InputDataError(
            f"{path.name} holds {', '.join(found) or 'nothing'}; predict reads the inputs "
            + ("xtest or X of an .npz" if npz else "xtest of a .mat file")
            + " (their outputs, ytest or y, are optional)"
        )
    X = check_X(arrays[x_key], dims=dims, what=f"inputs {x_key} of {path.name}")
    if y_key not in arrays:
        return X, None
    return X, check_y(arrays[y_key], len(X), f"outputs {y_key} of {path.name}")
