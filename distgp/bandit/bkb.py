"""BKB: GP-UCB on a Nyström dictionary resampled by posterior variance (Calandriello et al. 2019).

With ``batch=True`` the same class is batch BKB (BBKB, Calandriello et al. 2020): within a batch the
mean is frozen at the batch start, the variances take hallucinated pulls, and the dictionary is
resampled only when the batch is over (the next refresh). See :mod:`distgp.bandit.base` for the
ask/tell lifecycle, the batch rule and the variance convention.

One refresh (bkb.md 1.3-1.4, 3.6), ``S`` the dictionary, ``m = |S|``, ``P`` the pulled arms:

1. **Resample** (only when rewards arrived since the last refresh): every pulled arm ``i`` enters
   ``S`` independently with probability ``min(qbar * sigma_old^2(x_i) * n_i, 1)``, using the
   variances of the previous model (the one that chose the new pulls). If no arm is drawn, the
   pulled arm with the largest old variance is taken, so ``S`` is never empty.
2. **Embed**: ``K_S = U diag(s) U^T`` (eigh), eigenvalues below ``m * eps * max(s)`` dropped;
   ``z(x) = diag(s)^-1/2 U^T k_S(x)`` (``r <= m`` coordinates). The kernel columns ``k(arms, S)``
   of arms that stay in the dictionary are reused.
3. **Posterior** (DTC): ``V = sum_i n_i z_i z_i^T + lam I`` (history by arm),
   ``mean(x) = z(x)^T V^-1 sum_i z_i ysum_i``,
   ``var(x) = (k(x, x) - |z(x)|^2) / lam + z(x)^T V^-1 z(x)`` (GP variance / lam), clipped at 0.
   Computed as one product ``K_AS [G^T C, G^T w]`` with ``C C^T = I - lam V^-1``.

Cost per refresh: ``O(A m r + min(t, A) m r + m^3)`` time, ``O(A m)`` memory.

Hallucinated pulls (pending arms, several arms per ``ask``, batches) use an explicit embedding
``Z`` (``A x r``) and Sherman-Morrison updates of ``V^-1``, ``O(A r)`` per pull. A hallucinated
arm outside the span of ``S`` first joins the working embedding (one Gram-Schmidt coordinate), so
its own variance, and its neighbours', do shrink; the saved dictionary is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distgp.bandit.base import ArmBandit
from distgp.exceptions import ConfigError

EIG_RTOL = float(np.finfo(float).eps)  # relative eigenvalue cut, times m (as the reference code)
SPAN_RTOL = 1e-10  # residual k - |z|^2 below this fraction of k(x, x): already in the span


class BKB(ArmBandit):
    """Budgeted kernelized bandit (and batch BKB with ``batch=True``).

    Args:
        arms: ``A x D`` encoded arms or a search space (see :class:`~distgp.bandit.base.ArmBandit`).
        kernel: bandit kernel (default RBF).
        qbar: oversampling ``q~`` of the dictionary resampling (the reference default is 1; 3, as in
            Ada-BKB's experiments, matched exact GP-UCB's regret in our checks, bkb.md 1.5).
        **options: the :class:`~distgp.bandit.base.ArmBandit` options.

    Example:
        >>> import numpy as np
        >>> from distgp.bandit import BKB
        >>> arms = np.linspace(0, 1, 50)[:, None]
        >>> bandit = BKB(arms, seed=0)
        >>> for _ in range(10):
        ...     idx = bandit.ask()
        ...     bandit.tell(idx, -(arms[idx, 0] - 0.3) ** 2)
        >>> bandit.dictionary_size <= bandit.observations
        True
    """

    def __init__(self, arms: Any, kernel=None, *, qbar: float = 3.0, **options: Any) -> None:
        if not qbar > 0:
            raise ConfigError(f"qbar must be positive, got {qbar}")
        self.qbar = float(qbar)
        super().__init__(arms, kernel, **options)
        self._dict = np.zeros(0, dtype=np.int64)
        self._dict_max = 0
        self._var_old = self._var.copy()
        self._cols = np.zeros((len(self.arms), 0))
        self._cols_idx = np.zeros(0, dtype=np.int64)
        self._G = np.zeros((0, 0))
        self._Vinv = np.zeros((0, 0))
        self._work: _Working | None = None

    @property
    def dictionary(self) -> np.ndarray:
        """Arm indices of the current dictionary ``S`` (a copy)."""
        return self._dict.copy()

    @property
    def dictionary_size(self) -> int:
        return int(self._dict.size)

    @property
    def dictionary_size_max(self) -> int:
        """Largest dictionary over the run."""
        return self._dict_max

    @property
    def rank(self) -> int:
        """Numerical rank ``r`` of the embedding (after the eigenvalue cut)."""
        return int(self._G.shape[0])

    # --- refresh -------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self._new_data:
            self._resample()
        A = len(self.arms)
        if self._dict.size == 0:  # no reward yet: the prior
            self._mean, self._var = np.zeros(A), self._kdiag / self.lam
            self._G, self._Vinv = np.zeros((0, 0)), np.zeros((0, 0))
            self._var_old = self._var.copy()
            return
        cols = self._columns()
        K_S = cols[self._dict]
        s, U = np.linalg.eigh(0.5 * (K_S + K_S.T))
        keep = s > s[-1] * len(s) * EIG_RTOL
        G = (U[:, keep] / np.sqrt(s[keep])).T  # r x m
        pulled = np.flatnonzero(self._counts)
        Zp = cols[pulled] @ G.T
        n = self._counts[pulled].astype(float)
        r = G.shape[0]
        V = Zp.T @ (Zp * n[:, None]) + self.lam * np.eye(r)
        b = Zp.T @ self._standardised_sums()[pulled]
        e, Q = np.linalg.eigh(V)
        w = Q @ ((Q.T @ b) / e)
        C = Q * np.sqrt(np.maximum(1.0 - self.lam / e, 0.0))
        out = cols @ (G.T @ np.column_stack((C, w)))
        self._mean = out[:, r].copy()
        self._var = np.maximum(self._kdiag - (out[:, :r] ** 2).sum(1), 0.0) / self.lam
        self._G = G
        self._Vinv = (Q / e) @ Q.T
        self._var_old = self._var.copy()

    def _resample(self) -> None:
        """Draw the dictionary from the pulled arms with the old variances (bkb.md 1.4, 3.4)."""
        pulled = np.flatnonzero(self._counts)
        old = np.maximum(self._var_old[pulled], 0.0)
        p = np.minimum(self.qbar * old * self._counts[pulled], 1.0)
        chosen = pulled[self._rng.random(pulled.size) < p]
        if chosen.size == 0:
            chosen = pulled[[int(np.argmax(old))]]
        self._dict = chosen
        self._dict_max = max(self._dict_max, int(chosen.size))

    def _columns(self) -> np.ndarray:
        """``k(arms, arms[S])`` (``A x m``), reusing the columns of arms still in ``S``."""
        old = {int(a): j for j, a in enumerate(self._cols_idx)}
        cols = np.empty((len(self.arms), self._dict.size), order="F")
        missing = []
        for j, a in enumerate(self._dict.tolist()):
            if a in old:
                cols[:, j] = self._cols[:, old[a]]
            else:
                missing.append(j)
        if missing:
            cols[:, missing] = self.kernel(self.arms, self.arms[self._dict[missing]])
        self._cols, self._cols_idx = cols, self._dict.copy()
        return cols

    # --- hallucinated pulls ------------------------------------------------------------------

    def _begin_hallucination(self) -> None:
        self._work = None  # built on first use: most sequential asks never hallucinate

    def _hallucinate(self, arm: int, variance: np.ndarray) -> None:
        if self._work is None:
            Z = self._cols @ self._G.T if self._G.size else np.zeros((len(self.arms), 0))
            residual = np.maximum(self._kdiag - (Z**2).sum(1), 0.0)
            self._work = _Working(Z, self._Vinv.copy(), residual, self._counts.astype(float))
        work = self._work
        if work.residual[arm] > SPAN_RTOL * self._kdiag[arm]:
            self._extend(arm, variance)
        z = work.Z[arm]
        h = work.Vinv @ z
        u = work.Z @ h
        denominator = 1.0 + z @ h
        variance -= u**2 / denominator
        np.maximum(variance, 0.0, out=variance)
        work.Vinv -= np.outer(h, h) / denominator
        work.counts[arm] += 1.0

    def _extend(self, arm: int, variance: np.ndarray) -> None:
        """Add arm ``arm`` to the working span: one Gram-Schmidt coordinate ``c`` for every arm."""
        work = self._work
        assert work is not None
        k_col = self.kernel(self.arms, self.arms[arm : arm + 1])[:, 0]
        c = (k_col - work.Z @ work.Z[arm]) / np.sqrt(work.residual[arm])
        c[arm] = np.sqrt(work.residual[arm])
        data = np.flatnonzero(work.counts)
        weighted = work.counts[data] * c[data]
        b = work.Z[data].T @ weighted
        h = work.Vinv @ b
        schur = c[data] @ weighted + self.lam - b @ h
        g = work.Z @ h
        variance += (c - g) ** 2 / schur - c**2 / self.lam
        np.maximum(variance, 0.0, out=variance)
        r = work.Vinv.shape[0]
        Vinv = np.empty((r + 1, r + 1))
        Vinv[:r, :r] = work.Vinv + np.outer(h, h) / schur
        Vinv[:r, r] = Vinv[r, :r] = -h / schur
        Vinv[r, r] = 1.0 / schur
        work.Vinv = Vinv
        work.Z = np.column_stack((work.Z, c))
        work.residual = np.maximum(work.residual - c**2, 0.0)

    # --- caches and state --------------------------------------------------------------------

    def _arms_added(self, k: int) -> None:
        self._var_old = np.r_[self._var_old, self._kdiag[-k:] / self.lam]
        rows = self.kernel(self.arms[-k:], self.arms[self._cols_idx])
        self._cols = np.asfortranarray(np.vstack((self._cols, rows)))

    def _kernel_changed(self) -> None:
        self._cols_idx = np.zeros(0, dtype=np.int64)

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "qbar": self.qbar}

    def _extra_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        # the kernel-column cache is saved too: recomputing it could change the last bits
        arrays = {
            "dictionary": self._dict,
            "var_old": self._var_old,
            "columns": self._cols,
            "columns_arms": self._cols_idx,
        }
        return arrays, {"dict_max": self._dict_max}

    def _load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._dict = np.asarray(arrays["dictionary"], dtype=np.int64).copy()
        self._var_old = np.asarray(arrays["var_old"], dtype=float).copy()
        self._cols = np.asfortranarray(arrays["columns"], dtype=float)
        self._cols_idx = np.asarray(arrays["columns_arms"], dtype=np.int64).copy()
        self._dict_max = int(meta["dict_max"])


class _Working:
    """Hallucination state of one ``ask``: embedding ``Z`` (``A x r'``), ``V^-1``, residuals
    ``k(x, x) - |z(x)|^2`` and pull counts including hallucinated pulls."""

    def __init__(self, Z: np.ndarray, Vinv: np.ndarray, residual: np.ndarray, counts: np.ndarray):
        self.Z, self.Vinv, self.residual, self.counts = Z, Vinv, residual, counts
