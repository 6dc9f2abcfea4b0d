"""RBF lengthscales and noise by the evidence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from distgp.bandit import evidence
from distgp.bandit.evidence import _neg_log_evidence, fit_rbf, standardise


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


@pytest.mark.filterwarnings("error")  # an overflow or underflow warning fails the test
@pytest.mark.parametrize("scale", [1e200, 1e-300])
def test_evidence_is_the_same_for_rewards_at_the_ends_of_float64(scale):
    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(30)
    np.testing.assert_allclose(standardise(scale * y), standardise(y), rtol=1e-10, atol=1e-12)
    kernel, noise = fit_rbf(X, scale * y)
    reference, reference_noise = fit_rbf(X, y)
    np.testing.assert_allclose(kernel.lengthscale, reference.lengthscale, rtol=1e-4)
    assert kernel.variance == pytest.approx(reference.variance, rel=1e-4)
    assert noise == pytest.approx(reference_noise, rel=1e-4) and 0 < noise < 0.1


def test_evidence_beyond_the_cap_is_fitted_on_a_seeded_subset_of_the_cap(monkeypatch):
    """The fit is O(n^3) with an n x n x D array: beyond MAX_POINTS it uses MAX_POINTS."""
    rng = np.random.default_rng(2)
    X = rng.random((evidence.MAX_POINTS + 40, 2))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(len(X))
    sizes = []

    def recorded(theta, diff2, ys):
        sizes.append((diff2.shape, len(ys)))
        return _neg_log_evidence(theta, diff2, ys)

    monkeypatch.setattr(evidence, "_neg_log_evidence", recorded)
    kernel, noise = fit_rbf(X, y, seed=4)
    assert set(sizes) == {((evidence.MAX_POINTS, evidence.MAX_POINTS, 2), evidence.MAX_POINTS)}
    again, again_noise = fit_rbf(X, y, seed=4)
    np.testing.assert_array_equal(again.lengthscale, kernel.lengthscale)
    assert again_noise == noise and kernel.lengthscale[0] < 0.5


def test_constant_rewards_standardise_to_zeros():
    np.testing.assert_array_equal(standardise(np.full(4, 3e-310)), np.zeros(4))
