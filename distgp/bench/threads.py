"""``distgp bench threads``: ``distgp fit`` as installed against fixed BLAS thread settings.

Each fit runs as a fresh ``python -m distgp fit`` process, with the thread variables
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) removed from its environment
("as installed"), or all set to 1, or all set to 2, plus ``--threads`` variants when asked.
Settings alternate within each repeat, so they share the machine's load; the table gives the
median learning seconds (``metrics.json`` ``seconds``) over the repeats, the median CPU seconds
of the whole fit process (user + system, all its threads: other work on a shared machine
stretches wall time far more than CPU time, and spinning BLAS threads show up in it), the ratios
of the as-installed run to the best setting, and whether every setting reached the same test MSE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
SETTINGS = {"as installed": None, "OMP=1": "1", "OMP=2": "2"}
TARGET_RATIO = 1.1
MAX_N = 1300  # single-agent fits above this size belong to the admm suite
QUICK_DATASETS = ("ale80", "airfoil600")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distgp.bench.report import add_common_arguments, add_run_arguments
    from distgp.cli.common import at_least

    add_common_arguments(parser)
    add_run_arguments(
        parser, f"every dataset with n <= {MAX_N}; --quick: {','.join(QUICK_DATASETS)}", seed=False
    )
    parser.add_argument(
        "--repeats", type=at_least(1), metavar="R", help="runs per setting (default 3; --quick 1)"
    )
    parser.add_argument(
        "--threads",
        metavar="A,B",
        help="also run with these --threads values (e.g. 1,2)",
    )


def run(args: argparse.Namespace) -> int:
    from distgp.bench.kernel import choose_datasets, dataset_source, every_dataset
    from distgp.bench.report import data_dir, load_note, publish
    from distgp.cli.common import Progress
    from distgp.exceptions import ConfigError

    folder = data_dir(args.data_dir)
    repeats = args.repeats or (1 if args.quick else 3)
    settings: dict[str, tuple[str | None, int | None]] = {
        name: (value, None) for name, value in SETTINGS.items()
    }
    for text in (args.threads or "").split(","):
        if text.strip():
            if not text.strip().isdigit() or int(text) < 1:
                raise ConfigError(f"--threads takes integers of at least 1, got {text!r}")
            settings[f"--threads {int(text)}"] = (None, int(text))
    if args.datasets:
        names = choose_datasets(args.datasets, (), folder)
    else:
        default = QUICK_DATASETS if args.quick else small_datasets(folder, every_dataset(folder))
        names = choose_datasets(None, default, folder)
    progress = Progress()
    load_start = os.getloadavg()[0]
    rows = [measure(Path(dataset_source(folder, n)), settings, repeats, progress) for n in names]
    load = (load_start, os.getloadavg()[0])
    body = render(rows, repeats) + "\n\n" + load_note(*load)
    command = "distgp bench threads" + (" --quick" if args.quick else "")
    if args.datasets:
        command += f" --datasets {args.datasets}"
    if args.repeats:
        command += f" --repeats {args.repeats}"
    if args.threads:
        command += f" --threads {args.threads}"
    publish(args, "threads", command, body, {"suite": "threads", "load": load, "datasets": rows})
    return 0


def small_datasets(folder: Path, names: Sequence[str]) -> list[str]:
    """The datasets whose training set has at most :data:`MAX_N` points."""
    from distgp.bench.kernel import dataset_source
    from distgp.data import load_dataset

    return [n for n in names if len(load_dataset(dataset_source(folder, n)).y_train) <= MAX_N]


def fit_once(path: Path, blas: str | None, threads: int | None) -> dict[str, Any]:
    """One ``distgp fit`` in a fresh process; ``blas`` sets every thread variable (``None``:
    removed). Returns ``seconds`` (learning), ``wall`` and ``mse``, or ``error``."""
    import resource
    import time

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if blas is not None:
        env.update(dict.fromkeys(THREAD_VARS, blas))
    with tempfile.TemporaryDirectory(prefix="distgp-threads-") as out:
        cmd = [sys.executable, "-m", "distgp", "fit", "--data", str(path), "--out", out]
        cmd += ["--quiet", "--no-plots"] + ([] if threads is None else ["--threads", str(threads)])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        tic = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - tic
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return {"seconds": metrics["seconds"], "wall": wall, "cpu": cpu, "mse": metrics["mse"]}


def measure(
    path: Path,
    settings: dict[str, tuple[str | None, int | None]],
    repeats: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Every setting ``repeats`` times (alternating), medians per setting."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    for r in range(repeats):
        for name, (blas, threads) in settings.items():
            result = fit_once(path, blas, threads)
            runs[name].append(result)
            shown = result.get("error") or (
                f"{result['seconds']:.2f} s  CPU {result['cpu']:.2f} s  MSE {result['mse']:.6g}"
            )
            progress(f"{path.stem:16s} {name:14s} run {r + 1}: {shown}")
    row: dict[str, Any] = {"dataset": path.stem, "settings": {}}
    for name, results in runs.items():
        ok = [x for x in results if "error" not in x]
        row["settings"][name] = {
            "median_seconds": statistics.median(x["seconds"] for x in ok) if ok else None,
            "median_cpu": statistics.median(x["cpu"] for x in ok) if ok else None,
            "runs": [x.get("seconds") for x in results],
            "cpu_runs": [x.get("cpu") for x in results],
            "mse": sorted({x["mse"] for x in ok}),
            "errors": [x["error"] for x in results if "error" in x],
        }
    return row


def render(rows: Sequence[dict[str, Any]], repeats: int) -> str:
    from distgp.bench.report import markdown_table

    table, within, within_cpu, same = [], 0, 0, 0
    names = list(rows[0]["settings"]) if rows else []
    for row in rows:
        medians = {k: v["median_seconds"] for k, v in row["settings"].items()}
        cpus = {k: v["median_cpu"] for k, v in row["settings"].items()}
        ratio, ratio_cpu = _installed_ratio(medians), _installed_ratio(cpus)
        mses = {m for v in row["settings"].values() for m in v["mse"]}
        spread = (max(mses) - min(mses)) / max(abs(min(mses)), 1e-300) if mses else None
        within += ratio is not None and ratio <= TARGET_RATIO
        within_cpu += ratio_cpu is not None and ratio_cpu <= TARGET_RATIO
        same += spread is not None and spread <= 1e-6
        table.append(
            {
                "dataset": row["dataset"],
                **{f"{k} s": medians[k] for k in names},
                "installed / best": ratio,
                **{f"{k} CPU s": cpus[k] for k in names},
                "installed / best (CPU)": ratio_cpu,
                "MSE rel. spread": spread,
            }
        )
    columns = list(table[0]) if table else []
    return "\n".join(
        [
            f"Median learning seconds of `distgp fit` (one agent, defaults) over {repeats} "
            "run(s) per setting, each a fresh process; settings alternate within each repeat. "
            "`as installed`: no thread variable set; `OMP=k`: OMP_NUM_THREADS, "
            "OPENBLAS_NUM_THREADS and MKL_NUM_THREADS all k. `CPU s`: median CPU seconds of the "
            "whole fit process (imports included). `MSE rel. spread`: relative range of the test "
            "MSE over every run.",
            "",
            markdown_table(table, columns),
            "",
            f"* as installed within {TARGET_RATIO}x of the best setting on {within} of "
            f"{len(rows)} datasets in wall time, on {within_cpu} in CPU time; same test MSE "
            f"(to 1e-6) on {same} of {len(rows)}",
        ]
    )


def _installed_ratio(medians: dict[str, float | None]) -> float | None:
    """Median of the as-installed setting over the best median (``None`` if missing)."""
    valid = [v for v in medians.values() if v is not None]
    installed = medians.get("as installed")
    return installed / min(valid) if installed is not None and valid and min(valid) > 0 else None
