"""The DTC posterior of BKB on a Nyström dictionary, kept up to date with low-rank updates.

Notation (``docs``: bkb.md 1.3, forecast-and-bkb-notes.md 3): ``A`` arms, dictionary ``S`` of
``m`` atoms (arm indices), embedding ``z(x) = T k_S(x)`` with ``r <= m`` coordinates
(``T``: ``r x m``, so that ``z(s)^T z(s') = k(s, s')`` on the span of ``S``), pull counts ``n_i``
and raw reward sums ``ysum_i`` by arm, ``V = sum_i n_i z_i z_i^T + lam I``. Per arm the state
keeps

* ``Z`` (``A x r``): the embedding of every arm (the only ``O(A m)`` array);
* ``resid = k(x, x) - |z(x)|^2`` (the part of the prior outside the span) and
  ``q = z^T V^-1 z``, so that ``variance = resid / lam + q`` (GP variance / lam);
* ``mu_y = z^T V^-1 sum_i z_i ysum_i`` and ``mu_1 = z^T V^-1 sum_i n_i z_i``, so that the mean
  of rewards standardised with ``(mean, scale)`` is ``(mu_y - mean mu_1) / scale``.

Updates (each ``O(A r)``; ``h``, ``c``, ... are named as in the notes):

* :meth:`pull` of arm ``j`` with reward ``y``: ``h = V^-1 z_j``, ``c = Z h``,
  ``g = 1 + z_j^T h``; ``q -= c^2 / g``, ``mu_y += c (y - mu_y[j]) / g`` (Sherman-Morrison).
* :meth:`insert` of atom ``s``: every arm gains one coordinate
  ``e(x) = (k(x, s) - z(s)^T z(x)) / d`` with ``d^2 = resid[s]`` (one Cholesky/Gram-Schmidt
  step; old coordinates unchanged); ``V`` gains the column ``v = sum_i n_i e_i z_i`` and the
  corner ``sum_i n_i e_i^2 + lam``; with ``u = V^-1 v`` and ``w = corner - v^T u`` (Schur),
  ``q += (e - Z u)^2 / w`` and ``mu += (e - Z u)(b_new - u^T b) / w``.
* :meth:`rebuild` from a new dictionary: ``K_S = U diag(s) U^T``, eigenvalues below
  ``m eps max(s)`` dropped, ``T = diag(s)^-1/2 U^T``; everything recomputed, ``O(A m r)``.

Rebuilds and kernel columns go through the arms in chunks of :data:`CHUNK` rows, so the only
array of size ``A x m`` is ``Z`` itself.
"""

from __future__ import annotations

import os

import numpy as np

from distgp.bandit.kernels import BanditKernel
from distgp.exceptions import ConfigError

CHUNK = 16384  # arms per chunk of kernel evaluations
EIG_RTOL = float(np.finfo(float).eps)  # relative eigenvalue cut, times m (as the reference code)
SPAN_RTOL = 1e-10  # resid below this fraction of k(x, x): already in the span
REFACTOR_EVERY = 64  # pulls between recomputations of V^-1 from V
MIN_RANK = 32  # embedding columns an arm set must have room for
ARM_VECTORS = 12  # float64 vectors of length A (posterior parts, counts, caches)


def available_memory() -> int:
    """Bytes of memory available to this process (``MemAvailable``; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def arm_bytes(dims: int, rank: int = MIN_RANK) -> int:
    """Bytes per arm: its ``dims`` coordinates, ``rank`` embedding columns, per-arm vectors."""
    return 8 * (dims + rank + ARM_VECTORS)


def check_arm_memory(arms: int, dims: int, available: int | None = None) -> None:
    """Raise :class:`ConfigError` when ``arms`` arms of ``dims`` columns cannot fit in memory."""
    available = available_memory() if available is None else available
    need = arms * arm_bytes(dims)
    if need > available:
        raise ConfigError(
            f"{arms} arms of {dims} encoded dimension(s) need at least {need / 2**30:.1f} GiB "
            f"(coordinates, a {MIN_RANK}-column embedding and per-arm posteriors) but "
            f"{available / 2**30:.1f} GiB is available; at most "
            f"{available // arm_bytes(dims)} arms fit: use fewer arms"
        )


def kernel_columns(kernel: BanditKernel, arms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``k(arms, points)`` (``A x k``), evaluated ``CHUNK`` arms at a time."""
    out = np.empty((len(arms), len(points)))
    for lo in range(0, len(arms), CHUNK):
        out[lo : lo + CHUNK] = kernel(arms[lo : lo + CHUNK], points)
    return out


class DTCState:
    """BKB's posterior over all arms; see the module docstring.

    Args:
        arms: ``A x D`` encoded arms (not copied; the caller keeps it current).
        kdiag: ``k(x, x)`` per arm (``A``).
        lam: ridge ``lambda``.
    """

    def __init__(self, arms: np.ndarray, kdiag: np.ndarray, lam: float) -> None:
        A = len(arms)
        self.lam = lam
        self.atoms = np.zeros(0, dtype=np.int64)
        self.T = np.zeros((0, 0))
        self._Z = np.zeros((A, 0), order="F")  # columns contiguous: Z @ h streams them
        self.resid = kdiag.astype(float).copy()
        self.q = np.zeros(A)
        self.mu_y = np.zeros(A)
        self.mu_1 = np.zeros(A)
        self.V = np.zeros((0, 0))
        self.Vinv = np.zeros((0, 0))
        self.b_y = np.zeros(0)
        self.b_1 = np.zeros(0)
        self.n = np.zeros(A)
        self.ysum = np.zeros(A)
        self._since_refactor = 0

    # --- views ---------------------------------------------------------------------------------

    @property
    def rank(self) -> int:
        return int(self.T.shape[0])

    @property
    def Z(self) -> np.ndarray:
        """``A x r`` embedding (a view of a buffer with spare columns)."""
        return self._Z[:, : self.rank]

    def variance(self) -> np.ndarray:
        return np.maximum(self.resid / self.lam + self.q, 0.0)

    def mean(self, y_mean: float, y_scale: float) -> np.ndarray:
        return (self.mu_y - y_mean * self.mu_1) / y_scale

    def nbytes(self) -> int:
        return int(self._Z.nbytes)

    # --- updates -------------------------------------------------------------------------------

    def pull(self, arm: int, y: float) -> None:
        """Add one pull of ``arm`` with raw reward ``y`` to ``V`` and every arm's posterior."""
        self.n[arm] += 1.0
        self.ysum[arm] += y
        if self.rank == 0:
            return
        z = self.Z[arm].copy()
        h = self.Vinv @ z
        g = 1.0 + z @ h
        c = self.Z @ h
        self.q -= c * c / g
        self.mu_y += c * ((y - self.mu_y[arm]) / g)
        self.mu_1 += c * ((1.0 - self.mu_1[arm]) / g)
        self.V += np.outer(z, z)
        self.b_y += z * y
        self.b_1 += z
        self._since_refactor += 1
        if self._since_refactor >= REFACTOR_EVERY:
            self.Vinv = _spd_inverse(self.V)
            self._since_refactor = 0
        else:
            self.Vinv -= np.outer(h, h / g)

    def pull_many(self, arms: list[int], ys: list[float]) -> None:
        """Several pulls: one by one (``O(A r)`` each), or, for more than ``r / 2`` of them, added
        to ``V`` at once and every arm's posterior recomputed (``O(A r^2)``, one matrix product)."""
        if len(arms) <= max(self.rank // 2, 1):
            for arm, y in zip(arms, ys, strict=True):
                self.pull(arm, y)
            return
        idx, y = np.asarray(arms, dtype=np.int64), np.asarray(ys, dtype=float)
        np.add.at(self.n, idx, 1.0)
        np.add.at(self.ysum, idx, y)
        Zb = self.Z[idx]
        self.V += Zb.T @ Zb
        self.b_y += Zb.T @ y
        self.b_1 += Zb.sum(0)
        self.Vinv = _spd_inverse(self.V)
        self._since_refactor = 0
        self.q, self.mu_y, self.mu_1 = self._project(self.Z)

    def insert(self, kernel: BanditKernel, arms: np.ndarray, s: int) -> bool:
        """Add arm ``s`` to the dictionary; ``False`` (nothing changed) if it is in the span."""
        d2 = float(self.resid[s])
        if d2 <= SPAN_RTOL * (d2 + float((self.Z[s] ** 2).sum())):
            return False
        d = np.sqrt(d2)
        r = self.rank
        l = self.Z[s].copy()
        e = kernel_columns(kernel, arms, arms[s : s + 1])[:, 0]
        if r:
            e -= self.Z @ l
        e /= d
        e[s] = d
        pulled = np.flatnonzero(self.n)
        ne = self.n[pulled] * e[pulled]
        v = self.Z[pulled].T @ ne
        u = self.Vinv @ v
        w = float(ne @ e[pulled]) + self.lam - float(v @ u)
        by_new, b1_new = float(e[pulled] @ self.ysum[pulled]), float(ne.sum())
        delta = e - self.Z @ u if r else e.copy()
        self.q += delta * delta / w
        self.mu_y += delta * ((by_new - u @ self.b_y) / w)
        self.mu_1 += delta * ((b1_new - u @ self.b_1) / w)
        self.resid = np.maximum(self.resid - e * e, 0.0)
        Vinv = np.empty((r + 1, r + 1))
        Vinv[:r, :r] = self.Vinv + np.outer(u, u / w)
        Vinv[:r, r] = Vinv[r, :r] = -u / w
        Vinv[r, r] = 1.0 / w
        V = np.empty((r + 1, r + 1))
        V[:r, :r] = self.V
        V[:r, r] = V[r, :r] = v
        V[r, r] = w + float(v @ u)
        self.V, self.Vinv = V, Vinv
        self.b_y, self.b_1 = np.r_[self.b_y, by_new], np.r_[self.b_1, b1_new]
        m = self.atoms.size
        T = np.zeros((r + 1, m + 1))
        T[:r, :m] = self.T
        T[r, :m] = -(l @ self.T) / d
        T[r, m] = 1.0 / d
        self.T = T
        self.atoms = np.r_[self.atoms, s]
        self._column(r)[:] = e
        return True

    def _column(self, j: int) -> np.ndarray:
        """Column ``j`` of the embedding buffer, growing the buffer when full."""
        if j >= self._Z.shape[1]:
            grown = np.zeros((self._Z.shape[0], j + max(16, j // 4)), order="F")
            grown[:, :j] = self._Z[:, :j]
            self._Z = grown
        return self._Z[:, j]

    def rebuild(
        self, kernel: BanditKernel, arms: np.ndarray, kdiag: np.ndarray, atoms: np.ndarray
    ) -> None:
        """Recompute everything from the dictionary ``atoms`` and the pull counts."""
        self.atoms = np.asarray(atoms, dtype=np.int64).copy()
        S = arms[self.atoms]
        if self.atoms.size:
            K_S = kernel(S, S)
            s, U = np.linalg.eigh(0.5 * (K_S + K_S.T))
            keep = s > s[-1] * len(s) * EIG_RTOL
            self.T = (U[:, keep] / np.sqrt(s[keep])).T
        else:
            self.T = np.zeros((0, 0))
        r = self.rank
        self._Z = np.zeros((len(arms), r + max(16, r // 4)), order="F")
        for lo in range(0, len(arms), CHUNK):
            hi = min(lo + CHUNK, len(arms))
            if r:
                self._Z[lo:hi, :r] = kernel(arms[lo:hi], S) @ self.T.T
        Z = self.Z
        self.resid = np.maximum(kdiag - (Z**2).sum(1), 0.0)
        pulled = np.flatnonzero(self.n)
        Zp = Z[pulled]
        self.V = Zp.T @ (Zp * self.n[pulled, None]) + self.lam * np.eye(r)
        self.Vinv = _spd_inverse(self.V)
        self.b_y = Zp.T @ self.ysum[pulled]
        self.b_1 = Zp.T @ self.n[pulled]
        self._since_refactor = 0
        self.q, self.mu_y, self.mu_1 = self._project(Z)

    def _project(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``q``, ``mu_y``, ``mu_1`` of embedded rows ``Z``, in chunks."""
        q = np.empty(len(Z))
        for lo in range(0, len(Z), CHUNK):
            block = Z[lo : lo + CHUNK]
            q[lo : lo + CHUNK] = ((block @ self.Vinv) * block).sum(1)
        if not Z.shape[1]:
            return q, np.zeros(len(Z)), np.zeros(len(Z))
        return q, Z @ (self.Vinv @ self.b_y), Z @ (self.Vinv @ self.b_1)

    def add_arms(self, kernel: BanditKernel, arms: np.ndarray, k: int) -> None:
        """Embed the last ``k`` rows of ``arms`` (just appended)."""
        new = arms[-k:]
        r = self.rank
        Zn = kernel(new, arms[self.atoms]) @ self.T.T if r else np.zeros((k, 0))
        grown = np.zeros((self._Z.shape[0] + k, self._Z.shape[1]), order="F")
        grown[:-k, :r] = self.Z
        grown[-k:, :r] = Zn
        self._Z = grown
        resid = np.maximum(kernel.diag(new) - (Zn**2).sum(1), 0.0)
        q, mu_y, mu_1 = self._project(Zn)
        self.resid = np.r_[self.resid, resid]
        self.q, self.mu_y, self.mu_1 = (
            np.r_[self.q, q],
            np.r_[self.mu_y, mu_y],
            np.r_[self.mu_1, mu_1],
        )
        self.n, self.ysum = np.r_[self.n, np.zeros(k)], np.r_[self.ysum, np.zeros(k)]

    # --- state ---------------------------------------------------------------------------------

    FIELDS = ("atoms", "T", "resid", "q", "mu_y", "mu_1", "V", "Vinv", "b_y", "b_1", "n", "ysum")

    def to_state(self) -> dict[str, np.ndarray]:
        out = {name: getattr(self, name) for name in self.FIELDS}
        out["Z"] = self.Z
        out["since_refactor"] = np.asarray(self._since_refactor)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name in self.FIELDS:
            setattr(self, name, np.array(state[name], dtype=getattr(self, name).dtype))
        Z = np.asarray(state["Z"], dtype=float)
        self._Z = np.zeros((Z.shape[0], Z.shape[1] + max(16, Z.shape[1] // 4)), order="F")
        self._Z[:, : Z.shape[1]] = Z
        self._since_refactor = int(state["since_refactor"])


def _spd_inverse(V: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix (symmetrised)."""
    e, Q = np.linalg.eigh(0.5 * (V + V.T))
    return (Q / e) @ Q.T
