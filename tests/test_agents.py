"""Agents and backends: idempotent rounds, privacy of messages, inline vs Ray, sharding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from distgp.agents import InlineBackend, RayBackend
from distgp.config import FitConfig
from distgp.data import shard_indices
from distgp.driver import fit
from distgp.exceptions import InputDataError
from tests.helpers import smooth_regression


def small_config(agents: int, backend: str = "inline", **consensus) -> FitConfig:
    config = FitConfig()
    config.kernel.components = 24
    config.consensus.agents = agents
    config.consensus.max_rounds = 8
    config.consensus.local_iterations = 4
    for key, value in consensus.items():
        setattr(config.consensus, key, value)
    config.backend.name = backend
    config.learn.max_iterations = 60
    return config


class RecordingBackend(InlineBackend):
    """Inline backend that keeps every value an agent returns."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def call(self, method, args, timeout=None):
        out = super().call(method, args, timeout)
        self.messages.extend((method, value) for value in out.values())
        return out


def leaves(value):
    """Arrays and scalars inside a message (dataclasses, tuples, dicts)."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from leaves(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    else:
        yield value


def test_agents_send_only_weight_sized_vectors_and_scalars():
    X, y = smooth_regression(n=66, dims=3)
    backend = RecordingBackend()
    result = fit(X, y, small_config(3), backend=backend)
    D = result.theta.size
    P = X.shape[1]
    assert backend.messages, "nothing was recorded"
    methods = set()
    for method, message in backend.messages:
        methods.add(method)
        for leaf in leaves(message):
            if isinstance(leaf, np.ndarray):
                assert leaf.ndim <= 1, (method, leaf.shape)
                allowed = {D, P} if method == "summary" else {D}
                assert leaf.size in allowed, (method, leaf.shape)
                assert not np.isin(leaf, y).any() and not np.isin(leaf, X).any()
            else:
                assert isinstance(leaf, (int, float, bool, str, np.integer, np.floating)), (
                    method,
                    type(leaf),
                )
                if isinstance(leaf, float):
                    assert leaf not in set(y.tolist())
    assert {"summary", "setup", "local_step", "evaluate"} <= methods
    # the only data-derived message before learning: n and moments of X and y
    summaries = [m for name, m in backend.messages if name == "summary"]
    assert len(summaries) == 3 and sum(s.n for s in summaries) == 66


def test_local_step_is_idempotent_per_round():
    X, y = smooth_regression(n=40, dims=2)
    backend = InlineBackend()
    fit(X, y, small_config(2), backend=backend)
    agent = backend.agent(0)
    z = np.r_[np.full(agent._objective.M, 0.01), 0.1]
    first = agent.local_step(100, z, np.zeros_like(z), 5.0)
    again = agent.local_step(100, z * 2, np.ones_like(z), 50.0)  # a retried call: cached answer
    assert again is first
    after = agent.local_step(101, z, np.zeros_like(z), 5.0)
    assert after.round == 101


def test_same_seed_same_weights_inline_and_ray(ray_local):
    X, y = smooth_regression(n=60, dims=2)
    inline = fit(X, y, small_config(3, "inline"))
    remote = fit(X, y, small_config(3, "ray"), backend=RayBackend())
    assert np.array_equal(inline.theta, remote.theta)
    assert inline.bits_sent == remote.bits_sent and inline.rounds == remote.rounds


def test_quantized_run_sends_fewer_bits_and_matches_float64():
    X, y = smooth_regression(n=90, dims=2)
    quantized = fit(X, y, small_config(3))
    exact = fit(X, y, small_config(3, quantize=False))
    assert quantized.bits_sent < exact.bits_sent / 6
    assert exact.bits_sent == exact.bits_float64
    Xt, yt = smooth_regression(n=40, dims=2, seed=5)
    mse_q = np.mean((quantized.model.predict(Xt) - yt) ** 2)
    mse_f = np.mean((exact.model.predict(Xt) - yt) ** 2)
    assert mse_q == pytest.approx(mse_f, rel=0.1)


def test_sharding_methods():
    random = shard_indices(10, 3, "random", seed=1)
    assert sorted(np.concatenate(random).tolist()) == list(range(10))
    assert [len(s) for s in random] == [4, 3, 3]
    contiguous = shard_indices(10, 2, "contiguous")
    assert contiguous[0].tolist() == [0, 1, 2, 3, 4]
    groups = np.array(["a", "b", "a", "c", "b", "c", "a"])
    by_site = shard_indices(7, 2, "column", groups=groups)
    assert by_site[0].tolist() == [0, 2, 3, 5, 6] and by_site[1].tolist() == [1, 4]


@pytest.mark.parametrize(
    "n,agents,method,match",
    [
        (5, 3, "random", "at least 6 training points"),
        (10, 0, "random", "at least 1"),
        (10, 2, "zigzag", "unknown shard method"),
    ],
)
def test_sharding_errors_name_the_fix(n, agents, method, match):
    with pytest.raises(InputDataError, match=match):
        shard_indices(n, agents, method)


def test_column_sharding_needs_enough_sites():
    with pytest.raises(InputDataError, match="2 distinct value"):
        shard_indices(4, 3, "column", groups=np.array([1, 1, 2, 2]))
