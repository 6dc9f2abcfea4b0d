"""distgp owns its threads: thread plans, limits set whatever the environment says, parallel
envelope groups that give the same numbers, flop counts, and GPU requests of Ray agents."""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import distgp.threads as threads_module
from distgp import flops
from distgp.config import FitConfig
from distgp.exceptions import BackendError, ConfigError
from distgp.holdout import parallel_fits
from distgp.kernels import SubKernelBank, data_grid
from distgp.learn import LocalObjective
from distgp.threads import (
    BLAS_PARALLEL_N,
    PARALLEL_MIN_N,
    ThreadPlan,
    blas_threads,
    check_threads,
    default_threads,
    set_process_threads,
)


def test_plans_use_one_blas_thread_on_small_matrices_and_all_threads_on_large(monkeypatch):
    monkeypatch.setattr(threads_module, "available_cores", lambda: 16)
    assert ThreadPlan.for_size(PARALLEL_MIN_N - 1, 8) == ThreadPlan(blas=1, workers=1)
    assert ThreadPlan.for_size(PARALLEL_MIN_N, 8) == ThreadPlan(blas=1, workers=8)
    assert ThreadPlan.for_size(BLAS_PARALLEL_N, 8) == ThreadPlan(blas=8, workers=1)
    assert ThreadPlan.for_size(BLAS_PARALLEL_N, 1) == ThreadPlan(blas=1, workers=1)


def test_explicit_counts_above_the_cores_are_capped(monkeypatch):
    """36 threads on 2 cores (18 held-out fits of 2 BLAS threads each) ran for minutes."""
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    assert threads_module.thread_budget(36) == 2 and threads_module.thread_budget(1) == 1
    assert ThreadPlan.for_size(BLAS_PARALLEL_N, 36) == ThreadPlan(blas=2, workers=1)
    config = FitConfig()
    config.learn.threads = 36
    assert parallel_fits(config, 18, 480) == (2, 1)


def test_explicit_counts_are_checked():
    assert check_threads(None) is None and check_threads(3) == 3
    for bad in (0, -2, 1.5):
        with pytest.raises(ConfigError, match="threads must"):
            check_threads(bad)


def test_process_budget_caps_the_default():
    try:
        set_process_threads(1)
        assert default_threads() == 1
        assert ThreadPlan.for_size(PARALLEL_MIN_N) == ThreadPlan(blas=1, workers=1)
    finally:
        set_process_threads(None)
    assert default_threads() >= 1


def test_limits_override_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # ignored: the limit is set inside the call
    for count in (1, 2):
        with blas_threads(count):
            # numpy's and scipy's BLAS (other packages may bundle a single-threaded build)
            info = threadpool_info()
            blas = [i["num_threads"] for i in info if "scipy_openblas" in i["filepath"]]
            assert blas and all(t == count for t in blas), info


def _blas_counts() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if "scipy_openblas" in i["filepath"]}


def test_nested_limits_restore_the_enclosing_ones():
    before = _blas_counts()
    with blas_threads(2):
        assert _blas_counts() == {2}
        with blas_threads(1):
            with blas_threads(1):  # the same count inside: nothing changes
                assert _blas_counts() == {1}
            assert _blas_counts() == {1}
        assert _blas_counts() == {2}
    assert _blas_counts() == before


def test_parallel_envelope_groups_give_identical_numbers(rng):
    X = rng.standard_normal((60, 3))
    grid = data_grid(60, 3, components=30, levels=3)
    serial, parallel = SubKernelBank(X, grid), SubKernelBank(X, grid)
    parallel.workers = 3
    w = rng.uniform(0, 1, grid.components)
    assert np.array_equal(serial.gram(w), parallel.gram(w))
    A = np.linalg.inv(serial.gram(w) + np.eye(60))
    alpha = rng.standard_normal(60)
    idx = np.arange(grid.components)
    for a, b in zip(serial.products(idx, A, alpha), parallel.products(idx, A, alpha), strict=True):
        assert np.array_equal(a, b)


def test_flops_of_a_factorisation_are_counted_as_done(rng):
    n = 50
    X = rng.standard_normal((n, 2))
    grid = data_grid(n, 2, components=20, levels=2)
    objective = LocalObjective(SubKernelBank(X, grid), rng.standard_normal(n), 1e-2)
    theta = np.r_[np.full(grid.components, 0.05), 0.1]
    with flops.counting() as counted:
        fac = objective.factorize(theta)
        objective.linearization(fac, np.arange(objective.dim))
    groups = SubKernelBank(X, grid).groups
    columns = sum(2 * len(g.coef) for g in groups if np.any(g.directions))
    slow = sum(1 for g in groups if not np.any(g.directions))  # zero-frequency groups
    assert slow > 0 and columns > 0  # both kinds of group are counted
    assert counted["cholesky"] == pytest.approx(n**3 / 3)
    assert counted["inverse"] == pytest.approx(2 * n**3 / 3)
    # gram: n^2 per column (rank-k update); traces and quadratic forms: 2 n^2 per column each;
    # a zero-frequency group: one pass of 2 n^2 over its envelope for each of the three
    assert counted["gemm"] == pytest.approx(5 * n * n * columns + 3 * 2 * n * n * slow)
    assert flops.floor_seconds(counted, dict.fromkeys(flops.KINDS, 1e9)) > 0
    objective.factorize(theta)  # outside the block: not counted, no error
    assert counted["cholesky"] == pytest.approx(n**3 / 3)


def test_gpus_per_agent_on_a_cluster_without_gpus_is_refused(ray_local):
    from distgp.agents.backends import RayBackend

    if ray_local.cluster_resources().get("GPU", 0):
        pytest.skip("this machine's Ray instance has GPUs")
    backend = RayBackend(gpus_per_agent=0.5)
    with pytest.raises(BackendError, match="the Ray cluster has none"):
        backend.start([(np.zeros((4, 1)), np.arange(4.0))])
    backend._release_agents()


def test_more_gpu_shares_than_the_cluster_has_name_gpus(ray_local, monkeypatch):
    """On a local instance of distgp's own: refused at once; on a cluster, a start that times
    out names the GPUs, not the CPUs (Ray reserves GPUs logically: a fake count suffices)."""
    from distgp.agents import backends
    from distgp.agents.backends import RayBackend

    if ray_local.cluster_resources().get("GPU", 0):
        pytest.skip("this machine's Ray instance has GPUs")
    monkeypatch.setattr(backends, "cluster_gpus", lambda: 1.0)
    shards = [(np.zeros((4, 1)), np.arange(4.0))] * 3
    backend = RayBackend(gpus_per_agent=0.5, cpus_per_agent=0.1)
    backend._owns_ray = True  # as if it had started the instance itself
    try:
        with pytest.raises(BackendError, match=r"need 0\.5 GPU each, the local Ray instance has 1"):
            backend.start(shards)
    finally:
        backend._owns_ray = False  # the session's instance stays up
        backend._release_agents()
    monkeypatch.setattr(backends, "START_TIMEOUT", 2.0)
    backend = RayBackend(gpus_per_agent=0.5, cpus_per_agent=0.1)
    try:
        with pytest.raises(BackendError, match=r"each needs 0\.5 GPU .* add GPU nodes"):
            backend.start(shards[:1])  # the real cluster has no GPU: the actor never starts
    finally:
        backend._release_agents()


def test_a_numbered_gpu_with_ray_gpu_agents_is_refused():
    """Ray shows each actor only its own GPU(s), as cuda:0: cuda:1 would fail in every agent."""
    config = FitConfig()
    config.backend.name = "ray"
    config.backend.gpus_per_agent = 1.0
    config.learn.device = "cuda:1"
    with pytest.raises(ConfigError, match="Ray picks each agent's GPU"):
        config.validate()
    for device in ("cuda", "cuda:0"):
        config.learn.device = device
        config.validate()  # the agents' GPUs are checked where they run


def test_bench_threads_default_datasets_include_the_builtin_series(tmp_path):
    """``distgp bench threads`` without --datasets sizes every dataset, builtin:co2 included."""
    import scipy.io

    from distgp.bench.kernel import dataset_source
    from distgp.bench.threads import small_datasets

    x = np.arange(40.0)[:, None]
    scipy.io.savemat(
        tmp_path / "tiny.mat",
        {"xtrain": x[:30], "ytrain": x[:30] ** 0.5, "xtest": x[30:], "ytest": x[30:] ** 0.5},
    )
    assert dataset_source(tmp_path, "builtin:co2") == "builtin:co2"
    assert small_datasets(tmp_path, ["tiny", "builtin:co2"]) == ["tiny", "builtin:co2"]


@pytest.mark.parametrize(("outside", "explicit", "expected"), [(2, None, 1), (1, 2, 2)])
def test_every_agent_call_runs_inside_its_thread_plan(monkeypatch, outside, expected, explicit):
    """``evaluate`` and the objective at ``z`` of each ADMM round factorise outside DSCA: the
    agent's thread plan covers them too, whatever limit the caller holds (a small shard: one
    BLAS thread; a large one, here by lowering the size thresholds: the explicit count)."""
    from distgp.agents import InlineBackend
    from distgp.config import FitConfig
    from distgp.driver import fit
    from tests.helpers import smooth_regression

    if explicit is not None:
        monkeypatch.setattr("distgp.threads.PARALLEL_MIN_N", 2)
        monkeypatch.setattr("distgp.threads.BLAS_PARALLEL_N", 4)
    seen: list[list[int]] = []
    value = LocalObjective.value

    def recording(self, theta):
        info = threadpool_info()
        seen.append([i["num_threads"] for i in info if "scipy_openblas" in i["filepath"]])
        return value(self, theta)

    monkeypatch.setattr(LocalObjective, "value", recording)
    X, y = smooth_regression(n=40, dims=2)
    config = FitConfig()
    config.kernel.components = 12
    config.consensus.agents = 2
    config.consensus.max_rounds = 3
    config.learn.threads = explicit
    with blas_threads(outside):
        fit(X, y, config, backend=InlineBackend())
    assert len(seen) >= 3 and all(s and set(s) == {expected} for s in seen), seen


_IMPORT_PROBE = """
import os, sys
from distgp.cli import quiet_blas_at_import
quiet_blas_at_import(sys.argv[1:])
import numpy  # noqa: F401  (its BLAS pools start now)
from threadpoolctl import threadpool_info
from distgp.threads import blas_threads
def counts():
    return sorted({i["num_threads"] for i in threadpool_info() if "openblas" in i["filepath"]})
at_import = counts()
with blas_threads(2):
    raised = counts()
print(os.environ.get("OPENBLAS_NUM_THREADS"), at_import, raised)
"""


@pytest.mark.parametrize(
    ("argv", "user", "expected"),
    [
        (["fit", "--data", "x.csv"], None, "1 [1] [2]"),  # one thread at import, raised on request
        (["predict"], "3", "3 "),  # the user's setting is kept
        (["optimize", "--function", "branin"], None, "None"),  # a user's objective: left alone
    ],
)
def test_fit_starts_its_blas_pools_with_one_thread(argv, user, expected, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if user is not None:
        env["OPENBLAS_NUM_THREADS"] = user
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.startswith(expected), out


def test_the_held_out_fits_of_the_default_path_are_not_counted():
    """The floor is per iteration of the final fit: the outer choice's fits before it (two
    rolling origins of several candidates) must not add their flops, nor their CPU time."""
    from distgp.config import FitConfig
    from distgp.selection import fit_selected

    x = np.arange(80.0)[:, None]
    y = np.sin(2 * np.pi * x[:, 0] / 12) + 0.02 * x[:, 0]
    config = FitConfig()
    config.kernel.components = 40
    cpu = time.process_time()
    with flops.counting() as counted:
        result, evaluations = fit_selected(x, y, config, series=True)
    cpu = time.process_time() - cpu
    assert len(evaluations) >= 4
    # nor their CPU time: the final fit's is over its own learning (one fit of 9 or more)
    assert 0 < result.cpu_seconds < cpu / 2
    chosen = next(e for e in evaluations if e.chosen)
    with flops.counting() as alone:  # the final fit on its own, the chosen setting's config
        from distgp.driver import fit
        from distgp.holdout import configured

        fit(x, y, configured(config, chosen.overrides))
    assert counted == pytest.approx(alone)


def test_idle_cores_trust_the_instant_when_the_load_average_lags(monkeypatch):
    """Just after a busy process ends the 1-minute average still counts it; the tasks
    runnable now do not. Sustained other work shows in both."""
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (1.9, 1.5, 1.0))
    monkeypatch.setattr(threads_module, "_runnable_now", lambda: 1)  # only this thread
    assert threads_module.idle_cores(2) == 2
    monkeypatch.setattr(threads_module, "_runnable_now", lambda: 3)  # two busy processes
    assert threads_module.idle_cores(2) == 1
    monkeypatch.setattr(threads_module, "_runnable_now", lambda: None)  # no /proc/loadavg
    assert threads_module.idle_cores(2) == 1


def test_gemm_rate_is_the_aggregate_of_concurrent_streams():
    # A clock that advances one second a reading: each timed span is 1 s, so two streams at
    # once rate twice the one-stream GEMM; Cholesky, inverse and solves stay one stream.
    ticks = iter(range(10_000))
    rates = flops.measured_rates(16, columns=4, clock=lambda: float(next(ticks)), streams=2)
    product = 2.0 * 16 * 16 * 4
    assert rates["gemm_stream"] == rates["solve"] == pytest.approx(product)
    assert rates["gemm"] == pytest.approx(2.0 * product)
    assert rates["cholesky"] == pytest.approx(16**3 / 3.0)


def test_streams_run_at_once():
    import threading

    meeting = threading.Barrier(2, timeout=10.0)  # met only if both tasks run together
    met: list[bool] = []

    def task() -> None:
        meeting.wait()
        met.append(True)

    assert flops._at_once([task, task], time.perf_counter) >= 0.0
    assert met == [True, True]


def test_flop_floor_rates_gemm_at_the_plans_workers(monkeypatch):
    # Between PARALLEL_MIN_N and BLAS_PARALLEL_N the plan runs envelope groups `workers` at a
    # time; the floor's GEMM rate must be theirs together (audit 17 F4).
    from types import SimpleNamespace

    from distgp.bench.kernel import flop_floor

    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    seen = []

    def rates(n, clock=time.perf_counter, streams=1):
        seen.append(streams)
        return dict.fromkeys(flops.KINDS, 1e9)

    monkeypatch.setattr(flops, "measured_rates", rates)
    n = PARALLEL_MIN_N
    result = SimpleNamespace(agents=1, iterations=2, shard_sizes=[n], seconds=1.0, cpu_seconds=1.0)
    config = SimpleNamespace(backend_name="inline", learn=SimpleNamespace(threads=2))
    out = flop_floor(dict.fromkeys(flops.KINDS, 1e9), result, config)
    assert out["workers"] == 2
    assert seen == [2, 2]
