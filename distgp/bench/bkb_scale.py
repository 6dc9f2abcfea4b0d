"""Scale part of ``distgp bench bkb --scale``: ``A = 10^5`` and ``10^6`` arms in 6-D, ``T = 5000``.

Each algorithm runs in its own Python process (``python -m distgp.bench.bkb_scale ALGO A D T
SEED``, one JSON line on stdout) so that its peak memory (``VmHWM``) is its own. Arms are uniform
in ``[0, 1]^6``; the reward and kernel are those of the default scaling part
(:func:`distgp.bench.bkb.smooth_reward`, RBF lengthscale 0.8, beta 3 GP standard deviations).
Exact GP-UCB keeps a ``t x A`` float64 factor; it is run only when that factor (rounded up to the
buffer's doubling, plus one copy while it grows) fits in ``--memory-gb``, else reported as not run
with the memory it would need.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from typing import Any

import numpy as np

SCALE_ARMS = (100_000, 1_000_000)
SCALE_DIMS, SCALE_BUDGET = 6, 5000
ALGORITHMS = ("BKB", "batch BKB", "exact GP-UCB")
TARGET_SPEEDUP, TARGET_MEMORY, TARGET_REGRET = 10.0, 0.1, 0.10
TARGET_MINUTES, TARGET_GB = 30.0, 4.0
CURVE_EVERY = 100  # pulls between points of the cumulative-regret curve


def exact_bytes(arms: int, budget: int) -> int:
    """Peak bytes of exact GP-UCB's factor: rows doubled from 64, and one copy while growing."""
    rows = 64 * 2 ** max(math.ceil(math.log2(max(budget, 64) / 64)), 0)
    return int(8 * arms * (rows + rows // 2))


def run_one(
    algorithm: str, arms_count: int, dims: int, budget: int, seed: int, limit: float
) -> dict[str, Any]:
    """One run in this process, stopped after ``limit`` seconds: seconds, pulls done, peak
    memory, regret (also cumulative every :data:`CURVE_EVERY` pulls), dictionary."""
    from distgp.bandit import BKB, GPUCB, RBFKernel
    from distgp.bench.bkb import FIXED_BETA, LENGTHSCALE, pull_loop, smooth_reward
    from distgp.memory import peak_rss_mb

    arms = np.random.default_rng((seed, 3)).random((arms_count, dims))
    f = smooth_reward(arms, seed)
    base_mb = peak_rss_mb()
    kernel = RBFKernel(LENGTHSCALE)
    tic = time.perf_counter()
    if algorithm == "exact GP-UCB":
        bandit = GPUCB(arms, kernel, beta=FIXED_BETA, seed=seed)
    else:
        bandit = BKB(arms, kernel, beta=FIXED_BETA, batch=algorithm == "batch BKB", seed=seed)
    result = pull_loop(bandit, f, budget, seed, limit)
    result.pop("step_seconds")
    pulls = np.array(result.pop("pulls"))
    result["pulls_done"] = len(pulls)
    every = min(CURVE_EVERY, budget)
    result["curve_every"] = every
    result["regret_curve"] = np.cumsum(f.max() - f[pulls])[every - 1 :: every].tolist()
    result["seconds"] = time.perf_counter() - tic
    result["peak_mb"] = peak_rss_mb()
    result["problem_mb"] = base_mb
    result["rebuilds"] = getattr(bandit, "rebuilds", None)
    return result


def scale_part(
    memory_gb: float, limit: float, budget: int, arms_list: list[int], seed: int, progress
) -> dict:
    """Every algorithm at every arm count, each in a child process."""
    rows = []
    for arms_count in arms_list:
        for algorithm in ALGORITHMS:
            row: dict[str, Any] = {"arms": arms_count, "algorithm": algorithm, "budget": budget}
            need = exact_bytes(arms_count, budget) / 2**30
            if algorithm == "exact GP-UCB" and need > memory_gb:
                row["skipped"] = f"needs about {need:.0f} GB for its t x A factor"
                progress(f"scale: {algorithm}, A={arms_count}: not run ({row['skipped']})")
                rows.append(row)
                continue
            progress(f"scale: {algorithm}, A={arms_count}, d={SCALE_DIMS}, T={budget}")
            cmd = [sys.executable, "-m", "distgp.bench.bkb_scale", algorithm]
            cmd += [str(arms_count), str(SCALE_DIMS), str(budget), str(seed), str(limit)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                row["skipped"] = f"failed: {done.stderr.strip().splitlines()[-1:]}"
            else:
                row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                progress(f"  {row['seconds']:.1f} s, peak {row['peak_mb']:.0f} MiB")
            rows.append(row)
    return {"dims": SCALE_DIMS, "seed": seed, "memory_gb": memory_gb, "limit": limit, "rows": rows}


def render_scale(scale: dict) -> str:
    from distgp.bench.report import markdown_table

    table = []
    for r in scale["rows"]:
        table.append(
            {
                "A": r["arms"],
                "T": r.get("pulls_done", r["budget"]),
                "algorithm": r["algorithm"],
                "seconds": r.get("seconds", "-"),
                "peak MiB": r.get("peak_mb", "-"),
                "MiB before the run": r.get("problem_mb", "-"),
                "cumulative regret": r.get("cumulative_regret", "-"),
                "simple regret": r.get("simple_regret", "-"),
                "dictionary max": r.get("dictionary_max", "-"),
                "batches": r.get("batches", "-"),
                "rebuilds": r.get("rebuilds") if r.get("rebuilds") is not None else "-",
                "note": r.get("skipped", ""),
            }
        )
    head = (
        f"### Scale: d = {scale['dims']}, seed {scale['seed']}\n\n"
        "Each run in its own process; peak MiB is the process's VmHWM (arms, reward and "
        "Python included; `MiB before the run` is that peak after building the arms and the "
        "reward). RBF lengthscale 0.8, beta = 3 GP standard deviations, BKB qbar = 3, "
        "resparsify 2, C~ = 2. Exact GP-UCB runs only when its factor fits in "
        f"{scale['memory_gb']:g} GB; a run stops after the batch that passes "
        f"{scale['limit']:g} s (T shows the pulls done)."
    )
    return "\n\n".join([head, markdown_table(table, list(table[0])), *scale_targets(scale)])


def scale_targets(scale: dict) -> list[str]:
    by = {(r["arms"], r["algorithm"]): r for r in scale["rows"] if "seconds" in r}
    lines = ["Targets:\n"]
    for arms_count in sorted({r["arms"] for r in scale["rows"]}):
        bkb, exact = by.get((arms_count, "BKB")), by.get((arms_count, "exact GP-UCB"))
        if bkb and exact:
            t = min(bkb["pulls_done"], exact["pulls_done"])
            k = t // bkb["curve_every"] - 1
            partial = t < bkb["budget"]
            speed = exact["seconds"] / bkb["seconds"]
            memory = _own_mb(bkb) / _own_mb(exact)
            change = bkb["regret_curve"][k] / exact["regret_curve"][k] - 1.0
            ok = speed >= TARGET_SPEEDUP and memory <= TARGET_MEMORY
            ok = ok and abs(change) <= TARGET_REGRET
            verdict = "met" if ok else "missed"
            if partial:  # exact stopped early: its time and memory are lower bounds
                verdict += f"; exact GP-UCB stopped at t = {t}, so its time and memory are lower"
                verdict += " bounds"
            lines.append(
                f"* A = {arms_count}: BKB {speed:.1f}x faster than exact GP-UCB, "
                f"{memory:.2f} of its memory (peak over the arms and reward), cumulative regret "
                f"at t = {t} {change:+.1%} (target >= {TARGET_SPEEDUP:g}x, <= "
                f"{TARGET_MEMORY:g}, within {TARGET_REGRET:.0%}: {verdict})"
            )
        for name in ("BKB", "batch BKB"):
            r = by.get((arms_count, name))
            if r and arms_count >= 1_000_000:
                ok = r["seconds"] <= 60 * TARGET_MINUTES and r["peak_mb"] <= 1024 * TARGET_GB
                full = r["pulls_done"] >= SCALE_BUDGET
                verdict = ("met" if ok else "missed") if full else "not measured at full T"
                lines.append(
                    f"* A = {arms_count}, {name}: T = {r['pulls_done']} in "
                    f"{r['seconds'] / 60:.1f} min, peak {r['peak_mb'] / 1024:.2f} GiB (target "
                    f"T = {SCALE_BUDGET} in < {TARGET_MINUTES:g} min under {TARGET_GB:g} GB: "
                    f"{verdict})"
                )
    return ["\n".join(lines)]


def _own_mb(row: dict) -> float:
    """Peak memory above what the process held once the arms and reward existed (MiB)."""
    return max(row["peak_mb"] - row["problem_mb"], 1.0)


if __name__ == "__main__":
    from distgp.threads import blas_threads

    name, a, d, t, s = sys.argv[1], *map(int, sys.argv[2:6])
    with blas_threads(1):
        print(json.dumps(run_one(name, a, d, t, s, float(sys.argv[6]))))
