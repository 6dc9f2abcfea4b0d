"""Outer model choice on held-out training data (distgp.tune)."""

from __future__ import annotations

import numpy as np
import pytest

from distgp import GSMPRegressor
from distgp.config import FitConfig
from distgp.exceptions import InputDataError
from distgp.tune import SERIES_CANDIDATES, applies, fit_selected, holdout_splits


def test_rolling_origin_splits_train_on_the_past_only():
    splits = holdout_splits(100, True)
    assert [len(h) for _, h in splits] == [10, 10]
    for train, held in splits:
        assert train.max() < held.min()
        assert np.all(np.diff(held) == 1)
    assert splits[-1][1][-1] == 99
    folds = holdout_splits(40, False, folds=4)
    held = np.sort(np.concatenate([h for _, h in folds]))
    np.testing.assert_array_equal(held, np.arange(40))


def test_rolling_origin_longer_than_the_series_is_refused():
    with pytest.raises(InputDataError, match="rolling origin"):
        holdout_splits(30, True, horizon=10, origins=2)
    config = FitConfig()
    config.tune.horizon = 40
    with pytest.raises(InputDataError):
        applies(config, True, 50)
    assert not applies(FitConfig(), False, 50)  # not a series: no selection
    assert not applies(FitConfig(), True, 20)  # too short for the default origin


def test_selection_falls_back_to_a_flat_model_on_noise():
    rng = np.random.default_rng(3)
    x = np.arange(1.0, 61.0)[:, None]
    y = 10 + rng.normal(size=60)
    config = FitConfig()
    config.kernel.components = 60
    result, evaluations = fit_selected(x, y, config, series=True)
    assert [e.name for e in evaluations] == list(SERIES_CANDIDATES)
    scores = {e.name: e.mse for e in evaluations}
    assert all(np.isfinite(v) for v in scores.values())
    chosen = result.model
    forecast = chosen.predict(np.arange(61.0, 71.0)[:, None])
    assert np.all(np.abs(forecast - y.mean()) < 1.5)


def test_bkb_tuning_scores_the_default_first_and_refits_the_best(tmp_path):
    from distgp.tune import evaluations_csv, tune

    x = np.arange(1.0, 61.0)[:, None]
    y = 3 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12)
    config = FitConfig()
    config.kernel.components = 30
    result, evaluations, best = tune(x, y, config, True, 5, ["trend", "noise_floor"])
    assert len(evaluations) == 5
    assert evaluations[0].overrides["kernel.trend"] == "linear"
    assert best.mse == min(e.mse for e in evaluations)
    assert result.model.components >= 30
    assert evaluations_csv(evaluations).count("\n") == 6


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
