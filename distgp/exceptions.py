"""Errors and warnings raised by distgp.

Every user-facing failure is a :class:`DistGPError`; the command line turns one into a single
line on stderr, with exit status 2 for bad input and 1 for a :class:`NumericalError` (the input
was valid but the computation failed). Messages name the problem and the fix.
"""

from __future__ import annotations

import functools


class DistGPError(Exception):
    """Base class of every error distgp raises on purpose."""


class InputDataError(DistGPError, ValueError):
    """Training or test data that cannot be used (missing file, wrong keys, NaN, bad shapes)."""


class ConfigError(DistGPError, ValueError):
    """A configuration value or command-line option that is invalid.

    Attributes:
        setting: the dotted key of the setting at fault (``learn.max_iterations``), when one is;
            the command line names the flag that sets it, the estimator its parameter.
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self):  # keeps ``setting`` through pickling (Ray sends errors back)
        return type(self), (str(self), self.setting)


class ModelFileError(DistGPError, ValueError):
    """A saved model or state file that is missing, corrupt or of another kind."""


class BackendError(DistGPError, RuntimeError):
    """The execution backend (for instance a Ray cluster) cannot be reached or used."""


class ObjectiveError(DistGPError, TypeError):
    """An objective of ``distgp optimize`` that broke its contract (a reward that is not a real
    number): an error in its code, not a failed evaluation of one point; the run stops."""


class NumericalError(DistGPError, ArithmeticError):
    """A computation on valid input failed numerically (a covariance that stays indefinite, a
    solver that does not converge); the message names the setting that may help."""


def __getattr__(name: str):
    # NotFittedError derives from scikit-learn's, which is imported only when it is asked for:
    # agents import this module and must start without loading scikit-learn.
    if name == "NotFittedError":
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(DistGPError, SklearnNotFittedError):
        """An estimator method that needs a fitted model was called before ``fit``."""

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"  # pickles by name, through __getattr__
    return NotFittedError


class NumericsWarning(RuntimeWarning):
    """A numerical safeguard changed the computation (jitter added, variance clipped)."""
