"""GSMPRegressor: the scikit-learn contract, agents, and its gpytorch kernel."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from distgp import GSMPRegressor
from distgp.exceptions import ConfigError, InputDataError, NotFittedError
from tests.helpers import sinusoids, smooth_regression


def test_fit_returns_self_and_sets_fitted_attributes():
    x, y = sinusoids(100)
    model = GSMPRegressor(components=60, max_iterations=80)
    assert model.fit(x, y) is model
    assert model.weights_.shape == (63,) and np.all(model.weights_ >= 0)
    assert 0 < model.active_components_ < 63
    assert model.noise_variance_ > 0 and model.n_features_in_ == 1
    assert model.spectrum_.shape == (63, 1)
    assert model.spectrum_.max() == pytest.approx(0.5, rel=0.02)  # Nyquist, cycles per sample
    assert model.history_ and model.rounds_ == 0
    mean, std = model.predict(x[:5], return_std=True)
    assert mean.shape == (5,) and np.all(std > 0)
    assert np.mean((model.predict(x) - y) ** 2) < 0.05
    assert model.score(x, y) > 0.9


def test_copies_of_each_input_do_not_alias_between_the_design_points():
    """Audit 10 item 1: 20 inputs, 6 noisy outputs at each. With the grid's frequency bound
    counting rows (6x the distinct inputs' Nyquist frequency) the MSE between the design points
    was 0.53, above the training mean's 0.44; counting distinct input rows, 0.0045."""
    rng = np.random.default_rng(1)
    x = np.repeat(np.linspace(0, 10, 20), 6)
    y = np.sin(x) + 0.3 * rng.standard_normal(120)
    between = np.linspace(0.05, 9.95, 50)
    model = GSMPRegressor().fit(x[:, None], y)
    assert model.spectrum_.max() <= 19 / 20 * 1.01  # the distinct inputs' Nyquist frequency
    assert np.mean((model.predict(between[:, None]) - np.sin(between)) ** 2) < 0.03


def test_constructor_only_stores_parameters():
    model = GSMPRegressor(components=-3, solver="nope")  # no validation before fit
    assert model.get_params()["components"] == -3
    model.set_params(components=10)
    assert model.components == 10
    with pytest.raises(ValueError, match="Invalid parameter 'colour'"):
        model.set_params(colour="red")
    with pytest.raises(ConfigError, match="solver"):
        GSMPRegressor(solver="nope").fit(*sinusoids(20))


def test_predict_before_fit_and_wrong_shapes():
    with pytest.raises(NotFittedError):
        GSMPRegressor().predict(np.zeros((2, 1)))
    x, y = smooth_regression(n=30, dims=2)
    model = GSMPRegressor(components=10, max_iterations=20).fit(x, y)
    with pytest.raises(InputDataError, match="X has 3 features, but GSMPRegressor is expecting 2"):
        model.predict(np.zeros((3, 3)))
    with pytest.raises(ConfigError, match=r"strictly between 0 and 1 .*, got '0.9'"):
        model.predict_interval(x, level="0.9")
    with pytest.raises(ConfigError, match=r"strictly between 0 and 1 .*, got None"):
        model.predict_interval(x, level=None)
    with pytest.raises(InputDataError, match="NaN"):
        GSMPRegressor().fit(np.array([[0.0], [np.nan], [1.0]]), np.ones(3))
    with pytest.raises(InputDataError, match="inconsistent numbers of samples"):
        GSMPRegressor().fit(np.zeros((4, 1)), np.ones(3))
    with pytest.raises(InputDataError, match="a minimum of 2 is required"):
        GSMPRegressor().fit(np.zeros((1, 1)), np.ones(1))
    with pytest.raises(InputDataError, match="Expected 2D array, got 1D array"):
        model.predict(np.zeros(3))  # 1-D X is refused, not read as a column
    with pytest.raises(InputDataError, match="overflow"):
        GSMPRegressor().fit(np.array([[0.0], [1e300], [1.0]]), np.ones(3))


def test_distributed_fit_from_the_api_exposes_rounds_and_bits():
    x, y = smooth_regression(n=90, dims=2)
    model = GSMPRegressor(
        components=20, rounds=6, local_iterations=3, agents=3, backend="inline"
    ).fit(x, y)
    assert model.rounds_ == len(model.history_) and model.rounds_ <= 6
    assert 0 < model.bits_sent_ < model.bits_float64_
    assert model.history_[0].participants == 3


def test_learned_kernel_is_a_gpytorch_kernel_on_raw_inputs():
    x, y = smooth_regression(n=40, dims=2)
    model = GSMPRegressor(components=12, max_iterations=30).fit(x * 10.0 + 3.0, y)
    kernel = model.kernel_
    X = torch.as_tensor(x * 10.0 + 3.0)
    K = kernel(X).to_dense().detach().numpy()
    m = model.model_
    expected = m.grid and m.scaler.y_scale**2 * _gram(m, m.scaler.x(x * 10.0 + 3.0))
    assert np.allclose(K, expected, rtol=1e-6, atol=1e-8 * np.abs(expected).max())


def _gram(model, Z):
    from distgp.kernels.trend import kernel_bank

    return kernel_bank(Z, model.grid, model.trend).gram(model.weights)


def test_a_pickled_estimator_carries_no_prediction_cache():
    import pickle

    X, y = smooth_regression(n=120, dims=3)
    model = GSMPRegressor(components=40).fit(X, y)
    before = pickle.dumps(model)
    mean = model.predict(X[:10])
    after = pickle.dumps(model)  # the factors predict cached stay behind
    assert len(after) < 1.2 * len(before)
    np.testing.assert_allclose(pickle.loads(after).predict(X[:10]), mean, rtol=1e-10)


def test_private_predictions_carry_the_held_out_variance_factor_and_their_intervals():
    """With several agents the prediction is private (the agents' experts, combined); the
    factor the held-out errors put on the predictive variance applies to it as to a pooled one,
    and ``predict_interval`` is the central interval of the same predictive."""
    from distgp.driver import predict_with_agents

    x = np.arange(80.0)[:, None]
    y = 5 + np.sin(2 * np.pi * x[:, 0] / 12) + 0.05 * x[:, 0]
    y = y + np.random.default_rng(2).normal(0, 0.3, 80)
    model = GSMPRegressor(components=30, agents=2, backend="inline", random_state=0)
    model.fit(x[:64], y[:64])
    assert model.model_.private and model.variance_scale_ > 1.0
    mean, std = model.predict(x[64:], return_std=True)
    latent_mean, latent_std = predict_with_agents(model.model_, x[64:], parts=model._parts)
    latent_std = latent_std * np.sqrt(model.variance_scale_)
    transform = model.model_.transform
    expected = transform.moments(latent_mean, latent_std)
    np.testing.assert_allclose(mean, expected[0])
    np.testing.assert_allclose(std, expected[1])
    lower, upper = model.predict_interval(x[64:])
    np.testing.assert_allclose(lower, transform.inverse(latent_mean - 1.959964 * latent_std))
    np.testing.assert_allclose(upper, transform.inverse(latent_mean + 1.959964 * latent_std))
    narrow = model.predict_interval(x[64:], level=0.5)
    assert np.all(narrow[0] > lower) and np.all(narrow[1] < upper)


def test_a_series_is_scored_at_the_horizon_and_with_the_season_it_is_given():
    x = np.arange(1.0, 73.0)[:, None]
    y = 5 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12)
    model = GSMPRegressor(components=20, horizon=12, random_state=0).fit(x, y)
    assert all(e.counts == [12, 12] for e in model.tune_evaluations_)  # two origins of 12
    assert model.tune_evaluations_[-1].overrides["kernel.season"] == 12.0  # found in the data
    fixed = GSMPRegressor(components=1, trend="linear", season=12.0, random_state=0).fit(x, y)
    assert fixed.model_.trend.labels()[-2:] == ["seasonal pattern", "seasonal walk"]
    assert fixed.tune_evaluations_ == []  # a fixed trend: no choice
    assert np.mean((fixed.predict(x[-12:] + 12) - y[-12:] - 0.6) ** 2) < 0.05


def test_tune_searches_the_tunables_it_is_given():
    """``GSMPRegressor(tune=B, tunables=...)``: BKB searches only those settings after the
    default path's candidates; an unknown name is refused naming the parameter."""
    x = np.arange(1.0, 61.0)[:, None]
    y = 5 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12)
    model = GSMPRegressor(components=20, tune=9, tunables="trend,season", random_state=0)
    model.fit(x, y)
    assert len(model.tune_evaluations_) == 9
    searched = [e.name for e in model.tune_evaluations_ if "=" in e.name]
    assert searched and all(n.startswith("trend=") and ", season=" in n for n in searched)
    assert sum(e.chosen for e in model.tune_evaluations_) == 1
    with pytest.raises(ConfigError, match="tunables"):
        GSMPRegressor(tune=4, tunables="trend,speed").fit(x, y)


def test_tuning_errors_name_the_estimator_s_parameters_not_flags():
    """A ConfigError ended ``add one to --tunables`` (a CLI flag) and a held-out error named
    ``tune.folds (--folds)``: both now name the parameters."""
    x = np.random.default_rng(0).uniform(size=(40, 2))
    y = 5 + np.sin(3 * x[:, 0]) + x[:, 1]
    with pytest.raises(ConfigError, match=r"; add one to tunables$") as caught:
        GSMPRegressor(tune=4, tunables="season").fit(x, y)
    assert "--" not in str(caught.value)
    with pytest.raises(InputDataError, match=r"^30-fold validation .*: set folds to at most 20$"):
        GSMPRegressor(tune=4, folds=30).fit(x, y)


def test_a_tunable_named_twice_is_refused_naming_it():
    """BKB searched two axes of one setting and scored the same fit twice."""
    x = np.arange(1.0, 31.0)[:, None]
    with pytest.raises(ConfigError, match=r"^tunables: tunes trend twice; name each tunable once$"):
        GSMPRegressor(tune=4, tunables="trend, trend").fit(x, np.sin(x[:, 0]))


def test_numpy_scalar_parameters_work_and_fractions_of_counts_are_refused():
    """A grid search over ``np.arange`` hands numpy scalars in; ``components=2.5`` is not
    silently truncated."""
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 1))
    y = np.sin(5 * x[:, 0])
    search = GridSearchCV(
        GSMPRegressor(trend="linear", tol=np.float32(1e-6), rounds=np.int32(20)),
        {"components": np.arange(20, 41, 20)},
        cv=2,
        error_score="raise",
    ).fit(x, y)
    assert search.best_estimator_.model_.grid.components >= 20
    with pytest.raises(ConfigError, match=r"components must be an integer, got 2\.5"):
        GSMPRegressor(components=2.5).fit(x, y)


def test_a_series_given_reversed_or_shuffled_is_fitted_as_in_time_order():
    """The rolling-origin choice needs the series in time order; the estimator sorts an evenly
    spaced one-input ``X`` (the CLI reverses a newest-first file the same way)."""
    t = np.arange(60.0)
    y = 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(0).normal(size=60)
    X = t[:, None]
    shuffled = np.random.default_rng(1).permutation(60)
    new = np.arange(60.0, 66.0)[:, None]
    ordered = GSMPRegressor(components=40).fit(X, y)
    for rows in (shuffled, np.arange(60)[::-1]):
        other = GSMPRegressor(components=40).fit(X[rows], y[rows])
        chosen = [e.name for e in other.tune_evaluations_ if e.chosen]
        assert chosen == [e.name for e in ordered.tune_evaluations_ if e.chosen]
        np.testing.assert_allclose(other.predict(new), ordered.predict(new), rtol=1e-9)


def test_rejected_over_relaxed_trials_warn_nothing():
    """An over-relaxed DSCA trial can blow weights up so far that the covariance needs jitter;
    it is a failed try, rejected silently (it used to warn 'added jitter 1.15e+16')."""
    import warnings

    from distgp.exceptions import NumericsWarning

    t = np.arange(60.0)
    y = np.sin(2 * np.pi * t / 12) + 0.02 * t + 0.05 * np.random.default_rng(0).normal(size=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericsWarning)
        model = GSMPRegressor(components=30, agents=2, backend="inline", random_state=2)
        model.fit(t[:, None], y)
    assert np.all(np.isfinite(model.predict(np.array([[60.0], [61.0]]))))


def test_one_agent_fits_as_few_points_as_the_docstring_says():
    """The minimum shard size guards what agents send about their shards; one agent in the
    caller's process guards nothing, so a handful of points fit (it refused fewer than 10)."""
    x = np.arange(5.0)[:, None]
    model = GSMPRegressor(components=20).fit(x, np.sin(x[:, 0]))
    assert np.all(np.isfinite(model.predict(x)))


def test_too_many_agents_for_the_data_names_a_fix_the_estimator_has():
    x = np.arange(40.0)[:, None]
    with pytest.raises(ConfigError, match="shard of agent 4 would hold 8 point") as caught:
        GSMPRegressor(components=20, agents=5, backend="inline").fit(x, np.sin(x[:, 0]))
    assert str(caught.value).endswith("use at most 4 agents")
    assert "data.min_shard_size" not in str(caught.value)


def test_errors_raised_during_the_fit_name_the_estimators_parameters():
    """A setting conflict found while fitting names ``season``, not the config key
    ``kernel.season`` the command line uses."""
    x = np.arange(30.0)
    with pytest.raises(ConfigError, match="set season to 0") as caught:
        GSMPRegressor(season=12, backend="inline").fit(np.c_[x, x**2], np.sin(x))
    assert "kernel.season" not in str(caught.value)


def test_a_warm_start_can_regrow_the_components_the_earlier_data_pruned():
    """Refitted to data whose structure lies along the other input, a warm start reaches the
    cold fit's objective (from exact zeros it stayed at 83.0 against 45.2)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (80, 2))
    first = np.sin(X[:, 0]) + 0.05 * rng.normal(size=80)
    second = np.sin(3 * X[:, 1]) + 0.05 * rng.normal(size=80)
    cold = GSMPRegressor(components=20).fit(X, second)
    warm = GSMPRegressor(components=20, warm_start=True).fit(X, first).fit(X, second)
    assert warm.objective_ == pytest.approx(cold.objective_, rel=1e-3)
    assert warm.score(X, second) > 0.99


def test_the_model_of_a_frame_matches_prediction_files_by_column_name(tmp_path):
    """``model_`` records the frame's column names and a series' end, as a CLI fit of a CSV
    does: ``distgp predict`` reads a file with its columns swapped by name, and ``--ahead``
    forecasts a series past its end."""
    import pandas as pd

    from distgp.cli import main

    X, y = smooth_regression(n=70, dims=2, seed=4)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": y})
    model = GSMPRegressor(components=30).fit(frame[["a", "b"]], frame["y"])
    model.model_.save(tmp_path / "m.npz")
    frame[["b", "y", "a"]].to_csv(tmp_path / "swapped.csv", index=False)
    predict = ["predict", "--model", str(tmp_path / "m.npz"), "--quiet"]
    swapped = ["--data", str(tmp_path / "swapped.csv"), "--out", str(tmp_path / "p")]
    assert main([*predict, *swapped]) == 0
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    np.testing.assert_allclose(table["mean"], model.predict(frame[["a", "b"]]), rtol=1e-10)
    assert list(table.columns[:2]) == ["a", "b"] and "y" in table.columns
    x, s = sinusoids(60)
    series = GSMPRegressor(components=20).fit(x, s)
    series.model_.save(tmp_path / "s.npz")
    ahead = ["predict", "--model", str(tmp_path / "s.npz"), "--ahead", "3", "--quiet"]
    assert main([*ahead, "--out", str(tmp_path / "q")]) == 0
    assert pd.read_csv(tmp_path / "q" / "predictions.csv")["x0"].tolist() == [61.0, 62.0, 63.0]


def test_model_scores_take_a_column_of_outputs_and_refuse_another_length():
    x, y = sinusoids(40)
    model = GSMPRegressor(components=20).fit(x, y).model_
    assert model.score(x, y[:, None]) == model.score(x, y)
    with pytest.raises(InputDataError, match="have 5 values for 40 predictions"):
        model.score(x, y[:5])


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"random_state": -1}, "random_state must be a non-negative integer"),
        ({"random_state": 1.5}, "random_state must be None, a non-negative int"),
        ({"warm_start": "no"}, "warm_start must be True or False"),
    ],
)
def test_bad_seed_and_warm_start_values_name_the_parameter(parameters, message):
    x, y = sinusoids(30)
    with pytest.raises(ConfigError, match=message):
        GSMPRegressor(components=10, **parameters).fit(x, y)


def test_a_generator_seeds_the_fit_and_a_lost_gpu_predicts_on_the_cpu():
    x, y = sinusoids(30)
    model = GSMPRegressor(components=10, random_state=np.random.default_rng(0)).fit(x, y)
    expected = model.predict(x[:3])
    model.model_.device = "cuda"  # as unpickled on a machine without the fit's GPU
    np.testing.assert_array_equal(model.predict(x[:3]), expected)


def test_a_warm_start_after_a_change_of_kernel_settings_starts_cold():
    rng = np.random.default_rng(7)
    X = rng.uniform(-2, 2, size=(100, 2))
    y = np.exp(np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.05 * rng.standard_normal(100))
    warm = GSMPRegressor(components=40, trend="none", warm_start=True).fit(X, y)
    warm.set_params(output_transform="log")
    with pytest.warns(UserWarning, match="this fit starts cold"):
        warm.fit(X, y)
    cold = GSMPRegressor(components=40, trend="none", output_transform="log").fit(X, y)
    assert warm.objective_ == pytest.approx(cold.objective_, rel=1e-9)
    with pytest.raises(ConfigError, match="warm_start does not apply with tune"):
        GSMPRegressor(warm_start=True, tune=4).fit(X, y)


def test_a_warm_start_with_another_number_of_parameters_warns_and_starts_cold():
    """One more input column gives the linear trend one more weight: the earlier weights were
    dropped without a word."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, size=(100, 1))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=100)
    X2 = np.c_[X, rng.normal(size=100)]
    settings = {"components": 30, "trend": "linear", "random_state": 0}
    warm = GSMPRegressor(warm_start=True, **settings).fit(X, y)
    with pytest.warns(
        UserWarning,
        match=r"warm_start: the last fit had \d+ parameters and this one has \d+ .*started cold",
    ):
        warm.fit(X2, y)
    cold = GSMPRegressor(**settings).fit(X2, y)
    assert warm.iterations_ == cold.iterations_
    np.testing.assert_array_equal(warm.predict(X2[:5]), cold.predict(X2[:5]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as many parameters: a warm start, silently
        warm.fit(X2, y)


# The settings of `distgp fit` GSMPRegressor has no parameter for: they do not apply to arrays
# in memory, or another parameter sets them. A new setting goes here or in PARAMETERS.
NO_PARAMETER = {
    "data.source",  # a file or builtin: the data is fit's X and y
    "data.target",  # a CSV's output column: fit takes y
    "data.test_fraction",  # a file's held-out split: the caller splits its arrays
    "data.test",  # an evaluation file: score(X, y) takes arrays
    "data.shards",  # shard files, read where the agents run
    "data.placements",  # where the agents of those files run
    "data.min_shard_size",  # its default, or 2 for one agent (the data stays in the process)
    "consensus.quantize",  # off with bits=None and delta=None
    "seed",  # random_state
    "out",  # the output folder: fit writes no files
    "plots",  # the figures in that folder
}
# parameters not named as their flag, which is an estimator's method (scikit-learn took an
# estimator with a `transform` attribute for a transformer)
RENAMED = {"output_transform": "transform", "prediction": "predict"}


def test_every_fit_setting_that_applies_to_arrays_is_a_parameter_named_as_its_flag():
    """So that a new setting cannot be left out of the estimator unnoticed (17 were); the
    defaults are checked in tests/test_cli_contract.py."""
    from distgp.config import FitConfig
    from distgp.estimator import PARAMETERS
    from distgp.settings import entries, entry

    reached = set(PARAMETERS.values())
    assert not reached & NO_PARAMETER
    assert reached | NO_PARAMETER == {e.path for e in entries(FitConfig)}
    for parameter, path in PARAMETERS.items():
        flag = entry(FitConfig, path).spec.flag or path.rpartition(".")[2].replace("_", "-")
        assert RENAMED.get(parameter, parameter) == flag.replace("-", "_"), parameter


def test_execution_prediction_and_grid_parameters_reach_the_fit():
    """``prediction``, ``round_timeout``, ``slow_components`` and ``calibrate`` change the fit
    as their flags do, and a bad value names the parameter."""
    import json

    x, y = smooth_regression(n=60, dims=2)
    common = {"components": 10, "agents": 2, "backend": "inline", "rounds": 4}
    private = GSMPRegressor(**common, round_timeout=7.5).fit(x, y)
    pooled = GSMPRegressor(**common, prediction="pooled", slow_components=0).fit(x, y)
    assert private.model_.private and not pooled.model_.private
    assert json.loads(private.model_.run_config)["backend"]["round_timeout"] == 7.5
    assert len(private.weights_) == len(pooled.weights_) + 3  # the default 3 slow components
    with pytest.raises(ConfigError, match=r"^prediction must be one of private, pooled"):
        GSMPRegressor(prediction="exact").fit(x, y)
    x, y = sinusoids(60, noise=0.3)  # its held-out errors widen the predictive variance
    assert GSMPRegressor(components=20).fit(x, y).variance_scale_ > 1.0
    assert GSMPRegressor(components=20, calibrate=False).fit(x, y).variance_scale_ == 1.0
