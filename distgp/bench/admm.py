"""``distgp bench admm``: agents, rounds, bits and scaling of quantised consensus ADMM.

Three parts:

* **Agents grid** (inline backend: deterministic, the same numbers as Ray): for each dataset and
  agent count, GSMP learned by quantised ADMM (default bits) and by float64 ADMM
  (``consensus.quantize=False``): test MSE of the private (rBCM over the agents) and the pooled
  prediction, rounds, whether Boyd's unwidened stopping rule was met, the residuals against their
  tolerances at the stop, the final objective and its gap to a long float64 reference run
  (tolerances 100x tighter), the bytes sent against the fair float64 comparator (same messages,
  float64 fields, same sparse coding); the one-agent DSCA fit as the reference; the rBCM baseline
  (RBF-ARD experts on the same random shards).
* **Large run** on a local Ray instance: cccp9500 with 8 agents; seconds and each agent process's
  peak resident memory (read inside each agent's actor with ``Agent.memory``, after the fit).
* **Scaling** on Ray: seconds per ADMM round and peak memory per agent as the shard size ``n_j``
  grows (random cccp9500 subsets, 2 agents) and as the number of components ``M`` grows.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distgp.agents.backends import RayBackend

DATASETS = ("ale80", "airfoil600", "cccp1000", "concrete824")
AGENTS = (1, 2, 4, 8)
QUICK_DATASETS = ("ale80", "airfoil600")
QUICK_AGENTS = (1, 2, 4)
QUICK_ROUNDS = 20
QUICK_ITERATIONS = 40
TARGET_DATASETS = ("airfoil600", "cccp1000", "concrete824")
TARGET_AGENTS = 8
TARGET_MSE_CHANGE = 0.05  # 8 agents within 5% of the one-agent MSE
TARGET_AGENT_COUNTS = (2, 4, 8)
TARGET_BITS_RATIO = 1.0 / 8.0
TARGET_OBJECTIVE_GAP = 0.005  # quantised final objective within 0.5% of float64's
TARGET_PRIVATE_CHANGE = 0.10  # private prediction within 10% of pooled
REFERENCE_SETTINGS = {
    "consensus.quantize": False,
    "consensus.abs_tol": 1e-6,
    "consensus.rel_tol": 1e-5,
    "consensus.max_rounds": 400,
}
LARGE_DATASET = "cccp9500"
LARGE_AGENTS = 8
LARGE_SECONDS = 600.0
LARGE_MEMORY_MB = 1536.0
SCALING_SHARDS = (250, 500, 1000, 2000)
SCALING_COMPONENTS = (100, 200, 400, 800)
SCALING_AGENTS = 2
SCALING_FIXED_SHARD = 500
SCALING_ROUNDS = 3
MEMORY_QUERY_TIMEOUT = 60.0  # seconds to wait for an agent's memory report


# ----------------------------------------------------------------------------------------------
# Agent memory on Ray


def agent_memory(backend) -> tuple[list[float], list[float]]:
    """Per live agent: its process's peak resident memory (MiB; NaN when it does not answer)
    and its shard plus cached sub-kernel data (``Agent.memory``, MiB)."""
    from distgp.agents.backends import AgentFailure

    replies = backend.broadcast("memory", timeout=MEMORY_QUERY_TIMEOUT)
    peaks, held = [], []
    for j in range(backend.agents):
        reply = replies[j]
        peak, size = (math.nan, 0) if isinstance(reply, AgentFailure) else reply
        peaks.append(peak)
        held.append(size / 2**20)
    return peaks, held


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distgp.bench.report import add_common_arguments, add_run_arguments

    add_common_arguments(parser)
    add_run_arguments(parser, f"{','.join(DATASETS)} (the agents grid)", "grid run")
    parser.add_argument(
        "--agents",
        metavar="N,M",
        help=f"agent counts of the grid (default {','.join(map(str, AGENTS))})",
    )
    parser.add_argument("--skip-baselines", action="store_true", help="no rBCM runs")
    parser.add_argument(
        "--skip-ray",
        action="store_true",
        help="no Ray runs (the cccp9500 run and the scaling tables); implied by --quick",
    )


def run(args: argparse.Namespace) -> int:
    from distgp.bench.kernel import choose_datasets
    from distgp.bench.report import data_dir, load_note, publish
    from distgp.cli.common import Progress
    from distgp.threads import set_thread_env

    set_thread_env(1)
    folder = data_dir(args.data_dir)
    names = choose_datasets(args.datasets, QUICK_DATASETS if args.quick else DATASETS, folder)
    counts = _agent_counts(args.agents, QUICK_AGENTS if args.quick else AGENTS)
    if not (args.quick or args.skip_ray):  # checked before the grid, which takes a while
        choose_datasets(LARGE_DATASET, (), folder)
    progress = Progress()
    load_start = os.getloadavg()[0]
    grid = agents_grid(folder, names, counts, args, progress)
    payload: dict[str, Any] = {"suite": "admm", "quick": args.quick, "grid": grid}
    parts = [render_grid(grid, args.quick)]
    if not (args.quick or args.skip_ray):
        large, scaling = ray_runs(folder / f"{LARGE_DATASET}.mat", args, progress)
        payload.update(large=large, scaling=scaling)
        parts += [render_large(large), render_scaling(scaling)]
    else:
        parts.append("Ray runs (cccp9500, scaling) skipped (--quick or --skip-ray).")
    payload["load"] = (load_start, os.getloadavg()[0])
    parts.append(load_note(*payload["load"]))
    publish(args, "admm", "\n\n".join(parts), payload)
    return 0


def _agent_counts(option: str | None, default: Sequence[int]) -> list[int]:
    from distgp.exceptions import ConfigError

    if option is None:
        return list(default)
    try:
        counts = [int(s) for s in option.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--agents must be comma-separated integers, got {option!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--agents must list positive integers, got {option!r}")
    twice = [c for k, c in enumerate(counts) if c in counts[:k]]
    if twice:
        raise ConfigError(f"--agents names {twice[0]} twice; give each agent count once")
    return counts


def agents_grid(
    folder: Path,
    names: Sequence[str],
    counts: Sequence[int],
    args: argparse.Namespace,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Quantised and float64 ADMM, the one-agent fit and rBCM for every dataset and agent count.

    Returns:
        One record per (dataset, agents): ``quantized``, ``float64``, ``rbcm`` results (each a
        result dict, or absent when not applicable or skipped).
    """
    from distgp.bench.kernel import Task, run_isolated

    tasks: list[Task] = []
    for name in names:
        path = str(folder / f"{name}.mat")
        for agents in counts:
            base: dict[str, Any] = {
                "seed": args.seed,
                "consensus.agents": agents,
                "backend.name": "inline",
            }
            if args.quick:
                base["consensus.max_rounds"] = QUICK_ROUNDS
                base["learn.max_iterations"] = QUICK_ITERATIONS
            modes: dict[str, dict[str, Any]] = {"quantized": {}}
            if agents > 1:
                modes["float64"] = {"consensus.quantize": False}
                if not args.quick and name in TARGET_DATASETS:
                    modes["reference"] = REFERENCE_SETTINGS
            for mode, extra in modes.items():
                tasks.append(
                    Task(name, f"{agents} {mode}", "gsmp", path, {"overrides": {**base, **extra}})
                )
            if not args.skip_baselines:
                options = {"agents": agents, "seed": args.seed}
                if args.quick:
                    options["iterations"] = QUICK_ITERATIONS
                tasks.append(Task(name, f"{agents} rbcm", "rbcm", path, options))
    progress(f"{len(tasks)} grid runs (inline backend), one at a time")
    results = run_isolated(tasks, 1, args.timeout, progress)
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for task, result in zip(tasks, results, strict=True):
        agents, mode = task.method.split()
        key = (task.dataset, int(agents))
        record = records.setdefault(key, {"dataset": task.dataset, "agents": int(agents)})
        record[mode] = result
    return list(records.values())


def ray_runs(
    path: Path, args: argparse.Namespace, progress: Callable[[str], None]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cccp9500 run with 8 agents and the scaling runs, on one local Ray instance."""
    from distgp.agents.ray_runtime import connect, disconnect
    from distgp.bench.kernel import Task, run_isolated
    from distgp.data import Dataset, load_dataset

    dataset = load_dataset(str(path))
    started = connect()
    try:
        large = ray_fit(dataset, {"consensus.agents": LARGE_AGENTS, "seed": args.seed})
        progress(f"{LARGE_DATASET} with {LARGE_AGENTS} agents on Ray: {_line(large)}")
        scaling = []
        rng = np.random.default_rng(args.seed)
        for n_j, components in [(n, None) for n in SCALING_SHARDS] + [
            (SCALING_FIXED_SHARD, m) for m in SCALING_COMPONENTS
        ]:
            subset = rng.choice(len(dataset.y_train), SCALING_AGENTS * n_j, replace=False)
            overrides: dict[str, Any] = {
                "consensus.agents": SCALING_AGENTS,
                "consensus.max_rounds": SCALING_ROUNDS,
                "seed": args.seed,
            }
            if components is not None:
                overrides["kernel.components"] = components
            part = Dataset(
                dataset.X_train[subset],
                dataset.y_train[subset],
                dataset.X_test,
                dataset.y_test,
                f"{dataset.name}[{len(subset)}]",
            )
            record = ray_fit(part, overrides)
            record.update(n_j=n_j, requested_components=components)
            scaling.append(record)
            progress(f"scaling n_j={n_j} M={record.get('components')}: {_line(record)}")
    finally:
        disconnect(started)
    if not args.skip_baselines:
        task = Task(
            LARGE_DATASET,
            f"{LARGE_AGENTS} rbcm",
            "rbcm",
            str(path),
            {
                "agents": LARGE_AGENTS,
                "seed": args.seed,
            },
        )
        large["rbcm"] = run_isolated([task], 1, args.timeout, progress)[0]
    return large, scaling


def ray_fit(dataset, overrides: dict[str, Any]) -> dict[str, Any]:
    """One ADMM fit on the running Ray instance, with agent memory and per-round seconds."""
    from distgp.bench.kernel import gsmp_run

    backend = RayBackend()
    start = time.perf_counter()
    try:
        record = gsmp_run(dataset, {**overrides, "backend.name": "ray"}, backend=backend)
        record["wall_seconds"] = time.perf_counter() - start
        record["agent_peak_rss_mb"], record["agent_held_mb"] = agent_memory(backend)
    except Exception as exc:  # a failed run is a table entry
        return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    finally:
        backend.shutdown()
    return record


def _line(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"error: {record['error']}"
    peak = _largest(record["agent_peak_rss_mb"])
    return (
        f"MSE {record['mse']:.4g}, {record['rounds']} rounds, {record['seconds']:.1f} s, "
        f"{record['seconds_per_round']:.2f} s/round, peak {peak:.0f} MiB per agent"
    )


# ----------------------------------------------------------------------------------------------
# Tables


def _get(result: dict[str, Any] | None, key: str) -> Any:
    if result is None:
        return None
    if "error" in result:
        return "error"
    return result.get(key)


def _num(value: Any) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _change(value: Any, reference: Any) -> float:
    """Relative change ``value / reference - 1`` (NaN when either is missing)."""
    v, r = _num(value), _num(reference)
    return v / r - 1.0 if r and not math.isnan(v) and not math.isnan(r) else math.nan


def render_grid(grid: Sequence[dict[str, Any]], quick: bool) -> str:
    from distgp.bench.report import markdown_table

    single = {r["dataset"]: _get(r.get("quantized"), "mse") for r in grid if r["agents"] == 1}
    rows = []
    for r in grid:
        q, f, ref, b = r.get("quantized"), r.get("float64"), r.get("reference"), r.get("rbcm")
        multi = r["agents"] > 1
        rows.append(
            {
                "dataset": r["dataset"],
                "agents": r["agents"],
                "MSE": _get(q, "mse"),
                "MSE pooled": _get(q, "mse_pooled") if multi else None,
                "pooled vs 1": _percent(_change(_get(q, "mse_pooled"), single.get(r["dataset"]))),
                "rBCM MSE": _get(b, "mse"),
                "rounds q/f64": _pair(_get(q, "rounds"), _get(f, "rounds")) if multi else None,
                "stop q/f64": _pair(_stop(q), _stop(f)) if multi else None,
                "f64 r/tol, s/tol": _residuals(f) if multi else None,
                "objective q": _get(q, "objective"),
                "q vs f64": _percent(_change(_get(q, "objective"), _get(f, "objective"))),
                "f64 vs ref": _percent(_change(_get(f, "objective"), _get(ref, "objective"))),
                "bytes sent": _bytes(_get(q, "bits_sent")),
                "/ fair f64": _ratio(_get(q, "bits_sent"), _get(q, "bits_float64")),
                "rounds only": _ratio(_get(q, "bits_rounds"), _get(q, "bits_float64_rounds")),
                "/ dense f64": _ratio(_get(q, "bits_sent"), _get(q, "bits_float64_dense")),
                "seconds": _get(q, "seconds"),
            }
        )
    text = [
        "Agents grid (inline backend, random shards, default settings). `MSE`: test MSE (raw "
        "units) of the default prediction (1 agent: exact; more: private, rBCM over the agents' "
        "experts); `MSE pooled`: the same kernel conditioned on all training data in one place; "
        "`pooled vs 1`: its change against the 1-agent fit. `rBCM`: robust BCM with RBF-ARD "
        "experts on the same shards. `rounds q/f64`: rounds of the quantised and the float64 run; "
        "`stop`: `rule` when Boyd's stopping rule was met with unwidened tolerances, `cap` when "
        "the round cap ended the run; `f64 r/tol, s/tol`: the float64 run's primal and dual "
        "residuals over their tolerances at the stop. `objective`: final negative log marginal "
        "likelihood summed over agents (raw units); `q vs f64`: the quantised run's against the "
        "float64 run's; `f64 vs ref`: the float64 run's against a float64 reference run with "
        "100x tighter tolerances. `bytes sent`: every byte between driver and agents, both ways, "
        "set-up, rounds and the test-set prediction included; `/ fair f64`: against the same "
        "messages with float64 fields in the same sparse coding; `rounds only`: the same ratio "
        "over the ADMM rounds alone; `/ dense f64`: against dense float64 vectors. `seconds`: "
        "learning wall time of the quantised run (the inline backend runs agents in turn).",
        "",
        markdown_table(rows, list(rows[0])) if rows else "(no runs)",
        "",
        *grid_targets(grid, single),
    ]
    errors = [
        f"* {r['dataset']} {r['agents']} agents {mode}: {res['error']}"
        for r in grid
        for mode in ("quantized", "float64", "reference", "rbcm")
        if (res := r.get(mode)) is not None and "error" in res
    ]
    if errors:
        text += ["", "Failed runs:", "", *errors]
    if quick:
        text += ["", f"--quick: at most {QUICK_ROUNDS} rounds, {QUICK_ITERATIONS} iterations."]
    return "\n".join(text)


def _pair(a: Any, b: Any) -> str:
    return f"{a if a is not None else '-'}/{b if b is not None else '-'}"


def _stop(result: dict[str, Any] | None) -> str | None:
    converged = _get(result, "converged")
    return None if converged is None else ("rule" if converged is True else "cap")


def _residuals(result: dict[str, Any] | None) -> str | None:
    r, rt = _num(_get(result, "primal_residual")), _num(_get(result, "primal_tol"))
    s, st = _num(_get(result, "dual_residual")), _num(_get(result, "dual_tol"))
    if any(math.isnan(v) for v in (r, rt, s, st)):
        return None
    return f"{r / rt:.2f}, {s / st:.2f}"


def _bytes(bits: Any) -> int | None:
    value = _num(bits)
    return None if math.isnan(value) else int(value // 8)


def _ratio(a: Any, b: Any) -> float | None:
    x, y = _num(a), _num(b)
    return None if math.isnan(x) or math.isnan(y) or not y else x / y


def _percent(value: float) -> str | None:
    return None if math.isnan(value) else f"{100 * value:+.2f}%"


def grid_targets(grid: Sequence[dict[str, Any]], single: dict[str, Any]) -> list[str]:
    """The issue's targets on the agents grid, counted from the measured runs."""
    lines = ["Targets:", ""]
    runs = [
        g for g in grid if g["dataset"] in TARGET_DATASETS and g["agents"] in TARGET_AGENT_COUNTS
    ]
    f64_rule = [g for g in runs if _get(g.get("float64"), "converged") is True]
    gaps = [
        abs(_change(_get(g.get("quantized"), "objective"), _get(g.get("float64"), "objective")))
        for g in runs
    ]
    close = [v for v in gaps if v <= TARGET_OBJECTIVE_GAP]
    ratios = [
        _ratio(_get(g.get("quantized"), "bits_sent"), _get(g.get("quantized"), "bits_float64"))
        for g in runs
    ]
    rounds_ratios = [
        _ratio(
            _get(g.get("quantized"), "bits_rounds"), _get(g.get("quantized"), "bits_float64_rounds")
        )
        for g in runs
    ]
    cheap = [v for v in ratios if v is not None and v <= TARGET_BITS_RATIO]
    cheap_rounds = [v for v in rounds_ratios if v is not None and v <= TARGET_BITS_RATIO]
    lines += [
        f"* float64 ADMM meets the unwidened stopping rule within the round cap: "
        f"{len(f64_rule)} of {len(runs)} (target {len(runs)} of {len(runs)})",
        f"* quantised final objective within {100 * TARGET_OBJECTIVE_GAP:.1f}% of float64's: "
        f"{len(close)} of {len(runs)} (largest gap {100 * _largest(gaps):.3f}%)",
        f"* bytes sent <= 1/8 of the fair float64 comparator: {len(cheap)} of {len(runs)} "
        f"counting every message (largest {_largest([v for v in ratios if v is not None]):.3f}); "
        f"{len(cheap_rounds)} of {len(runs)} over the ADMM rounds alone "
        f"(largest {_largest([v for v in rounds_ratios if v is not None]):.3f})",
    ]
    for name in TARGET_DATASETS:
        r = next((g for g in grid if g["dataset"] == name and g["agents"] == TARGET_AGENTS), None)
        if r is None:
            continue
        q, b = r.get("quantized"), r.get("rbcm")
        pooled_change = _change(_get(q, "mse_pooled"), single.get(name))
        private_change = _change(_get(q, "mse"), _get(q, "mse_pooled"))
        rbcm_mse = _num(_get(b, "mse"))
        lines.append(
            f"* {name}, {TARGET_AGENTS} agents: pooled MSE {_percent(pooled_change)} vs 1 agent "
            f"(target <= +{100 * TARGET_MSE_CHANGE:.0f}%: "
            f"{_verdict(pooled_change <= TARGET_MSE_CHANGE)}); private MSE "
            f"{_percent(private_change)} vs pooled (target <= +{100 * TARGET_PRIVATE_CHANGE:.0f}%: "
            f"{_verdict(private_change <= TARGET_PRIVATE_CHANGE)}); rBCM MSE {rbcm_mse:.4g} "
            f"(beaten by private: {_verdict(_num(_get(q, 'mse')) < rbcm_mse)})"
        )
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def _largest(values: Sequence[float] | None) -> float:
    """The largest non-NaN value (NaN when there is none)."""
    numbers = [v for v in values or () if not math.isnan(v)]
    return max(numbers) if numbers else math.nan


def render_large(large: dict[str, Any]) -> str:
    from distgp.bench.report import markdown_table

    if "error" in large:
        return f"{LARGE_DATASET} with {LARGE_AGENTS} agents on Ray: error: {large['error']}"
    peaks = [p for p in large["agent_peak_rss_mb"] if not math.isnan(p)]
    peak = _largest(peaks)
    row = {
        "agents": LARGE_AGENTS,
        "n": sum(large.get("shard_sizes", [])) or None,
        "MSE": large["mse"],
        "NLPD": large["nlpd"],
        "rounds": large["rounds"],
        "conv.": large["converged"],
        "learn s": large["seconds"],
        "total s": large["wall_seconds"],
        "s/round": large["seconds_per_round"],
        "bits sent": large["bits_sent"],
        "peak MiB/agent (max)": peak,
        "peak MiB/agent (min)": min(peaks, default=math.nan),
        "held MiB/agent": _largest(large["agent_held_mb"]),
        "rBCM MSE": _get(large.get("rbcm"), "mse"),
        "rBCM s": _get(large.get("rbcm"), "seconds"),
    }
    ok_time = large["wall_seconds"] < LARGE_SECONDS
    ok_memory = peak < LARGE_MEMORY_MB
    return "\n".join(
        [
            f"{LARGE_DATASET}, {LARGE_AGENTS} agents on a local Ray instance "
            f"({os.cpu_count()} CPUs, default quantisation). `learn s`: learning only; "
            "`total s`: with actor start-up and prediction. `peak MiB/agent`: peak resident "
            "memory of each agent's actor process (read inside the actor), max and min over "
            "agents; `held`: shard plus cached envelopes (`Agent.memory`).",
            "",
            markdown_table([row], list(row)),
            "",
            f"* total time {large['wall_seconds']:.0f} s (learning {large['seconds']:.0f} s), "
            f"actor start-up and prediction included (target < {LARGE_SECONDS:.0f} s: "
            f"{_verdict(ok_time)}); peak memory per agent {peak:.0f} MiB "
            f"(target < {LARGE_MEMORY_MB:.0f} MiB: {_verdict(ok_memory)}; "
            f"{len(peaks)} of {LARGE_AGENTS} agents reported)",
        ]
    )


def render_scaling(scaling: Sequence[dict[str, Any]]) -> str:
    from distgp.bench.report import markdown_table

    rows = []
    for r in scaling:
        rows.append(
            {
                "n_j": r["n_j"],
                "M": _get(r, "components"),
                "s/round": _get(r, "seconds_per_round"),
                "peak MiB/agent": _largest(r.get("agent_peak_rss_mb")),
                "held MiB/agent": _largest(r.get("agent_held_mb")),
                "rounds": _get(r, "rounds"),
            }
        )
    return "\n".join(
        [
            f"Scaling on Ray ({SCALING_AGENTS} agents, {SCALING_ROUNDS} rounds, random cccp9500 "
            f"subsets of {SCALING_AGENTS} x n_j points): first rows grow n_j at the default M, "
            f"last rows grow M at n_j = {SCALING_FIXED_SHARD}. `s/round`: mean wall seconds per "
            "ADMM round (agents in parallel); memory columns as above.",
            "",
            markdown_table(rows, list(rows[0])) if rows else "(no runs)",
        ]
    )
