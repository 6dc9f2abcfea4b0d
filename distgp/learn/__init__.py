"""Kernel-weight learning: objective, block solvers and the DSCA local solver (no Ray here)."""

from distgp.learn.dsca import DSCAOptions, DSCAResult, dsca, kkt_violation
from distgp.learn.objective import LocalObjective, ProximalTerm, robust_cholesky
from distgp.learn.solvers import ClosedFormSolver, ConicSolver, make_solver

__all__ = [
    "ClosedFormSolver",
    "ConicSolver",
    "DSCAOptions",
    "DSCAResult",
    "LocalObjective",
    "ProximalTerm",
    "dsca",
    "kkt_violation",
    "make_solver",
    "robust_cholesky",
]
