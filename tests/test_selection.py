"""The default path's held-out choice of trend, transform and season."""

from __future__ import annotations

import numpy as np
import pytest

from distgp import GSMPRegressor
from distgp.config import FitConfig
from distgp.exceptions import InputDataError
from distgp.holdout import holdout_splits
from distgp.selection import (
    DEFAULT_CANDIDATES,
    SEASONAL_CANDIDATE,
    default_candidates,
    fit_selected,
)


def test_one_input_in_random_order_is_chosen_by_folds():
    """Beyond series: with one input that is not a series the default path scores its
    candidates on ``tune.folds`` random folds of the training data, so noise is not over-fitted
    (the full grid alone predicted worse than the training mean on such data)."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 10, size=(150, 1))
    y = 5 + rng.normal(size=150)
    config = FitConfig()
    config.kernel.components = 60
    events = []
    result, evaluations = fit_selected(
        x[:120], y[:120], config, series=False, report=lambda e, f: events.append((e, f))
    )
    assert ("folds", {"folds": 4}) in events
    assert [e.name for e in evaluations] == list(DEFAULT_CANDIDATES)
    assert all(e.counts == [30, 30, 30, 30] for e in evaluations)
    mse = np.mean((result.model.predict(x[120:]) - y[120:]) ** 2)
    assert mse <= 1.05 * np.mean((y[:120].mean() - y[120:]) ** 2)


def test_selection_falls_back_to_a_flat_model_on_noise():
    rng = np.random.default_rng(3)
    x = np.arange(1.0, 61.0)[:, None]
    y = 10 + rng.normal(size=60)
    config = FitConfig()
    config.kernel.components = 60
    result, evaluations = fit_selected(x, y, config, series=True)
    assert [e.name for e in evaluations] == list(default_candidates(config, True, True, 60))
    scores = {e.name: e.mse for e in evaluations}
    assert all(np.isfinite(v) for v in scores.values())
    chosen = result.model
    forecast = chosen.predict(np.arange(61.0, 71.0)[:, None])
    assert np.all(np.abs(forecast - y.mean()) < 1.5)


def test_short_noisy_series_forecasts_its_training_mean():
    """Issue 10, small data: on white noise around a level the default path chooses ``level``,
    whose forecast is the training mean (not the recent level, not an over-fitted grid)."""
    rng = np.random.default_rng(3)
    x = np.arange(60.0)[:, None]
    y = 20.0 + rng.normal(size=60)
    model = GSMPRegressor(random_state=0).fit(x[:48], y[:48])
    chosen = [e.name for e in model.tune_evaluations_ if e.chosen]
    assert chosen == ["level"]
    mse = np.mean((model.predict(x[48:]) - y[48:]) ** 2)
    assert mse <= 1.001 * np.mean((y[:48].mean() - y[48:]) ** 2)


def test_the_smoother_candidates_only_ever_raise_the_noise_floor():
    from distgp.holdout import configured
    from distgp.selection import SMOOTHER_FLOOR, smoother_candidates

    config = FitConfig()
    (local,) = smoother_candidates(config, False, 100).values()
    assert local == {"kernel.trend": "local", "learn.noise_floor": SMOOTHER_FLOOR}
    lower = configured(config, {"learn.noise_floor": 0.05})  # a user's floor below it
    assert [c["learn.noise_floor"] for c in smoother_candidates(lower, True, 100).values()] == [
        SMOOTHER_FLOOR,
        SMOOTHER_FLOOR,
    ]
    for floor in (SMOOTHER_FLOOR, 0.3):  # at or above it: nothing to add
        user = configured(config, {"learn.noise_floor": floor})
        assert smoother_candidates(user, True, 500) == {}
        assert list(default_candidates(user, True, False, 500)) == list(DEFAULT_CANDIDATES)
    # a short series keeps the candidates chosen for short series
    assert smoother_candidates(config, True, 99) == {}
    assert list(default_candidates(config, True, False, 99)) == list(DEFAULT_CANDIDATES)


def test_held_out_z_scores_widen_the_intervals_they_show_too_narrow(tmp_path):
    """Calibration (tune.calibrate): the chosen setting's held-out errors, standardised by its
    predictive std, set a factor on the final predictive variance when their mean square
    exceeds 1; the predictive mean does not change, and the model keeps the factor."""
    from distgp.gp import GSMPModel
    from distgp.holdout import configured, evaluate
    from distgp.selection import calibrated

    rng = np.random.default_rng(5)
    x = np.arange(1.0, 81.0)[:, None]
    y = 3 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12) + 0.3 * rng.standard_t(2, 80)
    ahead = np.arange(81.0, 91.0)[:, None]
    config = FitConfig()
    config.kernel.components = 20
    splits = holdout_splits(80, True)
    e = evaluate(x, y, config, "trend", {"kernel.trend": "linear"}, splits)
    manual = 0.0
    for train, held in splits:  # the same fits by hand
        from distgp.driver import fit

        trial = configured(config, {"kernel.trend": "linear", "learn.max_iterations": 150})
        mean, std = fit(x[train], y[train], trial, X_test=x[held]).prediction
        manual += np.sum(((y[held] - mean) / std) ** 2)
    assert e.mean_z2 == pytest.approx(manual / 16, rel=1e-9)

    events = []
    result, evaluations = fit_selected(
        x, y, config, True, X_test=ahead, report=lambda ev, f: events.append((ev, f))
    )
    chosen = next(c for c in evaluations if c.chosen)
    scale = max(1.0, chosen.mean_z2)
    assert result.model.variance_scale == scale
    assert ("calibrated", {"mean_z2": chosen.mean_z2, "scale": scale, "points": 20}) in events

    # a factor above 1 widens the intervals by its square root; the mean stays
    plain = fit_selected(x, y, configured(config, {"tune.calibrate": False}), True, X_test=ahead)[0]
    mean0, std0 = plain.prediction
    assert plain.model.variance_scale == 1.0
    wide = type(chosen)("x", {}, 1.0, 0.0, [1.0, 1.0], [10, 10], z2=[30.0, 50.0])
    result = calibrated(plain, wide, config)
    assert result.model.variance_scale == 4.0
    np.testing.assert_array_equal(result.prediction[0], mean0)
    np.testing.assert_allclose(result.prediction[1], 2.0 * std0, rtol=1e-12)
    mean, std = result.model.predict(ahead, return_std=True)
    np.testing.assert_allclose(std, 2.0 * std0, rtol=1e-9)
    result.model.save(tmp_path / "m.npz")
    assert GSMPModel.load(tmp_path / "m.npz").variance_scale == 4.0

    # held-out errors inside the intervals: the variance is kept, never narrowed
    narrow = fit_selected(x, y, configured(config, {"tune.calibrate": False}), True)[0]
    inside = type(chosen)("x", {}, 1.0, 0.0, [1.0, 1.0], [8, 8], z2=[2.0, 3.0])
    assert calibrated(narrow, inside, config).model.variance_scale == 1.0
    assert calibrated(narrow, wide, configured(config, {"tune.calibrate": False})) is narrow
    assert narrow.model.variance_scale == 1.0


def test_the_default_path_says_why_its_horizon_and_its_choice_differ_from_the_obvious():
    """A forecast too long for two origins in a short series falls back to 10% of n (at least
    4) and says so; a choice that is not the lowest score says it is the simplest within 1%."""
    rng = np.random.default_rng(2)
    x = np.arange(1.0, 26.0)[:, None]
    y = 50 + np.cumsum(rng.normal(size=25))
    config = FitConfig()
    config.kernel.components = 30
    events = []
    _, evaluations = fit_selected(
        x,
        y,
        config,
        True,
        X_test=np.arange(26.0, 32.0)[:, None],
        report=lambda e, f: events.append((e, f)),
    )
    assert ("horizon too long", {"wanted": 6, "used": 4}) in events
    assert all(e.counts == [4, 4] for e in evaluations)
    chosen = next(e for e in evaluations if e.chosen)
    lowest = min(evaluations, key=lambda e: e.mse)
    simpler = [f for e, f in events if e == "simpler"]
    assert simpler == ([] if lowest is chosen else [{"evaluation": chosen, "lowest": lowest}])
    assert chosen.mse <= 1.01 * lowest.mse


def test_a_seasonal_series_also_scores_a_linear_trend_with_its_season():
    from distgp.holdout import configured

    config = FitConfig()
    candidates = default_candidates(config, True, True, 200, 12.0)
    assert list(candidates)[-1] == SEASONAL_CANDIDATE
    assert candidates[SEASONAL_CANDIDATE] == {
        "kernel.components": 1,
        "kernel.trend": "linear",
        "kernel.season": 12.0,
    }
    assert SEASONAL_CANDIDATE not in default_candidates(config, True, True, 200)  # no period
    assert SEASONAL_CANDIDATE not in default_candidates(config, False, True, 200, 12.0)
    for setting in ({"kernel.season": 4.0}, {"kernel.grid": "reference"}):
        assert SEASONAL_CANDIDATE not in default_candidates(
            configured(config, setting), True, True, 200, 12.0
        )


def test_the_log_candidates_fit_a_positive_series_on_a_large_offset():
    """log y of 1e11 plus a signal of 1 varied by 1e-13 of its mean, and the log candidates'
    standardisation refused it, aborting a default fit that never asked for a log; on
    log(y / c) they score beside the others, and the fit succeeds."""
    x = np.arange(60.0)
    y = 1e11 + np.sin(x / 3) + 0.1 * np.random.default_rng(3).normal(size=60)
    model = GSMPRegressor().fit(x[:, None], y)
    assert "quadratic trend, log" in {e.name for e in model.tune_evaluations_}
    assert np.mean((model.predict(x[:, None]) - y) ** 2) < 0.05


def test_outputs_at_rounding_level_are_refused_as_y_before_a_transform():
    """Outputs whose spread is rounding against their mean are refused as y (not as their
    logs, which the message used to quote as y)."""
    x = np.arange(30.0)[:, None]
    y = 1e11 * (1 + 1e-15 * np.arange(30.0))
    with pytest.raises(InputDataError, match=r"training outputs y vary too little .* \(1e\+11\)"):
        GSMPRegressor(output_transform="log").fit(x, y)


def test_one_outlier_does_not_set_the_calibration_factor():
    """The fold holding out y = 1e12 among values of 1 was fitted without it (z ~ 1e13), and
    its z^2 alone made the factor 7e22 (std 4e22 for data bounded by 1e12); winsorised at 5
    robust sigmas the factor is of order 1, and ordinary z-scores keep their plain sum."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 60))
    y = np.sin(x) + 0.1 * rng.normal(size=60)
    y[10] = 1e12
    model = GSMPRegressor().fit(x[:, None], y)
    assert 1.0 <= model.model_.variance_scale < 5.0
    assert model.predict(np.array([[5.0]]), return_std=True)[1][0] < 1e12
    from distgp.holdout import winsorised_z2

    z = rng.normal(size=40)
    assert winsorised_z2(z) == pytest.approx(float(np.sum(z**2)))
    # a split fitted exactly but for one miss keeps the miss (its median z^2 is 0): at most 25
    assert winsorised_z2(np.array([0.0, 0.0, 0.0, 3.0])) == pytest.approx(9.0)
    assert winsorised_z2(np.array([0.0, 0.0, 0.0, 30.0])) == pytest.approx(25.0)
