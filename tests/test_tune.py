"""``--tune``: BKB over outer settings, its first batch, the guard and agents scoring shards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgp.config import FitConfig
from distgp.exceptions import InputDataError
from distgp.holdout import holdout_splits
from distgp.seasonality import seasonal_period
from distgp.selection import (
    DEFAULT_CANDIDATES,
    LOG_CANDIDATES,
    SEASONAL_CANDIDATE,
    default_candidates,
    fit_selected,
)
from tests.helpers import trending_season


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
    from distgp.tune import default_choice, tune

    x, y = trending_season()
    config = FitConfig()
    config.kernel.components = 20
    events = []
    _, evaluations, best = tune(
        x, y, config, True, 4, ["trend"], report=lambda e, f: events.append((e, f))
    )
    # a positive series of 60 with a season: 7 (no smoother ones), all of them scored and
    # chosen among as the default path does, although the budget is smaller
    assert ("no search", {"budget": 4, "first": 7}) in events
    assert len(evaluations) == 7 and best is default_choice(evaluations, 2, 2, True)


def test_agents_score_a_batch_as_the_count_weighted_mean_of_their_shards():
    """Two shards, two copies of each (4 agents): a batch of three candidates is split over
    the copies and each score is the held-out-count weighted mean of every fold of every shard."""
    from distgp.agents.agent import ShardArrays
    from distgp.agents.backends import InlineBackend
    from distgp.checkpoint import config_json
    from distgp.tune_shards import replicas, score_on_agents, score_shard, validation_rule

    x, y = trending_season(64)
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
    sent = backend.traffic.bytes
    scored = score_on_agents(backend, config, batch, rule, 2)
    assert sum(e.bits for e in scored) == 8 * (backend.traffic.bytes - sent) > 0
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


def test_an_agent_scores_folds_smaller_than_the_minimum_shard_and_reports_a_bad_setting():
    """The folds of a shard that met ``data.min_shard_size`` train on fewer points within the
    agent (nothing about them leaves it but the shard's scores); a setting the agent refuses
    comes back as a one-line error naming it, not a remote traceback."""
    from distgp.agents.agent import ShardArrays
    from distgp.agents.backends import InlineBackend
    from distgp.checkpoint import config_json
    from distgp.tune_shards import score_shard, validation_rule
    from tests.helpers import smooth_regression

    X, y = smooth_regression(n=48, dims=2)
    config = FitConfig()
    config.kernel.components = 20
    rule = validation_rule(config, 48, False, 4)  # shards of 12: folds train on 9
    assert config.data.min_shard_size == 10
    (folds, counts, _, _) = score_shard(X[:12], y[:12], 0, config_json(config), [{}], rule)[0]
    assert sum(counts) == 12 and all(np.isfinite(folds))
    backend = InlineBackend()
    backend.start([ShardArrays(X[:12], y[:12])])
    bad = {"kernel.components": 0}
    with pytest.raises(InputDataError, match=r"agent 0 on node local: .*components must be in"):
        backend.call("score", {0: (config_json(config), [bad], rule, 0, [None])})


def test_tuning_over_ray_agents_makes_the_sequential_choice(ray_local):
    """One agent over Ray: four copies of it score each batch side by side, with the same
    splits and fits as the inline path, so the scores and the choice are the same."""
    from distgp.tune import tune

    x, y = trending_season()
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


def test_tuning_over_several_agents_says_how_they_split_their_shards(ray_local):
    """With several agents each scores on its own shard, with a horizon in proportion to it:
    the run says so (it only printed the pooled horizon, which no agent used)."""
    from distgp.tune import tune

    x, y = trending_season()
    config = FitConfig()
    config.kernel.components = 20
    config.consensus.agents = 2
    config.consensus.max_rounds = 3
    config.backend.name = "ray"
    config.tune.horizon = 10
    events = []
    tune(x, y, config, True, 2, ["trend"], report=lambda e, f: events.append((e, f)))
    splits = [f for e, f in events if e == "agent splits"]
    assert splits == [{"agents": 2, "series": True, "splits": 4, "held_out": [5]}]  # 10 x 30 / 60


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

    x, y = trending_season(120)
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

    x, y = trending_season(120)
    config.kernel.components = 20
    _, evaluations, _ = tune(x, y, config, True, 10, ["trend", "season"])
    searched = [e for e in evaluations[len(seeds) :] if "season=" in e.name]
    assert searched and {e.overrides["kernel.season"] for e in searched} <= {0.0, 12.0}
    _, evaluations, _ = tune(x[:, [0, 0]], y, config, False, 3, ["trend", "season"])
    assert all("season" not in e.name for e in evaluations)  # two inputs: no season


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


def _regression_2d(n: int = 120):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 5, (n, 2))
    y = 3 + np.sin(X[:, 0]) + 0.3 * X[:, 1] + 0.1 * rng.standard_normal(n)
    return X, y


def test_a_budget_within_one_batch_keeps_the_guard_against_the_default_choice():
    """With the budget no larger than a batch, BKB's proposals share the first batch with the
    default path's candidates: the default choice is the candidates' own (it was taken over
    every evaluation, proposals included, so the lowest score was compared with itself)."""
    from distgp.tune import tune

    X, y = _regression_2d()
    config = FitConfig()
    config.kernel.components = 40
    config.learn.max_iterations = 100
    _, evaluations, best = tune(X, y, config, False, 4, None)
    assert len(evaluations) == 4
    default = evaluations[0]  # several inputs: the default setting is the one candidate
    lowest = min((e for e in evaluations if not e.stopped), key=lambda e: e.mse)
    assert lowest is not default  # the case: a proposal scored lower, not clearly lower
    assert best is (lowest if lowest.clearly_better_than(default) else default)


def test_a_search_scores_no_setting_twice_and_ends_when_the_space_is_scored():
    """A setting's held-out score is deterministic: BKB proposes no scored setting again, and a
    budget larger than the search space ends when every setting is scored."""
    from distgp.tune import tune

    X, y = _regression_2d(60)
    config = FitConfig()
    config.kernel.components = 20
    config.learn.max_iterations = 50
    events = []
    _, evaluations, _ = tune(
        X, y, config, False, 12, ["trend"], report=lambda e, f: events.append(e)
    )
    names = [e.name for e in evaluations]
    assert len(names) == len(set(names)) < 12  # the trend families of several inputs
    assert "space scored" in events


def test_proposals_beyond_the_room_of_a_batch_are_not_left_pending():
    """Arms BKB proposes that the batch cannot take (the default path's candidates fill it, or
    they are among those candidates) are cancelled, not left as hallucinated pulls."""
    from distgp.bandit import BKB
    from distgp.tune import _proposals

    bandit = BKB(np.linspace(0, 1, 12)[:, None], seed=0, repeat=False)
    seeds = [("a", {}, 3), ("b", {}, None), ("c", {}, 5)]
    assert _proposals(bandit, 3, seeds) == [] and bandit.pending == []
    arms = _proposals(bandit, 4, seeds[:2])
    assert len(arms) == 2 and 3 not in arms and bandit.pending == arms
