"""Spectral grids of the GSMP kernel (docs/gsmp.md).

A GSMP sub-kernel ``m`` is a product over input dimensions of 1-D spectral-mixture factors::

    k_m(tau) = prod_p cos(2 pi mu[m, p] tau_p) * exp(-2 pi^2 v[m, p] tau_p^2)

with fixed frequencies ``mu`` (cycles per input unit) and spectral variances ``v``; only the
non-negative weights of the components are learned. Every component has ``k_m(0) = 1``.

Two designs:

* :func:`data_grid` (default): standardised inputs; frequency bounds from the data,
  ``F = n^(1/P) / (2 sqrt(12))`` cycles per standard deviation (the Nyquist frequency of ``n``
  evenly spaced points, whose range is ``sqrt(12)`` standard deviations), so ``F / std_p`` in each
  raw dimension; a uniform frequency grid on ``[0, F]`` whose spacing sets the bandwidth. For
  ``P > 1`` each component
  carries one frequency in one dimension under a full-dimensional Gaussian envelope, and the
  envelope bandwidth runs over ``levels`` geometric steps from the grid spacing up to ``F_p``, so
  the family holds smooth trends, periodic structure and short length scales alike. ``slow``
  extra zero-frequency components with bandwidths of 1/4, 1/16, ... of the spacing resolve the
  lowest frequency bin, where slow trends live (they extrapolate a trend over a horizon longer
  than the grid's longest length scale).
* :func:`reference_grid`: the SLIM-KL code's grid, raw inputs, ``mu[m] = f_m (1, ..., 1)`` with
  ``f = linspace(0, 0.5, M)`` and spectral standard deviation 0.001.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from distgp.config import FitConfig, KernelConfig
from distgp.exceptions import ConfigError
from distgp.settings import require

REFERENCE_BANDWIDTH = 1e-3  # spectral standard deviation of the reference code ("var" = 0.001)
REFERENCE_MAX_FREQUENCY = 0.5
SLOW_FACTOR = 4.0  # bandwidth ratio between successive slow components


@dataclass(frozen=True)
class SpectralGrid:
    """Fixed spectral parameters of ``M`` GSMP components over ``P`` input dimensions.

    Attributes:
        means: ``M x P`` frequencies, cycles per (standardised) input unit, non-negative.
        variances: ``M x P`` spectral variances (squared bandwidths), non-negative.
        standardize_inputs: whether inputs are standardised before the kernel sees them.
        kind: ``data`` or ``reference``.
    """

    means: np.ndarray
    variances: np.ndarray
    standardize_inputs: bool = True
    kind: str = "data"

    def __post_init__(self) -> None:
        if self.means.shape != self.variances.shape or self.means.ndim != 2:
            raise ConfigError("grid means and variances must both be M x P arrays")
        if self.means.shape[0] < 1:
            raise ConfigError("a spectral grid needs at least one component (M >= 1)")
        if np.any(self.means < 0) or np.any(self.variances < 0):
            raise ConfigError("grid frequencies and spectral variances must be non-negative")

    @property
    def components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dims(self) -> int:
        return int(self.means.shape[1])

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "grid_means": self.means,
            "grid_variances": self.variances,
            "grid_standardize_inputs": np.asarray(self.standardize_inputs),
            "grid_kind": np.asarray(self.kind),
        }

    @classmethod
    def from_dict(cls, d) -> SpectralGrid:
        return cls(
            np.asarray(d["grid_means"], float),
            np.asarray(d["grid_variances"], float),
            bool(d["grid_standardize_inputs"]),
            str(d["grid_kind"]),
        )


def default_levels(dims: int) -> int:
    """Bandwidth levels of the data grid: 1 in 1-D, 4 otherwise."""
    return 1 if dims == 1 else 4


def default_components(dims: int) -> int:
    """The reference code's component count: 500 in 1-D, 100 per dimension otherwise."""
    return 500 if dims == 1 else 100 * dims


STANDARD_SPAN = float(np.sqrt(12.0))  # range of evenly spaced points, in standard deviations


def frequency_bounds(n: int, dims: int) -> np.ndarray:
    """Upper frequency per dimension (cycles per standard deviation of standardised inputs).

    ``F = n^(1/P) / (2 sqrt(12))``: in 1-D the Nyquist frequency of ``n`` evenly spaced points
    (their range is ``sqrt(12)`` standard deviations); in ``P`` dimensions that of a regular grid
    with as many points. ``n`` counts distinct input rows (copies of an input resolve no higher
    frequency). It needs only ``n``, so agents reveal no data extremes.
    """
    return np.full(dims, n ** (1.0 / dims) / (2.0 * STANDARD_SPAN))


def data_grid(
    n: int,
    dims: int,
    components: int | None = None,
    levels: int | None = None,
    frequency_scale: float = 1.0,
    slow: int = KernelConfig.slow_components,
    constant: Sequence[int] = (),
) -> SpectralGrid:
    """Data-driven GSMP grid for standardised inputs.

    Args:
        n: number of distinct training input rows (the sum of the agents' counts).
        dims: number of input dimensions ``P``.
        components: target number of components ``M`` (default :func:`default_components`).
        levels: bandwidth levels (default 1 in 1-D, 4 otherwise), at most as many as
            ``components`` has room for (one component per level in 1-D, ``1 + P`` otherwise).
        frequency_scale: multiplies the frequency bounds.
        slow: extra zero-frequency components with sub-spacing bandwidths.
        constant: input dimensions whose data do not vary (``P > 1``): no frequencies along
            them (a cosine of a zero difference is 1, so each would repeat a pure envelope);
            the other dimensions share the components.

    Returns:
        A grid with about ``components`` components (exactly ``components + slow`` in 1-D).
    """
    M = default_components(dims) if components is None else int(components)
    require(FitConfig, "kernel.components", M)
    L = default_levels(dims) if levels is None else int(levels)
    require(FitConfig, "kernel.levels", L)
    require(FitConfig, "kernel.frequency_scale", frequency_scale)
    require(FitConfig, "kernel.slow_components", slow)
    F = frequency_bounds(n, dims) * frequency_scale
    if dims == 1:
        L = min(L, M)
        Q = max(1, M // L)
        freqs = np.linspace(0.0, F[0], Q) if Q > 1 else np.zeros(1)
        spacing = F[0] / max(Q - 1, 1)
        means, variances = [], []
        for level in range(L):
            width = spacing * _level_factor(level, L, Q)
            means.append(freqs[:, None])
            variances.append(np.full((Q, 1), width**2))
        return _with_slow(means, variances, np.array([spacing]), slow)
    # Multi-dimensional: per level, one pure envelope plus (Q - 1) frequencies in each dimension.
    varying = sorted(set(range(dims)) - set(constant))
    L = min(L, max(1, M // (1 + len(varying))))  # a level holds at least 1 + P' components
    per_level = max(1, M // L)
    Q = max(2, round((per_level - 1) / max(len(varying), 1)) + 1)
    spacing = F / (Q - 1)
    means, variances = [], []
    for level in range(L):
        width = spacing * _level_factor(level, L, Q)
        rows = [np.zeros(dims)]
        for p in varying:
            for f in np.linspace(0.0, F[p], Q)[1:]:
                mu = np.zeros(dims)
                mu[p] = f
                rows.append(mu)
        means.append(np.array(rows))
        variances.append(np.tile(width**2, (len(rows), 1)))
    return _with_slow(means, variances, spacing, slow)


def _with_slow(means: list, variances: list, spacing: np.ndarray, slow: int) -> SpectralGrid:
    """Append ``slow`` zero-frequency components with bandwidths ``spacing / 4^k``."""
    for k in range(1, slow + 1):
        means.append(np.zeros((1, len(spacing))))
        variances.append((spacing / SLOW_FACTOR**k)[None, :] ** 2)
    return SpectralGrid(np.vstack(means), np.vstack(variances), True, "data")


def _level_factor(level: int, levels: int, Q: int) -> float:
    """Bandwidth multiple of the grid spacing: geometric from 1 to ``Q - 1`` over the levels."""
    if levels == 1:
        return 1.0
    return float(max(Q - 1, 1) ** (level / (levels - 1)))


def reference_grid(dims: int, components: int | None = None) -> SpectralGrid:
    """The SLIM-KL code's grid: raw inputs, ``mu_m = f_m (1..1)``, ``f = linspace(0, 0.5, M)``."""
    M = require(
        FitConfig,
        "kernel.components",
        default_components(dims) if components is None else int(components),
    )
    f = np.linspace(0.0, REFERENCE_MAX_FREQUENCY, M)
    means = np.repeat(f[:, None], dims, axis=1)
    variances = np.full((M, dims), REFERENCE_BANDWIDTH**2)
    return SpectralGrid(means, variances, False, "reference")


# ----------------------------------------------------------------------------------------------
# Expansion into shared envelopes and cosine features


@dataclass(frozen=True)
class EnvelopeGroup:
    """Components that share one Gaussian envelope ``exp(-2 pi^2 sum_p v_p tau_p^2)``.

    Each component is a weighted sum of ``cos(2 pi u_j . tau)`` over its directions ``u_j``
    (the product of cosines expanded by sign patterns), and
    ``cos(2 pi u . (x - x')) = cos(2 pi u.x) cos(2 pi u.x') + sin(2 pi u.x) sin(2 pi u.x')``,
    so ``K_m = E o (Phi_m Phi_m^T)`` with ``Phi_m`` the scaled cosine and sine features.

    Attributes:
        variance: ``P`` spectral variances of the envelope.
        components: ``G`` component indices (into the grid) in this group.
        directions: ``J x P`` frequency vectors of all directions of the group.
        owner: ``J`` position (0..G-1) of each direction's component within ``components``.
        coef: ``J`` non-negative coefficients (``2^-(s-1)`` for ``s`` non-zero frequencies).
    """

    variance: np.ndarray
    components: np.ndarray
    directions: np.ndarray
    owner: np.ndarray
    coef: np.ndarray


def expand(grid: SpectralGrid) -> list[EnvelopeGroup]:
    """Group the grid's components by envelope and expand each into cosine directions."""
    keys: dict[bytes, list[int]] = {}
    for m, variance in enumerate(grid.variances):
        keys.setdefault(variance.tobytes(), []).append(m)
    groups = []
    for members in keys.values():
        means = grid.means[members]
        nonzero = np.count_nonzero(means > 0, axis=1)
        if nonzero.max(initial=0) <= 1:  # the data grid: one direction per component
            directions, owner, coef = means, np.arange(len(members)), np.ones(len(members))
        else:
            directions, owner, coef = _sign_patterns(means)
        groups.append(
            EnvelopeGroup(
                variance=grid.variances[members[0]].copy(),
                components=np.array(members),
                directions=np.array(directions, dtype=float),
                owner=owner,
                coef=coef,
            )
        )
    return groups


def _sign_patterns(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directions, owning positions and coefficients of components with frequencies in several
    dimensions: ``prod_p cos(a_p)`` is the mean of ``cos(a_1 +- a_2 +- ...)`` over the
    ``2^(s-1)`` sign patterns of its ``s`` non-zero frequencies."""
    dirs, owner, coef = [], [], []
    for position, mu in enumerate(means):
        nonzero = np.flatnonzero(mu > 0)
        if nonzero.size == 0:
            dirs.append(np.zeros_like(mu))
            owner.append(position)
            coef.append(1.0)
            continue
        weight = 2.0 ** -(nonzero.size - 1)
        for signs in product((1.0, -1.0), repeat=nonzero.size - 1):
            u = np.zeros_like(mu)
            u[nonzero] = mu[nonzero] * np.array((1.0, *signs))
            dirs.append(u)
            owner.append(position)
            coef.append(weight)
    return np.array(dirs), np.array(owner), np.array(coef)


def grid_from_recipe(recipe: dict) -> SpectralGrid:
    """The grid a recipe names (what the driver sends agents instead of the grid's arrays):
    ``{"kind", "n", "distinct", "dims", "components", "levels", "frequency_scale",
    "slow_components", "constant_dims"}``; the frequency bound counts ``distinct`` input rows.
    A recipe from an older model file may lack ``distinct`` (its grid counted all ``n`` rows)
    and the last two (the default and no constant dimension)."""
    if recipe["kind"] == "reference":
        return reference_grid(int(recipe["dims"]), recipe["components"])
    return data_grid(
        int(recipe.get("distinct", recipe["n"])),
        int(recipe["dims"]),
        recipe["components"],
        recipe["levels"],
        float(recipe["frequency_scale"]),
        int(recipe.get("slow_components", KernelConfig.slow_components)),
        recipe.get("constant_dims", ()),
    )
