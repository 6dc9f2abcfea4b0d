"""DSCA: successive convex approximation solved blockwise (slimkl.md section 3).

Each outer iteration linearises ``log det C`` at the iterate (one Cholesky, one inverse, one
matrix product per envelope group), splits the active parameters into ``blocks`` of consecutive
grid indices, solves every block's convex subproblem from the same iterate (Jacobi, so the blocks
are independent and could run in parallel) and takes the step ``theta + gamma (theta_hat - theta)``
with the largest ``gamma`` in ``1, 1/2, 1/4, ...`` that does not increase the objective. Weights
that fall below ``prune_tol`` times the largest weight are set to exactly zero and leave the active
set; at convergence the KKT conditions of the pruned weights are checked and violators re-enter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from distgp.exceptions import ConfigError
from distgp.learn.objective import Factorization, LocalObjective, ProximalTerm
from distgp.learn.solvers import BlockSolver, BlockSubproblem, ClosedFormSolver

MAX_HALVINGS = 30
MAX_REVIVALS = 5


@dataclass(frozen=True)
class DSCAOptions:
    """Settings of the DSCA local solver.

    Attributes:
        max_iterations: outer SCA iterations.
        tol: stop when the relative decrease of the objective falls below this.
        blocks: number of parameter blocks ``S`` solved in parallel (Jacobi).
        prune_tol: weights below ``prune_tol * max(weights)`` become exactly zero.
        kkt_tol: a pruned weight re-enters when ``alpha^T K_m alpha > (1 + kkt_tol) tr(C^-1 K_m)``
            (its gradient points into the feasible set).
    """

    max_iterations: int = 200
    tol: float = 1e-6
    blocks: int = 4
    prune_tol: float = 1e-6
    kkt_tol: float = 1e-3

    def __post_init__(self) -> None:
        if self.max_iterations < 0:
            raise ConfigError("max_iterations must be non-negative")
        if self.blocks < 1:
            raise ConfigError(f"blocks (S) must be at least 1, got {self.blocks}")
        if not self.tol > 0:
            raise ConfigError(f"tol must be positive, got {self.tol}")
        if not 0 <= self.prune_tol < 1:
            raise ConfigError(f"prune_tol must be in [0, 1), got {self.prune_tol}")


@dataclass
class DSCAResult:
    """Outcome of :func:`dsca`.

    Attributes:
        theta: final parameters (``M + 1``; the last is the noise variance).
        value: final objective ``l(theta)`` plus the proximal term, if any.
        loss: final ``l(theta)`` alone.
        iterations: outer iterations run.
        converged: whether the tolerance (and the KKT check) was met.
        history: objective after every iteration (first entry: the starting point).
        factorization: the factorisation at ``theta``.
    """

    theta: np.ndarray
    value: float
    loss: float
    iterations: int
    converged: bool
    history: list[float] = field(default_factory=list)
    factorization: Factorization | None = None


def block_partition(indices: np.ndarray, blocks: int) -> list[np.ndarray]:
    """Split sorted parameter indices into at most ``blocks`` consecutive, non-empty blocks."""
    return [
        part for part in np.array_split(np.asarray(indices), min(blocks, len(indices))) if len(part)
    ]


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
    scaled = grad / c
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
) -> DSCAResult:
    """Minimise ``l(theta) [+ penalty(theta)]`` over ``theta >= lower`` from ``theta0``.

    Args:
        objective: the shard's objective.
        theta0: starting point (``M + 1``); clipped to the bounds.
        solver: block solver (default :class:`ClosedFormSolver`).
        options: :class:`DSCAOptions`.
        penalty: ADMM proximal term, or ``None`` for the plain DSCA solver.
        callback: called as ``callback(iteration, theta, value)`` after each iteration.
    """
    solver = solver or ClosedFormSolver()
    options = options or DSCAOptions()
    M = objective.M
    theta = np.maximum(np.asarray(theta0, float).copy(), objective.lower)

    def total(fac: Factorization, th: np.ndarray) -> float:
        return fac.value + (penalty.value(th) if penalty is not None else 0.0)

    fac = objective.factorize(theta)
    value = total(fac, theta)
    history = [value]
    converged = False
    revivals = 0
    iteration = 0
    while iteration < options.max_iterations:
        iteration += 1
        active = np.flatnonzero(theta > 0)
        active = np.union1d(active, [M])
        c, q = objective.linearization(fac, active)
        linear = c if penalty is None else c + penalty.dual[active]
        rho = 0.0 if penalty is None else penalty.rho
        anchor = np.zeros(len(active)) if penalty is None else penalty.anchor[active]
        proposal = theta.copy()
        position = {int(m): i for i, m in enumerate(active)}
        for block in block_partition(active, options.blocks):
            sel = np.array([position[int(m)] for m in block])
            sub = BlockSubproblem(block, theta, linear[sel], q[sel], rho, anchor[sel])
            proposal[block] = solver.solve(objective, sub)
        theta_new, fac_new, value_new = _step(objective, theta, proposal, value, total, options)
        decrease = value - value_new
        theta, fac, value = theta_new, fac_new, value_new
        history.append(value)
        if callback is not None:
            callback(iteration, theta, value)
        if decrease <= options.tol * max(1.0, abs(value)):
            if revivals < MAX_REVIVALS and _revive(objective, theta, fac, penalty, options):
                revivals += 1
                fac = objective.factorize(theta)
                value = total(fac, theta)
                continue
            converged = True
            break
    return DSCAResult(
        theta=theta,
        value=value,
        loss=fac.value,
        iterations=iteration,
        converged=converged,
        history=history,
        factorization=fac,
    )


def _step(objective, theta, proposal, value, total, options):
    """Largest ``gamma`` in 1, 1/2, ... whose (pruned) step does not increase the objective."""
    gamma = 1.0
    for _ in range(MAX_HALVINGS):
        trial = np.maximum(theta + gamma * (proposal - theta), objective.lower)
        _prune(trial, objective.M, options.prune_tol)
        fac = objective.factorize(trial)
        trial_value = total(fac, trial)
        if trial_value <= value + 1e-12 * abs(value):
            return trial, fac, trial_value
        gamma *= 0.5
    return theta, objective.factorize(theta), value


def _prune(theta: np.ndarray, M: int, prune_tol: float) -> None:
    weights = theta[:M]
    top = weights.max(initial=0.0)
    if top > 0:
        weights[weights < prune_tol * top] = 0.0


def _revive(objective, theta, fac, penalty, options) -> bool:
    """Re-enter pruned weights whose KKT condition fails; return whether any did."""
    M = objective.M
    pruned = np.flatnonzero(theta[:M] == 0)
    if pruned.size == 0:
        return False
    c, q = objective.linearization(fac, pruned)
    grad = c - q
    if penalty is not None:
        grad = grad + penalty.gradient(theta)[pruned]
    violators = pruned[grad < -options.kkt_tol * c]
    if violators.size == 0:
        return False
    top = theta[:M].max(initial=0.0)
    theta[violators] = max(top * max(options.prune_tol, 1e-8) * 10.0, 1e-12)
    return True
