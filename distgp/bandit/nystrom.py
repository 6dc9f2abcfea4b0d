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

Device: with ``device`` ``cuda`` (or ``torch:cpu``, the same torch code on the CPU) ``Z`` lives
on that device in float64 and the ``O(A r)`` and ``O(A m r)`` products with it run there
(``Z h``, the rows of pulled arms, re-embedding ``k(arms, S) T^T``, the projections of
:meth:`DTCState._project`); the ``A``-vectors they return and the ``r x r`` algebra stay in
numpy. Kernel values are computed on the CPU and moved to the device in chunks.
"""

from __future__ import annotations

import os

import numpy as np

from distgp.bandit.kernels import BanditKernel
from distgp.exceptions import ConfigError
from distgp.kernels.compute import check_device

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
        device: where ``Z`` lives: ``cpu`` (numpy), ``cuda``/``cuda:N`` or ``torch:cpu``.
    """

    def __init__(
        self, arms: np.ndarray, kdiag: np.ndarray, lam: float, device: str = "cpu"
    ) -> None:
        A = len(arms)
        self.lam = lam
        self._place(device)
        self.atoms = np.zeros(0, dtype=np.int64)
        self.T = np.zeros((0, 0))
        self._Z = self._zeros(A, 0)
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

    # --- where Z lives ------------------------------------------------------------------------

    def _place(self, device: str) -> None:
        self.device = check_device(device)
        self._torch = None
        if self.device != "cpu":
            import torch

            self._torch, self._where = torch, torch.device(self.device.removeprefix("torch:"))

    def to(self, device: str) -> None:
        """Move the embedding to ``device`` (values unchanged)."""
        Z, spare = self._host(self.Z).copy(), self._Z.shape[1]
        self._place(device)
        self._Z = self._zeros(len(Z), spare)
        self._Z[:, : Z.shape[1]] = self._dev(Z)

    def _zeros(self, rows: int, columns: int):
        """An embedding buffer: numpy column-major (``Z @ h`` streams its columns) or a torch
        float64 tensor on the device."""
        if self._torch is None:
            return np.zeros((rows, columns), order="F")
        return self._torch.zeros((rows, columns), dtype=self._torch.float64, device=self._where)

    def _dev(self, a: np.ndarray):
        """``a`` where ``Z`` lives."""
        if self._torch is None:
            return a
        return self._torch.as_tensor(np.asarray(a, dtype=float), device=self._where)

    def _host(self, a) -> np.ndarray:
        """A product with ``Z`` back in numpy."""
        return a if self._torch is None else a.cpu().numpy()

    def rows(self, idx) -> np.ndarray:
        """Embedding rows of the arms ``idx`` (an index or an index array), in numpy (a copy)."""
        out = self._host(self.Z[idx])
        return out.copy() if np.ndim(idx) == 0 else out  # an index array already copies

    def times(self, h: np.ndarray) -> np.ndarray:
        """``Z h`` (``A``) for an ``r``-vector or ``r x k`` matrix ``h``."""
        return self._host(self.Z @ self._dev(h))

    # --- views ---------------------------------------------------------------------------------

    @property
    def rank(self) -> int:
        return int(self.T.shape[0])

    @property
    def Z(self):
        """``A x r`` embedding (a view of a buffer with spare columns; a tensor on a device)."""
        return self._Z[:, : self.rank]

    def variance(self) -> np.ndarray:
        return np.maximum(self.resid / self.lam + self.q, 0.0)

    def mean(self, y_mean: float, y_scale: float) -> np.ndarray:
        return (self.mu_y - y_mean * self.mu_1) / y_scale

    def nbytes(self) -> int:
        """Bytes of the embedding buffer (on the device, when there is one)."""
        return 8 * int(self._Z.shape[0]) * int(self._Z.shape[1])

    # --- updates -------------------------------------------------------------------------------

    def pull(self, arm: int, y: float) -> None:
        """Add one pull of ``arm`` with raw reward ``y`` to ``V`` and every arm's posterior."""
        self.n[arm] += 1.0
        self.ysum[arm] += y
        if self.rank == 0:
            return
        z = self.rows(arm)
        h = self.Vinv @ z
        g = 1.0 + z @ h
        c = self.times(h)
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
        Zb = self.rows(idx)
        self.V += Zb.T @ Zb
        self.b_y += Zb.T @ y
        self.b_1 += Zb.sum(0)
        self.Vinv = _spd_inverse(self.V)
        self._since_refactor = 0
        self.q, self.mu_y, self.mu_1 = self._project(self.Z)

    def insert(self, kernel: BanditKernel, arms: np.ndarray, s: int) -> bool:
        """Add arm ``s`` to the dictionary; ``False`` (nothing changed) if it is in the span."""
        d2 = float(self.resid[s])
        l = self.rows(s)
        if d2 <= SPAN_RTOL * (d2 + float((l**2).sum())):
            return False
        d = np.sqrt(d2)
        r = self.rank
        e = kernel_columns(kernel, arms, arms[s : s + 1])[:, 0]
        if r:
            e -= self.times(l)
        e /= d
        e[s] = d
        pulled = np.flatnonzero(self.n)
        ne = self.n[pulled] * e[pulled]
        v = self.rows(pulled).T @ ne
        u = self.Vinv @ v
        w = float(ne @ e[pulled]) + self.lam - float(v @ u)
        by_new, b1_new = float(e[pulled] @ self.ysum[pulled]), float(ne.sum())
        delta = e - self.times(u) if r else e.copy()
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
        self._set_column(r, e)
        return True

    def _set_column(self, j: int, values: np.ndarray) -> None:
        """Write column ``j`` of the embedding buffer, growing the buffer when full."""
        if j >= self._Z.shape[1]:
            grown = self._zeros(self._Z.shape[0], j + max(16, j // 4))
            grown[:, :j] = self._Z[:, :j]
            self._Z = grown
        self._Z[:, j] = self._dev(values)

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
        self._Z = self._zeros(len(arms), r + max(16, r // 4))
        T_t = self._dev(self.T.T)
        for lo in range(0, len(arms), CHUNK):
            hi = min(lo + CHUNK, len(arms))
            if r:
                self._Z[lo:hi, :r] = self._dev(kernel(arms[lo:hi], S)) @ T_t
        Z = self.Z
        self.resid = np.maximum(kdiag - self._host((Z**2).sum(1)), 0.0)
        pulled = np.flatnonzero(self.n)
        Zp = self.rows(pulled)
        self.V = Zp.T @ (Zp * self.n[pulled, None]) + self.lam * np.eye(r)
        self.Vinv = _spd_inverse(self.V)
        self.b_y = Zp.T @ self.ysum[pulled]
        self.b_1 = Zp.T @ self.n[pulled]
        self._since_refactor = 0
        self.q, self.mu_y, self.mu_1 = self._project(Z)

    def _project(self, Z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``q``, ``mu_y``, ``mu_1`` of embedded rows ``Z`` (where ``Z`` lives), in chunks."""
        q = np.empty(len(Z))
        Vinv = self._dev(self.Vinv)
        for lo in range(0, len(Z), CHUNK):
            block = Z[lo : lo + CHUNK]
            q[lo : lo + CHUNK] = self._host(((block @ Vinv) * block).sum(1))
        if not Z.shape[1]:
            return q, np.zeros(len(Z)), np.zeros(len(Z))
        mu_y = self._host(Z @ self._dev(self.Vinv @ self.b_y))
        return q, mu_y, self._host(Z @ self._dev(self.Vinv @ self.b_1))

    def add_arms(self, kernel: BanditKernel, arms: np.ndarray, k: int) -> None:
        """Embed the last ``k`` rows of ``arms`` (just appended)."""
        new = arms[-k:]
        r = self.rank
        Zn = kernel(new, arms[self.atoms]) @ self.T.T if r else np.zeros((k, 0))
        grown = self._zeros(self._Z.shape[0] + k, self._Z.shape[1])
        grown[:-k, :r] = self.Z
        grown[-k:, :r] = self._dev(Zn)
        self._Z = grown
        resid = np.maximum(kernel.diag(new) - (Zn**2).sum(1), 0.0)
        q, mu_y, mu_1 = self._project(self._dev(Zn))
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
        out["Z"] = self._host(self.Z)
        out["since_refactor"] = np.asarray(self._since_refactor)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name in self.FIELDS:
            setattr(self, name, np.array(state[name], dtype=getattr(self, name).dtype))
        Z = np.asarray(state["Z"], dtype=float)
        self._Z = self._zeros(Z.shape[0], Z.shape[1] + max(16, Z.shape[1] // 4))
        self._Z[:, : Z.shape[1]] = self._dev(Z)
        self._since_refactor = int(state["since_refactor"])


def _spd_inverse(V: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix (symmetrised)."""
    e, Q = np.linalg.eigh(0.5 * (V + V.T))
    return (Q / e) @ Q.T
