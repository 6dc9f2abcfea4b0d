"""BKB through Optuna (BKBSampler) and Ray Tune (BKBSearch), end to end on tiny studies."""

from __future__ import annotations

import importlib.util
import pickle
import re

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")


def quadratic(trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    n = trial.suggest_int("n", 0, 10)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if trial.number == 6:
        raise ValueError("this trial crashes")
    return (x - 1.0) ** 2 + (n - 3) ** 2 + np.log10(lr) ** 2 + (kind == "b")


def optuna_study(seed: int, trials: int = 25):
    from distgp.integrations.optuna import BKBSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        sampler=BKBSampler(seed=seed, arms=500, warn_independent_sampling=False)
    )
    study.optimize(quadratic, n_trials=trials, catch=(ValueError,))
    return study


def test_optuna_sampler_end_to_end():
    study = optuna_study(0)
    bandit = study.sampler.bandit.bandit
    assert len(study.trials) == 25
    # the crash is told as a failure (the model counts it as the worst value so far)
    assert bandit.observations == 24 and bandit.failures == 1 and not bandit.pending
    assert study.best_value < 3.0
    assert set(study.best_params) == {"x", "n", "lr", "kind"}
    assert all(isinstance(t.params["n"], int) for t in study.trials)


def test_optuna_sampler_is_seeded_and_picklable():
    a, b = optuna_study(1, 12), optuna_study(1, 12)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    clone = pickle.loads(pickle.dumps(a.sampler))
    assert clone.bandit.bandit.observations == a.sampler.bandit.bandit.observations


def test_optuna_maximisation_and_fallback_warning(caplog):
    from distgp.integrations.optuna import BKBSampler

    study = optuna.create_study(direction="maximize", sampler=BKBSampler(seed=0, arms=200))
    with caplog.at_level("WARNING"):
        study.optimize(
            lambda t: (
                -((t.suggest_float("x", 0, 1) - 0.7) ** 2)
                + 0 * len(t.suggest_categorical("c", ["p", "q"]))
            ),
            n_trials=8,
        )
    assert study.best_value > -0.05
    assert "RandomSampler" not in caplog.text  # the categorical is part of the joint space
    assert {t.params["c"] for t in study.trials} <= {"p", "q"}


def test_optuna_conditional_parameter_goes_to_the_independent_sampler(caplog):
    from optuna.samplers import QMCSampler

    from distgp.integrations.optuna import BKBSampler

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 2:
            return x + trial.suggest_float("extra", 0, 1)
        return x

    sampler = BKBSampler(seed=0, arms=100, independent_sampler=QMCSampler(seed=0))
    study = optuna.create_study(sampler=sampler)
    with caplog.at_level("WARNING"):
        study.optimize(objective, n_trials=6)
    assert "QMCSampler" in caplog.text and "warn_independent_sampling" in caplog.text
    assert sampler.bandit.space.params[0].name == "x" and len(sampler.bandit.space.params) == 1


def test_optuna_pruned_and_failed_trials_are_failures_never_proposed_again():
    from distgp.integrations.optuna import BKBSampler

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 3 == 1:
            raise optuna.TrialPruned()
        if trial.number % 3 == 2:
            return float("nan")  # Optuna marks the trial failed
        return x

    study = optuna.create_study(sampler=BKBSampler(seed=0, arms=100))
    study.optimize(objective, n_trials=12)
    bandit = study.sampler.bandit.bandit
    assert bandit.observations == 4 and bandit.failures == 8 and not bandit.pending
    xs = [t.params["x"] for t in study.trials]
    assert len(set(xs)) == len(xs)  # before, a pruned trial's arm was proposed again and again


def test_optuna_search_leaves_the_region_where_trials_fail():
    from distgp.integrations.optuna import BKBSampler

    def objective(trial):  # the minimum lies where trials fail
        x = trial.suggest_float("x", 0, 1)
        if x > 0.6:
            raise ValueError("fails here")
        return (x - 0.8) ** 2

    study = optuna.create_study(sampler=BKBSampler(seed=0, arms=200))
    study.optimize(objective, n_trials=30, catch=(ValueError,))
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    assert failed <= 8 and study.best_params["x"] > 0.5


def test_optuna_categorical_choices_that_python_calls_equal():
    """Choices 1, True and 1.0 are equal in Python; encoded by index, they no longer make the
    bandit's space refuse the study (a ConfigError out of study.optimize)."""
    from distgp.integrations.optuna import BKBSampler

    study = optuna.create_study(sampler=BKBSampler(seed=0, arms=50))
    study.optimize(
        lambda t: (
            t.suggest_float("x", 0, 1) + (t.suggest_categorical("c", [1, True, 1.0, "x"]) == "x")
        ),
        n_trials=10,
    )
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {t.params["c"] for t in study.trials} <= {1, "x"}  # Optuna stores True as 1
    assert study.sampler.bandit.bandit.observations == 10
    # one arm per choice Optuna can record: proposing True would be recorded as 1 (index 0)
    assert study.sampler._codecs["c"].param.choices == (0, 3)


def test_optuna_small_spaces_and_a_second_study():
    from distgp.integrations.optuna import BKBSampler

    sampler = BKBSampler(seed=0, arms=100)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_int("k", 1, 3) - 2) ** 2, n_trials=8)
    ks = [t.params["k"] for t in study.trials]
    assert sorted(set(ks[:3])) == [1, 2, 3] and set(ks[3:]) == {2}  # then the best again
    other = optuna.create_study(sampler=sampler)
    with pytest.raises(ValueError, match=r"give study .* a sampler of its own"):
        other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1, catch=())


def test_optuna_multi_objective_is_refused():
    from distgp.integrations.optuna import BKBSampler

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=BKBSampler(seed=0))
    with pytest.raises(ValueError, match="multi-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1, catch=())


def test_optuna_trial_sampled_before_the_bandit_is_told_when_it_completes():
    from distgp.integrations.optuna import BKBSampler

    study = optuna.create_study(sampler=BKBSampler(seed=0, arms=50))
    early = [study.ask() for _ in range(2)]  # no completed trial yet: no joint space, no bandit
    for trial in early:
        trial.suggest_float("x", 0, 1)
    study.tell(early[0], 1.0)
    late = study.ask()
    late.suggest_float("x", 0, 1)  # the bandit starts here and is told early[0]
    study.tell(late, 2.0)
    study.tell(early[1], 3.0)  # completes after the last sampling: told by after_trial
    bandit = study.sampler.bandit.bandit
    assert bandit.observations == 3 and not bandit.pending
    assert sorted(-bandit.history["y"]) == [1.0, 2.0, 3.0]


def test_optuna_enqueued_value_outside_the_distribution_is_left_out_of_the_model(caplog):
    from distgp.integrations.optuna import BKBSampler

    study = optuna.create_study(sampler=BKBSampler(seed=0, arms=100))
    study.enqueue_trial({"x": 5.0})  # Optuna completes it, with a warning
    with caplog.at_level("WARNING"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=4, catch=())
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert all(0 <= t.params["x"] <= 1 for t in study.trials[1:])
    assert study.sampler.bandit.bandit.observations == 3  # trials 1-3; trial 0 stays out
    assert caplog.text.count("leaves completed trial 0 out of its model") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": "ucb"}, "algorithm must be one of bkb, gpucb, got 'ucb'"),
        ({"seed": 1.5}, "seed must be a non-negative integer or None, got 1.5"),
        ({"foo": 1}, "unknown option 'foo' for algorithm bkb; the options are batch, beta,"),
        ({"algorithm": "gpucb", "qbar": 2}, "unknown option 'qbar' for algorithm gpucb"),
        ({"arms": 1}, "arms must be at least 2, got 1"),
        ({"arms": -5}, "arms must be at least 2, got -5"),
        ({"arms": 2.5}, "arms must be a whole number, got 2.5"),  # was truncated to 2
        ({"local": -1}, "local must be non-negative, got -1"),
        ({"beta": -1}, "bandit.beta must be practical, theory or a positive, finite number"),
        ({"initial": 0}, "bandit.initial must be at least 1, got 0"),
        ({"qbar": 0}, "bandit.qbar must be positive and finite, got 0"),
    ],
)
def test_adapters_check_their_options_at_construction(options, message):
    """A raw KeyError/TypeError came out of the first trial (or the middle of Tuner.fit); a bad
    option value (``arms=1``, ``beta=-1``...) came out of trial 1, after trial 0 had run the
    objective, with the bandit's message, which the adapters now give at construction."""
    from distgp.exceptions import ConfigError
    from distgp.integrations.optuna import BKBSampler

    with pytest.raises(ConfigError, match=re.escape(message)):
        BKBSampler(**options)
    if importlib.util.find_spec("ray.tune") is not None:
        from distgp.integrations.tune import BKBSearch

        with pytest.raises(ConfigError, match=re.escape(message)):
            BKBSearch(metric="m", mode="max", **options)  # no space yet


STUDIES = 200  # threaded studies in the race test (about 1 in 20 broke before the lock)


def test_optuna_threaded_studies_never_corrupt_the_bandit():
    from distgp.integrations.optuna import BKBSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        x, y = trial.suggest_float("x", -2, 2), trial.suggest_float("y", -2, 2)
        if trial.number % 7 == 3:
            raise ValueError("this trial crashes")
        if trial.number % 7 == 5:
            raise optuna.TrialPruned()
        return (x - 0.3) ** 2 + (y + 0.5) ** 2

    corrupted = []
    for seed in range(STUDIES):
        sampler = BKBSampler(seed=seed, arms=64, warn_independent_sampling=False)
        study = optuna.create_study(sampler=sampler)
        try:
            study.optimize(objective, n_trials=12, n_jobs=2, catch=(ValueError,))
        except Exception as exc:  # anything the sampler raised in a worker thread
            corrupted.append((seed, repr(exc)))
            continue
        bandit = sampler.bandit.bandit
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        failed = len(study.trials) - complete  # crashed and pruned trials: told as failures
        if bandit.observations != complete or bandit.pending or bandit.failures != failed:
            corrupted.append((seed, bandit.observations, complete, bandit.pending))
    assert corrupted == []


# Tune starts a trial actor per trial: about 30 s on a busy 2-core box, kept in the default run
def test_tune_searcher_end_to_end(ray_local, tmp_path):
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.integrations.tune import BKBSearch

    def trainable(config):
        tune.report({"loss": (config["x"] - 1.0) ** 2 + config["nested"]["k"]})

    optimum = {"x": 1.0, "nested": {"k": 0}}
    searcher = BKBSearch(seed=0, arms=300, max_concurrent=2, points_to_evaluate=[optimum])
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(-3, 3), "nested": {"k": tune.randint(0, 3)}, "c": 5},
        tune_config=tune.TuneConfig(
            search_alg=searcher, metric="loss", mode="min", num_samples=4, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="bkb", verbose=0),
    )
    results = tuner.fit()
    best = results.get_best_result()
    assert len(results) == 4 and best.config["c"] == 5
    assert best.metrics["loss"] == 0.0 and best.config["nested"] == optimum["nested"]
    assert searcher.bandit.bandit.observations == 4
    assert best.metrics["loss"] == pytest.approx(
        -max(searcher.bandit.bandit.history["y"]), rel=1e-12
    )


def test_tune_searcher_batches_state_and_errors(tmp_path):
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.integrations.tune import BKBSearch

    space = {"x": tune.uniform(0, 1), "y": tune.loguniform(1e-3, 1), "c": tune.choice(["a", "b"])}
    searcher = BKBSearch(space, metric="m", mode="max", seed=0, arms=200, batch=True)
    assert searcher.set_search_properties("m", "max", space) is False  # already has a space
    first = searcher.suggest("t0")
    assert set(first) == {"x", "y", "c"} and 1e-3 <= first["y"] <= 1
    assert searcher.suggest("t1") is None  # the first batch (one arm, no data) is running
    searcher.on_trial_complete("t0", {"m": first["x"]})
    searcher.on_trial_complete("nobody", {"m": 1.0})  # unknown trial: ignored
    second = searcher.suggest("t2")
    searcher.on_trial_complete("t2", None, error=True)
    bandit = searcher.bandit.bandit
    assert bandit.observations == 1 and bandit.failures == 1
    searcher.add_evaluated_point({"x": 0.25, "y": 0.5, "c": "b"}, 0.9)
    told = searcher.bandit.params_of(int(bandit.history["arm"][-1]))  # added as an arm
    assert bandit.observations == 2 and told["c"] == "b"
    assert (told["x"], told["y"]) == pytest.approx((0.25, 0.5))
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    restored = BKBSearch(seed=0)
    restored.restore(str(path))
    for s in (searcher, restored):
        s.on_trial_complete("t3", {"m": 0.0})
    assert [searcher.suggest(f"a{i}") for i in range(3)] == [
        restored.suggest(f"a{i}") for i in range(3)
    ]
    assert second is not None


def test_tune_pruned_missing_metric_and_points_to_evaluate(tmp_path):
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.exceptions import ConfigError
    from distgp.integrations.tune import BKBSearch

    space = {"x": tune.uniform(0, 1), "opt": {"k": tune.randint(0, 4)}}
    points = [{"x": 0.5, "opt": {"k": 2}}, {"x": 0.123456, "opt": {"k": 0}}]
    searcher = BKBSearch(
        space, metric="loss", mode="min", seed=0, arms=100, points_to_evaluate=points
    )
    bandit = searcher.bandit.bandit
    assert [searcher.suggest("p0"), searcher.suggest("p1")] == points  # first, in order
    assert len(bandit.arms) == 102  # neither point is one of the 100 Sobol arms: both added
    searcher.on_trial_complete("p0", {"loss": 0.25})
    searcher.on_trial_complete("p1", {"loss": 0.5})
    assert bandit.observations == 2 and max(bandit.history["y"]) == -0.25

    third = searcher.suggest("t2")
    assert third not in points and bandit.pending
    searcher.on_trial_complete("t2", {"other": 1.0})  # stopped without the metric: pruned
    assert bandit.observations == 2 and bandit.failures == 1 and not bandit.pending
    assert searcher.suggest("t3") != third  # a pruned arm is not proposed again
    searcher.on_trial_complete("t3", None, error=True)  # errored without the metric: failed
    assert bandit.failures == 2
    searcher.suggest("t4")
    searcher.on_trial_complete("t4", {"loss": 0.1}, error=True)  # reported, then errored
    assert bandit.observations == 3

    searcher.add_evaluated_point({"x": 0.9, "opt": {"k": 1}}, 0.0, pruned=True)
    assert bandit.observations == 3 and bandit.failures == 2  # pruned: nothing recorded
    searcher.add_evaluated_point({"x": 0.9, "opt": {"k": 1}}, 0.0)
    assert bandit.observations == 4

    left = BKBSearch(space, metric="loss", mode="min", seed=0, points_to_evaluate=points)
    path = tmp_path / "state.pkl"
    left.save(str(path))
    restored = BKBSearch()
    restored.restore(str(path))
    assert restored.suggest("r0") == points[0]  # the points still to run survive a restore

    with pytest.raises(ConfigError, match=r"points_to_evaluate\[0\] does not set 'opt/k'"):
        BKBSearch(space, metric="loss", mode="min", points_to_evaluate=[{"x": 0.5}])
    with pytest.raises(
        ConfigError, match="point given to add_evaluated_point does not set 'opt/k'"
    ):  # KeyError
        searcher.add_evaluated_point({"x": 0.5}, 1.0)
    with pytest.raises(ConfigError, match=r"points_to_evaluate\[0\] sets 'x' to '0.5'; give a"):
        BKBSearch(space, metric="m", mode="min", points_to_evaluate=[{"x": "0.5", "opt": {"k": 1}}])


def test_tune_searcher_finishes_when_every_arm_is_used():
    """It raised once every arm was pending or evaluated; Tune expects None, then FINISHED."""
    pytest.importorskip("ray.tune")
    from ray import tune
    from ray.tune.search import Searcher

    from distgp.integrations.tune import BKBSearch

    space = {"c": tune.choice(["a", "b", "c"])}
    searcher = BKBSearch(space, metric="m", mode="max", seed=0, repeat=False)
    given = [searcher.suggest(f"t{i}") for i in range(3)]
    assert sorted(g["c"] for g in given) == ["a", "b", "c"]
    assert searcher.suggest("t3") is None  # the last arms are running
    for i in range(3):
        searcher.on_trial_complete(f"t{i}", {"m": float(i)})
    assert searcher.suggest("t4") == Searcher.FINISHED


def test_tune_searcher_proposes_no_configuration_twice_by_default():
    """BKBSearch kept the bandit's repeat=True: 12 of 30 trials re-ran an evaluated point."""
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.integrations.tune import BKBSearch

    def distinct(**options) -> int:
        searcher = BKBSearch(
            {"x": tune.uniform(0, 1), "c": 5},
            metric="loss",
            mode="min",
            seed=0,
            arms=50,
            **options,
        )
        xs = []
        for i in range(20):
            config = searcher.suggest(f"t{i}")
            xs.append(config["x"])
            searcher.on_trial_complete(f"t{i}", {"loss": (config["x"] - 0.3) ** 2})
        return len(set(xs))

    assert distinct() == 20
    assert distinct(repeat=True) < 20  # asked for: repeats allowed


def test_tune_searcher_with_a_space_takes_tune_metric_and_mode_and_keeps_constants():
    """A space given to the constructor refused Tune's metric/mode and dropped its constants."""
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.integrations.tune import BKBSearch

    space = {"x": tune.uniform(0, 1), "c": 5, "opt": {"k": tune.randint(0, 3), "name": "s"}}
    point = {"x": 0.5, "opt": {"k": 1}}
    searcher = BKBSearch(space, seed=0, arms=50, points_to_evaluate=[point])
    assert searcher.set_search_properties("loss", "min", {"seed": 1}) is True  # constants only
    assert (searcher.metric, searcher.mode) == ("loss", "min")
    assert searcher.set_search_properties("m", "max", {"y": tune.uniform(0, 1)}) is False
    assert (searcher.metric, searcher.mode) == ("loss", "min")  # already set: kept
    first = searcher.suggest("t0")
    assert first == {"x": 0.5, "c": 5, "opt": {"k": 1, "name": "s"}}
    second = searcher.suggest("t1")
    assert second["c"] == 5 and second["opt"]["name"] == "s" and set(second["opt"]) == {"k", "name"}
    own = BKBSearch(space, metric="m", mode="max", seed=0)
    assert own.set_search_properties("loss", "min", {"seed": 1}) is True
    assert (own.metric, own.mode) == ("m", "max")


def test_tune_searcher_saves_a_lambda_constant(tmp_path):
    """save used plain pickle: a lambda constant made Tuner.fit() raise PicklingError."""
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.integrations.tune import BKBSearch

    space = {"x": tune.uniform(0, 1), "fn": lambda v: (v - 0.3) ** 2}
    searcher = BKBSearch(space, metric="loss", mode="min", seed=0, arms=20)
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    restored = BKBSearch()
    restored.restore(str(path))
    config = restored.suggest("t0")
    assert config["fn"](0.3) == 0.0 and config["x"] == searcher.suggest("t0")["x"]


def test_tune_searcher_names_an_empty_randint_as_written():
    """It said 'low (1.0) must be below high (0.0)', a 0 the user never wrote."""
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.exceptions import ConfigError
    from distgp.integrations.tune import BKBSearch

    with pytest.raises(ConfigError, match=re.escape("parameter a: tune.randint(1, 1) is empty")):
        BKBSearch({"a": tune.randint(1, 1)}, metric="m", mode="max")


def test_tune_searcher_refuses_a_domain_inside_a_list():
    """It raised a raw TypeError (sequence item 1: expected str instance, int found)."""
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.exceptions import ConfigError
    from distgp.integrations.tune import BKBSearch

    space = {"x": tune.uniform(0, 1), "opt": {"layers": [8, tune.randint(1, 4)]}}
    with pytest.raises(ConfigError, match=r"inside a list \('opt/layers', item 1\); put the"):
        BKBSearch(space, metric="m", mode="max")


def test_tune_searcher_refuses_a_metric_that_is_not_a_number():
    pytest.importorskip("ray.tune")
    from ray import tune

    from distgp.exceptions import InputDataError
    from distgp.integrations.tune import BKBSearch

    searcher = BKBSearch({"x": tune.uniform(0, 1)}, metric="loss", mode="min", seed=0, arms=20)
    searcher.suggest("t0")
    with pytest.raises(InputDataError, match=r"the metric 'loss' is 'abc', not a number"):
        searcher.on_trial_complete("t0", {"loss": "abc"})
    with pytest.raises(InputDataError, match=r"the metric 'loss' is \[0.5\], not a number"):
        searcher.add_evaluated_point({"x": 0.5}, [0.5])
    for value in ("0.5", True):  # taken as 0.5 and 1.0 once
        with pytest.raises(InputDataError, match=f"the metric 'loss' is {value!r}, not a"):
            searcher.on_trial_complete("t0", {"loss": value})
    bandit = searcher.bandit.bandit
    assert bandit.observations == 0 and bandit.pending  # nothing told: the trial still runs
    searcher.on_trial_complete("t0", {"loss": 0.5})
    assert bandit.observations == 1 and max(bandit.history["y"]) == -0.5
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"loss": 10**400})  # an OverflowError once
    assert bandit.failures == 1
