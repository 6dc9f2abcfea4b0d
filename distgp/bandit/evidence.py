"""RBF hyperparameters by the evidence (type-II maximum likelihood) from the first evaluations.

On encoded points ``X`` (``n x D`` in ``[0, 1]^D``) and rewards ``y`` standardised to mean 0 and
variance 1, maximise ``log N(y; 0, s_f^2 K_l + s_n^2 I)`` over one lengthscale per column ``l``
(in ``[0.01, 10]``), the signal variance ``s_f^2`` (``[0.05, 20]``) and the noise variance
``s_n^2`` (``[min_noise, 1]``) with L-BFGS-B on the log parameters and analytic gradients, from a
few starts (``0.2 sqrt(D)`` and random). Cost ``O(n^3 + n^2 D)`` per iteration and an
``n x n x D`` array, so beyond :data:`MAX_POINTS` evaluations the evidence is that of a uniform
random subset of them (seeded; "subset of data", Rasmussen and Williams 2006, 8.3.2), in the
units of all the rewards: a fit then costs the same whatever the number of evaluations.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize

from distgp.bandit.kernels import RBFKernel

LENGTHSCALE_BOUNDS = (0.01, 10.0)
SIGNAL_BOUNDS = (0.05, 20.0)
MIN_NOISE = 1e-4  # standardised units: keeps K + noise well conditioned on noise-free objectives
STARTS = 3
MAX_POINTS = 300  # evaluations the evidence is fitted on (a random subset beyond)


def fit_rbf(
    X: np.ndarray, y: np.ndarray, min_noise: float = MIN_NOISE, seed: int = 0
) -> tuple[RBFKernel, float]:
    """The evidence-maximising RBF (``variance`` = ``s_f^2``) and noise variance ``s_n^2``,
    both in the units of ``y`` standardised; on :data:`MAX_POINTS` of the points at most."""
    X = np.asarray(X, float)
    y = standardise(np.asarray(y, float))
    if len(y) > MAX_POINTS:
        keep = np.sort(np.random.default_rng((seed, 1)).choice(len(y), MAX_POINTS, replace=False))
        X, y = X[keep], y[keep]
    D = X.shape[1]
    diff2 = (X[:, None, :] - X[None, :, :]) ** 2  # n x n x D
    lo = [math.log(LENGTHSCALE_BOUNDS[0])] * D + [math.log(SIGNAL_BOUNDS[0]), math.log(min_noise)]
    hi = [math.log(LENGTHSCALE_BOUNDS[1])] * D + [math.log(SIGNAL_BOUNDS[1]), 0.0]
    rng = np.random.default_rng(seed)
    starts = [np.r_[np.full(D, math.log(0.2 * math.sqrt(D))), 0.0, math.log(1e-2)]]
    starts += [rng.uniform(lo, hi) for _ in range(STARTS - 1)]
    best = None
    for theta0 in starts:
        res = scipy.optimize.minimize(
            _neg_log_evidence,
            theta0,
            args=(diff2, y),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lo, hi, strict=True)),
        )
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    assert best is not None
    ls = np.exp(best.x[:D])
    return RBFKernel(ls, float(np.exp(best.x[D]))), float(np.exp(best.x[D + 1]))


def standardise(y: np.ndarray) -> np.ndarray:
    """``y`` less its mean, over its standard deviation (zeros when ``y`` is constant), for any
    finite float64 ``y``: divided by ``max |y|`` first, rewards of 1e200 do not overflow the
    squares and rewards of 1e-300 do not underflow them."""
    peak = float(np.abs(y).max(initial=0.0))
    if peak > 0:
        y = y / peak
    centred = y - y.mean()
    scale = float(np.sqrt(np.mean(centred**2)))
    return centred / scale if scale > 0 else centred


def _neg_log_evidence(
    theta: np.ndarray, diff2: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    D = diff2.shape[2]
    inv_l2 = np.exp(-2.0 * theta[:D])
    signal, noise = math.exp(theta[D]), math.exp(theta[D + 1])
    Kr = np.exp(-0.5 * diff2 @ inv_l2)
    K = signal * Kr + noise * np.eye(len(y))
    try:
        L = scipy.linalg.cholesky(K, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = scipy.linalg.cho_solve((L, True), y, check_finite=False)
    nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + 0.5 * len(y) * math.log(2 * math.pi)
    W = np.outer(alpha, alpha) - scipy.linalg.cho_solve((L, True), np.eye(len(y)))
    SK = signal * Kr
    grad = np.empty_like(theta)
    # dK / dlog l_d = s_f^2 K_r * diff2_d / l_d^2
    grad[:D] = -0.5 * np.einsum("ij,ijd->d", W * SK, diff2) * inv_l2
    grad[D] = -0.5 * np.sum(W * SK)
    grad[D + 1] = -0.5 * noise * np.trace(W)
    return float(nll), grad
