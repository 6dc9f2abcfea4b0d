"""``distgp bench admm``: agents, rounds, bits and scaling of quantised consensus ADMM.

Three parts:

* **Agents grid** (inline backend: deterministic, the same numbers as Ray): for each dataset and
  agent count, GSMP learned by quantised ADMM (default bits) and by float64 ADMM
  (``consensus.quantize=False``): test MSE, rounds, seconds, bits sent; the one-agent DSCA fit as
  the reference; the rBCM baseline (RBF-ARD experts on the same random shards).
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
TARGET_ROUNDS = 50
TARGET_BITS_RATIO = 1.0 / 8.0
TARGET_QUANTISATION_CHANGE = 0.02
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
    from distgp.bench.report import add_common_arguments
    from distgp.cli.common import at_least, positive_number

    add_common_arguments(parser)
    parser.add_argument(
        "--datasets",
        metavar="A,B",
        help=f"datasets of the agents grid (default {','.join(DATASETS)})",
    )
    parser.add_argument(
        "--agents",
        metavar="N,M",
        help=f"agent counts of the grid (default {','.join(map(str, AGENTS))})",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="SLIM-KL data folder (default ../shared/data/slimkl)"
    )
    parser.add_argument("--skip-baselines", action="store_true", help="no rBCM runs")
    parser.add_argument(
        "--skip-ray",
        action="store_true",
        help="no Ray runs (the cccp9500 run and the scaling tables); implied by --quick",
    )
    parser.add_argument(
        "--timeout",
        type=positive_number,
        default=1800.0,
        metavar="SEC",
        help="kill a single grid run after this many seconds (default 1800)",
    )
    parser.add_argument("--seed", type=at_least(0), default=0, help="seed of every run (default 0)")


def run(args: argparse.Namespace) -> int:
    from distgp.bench.kernel import choose_datasets, command_line
    from distgp.bench.report import data_dir, load_note, publish
    from distgp.cli.common import Progress
    from distgp.threads import set_thread_env

    set_thread_env(1)
    folder = data_dir(args.data_dir)
    names = choose_datasets(args.datasets, QUICK_DATASETS if args.quick else DATASETS, folder)
    counts = _agent_counts(args.agents, QUICK_AGENTS if args.quick else AGENTS)
    progress = Progress()
    load_start = os.getloadavg()[0]
    grid = agents_grid(folder, names, counts, args, progress)
    payload: dict[str, Any] = {"suite": "admm", "quick": args.quick, "grid": grid}
    parts = [render_grid(grid, args.quick)]
    if not (args.quick or args.skip_ray):
        choose_datasets(LARGE_DATASET, (), folder)
        large, scaling = ray_runs(folder / f"{LARGE_DATASET}.mat", args, progress)
        payload.update(large=large, scaling=scaling)
        parts += [render_large(large), render_scaling(scaling)]
    else:
        parts.append("Ray runs (cccp9500, scaling) skipped (--quick or --skip-ray).")
    payload["load"] = (load_start, os.getloadavg()[0])
    parts.append(load_note(*payload["load"]))
    publish(args, "admm", command_line(args), "\n\n".join(parts), payload)
    return 0


def _agent_counts(option: str | None, default: Sequence[int]) -> list[int]:
    from distgp.exceptions import ConfigError

    if not option:
        return list(default)
    try:
        counts = [int(s) for s in option.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--agents must be comma-separated integers, got {option!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--agents must list positive integers, got {option!r}")
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
            modes = (
                {"quantized": {}}
                if agents == 1
                else {
                    "quantized": {},
                    "float64": {"consensus.quantize": False},
                }
            )
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
        q, f, b = r.get("quantized"), r.get("float64"), r.get("rbcm")
        bits, bits64 = _num(_get(q, "bits_sent")), _num(_get(q, "bits_float64"))
        rows.append(
            {
                "dataset": r["dataset"],
                "agents": r["agents"],
                "MSE": _get(q, "mse"),
                "vs 1 agent": _percent(_change(_get(q, "mse"), single.get(r["dataset"]))),
                "rounds": _get(q, "rounds"),
                "conv.": _get(q, "converged"),
                "seconds": _get(q, "seconds"),
                "bits sent": _get(q, "bits_sent"),
                "/ float64": bits / bits64 if bits64 else None,
                "MSE f64": _get(f, "mse"),
                "rounds f64": _get(f, "rounds"),
                "bits f64 run": _get(f, "bits_sent"),
                "q vs f64": _percent(_change(_get(q, "mse"), _get(f, "mse"))),
                "rBCM MSE": _get(b, "mse"),
                "rBCM s": _get(b, "seconds"),
                "NLPD": _get(q, "nlpd"),
                "rBCM NLPD": _get(b, "nlpd"),
            }
        )
    text = [
        "Agents grid (inline backend, random shards). `MSE`: test MSE (raw units) of GSMP "
        "learned by quantised ADMM (default bits); 1 agent = centralised DSCA. `vs 1 agent`: "
        "change of MSE against the 1-agent fit. `seconds`: learning wall time; the inline "
        "backend runs the agents one after another, so this is their total compute. "
        "`bits sent`: all uploads and broadcasts to the end; `/ float64`: the same messages at "
        "64 bits per entry. `f64`: the same run with float64 messages "
        "(`consensus.quantize=False`); `bits f64 run`: what it sent. `rBCM`: robust BCM with "
        "RBF-ARD experts on the same shards (shared hyperparameters trained on the sum of "
        "expert likelihoods).",
        "",
        markdown_table(rows, list(rows[0])) if rows else "(no runs)",
        "",
        *grid_targets(grid, single),
    ]
    errors = [
        f"* {r['dataset']} {r['agents']} agents {mode}: {res['error']}"
        for r in grid
        for mode in ("quantized", "float64", "rbcm")
        if (res := r.get(mode)) is not None and "error" in res
    ]
    if errors:
        text += ["", "Failed runs:", "", *errors]
    if quick:
        text += ["", f"--quick: at most {QUICK_ROUNDS} rounds, {QUICK_ITERATIONS} iterations."]
    return "\n".join(text)


def _percent(value: float) -> str | None:
    return None if math.isnan(value) else f"{100 * value:+.1f}%"


def grid_targets(grid: Sequence[dict[str, Any]], single: dict[str, Any]) -> list[str]:
    """The issue's targets on the agents grid, counted from the measured runs."""
    lines = ["Targets:", ""]
    for name in TARGET_DATASETS:
        r = next((g for g in grid if g["dataset"] == name and g["agents"] == TARGET_AGENTS), None)
        if r is None:
            continue
        q, b = r.get("quantized"), r.get("rbcm")
        change = _change(_get(q, "mse"), single.get(name))
        rounds = _num(_get(q, "rounds"))
        rbcm_mse = _num(_get(b, "mse"))
        ok_mse = change <= TARGET_MSE_CHANGE
        ok_rounds = rounds <= TARGET_ROUNDS
        ok_rbcm = _num(_get(q, "mse")) < rbcm_mse
        lines.append(
            f"* {name}, {TARGET_AGENTS} agents: MSE {_percent(change)} vs 1 agent (target <= "
            f"+{100 * TARGET_MSE_CHANGE:.0f}%: {_verdict(ok_mse)}), {rounds:.0f} rounds "
            f"(<= {TARGET_ROUNDS}: {_verdict(ok_rounds)}), rBCM MSE {rbcm_mse:.4g} "
            f"(beaten: {_verdict(ok_rbcm)})"
        )
    multi = [g for g in grid if g["agents"] > 1 and g.get("quantized") and g.get("float64")]
    bits_ok = [
        g
        for g in multi
        if _num(_get(g["quantized"], "bits_sent"))
        <= TARGET_BITS_RATIO * _num(_get(g["quantized"], "bits_float64"))
    ]
    close = [
        g
        for g in multi
        if abs(_change(_get(g["quantized"], "mse"), _get(g["float64"], "mse")))
        <= TARGET_QUANTISATION_CHANGE
    ]
    worst = _largest(
        [abs(_change(_get(g["quantized"], "mse"), _get(g["float64"], "mse"))) for g in multi]
    )
    lines += [
        f"* bits sent <= 1/8 of float64 on {len(bits_ok)} of {len(multi)} multi-agent runs",
        f"* quantised MSE within {100 * TARGET_QUANTISATION_CHANGE:.0f}% of float64 on "
        f"{len(close)} of {len(multi)} multi-agent runs (largest change {100 * worst:.1f}%)",
    ]
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
