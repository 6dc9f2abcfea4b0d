"""Sub-kernel matrices of one data shard, evaluated without storing M dense n x n matrices.

``K_m = E_g o (Phi_m Phi_m^T)`` (see :class:`~distgp.kernels.grid.EnvelopeGroup`): one dense
envelope ``E_g`` per group (a handful), and cosine/sine features computed on the fly in column
chunks. Every quantity the solvers need is a Frobenius product ``<A, K_m>`` that becomes one
matrix product per group::

    <A, K_m> = sum_j phi_j^T (A o E_g) phi_j        over the feature columns j of component m

Cost per call: ``O(n^2 * columns)`` flops for the products and ``O(G n^2)`` memory.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from distgp.kernels.compute import ops_for
from distgp.kernels.grid import EnvelopeGroup, SpectralGrid, expand

_CHUNK_DIRECTIONS = 1024  # directions per feature block (2 columns each); bounds temporary memory
FEATURE_CACHE_BYTES = 256 * 2**20  # features of the bank's own inputs kept up to this size
ENVELOPE_CACHE_BYTES = 4 * 2**30  # envelopes kept up to this size; larger ones are recomputed
SCRATCH_BYTES = 2**30  # reusable n x n work matrices (CPU) kept up to this size
TWO_PI = 2.0 * np.pi
SELECTIONS_KEPT = 4  # component selections whose split by group is kept (see SubKernelBank._select)
SELECTION_FEATURE_BYTES = 8 * 2**20  # gathered feature columns kept with one selection


# The GSMP kernel's maths, written once for numpy arrays and torch tensors alike (the bank
# below and the GPyTorch kernel :class:`~distgp.kernels.gsmp.GSMPKernel` both use it):
#   k_m(x, x') = E_g(x, x') sum_j c_j cos(2 pi (x - x') u_j)      (directions u_j of component m)
#             = E_g(x, x') sum_j phi_j(x) . phi_j(x'),  phi_j = sqrt(c_j) [cos, sin](2 pi x u_j)


def envelope(X1, X2, variance):
    """``exp(-2 pi^2 sum_p v_p (x1_p - x2_p)^2)``: ``... x n1 x P``, ``... x n2 x P`` inputs
    (numpy or torch) and ``P`` variances -> ``... x n1 x n2``, of the inputs' kind."""
    xp = _namespace(X1)
    scale = xp.sqrt(_like(X1, variance) * (2.0 * np.pi**2))
    A, B = X1 * scale, X2 * scale
    if xp is np:  # far outside the data (predicting at 1e149) a square overflows: sq = inf,
        with np.errstate(over="ignore"):  # the envelope exp(-inf) = 0, rightly
            return _squared_exp(A, B, np)
    return _squared_exp(A, B, xp)


def _squared_exp(A, B, xp):
    sq = (A**2).sum(-1)[..., :, None] + (B**2).sum(-1)[..., None, :] - 2.0 * (A @ B.mT)
    return xp.exp(-sq.clip(min=0.0))


def features(X, directions, coef):
    """Scaled features ``... x n x 2J``: ``sqrt(c_j) [cos(2 pi X u_j), sin(2 pi X u_j)]`` for
    ``J x P`` directions ``u`` and ``J`` coefficients ``c`` (numpy or torch, as ``X``)."""
    xp = _namespace(X)
    phase = X @ (_like(X, directions) * TWO_PI).mT
    root = xp.sqrt(_like(X, coef))
    return xp.concatenate((xp.cos(phase) * root, xp.sin(phase) * root), axis=-1)


def _is_tensor(a) -> bool:
    return type(a).__module__.startswith("torch")


def _namespace(a):
    """numpy, or torch for a tensor (imported only then: agents on CPU need no torch)."""
    if _is_tensor(a):
        import torch

        return torch
    return np


def _like(X, a):
    """``a`` (numpy or torch) as an array of ``X``'s kind, dtype and device."""
    if _is_tensor(X):
        import torch

        return torch.as_tensor(a, dtype=X.dtype, device=X.device)
    return np.asarray(a, dtype=X.dtype)


class _GroupShare:
    """One envelope group's part of a selection of components.

    Attributes:
        group: index of the envelope group.
        positions: positions of the selected components within the group.
        order: indices into the selection that these components came from.
        chunks: index arrays of the group's directions they own, at most ``_CHUNK_DIRECTIONS``
            each.
        features: the chunks' ``(Phi, owner)`` once gathered and kept (``None`` before).
    """

    __slots__ = ("chunks", "features", "group", "order", "positions")

    def __init__(self, group: int, positions: np.ndarray, order: np.ndarray, chunks: tuple):
        self.group = group
        self.positions = positions
        self.order = order
        self.chunks = chunks
        self.features: list[tuple] | None = None


class _Selection:
    """Components split by envelope group: groups with features, then groups of zero
    frequencies only (``K_m = s_m E_g``); ``room``: bytes of gathered features it may still
    keep."""

    __slots__ = ("enveloped", "featured", "room")

    def __init__(self, featured: list[_GroupShare], enveloped: list[_GroupShare]) -> None:
        self.featured = featured
        self.enveloped = enveloped
        self.room = SELECTION_FEATURE_BYTES


class SubKernelBank:
    """The ``M`` GSMP sub-kernels on one set of (transformed) inputs.

    Args:
        X: ``n x P`` inputs, already in the grid's units (standardised unless reference grid).
        grid: the spectral grid.
        cache_envelopes: keep the ``G`` envelope matrices (``G n^2`` floats) between calls, up
            to ``ENVELOPE_CACHE_BYTES`` (the rest are recomputed); turn off for a one-off
            ``gram`` on large ``n``.
        device: ``cpu`` (numpy), ``cuda``/``cuda:N`` or ``torch:cpu`` (torch float64); see
            :mod:`distgp.kernels.compute`. ``n x n`` results stay on the device.

    Attributes:
        workers: envelope groups processed at once (threads; set by the caller's
            :class:`~distgp.threads.ThreadPlan`, 1 by default).
    """

    def __init__(
        self,
        X: np.ndarray,
        grid: SpectralGrid,
        cache_envelopes: bool = True,
        device: str = "cpu",
    ) -> None:
        self.ops = ops_for(device)
        self.device = device
        self.workers = 1
        self.X = self.ops.asarray(X)
        self.grid = grid
        self.groups: list[EnvelopeGroup] = expand(grid)
        self.M = grid.components
        self.n = self.X.shape[0]
        self._group_of = np.empty(self.M, dtype=int)
        self._position_of = np.empty(self.M, dtype=int)
        for g, group in enumerate(self.groups):
            self._group_of[group.components] = g
            self._position_of[group.components] = np.arange(len(group.components))
        # Groups of zero frequencies only (the slow components): there ``K_m = s_m E_g`` with
        # ``s_m`` the sum of the component's coefficients, so one pass over ``E_g`` (``K += w E``,
        # ``<A, E>``, ``alpha^T E alpha``) replaces the feature products; ``E_g`` is kept as
        # ``ops.lower_part`` stores it.
        self._envelope_scale = {
            g: np.bincount(group.owner, group.coef, minlength=len(group.components))
            for g, group in enumerate(self.groups)
            if not np.any(group.directions)
        }
        self._cache = cache_envelopes
        self._envelopes: dict[int, np.ndarray] = {}
        self._feature_cache: dict[int, np.ndarray] = {}
        self._feature_bytes = 0
        self._scratch: dict[tuple[str, int], np.ndarray] = {}
        self._selections: dict[bytes, _Selection] = {}  # insertion order: least recent first
        self._lock = threading.Lock()  # the caches are filled from worker threads

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _envelope(self, g: int) -> np.ndarray:
        E = self._envelopes.get(g)
        if E is None:
            E = envelope(self.X, self.X, self.groups[g].variance)
            if g in self._envelope_scale:  # read only through the ops' whole-matrix calls
                E = self.ops.lower_part(E)
            elif not self.ops.is_torch:  # the layout of the BLAS matrices it meets (column-major):
                E = np.asfortranarray(E)  # element-wise products of mixed layouts are 3x slower
            held = (len(self._envelopes) + 1) * 8 * self.n**2
            if self._cache and held <= ENVELOPE_CACHE_BYTES:
                self._envelopes[g] = E
        return E

    def _work(self, kind: str, g: int):
        """A reusable ``n x n`` work matrix of group ``g`` for ``kind`` (``None``: allocate one
        per call). The gram's keeps a zero upper triangle: only lower triangles are written."""
        key = (kind, g)
        work = self._scratch.get(key)
        if work is None and (len(self._scratch) + 1) * 8 * self.n**2 <= SCRATCH_BYTES:
            work = self.ops.scratch(self.n)
            if work is not None:
                with self._lock:
                    self._scratch[key] = work
        return work

    @property
    def nbytes(self) -> int:
        """Memory held by the cached envelopes and features (with those gathered for the
        kept selections), in bytes."""
        gathered = sum(SELECTION_FEATURE_BYTES - kept.room for kept in self._selections.values())
        envelopes = 8 * sum(E.shape[0] * E.shape[1] for E in self._envelopes.values())
        return envelopes + self._feature_bytes + gathered

    # --- selection helpers -------------------------------------------------------------------

    def _select(self, components: np.ndarray) -> _Selection:
        """The listed components split by envelope group (in group order). The last few
        selections are kept with their feature columns: DSCA asks for the same active set in
        its linearisation and its trial steps."""
        components = np.asarray(components, dtype=np.intp)
        key = components.tobytes()
        with self._lock:
            kept = self._selections.pop(key, None)
            if kept is not None:
                self._selections[key] = kept  # now the most recent
                return kept
        groups = self._group_of[components]
        by_group = np.argsort(groups, kind="stable")
        counts = np.bincount(groups, minlength=len(self.groups))
        ends = np.cumsum(counts)
        featured, enveloped = [], []
        for g in np.flatnonzero(counts).tolist():
            order = by_group[ends[g] - counts[g] : ends[g]]
            positions = self._position_of[components[order]]
            owned = np.zeros(len(self.groups[g].components), dtype=bool)
            owned[positions] = True
            idx = np.flatnonzero(owned[self.groups[g].owner])
            chunks = tuple(
                idx[start : start + _CHUNK_DIRECTIONS]
                for start in range(0, len(idx), _CHUNK_DIRECTIONS)
            )
            share = _GroupShare(g, positions, order, chunks)
            (enveloped if g in self._envelope_scale else featured).append(share)
        selection = _Selection(featured, enveloped)
        with self._lock:
            self._selections[key] = selection
            while len(self._selections) > SELECTIONS_KEPT:
                self._selections.pop(next(iter(self._selections)))
        return selection

    def _share_features(self, selection: _Selection, share: _GroupShare) -> list[tuple]:
        """``(Phi, owner)`` of each direction chunk of a group's share (see :meth:`_features`),
        kept with the selection while its feature budget lasts."""
        if share.features is not None:
            return share.features
        blocks = [self._features(share.group, chunk) for chunk in share.chunks]
        cached = self._feature_cache.get(share.group)  # returned whole: no memory of its own
        size = sum(8 * Phi.shape[0] * Phi.shape[1] for Phi, _ in blocks if Phi is not cached)
        with self._lock:
            if size <= selection.room:
                selection.room -= size
                share.features = blocks
        return blocks

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
        if cached is None:
            with self._lock:
                fits = self._feature_bytes + size <= FEATURE_CACHE_BYTES
                self._feature_bytes += size if fits else 0
            if fits:
                cached = self._column_major(features(self.X, group.directions, group.coef))
                self._feature_cache[g] = cached
        if cached is None:
            Phi = features(self.X, group.directions[block], group.coef[block])
            return self._column_major(Phi), owners
        J = len(group.coef)
        if len(block) == J:  # every direction, in order: no copy
            return cached, owners
        return self.ops.take_columns(cached, np.concatenate((block, block + J))), owners

    def _column_major(self, Phi):
        """Feature columns as the BLAS calls read them (CPU): column-major, so that scaling
        them, gathering a selection's columns and the products need no copy into that
        layout."""
        return Phi if self.ops.is_torch else np.asfortranarray(Phi)

    def _map(self, task, items: list):
        """``[task(item) for item in items]``, ``workers`` at a time (BLAS releases the GIL)."""
        if self.workers <= 1 or len(items) <= 1:
            return [task(item) for item in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
            return list(pool.map(task, items))

    # --- kernel matrices -----------------------------------------------------------------------

    def gram(self, weights: np.ndarray, lower: bool = False):
        """``sum_m w_m K_m`` (``n x n``, on the bank's device) for ``M`` non-negative weights.

        ``lower``: on the CPU fill only the lower triangle (all a Cholesky factorisation reads).
        """
        ops = self.ops
        weights = np.asarray(weights, float)
        active = np.flatnonzero(weights > 0)

        selection = self._select(active)

        def group_part(share: _GroupShare):
            g = share.group
            w_pos = np.zeros(len(self.groups[g].components))
            w_pos[share.positions] = weights[active[share.order]]
            inner, work = None, self._work("gram", g)
            for Phi, owner in self._share_features(selection, share):
                # symmetric rank-k update: half the flops of B @ B.T (lower triangle only on CPU)
                B = Phi * ops.asarray(np.sqrt(w_pos[owner]))
                inner = ops.syrk_lower(inner, B, self.n, out=work)
            if inner is not None:
                inner *= self._envelope(g)
            return inner

        parts = [p for p in self._map(group_part, selection.featured) if p is not None]
        if parts:  # a new matrix: the groups' work matrices are reused by the next call
            K = parts[0] + (parts[1] if len(parts) > 1 else 0.0)
            for part in parts[2:]:
                K += part
        else:
            K = ops.zeros(self.n, self.n)
        for share in selection.enveloped:
            scale = self._envelope_scale[share.group][share.positions]
            weight = float(scale @ weights[active[share.order]])
            ops.add_scaled(K, self._envelope(share.group), weight)
        return K if lower else ops.symmetrize_lower(K)

    def cross(self, X2: np.ndarray, weights: np.ndarray):
        """``sum_m w_m K_m(X2, X)`` (``n2 x n``, on the bank's device) for new inputs ``X2``."""
        ops = self.ops
        X2 = ops.asarray(X2)
        weights = np.asarray(weights, float)
        active = np.flatnonzero(weights > 0)
        K = ops.zeros(X2.shape[0], self.n)
        selection = self._select(active)
        for share in selection.featured + selection.enveloped:
            g = share.group
            w_pos = np.zeros(len(self.groups[g].components))
            w_pos[share.positions] = weights[active[share.order]]
            inner = ops.zeros(X2.shape[0], self.n)
            features = self._share_features(selection, share)
            for chunk, (Phi, owner) in zip(share.chunks, features, strict=True):
                Phi2 = self._features(g, chunk, X2)[0]
                inner += ops.gemm(Phi2 * ops.asarray(w_pos[owner]), Phi.T)
            K += envelope(X2, self.X, self.groups[g].variance) * inner
        return K

    def component(self, m: int) -> np.ndarray:
        """Dense ``K_m`` (``n x n``); for tests and the reference SOCP solver on small problems."""
        weights = np.zeros(self.M)
        weights[m] = 1.0
        return self.ops.numpy(self.gram(weights))

    def apply(self, v: np.ndarray, components: np.ndarray) -> np.ndarray:
        """``K_m v`` for each listed component: ``n x len(components)``, one column each.

        Per envelope group ``K_m v = sum_d phi_d o (E (phi_d o v))`` over the component's
        feature columns ``d``: one matrix product per group.
        """
        ops = self.ops
        components = np.asarray(components, dtype=int)
        out = np.zeros((self.n, len(components)))
        v = ops.asarray(v)
        selection = self._select(components)
        for share in selection.featured + selection.enveloped:
            size = len(self.groups[share.group].components)
            E = self._envelope(share.group)
            acc = ops.zeros(self.n, size)
            for Phi, owner in self._share_features(selection, share):
                columns = Phi * ops.symm_lower(E, Phi * v[:, None])
                ops.add_columns(acc, columns, owner)
            out[:, share.order] = ops.numpy(acc)[:, share.positions]
        return out

    # --- Frobenius products --------------------------------------------------------------------

    def products(
        self,
        components: np.ndarray,
        A=None,
        alpha=None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``<A, K_m>`` and ``alpha^T K_m alpha`` per component (numpy, order of ``components``).

        ``A`` is symmetric ``n x n`` on the bank's device; on the CPU only its lower triangle is
        read. Either argument may be omitted; its result is then ``None``.
        """
        ops = self.ops
        traces = None if A is None else np.empty(len(components))
        quads = None if alpha is None else np.empty(len(components))
        alpha_col = None if alpha is None else ops.asarray(alpha)[:, None]

        selection = self._select(components)

        def group_part(share: _GroupShare):
            g = share.group
            size = len(self.groups[g].components)
            E = self._envelope(g)
            AE = None
            if A is not None:
                work = self._work("products", g)
                AE = A * E if work is None else np.multiply(A, E, out=work)
            acc_t, acc_q = np.zeros(size), np.zeros(size)
            for Phi, owner in self._share_features(selection, share):
                if AE is not None:
                    AE_Phi = ops.symm_lower(AE, Phi)
                    acc_t += ops.bincount(owner, ops.column_dots(AE_Phi, Phi), size)
                if alpha_col is not None:
                    Psi = Phi * alpha_col
                    acc_q += ops.bincount(owner, ops.column_dots(ops.gemm(E, Psi), Psi), size)
            return acc_t, acc_q

        def envelope_part(share: _GroupShare):
            E, scale = self._envelope(share.group), self._envelope_scale[share.group]
            return (
                None if A is None else scale * ops.frobenius(A, E),
                None if alpha is None else scale * ops.quadratic(E, alpha_col[:, 0]),
            )

        shares = selection.featured + selection.enveloped
        parts = self._map(group_part, selection.featured) + [
            envelope_part(share) for share in selection.enveloped
        ]
        for share, (acc_t, acc_q) in zip(shares, parts, strict=True):
            if traces is not None:
                traces[share.order] = acc_t[share.positions]
            if quads is not None:
                quads[share.order] = acc_q[share.positions]
        return traces, quads
