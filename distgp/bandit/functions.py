"""Built-in test functions for ``distgp optimize --function NAME`` (numpy, BoTorch-style).

Each function is a class with ``dim``, ``bounds`` (``d x 2``: low, high per dimension),
``optimal_value`` and ``optimizers`` (``k x d``). :meth:`TestFunction.__call__` validates the
input, then calls ``_evaluate_true``. All are **minimisation** problems, as in the literature;
the bandit maximises, so ``distgp optimize`` maximises the reward ``-f(x)`` and reports
``f`` (best value, regret ``f(x) - optimal_value``) in the function's own units.

Names (:func:`get_function`): ``branin``, ``hartmann6``, ``ackley`` and ``levy`` (2-D), and any
dimension with a suffix: ``ackley5``, ``levy8``.
"""

from __future__ import annotations

import re

import numpy as np

from distgp.exceptions import ConfigError, InputDataError

_BOUNDS_TOL = 1e-9  # relative slack of the bounds check (round-off of decoded arms)


class TestFunction:
    """A test problem ``f: R^d -> R`` to minimise, evaluated row-wise on ``n x d`` inputs.

    Attributes:
        name: short name (``branin``, ``levy8``...).
        dim: input dimension ``d``.
        bounds: ``d x 2`` array of (low, high) per dimension.
        optimal_value: the global minimum ``f*``.
        optimizers: ``k x d`` global minimisers.
        noise_std: standard deviation of Gaussian noise added by :meth:`__call__` (0: exact).
    """

    __test__ = False  # not a pytest class
    name: str
    dim: int
    _bounds: tuple[tuple[float, float], ...]
    _optimal_value: float
    _optimizers: tuple[tuple[float, ...], ...]

    def __init__(self, noise_std: float = 0.0) -> None:
        if noise_std < 0:
            raise ConfigError(f"noise_std must be non-negative, got {noise_std}")
        self.noise_std = float(noise_std)

    @property
    def bounds(self) -> np.ndarray:
        return np.array(self._bounds, dtype=float)

    @property
    def optimal_value(self) -> float:
        return float(self._optimal_value)

    @property
    def optimizers(self) -> np.ndarray:
        return np.array(self._optimizers, dtype=float)

    def evaluate_true(self, X: np.ndarray) -> np.ndarray:
        """Noise-free values: ``n x d`` -> ``n`` (a single point ``d`` -> a 0-d array)."""
        X = np.asarray(X, dtype=float)
        single = X.ndim == 1
        pts = X[None, :] if single else X
        if pts.ndim != 2 or pts.shape[1] != self.dim:
            raise InputDataError(
                f"{self.name} expects points with {self.dim} coordinates, got shape {X.shape}"
            )
        lo, hi = self.bounds.T
        slack = _BOUNDS_TOL * (hi - lo)
        if np.any(pts < lo - slack) or np.any(pts > hi + slack):
            raise InputDataError(f"{self.name}: a point lies outside the bounds {self._bounds}")
        values = self._evaluate_true(pts)
        return values[0] if single else values

    def __call__(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Values with noise (when ``noise_std > 0``; ``rng`` defaults to a fresh generator)."""
        values = self.evaluate_true(X)
        if self.noise_std > 0:
            rng = rng if rng is not None else np.random.default_rng()
            values = values + self.noise_std * rng.standard_normal(np.shape(values))
        return values

    def _evaluate_true(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, noise_std={self.noise_std})"


class Branin(TestFunction):
    """Branin-Hoo on ``[-5, 10] x [0, 15]``; three global minima, ``f* = 0.397887``."""

    name = "branin"
    dim = 2
    _bounds = ((-5.0, 10.0), (0.0, 15.0))
    _optimal_value = 0.397887357729738
    _optimizers = ((-np.pi, 12.275), (np.pi, 2.275), (9.42477796, 2.475))

    def _evaluate_true(self, X: np.ndarray) -> np.ndarray:
        x1, x2 = X[:, 0], X[:, 1]
        b, c = 5.1 / (4 * np.pi**2), 5.0 / np.pi
        r, s, t = 6.0, 10.0, 1.0 / (8 * np.pi)
        return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * np.cos(x1) + s


class Hartmann6(TestFunction):
    """Six-dimensional Hartmann function on ``[0, 1]^6``; ``f* = -3.32237``."""

    name = "hartmann6"
    dim = 6
    _bounds = ((0.0, 1.0),) * 6
    _optimal_value = -3.322368011391339
    _optimizers = ((0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054),)
    _ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
    _A = np.array(
        [
            [10, 3, 17, 3.5, 1.7, 8],
            [0.05, 10, 17, 0.1, 8, 14],
            [3, 3.5, 1.7, 10, 17, 8],
            [17, 8, 0.05, 10, 0.1, 14],
        ]
    )
    _P = 1e-4 * np.array(
        [
            [1312, 1696, 5569, 124, 8283, 5886],
            [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 3047, 6650],
            [4047, 8828, 8732, 5743, 1091, 381],
        ]
    )

    def _evaluate_true(self, X: np.ndarray) -> np.ndarray:
        inner = ((X[:, None, :] - self._P[None]) ** 2 * self._A[None]).sum(-1)
        return -(np.exp(-inner) @ self._ALPHA)


class Ackley(TestFunction):
    """Ackley on ``[-32.768, 32.768]^d`` (``a=20, b=0.2, c=2 pi``); ``f* = 0`` at the origin."""

    def __init__(self, dim: int = 2, noise_std: float = 0.0) -> None:
        super().__init__(noise_std)
        _check_dim(dim, "ackley")
        self.dim = int(dim)
        self.name = f"ackley{dim}" if dim != 2 else "ackley"
        self._bounds = ((-32.768, 32.768),) * dim
        self._optimal_value = 0.0
        self._optimizers = ((0.0,) * dim,)

    def _evaluate_true(self, X: np.ndarray) -> np.ndarray:
        a, b, c = 20.0, 0.2, 2 * np.pi
        d = X.shape[1]
        part1 = -a * np.exp(-b * np.sqrt((X**2).sum(1) / d))
        part2 = -np.exp(np.cos(c * X).sum(1) / d)
        return part1 + part2 + a + np.e


class Levy(TestFunction):
    """Levy on ``[-10, 10]^d``; ``f* = 0`` at ``(1, ..., 1)``."""

    def __init__(self, dim: int = 2, noise_std: float = 0.0) -> None:
        super().__init__(noise_std)
        _check_dim(dim, "levy")
        self.dim = int(dim)
        self.name = f"levy{dim}" if dim != 2 else "levy"
        self._bounds = ((-10.0, 10.0),) * dim
        self._optimal_value = 0.0
        self._optimizers = ((1.0,) * dim,)

    def _evaluate_true(self, X: np.ndarray) -> np.ndarray:
        w = 1.0 + (X - 1.0) / 4.0
        head = np.sin(np.pi * w[:, 0]) ** 2
        mid = ((w[:, :-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:, :-1] + 1) ** 2)).sum(1)
        tail = (w[:, -1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[:, -1]) ** 2)
        return head + mid + tail


def _check_dim(dim: int, name: str) -> None:
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ConfigError(f"{name} needs a dimension of at least 1, got {dim!r}")


FIXED = {"branin": Branin, "hartmann6": Hartmann6}
SCALABLE = {"ackley": Ackley, "levy": Levy}


def get_function(name: str, noise_std: float = 0.0) -> TestFunction:
    """The built-in test function called ``name`` (``branin``, ``hartmann6``, ``ackley[D]``,
    ``levy[D]``); unknown names raise :class:`~distgp.exceptions.ConfigError`."""
    key = name.strip().lower()
    if key in FIXED:
        return FIXED[key](noise_std=noise_std)
    match = re.fullmatch(r"([a-z]+)(\d*)", key)
    if match and match.group(1) in SCALABLE:
        dim = int(match.group(2)) if match.group(2) else 2
        return SCALABLE[match.group(1)](dim, noise_std=noise_std)
    raise ConfigError(
        f"unknown function {name!r}; choose one of: branin, hartmann6, ackley[D], levy[D] "
        "(e.g. levy8), or give MODULE:CALLABLE"
    )
