"""Orchestration above the bandit algorithms: the loop behind ``distgp optimize``.

:func:`distgp.optimize.loop.optimize` asks the bandit (:mod:`distgp.bandit`), has the agents
evaluate, tells the rewards, re-learns the GSMP kernel on the agents
(:mod:`distgp.optimize.refit`) and checkpoints. :mod:`distgp.bandit` itself imports no backend,
no Ray and no driver.
"""
