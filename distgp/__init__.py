"""distgp: distributed multi-agent GP kernel learning (SLIM-KL) and bandit optimisation (BKB).

Main entry points:

* :class:`distgp.GSMPRegressor`: a scikit-learn estimator, ``GSMPRegressor(agents=...).fit(X, y)``.
* :class:`distgp.kernels.GSMPKernel`: the GSMP kernel as a gpytorch kernel.
* ``distgp`` command line: ``fit``, ``predict``, ``optimize``, ``bench``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use: agents and the command line start without loading scikit-learn
    if name == "GSMPRegressor":
        from distgp.estimator import GSMPRegressor

        return GSMPRegressor
    raise AttributeError(f"module 'distgp' has no attribute {name!r}")


__all__ = ["GSMPRegressor", "__version__"]
