"""BKB: GP-UCB on a Nyström dictionary sampled by posterior variance (Calandriello et al. 2019).

With ``batch=True`` the same class is batch BKB (BBKB, Calandriello et al. 2020): within a batch the
mean is frozen at the batch start and the variances take hallucinated pulls. See
:mod:`distgp.bandit.base` for the ask/tell lifecycle, the batch rule and the variance convention,
and :mod:`distgp.bandit.nystrom` for the posterior and its updates.

Dictionary ``S`` (``m`` atoms, arms pulled so far), two modes set by ``resparsify`` (``rho``):

* ``rho = 1`` (the paper's Algorithm 1): after every batch of rewards the dictionary is
  **resampled from scratch**, every pulled arm ``i`` entering with probability
  ``min(qbar * sigma_old^2(x_i) * n_i, 1)`` (``sigma_old``: the model that chose the new pulls; the
  pulled arm with the largest old variance when none is drawn), and everything is re-embedded:
  ``O(A m^2)`` per step.
* ``rho > 1`` (default 2, **incremental**): a new pull of an arm outside ``S`` joins ``S`` with
  probability ``min(qbar * sigma_old^2(x), 1)`` (the paper's per-pull draw) by one low-rank update,
  and each pull updates every arm's mean and variance by another: ``O(A m)`` per step. Atoms are
  not dropped one by one; a larger dictionary only makes the posterior more exact. When
  ``m > rho * sum_i min(qbar * sigma^2(x_i) * n_i, 1)`` (the expected size of a fresh draw with
  the current variances) the dictionary is resampled from scratch and re-embedded. Fresh draws
  grow like ``d_eff``, insertions like ``d_eff log t``, so this happens about
  ``log(T) / log(rho)`` times in a run.

Memory: the embedding of every arm, ``A x r`` floats (``r <= m``), and ``O(A)`` per-arm vectors;
during an ``ask``, ``A`` more floats per hallucinated arm outside the span of ``S`` (below);
kernel evaluations go through the arms in chunks.

Hallucinated pulls (pending arms, several arms per ``ask``, batches) update a working copy of
``V^-1`` (Sherman-Morrison, ``O(r^2)``); a pull inside the working span only shrinks variances, so
the arms' stale UCBs are upper bounds and only the top ones are recomputed (``O(r^2)`` each) until
the best is current, as the reference code does (bkb.md 2.1). A hallucinated arm outside the span
of ``S`` first joins the working span (one Gram-Schmidt coordinate of every arm, ``A`` floats
kept until the ``ask`` returns; the dictionary is unchanged), so its own variance does shrink;
but a larger span can *raise* other arms' DTC variances, so the exact change of every arm's
variance is added to the stale ones (``O(A r')`` per such arm), which stay upper bounds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from distgp.bandit.base import ArmBandit, check_bandit_settings
from distgp.bandit.nystrom import SPAN_RTOL, DTCState, check_arm_memory, kernel_columns


class BKB(ArmBandit):
    """Budgeted kernelized bandit (and batch BKB with ``batch=True``).

    Args:
        arms: ``A x D`` encoded arms or a search space (see :class:`~distgp.bandit.base.ArmBandit`).
        kernel: bandit kernel (default RBF).
        qbar: oversampling ``q~`` of the dictionary sampling (the reference default is 1; 3, as in
            Ada-BKB's experiments, matched exact GP-UCB's regret in our checks, bkb.md 1.5).
        resparsify: ``rho >= 1``; 1 resamples the dictionary at every step (the paper), above 1
            updates it incrementally and resamples when it is ``rho`` times its expected size.
        device: where the arms' embedding and its updates live: ``cpu`` (numpy), ``cuda`` /
            ``cuda:N`` (torch float64 on a GPU) or ``torch:cpu`` (see
            :mod:`distgp.bandit.nystrom`); a runtime choice, not saved with the state.
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

    def __init__(
        self,
        arms: Any,
        kernel=None,
        *,
        qbar: float = 3.0,
        resparsify: float = 2.0,
        device: str = "cpu",
        **options: Any,
    ) -> None:
        check_bandit_settings({"qbar": qbar, "resparsify": resparsify})
        self.qbar = float(qbar)
        self.resparsify = float(resparsify)
        super().__init__(arms, kernel, **options)
        check_arm_memory(len(self.arms), self.arms.shape[1])
        self._state = DTCState(self.arms, self._kdiag, self.lam, device=device)
        self._applied = 0  # history entries already in the state
        self._dict_max = 0
        self._rebuilds = 0
        self._rebuild_needed = False  # kernel changed: re-embed the same dictionary
        self._work: _Working | None = None

    def to(self, device: str) -> BKB:
        """Move the arms' embedding to ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``torch:cpu``),
        e.g. after :meth:`~distgp.bandit.base.ArmBandit.load`; returns the bandit."""
        self._state.to(device)
        return self

    @property
    def dictionary(self) -> np.ndarray:
        """Arm indices of the current dictionary ``S`` (a copy)."""
        return self._state.atoms.copy()

    @property
    def dictionary_size(self) -> int:
        return int(self._state.atoms.size)

    @property
    def dictionary_size_max(self) -> int:
        """Largest dictionary over the run."""
        return self._dict_max

    @property
    def rank(self) -> int:
        """Numerical rank ``r`` of the embedding (after the eigenvalue cut)."""
        return self._state.rank

    @property
    def rebuilds(self) -> int:
        """Times the dictionary was resampled from scratch and every arm re-embedded."""
        return self._rebuilds

    @property
    def embedding_bytes(self) -> int:
        """Bytes held by the arms' embedding (the ``O(A m)`` part of the memory)."""
        return self._state.nbytes()

    # --- refresh -------------------------------------------------------------------------------

    def _refresh(self) -> None:
        st = self._state
        var = None
        old = self._var  # variances of the model that chose the new pulls
        new = self.model_data(self._applied)
        self._applied = len(self._history)
        if self.resparsify == 1.0:
            for arm, y in new:
                st.n[arm] += 1.0
                st.ysum[arm] += y
            atoms = self._resample(old) if new else st.atoms
            self._rebuild(atoms)
        else:
            if self._rebuild_needed:
                self._rebuild(st.atoms)
            for arm, _ in new:  # atoms first: the posterior does not depend on the order
                if st.atoms.size == 0 or (
                    arm not in st.atoms and self._rng.random() < self.qbar * max(old[arm], 0.0)
                ):
                    st.insert(self.kernel, self.arms, arm)
            st.pull_many([a for a, _ in new], [y for _, y in new])
            var = st.variance() if new else None
            if var is not None and st.atoms.size > self.resparsify * self._expected_size(var):
                self._rebuild(self._resample(var))
                var = None
        self._rebuild_needed = False
        self._dict_max = max(self._dict_max, int(st.atoms.size))
        self._mean = st.mean(*self._y_standardisation())
        self._var = st.variance() if var is None else var

    def _rebuild(self, atoms: np.ndarray) -> None:
        self._state.lam = self.lam  # set_kernel may have changed it
        self._state.rebuild(self.kernel, self.arms, self._kdiag, atoms)
        self._rebuilds += 1

    def _inclusion(self, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pulled arms and their probabilities ``min(qbar * variance * n, 1)`` of joining ``S``."""
        pulled = np.flatnonzero(self._state.n)
        p = np.minimum(self.qbar * np.maximum(variance[pulled], 0.0) * self._state.n[pulled], 1.0)
        return pulled, p

    def _expected_size(self, variance: np.ndarray) -> float:
        return max(float(self._inclusion(variance)[1].sum()), 1.0)

    def _resample(self, variance: np.ndarray) -> np.ndarray:
        """Draw a dictionary from the pulled arms (bkb.md 1.4, 3.4); never empty."""
        pulled, p = self._inclusion(variance)
        chosen = pulled[self._rng.random(pulled.size) < p]
        if chosen.size == 0:
            chosen = pulled[[int(np.argmax(p))]]
        return chosen

    # --- hallucinated pulls (lazy: O(r^2) per pull, variances recomputed on demand) -----------

    _lazy = True

    def _begin_hallucination(self) -> None:
        self._work = None  # built on first use: most sequential asks never hallucinate

    def _working(self) -> _Working:
        if self._work is None:
            self._work = _Working(self)
        return self._work

    def _hallucinate(self, arm: int, variance: np.ndarray) -> bool:
        work = self._working()
        z, resid = work.rows(np.array([arm]))
        extends = bool(resid[0] > SPAN_RTOL * self._kdiag[arm])
        if extends:
            variance += work.extend(arm, z[0], math.sqrt(resid[0]))  # stays an upper bound
            z, _ = work.rows(np.array([arm]))
        z = z[0]
        h = work.Vinv @ z
        work.Vinv -= np.outer(h, h) / (1.0 + z @ h)
        work.counts[arm] += 1.0
        return extends

    def _working_variance(self, idx: np.ndarray) -> np.ndarray:
        Zw, resid = self._working().rows(idx)
        q = ((Zw @ self._working().Vinv) * Zw).sum(1)
        return np.maximum(resid / self.lam + q, 0.0)

    # --- caches and state --------------------------------------------------------------------

    def _arms_added(self, k: int) -> None:
        self._state.add_arms(self.kernel, self.arms, k)

    def _kernel_changed(self) -> None:
        self._rebuild_needed = True

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "qbar": self.qbar, "resparsify": self.resparsify}

    def _extra_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        meta = {
            "applied": self._applied,
            "dict_max": self._dict_max,
            "rebuilds": self._rebuilds,
            "rebuild_needed": self._rebuild_needed,
        }
        return self._state.to_state(), meta

    def _load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._state.load_state(arrays)
        self._applied = int(meta["applied"])
        self._dict_max = int(meta["dict_max"])
        self._rebuilds = int(meta["rebuilds"])
        self._rebuild_needed = bool(meta["rebuild_needed"])


class _Working:
    """Hallucination state of one ``ask``: ``V^-1`` and pull counts including hallucinated
    pulls, and the arms added to the working span (one Gram-Schmidt coordinate each, for arms
    outside the span of ``S``) with their coordinate of every arm (``A`` floats each)."""

    def __init__(self, bandit: BKB) -> None:
        self.bandit = bandit
        self.state = bandit._state
        self.Vinv = self.state.Vinv.copy()
        self.counts = self.state.n.copy()
        self.ext: list[np.ndarray] = []  # per arm added to the span, every arm's coordinate

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Working embedding (``len(idx) x r'``) and residual ``k - |z|^2`` of arms ``idx``."""
        Zw = self.state.rows(idx)
        resid = self.state.resid[idx].copy()
        if self.ext:
            cols = np.column_stack([col[idx] for col in self.ext])
            Zw = np.column_stack((Zw, cols))
            for col in cols.T:
                resid = np.maximum(resid - col**2, 0.0)
        return Zw, resid

    def times(self, h: np.ndarray) -> np.ndarray:
        """Working embedding of every arm times the ``r'``-vector ``h``."""
        r = self.state.rank
        out = self.state.times(h[:r]) if r else np.zeros(len(self.bandit.arms))
        for j, col in enumerate(self.ext):
            out += col * h[r + j]
        return out

    def extend(self, arm: int, zrow: np.ndarray, d: float) -> np.ndarray:
        """Add ``arm`` (working row ``zrow``, residual ``d^2``) to the working span; returns the
        change of every arm's working variance, ``(z^T h - e)^2 / w - e^2 / lam`` (``e``: the new
        coordinate, ``h``, ``w``: as in :meth:`DTCState.insert`), which may be positive: the
        DTC variance is not monotone in the span. ``O(A r')``."""
        b = self.bandit
        e = (kernel_columns(b.kernel, b.arms, b.arms[arm : arm + 1])[:, 0] - self.times(zrow)) / d
        e[arm] = d
        data = np.flatnonzero(self.counts)
        Zd = self.rows(data)[0]
        weighted = self.counts[data] * e[data]
        v = Zd.T @ weighted
        h = self.Vinv @ v
        schur = e[data] @ weighted + b.lam - v @ h
        change = (self.times(h) - e) ** 2 / schur - e * e / b.lam
        r = self.Vinv.shape[0]
        Vinv = np.empty((r + 1, r + 1))
        Vinv[:r, :r] = self.Vinv + np.outer(h, h) / schur
        Vinv[:r, r] = Vinv[r, :r] = -h / schur
        Vinv[r, r] = 1.0 / schur
        self.Vinv = Vinv
        self.ext.append(e)
        return change
