"""The local objective of SLIM-KL and its difference-of-convex split (docs/dsca.md section 1).

For one shard with standardised outputs ``y`` (``n``) and parameters ``theta = (w_1..w_M, s2)``
(``M`` sub-kernel weights, then the noise variance as the weight of the identity sub-kernel)::

    C(theta) = sum_m w_m K_m + s2 I
    l(theta) = y^T C^-1 y + log det C = g(theta) - h(theta)

``g = y^T C^-1 y`` is convex and ``h = -log det C`` is convex, so ``l`` is a difference of convex
functions; ``l`` is twice the negative log marginal likelihood less ``n log 2 pi``. Its gradient is
``dl/dtheta_m = tr(C^-1 K_m) - alpha^T K_m alpha`` with ``alpha = C^-1 y``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distgp.exceptions import NumericalError, NumericsWarning
from distgp.kernels.bank import SubKernelBank
from distgp.kernels.compute import NumpyOps, TorchOps

JITTER_INITIAL = 1e-10  # relative to the mean diagonal
JITTER_MAX = 1e-3


class NotPositiveDefiniteError(NumericalError, np.linalg.LinAlgError):
    """The covariance stays indefinite even after the largest jitter."""


def warn_singular(noise_floor: float) -> None:
    """The one warning of a local objective whose covariance is numerically singular at its
    noise floor (noiseless data with a tiny floor): the factorisation needed jitter, or traces
    ``tr(C^-1 K_m)`` were lost to rounding. Raised from this one line, so a warning filter's
    default (once per text and place) shows it once however many iterates meet it."""
    warnings.warn(
        f"the covariance is numerically singular at noise floor {noise_floor:g}: the fit works "
        "around it (diagonal jitter, weights held where rounding hides their gradient); raise "
        "noise_floor (--noise-floor) for a fully resolved fit",
        NumericsWarning,
        stacklevel=1,
    )


def robust_cholesky(C, ops: NumpyOps | TorchOps | None = None, warn: bool = True):
    """Lower Cholesky factor of ``C``, adding escalating jitter if ``C`` is not positive definite.

    Args:
        C: ``n x n`` symmetric matrix (numpy, or a torch tensor with ``ops`` a
            :class:`~distgp.kernels.compute.TorchOps`).
        warn: issue the :class:`NumericsWarning` below (off: the caller tells the user).

    Returns:
        ``(L, jitter)`` with ``L L^T = C + jitter I``; a :class:`NumericsWarning` is issued when
        ``jitter > 0``.
    """
    ops = ops or NumpyOps()
    if not ops.all_finite(C):
        raise NotPositiveDefiniteError("the covariance matrix holds NaN or inf values")
    L = ops.cholesky(C)
    if L is not None:
        return L, 0.0
    scale = ops.mean_diagonal(C) or 1.0
    relative = JITTER_INITIAL
    while relative <= JITTER_MAX:
        jitter = relative * scale
        L = ops.cholesky(C, jitter)
        if L is None:
            relative *= 10.0
            continue
        if warn:  # the ladder's step, not the absolute jitter: a repeat reads the same
            warnings.warn(
                f"covariance not positive definite; added jitter {relative:.0e} x its mean "
                "diagonal to its diagonal",
                NumericsWarning,
                stacklevel=3,
            )
        return L, jitter
    raise NotPositiveDefiniteError(
        f"the covariance matrix is not positive definite even with jitter {JITTER_MAX:g} x its "
        "mean diagonal; raise the noise floor (noise_floor)"
    )


@dataclass
class Factorization:
    """Cholesky factorisation of ``C(theta)`` and what follows from it.

    Attributes:
        L: ``n x n`` lower Cholesky factor of ``C + jitter I`` (on the bank's device).
        alpha: ``C^-1 y`` (``n``, on the bank's device).
        fit: ``y^T C^-1 y``.
        logdet: ``log det C``.
        jitter: diagonal jitter that was needed (0 normally).
        ops: the dense operations of the device.
    """

    L: Any
    alpha: Any
    fit: float
    logdet: float
    jitter: float
    ops: NumpyOps | TorchOps = field(default_factory=NumpyOps, repr=False)
    _inverse: Any = field(default=None, repr=False)

    @property
    def value(self) -> float:
        """``l(theta) = y^T C^-1 y + log det C``."""
        return self.fit + self.logdet

    def inverse(self):
        """``C^-1`` (``n x n``), computed once from the Cholesky factor; on the CPU only its
        lower triangle is filled (the products read no more)."""
        if self._inverse is None:
            inv = self.ops.cholesky_inverse_lower(self.L)
            if inv is None:
                raise NotPositiveDefiniteError("could not invert the covariance from its factor")
            self._inverse = inv
        return self._inverse


@dataclass(frozen=True)
class ProximalTerm:
    """ADMM augmentation ``lambda^T (theta - z) + rho/2 ||theta - z||^2`` (docs/admm.md section 2).

    Attributes:
        dual: ``lambda`` (``M + 1``), unscaled dual variable.
        rho: penalty (> 0): a scalar, or one value per parameter (``M + 1``).
        anchor: ``z`` (``M + 1``), the consensus vector.
    """

    dual: np.ndarray
    rho: float | np.ndarray
    anchor: np.ndarray

    def value(self, theta: np.ndarray) -> float:
        d = theta - self.anchor
        return float(self.dual @ d + 0.5 * np.sum(self.rho * d * d))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        return self.dual + self.rho * (theta - self.anchor)


class LocalObjective:
    """``l(theta)`` on one shard (see module docstring).

    Args:
        bank: the shard's sub-kernels.
        y: ``n`` standardised outputs.
        noise_floor: lower bound of the noise variance, in standardised units (``var(y) = 1``).
    """

    def __init__(self, bank: SubKernelBank, y: np.ndarray, noise_floor: float) -> None:
        self.bank = bank
        self.y = np.asarray(y, float)
        self._y_device = bank.ops.asarray(self.y)
        self.noise_floor = float(noise_floor)
        self.M = bank.M
        self.dim = bank.M + 1
        self.noise_index = bank.M
        self.lower = np.zeros(self.dim)
        self.lower[self.noise_index] = self.noise_floor
        self.evaluations = 0

    @property
    def n(self) -> int:
        return self.bank.n

    def covariance(self, theta: np.ndarray, lower: bool = False):
        """``C(theta)`` (``n x n``, on the bank's device); ``lower``: on the CPU only its lower
        triangle is filled (all the Cholesky factorisation reads)."""
        C = self.bank.gram(theta[: self.M], lower=lower)
        self.bank.ops.add_diagonal(C, float(theta[self.noise_index]))
        return C

    def factorize(self, theta: np.ndarray, warn: bool = True) -> Factorization:
        """Factorise ``C(theta)`` and evaluate ``l(theta)``; ``warn``: a factorisation that
        needs jitter issues :func:`warn_singular` (off for a trial that then fails)."""
        self.evaluations += 1
        ops = self.bank.ops
        L, jitter = robust_cholesky(self.covariance(theta, lower=True), ops, warn=False)
        if jitter and warn:
            warn_singular(self.noise_floor)
        alpha = ops.cho_solve(L, self._y_device)
        return Factorization(
            L=L,
            alpha=alpha,
            fit=ops.dot(self._y_device, alpha),
            logdet=ops.logdet(L),
            jitter=jitter,
            ops=ops,
        )

    def value(self, theta: np.ndarray) -> float:
        return self.factorize(theta).value

    def curvature(self, theta: np.ndarray) -> np.ndarray:
        """Gauss-Newton curvature ``2 (K_m alpha)^T C^-1 (K_m alpha)`` of ``l`` per parameter
        (``M + 1``; the noise's ``K`` is ``I``): the data-fit part of the Hessian's diagonal, an
        upper bound of the diagonal itself (the log-det part is concave)."""
        fac = self.factorize(np.maximum(np.asarray(theta, float), self.lower))
        ops = fac.ops
        Ka = np.column_stack((self.bank.apply(fac.alpha, np.arange(self.M)), ops.numpy(fac.alpha)))
        solved = ops.numpy(ops.cho_solve(fac.L, ops.asarray(Ka)))
        return 2.0 * np.einsum("ij,ij->j", Ka, solved)

    def linearization(
        self, fac: Factorization, components: np.ndarray, traces: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """``c_m = tr(C^-1 K_m)`` and ``q_m = alpha^T K_m alpha`` for the given indices.

        ``c`` is the gradient of the concave part (log det), the linear term of the SCA
        surrogate (docs/dsca.md section 2); index ``M`` is the noise (``K = I``).
        """
        components = np.asarray(components, dtype=int)
        kernel = components < self.M
        c = np.empty(len(components)) if traces else None
        q = np.empty(len(components))
        t, qk = self.bank.products(
            components[kernel], A=fac.inverse() if traces else None, alpha=fac.alpha
        )
        q[kernel] = qk
        q[~kernel] = fac.ops.dot(fac.alpha, fac.alpha)
        if c is not None:
            c[kernel] = t
            c[~kernel] = fac.ops.trace(fac.inverse())
        return c, q

    def gradient(self, theta: np.ndarray, fac: Factorization | None = None) -> np.ndarray:
        """``dl/dtheta`` (``M + 1``)."""
        fac = self.factorize(theta) if fac is None else fac
        c, q = self.linearization(fac, np.arange(self.dim))
        return c - q

    def nlml(self, value: float) -> float:
        """Negative log marginal likelihood (standardised units) from ``l``."""
        return 0.5 * value + 0.5 * self.n * math.log(2.0 * math.pi)
