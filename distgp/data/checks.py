"""Validation of data at the entry: shapes, finite values, values whose squares overflow,
inputs that never vary and outputs without spread."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from distgp.exceptions import InputDataError

MAX_ABS_VALUE = 1e150  # squares of larger values overflow float64 (max ~1.8e308)
# Input columns whose spread is below this fraction of their mean count as constant (about
# 4,500 float64 ulps: kernels resolve inputs far more finely than outputs need resolving).
RELATIVE_TINY = 1e-12
# Outputs whose standard deviation is below this fraction of |mean| are rounding noise: 100
# float64 eps. Above it the spread spans at least 100 ulps (an ulp at |mean| is at most
# eps * |mean|), so rounding each y adds noise of std at most ulp / sqrt(12) <= 0.003 std(y), a
# variance below 1e-5 var(y), 1000 times under the default noise floor (1e-2 var(y)). The fit
# subtracts the mean (per shard, merged with Chan's formulas), so a large offset costs nothing
# more: y = 1e12 + sin x (std 0.7, 6,000 ulps) fits as sin x does.
OUTPUT_RELATIVE_TINY = 100 * float(np.finfo(np.float64).eps)  # 2.2e-14
MIN_SPREAD = 1e-150  # squares of smaller spreads underflow float64 (min normal ~2.2e-308)


def check_X_y(
    X, y, *, what: str = "training", min_points: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs and outputs once, at the entry; return float64 arrays ``(n x P, n)``."""
    X = _as_float_matrix(X, f"{what} inputs X")
    y = as_float_vector(y, f"{what} outputs y")
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


def check_varying_inputs(X: np.ndarray, names: Sequence[str] | None = None) -> None:
    """Refuse training inputs that never vary: a kernel of constant inputs is constant, and
    the model could only learn the mean (some constant columns among varying ones are fine).
    Columns that vary only at rounding level (a spread below ``1e-12`` of their values, as in
    :func:`distgp.data.scaling.varying_columns`) count as constant. A column whose spread is
    so small (below ``1e-150``) that its square underflows float64 is refused by its ``names``
    entry (``x0 ..`` without names): its variance would read 0, and it would be dropped."""
    if len(X) < 2:
        return
    spread = np.ptp(X, axis=0)
    tiny = np.flatnonzero((spread > 0) & (spread < MIN_SPREAD))
    if tiny.size:
        p = int(tiny[0])
        name = names[p] if names is not None else f"x{p}"
        power = -math.floor(math.log10(spread[p]))
        raise InputDataError(
            f"training input column {name} varies by only {spread[p]:.3g}, so little that "
            f"squares of its spread underflow float64; multiply it by a power of 10 (e.g. "
            f"1e{power})"
        )
    if np.any(real_spread(np.std(X, axis=0), np.mean(X, axis=0))):
        return
    if np.any(spread > 0):
        raise InputDataError(
            "training inputs X vary only at rounding level in every column (a spread below "
            f"{RELATIVE_TINY:g} of their values); subtract an offset, such as their first "
            "value, from them"
        )
    raise InputDataError(
        "training inputs X take a single value in every column; there is nothing to learn "
        "from them: add an input that varies"
    )


def check_y(y, n: int, what: str = "outputs y") -> np.ndarray:
    """Validate ``n`` known outputs (a vector, or an ``n x 1`` column) against predictions."""
    v = as_float_vector(y, what)
    if len(v) != n:
        raise InputDataError(f"{what} have {len(v)} values for {n} predictions")
    return v


def check_X(
    X,
    *,
    dims: int | None = None,
    what: str = "inputs X",
    columns: list[str] | None = None,
    first_row: int = 1,
) -> np.ndarray:
    """Validate prediction inputs; ``dims`` is the number of features seen in ``fit``. Bad
    values are named by row (the first numbered ``first_row``) and, given ``columns``, column,
    as in :func:`check_values`."""
    X = _as_float_matrix(X, what, columns, first_row)
    if dims is not None and X.shape[1] != dims:
        raise InputDataError(
            f"{what} have {X.shape[1]} column(s) but the model was fitted on {dims} input(s); "
            f"give {dims} input columns"
        )
    return X


def _as_float_matrix(
    X, what: str, columns: list[str] | None = None, first_row: int = 1
) -> np.ndarray:
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
    check_values(A, what, columns, first_row)
    return A


def _refuse_complex(values, what: str) -> None:
    """Complex numbers would lose their imaginary part in the float64 cast, silently."""
    if np.iscomplexobj(values):
        raise InputDataError(
            f"{what} are complex numbers; pass real values (e.g. their real part or modulus)"
        )


def check_values(
    values: np.ndarray, what: str, columns: list[str] | None = None, first_row: int = 1
) -> None:
    """Refuse missing (NaN: an empty cell of a CSV file reads so) or infinite values, and
    values whose squares overflow float64 (variances and kernels would be inf). The error names
    the first bad value's row (the first row numbered ``first_row``: 2 for the line of a CSV
    file under its header) and, given ``columns``, its column; missing values are named before
    infinite ones."""
    for bad, kind, advice in (
        (np.isnan(values), "missing value(s) (empty or NaN; ", "fill them in or remove the rows"),
        (np.isinf(values), "infinite value(s) (", "replace them or remove the rows"),
    ):
        if bad.any():
            where = np.argwhere(bad.reshape(len(values), -1))[0]
            at = f"row {int(where[0]) + first_row}"
            if columns is not None:
                at += f", column {columns[int(where[1])]}"
            raise InputDataError(f"{what}: {int(bad.sum())} {kind}first: {at}); {advice}")
    largest = float(np.abs(values).max())
    if largest > MAX_ABS_VALUE:
        raise InputDataError(
            f"{what} reach {largest:.3g}, beyond {MAX_ABS_VALUE:.0e} where squares overflow "
            "float64; rescale them (e.g. divide by a power of 10)"
        )


def as_float_vector(y, what: str, first_row: int = 1) -> np.ndarray:
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
    check_values(v, what, first_row=first_row)
    return v


def has_spread(y: np.ndarray) -> bool:
    """Whether outputs ``y`` (``n``) vary beyond rounding: a model can be learned from them."""
    y = np.asarray(y, float)
    return bool(len(y)) and bool(real_spread(np.std(y), np.mean(y), OUTPUT_RELATIVE_TINY))


def real_spread(scale, mean, tiny: float = RELATIVE_TINY):
    """Whether spreads ``scale`` exceed rounding at values around ``mean`` (elementwise): a
    fraction ``tiny`` of ``|mean|`` (:data:`RELATIVE_TINY` for inputs,
    :data:`OUTPUT_RELATIVE_TINY` for outputs)."""
    return (scale > 0) & (scale > tiny * np.abs(mean))
