"""Sub-kernel matrices of one data shard, evaluated without storing M dense n x n matrices.

``K_m = E_g o (Phi_m Phi_m^T)`` (see :class:`~distgp.kernels.grid.EnvelopeGroup`): one dense
envelope ``E_g`` per group (a handful), and cosine/sine features computed on the fly in column
chunks. Every quantity the solvers need is a Frobenius product ``<A, K_m>`` that becomes one
matrix product per group::

    <A, K_m> = sum_j phi_j^T (A o E_g) phi_j        over the feature columns j of component m

Cost per call: ``O(n^2 * columns)`` flops for the products and ``O(G n^2)`` memory.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from distgp.kernels.grid import EnvelopeGroup, SpectralGrid, expand

_CHUNK_DIRECTIONS = 1024  # directions per feature block (2 columns each); bounds temporary memory
FEATURE_CACHE_BYTES = 256 * 2**20  # features of the bank's own inputs kept up to this size
TWO_PI = 2.0 * np.pi


def envelope(X1: np.ndarray, X2: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """``exp(-2 pi^2 sum_p v_p (x1_p - x2_p)^2)``: ``n1 x P``, ``n2 x P`` inputs -> ``n1 x n2``."""
    scale = np.sqrt(2.0 * np.pi**2 * variance)
    A, B = X1 * scale, X2 * scale
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.exp(-np.maximum(sq, 0.0))


def features(X: np.ndarray, directions: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Scaled features ``n x 2J``: ``sqrt(c_j) [cos(2 pi X u_j), sin(2 pi X u_j)]``."""
    phase = TWO_PI * (X @ directions.T)
    root = np.sqrt(coef)
    return np.hstack((np.cos(phase) * root, np.sin(phase) * root))


class SubKernelBank:
    """The ``M`` GSMP sub-kernels on one set of (transformed) inputs.

    Args:
        X: ``n x P`` inputs, already in the grid's units (standardised unless reference grid).
        grid: the spectral grid.
        cache_envelopes: keep the ``G`` envelope matrices (``G n^2`` floats) between calls;
            turn off for a one-off ``gram`` on large ``n``.
    """

    def __init__(self, X: np.ndarray, grid: SpectralGrid, cache_envelopes: bool = True) -> None:
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.grid = grid
        self.groups: list[EnvelopeGroup] = expand(grid)
        self.M = grid.components
        self.n = self.X.shape[0]
        self._group_of = np.empty(self.M, dtype=int)
        self._position_of = np.empty(self.M, dtype=int)
        for g, group in enumerate(self.groups):
            self._group_of[group.components] = g
            self._position_of[group.components] = np.arange(len(group.components))
        self._cache = cache_envelopes
        self._envelopes: dict[int, np.ndarray] = {}
        self._feature_cache: dict[int, np.ndarray] = {}
        self._feature_bytes = 0

    def _envelope(self, g: int) -> np.ndarray:
        E = self._envelopes.get(g)
        if E is None:
            E = envelope(self.X, self.X, self.groups[g].variance)
            if self._cache:
                self._envelopes[g] = E
        return E

    @property
    def nbytes(self) -> int:
        """Memory held by the cached envelopes and features, in bytes."""
        return sum(E.nbytes for E in self._envelopes.values()) + self._feature_bytes

    # --- selection helpers -------------------------------------------------------------------

    def _by_group(self, components: np.ndarray):
        """Yield ``(g, positions, order)`` per group: positions within the group and the indices
        into ``components`` they came from."""
        components = np.asarray(components, dtype=int)
        groups = self._group_of[components]
        for g in np.unique(groups):
            order = np.flatnonzero(groups == g)
            yield int(g), self._position_of[components[order]], order

    def _direction_blocks(self, g: int, positions: np.ndarray):
        """Yield index arrays of the group's directions owned by ``positions``, in chunks."""
        idx = np.flatnonzero(np.isin(self.groups[g].owner, positions))
        for start in range(0, len(idx), _CHUNK_DIRECTIONS):
            yield idx[start : start + _CHUNK_DIRECTIONS]

    def _features(self, g: int, block: np.ndarray, X: np.ndarray | None = None):
        """Feature columns ``n x 2b`` of a direction block and the group position owning each.

        The bank's own features are computed once per group and kept when they fit in
        ``FEATURE_CACHE_BYTES``; features of other inputs are computed on demand.
        """
        group = self.groups[g]
        owner = group.owner[block]
        owners = np.concatenate((owner, owner))
        if X is not None:
            return features(X, group.directions[block], group.coef[block]), owners
        cached = self._feature_cache.get(g)
        size = self.n * 16 * len(group.coef)
        if cached is None and self._feature_bytes + size <= FEATURE_CACHE_BYTES:
            cached = features(self.X, group.directions, group.coef)
            self._feature_cache[g] = cached
            self._feature_bytes += cached.nbytes
        if cached is None:
            return features(self.X, group.directions[block], group.coef[block]), owners
        J = len(group.coef)
        return cached[:, np.concatenate((block, block + J))], owners

    # --- kernel matrices -----------------------------------------------------------------------

    def gram(self, weights: np.ndarray) -> np.ndarray:
        """``sum_m w_m K_m`` (``n x n``) for ``M`` non-negative weights."""
        weights = np.asarray(weights, float)
        active = np.flatnonzero(weights > 0)
        K = np.zeros((self.n, self.n))
        for g, positions, order in self._by_group(active):
            w_pos = np.zeros(len(self.groups[g].components))
            w_pos[positions] = weights[active[order]]
            inner = np.zeros((self.n, self.n), order="F")
            for block in self._direction_blocks(g, positions):
                Phi, owner = self._features(g, block)
                B = np.asfortranarray(Phi * np.sqrt(w_pos[owner]))
                # symmetric rank-k update: half the flops of B @ B.T (lower triangle only)
                inner = scipy.linalg.blas.dsyrk(1.0, B, beta=1.0, c=inner, lower=1, overwrite_c=1)
            K += self._envelope(g) * inner
        K += K.T  # only the lower triangle was filled: mirror it (numpy copies the overlap)
        K[np.diag_indices_from(K)] *= 0.5
        return K

    def cross(self, X2: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``sum_m w_m K_m(X2, X)`` (``n2 x n``) between new inputs and the bank's."""
        weights = np.asarray(weights, float)
        active = np.flatnonzero(weights > 0)
        K = np.zeros((X2.shape[0], self.n))
        for g, positions, order in self._by_group(active):
            w_pos = np.zeros(len(self.groups[g].components))
            w_pos[positions] = weights[active[order]]
            inner = np.zeros_like(K)
            for block in self._direction_blocks(g, positions):
                Phi, owner = self._features(g, block)
                Phi2 = self._features(g, block, X2)[0]
                inner += (Phi2 * w_pos[owner]) @ Phi.T
            K += envelope(X2, self.X, self.groups[g].variance) * inner
        return K

    def component(self, m: int) -> np.ndarray:
        """Dense ``K_m`` (``n x n``); for tests and the reference SOCP solver on small problems."""
        weights = np.zeros(self.M)
        weights[m] = 1.0
        return self.gram(weights)

    def apply(self, v: np.ndarray, components: np.ndarray) -> np.ndarray:
        """``K_m v`` for each listed component: ``n x len(components)``, one column each.

        Per envelope group ``K_m v = sum_d phi_d o (E (phi_d o v))`` over the component's
        feature columns ``d``: one matrix product per group.
        """
        components = np.asarray(components, dtype=int)
        out = np.zeros((self.n, len(components)))
        v = np.asarray(v, float)
        for g, positions, order in self._by_group(components):
            size = len(self.groups[g].components)
            E = self._envelope(g)
            acc = np.zeros((self.n, size))
            for block in self._direction_blocks(g, positions):
                Phi, owner = self._features(g, block)
                columns = Phi * (E @ (Phi * v[:, None]))
                acc += columns @ np.eye(size)[owner]
            out[:, order] = acc[:, positions]
        return out

    # --- Frobenius products --------------------------------------------------------------------

    def products(
        self,
        components: np.ndarray,
        A: np.ndarray | None = None,
        alpha: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``<A, K_m>`` (symmetric ``n x n`` ``A``) and ``alpha^T K_m alpha`` per component.

        Either argument may be omitted; its result is then ``None``. Results follow the order of
        ``components``.
        """
        components = np.asarray(components, dtype=int)
        traces = None if A is None else np.empty(len(components))
        quads = None if alpha is None else np.empty(len(components))
        for g, positions, order in self._by_group(components):
            size = len(self.groups[g].components)
            E = self._envelope(g)
            AE = None if A is None else A * E
            acc_t, acc_q = np.zeros(size), np.zeros(size)
            for block in self._direction_blocks(g, positions):
                Phi, owner = self._features(g, block)
                if AE is not None:
                    acc_t += np.bincount(owner, ((AE @ Phi) * Phi).sum(0), minlength=size)
                if alpha is not None:
                    Psi = Phi * alpha[:, None]
                    acc_q += np.bincount(owner, ((E @ Psi) * Psi).sum(0), minlength=size)
            if traces is not None:
                traces[order] = acc_t[positions]
            if quads is not None:
                quads[order] = acc_q[positions]
        return traces, quads
