"""Errors and warnings raised by distgp.

Every user-facing failure is a :class:`DistGPError`; the command line turns one into a single
line on stderr and exit status 2. Messages name the problem and the fix.
"""

from __future__ import annotations


class DistGPError(Exception):
    """Base class of every error distgp raises on purpose."""


class InputDataError(DistGPError, ValueError):
    """Training or test data that cannot be used (missing file, wrong keys, NaN, bad shapes)."""


class ConfigError(DistGPError, ValueError):
    """A configuration value or command-line option that is invalid."""


class ModelFileError(DistGPError, ValueError):
    """A saved model or state file that is missing, corrupt or of another kind."""


class BackendError(DistGPError, RuntimeError):
    """The execution backend (for instance a Ray cluster) cannot be reached or used."""


class NotFittedError(DistGPError, AttributeError):
    """An estimator method that needs a fitted model was called before ``fit``."""


class NumericsWarning(RuntimeWarning):
    """A numerical safeguard changed the computation (jitter added, variance clipped)."""
