"""Wire encoding, differential quantisation and the ADMM coordinator, free of any agent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from distgp.consensus import ADMMCoordinator, ADMMOptions, DeltaCoder, decode, encode
from distgp.consensus.admm import Penalty, RoundReply
from distgp.consensus.wire import WireError, dense_float64_size, float64_size
from distgp.exceptions import ConfigError, NumericalError


def test_messages_round_trip_through_bytes():
    message = [
        "round",
        [3, None, True, 1.5, "text", {"a": np.arange(6.0).reshape(2, 3)}, np.asarray(2.5)],
    ]
    back = decode(encode(message))
    assert back[0] == "round" and back[1][:5] == [3, None, True, 1.5, "text"]
    assert np.array_equal(back[1][5]["a"], np.arange(6.0).reshape(2, 3))
    assert back[1][6].shape == () and float(back[1][6]) == 2.5
    with pytest.raises(WireError):
        decode(encode(message)[:-3])
    with pytest.raises(WireError):
        encode(object())


@pytest.mark.parametrize("coder", [DeltaCoder(), DeltaCoder(bits=4), DeltaCoder(delta=1e-3)])
def test_both_ends_keep_identical_copies_and_zeros_stay_exact(coder):
    rng = np.random.default_rng(0)
    target = np.where(rng.random(50) < 0.6, 0.0, rng.gamma(1.0, 1.0, 50))
    sender, receiver = np.zeros(50), np.zeros(50)
    for step in range(30):
        message = decode(encode(coder.encode(target, sender, np.random.default_rng(step))))
        sender = DeltaCoder.apply(coder.encode(target, sender, np.random.default_rng(step)), sender)
        receiver = DeltaCoder.apply(message, receiver)
        assert np.array_equal(sender, receiver)
    assert np.array_equal(receiver == 0, target == 0)
    if coder.delta is None:  # innovation coding: the error vanishes as the target settles
        assert np.abs(receiver - target).max() < 1e-9 * target.max()


def test_quantised_changes_are_unbiased():
    coder = DeltaCoder(bits=3)
    target, reference = np.array([0.3, 1.0, 0.05]), np.array([0.1, 0.2, 0.1])
    draws = np.array(
        [
            DeltaCoder.apply(coder.encode(target, reference, np.random.default_rng(s)), reference)
            for s in range(20000)
        ]
    )
    assert np.allclose(draws.mean(0), target, atol=3e-3)


def test_fair_comparator_prices_the_same_support_coding_in_float64():
    target = np.r_[np.zeros(400), np.linspace(0.1, 1.0, 100)]
    reference = 0.9 * target  # the receiver's copy: same support, so only fields travel
    message = DeltaCoder(bits=4).encode(target, reference, np.random.default_rng(0))
    exact = DeltaCoder().encode(target, reference, None)
    assert float64_size(message) == len(encode(exact))
    assert len(encode(message)) < float64_size(message) / 8
    first = DeltaCoder(bits=4).encode(target, np.zeros(500), np.random.default_rng(0))
    assert float64_size(first) == len(encode(DeltaCoder().encode(target, np.zeros(500), None)))
    assert dense_float64_size(message) > float64_size(message)


@pytest.mark.parametrize("delta", [1e-20, 1e-100, 1e-300])
def test_fixed_step_coder_refuses_codes_beyond_64_bits(delta):
    """A step too fine for the change would overflow int64 codes (garbage that both ends apply
    alike, so the residual test passes): the encoder raises instead of casting."""
    target, reference = np.array([0.7, 0.2, 0.1]), np.array([0.5, 0.3, 0.1])
    with pytest.raises(NumericalError, match="more than the 64-bit codes hold"):
        DeltaCoder(delta=delta).encode(target, reference, np.random.default_rng(0))


def test_fixed_step_coder_at_the_finest_accepted_step_round_trips():
    target, reference = np.array([3.0, 0.2, 0.1]), np.array([0.5, 0.3, 0.1])
    coder = DeltaCoder(delta=1e-12)
    message = decode(encode(coder.encode(target, reference, np.random.default_rng(0))))
    assert message.width < 64
    assert np.allclose(DeltaCoder.apply(message, reference), target, atol=1e-11)


@pytest.mark.parametrize("coder", [DeltaCoder(bits=8), DeltaCoder(delta=0.01)])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_quantised_coder_refuses_non_finite_weights(coder, bad):
    with pytest.raises(NumericalError, match="non-finite weight"):
        coder.encode(np.array([bad, 0.2]), np.array([0.5, 0.3]), np.random.default_rng(0))


def test_far_from_stationary_flag_needs_both_signals():
    """A converged consensus is flagged only when its gradient exceeds its scale and the primal
    tolerance it met grew far past its absolute part (values measured in driver.py's note)."""
    from distgp.driver import unsettled_consensus, unsettled_note

    abs_part = 1e-3
    assert unsettled_consensus(5.1, 3.24 * abs_part * 1000, abs_part)  # far-apart shards
    assert unsettled_consensus(8.9, 1.66 * abs_part * 1000, abs_part)
    assert not unsettled_consensus(3.0, 1.09 * abs_part, abs_part)  # builtin:co2 over 2 agents
    assert not unsettled_consensus(7.2, 2.35 * abs_part, abs_part)  # --delta 0.5
    assert not unsettled_consensus(0.42, 1.52 * abs_part, abs_part)  # airfoil600 over 4 agents
    assert not unsettled_consensus(0.5, 1000 * abs_part, abs_part)
    assert not unsettled_consensus(float("nan"), 1000 * abs_part, abs_part)
    note = unsettled_note(5.1, 0.01)
    assert "\n" not in note and "5.1 of its scale" in note and "--rho" in note


@pytest.mark.parametrize(
    "kwargs", [{"bits": 1}, {"bits": 40}, {"delta": -1.0}, {"bits": 4, "delta": 0.1}]
)
def test_coder_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        DeltaCoder(**kwargs)


def quadratic_admm(coder, agents=4, D=6, seed=0, rounds=300):
    """Consensus of quadratic local costs a_j/2 ||x - c_j||^2, each agent solving exactly with
    its own dual, exchanging only Packed changes."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, size=agents)
    c = rng.uniform(0.1, 1.0, size=(agents, D))
    target = (a[:, None] * c).sum(0) / a.sum()
    options = ADMMOptions(
        max_rounds=rounds, abs_tol=1e-7, rel_tol=1e-7, rho=1.0, curvature_rounds=(2,)
    )
    coordinator = ADMMCoordinator(np.full(D, 0.5), np.zeros(D), agents, coder, options, 1.0)
    state = [
        {"z": np.zeros(D), "v": np.zeros(D), "u": np.zeros(D), "x": None, "rho": None}
        for _ in range(agents)
    ]
    while not coordinator.done:
        replies = {}
        for j, request in coordinator.requests(list(range(agents))).items():
            s = state[j]
            if request.resync:
                s.update(z=np.zeros(D), v=np.zeros(D), u=np.zeros(D), x=None, rho=None)
            s["z"] = DeltaCoder.apply(request.z, s["z"])
            z = np.maximum(s["z"], 0.0)
            residual = None
            if s["x"] is not None:
                s["u"] = s["u"] + s["x"] - z
                residual = float(np.sum((s["x"] - z) ** 2))
            if request.rho is not None:  # a new penalty: the unscaled dual rho u stays fixed
                if isinstance(request.rho, Penalty):
                    s["penalty"] = request.rho
                else:
                    s["penalty"] = dataclasses.replace(s["penalty"], scale=request.rho)
                new = s["penalty"].values()
                if s["rho"] is not None:
                    s["u"] = s["u"] * s["rho"] / new
                s["rho"] = new
            rho = s["rho"]
            s["x"] = (a[j] * c[j] + rho * (z - s["u"])) / (a[j] + rho)
            rng = np.random.default_rng([seed, j, request.round])
            message = coder.encode(s["x"] + s["u"], s["v"], rng)
            s["v"] = DeltaCoder.apply(message, s["v"])
            replies[j] = RoundReply(
                request.round,
                message,
                residual,
                float(s["x"] @ s["x"]),
                float(np.sum((rho * s["u"]) ** 2)),
                0.0,
                np.full(D, a[j]) if request.curvature else None,  # the exact curvature
            )
            replies[j] = RoundReply.from_wire(decode(encode(replies[j].to_wire())))
        coordinator.update(replies)
    return coordinator, target


@pytest.mark.parametrize("coder", [DeltaCoder(), DeltaCoder(bits=4)])
def test_admm_meets_the_unwidened_stopping_rule_at_the_optimum(coder):
    coordinator, target = quadratic_admm(coder)
    assert coordinator.converged and coordinator.round < 300
    assert np.allclose(coordinator.consensus, target, atol=1e-5)
    last = coordinator.history[-1]
    assert last.primal_residual <= last.primal_tol and last.dual_residual <= last.dual_tol


def test_coordinator_state_round_trip():
    coordinator, _ = quadratic_admm(DeltaCoder(bits=8), rounds=5)
    clone = ADMMCoordinator(
        np.full(6, 0.5), np.zeros(6), 4, DeltaCoder(bits=8), ADMMOptions(max_rounds=5), 1.0
    )
    clone.restore(coordinator.state(), coordinator.history)
    assert np.array_equal(clone.z_hat, coordinator.z_hat)
    assert np.array_equal(clone.v_hat, coordinator.v_hat) and clone.round == coordinator.round
    assert np.array_equal(clone.rho, coordinator.rho) and clone.penalty == coordinator.penalty


@pytest.mark.parametrize(("balance_rounds", "doubled"), [(0, False), (19, False), (20, True)])
def test_residual_balancing_ends_at_balance_rounds(balance_rounds, doubled):
    options = ADMMOptions(balance_rounds=balance_rounds)
    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, DeltaCoder(), options, 1.0)
    coordinator.round = 20
    before = coordinator.penalty.scale
    coordinator._balance(10.0, 1.0)  # the primal residual dominates: the penalty would double
    assert (coordinator.penalty.scale == 2 * before) == doubled
    coordinator._last_change = 0
    coordinator._balance(0.1, 5.0)  # a creeping consensus: halved, unless balancing is off
    assert (coordinator.penalty.scale < before) == (balance_rounds > 0 and not doubled)


@pytest.mark.parametrize(
    ("residuals", "loosen_late", "factor"),
    [
        ((0.1, 5.0), True, 0.5),  # agents agree, the consensus still moves: halve the penalty
        ((0.1, 5.0), False, 1.0),  # frozen as before
        ((2.0, 9.0), True, 1.0),  # the agents do not agree yet: no loosening
        ((0.9, 2.0), True, 1.0),  # the dual residual does not dominate threefold
        ((0.1, 0.9), True, 1.0),  # both within their tolerances: nothing to loosen
        ((10.0, 1.0), True, 1.0),  # never stiffened after balance_rounds
    ],
)
def test_after_balance_rounds_the_penalty_only_loosens_when_the_consensus_creeps(
    residuals, loosen_late, factor
):
    options = ADMMOptions(balance_rounds=30, loosen_late=loosen_late)
    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, DeltaCoder(), options, 1.0)
    coordinator.round = 40
    before = coordinator.penalty.scale
    coordinator._balance(*residuals)
    assert coordinator.penalty.scale == factor * before
    if factor != 1.0:  # at most every balance_every rounds
        coordinator.round += options.balance_every - 1
        coordinator._balance(*residuals)
        assert coordinator.penalty.scale == factor * before


def test_dropped_agent_leaves_the_consensus():
    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, DeltaCoder(), ADMMOptions(), 1.0)
    coordinator.requests([0, 1])
    ones = DeltaCoder().encode(np.ones(3), np.zeros(3), None)
    zeros = DeltaCoder().encode(np.zeros(3), np.zeros(3), None)
    reply = lambda m: RoundReply(1, m, None, 0.0, 0.0, 0.0)  # noqa: E731
    coordinator.update({0: reply(ones), 1: reply(zeros)})
    assert np.allclose(coordinator.z_target, 0.5)
    coordinator.drop(1)
    coordinator.requests([0])
    same = DeltaCoder().encode(np.ones(3), np.ones(3), None)
    record = coordinator.update({0: RoundReply(2, same, 0.0, 1.0, 0.0, 0.0)})
    assert record.participants == 1 and np.allclose(coordinator.z_target, 1.0)


def _tracked_round(coordinator: ADMMCoordinator, objective: float, primal: float) -> None:
    """A round whose consensus is all ``round`` and whose objective and primal residual are
    given, as far as the best-round tracking sees it."""
    from distgp.consensus.admm import RoundRecord

    coordinator.round += 1
    coordinator.z_used = np.full(3, float(coordinator.round))
    record = RoundRecord(coordinator.round, 1.0, primal, 1.0, 0.1, 0.1, 0, 0, 3, 2, objective)
    coordinator._track_best(record)


def test_after_an_agent_leaves_the_best_round_is_one_of_the_remaining_agents():
    """The objective is a sum over the agents in the run: a larger sum over three agents is no
    bar to the rounds of the two left, and their residuals start a new minimum."""
    from distgp.consensus.admm import DIVERGENCE_GROWTH, DIVERGENCE_ROUNDS

    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 3, DeltaCoder(), ADMMOptions(), 1.0)

    _tracked_round(coordinator, -30.0, 1e-3)  # three agents: a sum of three losses
    coordinator.drop(2)
    assert np.all(coordinator.consensus == 1.0)  # nothing newer yet
    for objective in (-18.0, -19.0, -19.5):  # two agents: sums of two, the last the lowest
        _tracked_round(coordinator, objective, 1.0)
    assert coordinator.best_round == 4 and np.all(coordinator.consensus == 4.0)
    for _ in range(DIVERGENCE_ROUNDS - 1):  # residuals measured against the two agents' own
        _tracked_round(coordinator, -19.0, 0.5 * DIVERGENCE_GROWTH)
    assert not coordinator.diverged


def test_a_passing_jump_of_the_primal_residual_is_no_divergence():
    """A settled 8-bit run (primal residual 3.5e-7) whose penalty halved late jumped to 2.3e-3
    for a round and was stopped as diverged, telling the user to add bits, although the next
    rounds brought the residual back (the audit's run then converged at round 136). A residual
    within its tolerance is agreement, however far above its smallest."""
    from distgp.consensus.admm import DIVERGENCE_GROWTH, DIVERGENCE_PERSIST, DIVERGENCE_ROUNDS

    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, DeltaCoder(), ADMMOptions(), 1.0)
    _tracked_round(coordinator, -10.0, 1e-4)  # the lowest objective: round 1
    for _ in range(DIVERGENCE_ROUNDS):
        _tracked_round(coordinator, -9.0, 1e-4)
    for _ in range(DIVERGENCE_PERSIST - 1):  # far above its smallest, above its tolerance
        _tracked_round(coordinator, -9.0, 10 * DIVERGENCE_GROWTH * 1e-4)
    _tracked_round(coordinator, -9.0, 1e-3)  # back down before it counts
    assert not coordinator.diverged
    for _ in range(3 * DIVERGENCE_PERSIST):  # above its smallest, within its tolerance (0.1)
        _tracked_round(coordinator, -9.0, 0.05)
    assert not coordinator.diverged
    for _ in range(DIVERGENCE_PERSIST):  # persistently apart: diverged
        _tracked_round(coordinator, -9.0, 1.0)
    assert coordinator.diverged and coordinator.best_round == 1


def test_an_unconverged_run_ends_on_its_lowest_objective_and_stops_when_it_diverges():
    from distgp.consensus.admm import DIVERGENCE_GROWTH, DIVERGENCE_ROUNDS

    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, DeltaCoder(), ADMMOptions(), 1.0)

    _tracked_round(coordinator, 10.0, 1.0)
    _tracked_round(coordinator, 5.0, 1.0)  # the lowest objective: round 2
    for _ in range(DIVERGENCE_ROUNDS - 1):
        _tracked_round(coordinator, 50.0, 10 * DIVERGENCE_GROWTH)
    assert not coordinator.done and np.all(coordinator.consensus == 2.0)
    _tracked_round(coordinator, 60.0, 10 * DIVERGENCE_GROWTH)
    assert coordinator.diverged and coordinator.done and np.all(coordinator.consensus == 2.0)
    clone = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, DeltaCoder(), ADMMOptions(), 1.0)
    clone.restore(coordinator.state(), coordinator.history)
    assert clone.diverged and clone.best_round == 2 and np.all(clone.consensus == 2.0)
