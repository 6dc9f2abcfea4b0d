"""Trend parts of the kernel: polynomial sub-kernels beside the spectral grid.

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

:class:`TrendBank` puts the trend components after the ``M`` spectral ones of a
:class:`~distgp.kernels.bank.SubKernelBank` and answers the same calls (``gram``, ``cross``,
``products``, ``component``), so the objective, the solvers and prediction need no change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distgp.exceptions import ConfigError
from distgp.kernels.bank import SubKernelBank
from distgp.kernels.grid import SpectralGrid

TREND_KINDS = {"none": -1, "constant": 0, "linear": 1, "quadratic": 2}
"""Trend families by name and their polynomial degree (``-1``: no trend part)."""


@dataclass(frozen=True)
class TrendBasis:
    """Polynomial basis ``h(x)`` of the trend part on standardised inputs.

    Attributes:
        degree: highest power (``0``: a constant; ``-1``: no trend part).
        dims: number of input dimensions ``P``.
    """

    degree: int
    dims: int

    def __post_init__(self) -> None:
        if self.degree < -1:
            raise ConfigError(f"trend degree must be at least -1, got {self.degree}")

    @classmethod
    def named(cls, kind: str, dims: int) -> TrendBasis:
        """The basis of a trend family (``none``, ``constant``, ``linear``, ``quadratic``).

        ``auto`` (the family when no outer choice ran, see :mod:`distgp.tune`) is ``linear``
        for one input dimension and ``none`` otherwise: on the shared multi-dimensional sets a
        linear trend learned by the evidence cost airfoil600 test MSE (7.9 to 10.0) and did not
        help concrete824 (150 to 148).
        """
        if kind == "auto":
            kind = "linear" if dims == 1 else "none"
        if kind not in TREND_KINDS:
            raise ConfigError(f"unknown trend {kind!r}; choose one of: {', '.join(TREND_KINDS)}")
        return cls(TREND_KINDS[kind], int(dims))

    @property
    def kind(self) -> str:
        """The family's name (``none``, ``constant``, ``linear``, ``quadratic`` or ``degree D``)."""
        names = {v: k for k, v in TREND_KINDS.items()}
        return names.get(self.degree, f"degree {self.degree}")

    @property
    def size(self) -> int:
        """Number of trend components ``T``: 1 for a constant, ``P degree`` for a polynomial."""
        return {-1: 0, 0: 1}.get(self.degree, self.dims * self.degree)

    def labels(self) -> list[str]:
        """A name per component: ``1``, or ``x0``, ``x1``, ..., ``x0^2``, ..."""
        if self.degree <= 0:
            return ["1"][: self.size]
        return [
            f"x{p}" + (f"^{k}" if k > 1 else "")
            for k in range(1, self.degree + 1)
            for p in range(self.dims)
        ]

    def features(self, Z: np.ndarray) -> np.ndarray:
        """``n x T`` basis values at standardised inputs ``Z`` (``n x P``)."""
        if self.degree <= 0:
            return np.ones((Z.shape[0], self.size))
        return np.hstack([Z**k for k in range(1, self.degree + 1)])

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"trend_degree": np.asarray(self.degree)}

    @classmethod
    def from_dict(cls, d, dims: int) -> TrendBasis:
        """The basis saved by :meth:`to_dict`; files without one have no trend part."""
        return cls(int(d["trend_degree"]) if "trend_degree" in d else -1, int(dims))


class TrendBank:
    """Spectral sub-kernels followed by the ``T`` rank-one trend sub-kernels.

    Component ``m < M`` is the spectral bank's, component ``M + t`` is ``h_t h_t^T``. Costs of
    the trend part: ``O(n^2 T)`` for a Gram matrix, ``O(n^2 T)`` for the products.

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
        return self.spectral.nbytes + self.H.nbytes

    def _split(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weights = np.asarray(weights, float)
        return weights[: self.spectral.M], weights[self.spectral.M :]

    def gram(self, weights: np.ndarray, lower: bool = False):
        """``sum_m w_m K_m`` (``n x n``, on the bank's device) over spectral and trend parts;
        ``lower``: only the lower triangle need be right (as for the spectral bank)."""
        spectral, trend = self._split(weights)
        K = self.spectral.gram(spectral, lower=lower)
        if np.any(trend):
            K += self.ops.asarray((self.H * trend) @ self.H.T)
        return K

    def cross(self, X2: np.ndarray, weights: np.ndarray):
        """``sum_m w_m K_m(X2, X)`` (``n2 x n``, on the bank's device)."""
        spectral, trend = self._split(weights)
        part = (self.trend.features(np.asarray(X2, float)) * trend) @ self.H.T
        return self.spectral.cross(X2, spectral) + self.ops.asarray(part)

    def prior_variance(self, X2: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``k(x, x)`` at ``n2`` new inputs: the spectral weights' sum plus ``sum_t w_t h_t^2``."""
        spectral, trend = self._split(weights)
        return spectral.sum() + (self.trend.features(X2) ** 2) @ trend

    def component(self, m: int) -> np.ndarray:
        if m < self.spectral.M:
            return self.spectral.component(m)
        h = self.H[:, m - self.spectral.M]
        return np.outer(h, h)

    def apply(self, v: np.ndarray, components: np.ndarray) -> np.ndarray:
        """``K_m v`` for each listed component: ``n x len(components)``; a trend column is
        ``h_t (h_t^T v)``."""
        components = np.asarray(components, dtype=int)
        spectral = components < self.spectral.M
        out = np.empty((self.n, len(components)))
        out[:, spectral] = self.spectral.apply(v, components[spectral])
        H = self.H[:, components[~spectral] - self.spectral.M]
        out[:, ~spectral] = H * (H.T @ np.asarray(v, float))
        return out

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
        H = self.H[:, components[~spectral] - self.spectral.M]
        if traces is not None:  # A may hold only its lower triangle, as for the spectral bank
            AH = self.ops.numpy(self.ops.symm_lower(A, self.ops.asarray(H)))
            traces[~spectral] = np.einsum("it,it->t", H, AH)
        if quads is not None:
            quads[~spectral] = (H.T @ self.ops.numpy(alpha)) ** 2
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
    return float(spectral.sum()) + (trend.features(Z) ** 2) @ weights[len(spectral) :]


def prior_variance(bank, X2: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``k(x, x)`` at ``n2`` inputs: the weights' sum for a spectral bank (every component has
    ``k_m(0) = 1``), plus the trend part's ``sum_t w_t h_t(x)^2`` for a :class:`TrendBank`."""
    if isinstance(bank, TrendBank):
        return bank.prior_variance(X2, weights)
    return np.full(len(X2), float(np.sum(weights)))
