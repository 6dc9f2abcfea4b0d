"""Kernels for the bandit: a callable ``k(A, B) -> n_A x n_B`` matrix plus ``k.diag(A) -> n_A``.

Any object with these two methods works as a bandit kernel (:class:`BanditKernel`). Two are
provided:

* :class:`RBFKernel`: ``variance * exp(-|a - b|^2 / (2 lengthscale^2))`` on the encoded arms
  (``[0, 1]^D``); ``lengthscale`` may be one number or one per column.
* :class:`GSMPArmKernel`: a learned GSMP kernel (``distgp fit`` / :func:`distgp.driver.fit`),
  evaluated with :class:`~distgp.kernels.bank.SubKernelBank` on the model's standardised inputs.
  Its weights are in the model's standardised output units (``sum(weights) ~ 1 - noise``); the
  bandit standardises its rewards too, so the scales agree without conversion.

Kernels also serialise to a flat dict of arrays (:meth:`to_state` / :func:`kernel_from_state`) so
that a bandit's saved state can rebuild them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from distgp.exceptions import ConfigError, ModelFileError
from distgp.kernels.bank import SubKernelBank


@runtime_checkable
class BanditKernel(Protocol):
    """What the bandit needs from a kernel (inputs are encoded arms, ``n x D``)."""

    def __call__(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Cross-covariance ``n_A x n_B``."""
        ...

    def diag(self, A: np.ndarray) -> np.ndarray:
        """Prior variances ``k(a, a)`` (``n_A``)."""
        ...


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``|a_i - b_j|^2`` (``n_A x n_B``), clipped at 0 against round-off."""
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(sq, 0.0)


class RBFKernel:
    """Squared-exponential kernel.

    Args:
        lengthscale: a positive number, or one per input column (``D``), in encoded units.
        variance: the prior variance ``k(x, x)`` (standardised reward units).
    """

    kind = "rbf"

    def __init__(self, lengthscale: float | np.ndarray = 0.2, variance: float = 1.0) -> None:
        ls = np.asarray(lengthscale, dtype=float)
        if ls.ndim > 1 or not np.all(ls > 0) or not np.all(np.isfinite(ls)):
            raise ConfigError(f"RBF lengthscale must be positive, got {lengthscale!r}")
        if not (variance > 0 and np.isfinite(variance)):
            raise ConfigError(f"RBF variance must be positive, got {variance!r}")
        self.lengthscale = ls
        self.variance = float(variance)

    def __call__(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        A, B = A / self.lengthscale, B / self.lengthscale
        return self.variance * np.exp(-0.5 * squared_distances(A, B))

    def diag(self, A: np.ndarray) -> np.ndarray:
        return np.full(len(A), self.variance)

    def to_state(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.asarray(self.kind),
            "lengthscale": self.lengthscale,
            "variance": np.asarray(self.variance),
        }

    def __repr__(self) -> str:
        return f"RBFKernel(lengthscale={self.lengthscale.tolist()}, variance={self.variance})"


class GSMPArmKernel:
    """A learned GSMP kernel on encoded arms.

    Args:
        grid: the model's :class:`~distgp.kernels.grid.SpectralGrid`.
        scaler: the model's :class:`~distgp.data.Scaler` (maps arms to the grid's units).
        weights: ``M`` non-negative weights (standardised output units).
    """

    kind = "gsmp"

    def __init__(self, grid, scaler, weights: np.ndarray) -> None:
        self.grid = grid
        self.scaler = scaler
        self.weights = np.asarray(weights, dtype=float)
        if self.weights.shape != (grid.components,) or np.any(self.weights < 0):
            raise ConfigError("GSMP weights must be M non-negative numbers matching the grid")
        if not self.weights.sum() > 0:
            raise ConfigError("GSMP weights are all zero; the kernel would be identically zero")

    @classmethod
    def from_model(cls, model) -> GSMPArmKernel:
        """The kernel of a fitted :class:`~distgp.gp.GSMPModel` (noise not included)."""
        return cls(model.grid, model.scaler, model.weights)

    def __call__(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        bank = SubKernelBank(self.scaler.x(B), self.grid, cache_envelopes=False)
        return bank.cross(self.scaler.x(A), self.weights)

    def diag(self, A: np.ndarray) -> np.ndarray:
        # every GSMP component has k_m(0) = 1 (stationary, unit peak)
        return np.full(len(A), self.weights.sum())

    def to_state(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.asarray(self.kind),
            "weights": self.weights,
            **self.grid.to_dict(),
            **{f"scaler_{k}": v for k, v in self.scaler.to_dict().items()},
        }

    def __repr__(self) -> str:
        active = int(np.count_nonzero(self.weights))
        return f"GSMPArmKernel(components={self.grid.components}, active={active})"


def kernel_from_state(state: dict[str, np.ndarray]) -> RBFKernel | GSMPArmKernel:
    """Rebuild a kernel saved with ``to_state``."""
    from distgp.data import Scaler
    from distgp.kernels.grid import SpectralGrid

    kind = str(state.get("kind", ""))
    try:
        if kind == RBFKernel.kind:
            return RBFKernel(state["lengthscale"], float(state["variance"]))
        if kind == GSMPArmKernel.kind:
            scaler = Scaler.from_dict(
                {k[len("scaler_") :]: v for k, v in state.items() if k.startswith("scaler_")}
            )
            return GSMPArmKernel(SpectralGrid.from_dict(state), scaler, state["weights"])
    except (KeyError, ValueError) as exc:
        raise ModelFileError(f"saved kernel is incomplete ({exc})") from None
    raise ModelFileError(f"saved kernel has unknown kind {kind!r}; only rbf and gsmp can be saved")
