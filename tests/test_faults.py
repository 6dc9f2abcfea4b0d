"""Agent faults over Ray during a real ``distgp.driver.fit``: a killed agent, a hung agent.

All fits use the session Ray instance (``ray_local``), the same data and seed; a fault may change
the test MSE only slightly, since the replacement agent is warm-started from its last upload.
"""

from __future__ import annotations

import re
import signal
import time

import numpy as np
import pytest

from distgp.agents import backends
from distgp.agents.backends import RayBackend
from distgp.bench.faults import hanging_agent
from distgp.config import FitConfig
from distgp.driver import FitResult, fit
from distgp.exceptions import BackendError, ConfigError
from tests.helpers import sinusoids

AGENTS = 4
ROUND_TIMEOUT = 5.0  # a normal round takes well under 0.5 s
MSE_TOLERANCE = 0.05


def _data():
    X, y = sinusoids(200, seed=1)
    test = np.random.default_rng(0).permutation(len(y))[:50]
    train = np.setdiff1d(np.arange(len(y)), test)
    return X[train], y[train], X[test], y[test]


def _fit(backend: RayBackend, report=None) -> tuple[FitResult, float, float]:
    """Fit over ``backend``; return the result, the test MSE and the wall time."""
    X, y, X_test, y_test = _data()
    config = FitConfig()
    config.backend.name = "ray"
    config.consensus.agents = AGENTS
    config.kernel.components = 60
    tic = time.perf_counter()
    result = fit(X, y, config, report=report, backend=backend, X_test=X_test)
    seconds = time.perf_counter() - tic
    mse = float(np.mean((result.prediction[0] - y_test) ** 2))  # private: the agents' experts
    return result, mse, seconds


@pytest.fixture(scope="module")
def clean(ray_local) -> tuple[FitResult, float, float]:
    return _fit(RayBackend(round_timeout=ROUND_TIMEOUT))


def test_agent_class_must_be_an_agent():
    with pytest.raises(ConfigError, match="subclass of Agent"):
        RayBackend(agent_class=dict)


def test_agents_that_cannot_be_scheduled_fail_with_one_clear_error(ray_local, monkeypatch):
    monkeypatch.setattr(backends, "START_TIMEOUT", 2.0)
    too_big = ray_local.cluster_resources()["CPU"]  # only one such agent fits at a time
    with pytest.raises(BackendError, match="did not start within 2 s"):
        _fit(RayBackend(cpus_per_agent=too_big))


def test_agents_a_local_instance_of_its_own_cannot_hold_are_refused_at_once(ray_local):
    """A local Ray instance the backend started gets no more nodes: agents that need more CPUs
    than it has are refused before any starts, not after START_TIMEOUT."""
    from distgp.agents import ShardArrays

    cpus = ray_local.cluster_resources()["CPU"]
    backend = RayBackend(cpus_per_agent=cpus)
    backend._owns_ray = True  # as if it had started the session's instance itself
    shards = [ShardArrays(np.zeros((4, 1)), np.zeros(4)) for _ in range(2)]
    tic = time.perf_counter()
    try:
        with pytest.raises(BackendError, match=f"need {cpus:g} CPU each, the local Ray"):
            backend.start(shards)
    finally:
        backend._owns_ray = False  # the session's instance is not this test's to stop
    assert time.perf_counter() - tic < backends.START_TIMEOUT and backend._actors == []


def test_a_joined_cluster_is_not_refused_as_a_local_instance(ray_local, monkeypatch):
    """On a cluster distgp joined (``address``), an autoscaler may add nodes: agents that need
    more CPUs than it has now wait for them (START_TIMEOUT), not refused as a local instance."""
    from distgp.agents import ShardArrays

    monkeypatch.setattr(backends, "START_TIMEOUT", 2.0)
    cpus = ray_local.cluster_resources()["CPU"]
    backend = RayBackend(address="127.0.0.1:6379", cpus_per_agent=cpus)
    backend._owns_ray = True  # as if it had joined the cluster itself
    shards = [ShardArrays(np.zeros((4, 1)), np.zeros(4)) for _ in range(2)]
    try:
        with pytest.raises(BackendError, match=r"did not start within 2 s .*on one node"):
            backend.start(shards)
    finally:
        backend._owns_ray = False  # the session's instance is not this test's to stop


def test_a_replacement_that_dies_at_once_is_started_again(ray_local, monkeypatch):
    """A replacement sent to a node that is dying dies before it answers (ActorDiedError): it
    is started once more (away from that node where another live node can take it)."""
    from distgp.agents import ShardArrays

    backend = RayBackend(round_timeout=ROUND_TIMEOUT)
    backend.start([ShardArrays(np.zeros((4, 1)), np.zeros(4)) for _ in range(2)])
    spawn, calls = backend._spawn, []

    def dying_once(j, avoid=None):
        actor = spawn(j, avoid)
        calls.append(avoid)
        if len(calls) == 1:
            ray_local.kill(actor, no_restart=True)  # as its node died under it
        return actor

    monkeypatch.setattr(backend, "_spawn", dying_once)
    try:
        backend.recover(0)
        assert calls == [None, None]  # one node only: nowhere else to go
        assert ray_local.get(backend._actors[0].node_id.remote(), timeout=30) == backend.nodes()[0]
    finally:
        backend._release_agents()


def test_killed_agent_is_restarted_and_the_run_completes(clean):
    result0, mse0, _ = clean
    assert result0.events == []
    backend = RayBackend(round_timeout=ROUND_TIMEOUT)
    killed_after = 3

    def kill_agent_1(event: str, fields: dict) -> None:
        if event == "round" and fields["record"].round == killed_after:
            backend.kill(1)  # ray.kill on the live actor, between rounds of the running fit

    result, mse, _ = _fit(backend, kill_agent_1)
    died = [e for e in result.events if "agent 1 died" in e]
    assert died, result.events
    assert any("agent 1 restarted from its shard" in e for e in result.events)
    round_died = int(died[0].split()[1].rstrip(":"))
    assert round_died > killed_after
    assert result.history[round_died - 1].participants == AGENTS - 1
    assert all(r.participants == AGENTS for r in result.history[round_died:])
    assert len(result.nodes) == AGENTS
    assert abs(mse - mse0) / mse0 < MSE_TOLERANCE, (mse, mse0)


def test_every_agent_killed_in_one_round_is_restarted_and_the_run_completes(clean):
    """A round no agent answers after the first (every actor died at once) is taken again by
    the restarted agents (it stopped the run as if no agent had ever answered)."""
    _, mse0, _ = clean
    backend = RayBackend(round_timeout=ROUND_TIMEOUT)

    def kill_all(event: str, fields: dict) -> None:
        if event == "round" and fields["record"].round == 3:
            for j in range(AGENTS):
                backend.kill(j)

    result, mse, _ = _fit(backend, kill_all)
    assert sum("restarted from its shard" in e for e in result.events) == AGENTS, result.events
    assert abs(mse - mse0) / mse0 < MSE_TOLERANCE, (mse, mse0)


def test_hung_agent_is_skipped_for_its_round_and_the_run_goes_on(clean):
    _, mse0, seconds0 = clean
    hang_round, hang_seconds = 2, 60.0
    backend = RayBackend(
        round_timeout=ROUND_TIMEOUT, agent_class=hanging_agent(0, hang_round, hang_seconds)
    )
    result, mse, seconds = _fit(backend)
    assert f"round {hang_round}: agent 0 timeout; left out" in result.events
    assert f"round {hang_round}: agent 0 restarted from its shard" in result.events
    hung = result.history[hang_round - 1]
    assert hung.participants == AGENTS - 1
    assert ROUND_TIMEOUT <= hung.seconds < hang_seconds / 2
    # The hung actor was replaced: no later call queued behind its sleeping call.
    assert all(r.participants == AGENTS for r in result.history[hang_round:])
    assert seconds < seconds0 + hang_seconds / 2
    assert abs(mse - mse0) / mse0 < MSE_TOLERANCE, (mse, mse0)


def test_a_first_round_every_agent_misses_names_the_round_timeout(tmp_path, monkeypatch, capsys):
    """Every agent late in round 1 (a round timeout shorter than a round): the error names the
    setting to raise, and the output folder keeps no agents' state of a run with nothing to
    resume."""
    from distgp.agents.backends import AgentFailure, InlineBackend
    from distgp.cli import main
    from distgp.consensus import wire

    send = InlineBackend._send

    def late_rounds(self, messages, timeout=None):  # each agent runs its round, too late
        answers = send(self, messages, timeout)
        if wire.decode(next(iter(messages.values())))[0] == "round":
            return {j: AgentFailure(j, "timeout", "no answer within 0.01 s") for j in messages}
        return answers

    monkeypatch.setattr(InlineBackend, "_send", late_rounds)
    X, y = sinusoids(80, seed=1)
    config = FitConfig()
    config.consensus.agents, config.kernel.components = 2, 20
    config.backend.name = "inline"
    with pytest.raises(ConfigError, match=r"within backend.round_timeout \(600 s\); raise it"):
        fit(X, y, config)
    data = tmp_path / "s.csv"
    data.write_text("t,y\n" + "".join(f"{a},{b}\n" for a, b in zip(X[:, 0], y, strict=True)))
    out = tmp_path / "out"
    argv = ["fit", "--data", str(data), "--agents", "2", "--trend", "linear", "--out", str(out)]
    assert main([*argv, "--backend", "inline", "--round-timeout", "0.01", "--quiet"]) == 2
    assert "raise it (flag --round-timeout)" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_sigterm_stops_a_ray_fit_as_ctrl_c_does(tmp_path):
    """SIGTERM mid-run (a scheduler's stop): one line naming the resume command, exit status
    143, the checkpoint kept; not the C++ stack trace of the handler ``ray.init`` installs."""
    import os
    import subprocess
    import sys

    X, y = sinusoids(400, seed=2)
    data = tmp_path / "s.csv"
    data.write_text("t,y\n" + "".join(f"{a},{b}\n" for a, b in zip(X[:, 0], y, strict=True)))
    out = tmp_path / "out"
    argv = ["fit", "--data", str(data), "--agents", "2", "--backend", "ray", "--trend", "linear"]
    argv += ["--rounds", "100000", "--abs-tol", "1e-300", "--rel-tol", "1e-300", "--no-plots"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "distgp", *argv, "--out", str(out)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:  # until ADMM has saved a round (Ray started, agents set up)
            lines.append(line)
            if re.search(r"\] round +3 ", line):
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines) + rest
    assert proc.returncode == 143, err
    assert err.rstrip().endswith(f"terminated; 'distgp fit --resume {out}' continues it")
    assert "SIGTERM received" not in err and (out / "checkpoint.npz").is_file()
