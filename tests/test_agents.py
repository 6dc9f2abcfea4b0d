"""Agents and backends: idempotent rounds, privacy of messages, inline vs Ray, sharding."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.agents import InlineBackend, RayBackend
from distgp.config import FitConfig
from distgp.consensus.admm import Penalty, RoundReply, RoundRequest
from distgp.consensus.quantizer import DeltaCoder
from distgp.consensus.wire import Packed, decode, encode
from distgp.data import shard_indices
from distgp.driver import fit
from distgp.exceptions import ConfigError, InputDataError
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


def leaves(value):
    """Arrays and scalars inside a decoded message (lists, maps, Packed changes)."""
    if isinstance(value, Packed):
        yield from (
            value.enter,
            value.leave,
            value.codes if value.codes is not None else value.values,
        )
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    else:
        yield value


def audit(recorded, X, y, n_test=0):
    """Every recorded message decodes, and none carries a training point or a shard-sized
    array; returns the methods called."""
    methods = set()
    shard_rows = set()
    for direction, _, data in recorded:
        message = decode(data)
        if direction == "down" and isinstance(message, list) and len(message) == 2:
            methods.add(message[0])
        for leaf in leaves(message):
            if isinstance(leaf, np.ndarray) and leaf.dtype == float:
                assert not np.isin(leaf, y).any() and not np.isin(leaf, X).any()
                if direction == "up":
                    assert leaf.ndim <= 1
                    shard_rows.add(leaf.shape[0] if leaf.ndim else 0)
            elif isinstance(leaf, float):
                assert leaf not in set(y.tolist()) and leaf not in set(X.ravel().tolist())
    return methods, shard_rows


def test_messages_carry_no_training_point_and_bits_are_the_bytes_sent():
    X, y = smooth_regression(n=66, dims=3)
    backend = InlineBackend()
    backend.recorder = []
    Xt, _ = smooth_regression(n=7, dims=3, seed=9)
    result = fit(X, y, small_config(3), backend=backend, X_test=Xt)
    methods, _ = audit(backend.recorder, X, y)
    assert {"summary", "setup", "round", "evaluate", "predict"} <= methods
    assert result.bits_sent == 8 * sum(len(data) for _, _, data in backend.recorder)
    assert result.bits_float64 >= result.bits_sent
    assert result.bits_float64_dense > result.bits_float64
    assert result.model.private and result.model.X_train is None


def test_round_is_idempotent_and_duals_stay_with_the_agent():
    X, y = smooth_regression(n=40, dims=2)
    backend = InlineBackend()
    fit(X, y, small_config(2), backend=backend)
    agent = backend.agent(0)
    D = agent._objective.dim
    z = DeltaCoder().encode(np.r_[np.full(D - 1, 0.01), 0.1], np.zeros(D), None)
    rho = Penalty.of(np.full(D, 5.0))
    first = agent.round(RoundRequest(100, z, rho, True).to_wire())
    again = agent.round(RoundRequest(100, z, 2.0, True).to_wire())  # a retried call
    assert encode(again) == encode(first)
    assert agent._u is not None and len(first) == 4  # round, change of x + u, stats, curvature
    after = RoundReply.from_wire(agent.round(RoundRequest(101, z, None, False).to_wire()))
    assert after.round == 101 and after.residual is not None


def test_same_seed_same_weights_inline_and_ray(ray_local):
    X, y = smooth_regression(n=60, dims=2)
    inline = fit(X, y, small_config(3, "inline"))
    backend = RayBackend()
    backend.recorder = []
    remote = fit(X, y, small_config(3, "ray"), backend=backend)
    assert np.array_equal(inline.theta, remote.theta)
    assert inline.bits_sent == remote.bits_sent and inline.rounds == remote.rounds
    audit(backend.recorder, X, y)


def test_a_ray_backend_serving_several_fits_reuses_its_actors(ray_local):
    """A second start with as many shards hands them to the same actors (no new worker
    process), each a fresh agent of its new shard: the fit is the one fresh actors give. A
    killed actor is replaced by new ones."""
    from distgp.agents.agent import ShardArrays

    X, y = smooth_regression(n=60, dims=2)
    config = small_config(3, "ray")
    with RayBackend() as backend:
        fresh = fit(X, y, config, backend=backend)
        actors = list(backend._actors)
        again = fit(X, y, config, backend=backend)
        assert backend._actors == actors  # the same actor handles
        assert np.array_equal(again.theta, fresh.theta) and again.bits_sent == fresh.bits_sent
        backend.start([ShardArrays(X[:20], y[:20]), ShardArrays(X[20:31], y[20:31])])
        assert backend._actors != actors  # another count: new actors
        sizes = backend.broadcast("summary", 10)
        assert [sizes[j]["n"] for j in range(2)] == [20, 11]
        backend.kill(0)
        actors = list(backend._actors)
        backend.start([ShardArrays(X[:30], y[:30]), ShardArrays(X[30:], y[30:])])
        assert backend._actors[1] != actors[1]  # one killed: all started afresh
        assert backend.broadcast("summary", 10)[0]["n"] == 30
    with RayBackend(cpus_per_agent=0.5) as backend:  # the same share for any count
        backend.start([ShardArrays(X[k::3], y[k::3]) for k in range(3)])
        actors = list(backend._actors)
        backend.start([ShardArrays(X[k::2], y[k::2]) for k in range(2)])
        assert backend._actors == actors[:2] and len(backend.nodes()) == 2
        assert [backend.broadcast("summary", 10)[j]["n"] for j in range(2)] == [30, 30]
        with pytest.raises(ray_local.exceptions.RayActorError):  # the one left over stopped
            ray_local.get(actors[2].node_id.remote(), timeout=30)


def test_quantized_run_reaches_the_float64_objective_with_fewer_bits():
    X, y = smooth_regression(n=90, dims=2)
    quantized = fit(X, y, small_config(3, max_rounds=40))
    exact = fit(X, y, small_config(3, quantize=False, max_rounds=40))
    assert exact.bits_sent == exact.bits_float64
    assert quantized.bits_sent < 0.7 * exact.bits_sent  # headers dominate at D = 25
    assert quantized.stop["objective_at_z"] == pytest.approx(exact.stop["objective_at_z"], rel=5e-3)


def test_shards_below_the_minimum_size_are_refused():
    X, y = smooth_regression(n=40, dims=2)
    # a setting conflict (agents against data.min_shard_size): the message names the setting
    with pytest.raises(ConfigError, match="shard of agent 4 would hold 8 point") as caught:
        fit(X, y, small_config(5))
    assert caught.value.setting == "data.min_shard_size"


def test_pooled_prediction_on_request_keeps_the_data(tmp_path):
    X, y = smooth_regression(n=60, dims=2)
    config = small_config(3)
    config.predict = "pooled"
    result = fit(X, y, config, X_test=X[:5])
    assert not result.model.private and result.prediction is not None


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


def test_signals_are_held_while_ray_starts_and_given_back():
    """Ctrl-C inside ray.init would leave Ray's processes running: it is held, then acts."""
    import signal

    from distgp.agents.ray_runtime import _HeldSignals

    before = signal.getsignal(signal.SIGINT)
    held = _HeldSignals()
    signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt while held
    held.release()
    held.release()
    assert held.caught == [signal.SIGINT] and held.interrupted
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(held.caught[0])


def test_a_held_signal_acts_through_its_own_handler_even_if_ray_reset_it():
    """ray.shutdown() puts SIGTERM's default action back; the held signal must still reach the
    handler distgp had (there: Terminated, exit 143), not the reset one."""
    import signal

    from distgp.agents.ray_runtime import _HeldSignals

    before = signal.getsignal(signal.SIGINT)
    held = _HeldSignals()
    signal.raise_signal(signal.SIGINT)
    held.release()
    reset = []
    signal.signal(signal.SIGINT, lambda number, frame: reset.append(number))  # as Ray's reset
    try:
        with pytest.raises(KeyboardInterrupt):
            held.deliver()
        assert reset == [] and signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_admm_result_reports_how_near_it_is_to_a_stationary_point():
    """Boyd's residual test passed at consensus points a third of the gradient's scale from
    stationary (the audit's float64 run: 0.333 at round 36, 0.42 nats above the optimum); the
    agents now send their gradient at the result once, and stop.stationarity is the scaled KKT
    violation of sum_j l_j there, as DSCA measures its own solves."""
    from distgp.learn.dsca import stationarity

    X, y = smooth_regression(n=66, dims=3)
    backend = InlineBackend()
    result = fit(X, y, small_config(3), backend=backend)
    theta = result.theta.copy()
    gradient, scale = 0.0, 0.0
    for agent in backend._agents:
        objective, _ = agent._require()
        c, q = objective.linearization(objective.factorize(theta), np.arange(objective.dim))
        gradient, scale = gradient + (c - q), scale + c
        lower = objective.lower
    weights = theta[:-1]
    weights[weights < FitConfig().learn.prune_tol * weights.max()] = 0.0
    expected = stationarity(gradient / scale, np.maximum(theta, lower), lower)
    assert result.stop["stationarity"] == pytest.approx(expected, rel=0.05)
    assert np.isfinite(expected) and expected > 0


def test_the_fair_cpu_share_packs_the_agents_into_nodes_one_actor_per_node():
    """Each actor must fit on one node: 3 agents on two 1-CPU nodes get 0.5 CPU, not 2/3."""
    from distgp.agents.ray_runtime import packed_share

    assert packed_share(3, [1.0, 1.0]) == 0.5
    assert packed_share(2, [1.0, 1.0]) == 1.0
    assert packed_share(1, [8.0]) == 1.0  # never above one CPU
    assert packed_share(14, [4.0, 4.0, 4.0]) == 0.8  # 5 per node: 15 slots
    assert packed_share(4, [2.0, 1.0]) == 0.6666  # 3 on the 2-CPU node, 1 on the other
    assert packed_share(3, [1.0]) == 0.3333  # rounded down to Ray's step
    assert packed_share(10**5, [1.0]) == 0.0001  # never 0
    assert packed_share(3, []) == 1.0 and packed_share(3, [0.0]) == 1.0  # e.g. autoscaling


def test_the_fair_cpu_share_packs_pinned_agents_on_the_nodes_that_carry_their_resource():
    from distgp.agents.ray_runtime import placement_share

    nodes = [{"CPU": 1.0, "site_head": 4.0}, {"CPU": 1.0, "site_worker": 4.0}]
    head, worker = {"site_head": 0.001}, {"site_worker": 0.001}
    assert placement_share(nodes, [head, head]) == 0.5
    assert placement_share(nodes, [head, worker]) == 1.0
    assert placement_share(nodes, [head, head, worker, worker]) == 0.5
    assert placement_share(nodes, [head, {}, {}]) == 0.5  # 3 over both nodes
    assert placement_share(nodes, [head, head, {}]) == 0.5
    # agents of two resources that only one node carries share it
    both = [{"CPU": 1.0, "a": 1.0, "b": 1.0}, {"CPU": 1.0}]
    assert placement_share(both, [{"a": 0.001}, {"b": 0.001}]) == 0.5
    # GPU agents go to the GPU nodes only
    gpu = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 16.0}]
    assert placement_share(gpu, [{"GPU": 0.25}] * 8) == 0.5


def test_resource_amounts_are_rounded_down_to_ray_s_step_and_never_zero():
    from distgp.agents.ray_runtime import round_share

    assert round_share(2 / 3) == 0.6666 and round_share(0.5) == 0.5 and round_share(2.0) == 2.0
    assert round_share(0.29) == 0.29 and round_share(1e-6) == 0.0001
    with pytest.raises(ConfigError, match=r"at least 0\.0001"):
        RayBackend(cpus_per_agent=0.00001)
    with pytest.raises(ConfigError, match=r"at least 0\.0001"):
        RayBackend(gpus_per_agent=0.00001)
    assert RayBackend(cpus_per_agent=0.00015).cpus_per_agent == 0.0001


def test_a_failed_join_names_the_token_when_this_process_has_none(monkeypatch):
    """A cluster with token authentication refuses a process without the token the same way as
    a wrong address; the hint names the token settings."""
    from distgp.agents.ray_runtime import _connect_hint

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert "RAY_AUTH_MODE=token" in _connect_hint("127.0.0.1:6379", "Failed to connect")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "RAY_AUTH_MODE=token" not in _connect_hint("127.0.0.1:6379", "Failed to connect")
    assert "refused this process's token" in _connect_hint("h:1", "RPC error: InvalidAuthToken")
    assert "ray start --head" in _connect_hint(None, "anything")


def test_ray_s_c_level_logs_during_a_join_are_captured():
    """Ray's C++ client writes its retry warnings to file descriptor 2, not sys.stderr."""
    import os

    from distgp.agents.ray_runtime import _captured_stderr

    with _captured_stderr() as captured:
        os.write(2, b"gcs_client.cc:210: InvalidAuthToken\n")
    assert captured == ["gcs_client.cc:210: InvalidAuthToken\n"]


def test_a_replacement_waits_for_its_start_about_the_round_timeout():
    from distgp.agents import backends

    assert RayBackend(round_timeout=20)._restart_wait(placed=False) == 20
    assert RayBackend(round_timeout=2)._restart_wait(placed=False) == backends.MIN_RESTART_WAIT
    assert RayBackend()._restart_wait(placed=False) == backends.START_TIMEOUT
    assert RayBackend(round_timeout=600)._restart_wait(placed=True) == 30
