"""distgp: distributed multi-agent GP kernel learning (SLIM-KL) and bandit optimisation (BKB).

Main entry points:

* :class:`distgp.GSMPRegressor`: scikit-learn style estimator, ``fit(X, y, agents=...)``.
* :class:`distgp.kernels.GSMPKernel`: the GSMP kernel as a gpytorch kernel.
* ``distgp`` command line: ``fit``, ``predict``, ``optimize``, ``bench``.
"""

__version__ = "0.1.0"

from distgp.estimator import GSMPRegressor

__all__ = ["GSMPRegressor", "__version__"]
