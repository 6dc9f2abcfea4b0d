"""Exact GP-UCB over a finite arm set, with incremental updates (the baseline BKB approximates).

Same lifecycle, conventions and options as :class:`~distgp.bandit.bkb.BKB` (see
:mod:`distgp.bandit.base`); the posterior is the exact GP posterior on every pull.

The state is the Cholesky factor ``L`` of ``K_t + lam I`` over the ``t`` pulls (repeats included)
kept implicitly through ``W = L^-1 K_{t,A}`` (``t x A``): appending a pull ``s`` adds one row

    l = W[:, s],   d = sqrt(k(s, s) + lam - |l|^2),   w_new = (k(s, arms) - l^T W) / d

and updates every arm in ``O(A)``: ``var -= w_new^2 / lam``; the mean follows from
``L^-1 y`` and ``L^-1 1`` (so rewards can be re-standardised without refactoring). One pull costs
``O(t A)`` time; memory is ``O(t A)`` (a buffer that doubles when full). A hallucinated pull is
the same row without a reward. Nothing is refactored except after :meth:`set_kernel`, which
replays the pulls; :meth:`add_arms` solves with ``L`` for the new columns only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from distgp.bandit.base import ArmBandit

_INITIAL_ROWS = 64


class GPUCB(ArmBandit):
    """Exact GP-UCB (and GP-BUCB batches with ``batch=True``).

    Args:
        arms: ``A x D`` encoded arms or a search space.
        kernel: bandit kernel (default RBF).
        **options: the :class:`~distgp.bandit.base.ArmBandit` options (``epsilon`` is ignored:
            the theory beta uses ``eps = 0``).
    """

    def __init__(self, arms: Any, kernel=None, **options: Any) -> None:
        super().__init__(arms, kernel, **options)
        self._reset_factor()

    def _reset_factor(self) -> None:
        A = len(self.arms)
        self._W = np.zeros((_INITIAL_ROWS, A))
        self._rows: list[int] = []  # arm of each real row, in the order of the history
        self._d: list[float] = []  # diagonal of L for each real row
        self._alpha_y = np.zeros(_INITIAL_ROWS)  # L^-1 y (raw rewards)
        self._alpha_1 = np.zeros(_INITIAL_ROWS)  # L^-1 1
        self._mu_y = np.zeros(A)  # W^T alpha_y
        self._mu_1 = np.zeros(A)  # W^T alpha_1
        self._prior_var = self._kdiag.copy()  # GP variance after the real rows
        self._t_work = 0

    @property
    def dictionary_size(self) -> int:
        """Exact GP-UCB keeps every pull: ``t`` (the factor is rebuilt lazily after a refit)."""
        return self.fitted

    @property
    def dictionary_size_max(self) -> int:
        return self.fitted

    def _sketch_epsilon(self) -> float:
        return 0.0

    def _append_row(self, arm: int, gp_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Add a pull of ``arm`` at row ``_t_work`` and update ``gp_var`` (GP variances) in place.

        Returns:
            The new row of ``W`` (``A``), the column ``l = W[:t, arm]`` before it, and ``d``.
        """
        t = self._t_work
        if t == len(self._W):
            self._W = np.vstack((self._W, np.zeros_like(self._W)))
            self._alpha_y = np.r_[self._alpha_y, np.zeros(t)]
            self._alpha_1 = np.r_[self._alpha_1, np.zeros(t)]
        W = self._W
        l = W[:t, arm].copy()
        d = math.sqrt(max(gp_var[arm], 0.0) + self.lam)
        k_row = self.kernel(self.arms[arm : arm + 1], self.arms)[0]
        row = (k_row - l @ W[:t]) / d
        W[t] = row
        gp_var -= row**2
        np.maximum(gp_var, 0.0, out=gp_var)
        self._t_work = t + 1
        return row, l, d

    def _refresh(self) -> None:
        told = self.model_data()
        self._t_work = len(self._rows)
        for arm, y in told[len(self._rows) :]:
            t = self._t_work
            row, l, d = self._append_row(arm, self._prior_var)
            self._alpha_y[t] = (y - l @ self._alpha_y[:t]) / d
            self._alpha_1[t] = (1.0 - l @ self._alpha_1[:t]) / d
            self._mu_y += row * self._alpha_y[t]
            self._mu_1 += row * self._alpha_1[t]
            self._rows.append(arm)
            self._d.append(d)
        mean, scale = self._y_standardisation()
        self._mean = (self._mu_y - mean * self._mu_1) / scale
        self._var = self._prior_var / self.lam

    def _begin_hallucination(self) -> None:
        self._t_work = len(self._rows)

    def _hallucinate(self, arm: int, variance: np.ndarray) -> bool:
        gp_var = variance * self.lam
        self._append_row(arm, gp_var)
        variance[:] = gp_var / self.lam
        return True

    def _arms_added(self, k: int) -> None:
        """New columns ``L^-1 k_t(new)``: ``L`` is read back from ``W`` (``L[i, :i]`` is
        ``W[:i, s_i]``, the diagonal is ``d``); ``O(t^2 k)``."""
        t = len(self._rows)
        cols = np.zeros((len(self._W), k))
        if t:
            rows = np.array(self._rows)
            L = np.tril(self._W[:t, rows].T, -1) + np.diag(self._d)
            K = self.kernel(self.arms[rows], self.arms[-k:])
            cols[:t] = scipy.linalg.solve_triangular(L, K, lower=True, check_finite=False)
        self._W = np.hstack((self._W, cols))
        self._mu_y = np.r_[self._mu_y, cols[:t].T @ self._alpha_y[:t]]
        self._mu_1 = np.r_[self._mu_1, cols[:t].T @ self._alpha_1[:t]]
        fresh = np.maximum(self._kdiag[-k:] - (cols[:t] ** 2).sum(0), 0.0)
        self._prior_var = np.r_[self._prior_var, fresh]

    def _kernel_changed(self) -> None:
        self._reset_factor()
