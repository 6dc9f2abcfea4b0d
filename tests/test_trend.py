"""Trend sub-kernels: bank algebra, learning by the evidence, ADMM, model file, gpytorch kernel."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.config import FitConfig
from distgp.driver import fit
from distgp.exceptions import ConfigError
from distgp.gp import GSMPModel
from distgp.kernels.grid import data_grid
from distgp.kernels.trend import TrendBank, TrendBasis, walk_times


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


@pytest.mark.parametrize("device", ["cpu", "torch:cpu"])
def test_local_trend_bank_matches_dense_random_walks(rng, device):
    if device != "cpu":
        pytest.importorskip("torch")
    n = 30
    X = np.sort(rng.normal(size=(n, 1)), axis=0)
    grid = data_grid(n, 1, components=10)
    trend = TrendBasis.named("local", 1)
    assert trend.labels() == ["level walk", "slope walk"] and trend.kind == "local"
    bank = TrendBank(X, grid, trend, device=device)
    assert grid.components + 2 == bank.M
    s = walk_times(X)
    level = np.minimum.outer(s, s)
    np.testing.assert_allclose(bank.component(bank.M - 2), level, atol=1e-12)
    slope = bank.component(bank.M - 1)
    assert np.linalg.eigvalsh(slope).min() > -1e-10  # the integrated walk is a covariance
    np.testing.assert_allclose(np.diag(slope), s**3, atol=1e-12)
    w = rng.uniform(size=bank.M)
    dense = sum(w[m] * bank.component(m) for m in range(bank.M))
    np.testing.assert_allclose(bank.ops.numpy(bank.gram(w)), dense, atol=1e-10)
    factorised = bank.ops.numpy(bank.gram(w, lower=True))  # what a fit reads
    np.testing.assert_allclose(np.tril(factorised), np.tril(dense), atol=1e-10)
    A = rng.normal(size=(n, n))
    A = A + A.T
    alpha = rng.normal(size=n)
    idx = np.array([bank.M - 1, 0, bank.M - 2])
    lower = np.asfortranarray(np.tril(A)) if device == "cpu" else A  # what fits pass
    traces, quads = bank.products(idx, bank.ops.asarray(lower), bank.ops.asarray(alpha))
    for k, m in enumerate(idx):
        K = bank.component(int(m))
        assert traces[k] == pytest.approx(np.sum(A * K), rel=1e-9, abs=1e-9)
        assert quads[k] == pytest.approx(alpha @ K @ alpha, rel=1e-9, abs=1e-9)
    applied = bank.apply(bank.ops.asarray(alpha), idx)  # as curvature passes it: on the device
    for k, m in enumerate(idx):
        np.testing.assert_allclose(applied[:, k], bank.component(int(m)) @ alpha, atol=1e-9)
    X2 = np.array([[-3.0], [0.2], [2.5]])  # before the walks' origin, inside, past the end
    full = TrendBank(np.vstack([X, X2]), grid, trend).gram(w)
    np.testing.assert_allclose(bank.ops.numpy(bank.cross(X2, w)), full[n:, :n], atol=1e-10)
    np.testing.assert_allclose(bank.prior_variance(X2, w), np.diag(full)[n:], atol=1e-10)


@pytest.mark.parametrize("device", ["cpu", "torch:cpu"])
def test_season_bank_matches_dense_pattern_and_walk(rng, device):
    if device != "cpu":
        pytest.importorskip("torch")
    n, period = 36, 12
    x = np.arange(n, dtype=float)
    X = ((x - x.mean()) / x.std())[:, None]  # standardised, as the bank sees them
    step = float(X[1, 0] - X[0, 0])
    trend = TrendBasis.named("local", 1, season=period * step, step=step)
    assert trend.labels()[-2:] == ["seasonal pattern", "seasonal walk"] and trend.size == 4
    grid = data_grid(n, 1, components=8)
    bank = TrendBank(X, grid, trend, device=device)
    ops = bank.ops
    same = (x[:, None] - x[None, :]) % period == 0
    s = walk_times(X)
    np.testing.assert_allclose(bank.component(bank.M - 2), same.astype(float), atol=1e-12)
    np.testing.assert_allclose(
        bank.component(bank.M - 1), same * np.minimum.outer(s, s), atol=1e-12
    )
    w = rng.uniform(size=bank.M)
    dense = sum(w[m] * bank.component(m) for m in range(bank.M))
    np.testing.assert_allclose(ops.numpy(bank.gram(w)), dense, atol=1e-10)
    A = rng.normal(size=(n, n))
    A = A + A.T
    alpha = rng.normal(size=n)
    idx = np.array([bank.M - 1, 0, bank.M - 2, bank.M - 3])
    lower = np.asfortranarray(np.tril(A)) if device == "cpu" else A  # what fits pass
    traces, quads = bank.products(idx, ops.asarray(lower), ops.asarray(alpha))
    for k, m in enumerate(idx):
        K = bank.component(int(m))
        assert traces[k] == pytest.approx(np.sum(A * K), rel=1e-9, abs=1e-9)
        assert quads[k] == pytest.approx(alpha @ K @ alpha, rel=1e-9, abs=1e-9)
    X2 = X[-period:] + period * step  # the next season: each point shares a phase
    full = TrendBank(np.vstack([X, X2]), grid, trend).gram(w)
    np.testing.assert_allclose(ops.numpy(bank.cross(X2, w)), full[n:, :n], atol=1e-10)
    np.testing.assert_allclose(bank.prior_variance(X2, w), np.diag(full)[n:], atol=1e-10)
    # between steps the pattern interpolates the neighbouring phases linearly
    pattern = np.zeros(bank.M)
    pattern[bank.M - 2] = 1.0
    quarter = ops.numpy(bank.cross(X[:1] + 0.25 * step, pattern))[0]
    np.testing.assert_allclose(quarter[:2], [0.75, 0.25], atol=1e-12)
    np.testing.assert_allclose(quarter[period : period + 2], [0.75, 0.25], atol=1e-12)
    assert np.linalg.eigvalsh(bank.component(bank.M - 2)).min() > -1e-10


def test_a_season_spans_at_least_two_steps():
    with pytest.raises(ConfigError, match="two steps"):
        TrendBasis.named("none", 1, season=1.5, step=1.0)


def test_a_seasonal_walk_forecasts_each_phase_from_its_last_season():
    """A season whose shape changes from year to year: with the seasonal walk the forecast of
    each month is close to the last year's (seasonal naive), not to an average season."""
    rng = np.random.default_rng(3)
    n, period = 96, 12
    x = np.arange(1.0, n + 1.0)
    shape = np.cumsum(rng.normal(size=(n // period, period)), axis=0).ravel()  # walks by phase
    y = 10 + shape + 0.05 * rng.normal(size=n)
    config = _config("none")
    config.kernel.components = 1
    config.kernel.season = float(period)
    X = x[:, None]
    result = fit(X[:84], y[:84], config, X_test=X[84:])
    naive = y[72:84]  # last season of the training data
    assert np.mean((result.forecast() - naive) ** 2) < 0.1 * np.mean((y[:84].mean() - naive) ** 2)
    assert result.model.trend is not None and result.model.weights[-1] > 0


def test_a_season_in_admm_fit_model_file_and_private_prediction(tmp_path):
    X, y = _series(n=84)
    config = _config("linear", agents=2)
    config.kernel.components = 1
    config.kernel.season = 12.0
    config.predict = "pooled"
    Xs = np.arange(85.0, 97.0)[:, None]
    result = fit(X, y, config, X_test=Xs)
    model = result.model
    assert model.trend.season > 0 and result.rounds >= 1
    loaded = GSMPModel.load(model.save(tmp_path / "model.npz"))
    assert loaded.trend == model.trend
    np.testing.assert_allclose(loaded.predict(Xs), model.predict(Xs))
    truth = 5 + 0.08 * Xs[:, 0] + np.sin(2 * np.pi * Xs[:, 0] / 12)
    assert np.mean((model.predict(Xs) - truth) ** 2) < 0.05
    config.predict = "private"
    private = fit(X, y, config, X_test=Xs).prediction[0]
    assert np.mean((private - truth) ** 2) < 0.1


def test_a_season_needs_one_input_and_the_data_grid():
    with pytest.raises(ConfigError, match="one input"):
        TrendBasis.named("none", 2, season=1.0)
    config = FitConfig()
    config.kernel.grid = "reference"
    config.kernel.season = 12.0
    with pytest.raises(ConfigError, match=r"kernel\.season"):
        config.validate()


def test_local_trend_needs_one_input():
    with pytest.raises(ConfigError, match="one input"):
        TrendBasis.named("local", 2)


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


@pytest.mark.parametrize("trend", ["quadratic", "local"])
def test_a_trends_variance_past_float64_is_infinite_not_nan(trend):
    """At 1e149 a quadratic's prior variance (z^4) and a local trend's (z^3) overflow: the
    std there is unbounded, with no NaN and no overflow warning; nearer inputs keep theirs."""
    import warnings

    X, y = _series(40)
    model = fit(X, y, _config(trend)).model
    trend_weights = model.weights[model.grid.components :]  # every term weighted
    model.weights[model.grid.components :] = np.maximum(trend_weights, 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, std = model.predict(np.array([[41.0], [1e149]]), return_std=True)
    assert np.all(np.isfinite(mean)) and np.isfinite(std[0]) and std[1] == np.inf


@pytest.mark.parametrize("trend", ["quadratic", "local"])
def test_a_trend_of_weight_zero_leaves_the_std_far_out_finite(trend):
    """0 times a trend's overflowing prior variance is 0, not NaN (reported as inf): with
    every trend weight 0 the std and mean far out are the stationary part's, at 1e100 as at
    1e149."""
    X, y = _series(40)
    model = fit(X, y, _config(trend)).model
    model.weights[model.grid.components :] = 0.0
    mean, std = model.predict(np.array([[1e100], [1e149]]), return_std=True)
    assert np.all(np.isfinite(std)) and std[0] == pytest.approx(std[1])
    assert np.all(np.isfinite(mean))


def test_local_trend_follows_the_recent_slope_where_a_global_polynomial_does_not():
    """A series whose slope sets in halfway: the random-walk slope continues it; a line fitted
    to the whole span under-forecasts, and the stationary grid reverts."""
    rng = np.random.default_rng(1)
    x = np.arange(1.0, 91.0)
    y = 5 + 0.15 * np.maximum(x - 45, 0) + np.sin(2 * np.pi * x / 12) + 0.1 * rng.normal(size=90)
    X, train, test = x[:, None], slice(0, 70), slice(70, None)
    errors, spread = {}, {}
    for trend in ("none", "linear", "local"):
        result = fit(X[train], y[train], _config(trend), X_test=X[test])
        mean, std = result.prediction
        errors[trend] = float(np.mean((mean - y[test]) ** 2))
        spread[trend] = std
    assert errors["local"] < 0.25 * min(errors["none"], errors["linear"])
    assert result.model.weights[-1] > 0  # the slope walk's weight is learned
    assert np.all(np.diff(spread["local"]) > 0)  # intervals widen with the lead time


@pytest.mark.parametrize("trend", ["linear", "local"])
def test_trend_in_admm_fit_and_model_file(tmp_path, trend):
    X, y = _series(n=80)
    config = _config(trend, agents=2)
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


def test_spectrum_plot_of_a_model_whose_trend_explains_everything(tmp_path):
    """No spectral weight above zero: the panel says so, with no empty legend or log axis
    warning; long trend labels are slanted so they do not run into each other."""
    import warnings

    from distgp import plots

    X, y = _series(n=60)
    model = fit(X, y, _config("linear")).model
    model.weights[: model.grid.components] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.spectrum(model, tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").stat().st_size > 0


def test_spectrum_panels_are_named_after_the_csv_columns(tmp_path, monkeypatch):
    from distgp import plots

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 2))
    config = FitConfig()
    config.kernel.components = 20
    model = fit(X, np.sin(4 * X[:, 0]) + X[:, 1], config).model
    model.input_names = ("température", "load")
    labels = []
    monkeypatch.setattr(
        plots, "save_figure", lambda fig, path: labels.extend(a.get_xlabel() for a in fig.axes)
    )
    plots.spectrum(model, tmp_path / "spectrum.png")
    assert labels[:2] == [
        "frequency, cycles per unit of température",
        "frequency, cycles per unit of load",
    ]


def test_column_names_the_font_lacks_warn_nothing(tmp_path):
    """CJK column names show as boxes (DejaVu Sans has no such glyphs), without a matplotlib
    warning per character and drawing call."""
    import warnings

    from distgp import plots

    X, y = _series(n=40)
    model = fit(X, y, _config("linear")).model
    model.input_names = ("时间",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.spectrum(model, tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").stat().st_size > 0


def test_polynomial_labels_take_the_inputs_names():
    trend = TrendBasis.named("quadratic", 2)
    assert trend.labels() == ["x0", "x1", "x0^2", "x1^2"]
    assert trend.labels(["age", "dose"]) == ["age", "dose", "age^2", "dose^2"]
