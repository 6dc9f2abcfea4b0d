"""Held-out scoring of outer settings: rolling origins, K folds, horizons, the race."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgp.config import FitConfig
from distgp.exceptions import InputDataError
from distgp.holdout import holdout_splits
from distgp.selection import (
    applies,
    fit_selected,
)
from tests.helpers import trending_season


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


def test_k_folds_hold_out_every_copy_of_an_input_row_together():
    rng = np.random.default_rng(1)
    X = np.repeat(rng.normal(size=(30, 2)), rng.integers(1, 8, 30), axis=0)  # 1 to 7 copies
    X = X[rng.permutation(len(X))]
    n = len(X)
    splits = holdout_splits(n, False, folds=4, seed=3, X=X)
    assert len(splits) == 4
    held = np.sort(np.concatenate([h for _, h in splits]))
    np.testing.assert_array_equal(held, np.arange(n))
    for train, h in splits:
        np.testing.assert_array_equal(np.sort(np.r_[train, h]), np.arange(n))
        assert not {tuple(r) for r in X[h]} & {tuple(r) for r in X[train]}
        assert abs(len(h) - n / 4) <= 7  # balanced to a group of copies
    again = holdout_splits(n, False, folds=4, seed=3, X=X)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))
    other = holdout_splits(n, False, folds=4, seed=4, X=X)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other, strict=True))
    for (a, b), (c, d) in zip(holdout_splits(n, True, X=X), holdout_splits(n, True), strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)  # a rolling origin is unaffected


@pytest.mark.parametrize(("n", "folds", "seed", "dims"), [(40, 4, 0, 1), (101, 5, [3, 1], 3)])
def test_k_folds_of_data_without_copies_are_unchanged(n, folds, seed, dims):
    X = np.random.default_rng(2).normal(size=(n, dims))
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    splits = holdout_splits(n, False, folds=folds, seed=seed, X=X)
    assert len(splits) == folds
    for (train, held), part in zip(splits, parts, strict=True):
        np.testing.assert_array_equal(held, np.sort(part))
        np.testing.assert_array_equal(train, np.setdiff1d(np.arange(n), part))


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

    x, y = trending_season(80)
    config = FitConfig()
    config.kernel.components = 20
    splits = holdout_splits(80, True, origins=3)
    batch = [("linear", {"kernel.trend": "linear"}), ("none", {"kernel.trend": "none"})]
    seen = []  # progress: each candidate as soon as all its folds are in, in order
    plain = evaluate_many(x, y, config, batch, splits, done=seen.append)
    assert not any(e.stopped for e in plain)
    assert [(e.name, e.folds) for e in seen] == [(e.name, e.folds) for e in plain]
    bar = [0.5 * m / RACE_FACTOR for m in plain[1].folds]  # "none" is behind on fold 1
    seen.clear()
    raced = evaluate_many(x, y, config, batch, splits, bars=[None, bar], done=seen.append)
    assert seen == raced  # a race's, once every fold is in
    assert raced[0].folds == plain[0].folds and not raced[0].stopped
    assert raced[1].stopped and raced[1].folds == plain[1].folds[:1]
    assert raced[1].counts == plain[1].counts[:1]
    assert raced[1].bar_mse == pytest.approx(bar[0], rel=1e-12) and raced[0].bar_mse is None


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


def test_held_out_fits_count_their_messages_as_the_final_fit_does(tmp_path, capsys):
    """An evaluation's bits are its fits' ``bits_sent``; metrics.json reports their sum."""
    import json

    from distgp.cli import main
    from distgp.driver import fit
    from distgp.holdout import evaluate_many

    x, y = trending_season(64)
    config = FitConfig()
    config.kernel.components = 20
    config.consensus.agents = 2
    config.backend.name = "inline"
    splits = holdout_splits(len(y), True, origins=2)
    candidates = [("linear", {"kernel.trend": "linear"})]
    (e,) = evaluate_many(x, y, config, candidates, splits)
    trial = FitConfig()
    trial.kernel.components, trial.kernel.trend = 20, "linear"
    trial.consensus.agents, trial.backend.name = 2, "inline"
    direct = [fit(x[train], y[train], trial, X_test=x[held]).bits_sent for train, held in splits]
    assert e.bits == sum(direct) > 0
    data = tmp_path / "s.csv"
    data.write_text("t,y\n" + "".join(f"{a},{b}\n" for a, b in zip(x[:, 0], y, strict=True)))
    argv = ["fit", "--data", str(data), "--agents", "2", "--backend", "inline", "--no-plots"]
    assert main([*argv, "--components", "20", "--quiet", "--out", str(tmp_path / "o")]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["tune_evaluations"] > 1 and metrics["bits_sent_held_out"] > metrics["bits_sent"]
