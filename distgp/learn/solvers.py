"""Solvers of the convex block subproblem of DSCA (docs/dsca.md sections 2-4).

At an SCA iterate ``theta_k`` the log-det term is linearised, and block ``s`` solves::

    min_{theta_s >= lower} y^T C(theta_s; theta_k)^-1 y + b_s^T theta_s + rho/2 ||theta_s - z_s||^2

with ``b = c + lambda`` (``c_m = tr(C_k^-1 K_m)``, ``lambda`` the ADMM dual; zero outside ADMM).
Two interchangeable solvers:

* :class:`ClosedFormSolver` (default): the variational form
  ``y^T C^-1 y = min sum_m ||w_m||^2 / theta_m  s.t.  sum_m L_m w_m = y``, alternating the
  closed-form ``w``-step (``||w_m||^2 = theta_m^2 alpha^T K_m alpha``) with the per-coordinate
  ``theta``-step, the unique positive root of ``rho t^3 + (b_m - rho z_m) t^2 - a_m = 0``
  (docs/dsca.md section 4). One alternation is a majorisation step of the whole objective, so with
  ``inner_iterations=1`` the Jacobi update over all blocks always decreases it.
* :class:`ConicSolver`: the same subproblem as a second-order-cone program in cvxpy
  (``quad_over_lin`` rotated cones, never ``matrix_frac``), solved by Clarabel or SCS; the
  reference the closed form is tested against. It forms dense factors, so it suits small ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from distgp.config import FitConfig
from distgp.exceptions import ConfigError, NumericalError
from distgp.learn.objective import LocalObjective, ProximalTerm
from distgp.settings import require

SOLVERS = ("closed_form", "cvxpy")


@dataclass
class BlockSubproblem:
    """One block's convex subproblem at the iterate ``theta`` (all ``M + 1`` entries).

    Attributes:
        indices: parameter indices of the block (``M`` is the noise).
        theta: current full parameter vector.
        linear: ``b_s`` for the block (linearised log det plus dual).
        quad: ``alpha^T K_m alpha`` at ``theta`` for the block (reused by the first inner step).
        rho: proximal weight per entry (0 outside ADMM).
        anchor: ``z_s`` (zeros outside ADMM).
    """

    indices: np.ndarray
    theta: np.ndarray
    linear: np.ndarray
    quad: np.ndarray
    rho: np.ndarray
    anchor: np.ndarray


class BlockSolver(Protocol):
    #: each parameter's new value depends on its own entries of the subproblem only, so the
    #: blocks of one Jacobi sweep can be solved in a single call
    separable: bool

    def solve(self, objective: LocalObjective, problem: BlockSubproblem) -> np.ndarray:
        """Return the block's new values (same order as ``problem.indices``)."""


def positive_cubic_root(rho: float | np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Minimiser over ``t >= 0`` of ``a / t + b t + rho/2 t^2`` (``a >= 0``), elementwise
    (``rho`` a scalar or one positive value per entry).

    For ``a > 0`` it is the unique positive root of ``rho t^3 + b t^2 - a = 0``; for ``a = 0``
    it is ``max(0, -b / rho)``. With ``rho = 0`` the root is ``sqrt(a / b)`` (the SBL update).
    """
    a = np.maximum(np.asarray(a, float), 0.0)
    b = np.asarray(b, float)
    rho = np.asarray(rho, float)
    if np.all(rho <= 0):
        if np.any((b <= 0) & (a > 0)):
            raise NumericalError("unbounded subproblem: a non-positive linear term with rho = 0")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, np.sqrt(a / np.where(b > 0, b, 1.0)), 0.0)
    base = np.maximum(-b / rho, 0.0)
    upper = base + np.cbrt(a / rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(b > 0, np.minimum(upper, np.sqrt(a / np.where(b > 0, b, 1.0))), upper)
    t = upper
    # Newton from the right: the cubic is increasing and convex beyond its root, so this
    # converges monotonically (and quadratically) from any upper bound.
    for _ in range(100):
        f = rho * t**3 + b * t**2 - a
        df = 3.0 * rho * t**2 + 2.0 * b * t
        step = np.where(df > 0, f / np.where(df > 0, df, 1.0), 0.0)
        t_new = np.maximum(t - step, base)
        if np.all(np.abs(t_new - t) <= 1e-15 * np.maximum(t, 1e-300)):
            t = t_new
            break
        t = t_new
    return np.where(a > 0, t, base)


class ClosedFormSolver:
    """Alternating closed-form solver of the block subproblem (see module docstring).

    Args:
        inner_iterations: alternations per block; 1 is a pure majorisation step, more iterations
            approach the exact block minimiser (each costs one Cholesky).
    """

    name = "closed_form"

    def __init__(self, inner_iterations: int = 1) -> None:
        self.inner_iterations = require(FitConfig, "learn.inner_iterations", inner_iterations)
        self.separable = inner_iterations == 1  # later sweeps re-factorise with the whole block

    def solve(self, objective: LocalObjective, problem: BlockSubproblem) -> np.ndarray:
        idx = problem.indices
        t = problem.theta[idx].copy()
        q = problem.quad
        lower = objective.lower[idx]
        for it in range(self.inner_iterations):
            if it > 0:
                trial = problem.theta.copy()
                trial[idx] = t
                _, q = objective.linearization(objective.factorize(trial), idx, traces=False)
            a = t**2 * q  # ||w_m||^2 at the w-step optimum
            t = positive_cubic_root(problem.rho, problem.linear - problem.rho * problem.anchor, a)
            t = np.maximum(t, lower)
        return t


class ConicSolver:
    """Second-order-cone form of the block subproblem, solved with cvxpy (Clarabel or SCS).

    Args:
        solver: ``CLARABEL`` (default, accurate) or ``SCS`` (faster, looser).
        rank_tol: relative eigenvalue cut-off for the factors ``K_m = L_m L_m^T``.
    """

    name = "cvxpy"
    separable = False

    def __init__(self, solver: str = "CLARABEL", rank_tol: float = 1e-10) -> None:
        self.solver = solver.upper()
        self.rank_tol = rank_tol

    def _factor(self, K: np.ndarray) -> np.ndarray:
        vals, vecs = np.linalg.eigh(0.5 * (K + K.T))
        keep = vals > self.rank_tol * max(vals.max(), 0.0)
        return vecs[:, keep] * np.sqrt(vals[keep])

    def solve(self, objective: LocalObjective, problem: BlockSubproblem) -> np.ndarray:
        import cvxpy as cp

        idx = problem.indices
        M, n = objective.M, objective.n
        rest = problem.theta.copy()
        rest[idx] = 0.0
        C_rest = objective.bank.ops.numpy(objective.covariance(rest))
        theta = cp.Variable(len(idx))
        terms, columns = [], []
        for j, m in enumerate(idx):
            L = np.eye(n) if m == M else self._factor(objective.bank.component(int(m)))
            w = cp.Variable(L.shape[1])
            terms.append(cp.quad_over_lin(w, theta[j]))
            columns.append(L @ w)
        if np.any(C_rest != 0):
            B = self._factor(C_rest)
            w0 = cp.Variable(B.shape[1])
            terms.append(cp.sum_squares(w0))
            columns.append(B @ w0)
        cost = cp.sum(cp.hstack(terms)) + problem.linear @ theta
        rho = np.broadcast_to(np.asarray(problem.rho, float), (len(idx),))
        if np.any(rho > 0):
            cost = cost + 0.5 * cp.sum(cp.multiply(rho, cp.square(theta - problem.anchor)))
        constraints = [cp.sum(columns) == objective.y, theta >= objective.lower[idx]]
        prob = cp.Problem(cp.Minimize(cost), constraints)
        options = {"eps_abs": 1e-9, "eps_rel": 1e-9} if self.solver == "SCS" else {}
        prob.solve(solver=self.solver, **options)
        if theta.value is None:
            raise NumericalError(
                f"cvxpy ({self.solver}) failed on the block subproblem: {prob.status}; "
                "try solver closed_form"
            )
        return np.maximum(np.asarray(theta.value, float), objective.lower[idx])


def make_solver(
    name: str, inner_iterations: int = 1, conic_solver: str = "CLARABEL"
) -> BlockSolver:
    """Build a block solver by name (``closed_form`` or ``cvxpy``)."""
    if name == "closed_form":
        return ClosedFormSolver(inner_iterations)
    if name == "cvxpy":
        return ConicSolver(conic_solver)
    raise ConfigError(f"unknown solver {name!r}; choose one of: {', '.join(SOLVERS)}")


__all__ = [
    "SOLVERS",
    "BlockSolver",
    "BlockSubproblem",
    "ClosedFormSolver",
    "ConicSolver",
    "ProximalTerm",
    "make_solver",
    "positive_cubic_root",
]
