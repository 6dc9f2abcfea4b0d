"""The local objective: value, gradient, DC split and safe Cholesky."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from distgp.exceptions import NumericsWarning
from distgp.kernels import SubKernelBank, data_grid
from distgp.learn import LocalObjective, robust_cholesky
from distgp.learn.objective import NotPositiveDefiniteError


@pytest.fixture
def objective(rng):
    X = rng.normal(size=(25, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=25)
    y = (y - y.mean()) / y.std()
    grid = data_grid(25, 2, components=9, levels=2, slow=1)
    return LocalObjective(SubKernelBank(X, grid), y, noise_floor=1e-3)


def theta_of(objective, rng):
    return np.r_[rng.uniform(0.05, 0.5, size=objective.M), 0.2]


def test_value_is_quadratic_plus_logdet(objective, rng):
    theta = theta_of(objective, rng)
    C = objective.covariance(theta)
    expected = objective.y @ np.linalg.solve(C, objective.y) + np.linalg.slogdet(C)[1]
    assert objective.value(theta) == pytest.approx(expected, rel=1e-10)
    g = objective.y @ np.linalg.solve(C, objective.y)  # convex part
    h = -np.linalg.slogdet(C)[1]  # convex part subtracted
    assert objective.value(theta) == pytest.approx(g - h)


def test_gradient_matches_finite_differences(objective, rng):
    theta = theta_of(objective, rng)
    grad = objective.gradient(theta)
    eps = 1e-6
    for m in range(objective.dim):
        step = np.zeros(objective.dim)
        step[m] = eps
        fd = (objective.value(theta + step) - objective.value(theta - step)) / (2 * eps)
        assert grad[m] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_log_det_is_concave_along_a_segment(objective, rng):
    a, b = theta_of(objective, rng), theta_of(objective, rng)
    mid = 0.5 * (a + b)
    logdet = lambda t: objective.factorize(t).logdet  # noqa: E731
    fit = lambda t: objective.factorize(t).fit  # noqa: E731
    assert logdet(mid) >= 0.5 * (logdet(a) + logdet(b))
    assert fit(mid) <= 0.5 * (fit(a) + fit(b))


def test_nlml_is_half_the_objective_plus_constant(objective, rng):
    theta = theta_of(objective, rng)
    value = objective.value(theta)
    assert objective.nlml(value) == pytest.approx(0.5 * value + 0.5 * 25 * np.log(2 * np.pi))


def test_robust_cholesky_adds_jitter_to_a_singular_matrix():
    v = np.ones((5, 1))
    C = v @ v.T  # rank one
    with pytest.warns(NumericsWarning, match="jitter"):
        L, jitter = robust_cholesky(C)
    assert jitter > 0
    assert np.allclose(L @ L.T, C + jitter * np.eye(5))


def test_robust_cholesky_is_silent_on_a_good_matrix():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L, jitter = robust_cholesky(np.eye(3) * 2.0)
    assert jitter == 0 and np.allclose(L, np.sqrt(2) * np.eye(3))


def test_robust_cholesky_names_the_fix_for_hopeless_input():
    with pytest.raises(NotPositiveDefiniteError, match="noise_floor"):
        robust_cholesky(-np.eye(3))
    with pytest.raises(NotPositiveDefiniteError, match="NaN"):
        robust_cholesky(np.full((2, 2), np.nan))
