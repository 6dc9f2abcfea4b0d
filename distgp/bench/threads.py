"""``distgp bench threads``: ``distgp fit`` as installed against fixed BLAS thread settings.

Each fit runs as a fresh ``python -m distgp fit`` process, with the thread variables
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) removed from its environment
("as installed"), or all set to 1, or all set to 2, plus ``--threads`` variants when asked.
Settings alternate within each repeat, each repeat starting one setting later, so they share
the machine's load and none is always first; ``--load K`` adds K busy processes of its own for
the whole run (:mod:`distgp.bench.busy`). The table gives the median learning seconds
(``metrics.json`` ``seconds`` + ``tune_seconds``: the final fit and the outer choice's
candidate fits before it, all that a user waits for beyond start-up and output) over the
repeats, the median CPU seconds of the whole fit process (user + system, all its threads: other
work on a shared machine stretches wall time far more than CPU time, and spinning BLAS threads
show up in it), the as-installed process's wall time, the ratios of the as-installed run to the
best setting and to the one-thread run, and whether every setting reached the same test MSE.
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
TARGET_SECONDS = 30.0  # issue 13: every fit with n <= MAX_N learns in under this
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
    parser.add_argument(
        "--load",
        type=at_least(0),
        default=0,
        metavar="K",
        help="run K busy processes of our own beside the fits (default 0; RESULTS.md section "
        "threads-load when K > 0)",
    )


def run(args: argparse.Namespace) -> int:
    from distgp.bench.busy import busy_processes
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
    if args.datasets is not None:
        names = choose_datasets(args.datasets, (), folder)
    else:
        default = QUICK_DATASETS if args.quick else small_datasets(folder, every_dataset(folder))
        names = choose_datasets(None, default, folder)
    progress = Progress()
    load_start = os.getloadavg()[0]
    with busy_processes(args.load):
        sources = [Path(dataset_source(folder, n)) for n in names]
        rows = [measure(path, settings, repeats, progress) for path in sources]
        load = (load_start, os.getloadavg()[0])
    body = render(rows, repeats, args.load) + "\n\n" + load_note(*load)
    if args.load:
        body += (
            f" The end value includes the {args.load} busy process(es) of --load; the start "
            "value was read before they started."
        )
    suite = "threads-load" if args.load else "threads"
    payload = {"suite": suite, "load": load, "busy_processes": args.load, "datasets": rows}
    publish(args, suite, body, payload)
    return 0


def small_datasets(folder: Path, names: Sequence[str]) -> list[str]:
    """The datasets whose training set has at most :data:`MAX_N` points."""
    from distgp.bench.kernel import dataset_source
    from distgp.data import load_dataset

    return [n for n in names if len(load_dataset(dataset_source(folder, n)).y_train) <= MAX_N]


def fit_once(path: Path, blas: str | None, threads: int | None) -> dict[str, Any]:
    """One ``distgp fit`` in a fresh process; ``blas`` sets every thread variable (``None``:
    removed). Returns ``seconds`` (learning: the final fit's and the outer choice's, also
    apart as ``fit_seconds`` and ``tune_seconds``), ``wall`` and ``cpu`` (the process), ``mse``,
    ``n`` and ``dims``; or ``error``."""
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
    return {
        "seconds": metrics["seconds"] + metrics["tune_seconds"],
        "fit_seconds": metrics["seconds"],
        "tune_seconds": metrics["tune_seconds"],
        "wall": wall,
        "cpu": cpu,
        "mse": metrics["mse"],
        "n": metrics["n_train"],
        "dims": metrics["dims"],
    }


def measure(
    path: Path,
    settings: dict[str, tuple[str | None, int | None]],
    repeats: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Every setting ``repeats`` times (alternating, each repeat starting one setting later),
    medians per setting."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    names = list(settings)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # no setting always first
            blas, threads = settings[name]
            result = fit_once(path, blas, threads)
            runs[name].append(result)
            shown = result.get("error") or (
                f"{result['seconds']:.2f} s  CPU {result['cpu']:.2f} s  MSE {result['mse']:.6g}"
            )
            progress(f"{path.stem:16s} {name:14s} run {r + 1}: {shown}")
    done = [x for results in runs.values() for x in results if "error" not in x]
    row: dict[str, Any] = {
        "dataset": path.stem,
        "n": done[0]["n"] if done else None,
        "dims": done[0]["dims"] if done else None,
        "settings": {},
    }
    for name, results in runs.items():
        ok = [x for x in results if "error" not in x]

        def median(key: str, ok=ok) -> float | None:
            return statistics.median(x[key] for x in ok) if ok else None

        row["settings"][name] = {
            "median_seconds": median("seconds"),
            "median_tune_seconds": median("tune_seconds"),
            "median_cpu": median("cpu"),
            "median_wall": median("wall"),
            "runs": [x.get("seconds") for x in results],
            "cpu_runs": [x.get("cpu") for x in results],
            "wall_runs": [x.get("wall") for x in results],
            "mse": sorted({x["mse"] for x in ok}),
            "errors": [x["error"] for x in results if "error" in x],
        }
    return row


def render(rows: Sequence[dict[str, Any]], repeats: int, load: int = 0) -> str:
    from distgp.bench.report import fmt, markdown_table

    table, within, within_cpu, same, under_one = [], 0, 0, 0, 0
    names = list(rows[0]["settings"]) if rows else []
    for row in rows:
        settings = row["settings"]
        medians = {k: v["median_seconds"] for k, v in settings.items()}
        cpus = {k: v["median_cpu"] for k, v in settings.items()}
        ratio, ratio_cpu = _installed_ratio(medians), _installed_ratio(cpus)
        one = _over(medians.get("as installed"), medians.get("OMP=1"))
        mses = {m for v in settings.values() for m in v["mse"]}
        spread = (max(mses) - min(mses)) / max(abs(min(mses)), 1e-300) if mses else None
        within += ratio is not None and ratio <= TARGET_RATIO
        within_cpu += ratio_cpu is not None and ratio_cpu <= TARGET_RATIO
        under_one += one is not None and one <= 1.0
        same += spread is not None and spread <= 1e-6
        installed = settings.get("as installed", {})
        table.append(
            {
                "dataset": row["dataset"],
                "n x P": f"{row.get('n')} x {row.get('dims')}",
                **{f"{k} s": medians[k] for k in names},
                "installed / best": ratio,
                "installed / OMP=1": one,
                **{f"{k} CPU s": cpus[k] for k in names},
                "installed / best (CPU)": ratio_cpu,
                "as installed wall s": installed.get("median_wall"),
                "MSE rel. spread": spread,
                "_tune": installed.get("median_tune_seconds"),
            }
        )
    columns = [c for c in (table[0] if table else []) if not c.startswith("_")]
    beside = (
        f" with {load} busy process(es) of this suite (`--load {load}`, each a pure-Python "
        "loop) running beside every fit"
        if load
        else ""
    )
    return "\n".join(
        [
            f"Median learning seconds of `distgp fit` (one agent, defaults) over {repeats} "
            f"run(s) per setting, each a fresh process{beside}; settings alternate within each "
            "repeat, each repeat starting one setting later. Learning seconds: `metrics.json` "
            "`seconds` + `tune_seconds`, the final fit "
            "and the outer choice's candidate fits before it (a 1-D series' default model "
            "selection), i.e. all the learning a user waits for; `as installed wall s`: the "
            "whole as-installed process (start-up, data, learning, prediction, outputs). "
            "`as installed`: no thread variable set; `OMP=k`: OMP_NUM_THREADS, "
            "OPENBLAS_NUM_THREADS and MKL_NUM_THREADS all k. `CPU s`: median CPU seconds of the "
            "whole fit process (imports included). `MSE rel. spread`: relative range of the test "
            "MSE over every run.",
            "",
            markdown_table(table, columns),
            "",
            f"* as installed within {TARGET_RATIO}x of the best setting on {within} of "
            f"{len(rows)} datasets in learning time, on {within_cpu} in CPU time; at most the "
            f"OMP=1 learning time on {under_one} of {len(rows)} (largest ratio "
            f"{fmt(_largest(table, 'installed / OMP=1'))}); same test MSE (to 1e-6) on {same} "
            f"of {len(rows)}",
            _seconds_line(table),
        ]
    )


def _largest(table: Sequence[dict[str, Any]], column: str) -> float | None:
    values = [r[column] for r in table if r.get(column) is not None]
    return max(values) if values else None


def _seconds_line(table: Sequence[dict[str, Any]]) -> str:
    """The issue-13 time target: as-installed learning (and process wall) seconds."""
    from distgp.bench.report import fmt

    learn = [(r["as installed s"], r["dataset"]) for r in table if r.get("as installed s")]
    wall = [r["as installed wall s"] for r in table if r.get("as installed wall s")]
    if not learn:
        return "* no as-installed run finished"
    slowest, name = max(learn)
    tune = next(r["_tune"] for r in table if r["dataset"] == name)
    return (
        f"* as installed, learning took under {TARGET_SECONDS:g} s on "
        f"{sum(v < TARGET_SECONDS for v, _ in learn)} of {len(learn)} datasets (slowest "
        f"{name}: {fmt(slowest)} s, of which {fmt(tune)} s the outer choice's candidates); the "
        f"whole process under {TARGET_SECONDS:g} s on {sum(v < TARGET_SECONDS for v in wall)} "
        f"of {len(wall)}"
    )


def _installed_ratio(medians: dict[str, float | None]) -> float | None:
    """Median of the as-installed setting over the best median (``None`` if missing)."""
    valid = [v for v in medians.values() if v is not None]
    return _over(medians.get("as installed"), min(valid) if valid else None)


def _over(value: float | None, base: float | None) -> float | None:
    """``value / base``, or ``None`` when either is missing or ``base`` is not positive."""
    return value / base if value is not None and base is not None and base > 0 else None
