"""Evaluators (inline and Ray agents) and the optimisation loop around the bandit."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from distgp.agents.evaluators import (
    InlineEvaluator,
    RayEvaluator,
    _RayEvaluationAgent,
    make_evaluator,
)
from distgp.bandit import BKB
from distgp.bandit.config import OptimizeConfig
from distgp.bandit.problems import make_problem
from distgp.exceptions import BackendError, ConfigError
from distgp.optimize.loop import optimize


def picky(params: dict, index: int) -> float:
    """Fails on odd indices (an exception on index 1, NaN on the others)."""
    if index == 1:
        raise ZeroDivisionError("division by zero")
    return math.nan if index % 2 else params["x"] * 2.0


JOBS = [(i, {"x": float(i)}) for i in range(6)]


def check_evaluations(evaluator) -> None:
    results = evaluator.evaluate(JOBS)
    assert [r.index for r in results] == list(range(6))
    assert [r.agent for r in results] == [0, 1, 0, 1, 0, 1]
    assert results[1].error == "ZeroDivisionError: division by zero"
    assert results[3].error == "the objective returned nan" and math.isnan(results[3].value)
    assert [r.value for r in results[::2]] == [0.0, 4.0, 8.0]
    assert evaluator.observations(0) == [({"x": 0.0}, 0.0), ({"x": 2.0}, 4.0), ({"x": 4.0}, 8.0)]
    assert evaluator.observations(1) == []


def test_inline_agents_evaluate_and_keep_their_observations():
    check_evaluations(InlineEvaluator(picky, agents=2))


def test_ray_agents_evaluate_and_keep_their_observations(ray_local):
    with RayEvaluator(picky, agents=2) as evaluator:
        check_evaluations(evaluator)
    assert ray_local.is_initialized()  # the session's Ray instance is left running


def test_a_dead_ray_agent_is_restarted_and_its_jobs_run_again(ray_local):
    with RayEvaluator(picky, agents=2) as evaluator:
        ray_local.kill(evaluator._actors[0], no_restart=True)  # its process is lost
        results = evaluator.evaluate(JOBS)
        assert [r.value for r in results[::2]] == [0.0, 4.0, 8.0]  # not failed evaluations
        assert results[1].error == "ZeroDivisionError: division by zero"  # still a failure
        assert len(evaluator.observations(0)) == 3


def test_a_ray_agent_whose_replacement_does_not_start_stops_the_run(ray_local, monkeypatch):
    from distgp.agents import backends

    monkeypatch.setattr(backends, "START_TIMEOUT", 0.5)
    with RayEvaluator(picky, agents=1) as evaluator:
        never = ray_local.remote(_RayEvaluationAgent).options(num_cpus=1000)  # not schedulable
        evaluator._remote = never
        ray_local.kill(evaluator._actors[0], no_restart=True)
        with pytest.raises(BackendError, match="agent 0 died and its replacement did not start"):
            evaluator.evaluate(JOBS[:1])


def test_a_reward_is_a_real_number_and_nothing_else():
    from fractions import Fraction

    from distgp.agents.evaluators import reward
    from distgp.exceptions import ObjectiveError

    numbers = [1, 1.5, np.float32(2.0), np.int64(3), np.array(4.0), Fraction(1, 2)]
    assert [reward(v) for v in numbers] == [1.0, 1.5, 2.0, 3.0, 4.0, 0.5]
    assert math.isnan(reward(math.nan))
    wrong = [("1.5", "str"), (True, "bool"), (np.array(True), "bool"), (None, "NoneType")]
    wrong += [([1.0], "list"), ((1.0,), "tuple"), (1j, "complex"), (np.ones(1), "ndarray")]
    for value, kind in wrong:
        with pytest.raises(ObjectiveError, match=f"returned {kind} .*, not a real number"):
            reward(value)


def test_an_evaluation_of_the_wrong_type_is_marked_to_stop_the_run():
    ev = InlineEvaluator(lambda params, index: "1.5").evaluate([(0, {"x": 0.0})])[0]
    assert ev.stop and ev.failed and "returned str '1.5'" in ev.error


def test_make_evaluator_checks_its_arguments():
    with pytest.raises(ConfigError, match="needs the ray backend"):
        make_evaluator("inline", picky, address="auto")
    with pytest.raises(ConfigError, match="unknown backend"):
        make_evaluator("mpi", picky)
    with pytest.raises(ConfigError, match="at least 1"):
        InlineEvaluator(picky, agents=0)


def run_loop(**changes) -> tuple:
    config = OptimizeConfig(function="branin", budget=40, seed=0)
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        setattr(getattr(config, section) if key else config, key or section, value)
    problem = make_problem(config.validate())
    return problem, optimize(problem, config, InlineEvaluator(problem.objective, 2))


def test_loop_records_every_evaluation_and_regret():
    problem, result = run_loop()
    assert result.evaluations == 40 and result.failures == 0
    regrets = [r.regret for r in result.records]
    assert result.simple_regret == pytest.approx(min(regrets))
    assert result.cumulative_regret == pytest.approx(sum(regrets))
    assert result.best_value == pytest.approx(problem.optimal_value + result.simple_regret)


def test_local_arms_grow_the_arm_set():
    _, result = run_loop(arms__local=5, bandit__beta=3.0)
    assert result.records[-1].arms == 2000 + 5 * 39


def test_gsmp_refits_warm_start_on_the_agents_observations():
    _, result = run_loop(
        kernel__name="gsmp",
        kernel__refit_every=10,
        agents__count=2,
        agents__backend="inline",
        bandit__batch=True,
    )
    assert result.refits >= 2 and not result.events
    assert np.isfinite(result.simple_regret)


def test_local_arms_only_where_no_arm_is_and_repeats_follow_the_noise():
    from distgp.bandit.spaces import new_points
    from distgp.optimize.loop import repeats

    arms = np.array([[0.0, 0.0], [0.5, 0.5]])
    points = np.array([[0.5, 0.5], [0.2, 0.2], [0.2, 0.2], [1.0, 1.0]])
    np.testing.assert_array_equal(new_points(points, arms), [[0.2, 0.2], [1.0, 1.0]])
    assert not repeats(OptimizeConfig(function="branin"))
    assert repeats(OptimizeConfig(function="branin", noise_std=0.1))
    assert not repeats(OptimizeConfig(function="mod:fn"))
    config = OptimizeConfig(function="mod:fn")
    config.bandit.repeat = True
    assert repeats(config)


def test_optimize_on_a_deterministic_function_never_repeats_a_configuration():
    config = OptimizeConfig(function="branin", budget=30, seed=0)
    config.kernel.name = "rbf"
    config.arms.count = 200
    problem = make_problem(config.validate())
    result = optimize(problem, config, InlineEvaluator(problem.objective))
    points = [tuple(r.params.values()) for r in result.records]
    assert len(points) == len(set(points)) == 30
    assert result.simple_regret < 1.0


def test_loop_on_a_device_resumes_there_and_matches_the_cpu(monkeypatch):
    """``bandit.device`` places BKB's embedding; a resumed run puts it back there (the device
    is the run's setting, not part of the saved state) and the records equal the CPU run's."""
    pytest.importorskip("torch")
    states = []

    def run(device: str, resume=None):
        config = OptimizeConfig(function="branin", budget=24, seed=0)
        config.kernel.name, config.arms.count, config.bandit.device = "rbf", 300, device
        problem = make_problem(config.validate())
        evaluator = InlineEvaluator(problem.objective)
        # a checkpoint is written at once: keep a copy, not the live arrays
        return optimize(
            problem,
            config,
            evaluator,
            save=lambda s: states.append(copy.deepcopy(s)),
            resume=resume,
        )

    cpu = run("cpu")
    halfway = states[len(states) // 2]
    placed = []
    move = BKB.to
    monkeypatch.setattr(BKB, "to", lambda self, device: placed.append(device) or move(self, device))
    resumed = run("torch:cpu", resume=halfway)
    assert placed == ["torch:cpu"]
    assert [r.params for r in resumed.records] == [r.params for r in cpu.records]
    assert resumed.best_value == cpu.best_value
