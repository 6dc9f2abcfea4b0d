"""DSCA: successive convex approximation solved blockwise (docs/dsca.md).

Each outer iteration linearises ``log det C`` at the iterate (one Cholesky, one inverse, one
matrix product per envelope group), splits the active parameters into ``blocks`` of consecutive
grid indices and solves every block's convex subproblem from the same iterate (Jacobi, so the
blocks are independent and could run in parallel). The step rule keeps the objective decreasing:

1. an over-relaxed step ``theta^(1 - eta) theta_hat^eta`` (elementwise, in log space, the
   natural geometry of the multiplicative updates) with an adaptive ``eta >= 1`` that doubles
   after each success and halves after each failure (adaptive over-relaxed bound optimisation,
   Salakhutdinov and Roweis 2003); it is accepted only if the objective does not increase;
2. otherwise ``theta + gamma (theta_hat - theta)`` with the largest ``gamma`` in ``1, 1/2, ...``
   that does not increase it (``gamma = 1`` always succeeds for a single closed-form sweep,
   which is a majorisation step). Weights
that fall below ``prune_tol`` times the largest weight are set to exactly zero and leave the active
set; at convergence (the KKT conditions hold, or ten iterations gained less than ``min_gain``
nats) the KKT conditions of the pruned weights are checked and violators re-enter, only at a size
that lowers the objective, so the objective never increases; without an entry the solve stops
(docs/dsca.md section 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from distgp.config import FitConfig, LearnConfig
from distgp.exceptions import ConfigError
from distgp.learn.objective import (
    Factorization,
    LocalObjective,
    NotPositiveDefiniteError,
    ProximalTerm,
    warn_singular,
)
from distgp.learn.solvers import BlockSolver, BlockSubproblem, ClosedFormSolver
from distgp.settings import require
from distgp.threads import check_threads, owned_threads

MAX_HALVINGS = 30
MAX_REVIVALS = 5
MAX_OVERRELAXATION = 16.0
GAIN_WINDOW = 10  # iterations over which DSCAOptions.min_gain is measured
REVIVAL_SIZES = (10.0, 5.0, 2.5, 1.25)  # of prune_tol x the largest weight; all above pruning


@dataclass(frozen=True)
class DSCAOptions:
    """Settings of the DSCA local solver.

    Attributes:
        max_iterations: outer SCA iterations.
        tol: also stop when the relative decrease of the objective falls below this (a stall).
        blocks: number of parameter blocks ``S`` solved in parallel (Jacobi); a separable
            solver (one closed-form sweep, the default) gives the same update for any
            partition and solves them all in one call.
        prune_tol: weights below ``prune_tol * max(weights)`` become exactly zero.
        kkt_tol: stop when every gradient, scaled by ``tr(C^-1 K_m)``, satisfies the KKT conditions
            to this accuracy; a pruned weight re-enters when its scaled gradient is below
            ``-kkt_tol`` (it would decrease the objective by growing).
        min_gain: treat the iterate as settled, like the KKT test, when the last
            ``GAIN_WINDOW`` iterations (over the calls of a chunked solve, see
            :class:`SolveState`) together raised the log marginal likelihood by less than this
            many nats (half the decrease of ``l``): pruned weights whose KKT condition fails may
            still re-enter, and without one the solver stops. 0 turns it off. Not applied with
            an ADMM proximal term (the objective is then not the evidence).
        overrelax: try over-relaxed steps (see module docstring); off gives plain SCA steps.
        threads: thread budget of the solve (``None``: the process's, see :mod:`distgp.threads`);
            the solver sets its BLAS limits from it whatever the environment says.
    """

    max_iterations: int = LearnConfig.max_iterations
    tol: float = LearnConfig.tol
    blocks: int = LearnConfig.blocks
    prune_tol: float = LearnConfig.prune_tol
    kkt_tol: float = LearnConfig.kkt_tol
    overrelax: bool = True
    threads: int | None = LearnConfig.threads
    min_gain: float = LearnConfig.min_gain

    def __post_init__(self) -> None:
        check_threads(self.threads)
        if self.max_iterations < 0:  # 0 evaluates the start (ADMM's final evaluation)
            raise ConfigError("max_iterations must be non-negative")
        for name in ("blocks", "tol", "prune_tol", "kkt_tol", "min_gain"):
            require(FitConfig, f"learn.{name}", getattr(self, name))


@dataclass(frozen=True)
class SolveState:
    """What a stand-alone solve carries from one call to the next when it runs in chunks
    (progress reports and checkpoints between them), so that chunking does not change where it
    goes or stops.

    Attributes:
        recent: the objective over the last ``GAIN_WINDOW + 1`` iterates, the last at the end
            point (the window of ``min_gain``).
        eta: the over-relaxation factor the next step starts from.
        revivals: pruned-weight re-entries made so far (at most ``MAX_REVIVALS`` per solve).
    """

    recent: tuple[float, ...]
    eta: float = 2.0
    revivals: int = 0

    def to_wire(self) -> list[float]:
        return [self.eta, float(self.revivals), *self.recent]

    @classmethod
    def from_wire(cls, values) -> SolveState:
        values = [float(v) for v in values]
        return cls(tuple(values[2:]), values[0], int(values[1]))


@dataclass
class DSCAResult:
    """Outcome of :func:`dsca`.

    Attributes:
        theta: final parameters (``M + 1``; the last is the noise variance).
        value: final objective ``l(theta)`` plus the proximal term, if any.
        loss: final ``l(theta)`` alone.
        iterations: outer iterations run.
        converged: the KKT conditions hold to ``kkt_tol``, or no step decreases the objective
            by more than ``tol`` any more.
        history: objective after every iteration (first entry: the starting point).
        factorization: the factorisation at ``theta``.
        state: where a further call continues from (:class:`SolveState`).
    """

    theta: np.ndarray
    value: float
    loss: float
    iterations: int
    converged: bool
    history: list[float] = field(default_factory=list)
    factorization: Factorization | None = None
    state: SolveState | None = None


def block_partition(indices: np.ndarray, blocks: int) -> list[np.ndarray]:
    """Split sorted parameter indices into at most ``blocks`` consecutive, non-empty blocks."""
    return [
        part for part in np.array_split(np.asarray(indices), min(blocks, len(indices))) if len(part)
    ]


def stationarity(scaled_grad: np.ndarray, theta: np.ndarray, lower: np.ndarray) -> float:
    """Largest scaled KKT violation of ``min f, theta >= lower``: ``|g|`` above the bound,
    ``max(0, -g)`` at it (``g``: the gradient of ``f`` over its scale, ``tr(C^-1 K_m)``)."""
    at_bound = theta <= lower * (1 + 1e-12)
    free = np.abs(scaled_grad[~at_bound])
    bound = -scaled_grad[at_bound]
    return float(max(free.max(initial=0.0), bound.max(initial=0.0)))


def scaled_gradient(grad: np.ndarray, traces: np.ndarray) -> np.ndarray:
    """``grad / tr(C^-1 K_m)``, and 0 where the computed trace is not positive.

    Mathematically every trace is positive (``K_m`` is positive semi-definite, ``C^-1``
    positive definite), but from the explicit inverse of a numerically singular ``C`` (a tiny
    noise floor on noiseless data) a small trace is lost to cancellation and comes out ``<= 0``:
    such a component's gradient cannot be told from rounding at that scale, so it counts as
    stationary.
    """
    return np.divide(grad, traces, out=np.zeros_like(grad), where=traces > 0)


def kkt_violation(
    objective: LocalObjective,
    theta: np.ndarray,
    fac: Factorization,
    penalty: ProximalTerm | None = None,
) -> float:
    """Largest relative violation of the KKT conditions of ``min l + penalty, theta >= lower``.

    For each parameter the gradient is scaled by ``tr(C^-1 K_m)``; a parameter above its bound
    needs a zero gradient, one at its bound a non-negative gradient.
    """
    idx = np.arange(objective.dim)
    c, q = objective.linearization(fac, idx)
    grad = c - q
    if penalty is not None:
        grad = grad + penalty.gradient(theta)
    scaled = scaled_gradient(grad, c)
    free = theta > objective.lower * (1 + 1e-12) + 1e-300
    return float(
        max(np.max(np.abs(scaled[free]), initial=0.0), np.max(-scaled[~free], initial=0.0))
    )


def dsca(
    objective: LocalObjective,
    theta0: np.ndarray,
    solver: BlockSolver | None = None,
    options: DSCAOptions | None = None,
    penalty: ProximalTerm | None = None,
    callback: Callable[[int, np.ndarray, float], None] | None = None,
    state: SolveState | None = None,
) -> DSCAResult:
    """Minimise ``l(theta) [+ penalty(theta)]`` over ``theta >= lower`` from ``theta0``.

    Args:
        objective: the shard's objective.
        theta0: starting point (``M + 1``); clipped to the bounds.
        solver: block solver (default :class:`ClosedFormSolver`).
        options: :class:`DSCAOptions`.
        penalty: ADMM proximal term, or ``None`` for the plain DSCA solver.
        callback: called as ``callback(iteration, theta, value)`` after each iteration.
        state: the ``state`` of the call this one continues (``theta0`` is then its end
            point): a solve run in chunks takes the same steps and stops where one call would.
    """
    options = options or DSCAOptions()
    with owned_threads(objective.n, options.threads) as plan:
        objective.bank.workers = plan.workers
        return _dsca(
            objective, theta0, solver or ClosedFormSolver(), options, penalty, callback, state
        )


def _dsca(objective, theta0, solver, options, penalty, callback, state) -> DSCAResult:
    M = objective.M
    theta = np.maximum(np.asarray(theta0, float).copy(), objective.lower)

    def total(fac: Factorization, th: np.ndarray) -> float:
        return fac.value + (penalty.value(th) if penalty is not None else 0.0)

    fac = objective.factorize(theta)
    value = total(fac, theta)
    history = [value]
    earlier = list(state.recent[:-1]) if state is not None else []  # min_gain's window before
    eta = (state.eta if state is not None else 2.0) if options.overrelax else 1.0
    converged = False
    warned = False  # lost traces, once per solve
    revivals = state.revivals if state is not None else 0
    iteration = 0
    while iteration < options.max_iterations:
        iteration += 1
        active = np.append(np.flatnonzero(theta[:M] > 0), M)  # sorted; the noise last
        if penalty is not None:  # zero weights that the consensus or the dual pull up
            pulled = (penalty.anchor[:M] > 0) | (penalty.dual[:M] < 0)
            active = np.union1d(active, np.flatnonzero(pulled))
        c, q = objective.linearization(fac, active)
        linear = c if penalty is None else c + penalty.dual[active]
        rho = (
            np.zeros(len(active))
            if penalty is None
            else np.broadcast_to(np.asarray(penalty.rho, float), (objective.dim,))[active]
        )
        anchor = np.zeros(len(active)) if penalty is None else penalty.anchor[active]
        grad = linear - q + rho * (theta[active] - anchor)
        resolved = c > 0
        if not warned and not resolved.all():
            warned = True
            warn_singular(objective.noise_floor)
        scaled = scaled_gradient(grad, c)
        settled = stationarity(scaled, theta[active], objective.lower[active]) <= options.kkt_tol
        # a slow tail that no longer gains what matters counts as settled: pruned weights may
        # still re-enter (the large drops after a plateau are such entries), then it stops
        recent = _window(earlier, history)
        if settled or (penalty is None and _gained_little(recent, options.min_gain)):
            revived = None
            if revivals < MAX_REVIVALS:
                revived = _revive(objective, theta, fac, value, total, penalty, options)
            if revived is not None:
                revivals += 1
                theta, fac, value = revived
                history.append(value)
                continue
            converged = True
            iteration -= 1
            break
        proposal = theta.copy()
        # a weight whose trace was lost to rounding stays where it is for this step (its
        # subproblem has no usable linear term; without a proximal term it is unbounded)
        solvable = active[resolved]
        # a separable solver's update is the same for any partition: one call for all blocks
        blocks = [solvable] if solver.separable else block_partition(solvable, options.blocks)
        for block in blocks:
            sel = np.searchsorted(active, block)  # positions in active (sorted)
            sub = BlockSubproblem(block, theta, linear[sel], q[sel], rho[sel], anchor[sel])
            proposal[block] = solver.solve(objective, sub)
        theta_new, fac_new, value_new, eta = _step(
            objective, theta, proposal, value, total, options, eta
        )
        decrease = value - value_new
        theta, fac, value = theta_new, fac_new, value_new
        history.append(value)
        if callback is not None:
            callback(iteration, theta, value)
        if decrease <= options.tol * max(1.0, abs(value)):
            converged = True  # stalled: no further progress at this accuracy
            break
    return DSCAResult(
        theta=theta,
        value=value,
        loss=fac.value,
        iterations=iteration,
        converged=converged,
        history=history,
        factorization=fac,
        state=SolveState(tuple(_window(earlier, history)), eta, revivals),
    )


def _step(objective, theta, proposal, value, total, options, eta):
    """The step rule of the module docstring; returns ``(theta, factorization, value, eta)``."""

    def attempt(trial, warn=True):
        trial = np.maximum(trial, objective.lower)
        prune(trial, objective.M, options.prune_tol)
        fac = objective.factorize(trial, warn)
        trial_value = total(fac, trial)
        return trial, fac, trial_value, trial_value <= value + 1e-12 * abs(value)

    if eta > 1.0:
        both = (theta > 0) & (proposal > 0)
        trial = proposal.copy()
        trial[both] = theta[both] * (proposal[both] / theta[both]) ** eta
        # an extrapolation can blow weights up to 1e30: a covariance that needs jitter (or
        # overflows) is a failed try, and a silent one (no warning filter changed for it: that
        # would reset the registry that shows a warning once)
        try:
            trial, fac, trial_value, ok = attempt(trial, warn=False)
        except NotPositiveDefiniteError:
            fac, ok = None, False
        if ok and fac.jitter == 0.0:
            return trial, fac, trial_value, min(2.0 * eta, MAX_OVERRELAXATION)
        eta = max(1.0, 0.5 * eta)
    gamma = 1.0
    for _ in range(MAX_HALVINGS):
        trial, fac, trial_value, ok = attempt(theta + gamma * (proposal - theta))
        if ok:
            return trial, fac, trial_value, eta
        gamma *= 0.5
    return theta, objective.factorize(theta), value, eta


def _window(earlier: list[float], history: list[float]) -> list[float]:
    """The last ``GAIN_WINDOW + 1`` objective values: ``earlier`` calls' (a chunked solve),
    then this call's ``history``; ``min_gain``'s window (no copy of the whole history)."""
    return (earlier + history[-GAIN_WINDOW - 1 :])[-GAIN_WINDOW - 1 :]


def _gained_little(history: list[float], min_gain: float) -> bool:
    """Whether the last :data:`GAIN_WINDOW` iterations lowered ``l`` (twice the negative log
    marginal likelihood) by less than ``2 min_gain``."""
    if min_gain <= 0 or len(history) <= GAIN_WINDOW:
        return False
    return history[-GAIN_WINDOW - 1] - history[-1] < 2.0 * min_gain


def prune(theta: np.ndarray, M: int, prune_tol: float) -> None:
    """Set the weights (``theta[:M]``, in place) below ``prune_tol`` times the largest to 0."""
    weights = theta[:M]
    top = weights.max(initial=0.0)
    if top > 0:
        weights[weights < prune_tol * top] = 0.0


def _revive(objective, theta, fac, value, total, penalty, options):
    """Re-enter pruned weights whose KKT condition fails, only if that lowers the objective.

    The violators enter together at ``REVIVAL_SIZES`` times ``prune_tol`` times the largest
    weight (largest first, all above the pruning threshold), and failing that the worst violator
    alone; the first that lowers the objective is taken. Returns ``(theta, factorization,
    value)``, or ``None`` when no weight violates its condition or no entry lowers the objective.
    """
    M = objective.M
    pruned = np.flatnonzero(theta[:M] == 0)
    if pruned.size == 0:
        return None
    c, q = objective.linearization(fac, pruned)
    grad = c - q
    if penalty is not None:
        grad = grad + penalty.gradient(theta)[pruned]
    scaled = scaled_gradient(grad, c)  # a weight whose trace was lost does not re-enter
    violators = pruned[scaled < -options.kkt_tol]
    if violators.size == 0:
        return None
    top = theta[:M].max(initial=0.0)
    worst = pruned[[np.argmin(scaled)]]
    for entering in (violators, worst) if violators.size > 1 else (violators,):
        for factor in REVIVAL_SIZES:
            trial = theta.copy()
            trial[entering] = max(top * max(options.prune_tol, 1e-8) * factor, 1e-12)
            trial_fac = objective.factorize(trial)
            trial_value = total(trial_fac, trial)
            if trial_value < value:
                return trial, trial_fac, trial_value
    return None
