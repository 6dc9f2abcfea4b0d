"""Search spaces: what the bandit's arms are and how an arm maps back to parameter values.

The bandit works on a finite arm set, an ``A x D`` matrix of **encoded** points in ``[0, 1]^D``:

* a float parameter becomes one column, ``(v - low) / (high - low)``, or the same on ``log v``
  when ``log=True``;
* an int parameter likewise (arms sit on integer values);
* a categorical parameter becomes one-hot columns (two distinct choices are ``sqrt(2)`` apart).

:class:`ParamSpace` draws ``A`` arms from a scrambled Sobol sequence (or uniformly at random),
seeded; an all-discrete space with at most ``A`` points is enumerated instead. :class:`FiniteSpace`
takes a candidate set given by the user and scales each column to ``[0, 1]``.
Validation errors are :class:`~distgp.exceptions.ConfigError` with one line naming the parameter.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from distgp.bandit.nystrom import check_arm_memory
from distgp.exceptions import ConfigError, InputDataError

ARM_METHODS = ("sobol", "random")
_MATCH_TOL = 1e-9  # encoded distance below which a point is the same arm
SOBOL_MAX_DIMS = 21201  # scipy's Sobol direction numbers cover this many dimensions
_CHOICE_TYPES = (str, int, float, bool, type(None))  # JSON scalars
LOCAL_SCALE_STEPS = np.array([1.0, 0.25, 0.0625])  # step sizes of local arms, times the scale


@dataclass(frozen=True)
class FloatParam:
    """A real parameter in ``[low, high]``, on a linear or log scale."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self.name, self.low, self.high, self.log)

    @property
    def width(self) -> int:
        return 1

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)

    def to_unit(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, float)
        if self.log:
            return (np.log(v) - np.log(self.low)) / (np.log(self.high) - np.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def encode(self, value: Any) -> np.ndarray:
        v = _number(self.name, value)
        if not self.low <= v <= self.high:
            raise InputDataError(f"{self.name}={v} lies outside [{self.low}, {self.high}]")
        return np.atleast_1d(self.to_unit(v))

    def decode(self, cols: np.ndarray) -> float:
        return float(np.clip(self.from_unit(float(cols[0])), self.low, self.high))


@dataclass(frozen=True)
class IntParam(FloatParam):
    """An integer parameter in ``[low, high]`` (both included), on a linear or log scale."""

    def __post_init__(self) -> None:
        for bound in (self.low, self.high):
            if not (isinstance(bound, (int, float, np.number)) and float(bound).is_integer()):
                raise ConfigError(
                    f"integer parameter {self.name} needs integer bounds, got low={self.low!r}, "
                    f"high={self.high!r}; round them or make it a float parameter"
                )
        super().__post_init__()

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(super().from_unit(u)), self.low, self.high)

    def encode(self, value: Any) -> np.ndarray:
        v = _number(self.name, value)
        if v != round(v):
            raise InputDataError(f"{self.name}={value!r} is not an integer")
        return super().encode(v)

    def decode(self, cols: np.ndarray) -> int:  # type: ignore[override]
        return round(super().decode(cols))

    def size(self) -> int:
        return int(self.high) - int(self.low) + 1


@dataclass(frozen=True)
class CategoricalParam:
    """A choice among ``choices`` (any hashable values), one-hot encoded."""

    name: str
    choices: tuple

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ConfigError(f"categorical parameter {self.name} needs at least one choice")
        for k, choice in enumerate(self.choices):
            if isinstance(choice, float) and math.isnan(choice):
                raise ConfigError(f"categorical parameter {self.name}: a choice cannot be NaN")
            twins = [c for c in self.choices[:k] if c == choice]
            if twins:
                raise ConfigError(
                    f"categorical parameter {self.name}: choices {twins[0]!r} and {choice!r} are "
                    "equal (as 1, 1.0 and true are); keep one of them"
                )

    @property
    def width(self) -> int:
        return len(self.choices)

    def one_hot(self, k: np.ndarray) -> np.ndarray:
        return np.eye(self.width)[np.asarray(k, int)]

    def encode(self, value: Any) -> np.ndarray:
        for k, choice in enumerate(self.choices):
            if choice == value:
                return self.one_hot(k)
        raise InputDataError(f"{self.name}={value!r} is not one of {list(self.choices)}")

    def decode(self, cols: np.ndarray) -> Any:
        return self.choices[int(np.argmax(cols))]

    def size(self) -> int:
        return len(self.choices)


Param = FloatParam | IntParam | CategoricalParam


def _describe(p: Param) -> dict[str, Any]:
    if isinstance(p, CategoricalParam):
        return {"name": p.name, "type": "categorical", "choices": list(p.choices)}
    kind = "int" if isinstance(p, IntParam) else "float"
    return {"name": p.name, "type": kind, "low": float(p.low), "high": float(p.high), "log": p.log}


def describe_param(d: dict[str, Any]) -> str:
    """One line for a parameter of :meth:`Space.describe`: ``float [0.0, 1.0]``."""
    if d["type"] == "categorical":
        return f"choices {d['choices']}"
    return f"{d['type']} [{d['low']}, {d['high']}]" + (" log" if d["log"] else "")


def _check_range(name: str, low: float, high: float, log: bool) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"parameter {name}: bounds must be finite, got [{low}, {high}]")
    if not math.isfinite(high - low):
        raise ConfigError(
            f"parameter {name}: [{low}, {high}] spans more than float64 holds; rescale it"
        )
    if low == high:
        raise ConfigError(
            f"parameter {name} has zero width (low = high = {low}); widen its range or drop it"
        )
    if low > high:
        raise ConfigError(f"parameter {name}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"parameter {name}: a log scale needs low > 0, got low={low}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        raise InputDataError(f"{name}={value!r} is not a number")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputDataError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise InputDataError(f"{name}={value!r} is not finite")
    return v


class Space:
    """Common interface: encoded arms (``A x D``), names, encoding and decoding of points."""

    params: tuple
    arms: np.ndarray

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def dims(self) -> int:
        """Encoded width ``D`` (one-hot blocks count one column per choice)."""
        return int(self.arms.shape[1])

    def __len__(self) -> int:
        return int(self.arms.shape[0])

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encoded row (``D``) of a parameter mapping; every parameter must be present."""
        missing = [p.name for p in self.params if p.name not in params]
        if missing:
            raise InputDataError(f"parameter(s) {', '.join(missing)} missing from {dict(params)}")
        return np.concatenate([p.encode(params[p.name]) for p in self.params])

    def decode_row(self, row: np.ndarray) -> dict[str, Any]:
        """Parameter values of an encoded row (``D``)."""
        out, start = {}, 0
        for p in self.params:
            out[p.name] = p.decode(row[start : start + p.width])
            start += p.width
        return out

    def decode(self, index: int) -> dict[str, Any]:
        """Parameter values of arm ``index``."""
        return self.decode_row(self.arms[index])

    def around(
        self, row: np.ndarray, count: int, scale: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``count`` valid encoded points near ``row`` (``count x D``), for local arms.

        Numeric columns take a Gaussian step of standard deviation ``scale``, ``scale / 4`` or
        ``scale / 16`` (drawn per point), are clipped to ``[0, 1]`` and snapped to valid values
        (integers); categorical columns keep ``row``'s choice.
        """
        numeric = np.concatenate(
            [np.full(p.width, not isinstance(p, CategoricalParam)) for p in self.params]
        )
        steps = scale * LOCAL_SCALE_STEPS[rng.integers(len(LOCAL_SCALE_STEPS), size=count)]
        moved = np.tile(np.asarray(row, float), (count, 1))
        noise = rng.standard_normal((count, int(numeric.sum())))
        moved[:, numeric] = np.clip(moved[:, numeric] + steps[:, None] * noise, 0.0, 1.0)
        return np.array([self.encode(self.decode_row(m)) for m in moved])

    def describe(self) -> list[dict[str, Any]]:
        """Each parameter as JSON values (name, type, bounds and scale, or choices): spaces
        with the same description encode and decode alike (a checkpoint records it)."""
        return [_describe(p) for p in self.params]

    def find(self, row: np.ndarray) -> int | None:
        """Index of the arm equal to ``row`` (up to round-off), or ``None``."""
        dist = np.abs(self.arms - row).max(1)
        i = int(np.argmin(dist))
        return i if dist[i] <= _MATCH_TOL else None


class ParamSpace(Space):
    """Named float, int and categorical parameters, discretised into ``count`` arms.

    Args:
        params: the parameters (at least one; names unique).
        count: number of arms ``A`` to draw (at least 2).
        seed: seed of the Sobol scrambling or of the random draw.
        method: ``sobol`` (scrambled Sobol, default) or ``random`` (uniform).

    Attributes:
        arms: ``A x D`` encoded arms (``A <= count``: duplicate draws of discrete values merge).
    """

    def __init__(
        self, params: Sequence[Param], count: int = 2000, seed: int = 0, method: str = "sobol"
    ) -> None:
        self.params = tuple(params)
        if not self.params:
            raise ConfigError("a search space needs at least one parameter")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ConfigError(f"parameter names must be unique, got {names}")
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 2:
            raise ConfigError(
                f"the search space needs a whole number of at least 2 arms, got {count!r}"
            )
        if method not in ARM_METHODS:
            raise ConfigError(f"arm method must be one of {', '.join(ARM_METHODS)}, got {method!r}")
        self.count, self.seed, self.method = int(count), int(seed), method
        check_arm_memory(self.count, sum(p.width for p in self.params))
        self.arms = self._make_arms()
        if len(self.arms) < 2:
            raise ConfigError(
                f"the search space has {len(self.arms)} distinct point(s); "
                "at least 2 arms are needed"
            )

    @classmethod
    def box(
        cls,
        bounds: np.ndarray,
        count: int = 2000,
        seed: int = 0,
        method: str = "sobol",
        names: Sequence[str] | None = None,
    ) -> ParamSpace:
        """Float parameters ``x0..x{d-1}`` (or ``names``) on the box ``bounds`` (``d x 2``)."""
        bounds = np.asarray(bounds, float)
        names = list(names) if names is not None else [f"x{i}" for i in range(len(bounds))]
        params = [
            FloatParam(n, float(lo), float(hi)) for n, (lo, hi) in zip(names, bounds, strict=True)
        ]
        return cls(params, count, seed, method)

    def _discrete(self) -> bool:
        return all(isinstance(p, (IntParam, CategoricalParam)) for p in self.params)

    def _make_arms(self) -> np.ndarray:
        if self._discrete() and math.prod(p.size() for p in self.params) <= self.count:
            return self._enumerate()
        U = self._unit_draws(self.count, len(self.params))
        blocks = []
        for j, p in enumerate(self.params):
            if isinstance(p, CategoricalParam):
                k = np.minimum((U[:, j] * p.width).astype(int), p.width - 1)
                blocks.append(p.one_hot(k))
            else:
                blocks.append(p.to_unit(p.from_unit(U[:, j]))[:, None])
        arms = np.hstack(blocks)
        _, first = np.unique(arms, axis=0, return_index=True)
        return arms[np.sort(first)]

    def _enumerate(self) -> np.ndarray:
        columns = []
        for p in self.params:
            if isinstance(p, CategoricalParam):
                columns.append([p.one_hot(k) for k in range(p.width)])
            else:
                values = np.arange(int(p.low), int(p.high) + 1, dtype=float)
                columns.append([p.to_unit(v)[None] for v in values])
        return np.array([np.concatenate(combo) for combo in product(*columns)])

    def _unit_draws(self, n: int, d: int) -> np.ndarray:
        if self.method == "random":
            return np.random.default_rng(self.seed).random((n, d))
        from scipy.stats import qmc

        if d > SOBOL_MAX_DIMS:
            raise ConfigError(
                f"Sobol arms support at most {SOBOL_MAX_DIMS} encoded dimensions, this space has "
                f"{d}; set arms.method: random",
                setting="arms.method",
            )

        sampler = qmc.Sobol(d, scramble=True, seed=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a non power of 2 count is fine here
            return sampler.random(n)


class FiniteSpace(Space):
    """A candidate set given as raw points (``A x d``), each column scaled to ``[0, 1]``.

    Args:
        points: ``A x d`` candidates (finite, at least 2 distinct rows).
        names: column names (default ``x0..x{d-1}``).
    """

    def __init__(self, points: np.ndarray, names: Sequence[str] | None = None) -> None:
        P = np.asarray(points, dtype=float)
        if P.ndim == 1:
            P = P[:, None]
        if P.ndim != 2 or not np.all(np.isfinite(P)):
            raise InputDataError("candidate points must be a finite A x d array")
        _, first = np.unique(P, axis=0, return_index=True)
        P = P[np.sort(first)]
        if len(P) < 2:
            raise ConfigError(
                f"the candidate set has {len(P)} distinct point(s); at least 2 arms are needed"
            )
        names = list(names) if names is not None else [f"x{i}" for i in range(P.shape[1])]
        lo, hi = P.min(0), P.max(0)
        self.params = tuple(
            FloatParam(n, float(a), float(b)) if b > a else FloatParam(n, float(a), float(a) + 1.0)
            for n, a, b in zip(names, lo, hi, strict=True)
        )
        self.points = P
        self.arms = np.column_stack([p.to_unit(P[:, j]) for j, p in enumerate(self.params)])

    def decode(self, index: int) -> dict[str, Any]:
        return dict(zip(self.names, map(float, self.points[index]), strict=True))

    def around(self, row, count, scale, rng):  # type: ignore[override]
        raise ConfigError("a finite candidate set has no points between its arms; set local: 0")


def space_from_mapping(
    mapping: Mapping[str, Any], count: int, seed: int = 0, method: str = "sobol"
) -> ParamSpace:
    """Build a :class:`ParamSpace` from a YAML-style mapping.

    ``{name: {type: float|int|categorical, low: .., high: .., log: bool, choices: [...]}}``;
    ``type`` defaults to ``categorical`` when ``choices`` is given, else ``float``.
    """
    if not isinstance(mapping, Mapping) or not mapping:
        raise ConfigError("space must be a non-empty mapping of parameter name -> settings")
    params: list[Param] = []
    for name, spec in mapping.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"space.{name} must be a mapping (type, low, high, log or choices)")
        kind = spec.get("type", "categorical" if "choices" in spec else "float")
        allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown key space.{name}.{unknown[0]}; known keys: {', '.join(sorted(allowed))}"
            )
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, (list, tuple)):
                raise ConfigError(f"space.{name}.choices must be a list")
            odd = next((c for c in choices if not isinstance(c, _CHOICE_TYPES)), None)
            if odd is not None:  # results and checkpoints store choices as JSON
                raise ConfigError(
                    f"space.{name}.choices holds {odd!r} ({type(odd).__name__}); choices must be "
                    "strings, numbers, booleans or null (quote it to make it a string)"
                )
            params.append(CategoricalParam(str(name), tuple(choices)))
        elif kind in ("float", "int"):
            if "low" not in spec or "high" not in spec:
                raise ConfigError(f"space.{name} needs low and high")
            low = _number(f"space.{name}.low", spec["low"])
            high = _number(f"space.{name}.high", spec["high"])
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise ConfigError(f"space.{name}.log must be true or false")
            cls = FloatParam if kind == "float" else IntParam
            params.append(cls(str(name), low, high, log))
        else:
            raise ConfigError(f"space.{name}.type must be float, int or categorical, got {kind!r}")
    return ParamSpace(params, count, seed, method)


def new_points(points: np.ndarray, arms: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Rows of ``points`` that are not already arms (nor repeated among themselves)."""
    keep: list[np.ndarray] = []
    for p in points:
        if np.abs(arms - p).max(1).min() > tol and all(np.abs(q - p).max() > tol for q in keep):
            keep.append(p)
    return np.array(keep).reshape(-1, arms.shape[1])


def add_local_arms(
    bandit, space: Space, best: np.ndarray, count: int, scale: float, rng: np.random.Generator
) -> None:
    """Add ``count`` points near the encoded point ``best`` (:meth:`Space.around`) to
    ``bandit``'s arms, those not already arms."""
    fresh = new_points(space.around(best, count, scale, rng), bandit.arms)
    if len(fresh):
        bandit.add_arms(fresh)
