"""``distgp bench tune``: ``distgp fit --tune`` against the defaults on the 13 shared datasets.

Per dataset: the default fit (``distgp fit``'s path: one agent, the rolling-origin selection for
a 1-D series) and the tuned fit (``distgp fit --tune BUDGET --backend ray [--agents N]``: BKB
over the outer settings in batches of 4, scored by Ray agents, four at a time, see
:mod:`distgp.tune_shards`), each timed wall-clock in this process, the tuned one from starting
Ray to the last prediction. With ``--agents N > 1`` also the untuned fit with the same agents
(inline backend: the same numbers as Ray), which separates what tuning gains from what
sharding costs. Each dataset's record is appended to ``--jsonl`` as soon as it is measured, so
a partial run keeps its rows; ``--from-jsonl`` renders saved rows without running anything.

The 13 datasets: the 8 shared 1-D series, ``builtin:co2`` and the four multi-dimensional sets of
at most 1000 points (``cccp9500`` is left to ``distgp bench admm``: above
:data:`distgp.bench.kernel.MAX_GSMP_N` a one-agent default fit is not run).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distgp.bench import kernel

DATASETS = (
    *(name for name in kernel.DATASETS if name != "cccp9500"),
    *kernel.BUILTIN_DATASETS,
)
QUICK_DATASETS = ("employmentdata", "ale80")
BUDGET = 32
QUICK_BUDGET = 8
AGENTS = 1
TIME_TARGET = 32.0  # tuned wall time at most this many default fits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distgp.bench.report import add_common_arguments, add_run_arguments
    from distgp.cli.common import at_least

    add_common_arguments(parser)
    add_run_arguments(
        parser, "the 13 shared datasets; --quick: " + ",".join(QUICK_DATASETS), seed=False
    )
    parser.add_argument(
        "--budget",
        type=at_least(2),
        metavar="T",
        help=f"tuning evaluations (default {BUDGET}; --quick {QUICK_BUDGET})",
    )
    parser.add_argument(
        "--agents",
        type=at_least(1),
        default=AGENTS,
        metavar="N",
        help=f"agents of the tuned fit, over Ray (default {AGENTS}: four Ray agents then score "
        "each batch, each holding the training set)",
    )
    parser.add_argument(
        "--jsonl", metavar="PATH", help="append each dataset's record to this file when measured"
    )
    parser.add_argument(
        "--from-jsonl",
        metavar="PATH",
        help="render the records of one earlier --jsonl run (one budget and agent count, each "
        "dataset once); run nothing",
    )


def run(args: argparse.Namespace) -> int:
    from distgp.bench.report import data_dir, load_note, publish
    from distgp.cli.common import Progress

    if args.from_jsonl:
        return from_jsonl(args)
    budget = args.budget or (QUICK_BUDGET if args.quick else BUDGET)
    folder = data_dir(args.data_dir)
    names = kernel.choose_datasets(
        args.datasets, QUICK_DATASETS if args.quick else DATASETS, folder
    )
    progress = Progress()
    load_start = os.getloadavg()[0]
    rows = []
    for name in names:
        row = measure(name, kernel.dataset_source(folder, name), budget, args.agents, progress)
        rows.append(row)
        if args.jsonl:
            with open(args.jsonl, "a") as out:
                out.write(json.dumps(row) + "\n")
    body = render(rows) + "\n\n" + load_note(load_start, os.getloadavg()[0])
    payload = {"suite": "tune", "budget": budget, "agents": args.agents, "datasets": rows}
    recorded = argparse.Namespace(**{**vars(args), "budget": budget})
    publish(recorded, "tune", body, payload, always=("budget", "agents"))
    return 0


def from_jsonl(args: argparse.Namespace) -> int:
    """``--from-jsonl``: render saved records, recorded with the command that measures them
    (their datasets, budget and agents). Options that would change a measured run have no
    effect here and are refused."""
    from distgp.bench.report import publish, run_options
    from distgp.exceptions import ConfigError

    ignored = [f for f in run_options(args) if f != "--from-jsonl"]
    where = (("--jsonl", args.jsonl), ("--data-dir", args.data_dir))
    ignored += [flag for flag, value in where if value is not None]
    if ignored:
        raise ConfigError(
            f"{ignored[0]} has no effect with --from-jsonl, whose records carry their own "
            "settings; drop it"
        )
    rows = read_records(Path(args.from_jsonl))
    budget, agents = rows[0]["budget"], rows[0]["agents"]
    measured = {
        "from_jsonl": None,
        "datasets": ",".join(r["dataset"] for r in rows),
        "budget": budget,
        "agents": agents,
    }
    recorded = argparse.Namespace(**{**vars(args), **measured})
    payload = {"suite": "tune", "budget": budget, "agents": agents, "datasets": rows}
    publish(recorded, "tune", render(rows), payload, always=("budget", "agents"))
    return 0


def measure(
    name: str, path: str, budget: int, agents: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Default, default-sharded and tuned fits of one dataset: test MSE and wall seconds."""
    import numpy as np

    from distgp.config import FitConfig
    from distgp.data import load_dataset
    from distgp.selection import fit_selected
    from distgp.tune import tune

    data = load_dataset(path)
    X, y, series = data.X_train, data.y_train, data.series

    def mse(result) -> float:
        return float(np.mean((data.y_test - result.forecast()) ** 2))

    tic = time.perf_counter()
    default, _ = fit_selected(X, y, FitConfig(), series, X_test=data.X_test)
    default_seconds = time.perf_counter() - tic
    default_mse = mse(default)
    progress(f"{name:16s} default        MSE {default_mse:.5g}  {default_seconds:.1f} s")
    sharded: dict[str, Any] = {}
    if agents > 1:
        sharded_config = FitConfig()
        sharded_config.consensus.agents = agents
        sharded_config.backend.name = "inline"
        tic = time.perf_counter()
        result, _ = fit_selected(X, y, sharded_config, series, X_test=data.X_test)
        sharded = {"sharded_mse": mse(result), "sharded_seconds": time.perf_counter() - tic}
        progress(f"{name:16s} default {agents} ag.  MSE {sharded['sharded_mse']:.5g}")
    config = FitConfig()
    config.consensus.agents = agents
    config.backend.name = "ray"
    tic = time.perf_counter()
    tuned, evaluations, best = tune(X, y, config, series, budget, X_test=data.X_test)
    tuned_seconds = time.perf_counter() - tic
    tuned_mse = mse(tuned)
    progress(f"{name:16s} tuned          MSE {tuned_mse:.5g}  {tuned_seconds:.1f} s ({best.name})")
    return {
        "dataset": name,
        "n": len(y),
        "dims": data.dims,
        "default_mse": default_mse,
        "default_seconds": default_seconds,
        **sharded,
        "tuned_mse": tuned_mse,
        "tuned_seconds": tuned_seconds,
        "time_ratio": tuned_seconds / default_seconds,
        "tuned_better": tuned_mse < default_mse,
        "tuned_better_than_sharded": tuned_mse < sharded["sharded_mse"] if sharded else None,
        "evaluations": len(evaluations),
        "chosen": best.name,
        "heldout_mse": best.mse,
        "agents": agents,
        "budget": budget,
    }


RECORD_KEYS = (  # what render() reads of each record
    "dataset",
    "n",
    "dims",
    "agents",
    "budget",
    "default_mse",
    "default_seconds",
    "tuned_mse",
    "tuned_seconds",
    "time_ratio",
    "tuned_better",
    "tuned_better_than_sharded",
    "chosen",
)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one earlier ``--jsonl`` run (one JSON object per line): a file that is
    not one, holds no record, records a dataset twice (``--jsonl`` appends: a re-run) or mixes
    budgets or agent counts is an :class:`InputDataError` naming the line."""
    from distgp.exceptions import InputDataError

    if not path.is_file():
        raise InputDataError(f"--from-jsonl {path} is not a file; give an earlier --jsonl")
    rows: list[dict[str, Any]] = []
    numbers: dict[str, int] = {}  # dataset -> line
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{path} line {number} is not JSON ({exc.msg})") from None
        missing = [k for k in RECORD_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise InputDataError(
                f"{path} line {number} is not a record of distgp bench tune --jsonl "
                f"(no {missing[0]!r})"
            )
        if row["dataset"] in numbers:
            raise InputDataError(
                f"{path} records {row['dataset']} on lines {numbers[row['dataset']]} and "
                f"{number}; keep the lines of one run"
            )
        for key in ("budget", "agents"):
            if rows and row[key] != rows[0][key]:
                raise InputDataError(
                    f"{path} line {number} has {key} {row[key]}, line {numbers[rows[0]['dataset']]}"
                    f" {rows[0][key]}; keep the lines of one run"
                )
        numbers[row["dataset"]] = number
        rows.append(row)
    if not rows:
        raise InputDataError(f"{path} holds no record; give an earlier --jsonl")
    return rows


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The table and the target lines."""
    from distgp.bench.report import markdown_table

    agents, budget = rows[0]["agents"], rows[0]["budget"]
    table = [
        {
            "dataset": r["dataset"],
            "n": r["n"],
            "P": r["dims"],
            "default MSE": r["default_mse"],
            "default s": r["default_seconds"],
            f"default {agents} agents MSE": r.get("sharded_mse"),
            "tuned MSE": r["tuned_mse"],
            "tuned s": r["tuned_seconds"],
            "time ratio": r["time_ratio"],
            "tuned < default": r["tuned_better"],
            f"tuned < default {agents} agents": r["tuned_better_than_sharded"],
            "chosen": r["chosen"],
        }
        for r in rows
    ]
    better = [r["dataset"] for r in rows if r["tuned_better"]]
    better_sharded = [r["dataset"] for r in rows if r["tuned_better_than_sharded"]]
    in_time = [r["dataset"] for r in rows if r["time_ratio"] <= TIME_TARGET]
    slowest = max(rows, key=lambda r: r["time_ratio"])
    columns = [c for c in table[0] if agents > 1 or f"{agents} agents" not in c]
    how = (
        "four Ray agents, each holding the training set, score each batch of 4 side by side; "
        "the final fit is one agent's"
        if agents == 1
        else f"the {agents} agents score each batch of 4 on their own shards; the final fit over "
        f"the same {agents} agents"
    )
    lines = [
        f"`default`: `distgp fit` defaults (one agent). `tuned`: `--tune {budget} --backend ray "
        f"--agents {agents}` ({how}). Seconds are wall time in one process, the tuned ones from "
        "starting Ray to shutting it down after the last prediction; the time ratio is tuned / "
        "default.",
        "",
        markdown_table(table, columns),
        "",
        f"* tuned test MSE below the default fit's on {len(better)} of {len(rows)} "
        f"(target >= 9 of 13): {', '.join(better) or 'none'}",
    ]
    if agents > 1:
        lines.append(
            f"* tuned test MSE below the untuned {agents}-agent fit's on {len(better_sharded)} "
            f"of {len(rows)}: {', '.join(better_sharded) or 'none'}"
        )
    lines += [
        f"* tuned within {TIME_TARGET:g}x the default fit's time on {len(in_time)} of "
        f"{len(rows)} (slowest: {slowest['dataset']}, {slowest['time_ratio']:.1f}x)",
    ]
    return "\n".join(lines)
