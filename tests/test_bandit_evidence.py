"""RBF lengthscales and noise by the evidence."""

from __future__ import annotations

import numpy as np
import scipy.optimize

from distgp.bandit.evidence import _neg_log_evidence, fit_rbf


def test_evidence_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.random((12, 3))
    y = np.sin(4 * X[:, 0]) + 0.1 * rng.standard_normal(12)
    diff2 = (X[:, None, :] - X[None, :, :]) ** 2
    theta = np.array([-1.0, 0.3, -0.2, 0.1, -3.0])
    err = scipy.optimize.check_grad(
        lambda t: _neg_log_evidence(t, diff2, y)[0],
        lambda t: _neg_log_evidence(t, diff2, y)[1],
        theta,
    )
    assert err < 1e-4


def test_evidence_finds_the_relevant_column_and_the_noise():
    rng = np.random.default_rng(1)
    X = rng.random((60, 3))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(60)  # only column 0 matters
    kernel, noise = fit_rbf(X, y)
    ls = kernel.lengthscale
    assert ls[0] < 0.5 and ls[1] > 2 * ls[0] and ls[2] > 2 * ls[0]
    assert 1e-3 < noise < 0.1  # noise std 0.1 on a signal of std ~0.7: about 0.02 standardised
