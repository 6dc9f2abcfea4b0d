"""Quantiser (unbiased, sparse-preserving, bit accounting) and the ADMM coordinator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgp.consensus import ADMMCoordinator, ADMMOptions, Quantizer, float_bits
from distgp.exceptions import ConfigError


@pytest.mark.parametrize("quantizer", [Quantizer(delta=0.05), Quantizer(bits=4), Quantizer(bits=8)])
def test_quantizer_is_unbiased_and_keeps_zeros(quantizer):
    x = np.array([0.0, 1e-4, 0.0123, 0.3, 0.77, 2.5, 0.0])
    rng = np.random.default_rng(0)
    draws = np.array([quantizer(x, rng)[0] for _ in range(20000)])
    assert np.all(draws[:, [0, 6]] == 0.0)
    assert np.allclose(draws.mean(0), x, rtol=0.03, atol=2e-5)
    # every draw is one of the two neighbouring levels
    spread = draws.max(0) - draws.min(0)
    assert np.all(spread <= 2 * quantizer.resolution(x) + 1e-12)


def test_quantizer_is_seeded():
    q = Quantizer(bits=6)
    x = np.linspace(0, 1, 50)
    a = q(x, np.random.default_rng(3))[0]
    b = q(x, np.random.default_rng(3))[0]
    assert np.array_equal(a, b)


def test_bits_mode_levels_are_log_uniform_and_clipped():
    q = Quantizer(bits=3, value_range=(0.01, 1.0))
    assert len(q.levels) == 8 and q.levels[0] == 0.0
    ratios = q.levels[2:] / q.levels[1:-1]
    assert np.allclose(ratios, ratios[0])
    values, _ = q(np.array([5.0]), np.random.default_rng(0))
    assert values[0] == 1.0 and q.clipped == 1


def test_message_bits_are_whole_and_choose_the_cheapest_code():
    q = Quantizer(bits=8)
    dense = np.arange(1, 101)  # no zeros: dense code, 8 bits each
    assert q.message_bits(dense) == 800
    sparse = np.zeros(1000, dtype=int)
    sparse[[3, 500]] = 7
    # index list: 32-bit count + 2 x (10 index bits + 8 code bits)
    assert q.message_bits(sparse) == 32 + 2 * (10 + 8)
    half = np.zeros(100, dtype=int)
    half[::2] = 9
    assert q.message_bits(half) == 100 + 50 * 8  # bitmap + codes
    d = Quantizer(delta=0.1)
    codes = np.array([0, 3, 7, 1])  # width ceil(log2 8) = 3 bits dense, plus the width header
    assert d.message_bits(codes) == 6 + 4 * 3
    assert float_bits(10) == 640


@pytest.mark.parametrize(
    "kwargs",
    [{"bits": 0}, {"bits": 33}, {"delta": 0.0}, {"delta": -1.0}, {}, {"bits": 4, "delta": 0.1}],
)
def test_quantizer_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        Quantizer(**kwargs)


def quadratic_admm(quantizer, agents=4, D=6, seed=0, rounds=200):
    """Consensus of quadratic local costs a_j/2 ||theta - c_j||^2, solved exactly per agent."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, size=agents)
    c = rng.uniform(0.1, 1.0, size=(agents, D))
    target = (a[:, None] * c).sum(0) / a.sum()
    coordinator = ADMMCoordinator(
        theta0=np.full(D, 0.5),
        lower=np.zeros(D),
        agents=agents,
        quantizer=quantizer,
        options=ADMMOptions(max_rounds=rounds, abs_tol=1e-6, rel_tol=1e-6),
        rho=1.0,
        seed=seed,
    )
    while not coordinator.done:
        uploads, bits = {}, {}
        for j in range(agents):
            _, z, dual, rho = coordinator.request(j)
            theta = (a[j] * c[j] - dual + rho * z) / (a[j] + rho)
            if quantizer is None:
                uploads[j], bits[j] = theta, float_bits(D)
            else:
                uploads[j], bits[j] = quantizer(
                    theta, np.random.default_rng([seed, j, coordinator.round])
                )
        coordinator.update(uploads, bits, {j: 0.0 for j in range(agents)})
    return coordinator, target


def test_admm_reaches_the_consensus_optimum_with_float_messages():
    coordinator, target = quadratic_admm(None)
    assert coordinator.converged
    assert np.allclose(coordinator.z, target, atol=1e-4)
    records = coordinator.history
    assert all(r.bits == r.bits_float64 for r in records)


def test_quantized_admm_converges_near_the_optimum_with_fewer_bits():
    coordinator, target = quadratic_admm(Quantizer(bits=8))
    assert np.allclose(coordinator.z, target, rtol=0.1)
    sent = sum(r.bits for r in coordinator.history)
    full = sum(r.bits_float64 for r in coordinator.history)
    assert sent <= full / 8 + 6 * 64 * 4  # 8-bit codes plus a few penalty broadcasts


def test_coordinator_state_round_trip():
    coordinator, _ = quadratic_admm(Quantizer(bits=8), rounds=5)
    clone = ADMMCoordinator(
        np.full(6, 0.5), np.zeros(6), 4, Quantizer(bits=8), ADMMOptions(max_rounds=5), 1.0
    )
    clone.restore(coordinator.state(), coordinator.history)
    assert np.array_equal(clone.z, coordinator.z) and clone.rho == coordinator.rho
    assert np.array_equal(clone.duals, coordinator.duals) and clone.round == coordinator.round


def test_partial_participation_keeps_the_last_upload():
    coordinator = ADMMCoordinator(np.full(3, 0.5), np.zeros(3), 2, None, ADMMOptions(), rho=1.0)
    coordinator.update({0: np.ones(3), 1: np.zeros(3)}, {0: 192, 1: 192}, {0: 0.0, 1: 0.0})
    z_before = coordinator.z.copy()
    dual1 = coordinator.duals[1].copy()
    record = coordinator.update({0: 2 * np.ones(3)}, {0: 192}, {0: 0.0})
    assert record.participants == 1 and math.isnan(record.loss)
    assert np.array_equal(coordinator.duals[1], dual1)  # the absent agent's dual is untouched
    assert not np.array_equal(coordinator.z, z_before)
    resync = coordinator.update({0: np.ones(3), 1: np.zeros(3)}, {0: 192, 1: 192}, {0: 0.0, 1: 0.0})
    assert "agent 1 resynchronised" in resync.events
