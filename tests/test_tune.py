"""Outer model choice on held-out training data (distgp.tune)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgp import GSMPRegressor
from distgp.config import FitConfig
from distgp.exceptions import InputDataError
from distgp.holdout import holdout_splits
from distgp.seasonality import seasonal_period
from distgp.selection import (
    DEFAULT_CANDIDATES,
    LOG_CANDIDATES,
    SEASONAL_CANDIDATE,
    applies,
    default_candidates,
    fit_selected,
)


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
        applies(config, True, 50, dims=1)
    assert applies(FitConfig(), False, 50, dims=1)  # one input, not a series: K folds
    assert not applies(FitConfig(), False, 20, dims=1)  # 4 folds would train on 15 points
    assert not applies(FitConfig(), False, 500, dims=2)  # several inputs: no selection
    assert not applies(FitConfig(), True, 20, dims=1)  # too short for the default origin


def test_rolling_origins_score_the_forecast_horizon_of_the_test_inputs():
    """Backtests score the lead times the forecast needs: with prediction inputs past the end of
    a series, each origin holds out as many points as they reach ahead (FPP3 5.10)."""
    from distgp.holdout import forecast_horizon, with_forecast_horizon

    x = np.arange(0.0, 120.0, 0.5)[:, None]  # spacing 0.5
    ahead = 120.0 + 0.5 * np.arange(30.0)[:, None]  # 30 steps, the last one 30 steps ahead
    assert forecast_horizon(x, ahead) == 30
    assert forecast_horizon(x, x[::7]) is None  # interpolation
    assert forecast_horizon(x, None) is None
    assert forecast_horizon(np.c_[x, x], np.c_[ahead, ahead]) is None  # not 1-D
    config, horizon = with_forecast_horizon(FitConfig(), x, True, ahead)
    assert horizon == 30 and config.tune.horizon == 30
    assert FitConfig().tune.horizon is None  # a copy: the caller's config is unchanged
    assert with_forecast_horizon(FitConfig(), x, False, ahead)[1] is None  # not a series
    assert with_forecast_horizon(FitConfig(), x, True, ahead[:1])[1] == 4  # at least 4 points
    assert with_forecast_horizon(FitConfig(), x[:60], True, 30.0 + ahead)[1] is None  # no room
    user = FitConfig()
    user.tune.horizon = 7
    assert with_forecast_horizon(user, x, True, ahead) == (user, None)  # the user's choice holds

    seen = []
    y = np.sin(x[:, 0])
    config = FitConfig()
    config.kernel.components = 20
    fit_selected(x, y, config, True, report=lambda e, f: seen.append((e, f)), X_test=ahead)
    folds = [e.counts for _, f in seen if "evaluation" in f for e in [f["evaluation"]]]
    assert ("horizon", {"horizon": 30}) in seen and folds and all(c == [30, 30] for c in folds)


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


def test_bkb_tuning_scores_the_default_candidates_first_and_refits_the_best(tmp_path):
    from distgp.holdout import evaluations_csv
    from distgp.selection import simplest_best
    from distgp.tune import tune

    x = np.arange(1.0, 61.0)[:, None]
    y = 3 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12)
    config = FitConfig()
    config.kernel.components = 30
    events = []
    result, evaluations, best = tune(
        x, y, config, True, 9, ["trend", "noise_floor"], report=lambda e, f: events.append((e, f))
    )
    assert len(evaluations) == 9
    # the first evaluations are what the default path would choose among (a positive series
    # with a season; 60 points: no smoother ones)
    assert seasonal_period(x, y) == 12.0
    first = list(default_candidates(config, True, True, len(y), 12.0))
    k = len(first)
    assert [e.name for e in evaluations[:k]] == first
    assert evaluations[k - 2].overrides["kernel.trend"] == "quadratic"
    assert evaluations[k - 1].name == SEASONAL_CANDIDATE
    assert evaluations[k - 1].overrides["kernel.season"] == 12.0
    lowest = min((e for e in evaluations if not e.stopped), key=lambda e: e.mse)
    default = simplest_best(evaluations[:k])
    assert not any(e.stopped for e in evaluations[:k])  # the default path's are never raced
    assert best is (lowest if lowest.clearly_better_than(default) else default)
    kept = [f for e, f in events if e == "kept"]  # said when a lower score is not taken
    assert kept == ([] if best is lowest else [{"evaluation": default, "lowest": lowest}])
    assert "no search" not in [e for e, _ in events]
    assert [e.chosen for e in evaluations].count(True) == 1 and best.chosen
    seasonal = result.model.trend is not None and result.model.trend.season > 0
    assert seasonal == ("kernel.season" in best.overrides)
    rows = evaluations_csv(evaluations).splitlines()
    assert len(rows) == 10 and rows[0].endswith(",chosen,stopped")
    assert [r.rsplit(",", 2)[1] for r in rows[1:]] == [
        "yes" if e.chosen else "" for e in evaluations
    ]
    assert [r.endswith(",yes") for r in rows[1:]] == [e.stopped for e in evaluations]


def test_a_budget_of_the_first_batch_says_it_does_not_search():
    from distgp.tune import tune

    x, y = _seasonal()
    config = FitConfig()
    config.kernel.components = 20
    events = []
    tune(x, y, config, True, 4, ["trend"], report=lambda e, f: events.append((e, f)))
    # a positive series of 60 with a season: 7 (no smoother ones)
    assert ("no search", {"budget": 4, "first": 7}) in events


def test_a_tuned_setting_replaces_the_default_only_when_clearly_better():
    """Two standard errors of the paired fold differences: a lower mean from one lucky fold is
    not enough, nor is a margin that clears one standard error only."""
    from distgp.holdout import Evaluation

    default = Evaluation.scored("default", {}, [10.0, 10.0, 10.0, 10.0], [5] * 4, 1.0)
    lucky = Evaluation.scored("lucky", {}, [1.0, 12.0, 12.0, 12.0], [5] * 4, 1.0)
    steady = Evaluation.scored("steady", {}, [9.0, 9.5, 9.0, 9.2], [5] * 4, 1.0)
    assert lucky.mse < default.mse and not lucky.clearly_better_than(default)
    assert steady.clearly_better_than(default) and not default.clearly_better_than(steady)
    modest = Evaluation.scored("modest", {}, [7.0, 11.0, 7.0, 9.0], [5] * 4, 1.0)
    assert modest.clearly_better_than(default, errors=1.0)
    assert not modest.clearly_better_than(default)
    broken = Evaluation.scored("broken", {}, [math.inf, 1.0, 1.0, 1.0], [5] * 4, 1.0)
    assert broken.mse == math.inf and steady.clearly_better_than(broken)


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


def _seasonal(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(1.0, n + 1.0)[:, None]
    return x, 3 + 0.05 * x[:, 0] + np.sin(2 * np.pi * x[:, 0] / 12)


def test_agents_score_a_batch_as_the_count_weighted_mean_of_their_shards():
    """Two shards, two copies of each (4 agents): a batch of three candidates is split over
    the copies and each score is the held-out-count weighted mean of every fold of every shard."""
    from distgp.agents.agent import ShardArrays
    from distgp.agents.backends import InlineBackend
    from distgp.checkpoint import config_json
    from distgp.tune_shards import replicas, score_on_agents, score_shard, validation_rule

    x, y = _seasonal(64)
    config = FitConfig()
    config.kernel.components = 20
    config.consensus.agents = 2
    shards = [np.arange(0, 64, 2), np.arange(1, 64, 2)]
    rule = validation_rule(config, 64, True, 2)
    batch = [
        ("linear", {"kernel.trend": "linear"}),
        ("none", {"kernel.trend": "none"}),
        ("floor", {"kernel.trend": "linear", "learn.noise_floor": 0.03}),
    ]
    backend = InlineBackend()
    copies = replicas(2, config.tune.batch)
    assert copies == 2
    backend.start([ShardArrays(x[i], y[i]) for _ in range(copies) for i in shards])
    scored = score_on_agents(backend, config, batch, rule, 2)
    for (name, overrides), e in zip(batch, scored, strict=True):
        parts = [
            score_shard(x[i], y[i], j, config_json(config), [overrides], rule)[0]
            for j, i in enumerate(shards)
        ]
        folds = [v for p in parts for v in p[0]]
        expected = np.average(folds, weights=[c for p in parts for c in p[1]])
        assert e.name == name and e.mse == pytest.approx(expected, rel=1e-12)
        assert e.folds == pytest.approx(folds, rel=1e-12) and len(folds) == 2 * rule["origins"]
    assert len({e.mse for e in scored}) == 3  # the candidates were told apart
    # raced against a bar no fit reaches, every agent stops each candidate after its first
    # fold; against one every fit beats, none stops
    K = rule["origins"]
    low, high = [1e-9] * (2 * K), [1e9] * (2 * K)
    raced = score_on_agents(backend, config, batch, rule, 2, [low, high, None])
    assert [e.stopped for e in raced] == [True, False, False]
    assert raced[0].folds == pytest.approx(scored[0].folds[::K], rel=1e-12)
    assert raced[0].bar_mse == pytest.approx(1e-9, rel=1e-12)
    assert [e.mse for e in raced[1:]] == pytest.approx([e.mse for e in scored[1:]], rel=1e-12)


def test_a_setting_behind_its_bar_stops_after_the_fold_that_shows_it():
    """The race of --tune's search: folds in order, a candidate whose squared error so far
    exceeds RACE_FACTOR times its bar's stops; the others score as without a race."""
    from distgp.holdout import RACE_FACTOR, behind, evaluate_many

    assert not behind([1.0], [1.0, 1.0], [5, 5])
    assert behind([RACE_FACTOR * 1.01], [1.0, 1.0], [5, 5])
    assert not behind([9.0, 9.0], [1.0, 1.0], [5, 5])  # nothing left to save on the last fold
    assert behind([math.inf], [1.0, 1.0], [5, 5]) and behind([math.nan], [1.0, 1.0], [5, 5])
    weights = [1, 3, 1]  # held-out points: 3 + 3 <= RACE_FACTOR x (1 + 6); 3 + 7.5 is not
    assert not behind([3.0, 1.0], [1.0, 2.0, 1.0], weights)
    assert behind([3.0, 2.5], [1.0, 2.0, 1.0], weights)

    x, y = _seasonal(80)
    config = FitConfig()
    config.kernel.components = 20
    splits = holdout_splits(80, True, origins=3)
    batch = [("linear", {"kernel.trend": "linear"}), ("none", {"kernel.trend": "none"})]
    plain = evaluate_many(x, y, config, batch, splits)
    assert not any(e.stopped for e in plain)
    bar = [0.5 * m / RACE_FACTOR for m in plain[1].folds]  # "none" is behind on fold 1
    raced = evaluate_many(x, y, config, batch, splits, bars=[None, bar])
    assert raced[0].folds == plain[0].folds and not raced[0].stopped
    assert raced[1].stopped and raced[1].folds == plain[1].folds[:1]
    assert raced[1].counts == plain[1].counts[:1]
    assert raced[1].bar_mse == pytest.approx(bar[0], rel=1e-12) and raced[0].bar_mse is None


def test_a_stopped_setting_tells_bkb_its_score_relative_to_the_default_on_its_folds():
    """The reward of a stopped setting projects its early-fold MSE by the default's own ratio
    of all folds to those folds: behind the default on easy early folds is still behind."""
    from distgp.holdout import Evaluation
    from distgp.tune import reward

    default = Evaluation.scored("default", {}, [1.0, 9.0], [10, 10], 0.0)  # MSE 5
    behind_early = Evaluation.scored("x", {}, [2.0], [10], 0.0)
    behind_early.stopped, behind_early.bar_mse = True, 1.0
    assert reward(behind_early, default) == pytest.approx(-math.log(10.0))
    assert reward(behind_early, default) < reward(default, default)
    assert reward(default, None) == pytest.approx(-math.log(5.0))
    assert math.isnan(reward(Evaluation.scored("inf", {}, [math.inf], [10], 0.0), default))


def test_a_shard_of_a_series_is_scored_in_time_order_and_too_short_a_shard_is_refused():
    from distgp.tune_shards import shard_splits, validation_rule

    config = FitConfig()
    rule = validation_rule(config, 48, True, 4)  # shards of 12: local origins of 2 x 2 points
    splits = shard_splits(12, 0, rule)
    assert [len(h) for _, h in splits] == [2, 2] and splits[-1][1][-1] == 11
    with pytest.raises(InputDataError, match="agent 3's shard of 9 points"):
        shard_splits(9, 3, {**rule, "origins": 1, "fraction": 0.2, "horizon": 8})
    one = validation_rule(config, 40, True, 1)  # one agent: the sequential path's splits
    for (a, b), (c, d) in zip(shard_splits(40, 0, one), holdout_splits(40, True), strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_tuning_over_ray_agents_makes_the_sequential_choice(ray_local):
    """One agent over Ray: four copies of it score each batch side by side, with the same
    splits and fits as the inline path, so the scores and the choice are the same."""
    from distgp.tune import tune

    x, y = _seasonal()
    chosen = {}
    for backend in ("inline", "ray"):
        config = FitConfig()
        config.kernel.components = 20
        config.backend.name = backend
        result, evaluations, best = tune(
            x, y, config, True, 5, ["trend", "noise_floor"], X_test=x[-5:] + 5
        )
        chosen[backend] = (best.name, [e.mse for e in evaluations], result.prediction[0])
    assert chosen["ray"][0] == chosen["inline"][0]
    np.testing.assert_allclose(chosen["ray"][1], chosen["inline"][1], rtol=1e-6)
    np.testing.assert_allclose(chosen["ray"][2], chosen["inline"][2], rtol=1e-6)
    assert ray_local.is_initialized()  # the session's Ray instance is left running


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


def test_first_batch_holds_what_the_default_path_fits():
    from distgp.tune import _first_candidates, tune_arms, tune_origins

    names, grid = tune_arms(["trend", "components", "noise_floor"], positive=False)
    config = FitConfig()
    ((_, overrides, arm),) = _first_candidates(names, grid, config, False, 4, 200)
    assert overrides["kernel.trend"] == "none" and arm is not None  # several inputs: no trend
    one_input = _first_candidates(names, grid, config, False, 1, 200)  # folds, not origins
    assert [c[0] for c in one_input] == list(DEFAULT_CANDIDATES)
    assert _first_candidates(names, grid, config, False, 1, 20)[0][1]["kernel.trend"] == "linear"
    series = _first_candidates(names, grid, config, True, 1, 200)
    assert [c[0] for c in series] == [*DEFAULT_CANDIDATES, "local trend, floor 0.1"]
    # level and flat (one component) are scored, not arms of the grid; the smoother local
    # trend is the arm of its trend and noise floor
    assert [c[2] is None for c in series] == [True, True, False, False, False]
    assert series[-1][1]["learn.noise_floor"] == 0.1
    assert tune_origins(config, True, 200) == 4 and tune_origins(config, True, 60) == 4
    assert tune_origins(config, True, 30) == config.tune.origins  # no room for 4 x 4 points
    assert tune_origins(config, False, 200) == config.tune.origins


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


def test_a_positive_series_also_scores_models_of_log_y():
    """A series of positive values adds the log candidates after the four others (they count
    as the more complex), unless a transform is set or a value is not positive; a series then
    adds the smoother local trends (a log one where the log candidates joined); --tune's first
    evaluations are the same candidates, over as many batches as they need."""
    from distgp.holdout import configured
    from distgp.tune import _first_candidates, tune_arms

    config = FitConfig()
    smoother = ["local trend, floor 0.1", "local trend, log, floor 0.1"]
    both = [*DEFAULT_CANDIDATES, *LOG_CANDIDATES, *smoother]
    assert list(default_candidates(config, True, True, 200)) == both
    series = [*DEFAULT_CANDIDATES, smoother[0]]
    assert list(default_candidates(config, True, False, 200)) == series
    assert list(default_candidates(config, False, True, 200)) == list(DEFAULT_CANDIDATES)
    boxcox = configured(config, {"kernel.transform": "boxcox"})
    assert list(default_candidates(boxcox, True, True, 200)) == series
    names, grid = tune_arms(["trend", "transform"], positive=True)
    seeds = _first_candidates(names, grid, config, True, 1, 200, positive=True)
    assert [c[0] for c in seeds] == both
    assert seeds[5][1] == {"kernel.trend": "quadratic", "kernel.transform": "log"}
    assert seeds[5][2] is not None  # an arm of the grid, told to BKB
    assert seeds[-1][2] is None  # its noise floor is not searched here: scored, not told

    x, y = _seasonal(120)
    config.kernel.components = 20
    result, evaluations = fit_selected(x, y * np.exp(0.01 * x[:, 0]), config, True)
    assert [e.name for e in evaluations] == [*both, SEASONAL_CANDIDATE]  # a monthly season
    chosen = next(e for e in evaluations if e.chosen)
    assert result.model.transform.kind == chosen.overrides.get("kernel.transform", "none")
    from distgp.tune import tune

    _, tuned, _ = tune(x, y, config, True, 10, ["trend", "transform"])
    assert [e.name for e in tuned[:9]] == [*both, SEASONAL_CANDIDATE]
    assert len({e.name for e in tuned}) == 10  # no setting scored twice


def test_the_search_offers_the_season_where_a_series_has_a_period():
    """``season`` is searched (without a season, or with the period) only for a series on the
    data grid with a period: the user's kernel.season, else the one the data show; its arms
    carry the period in input units and the first evaluations are the default path's."""
    from distgp.holdout import configured
    from distgp.tune import _arm_label, _first_candidates, arm_overrides, tune, tune_arms

    names, grid = tune_arms(["trend", "season"], False, seasonal=True)
    assert names == ["trend", "season"] and grid.shape == (10, 2)
    assert tune_arms(["trend", "season"], False, seasonal=False)[0] == ["trend"]
    config = FitConfig()
    assert arm_overrides(names, np.array([2.0, 1.0]), config, 1, 12.0) == {
        "kernel.trend": "linear",
        "kernel.season": 12.0,
    }
    assert arm_overrides(names, np.array([2.0, 0.0]), config, 1, 12.0)["kernel.season"] == 0.0
    assert _arm_label(names, np.array([4.0, 1.0]), 12.0) == "trend=local, season=12"
    seeds = _first_candidates(names, grid, config, True, 1, 200, period=12.0)
    assert seeds[-1][0] == SEASONAL_CANDIDATE and seeds[-1][2] is None  # one component: off grid
    assert all(o.get("kernel.season", 0.0) == 0.0 for _, o, _ in seeds[:-1])
    user = configured(config, {"kernel.season": 6.0})  # every default candidate has the season
    seeds = _first_candidates(names, grid, user, True, 1, 200, period=12.0)
    assert all(o["kernel.season"] == 6.0 for _, o, a in seeds if a is not None)

    x, y = _seasonal(120)
    config.kernel.components = 20
    _, evaluations, _ = tune(x, y, config, True, 10, ["trend", "season"])
    searched = [e for e in evaluations[len(seeds) :] if "season=" in e.name]
    assert searched and {e.overrides["kernel.season"] for e in searched} <= {0.0, 12.0}
    _, evaluations, _ = tune(x[:, [0, 0]], y, config, False, 3, ["trend", "season"])
    assert all("season" not in e.name for e in evaluations)  # two inputs: no season


def test_prediction_inputs_past_the_end_are_scored_as_a_forecast():
    """Unevenly spaced times, rows in any order, prediction inputs past the last one: the
    candidates are scored by rolling origin in input order (random folds would score
    interpolation and pick a model that cannot follow the trend)."""
    from distgp.holdout import in_input_order, past_the_end

    rng = np.random.default_rng(7)
    t = np.sort(rng.uniform(0, 100, 120))
    y = 0.05 * t + np.sin(t / 3) + 0.1 * rng.normal(size=120)
    rows = rng.permutation(120)
    X, ahead = t[rows, None], np.linspace(101, 110, 8)[:, None]
    assert past_the_end(X, ahead) and not past_the_end(X, X[:5]) and not past_the_end(X, None)
    for train, held in in_input_order(holdout_splits(120, True, horizon=10), X):
        assert X[train, 0].max() < X[held, 0].min() and len(held) == 10
    config = FitConfig()
    config.kernel.components = 40
    events = []
    result, evaluations = fit_selected(
        X, y[rows], config, False, X_test=ahead, report=lambda e, f: events.append((e, f))
    )
    assert ("past the end", {}) in events and ("folds", {"folds": 4}) not in events
    assert all(len(e.counts) == config.tune.origins for e in evaluations)
    truth = 0.05 * ahead[:, 0] + np.sin(ahead[:, 0] / 3)
    flat = np.mean((y[-20:].mean() - truth) ** 2)
    assert np.mean((result.forecast() - truth) ** 2) < flat


def test_tune_compares_with_the_choice_the_default_path_makes_on_its_own_origins():
    """A search scores 4 rolling origins where the default path scores the last 2: the
    default it must clearly beat is the one the default path would fit, by its own folds."""
    from distgp.holdout import Evaluation
    from distgp.tune import default_choice

    a = Evaluation.scored("a", {}, [1.0, 1.0, 5.0, 5.0], [10] * 4, 0.0)  # best on all four
    b = Evaluation.scored("b", {}, [9.0, 9.0, 4.0, 4.0], [10] * 4, 0.0)  # best on the last two
    assert a.mse < b.mse
    assert default_choice([a, b], 2, 4, series=True) is b
    assert default_choice([a, b], 2, 2, series=True) is a  # the same origins: all of them
    assert default_choice([a, b], 2, 4, series=False) is a  # folds: the default path's own
    two_shards = [
        Evaluation.scored(e.name, {}, e.folds * 2, e.counts * 2, 0.0) for e in (a, b)
    ]  # 8 folds, shard by shard: no last-two rule
    assert default_choice(two_shards, 2, 4, series=True) is two_shards[0]


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


def test_the_reference_grid_scores_the_full_grid_alone_in_place_of_the_local_trend():
    """The local trend needs the data grid's standardised inputs: on the reference grid the
    default path and the search keep to the other trend families, and a fit still runs."""
    from distgp.tune import tune_arms

    config = FitConfig()
    config.kernel.grid = "reference"
    candidates = default_candidates(config, True, True, 200)
    assert "stationary" in candidates and "stationary, log" in candidates
    assert all(o.get("kernel.trend") != "local" for o in candidates.values())
    assert "local trend" in default_candidates(FitConfig(), True, True, 200)
    grid = tune_arms(["trend"], False, local=False)[1]
    assert grid[:, 0].max() == 3  # none, constant, linear, quadratic
    assert tune_arms(["trend"], False)[1][:, 0].max() == 4  # and local
    x = np.arange(60.0)[:, None]
    y = np.sin(2 * np.pi * x[:, 0] / 12) + 0.05 * x[:, 0]
    config.kernel.components = 40
    result, evaluations = fit_selected(x, y, config, True)
    assert next(e for e in evaluations if e.chosen).overrides.get("kernel.trend") != "local"
    assert np.all(np.isfinite(result.model.predict(x[-5:])))


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
