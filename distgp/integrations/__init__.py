"""Adapters that offer BKB to other optimisation frameworks.

* :class:`distgp.integrations.tune.BKBSearch`: a Ray Tune ``Searcher``.
* :class:`distgp.integrations.optuna.BKBSampler`: an Optuna ``BaseSampler``.

Import the submodule you need; each imports its framework (``pip install distgp[integrations]``).
"""
