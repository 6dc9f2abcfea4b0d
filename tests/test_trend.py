"""Trend sub-kernels: bank algebra, learning by the evidence, ADMM, model file, gpytorch kernel."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.config import FitConfig
from distgp.driver import fit
from distgp.gp import GSMPModel
from distgp.kernels.grid import data_grid
from distgp.kernels.trend import TrendBank, TrendBasis


def _series(n: int = 90, slope: float = 0.08, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.arange(1.0, n + 1.0)
    y = 5 + slope * x + np.sin(2 * np.pi * x / 12) + 0.1 * rng.normal(size=n)
    return x[:, None], y


def test_trend_bank_matches_dense_components(rng):
    X = rng.normal(size=(25, 2))
    grid = data_grid(25, 2, components=12, levels=2)
    bank = TrendBank(X, grid, TrendBasis(2, 2))
    assert grid.components + 4 == bank.M
    w = rng.uniform(size=bank.M)
    dense = sum(w[m] * bank.component(m) for m in range(bank.M))
    np.testing.assert_allclose(bank.gram(w), dense, atol=1e-10)
    A = rng.normal(size=(25, 25))
    A = A + A.T
    alpha = rng.normal(size=25)
    idx = np.array([0, grid.components + 1, 3, bank.M - 1])
    traces, quads = bank.products(idx, A, alpha)
    lower_only = bank.products(idx, np.asfortranarray(np.tril(A)), alpha)[0]  # what fits pass
    np.testing.assert_allclose(lower_only, traces, rtol=1e-12, atol=1e-12)
    for k, m in enumerate(idx):
        K = bank.component(int(m))
        assert traces[k] == pytest.approx(np.sum(A * K), rel=1e-9, abs=1e-9)
        assert quads[k] == pytest.approx(alpha @ K @ alpha, rel=1e-9, abs=1e-9)
    v = rng.normal(size=25)
    applied = bank.apply(v, idx)
    for k, m in enumerate(idx):
        np.testing.assert_allclose(applied[:, k], bank.component(int(m)) @ v, atol=1e-9)
    X2 = rng.normal(size=(4, 2))
    full = TrendBank(np.vstack([X, X2]), grid, TrendBasis(2, 2)).gram(w)
    np.testing.assert_allclose(bank.cross(X2, w), full[25:, :25], atol=1e-10)
    np.testing.assert_allclose(bank.prior_variance(X2, w), np.diag(full)[25:], atol=1e-10)


def _config(trend: str, agents: int = 1) -> FitConfig:
    config = FitConfig()
    config.kernel.components = 60
    config.kernel.trend = trend
    config.learn.max_iterations = 200
    config.consensus.agents = agents
    config.backend.name = "inline"
    return config


def test_linear_trend_extrapolates_where_stationary_kernel_reverts():
    X, y = _series()
    train, test = slice(0, 70), slice(70, None)
    errors = {}
    for trend in ("none", "linear"):
        result = fit(X[train], y[train], _config(trend))
        errors[trend] = float(np.mean((result.model.predict(X[test]) - y[test]) ** 2))
    assert errors["linear"] < 0.5 * errors["none"]
    weights = result.model.weights
    assert weights[-1] > 0  # the slope's weight is learned, not pruned
    assert np.all(weights >= 0)


def test_trend_in_admm_fit_and_model_file(tmp_path):
    X, y = _series(n=80)
    config = _config("linear", agents=2)
    config.predict = "pooled"  # the model file then holds the data it conditions on
    Xs = np.array([[85.0], [95.0]])
    result = fit(X, y, config, X_test=Xs)
    model = result.model
    assert model.trend is not None and model.weights.shape == (model.components,)
    assert result.rounds >= 1 and model.weights[-1] > 0
    path = model.save(tmp_path / "model.npz")
    loaded = GSMPModel.load(path)
    np.testing.assert_allclose(loaded.predict(Xs), model.predict(Xs))
    np.testing.assert_allclose(result.prediction[0], model.predict(Xs))
    # private prediction (rBCM over the two agents, trend prior variance) of the same kernel
    config.predict = "private"
    private = fit(X, y, config, X_test=Xs).prediction[0]
    assert np.all(np.abs(private - model.predict(Xs)) < 0.5)


def test_estimator_reports_trend_weights_and_kernel_holds_the_spectral_part():
    torch = pytest.importorskip("torch")
    from distgp import GSMPRegressor
    from distgp.kernels.bank import SubKernelBank

    X, y = _series(n=60)
    reg = GSMPRegressor(components=40, trend="linear", max_iterations=100).fit(X, y)
    model = reg.model_
    assert reg.trend_weights_.shape == (1,) and reg.trend_weights_[0] > 0
    Xs = np.array([[61.0], [70.0], [3.0]])
    spectral = SubKernelBank(model.X_train, model.grid).cross(
        model.scaler.x(Xs), model.weights[: model.grid.components]
    )
    got = reg.kernel_(torch.as_tensor(Xs), torch.as_tensor(X)).to_dense().detach().numpy()
    np.testing.assert_allclose(got, spectral * model.scaler.y_scale**2, rtol=1e-8, atol=1e-8)
