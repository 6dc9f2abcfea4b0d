"""What ``distgp optimize --function`` optimises: an objective, its search space and its optimum.

Three kinds of ``--function``:

* a built-in name (:mod:`distgp.bandit.functions`): a box space ``x0..x{d-1}``, minimised, with a
  known optimum (so regret is reported); ``noise_std`` adds seeded Gaussian noise;
* ``MODULE:CALLABLE`` whose object has ``bounds`` (``d x 2``; a class is instantiated first):
  called with a 1-D array ``x``; ``optimal_value`` is used when present;
* ``MODULE:CALLABLE`` without bounds: called with a dict of parameters described by the config's
  ``space`` section.

Objectives are picklable (they travel to Ray agents) and take ``(params, index)``; the index of
the evaluation seeds the noise, so a run does not depend on which agent evaluates what.
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from distgp.bandit.config import OptimizeConfig
from distgp.bandit.functions import TestFunction, get_function
from distgp.bandit.spaces import ParamSpace, Space, space_from_mapping
from distgp.exceptions import ConfigError


class ArrayObjective:
    """A function of a 1-D array ``x`` (ordered as ``names``); seeded noise for test functions."""

    def __init__(self, func: Callable, names: list[str], seed: int = 0) -> None:
        self.func, self.names, self.seed = func, list(names), int(seed)

    def point(self, params: dict[str, Any]) -> np.ndarray:
        return np.array([params[n] for n in self.names], dtype=float)

    def __call__(self, params: dict[str, Any], index: int) -> Any:
        x = self.point(params)
        if isinstance(self.func, TestFunction):
            return float(self.func(x, rng=np.random.default_rng((self.seed, index))))
        return self.func(x)  # the agent checks that it is a number


class DictObjective:
    """A function of a parameter dict."""

    def __init__(self, func: Callable) -> None:
        self.func = func

    def __call__(self, params: dict[str, Any], index: int) -> Any:
        return self.func(dict(params))  # the agent checks that it is a number


@dataclass
class Problem:
    """An objective over a search space.

    Attributes:
        name: the ``--function`` text.
        space: the arms and their decoding.
        objective: ``objective(params, index) -> value`` (user units, picklable).
        maximize: whether larger values are better.
        optimal_value: the best possible value, when known (enables regret).
        true_value: noise-free value of a point (built-ins), else ``None``.
    """

    name: str
    space: Space
    objective: Callable[[dict[str, Any], int], float]
    maximize: bool
    optimal_value: float | None
    true_value: Callable[[dict[str, Any]], float] | None = None

    @property
    def sign(self) -> float:
        """Reward = sign * value (the bandit maximises)."""
        return 1.0 if self.maximize else -1.0

    def beyond_optimum(self, value: float) -> bool:
        """Whether a true ``value`` improves on the stated optimum (the optimum is wrong)."""
        if self.optimal_value is None or not math.isfinite(value):
            return False
        tol = 1e-9 * max(1.0, abs(self.optimal_value))
        return self.sign * (value - self.optimal_value) > tol

    def regret(self, value: float) -> float | None:
        """``|optimum - value|`` in the improving direction (``None`` without a known optimum)."""
        if self.optimal_value is None or not math.isfinite(value):
            return None
        return max(self.sign * (self.optimal_value - value), 0.0)


class _TrueValue:
    def __init__(self, fn: TestFunction, names: list[str]) -> None:
        self.fn, self.names = fn, names

    def __call__(self, params: dict[str, Any]) -> float:
        return float(self.fn.evaluate_true(np.array([params[n] for n in self.names])))


def make_problem(config: OptimizeConfig) -> Problem:
    """Resolve ``config.function`` and build its search space (``config.arms``)."""
    arms = config.arms
    spec = config.function.strip()
    if ":" not in spec:
        if config.space is not None:
            raise ConfigError("space applies to MODULE:CALLABLE functions, not built-in ones")
        fn = get_function(spec, noise_std=config.noise_std)
        space = ParamSpace.box(fn.bounds, arms.count, config.seed, arms.method)
        return Problem(  # minimised: OptimizeConfig.validate refuses maximize
            fn.name,
            space,
            ArrayObjective(fn, space.names, config.seed),
            False,
            fn.optimal_value,
            _TrueValue(fn, space.names),
        )
    if config.noise_std > 0:
        raise ConfigError(
            f"noise_std adds noise to the built-in functions only; {spec} is evaluated as it is "
            "(add noise inside it, or drop noise_std)",
            setting="noise_std",
        )
    func = import_callable(spec)
    bounds = getattr(func, "bounds", None)
    if config.space is not None:
        space = space_from_mapping(config.space, arms.count, config.seed, arms.method)
        objective: Callable = DictObjective(func)
    elif bounds is not None:
        try:
            box = np.asarray(bounds, dtype=float)
        except (TypeError, ValueError):
            box = None
        if box is None or box.ndim != 2 or box.shape[1] != 2:  # a flat list is ambiguous
            raise ConfigError(
                f"{spec}.bounds must be a d x 2 array of (low, high) rows, one per parameter"
            )
        space = ParamSpace.box(box, arms.count, config.seed, arms.method)
        objective = ArrayObjective(func, space.names, config.seed)
    else:
        name = spec.partition(":")[2]
        raise ConfigError(
            f"{spec} has no bounds attribute and the config no space: section; give the "
            f"callable one ({name}.bounds = [[low, high], ...]: it is then called with a 1-D "
            "array x; a module-level bounds is not read) or describe its parameters in the "
            "config's space: section (it is then called with a dict {name: value})"
        )
    return Problem(spec, space, objective, config.maximize, _stated_optimum(spec, func))


def _stated_optimum(spec: str, func: Callable) -> float | None:
    """A callable's ``optimal_value`` attribute as a float (``None`` when it has none)."""
    optimum = getattr(func, "optimal_value", None)
    if optimum is None:
        return None
    if isinstance(optimum, bool) or not isinstance(optimum, numbers.Real):
        raise ConfigError(
            f"{spec}.optimal_value must be a real number, got {optimum!r}; set it or remove it"
        )
    if not math.isfinite(float(optimum)):
        raise ConfigError(
            f"{spec}.optimal_value must be finite, got {optimum!r}; remove it if it is unknown"
        )
    return float(optimum)


def import_callable(spec: str) -> Callable:
    """Import ``MODULE:CALLABLE`` (current folder first); a class is instantiated."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"function {spec!r} must look like MODULE:CALLABLE")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(f"cannot instantiate {spec} without arguments ({exc})") from None
    if not callable(obj):
        raise ConfigError(f"{spec} is not callable")
    return obj
