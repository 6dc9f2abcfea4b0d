"""Seeded synthetic data shared by the tests."""

from __future__ import annotations

import numpy as np


def sinusoids(n: int = 120, seed: int = 0, noise: float = 0.05):
    """Sum of three sinusoids on an integer index (periods 12, 6.4 and 33 samples)."""
    rng = np.random.default_rng(seed)
    x = np.arange(1.0, n + 1.0)
    y = (
        np.sin(2 * np.pi * x / 12.0)
        + 0.6 * np.cos(2 * np.pi * x / 6.4 + 0.3)
        + 0.8 * np.sin(2 * np.pi * x / 33.0 + 1.0)
        + noise * rng.standard_normal(n)
    )
    return x[:, None], y


def smooth_regression(n: int = 80, dims: int = 2, seed: int = 0, noise: float = 0.05):
    """A smooth multi-dimensional test function with noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, dims))
    y = (
        np.sin(X[:, 0])
        + 0.5 * np.cos(1.5 * X[:, -1])
        + 0.1 * X.sum(1)
        + noise * rng.standard_normal(n)
    )
    return X, y


class SlowQuadratic:
    """A 2-D objective with bounds that takes a few milliseconds (for kill-and-resume tests)."""

    bounds = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    optimal_value = 0.0

    def __call__(self, x: np.ndarray) -> float:
        import time

        time.sleep(0.02)
        return float(np.sum((np.asarray(x) - 0.3) ** 2))


def trending_season(n: int = 60):
    """A linear trend plus a period-12 sine on the integer index ``1..n`` (no noise)."""
    x = np.arange(1.0, n + 1.0)[:, None]
    return x, 3 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12)


class InterruptedOnce:
    """A dict objective that raises ``KeyboardInterrupt`` (a Ctrl-C) at its ``at``-th call, once."""

    def __init__(self, at: int = 6) -> None:
        self.at, self.calls = at, 0

    def __call__(self, params: dict) -> float:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return (params["x"] - 0.3) ** 2 + (params["act"] == "tanh")


interrupted_once = InterruptedOnce()


class ExitsProcess:
    """An array objective that ends its process (``os._exit``, as a crash or the OOM killer
    would) at the ``at``-th evaluation of the run and, unless ``once``, at every one after it.
    Evaluations are counted in ``folder`` (each Ray actor holds its own copy of the object)."""

    bounds = np.array([[0.0, 1.0], [0.0, 1.0]])

    def __init__(self, folder, at: int = 3, once: bool = True) -> None:
        self.folder, self.at, self.once = str(folder), at, once

    def __call__(self, x: np.ndarray) -> float:
        import os

        log, died = os.path.join(self.folder, "calls"), os.path.join(self.folder, "died")
        with open(log, "a") as handle:
            handle.write("x\n")
        with open(log) as handle:
            calls = len(handle.readlines())
        if calls >= self.at and not (self.once and os.path.exists(died)):
            open(died, "w").close()
            os._exit(1)
        return float(np.sum((np.asarray(x) - 0.3) ** 2))


exits_process = ExitsProcess(".")


class Halt(BaseException):
    """A BaseException that is neither an Exception nor a KeyboardInterrupt."""


class RaisesAt:
    """An array objective raising ``error`` from the ``at``-th evaluation of the run on
    (counted in ``folder``, as :class:`ExitsProcess`)."""

    bounds = np.array([[0.0, 1.0], [0.0, 1.0]])

    def __init__(self, folder, at: int, error: type[BaseException]) -> None:
        self.folder, self.at, self.error = str(folder), at, error

    def __call__(self, x: np.ndarray) -> float:
        import os

        log = os.path.join(self.folder, "calls")
        with open(log, "a") as handle:
            handle.write("x\n")
        with open(log) as handle:
            if len(handle.readlines()) >= self.at:
                raise self.error("stop")
        return float(np.sum((np.asarray(x) - 0.3) ** 2))


raises_at = RaisesAt(".", 1, Halt)
