"""What every arm bandit shares: the ask/tell lifecycle, history by arm, UCB, beta, batches, state.

A bandit holds a finite set of ``A`` arms (an ``A x D`` matrix of encoded points), a kernel and
the rewards seen so far, **stored by arm** (pull counts ``n_i`` and reward sums), as the reference
BKB code does. Subclasses (:class:`~distgp.bandit.bkb.BKB`, :class:`~distgp.bandit.gpucb.GPUCB`)
supply the posterior; this module supplies everything around it.

Conventions (bkb.md 1.2):

* Rewards are **maximised**. With ``normalize_y`` (default) they are standardised with the mean
  and (population) standard deviation of all successful rewards so far, so the kernel variance,
  ``noise_variance`` and ``lam`` are in standardised units.
* ``variance`` is the **linear-bandit scaling** of the GP posterior variance,
  ``sigma^2(x) = (k(x, x) - k_t(x)^T (K_t + lam I)^-1 k_t(x)) / lam``, i.e. the GP variance divided
  by ``lam``; ``beta`` is in reward units, and ``UCB = mean + beta * sqrt(variance)``.
  Roundoff below zero is clipped to 0. A fixed ``beta=c`` means ``c`` GP standard deviations.

The reference beta grows like ``sqrt(log(t) d_eff)`` GP standard deviations and explores a lot
when ``lam`` is small and the dimension is high (bkb.md 3.4); a fixed ``c`` of 2-3 exploits more.

Lifecycle (ask / tell):

* :meth:`ArmBandit.ask` returns arm indices and marks them **pending**. Pending arms are treated
  as hallucinated pulls: the posterior variance is updated as if they had been pulled, the mean
  is not (GP-BUCB). So ``ask`` may be called again before ``tell`` and then proposes other arms;
  nothing is lost if a pending arm is never told.
* :meth:`ArmBandit.tell` records rewards for arms. An arm that was not pending (an evaluation
  made elsewhere) is accepted and recorded like any other. An index outside ``0..A-1`` raises
  :class:`~distgp.exceptions.InputDataError`; :meth:`ArmBandit.add_arms` adds new points first.
* A reward that is NaN or infinite is a **failed evaluation**: it is recorded in the history
  (as NaN), clears the pending mark, and (``skip_failed``, default) the arm is not proposed
  again. With ``impute_failed`` (default) the model counts it as the worst reward told so far
  (as SMAC does with crashed runs), so that the UCB of its neighbours falls and a region where
  the objective fails is not searched on: a failure that teaches nothing leaves its region at
  the prior variance, the highest UCB, and the search would keep failing there. A failure
  before any reward teaches nothing.
* The posterior (and, for BKB, the dictionary) is refreshed lazily at the next ``ask`` after a
  ``tell``; the arrays passed to ``tell`` are copied, so the caller may reuse them.
* Until ``initial`` rewards are known (or pending), ``ask`` draws arms uniformly at random
  from those not yet told or pending (from all open arms once none is left).

Batches (bkb.md 2.1, global rule): with ``batch=True``, ``ask()`` keeps choosing arms with a
frozen mean and hallucinated variances while ``1 + sum_s sigma_fb^2(x_s) <= ratio_threshold``
(``sigma_fb^2``: variances at the start of the batch); the arm that crosses the threshold is
kept. ``ratio_threshold`` must be above 1 (at 1 every batch has one arm).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distgp.bandit.kernels import BanditKernel, RBFKernel, kernel_from_state
from distgp.exceptions import ConfigError, InputDataError, ModelFileError
from distgp.io import json_default, read_npz, save_npz

STATE_FORMAT = "distgp-bandit-state"
STATE_VERSION = 2  # 2: incremental BKB state, batch logdet
MIN_Y_SCALE = 1e-12  # rewards with a smaller spread are centred but not scaled
BETA_MODES = ("practical", "theory")
LAZY_BLOCK = 32  # stale UCBs recomputed at a time by lazy hallucination
_REGISTRY: dict[str, type[ArmBandit]] = {}


def real_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number: an int, a float, a numpy scalar or 0-d
    array, anything with ``__float__`` and no dimensions (an int too large for a float is
    ``±inf``); ``None`` for a bool, a string, ``None``, a complex number or anything with
    dimensions."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # the numpy scalar
    if (
        isinstance(value, bool | np.bool_ | complex | np.complexfloating)
        or getattr(value, "ndim", 0)
        or not hasattr(type(value), "__float__")
    ):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        return math.inf if value > 0 else -math.inf


def _rewards(y: Any) -> np.ndarray:
    """``tell``'s rewards as floats (same shape); :class:`InputDataError` for one that is not a
    real number."""
    if isinstance(y, np.ndarray) and y.dtype.kind in "iuf":
        return y.astype(float)
    if isinstance(y, list | tuple) or (isinstance(y, np.ndarray) and y.ndim):
        rows = [_rewards(v) for v in y]
        try:
            return np.array(rows, dtype=float)
        except ValueError:  # ragged
            raise InputDataError(f"tell needs rewards of one shape, got {y!r}") from None
    value = real_number(y)
    if value is None:
        raise InputDataError(
            f"tell needs real-number rewards, got {type(y).__name__} {y!r}; pass a float "
            "(NaN or inf marks a failed evaluation)"
        )
    return np.float64(value)


def _check_kernel(kernel: Any) -> None:
    if not (callable(kernel) and callable(getattr(kernel, "diag", None))):
        raise ConfigError(
            f"kernel must be a bandit kernel (RBFKernel, or an object with __call__(A, B) and "
            f"diag(A)), got {type(kernel).__name__} {kernel!r}"
        )


def default_lengthscale(dims: int) -> float:
    """RBF lengthscale for arms encoded in ``[0, 1]^D``: ``0.2 * sqrt(D)`` (typical distances
    between random points grow like ``sqrt(D / 6)``)."""
    return 0.2 * math.sqrt(max(dims, 1))


def ucb_scores(mean: np.ndarray, variance: np.ndarray, beta: float) -> np.ndarray:
    """``mean + beta * sqrt(max(variance, 0))`` per arm."""
    return mean + beta * np.sqrt(np.maximum(variance, 0.0))


def practical_beta(
    t: int,
    information: float,
    lam: float,
    noise_variance: float,
    fnorm: float,
    delta: float,
) -> float:
    """The reference code's beta without batches (bkb.md 3.4; batches: :func:`batch_beta`).

    ``sqrt(lam) F + sqrt(xi^2 (log(t) I + log(1/delta)))`` with ``I = sum_i n_i sigma^2(x_i)``
    over pulled arms (``information``) and ``t`` successful pulls.
    """
    logdet = math.log(max(t, 1)) * information
    return batch_beta(logdet, lam, noise_variance, fnorm, delta, 1.0)


def batch_beta(
    logdet: float, lam: float, noise_variance: float, fnorm: float, delta: float, factor: float
) -> float:
    """The reference batch BKB's beta (bkb.md 2.1):
    ``sqrt(lam) F + sqrt(xi^2 (C logdet + log(1/delta)))``, ``logdet`` accumulated by batches."""
    return math.sqrt(lam) * fnorm + math.sqrt(
        noise_variance * (factor * logdet + math.log(1.0 / delta))
    )


def theory_beta(
    t: int,
    information: float,
    lam: float,
    noise_variance: float,
    fnorm: float,
    delta: float,
    epsilon: float,
    kappa2: float,
    batch_factor: float = 1.0,
) -> float:
    """Theorem 2 of Calandriello et al. (2019) (bkb.md 1.6).

    ``2 xi sqrt(C alpha log(kappa^2 t) I + log(1/delta)) + (1 + 1/sqrt(1 - eps)) sqrt(lam) F``
    with ``alpha = (1 + eps) / (1 - eps)``; ``epsilon = 0`` gives exact GP-UCB's value.
    """
    alpha = (1.0 + epsilon) / (1.0 - epsilon)
    log_term = max(math.log(max(kappa2 * t, 1e-300)), 0.0)
    width = batch_factor * alpha * log_term * information + math.log(1.0 / delta)
    return (
        2.0 * math.sqrt(noise_variance) * math.sqrt(width)
        + (1.0 + 1.0 / math.sqrt(1.0 - epsilon)) * math.sqrt(lam) * fnorm
    )


class ArmBandit(ABC):
    """GP-UCB-style bandit over a finite arm set; subclasses provide the posterior.

    Args:
        arms: ``A x D`` encoded arms (at least 2), or a search space with an ``arms`` attribute.
        kernel: a :class:`~distgp.bandit.kernels.BanditKernel` (default: RBF with
            :func:`default_lengthscale`).
        noise_variance: ``xi^2``, the reward noise variance (standardised units).
        lam: ridge ``lambda`` (default: ``noise_variance``, as in the paper).
        fnorm: ``F``, the RKHS norm bound used by beta.
        delta: confidence parameter of beta, in (0, 1).
        beta: ``practical`` (reference code), ``theory`` (Theorem 2), or a number ``c > 0``: a
            fixed width of ``c`` GP posterior standard deviations (``beta = c sqrt(lam)``).
        epsilon: accuracy ``eps`` in [0, 1) of the sketch, used by ``beta="theory"``.
        batch: adaptive batches (global rule) when ``ask()`` is called without ``n``.
        ratio_threshold: ``C~ > 1`` of the batch rule.
        max_batch: cap on the size of an adaptive batch (default: ``A``).
        initial: arms drawn uniformly at random before the UCB takes over.
        normalize_y: standardise rewards (see the module docstring).
        skip_failed: never propose again an arm whose evaluation failed.
        impute_failed: the model counts a failed evaluation as the worst reward so far.
        repeat: propose an arm again after it was evaluated (or while it is pending); ``False``
            for deterministic objectives, where a repeat teaches nothing.
        seed: seed of the instance's own random generator.
    """

    def __init__(
        self,
        arms: Any,
        kernel: BanditKernel | None = None,
        *,
        noise_variance: float = 1e-2,
        lam: float | None = None,
        fnorm: float = 1.0,
        delta: float = 0.5,
        beta: str | float = "practical",
        epsilon: float = 0.5,
        batch: bool = False,
        ratio_threshold: float = 2.0,
        max_batch: int | None = None,
        initial: int = 1,
        normalize_y: bool = True,
        skip_failed: bool = True,
        impute_failed: bool = True,
        repeat: bool = True,
        seed: int | None = None,
    ) -> None:
        X = np.array(getattr(arms, "arms", arms), dtype=float)
        if X.ndim != 2 or len(X) < 2 or not np.all(np.isfinite(X)):
            raise ConfigError(
                f"a bandit needs at least 2 arms as a finite A x D array, got shape {X.shape}"
            )
        lam_given = lam is not None
        lam = noise_variance if lam is None else lam
        given = {
            "noise_variance": noise_variance,
            "lam": lam,
            "fnorm": fnorm,
            "delta": delta,
            "beta": beta,
            "epsilon": epsilon,
            "ratio_threshold": ratio_threshold,
            "max_batch": max_batch,
            "initial": initial,
        }
        check_bandit_settings(given)
        self.arms = X
        self.kernel = kernel if kernel is not None else RBFKernel(default_lengthscale(X.shape[1]))
        _check_kernel(self.kernel)
        self.noise_variance = float(noise_variance)
        self.lam = float(lam)
        self.fnorm = float(fnorm)
        self.delta = float(delta)
        self.beta_mode = beta if isinstance(beta, str) else float(beta)
        self.epsilon = float(epsilon)
        self.batch = bool(batch)
        self.ratio_threshold = float(ratio_threshold)
        self.max_batch = max_batch
        self.initial = int(initial)
        self.normalize_y = bool(normalize_y)
        self.skip_failed = bool(skip_failed)
        self.impute_failed = bool(impute_failed)
        self.repeat = bool(repeat)
        self._lam_follows_noise = not lam_given
        if seed is not None and (not isinstance(seed, int | np.integer) or seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        A = len(X)
        self._counts = np.zeros(A, dtype=np.int64)
        self._ysum = np.zeros(A)  # raw reward sum per arm
        self._blocked = np.zeros(A, dtype=bool)
        self._y_mean = 0.0  # mean of the model's rewards and the root of their sum of squared
        self._y_spread = 0.0  # deviations, updated one at a time (Welford; the root keeps
        # rewards up to float64's limit from overflowing the squares): exact at any offset
        self._history: list[tuple[int, float, int]] = []  # (arm, raw reward or NaN, batch id)
        self._model_y: list[float] = []  # per history entry, the reward the model uses (or NaN)
        self._pending: list[tuple[int, int]] = []  # (arm, batch id)
        self._batches = 0
        self._stale = True  # posterior not computed for the current data and kernel
        self._kdiag = self.kernel.diag(X)
        self._mean = np.zeros(A)
        self._var = self._kdiag / self.lam
        self._beta = 0.0
        self._logdet = 0.0  # batch mode, practical beta: sum of log(1 + sigma_fb^2) (bkb.md 2.1)
        self._logdet_seen = 0  # history entries already in _logdet

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # --- posterior hooks -------------------------------------------------------------------

    @abstractmethod
    def _refresh(self) -> None:
        """Recompute ``_mean`` and ``_var`` (all arms) from the told data; reset hallucinations."""

    @abstractmethod
    def _begin_hallucination(self) -> None:
        """Start a working copy of the posterior variance state for one ``ask``."""

    @abstractmethod
    def _hallucinate(self, arm: int, variance: np.ndarray) -> bool:
        """Update ``variance`` (in place) as if ``arm`` had been pulled once more; a lazy
        subclass may leave it an upper bound of every arm's variance instead. Returns whether
        ``variance`` changed (a lazy one's stale scores then need recomputing)."""

    @property
    def dictionary_size(self) -> int:
        """Size of the set of points the posterior is built on."""
        return self.observations

    # --- public state --------------------------------------------------------------------------

    @property
    def observations(self) -> int:
        """Successful rewards told so far."""
        return sum(1 for _, y, _ in self._history if y == y)

    @property
    def fitted(self) -> int:
        """Rewards the model is fitted on: the successful ones and the imputed failures."""
        return int(self._counts.sum())

    @property
    def failures(self) -> int:
        return sum(1 for _, y, _ in self._history if not math.isfinite(y))

    @property
    def batches(self) -> int:
        """Number of ``ask`` calls that proposed arms."""
        return self._batches

    @property
    def pending(self) -> list[int]:
        """Arms asked for and not yet told, in order."""
        return [a for a, _ in self._pending]

    @property
    def history(self) -> dict[str, np.ndarray]:
        """Every told evaluation in order: ``arm``, raw ``y`` (NaN when failed), ``batch``
        (the ``ask`` call that proposed it; -1 when it was not pending)."""
        h = self._history
        return {
            "arm": np.array([a for a, _, _ in h], dtype=np.int64),
            "y": np.array([y for _, y, _ in h], dtype=float),
            "batch": np.array([b for _, _, b in h], dtype=np.int64),
        }

    @property
    def beta(self) -> float:
        """The confidence width multiplier of the current posterior."""
        self._ensure_posterior()
        return self._beta

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (linear-bandit scaling) of every arm, standardised units; copies."""
        self._ensure_posterior()
        return self._mean.copy(), self._var.copy()

    # --- ask / tell ----------------------------------------------------------------------------

    def ask(self, n: int | None = None) -> np.ndarray:
        """Propose arms and mark them pending.

        Args:
            n: how many arms. ``None`` means 1, or with ``batch=True`` an adaptive batch (at most
                ``max_batch``); with ``batch=True`` a given ``n`` caps the adaptive batch.

        Returns:
            ``k`` arm indices (``1 <= k <= n``), an int array. An arm may repeat within a batch
            when its frozen UCB stays highest (a repeated noisy evaluation).
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
            raise ConfigError(f"ask needs a whole number n >= 1, got {n!r}")
        if self.batch:
            limit = self._batch_cap() if n is None else min(n, self._batch_cap())
        else:
            limit = 1 if n is None else n
        open_arms = np.flatnonzero(~self._blocked)
        if open_arms.size == 0:
            raise InputDataError(
                "every arm was evaluated (repeat=False) or failed; there is nothing left to "
                "propose: add arms with add_arms"
            )
        self._ensure_posterior()
        fb_var = self._var  # variances at the start of the batch
        work_var = self._var.copy()
        self._begin_hallucination()
        for arm, _ in self._pending:
            self._hallucinate(arm, work_var)
        # lazy bandits keep work_var an upper bound after a hallucination (a pull inside the
        # working span only shrinks variances) and recompute only the top UCBs (bkb.md 2.1)
        fresh = None if not (self._lazy and self._pending) else np.zeros(len(self.arms), bool)
        scores = self._scores(work_var, [a for a, _ in self._pending])
        bound = 1.0 + float(sum(max(fb_var[a], 0.0) for a, _ in self._pending))
        random_left = max(self.initial - self.observations - len(self._pending), 0)
        picks: list[int] = []
        while len(picks) < limit:
            if random_left > 0:
                # a random start explores: arms already told or chosen are drawn only when
                # every open arm is
                taken = {a for a, _, _ in self._history} | {a for a, _ in self._pending}
                taken.update(picks)
                choices = np.array([a for a in open_arms if a not in taken] or open_arms)
                arm = int(choices[self._rng.integers(len(choices))])
                random_left -= 1
            else:
                arm = self._best(scores, work_var, fresh)
                if scores[arm] == -np.inf:  # every open arm is pending or already in this batch
                    break
            picks.append(arm)
            if self.batch:
                bound += max(float(fb_var[arm]), 0.0)
                if bound > self.ratio_threshold:
                    break
            if len(picks) < limit:
                if self._hallucinate(arm, work_var) or not self._lazy:
                    scores = self._scores(work_var, [a for a, _ in self._pending] + picks)
                elif not self.repeat:  # the other stale scores stay upper bounds
                    scores[arm] = -np.inf
                if self._lazy:
                    fresh = np.zeros(len(self.arms), bool)
        if not picks:
            raise InputDataError(
                "every arm not yet evaluated is pending (repeat=False); tell some results first"
            )
        batch_id = self._batches
        self._batches += 1
        self._pending.extend((a, batch_id) for a in picks)
        return np.array(picks, dtype=np.int64)

    def _scores(self, variance: np.ndarray, taken: list[int]) -> np.ndarray:
        """UCB of every arm, ``-inf`` where it may not be proposed (``taken``: pending and
        already chosen arms)."""
        scores = ucb_scores(self._mean, variance, self._beta)
        scores[self._blocked] = -np.inf
        if not self.repeat and taken:
            scores[taken] = -np.inf
        return scores

    def _best(self, scores: np.ndarray, variance: np.ndarray, fresh: np.ndarray | None) -> int:
        """Arm of the largest UCB; with ``fresh`` (lazy hallucination), stale scores are upper
        bounds (see :meth:`_hallucinate`): the top :data:`LAZY_BLOCK` stale ones are recomputed
        until the best is fresh."""
        while True:
            arm = int(np.argmax(scores))
            if fresh is None or fresh[arm] or scores[arm] == -np.inf:
                return arm
            stale = np.where(fresh, -np.inf, scores)
            k = min(LAZY_BLOCK, len(stale))
            top = np.argpartition(stale, len(stale) - k)[-k:]
            top = top[stale[top] > -np.inf]
            variance[top] = self._working_variance(top)
            scores[top] = ucb_scores(self._mean[top], variance[top], self._beta)
            fresh[top] = True

    _lazy = False  # subclasses whose _hallucinate leaves variances stale set True

    def _working_variance(self, idx: np.ndarray) -> np.ndarray:
        """Variances of arms ``idx`` under the current hallucinated pulls (lazy subclasses)."""
        raise NotImplementedError

    def _batch_cap(self) -> int:
        return self.max_batch if self.max_batch is not None else len(self.arms)

    def tell(self, arms: int | Sequence[int] | np.ndarray, y: float | Sequence[float]) -> None:
        """Record rewards (to be maximised) for arms; NaN or inf marks a failed evaluation (an int
        too large for a float is inf). A bool, string or ``None`` is refused.

        Args:
            arms: one index or ``k`` indices into ``arms``.
            y: one reward or ``k`` rewards (shape ``(k,)``, or a column ``(k, 1)``), raw units.
        """
        idx = np.atleast_1d(np.asarray(arms))
        values = np.atleast_1d(_rewards(y))
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise InputDataError(
                f"tell needs integer arm indices (as ask returns them), got {idx.tolist()}"
            )
        if idx.ndim != 1:
            raise InputDataError(
                f"tell needs one arm index or a 1-D sequence of them (as ask returns them), got "
                f"shape {idx.shape}"
            )
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise InputDataError(
                f"tell needs the rewards as shape ({idx.size},) or a column ({idx.size}, 1), "
                f"one per arm; got shape {values.shape}"
            )
        if values.shape != idx.shape:
            raise InputDataError(
                f"tell needs one reward per arm, got {idx.size} arm(s) and {values.size} reward(s)"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.arms)):
            raise InputDataError(
                f"tell got arm indices {idx.tolist()} outside 0..{len(self.arms) - 1}; "
                "add new points with add_arms first"
            )
        for arm, value in zip(idx.tolist(), values.tolist(), strict=True):
            batch_id = self._pop_pending(arm)
            if math.isfinite(value):
                model = value
                if not self.repeat:
                    self._blocked[arm] = True
            else:
                value = math.nan
                worst = min((y for _, y, _ in self._history if y == y), default=math.nan)
                model = worst if self.impute_failed else math.nan
                if self.skip_failed:
                    self._blocked[arm] = True
            if model == model:
                self._counts[arm] += 1
                self._ysum[arm] += model
                delta = model - self._y_mean
                self._y_mean += delta / self.fitted
                gain = math.sqrt(abs(delta)) * math.sqrt(abs(model - self._y_mean))
                self._y_spread = math.hypot(self._y_spread, gain)
                self._stale = True
            self._history.append((arm, value, batch_id))
            self._model_y.append(model)

    def _pop_pending(self, arm: int) -> int:
        for k, (a, batch_id) in enumerate(self._pending):
            if a == arm:
                del self._pending[k]
                return batch_id
        return -1

    @property
    def exhausted(self) -> bool:
        """Whether :meth:`ask` has nothing to propose: every arm was evaluated
        (``repeat=False``) or failed, or (``repeat=False``) the rest are pending."""
        open_arms = ~self._blocked
        if not self.repeat:
            open_arms[[a for a, _ in self._pending]] = False
        return not open_arms.any()

    def cancel(self, arm: int) -> bool:
        """Drop one pending mark of ``arm`` (an evaluation that will never be told, e.g. a
        pruned trial); returns whether there was one. Nothing is recorded."""
        for k, (a, _) in enumerate(self._pending):
            if a == arm:
                del self._pending[k]
                return True
        return False

    def reseed(self, seed: int | None = None) -> None:
        """Replace the instance's random generator (e.g. in parallel copies of one sampler)."""
        self._rng = np.random.default_rng(seed)

    def add_arms(self, points: np.ndarray) -> np.ndarray:
        """Append encoded points (``k x D``) as new arms; returns their indices."""
        P = np.atleast_2d(np.asarray(points, dtype=float))
        if P.shape[1] != self.arms.shape[1] or not np.all(np.isfinite(P)):
            raise InputDataError(
                f"new arms must be finite rows of width {self.arms.shape[1]}, got shape {P.shape}"
            )
        start = len(self.arms)
        k = len(P)
        if k == 0:
            return np.arange(start, start)
        self.arms = np.vstack((self.arms, P))
        self._counts = np.r_[self._counts, np.zeros(k, dtype=np.int64)]
        self._ysum = np.r_[self._ysum, np.zeros(k)]
        self._blocked = np.r_[self._blocked, np.zeros(k, dtype=bool)]
        new_diag = self.kernel.diag(P)
        self._kdiag = np.r_[self._kdiag, new_diag]
        self._mean = np.r_[self._mean, np.zeros(k)]
        self._var = np.r_[self._var, new_diag / self.lam]
        self._arms_added(k)
        self._stale = True
        return np.arange(start, start + k)

    @abstractmethod
    def _arms_added(self, k: int) -> None:
        """Grow or drop per-arm caches after ``k`` arms were appended."""

    def set_kernel(self, kernel: BanditKernel, noise_variance: float | None = None) -> None:
        """Replace the kernel (e.g. after re-learning its weights), and the noise variance when
        given (``lam`` follows it unless ``lam`` was set); the data are kept."""
        if noise_variance is not None:
            check_bandit_settings({"noise_variance": noise_variance})
            self.noise_variance = float(noise_variance)
            if self._lam_follows_noise:
                self.lam = self.noise_variance
        _check_kernel(kernel)
        self.kernel = kernel
        self._kdiag = kernel.diag(self.arms)
        self._kernel_changed()
        self._stale = True

    @abstractmethod
    def _kernel_changed(self) -> None:
        """Drop caches that depend on the kernel."""

    # --- shared numerics ---------------------------------------------------------------------

    def _ensure_posterior(self) -> None:
        if self._stale:
            gain = self._batch_information_gain()
            self._refresh()
            self._stale = False
            self._beta = self._compute_beta(gain)

    def _batch_information_gain(self) -> float:
        """``sum log(1 + sigma_fb^2(x))`` over the rewards told since the last refresh, with the
        variances of the model that chose them (the reference batch BKB's logdet increment)."""
        told = self.model_data(self._logdet_seen)
        self._logdet_seen = len(self._history)
        return sum(math.log1p(max(float(self._var[a]), 0.0)) for a, _ in told)

    def model_data(self, start: int = 0) -> list[tuple[int, float]]:
        """``(arm, reward)`` the model is fitted on, from history entry ``start`` on: the told
        rewards and, with ``impute_failed``, the failures as the worst reward before them."""
        return [
            (a, y)
            for (a, _, _), y in zip(self._history[start:], self._model_y[start:], strict=True)
            if y == y
        ]

    def _y_standardisation(self) -> tuple[float, float]:
        """``(mean, scale)`` mapping raw rewards to the model's units."""
        t = self.fitted
        if not self.normalize_y or t == 0:
            return 0.0, 1.0
        mean = self._y_mean
        scale = self._y_spread / math.sqrt(t)
        return mean, (scale if scale > MIN_Y_SCALE * max(1.0, abs(mean)) else 1.0)

    def _compute_beta(self, gain: float = 0.0) -> float:
        if not isinstance(self.beta_mode, str):
            return float(self.beta_mode) * math.sqrt(self.lam)  # c GP standard deviations
        t = self.fitted
        information = float(self._counts @ np.maximum(self._var, 0.0))
        factor = self.ratio_threshold if self.batch else 1.0
        if self.beta_mode == "practical" and self.batch:
            # the reference batch BKB: logdet starts as BKB's log(t) I over the initial pulls,
            # then grows by log(1 + sigma_fb^2) per reward (bkb.md 2.1)
            if t <= self.initial:
                self._logdet = math.log(max(t, 1)) * information
            else:
                self._logdet += gain
            return batch_beta(
                self._logdet, self.lam, self.noise_variance, self.fnorm, self.delta, factor
            )
        if self.beta_mode == "practical":
            return practical_beta(
                t, information, self.lam, self.noise_variance, self.fnorm, self.delta
            )
        return theory_beta(
            t,
            information,
            self.lam,
            self.noise_variance,
            self.fnorm,
            self.delta,
            self._sketch_epsilon(),
            float(self._kdiag.max()),
            factor,
        )

    def _sketch_epsilon(self) -> float:
        """``eps`` of the posterior approximation (0 for an exact posterior)."""
        return self.epsilon

    # --- state ---------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {
            "noise_variance": self.noise_variance,
            "lam": None if self._lam_follows_noise else self.lam,
            "fnorm": self.fnorm,
            "delta": self.delta,
            "beta": self.beta_mode,
            "epsilon": self.epsilon,
            "batch": self.batch,
            "ratio_threshold": self.ratio_threshold,
            "max_batch": self.max_batch,
            "initial": self.initial,
            "normalize_y": self.normalize_y,
            "skip_failed": self.skip_failed,
            "impute_failed": self.impute_failed,
            "repeat": self.repeat,
            "seed": self.seed,
        }

    def _extra_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Hook: subclass arrays and JSON fields to save."""
        return {}, {}

    def _load_extra_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:  # noqa: B027
        """Hook: restore what :meth:`_extra_state` saved."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to resume the run exactly, as a flat dict of numpy arrays."""
        extra_arrays, extra_meta = self._extra_state()
        hist = self.history
        meta = {
            "class": type(self).__name__,
            "settings": self._settings(),
            "rng": self._rng.bit_generator.state,
            "y_mean": self._y_mean,
            "y_spread": self._y_spread,
            "batches": self._batches,
            "logdet": self._logdet,
            "logdet_seen": self._logdet_seen,
            "extra": extra_meta,
        }
        arrays = {
            "format": np.asarray(STATE_FORMAT),
            "version": np.asarray(STATE_VERSION),
            "meta": np.asarray(json.dumps(meta, default=json_default)),
            "arms": self.arms,
            "counts": self._counts,
            "ysum": self._ysum,
            "blocked": self._blocked,
            "mean": self._mean,
            "variance": self._var,
            "history_arm": hist["arm"],
            "history_y": hist["y"],
            "history_batch": hist["batch"],
            "history_model_y": np.asarray(self._model_y, dtype=float),
            "pending_arm": np.array([a for a, _ in self._pending], dtype=np.int64),
            "pending_batch": np.array([b for _, b in self._pending], dtype=np.int64),
            **{f"kernel_{k}": v for k, v in self.kernel.to_state().items()},
            **{f"extra_{k}": v for k, v in extra_arrays.items()},
        }
        return arrays

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` atomically (``.npz`` appended when missing, as
        ``np.savez`` does) and return that path; :meth:`load` resumes the same run."""
        path = Path(path)
        if path.suffix != ".npz" and not path.is_dir():  # a folder is refused by name
            path = path.with_name(path.name + ".npz")
        return save_npz(path, self.state_dict())

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> ArmBandit:
        """Rebuild a bandit (of the saved class) from :meth:`state_dict`; same RNG stream.

        A subclass refuses the state of another class (:class:`ArmBandit` takes any)."""
        if str(state.get("format", "")) != STATE_FORMAT:
            raise ModelFileError("not a distgp bandit state; pass a file written by save()")
        if int(state.get("version", -1)) != STATE_VERSION:
            raise ModelFileError(
                f"bandit state version {state.get('version')}; this distgp reads {STATE_VERSION}"
            )
        try:
            meta = json.loads(str(state["meta"]))
            target = _REGISTRY[meta["class"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"bandit state is incomplete or corrupt ({exc})") from None
        if not issubclass(target, cls):
            raise ModelFileError(
                f"the state was saved by a {target.__name__}, not a {cls.__name__}; load it with "
                f"{target.__name__}.load (ArmBandit.load reads any bandit's state)"
            )
        try:
            kernel = kernel_from_state(
                {k[len("kernel_") :]: v for k, v in state.items() if k.startswith("kernel_")}
            )
            bandit = target(np.asarray(state["arms"]), kernel, **meta["settings"])
            bandit._rng.bit_generator.state = meta["rng"]
            bandit._counts = np.asarray(state["counts"], dtype=np.int64).copy()
            bandit._ysum = np.asarray(state["ysum"], dtype=float).copy()
            bandit._blocked = np.asarray(state["blocked"], dtype=bool).copy()
            if "y_spread" in meta:
                bandit._y_mean, bandit._y_spread = float(meta["y_mean"]), float(meta["y_spread"])
            elif "y_mean" in meta:  # a file of distgp before the root: the sum of squares
                bandit._y_mean = float(meta["y_mean"])
                bandit._y_spread = math.sqrt(max(float(meta["y_m2"]), 0.0))
            else:  # a file of distgp before Welford's update: running sums
                t = max(bandit.fitted, 1)
                bandit._y_mean = float(meta["y_total"]) / t
                m2 = float(meta["y_sumsq"]) - t * bandit._y_mean**2
                bandit._y_spread = math.sqrt(max(m2, 0.0))
            bandit._batches = int(meta["batches"])
            bandit._logdet = float(meta["logdet"])
            bandit._mean = np.asarray(state["mean"], dtype=float).copy()
            bandit._var = np.asarray(state["variance"], dtype=float).copy()
            bandit._logdet_seen = int(meta["logdet_seen"])
            bandit._history = [
                (int(a), float(y), int(b))
                for a, y, b in zip(
                    state["history_arm"], state["history_y"], state["history_batch"], strict=True
                )
            ]
            model_y = state.get("history_model_y", state["history_y"])  # older: no imputation
            bandit._model_y = [float(y) for y in model_y]
            bandit._pending = [
                (int(a), int(b))
                for a, b in zip(state["pending_arm"], state["pending_batch"], strict=True)
            ]
            extra = {k[len("extra_") :]: v for k, v in state.items() if k.startswith("extra_")}
            bandit._load_extra_state(extra, meta["extra"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"bandit state is incomplete or corrupt ({exc})") from None
        return bandit

    @classmethod
    def load(cls, path: str | Path) -> ArmBandit:
        """Read a state written by :meth:`save` (see :meth:`from_state`); ``path`` may omit
        the ``.npz`` that :meth:`save` appends."""
        path = Path(path)
        appended = path.with_name(path.name + ".npz")
        if not path.exists() and path.suffix != ".npz" and appended.is_file():
            path = appended
        if path.is_dir():
            raise ModelFileError(
                f"{path} is a folder; pass the bandit state file (.npz) that save() wrote"
            )
        if not path.is_file():
            raise ModelFileError(f"bandit state file {path} does not exist")
        try:
            state = read_npz(path)
        except ValueError as exc:
            raise ModelFileError(f"cannot read {path} as a bandit state ({exc})") from None
        return cls.from_state(state)


SETTING_OPTIONS = (
    "noise_variance",
    "lam",
    "fnorm",
    "delta",
    "beta",
    "epsilon",
    "ratio_threshold",
    "max_batch",
    "initial",
    "qbar",
    "resparsify",
)
"""The bandit arguments checked by :func:`check_bandit_settings` (``ArmBandit`` and ``BKB``):
those an adapter checks at construction."""


def check_bandit_settings(values: dict[str, Any]) -> None:
    """Check bandit arguments with the rules of their settings (``bandit.<name>`` of
    :class:`~distgp.bandit.config.OptimizeConfig`); a bool is no number."""
    from distgp.bandit.config import OptimizeConfig
    from distgp.settings import require

    for name, value in values.items():
        if isinstance(value, bool | np.bool_):  # a config file's types are checked when read
            raise ConfigError(f"bandit.{name} must be a number, got {value!r}", f"bandit.{name}")
        require(OptimizeConfig, f"bandit.{name}", value)
