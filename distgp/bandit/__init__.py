"""Bandit optimisation over finite arm sets: BKB, batch BKB and exact GP-UCB (no Ray here).

* :class:`BKB` (``batch=True`` for batch BKB) and :class:`GPUCB` share the ``ask(n)`` /
  ``tell(arms, y)`` lifecycle documented in :mod:`distgp.bandit.base`.
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
