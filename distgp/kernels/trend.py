"""Trend parts of the kernel: polynomial and random-walk sub-kernels beside the spectral grid.

A GSMP kernel is stationary, so its predictive mean reverts to the prior mean about one length
scale past the data. A trend part fixes that. With basis functions ``h_t(x)`` (the powers
``x_p^k``, ``k = 1..degree``, of every standardised input; the ``constant`` family is the single
basis function 1) each trend component is the rank-one sub-kernel::

    K_t = h_t h_t^T,    k_t(x, x') = h_t(x) h_t(x')

with its own non-negative weight, the prior variance of that basis function's coefficient
(Rasmussen and Williams 2006, section 2.7: a Gaussian prior on the coefficients of ``h`` is the
kernel ``h^T B h``). These weights are learned with the spectral ones by the same evidence, DSCA
and ADMM treat them like any other component, and a zero weight switches a term off. Inputs are
standardised first (mean 0, standard deviation 1), so the basis stays well conditioned. Outputs
are centred, and the grid's zero-frequency components carry the level, so the polynomial
families hold no constant: a constant's weight would be the largest of all (the level's prior
variance is large and barely determined), and DSCA prunes relative to the largest weight.

A polynomial is global: a quadratic fitted to the whole span extrapolates its curvature, and a
line its average slope. The ``local`` family (one input: a time index) instead holds two
random-walk sub-kernels, the state-space models' local level and local slope (Harvey 1989; as
GP kernels, Rasmussen and Williams 2006, section 6.3): with ``s`` the time since the start of
the standard span, scaled to ``[0, 1]`` over it (:func:`walk_times`)::

    k_level(s, t) = min(s, t)                                   (Brownian motion)
    k_slope(s, t) = 3 (m^3 / 3 + |s - t| m^2 / 2),  m = min(s, t)  (its integral)

both 1 at the end of the standard span. Beyond the data the first forecasts the last level
(a naive forecast's behaviour) and the second continues the local slope (a drift forecast's,
from the recent data instead of the whole span), with widening intervals; the evidence weighs
them against the spectral components, which carry the seasonality.

A **season** (one input: a period ``p`` and the series' step ``d``, standardised units, with
``p >= 2 d``) adds two components on the periodic hat ``phase(s, t) = max(0, 1 - e / d)``,
``e`` the distance of ``x_s - x_t`` to the nearest whole number of periods: a fixed seasonal
pattern, one free value per phase, and a seasonal walk, one Brownian motion per phase (the
state-space models' seasonal random walk)::

    k_pattern(s, t) = phase(s, t),    k_walk(s, t) = phase(s, t) min(s, t)

At the series' steps ``phase`` is 1 between points a whole number of periods apart and 0
otherwise (seasonal dummies); between steps it interpolates the neighbouring phases linearly
(the hat is the autocorrelation of a box, so its periodic sum is a covariance). Beyond the data
the pattern repeats, and the walk holds each phase's last value (a seasonal naive forecast's
behaviour, with intervals that widen by season); the evidence weighs a stable against an
evolving season.

:class:`TrendBank` puts the trend components after the ``M`` spectral ones of a
:class:`~distgp.kernels.bank.SubKernelBank` and answers the same calls (``gram``, ``cross``,
``products``, ``component``), so the objective, the solvers and prediction need no change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distgp.exceptions import ConfigError
from distgp.kernels.bank import SubKernelBank
from distgp.kernels.grid import STANDARD_SPAN, SpectralGrid

TREND_KINDS = {
    "none": (-1, 0),
    "constant": (0, 0),
    "linear": (1, 0),
    "quadratic": (2, 0),
    "local": (-1, 2),
}
"""Trend families by name: ``(polynomial degree, random-walk components)`` (degree ``-1``: no
polynomial part)."""

WALK_ORIGIN = -STANDARD_SPAN / 2  # start of evenly spaced standardised times (std units)
WALK_LABELS = ("level walk", "slope walk")
SEASON_LABELS = ("seasonal pattern", "seasonal walk")


def walk_times(Z: np.ndarray) -> np.ndarray:
    """Times ``s`` of the random walks at standardised one-input ``Z`` (``n x 1``): from the
    start of the standard span (``-sqrt(3)``; earlier times clipped to it), in units of the span
    (``sqrt(12)``), so evenly spaced training times run over about ``[0, 1]``. Needs no data
    extremes: agents holding shards of one series agree on it."""
    return np.maximum(np.asarray(Z, float)[:, 0] - WALK_ORIGIN, 0.0) / STANDARD_SPAN


def walk_kernel(order: int, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``len(s) x len(t)`` covariance of random walk ``order`` (0: level, 1: slope) at times
    ``s`` and ``t`` (:func:`walk_times`)."""
    m = np.minimum(s[:, None], t[None, :])
    if order == 0:
        return m
    return m**3 + 1.5 * np.abs(s[:, None] - t[None, :]) * m**2


def walk_variance(order: int, s: np.ndarray) -> np.ndarray:
    """The diagonal of :func:`walk_kernel` at times ``s``: ``s`` or ``s^3``."""
    return s if order == 0 else s**3


def season_kernels(Z1: np.ndarray, Z2: np.ndarray, period: float, step: float) -> list[np.ndarray]:
    """``n1 x n2`` covariances of the seasonal pattern and the seasonal walk of ``period``
    over a series of ``step`` (standardised units) between one-input standardised ``Z1`` and
    ``Z2``: the periodic hat ``phase``, and ``phase`` times the level walk. Diagonals: 1 and
    :func:`walk_times`."""
    lag = np.asarray(Z1, float)[:, 0, None] - np.asarray(Z2, float)[None, :, 0]
    off = np.abs(lag - period * np.round(lag / period))
    phase = np.maximum(0.0, 1.0 - off / step)
    return [phase, phase * walk_kernel(0, walk_times(Z1), walk_times(Z2))]


@dataclass(frozen=True)
class TrendBasis:
    """The trend part on standardised inputs: a polynomial basis ``h(x)`` and random walks.

    Attributes:
        degree: highest power (``0``: a constant; ``-1``: no polynomial part).
        dims: number of input dimensions ``P``.
        walks: random-walk components (0, or 2 for the ``local`` family: level and slope; one
            input only).
        season: period of the seasonal pattern and walk in standardised input units (``0``:
            none; one input only).
        season_step: the series' step in standardised input units (with a season: at most
            half the period).
    """

    degree: int
    dims: int
    walks: int = 0
    season: float = 0.0
    season_step: float = 0.0

    def __post_init__(self) -> None:
        if self.degree < -1:
            raise ConfigError(f"trend degree must be at least -1, got {self.degree}")
        if not 0 <= self.walks <= len(WALK_LABELS):
            raise ConfigError(f"random-walk components must be 0 to 2, got {self.walks}")
        if self.walks and self.dims != 1:
            raise ConfigError(
                f"trend 'local' needs one input (a time index), the data has {self.dims}; "
                "use trend none, constant, linear or quadratic"
            )
        if not (self.season >= 0 and np.isfinite(self.season)):
            raise ConfigError(f"the seasonal period must be positive or 0, got {self.season}")
        if self.season and self.dims != 1:
            raise ConfigError(
                f"a season needs one input (a time index), the data has {self.dims}; "
                "set kernel.season to 0"
            )
        if self.season and not 0 < 2 * self.season_step <= self.season * (1 + 1e-9):
            raise ConfigError(
                f"a season must span at least two steps of the series (period {self.season:.6g}"
                f", step {self.season_step:.6g}, input units); set kernel.season to a "
                "longer period, or 0"
            )

    @classmethod
    def named(cls, kind: str, dims: int, season: float = 0.0, step: float = 0.0) -> TrendBasis:
        """The basis of a trend family (``none``, ``constant``, ``linear``, ``quadratic``,
        ``local``), with a ``season`` of that period over a series of that ``step``
        (standardised units; ``0``: none).

        ``auto`` (the family when no outer choice ran, see :mod:`distgp.tune`) is ``linear``
        for one input dimension and ``none`` otherwise: on the shared multi-dimensional sets a
        linear trend learned by the evidence cost airfoil600 test MSE (7.9 to 10.0) and did not
        help concrete824 (150 to 148).
        """
        if kind == "auto":
            kind = "linear" if dims == 1 else "none"
        if kind not in TREND_KINDS:
            raise ConfigError(f"unknown trend {kind!r}; choose one of: {', '.join(TREND_KINDS)}")
        degree, walks = TREND_KINDS[kind]
        return cls(degree, int(dims), walks, float(season), float(step) if season else 0.0)

    @property
    def kind(self) -> str:
        """The family's name (one of :data:`TREND_KINDS`, else ``degree D``)."""
        names = {v: k for k, v in TREND_KINDS.items()}
        return names.get((self.degree, self.walks), f"degree {self.degree}")

    @property
    def polynomial_size(self) -> int:
        """Number of polynomial components: 1 for a constant, ``P degree`` for a polynomial."""
        return {-1: 0, 0: 1}.get(self.degree, self.dims * self.degree)

    @property
    def walk_count(self) -> int:
        """Number of dense components: the random walks (level and slope), then the seasonal
        pattern and walk."""
        return self.walks + (len(SEASON_LABELS) if self.season else 0)

    @property
    def size(self) -> int:
        """Number of trend components ``T``: the polynomial's, then the random walks."""
        return self.polynomial_size + self.walk_count

    def labels(self, names: Sequence[str] | None = None) -> list[str]:
        """A name per component: ``1``, or the inputs' ``names`` (default ``x0``, ``x1``, ...),
        then their squares (``x0^2``, ...); then the walks."""
        walks = list(WALK_LABELS[: self.walks]) + list(SEASON_LABELS) * bool(self.season)
        if self.degree <= 0:
            return ["1"][: self.polynomial_size] + walks
        names = list(names) if names is not None else [f"x{p}" for p in range(self.dims)]
        return [
            names[p] + (f"^{k}" if k > 1 else "")
            for k in range(1, self.degree + 1)
            for p in range(self.dims)
        ] + walks

    def features(self, Z: np.ndarray) -> np.ndarray:
        """``n x T_poly`` polynomial basis values at standardised inputs ``Z`` (``n x P``)."""
        if self.degree <= 0:
            return np.ones((Z.shape[0], self.polynomial_size))
        return np.hstack([Z**k for k in range(1, self.degree + 1)])

    def walk_kernels(self, Z1: np.ndarray, Z2: np.ndarray) -> list[np.ndarray]:
        """The random walks' ``n1 x n2`` covariances between standardised inputs."""
        s, t = walk_times(Z1), walk_times(Z2)
        walks = [walk_kernel(order, s, t) for order in range(self.walks)]
        if self.season:
            walks.extend(season_kernels(Z1, Z2, self.season, self.season_step))
        return walks

    def prior_variance(self, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The trend part's ``k(z, z)`` at standardised ``Z`` for its ``T`` weights. Terms of
        weight 0 are left out: far out their variance overflows, and ``0 * inf`` is NaN."""
        weights = np.asarray(weights, float)
        poly = self.polynomial_size
        used = weights[:poly] != 0
        out = (self.features(Z)[:, used] ** 2) @ weights[:poly][used]
        s = walk_times(Z) if self.walk_count else None
        for order in range(self.walks):
            if weights[poly + order]:
                out = out + weights[poly + order] * walk_variance(order, s)
        if self.season:  # the pattern's variance is 1, each phase's walk the level walk's
            pattern, walk = weights[poly + self.walks : poly + self.walks + 2]
            out = out + pattern
            if walk:
                out = out + walk * walk_variance(0, s)
        return out

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "trend_degree": np.asarray(self.degree),
            "trend_walks": np.asarray(self.walks),
            "trend_season": np.asarray(self.season),
            "trend_season_step": np.asarray(self.season_step),
        }

    @classmethod
    def from_dict(cls, d, dims: int) -> TrendBasis:
        """The basis saved by :meth:`to_dict`; files without one have no trend part."""
        degree = int(d["trend_degree"]) if "trend_degree" in d else -1
        walks = int(d["trend_walks"]) if "trend_walks" in d else 0
        season = float(d["trend_season"]) if "trend_season" in d else 0.0
        step = float(d["trend_season_step"]) if season else 0.0
        return cls(degree, int(dims), walks, season, step)


class TrendBank:
    """Spectral sub-kernels followed by the ``T`` trend sub-kernels.

    Component ``m < M`` is the spectral bank's, then come the rank-one polynomial components
    ``h_t h_t^T`` and the random walks (dense ``n x n``). Costs of the trend part: ``O(n^2 T)``
    for a Gram matrix and for the products, ``n^2`` floats per random walk.

    Args:
        X: ``n x P`` standardised inputs.
        grid: the spectral grid.
        trend: the trend basis.
        cache_envelopes: passed to the spectral bank.
        device: where the spectral bank computes (the trend part is ``n x T`` numpy, moved to
            the device where it meets the spectral part).
    """

    def __init__(
        self,
        X: np.ndarray,
        grid: SpectralGrid,
        trend: TrendBasis,
        cache_envelopes: bool = True,
        device: str = "cpu",
    ) -> None:
        self.spectral = SubKernelBank(X, grid, cache_envelopes, device=device)
        self.trend = trend
        self.grid = grid
        self.n = self.spectral.n
        self.X = np.asarray(X, float)
        self.H = trend.features(self.X)
        self._H_dev = self.ops.asarray(self.H) if self.ops.is_torch else self.H  # copied once
        # each random walk kept as ``ops.lower_part`` stores it (the lower triangle on the CPU)
        walks = trend.walk_kernels(self.X, self.X)
        self._walks = [self.ops.lower_part(self.ops.asarray(W)) for W in walks]
        self.M = self.spectral.M + trend.size

    @property
    def ops(self):
        return self.spectral.ops

    @property
    def device(self) -> str:
        return self.spectral.device

    @property
    def workers(self) -> int:
        return self.spectral.workers

    @workers.setter
    def workers(self, value: int) -> None:
        self.spectral.workers = value

    @property
    def nbytes(self) -> int:
        device_copy = self.H.nbytes if self.ops.is_torch else 0
        return self.spectral.nbytes + self.H.nbytes + device_copy + 8 * self.n**2 * len(self._walks)

    def _split(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spectral, polynomial and random-walk weights."""
        weights = np.asarray(weights, float)
        M, poly = self.spectral.M, self.trend.polynomial_size
        return weights[:M], weights[M : M + poly], weights[M + poly :]

    def gram(self, weights: np.ndarray, lower: bool = False):
        """``sum_m w_m K_m`` (``n x n``, on the bank's device) over spectral and trend parts;
        ``lower``: only the lower triangle need be right (as for the spectral bank)."""
        spectral, poly, walks = self._split(weights)
        K = self.spectral.gram(spectral, lower=lower)
        if np.any(poly):
            if self.ops.is_torch:  # on the device: no n x n product on the host, no copy
                H = self._H_dev
                K.addmm_(H * self.ops.asarray(poly), H.T)
            else:
                K += (self.H * poly) @ self.H.T
        for w, P in zip(walks, self._walks, strict=True):
            if w > 0:
                self.ops.add_scaled(K, P, float(w))
                if not lower and not self.ops.is_torch:  # P holds the lower triangle only
                    K += float(w) * np.tril(P, -1).T
        return K

    def cross(self, X2: np.ndarray, weights: np.ndarray):
        """``sum_m w_m K_m(X2, X)`` (``n2 x n``, on the bank's device); polynomial terms of
        weight 0 are left out (their features overflow far out, and ``0 * inf`` is NaN)."""
        spectral, poly, walks = self._split(weights)
        X2 = np.asarray(X2, float)
        used = poly != 0
        part = (self.trend.features(X2)[:, used] * poly[used]) @ self.H[:, used].T
        for w, W in zip(walks, self.trend.walk_kernels(X2, self.X), strict=True):
            part = part + w * W
        return self.spectral.cross(X2, spectral) + self.ops.asarray(part)

    def prior_variance(self, X2: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``k(x, x)`` at ``n2`` new inputs: the spectral weights' sum plus the trend part's."""
        weights = np.asarray(weights, float)
        spectral = weights[: self.spectral.M]
        return spectral.sum() + self.trend.prior_variance(X2, weights[self.spectral.M :])

    def component(self, m: int) -> np.ndarray:
        if m < self.spectral.M:
            return self.spectral.component(m)
        t = m - self.spectral.M
        if t >= self.trend.polynomial_size:
            return self._full(self._walks[t - self.trend.polynomial_size])
        h = self.H[:, t]
        return np.outer(h, h)

    def apply(self, v: np.ndarray, components: np.ndarray) -> np.ndarray:
        """``K_m v`` for each listed component: ``n x len(components)``; a polynomial column
        is ``h_t (h_t^T v)``, a random walk's ``W v``.

        ``v`` may be a tensor on the bank's device (as ``Factorization.alpha`` is): it is
        copied to the host once, never converted implicitly (a CUDA tensor would refuse)."""
        components = np.asarray(components, dtype=int)
        ops = self.ops
        v_dev = ops.asarray(v)  # on the device (no copy when it is there already)
        v_host = ops.numpy(v_dev)
        spectral = components < self.spectral.M
        out = np.empty((self.n, len(components)))
        out[:, spectral] = self.spectral.apply(v_dev, components[spectral])
        for i in np.flatnonzero(~spectral):
            t = components[i] - self.spectral.M
            poly = self.trend.polynomial_size
            if t < poly:
                out[:, i] = self.H[:, t] * (self.H[:, t] @ v_host)
            else:
                Wv = ops.symm_lower(self._walks[t - poly], v_dev[:, None])
                out[:, i] = ops.numpy(Wv)[:, 0]
        return out

    def _full(self, P) -> np.ndarray:
        """The symmetric numpy matrix a random walk's stored part ``P`` holds."""
        P = self.ops.numpy(P)
        if self.ops.is_torch:
            return P.copy()
        return P + np.tril(P, -1).T

    def products(
        self,
        components: np.ndarray,
        A: np.ndarray | None = None,
        alpha: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``<A, K_m>`` and ``alpha^T K_m alpha`` per component (order of ``components``)."""
        components = np.asarray(components, dtype=int)
        spectral = components < self.spectral.M
        traces = None if A is None else np.empty(len(components))
        quads = None if alpha is None else np.empty(len(components))
        t, q = self.spectral.products(components[spectral], A, alpha)
        if traces is not None:
            traces[spectral] = t
        if quads is not None:
            quads[spectral] = q
        if np.all(spectral):
            return traces, quads
        poly = self.trend.polynomial_size
        index = components - self.spectral.M
        rank_one = ~spectral & (index < poly)
        if np.any(rank_one):
            H = self.H[:, index[rank_one]]
            if traces is not None:  # A may hold only its lower triangle, as the spectral bank's
                AH = self.ops.numpy(self.ops.symm_lower(A, self.ops.asarray(H)))
                traces[rank_one] = np.einsum("it,it->t", H, AH)
            if quads is not None:
                quads[rank_one] = (H.T @ self.ops.numpy(alpha)) ** 2
        for i in np.flatnonzero(~spectral & (index >= poly)):
            walk = index[i] - poly
            if traces is not None:
                traces[i] = self.ops.frobenius(A, self._walks[walk])
            if quads is not None:
                quads[i] = self.ops.quadratic(self._walks[walk], alpha)
        return traces, quads


def kernel_bank(
    X: np.ndarray,
    grid: SpectralGrid,
    trend: TrendBasis | None,
    cache_envelopes: bool = True,
    device: str = "cpu",
) -> SubKernelBank | TrendBank:
    """The bank of a model: the spectral bank alone, or with its trend part."""
    if trend is None or trend.size == 0:
        return SubKernelBank(X, grid, cache_envelopes, device=device)
    return TrendBank(X, grid, trend, cache_envelopes, device=device)


def bank_from_recipe(
    X: np.ndarray, recipe: dict, cache_envelopes: bool = True, device: str = "cpu"
):
    """The bank a grid recipe names (``driver.grid_recipe``), with its optional ``trend_degree``."""
    from distgp.kernels.grid import grid_from_recipe

    grid = grid_from_recipe(recipe)
    trend = TrendBasis.from_dict(recipe, grid.dims)
    return kernel_bank(X, grid, trend, cache_envelopes, device=device)


def recipe_prior_variance(recipe: dict, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``k(z, z)`` at standardised inputs ``Z`` of the kernel a recipe names (no data needed)."""
    trend = TrendBasis.from_dict(recipe, Z.shape[1])
    weights = np.asarray(weights, float)
    spectral = weights[: len(weights) - trend.size]
    return float(spectral.sum()) + trend.prior_variance(Z, weights[len(spectral) :])


def prior_variance(bank, X2: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``k(x, x)`` at ``n2`` inputs: the weights' sum for a spectral bank (every component has
    ``k_m(0) = 1``), plus the trend part's ``sum_t w_t h_t(x)^2`` for a :class:`TrendBank`."""
    if isinstance(bank, TrendBank):
        return bank.prior_variance(X2, weights)
    return np.full(len(X2), float(np.sum(weights)))
