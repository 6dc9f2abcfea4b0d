"""Bandit optimisation over finite arm sets: BKB, batch BKB and exact GP-UCB.

Pure algorithms: nothing here imports Ray, a backend, the agents or the driver; the loop that
evaluates on agents, re-learns kernels and checkpoints is :mod:`distgp.optimize`.

* :class:`BKB` (``batch=True`` for batch BKB) and :class:`GPUCB` share the ``ask(n)`` /
  ``tell(arms, y)`` lifecycle documented in :mod:`distgp.bandit.base`.
* :mod:`distgp.bandit.nystrom`: BKB's posterior on a Nyström dictionary with ``O(A m)`` updates.
* :mod:`distgp.bandit.evidence`: RBF lengthscales and noise by the evidence.
* :mod:`distgp.bandit.spaces`: search spaces turned into arms.
* :mod:`distgp.bandit.kernels`: RBF and learned-GSMP kernels on encoded arms.
* :mod:`distgp.bandit.functions`: built-in test functions (minimisation problems).
"""

from distgp.bandit.base import ArmBandit
from distgp.bandit.bkb import BKB
from distgp.bandit.gpucb import GPUCB
from distgp.bandit.kernels import GSMPArmKernel, RBFKernel
from distgp.bandit.spaces import (
    CategoricalParam,
    FiniteSpace,
    FloatParam,
    IntParam,
    ParamSpace,
)

__all__ = [
    "BKB",
    "GPUCB",
    "ArmBandit",
    "CategoricalParam",
    "FiniteSpace",
    "FloatParam",
    "GSMPArmKernel",
    "IntParam",
    "ParamSpace",
    "RBFKernel",
]
