"""``distgp bench kernel``: GSMP kernel learning on the SLIM-KL datasets against the baselines.

For every dataset of the shared folder: test MSE, NLPD, learning time, active components and peak
memory of GSMP with the data-driven grid and with the reference grid (one agent, DSCA), beside
GPyTorch exact GPs with RBF-ARD and SpectralMixture(10) kernels (of several seeds the restart with
the lowest training loss), the trivial baselines (training mean; for the 1-D series naive, drift,
seasonal naive with and without drift), statsmodels ETS chosen by AICc (1-D series,
:mod:`distgp.bench.forecasts`) and the paper's published numbers. ``builtin:co2`` (the README's
headline job) runs beside the shared files. A second table compares noise floors (learned noise
against a robust noise estimate). Every model run happens in a fresh process, so its peak resident
memory is its own; GSMP runs go one at a time (their timings are the targets), baselines ``--jobs``
at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distgp.memory import peak_rss_mb

PAPER: dict[str, tuple[float, str]] = {
    "ECG_signal": (1.1e-2, "FUSION'22 GSM-DSCA"),
    "CO2": (0.92, "FUSION'22 GSM-DSCA"),
    "electricitydata": (4.3e3, "FUSION'22 GSM-DSCA"),
    "employmentdata": (54.0, "FUSION'22 GSM-DSCA"),
    "hoteldata": (4.2e2, "FUSION'22 GSM-DSCA"),
    "passengerdata": (69.0, "FUSION'22 GSM-DSCA"),
    "clay": (85.0, "FUSION'22 GSM-DSCA"),
    "unemployment": (2.0e3, "FUSION'22 GSM-DSCA"),
    "ale80": (0.0244, "SLIM-KL code, N=1"),
    "airfoil600": (9.52, "SLIM-KL code, N=1"),
    "cccp1000": (15.93, "SLIM-KL code, all N"),
    "concrete824": (82.1, "SLIM-KL code, N=2"),
}
"""Published test MSE (raw units): reference numbers, not measured here. 1-D series: Suwandi et al.,
FUSION 2022, GSM-DSCA column; multi-D: the SLIM-KL authors' saved GSMP results."""

DATASETS = (
    "electricitydata",
    "passengerdata",
    "hoteldata",
    "employmentdata",
    "unemployment",
    "clay",
    "CO2",
    "ECG_signal",
    "ale80",
    "airfoil600",
    "cccp1000",
    "concrete824",
    "cccp9500",
)
BUILTIN_DATASETS = ("builtin:co2",)
QUICK_DATASETS = ("electricitydata", "ale80")
NOISE_FLOORS = (1e-3, 1e-2)
ESTIMATE_CLIP = (1e-4, 0.5)  # the estimated-noise floor is clipped into this range
FAST_FIT_N = 1000  # datasets up to this size should learn in under FAST_FIT_SECONDS
FAST_FIT_SECONDS = 60.0
MEMORY_DATASET = "concrete824"
MEMORY_TARGET_MB = 2048.0
MAX_GSMP_N = 2000  # single-agent GSMP above this n is left to the admm suite
REFERENCE_BUDGET = 1e10  # skip the reference grid when n^2 x (cosine directions) exceeds this
QUICK_ITERATIONS = 40
FLOOR_TARGET = 1.0 / 3.0  # fraction of the flop floor each iteration should reach


# ----------------------------------------------------------------------------------------------
# Running one model in a fresh process


def gsmp_run(dataset, overrides: dict[str, Any], backend=None) -> dict[str, Any]:
    """Fit GSMP with ``FitConfig`` defaults changed by dotted ``overrides`` and score it.

    Args:
        dataset: a :class:`~distgp.data.Dataset` (raw units).
        overrides: e.g. ``{"kernel.grid": "reference", "consensus.agents": 4}``.
        backend: an already built backend (default: from the config).

    Returns:
        ``mse``, ``rmse``, ``nlpd`` (raw units), ``seconds`` (learning only), ``predict_seconds``,
        ``iterations``, ``rounds``, ``seconds_per_round`` (mean wall seconds of an ADMM round),
        ``converged``, ``bits_sent``, ``bits_float64``, ``active``, ``components``,
        ``noise_fraction`` (learned noise / var(y)), ``noise_floor``, ``agents``, ``shard_sizes``.
    """
    import numpy as np

    from distgp import flops
    from distgp.config import FitConfig
    from distgp.gp import regression_metrics
    from distgp.holdout import configured
    from distgp.selection import fit_selected

    config = configured(FitConfig(), overrides)
    tic = time.perf_counter()
    with flops.counting() as counted:  # prediction (one factorisation) included
        result, evaluations = fit_selected(
            dataset.X_train,
            dataset.y_train,
            config,
            dataset.series,
            backend=backend,
            X_test=dataset.X_test,
        )
    selection_seconds = sum(e.seconds for e in evaluations)
    model = result.model
    mean, std = result.prediction
    extra: dict[str, Any] = {}
    if model.private:  # the pooled prediction of the same kernel, for comparison
        pooled = pooled_model(model, dataset)
        scores = pooled.score(dataset.X_test, dataset.y_test)
        extra = {"mse_pooled": scores["mse"], "nlpd_pooled": scores["nlpd"]}
    if result.rounds:
        extra.update(
            bits_rounds=int(sum(r.bits for r in result.history)),
            bits_float64_rounds=int(sum(r.bits_float64 for r in result.history)),
            **{key: float(value) for key, value in result.stop.items()},
        )
    return {
        **flop_floor(counted, result, config),
        **regression_metrics(dataset.y_test, mean, std, model.transform),
        **extra,
        "prediction": "private" if model.private else "pooled",
        "objective": result.objective,
        "bits_float64_dense": int(result.bits_float64_dense),
        "seconds": result.seconds + selection_seconds,
        "selection_seconds": selection_seconds,
        "selected": next((e.name for e in evaluations if e.chosen), None),
        "predict_seconds": time.perf_counter() - tic - result.seconds - selection_seconds,
        "iterations": result.iterations,
        "rounds": result.rounds,
        "seconds_per_round": (
            float(np.mean([r.seconds for r in result.history])) if result.rounds else None
        ),
        "converged": result.converged,
        "bits_sent": int(result.bits_sent),
        "bits_float64": int(result.bits_float64),
        "active": int((model.weights > 0).sum()),
        "components": model.components,
        "noise_fraction": float(model.noise_variance),
        "noise_floor": config.learn.noise_floor,
        "agents": result.agents,
        "shard_sizes": list(result.shard_sizes),
    }


def pooled_model(model, dataset):
    """The same kernel conditioned on all training data in this process (benchmarks only)."""
    import dataclasses

    return dataclasses.replace(
        model,
        X_train=model.scaler.x(dataset.X_train),
        y_train=model.scaler.y(model.transform.forward(dataset.y_train)),
    )


def flop_floor(counted: dict[str, float], result, config) -> dict[str, Any]:
    """Flops per DSCA iteration (as counted), this machine's dense rates at the shard size under
    the fit's own thread plan (GEMM-type work: the aggregate rate of ``plan.workers`` concurrent
    streams of ``plan.blas`` threads, as the bank runs its envelope groups), and the fraction of
    that floor each iteration reached, in wall time and in this process's CPU time over the same
    span (``result.cpu_seconds``; other work on a shared machine stretches the wall time, not
    the CPU time).

    Only for one in-process agent (the counter sees the agents' flops only then)."""
    from distgp import flops
    from distgp.threads import owned_threads

    if result.agents != 1 or config.backend_name != "inline" or not result.iterations:
        return {}
    n = int(result.shard_sizes[0])
    with owned_threads(n, config.learn.threads) as plan:  # the GEMMs: workers streams at once
        rates = flops.measured_rates(n, streams=plan.workers)
        cpu_rates = flops.measured_rates(n, clock=time.process_time, streams=plan.workers)
    per_iteration = {k: v / result.iterations for k, v in counted.items()}
    floor = flops.floor_seconds(per_iteration, rates)
    cpu_floor = flops.floor_seconds(per_iteration, cpu_rates)
    measured = result.seconds / result.iterations
    cpu_measured = result.cpu_seconds / result.iterations
    return {
        "flops_per_iteration": per_iteration,
        "rates": rates,
        "cpu_rates": cpu_rates,
        "blas_threads": plan.blas,
        "workers": plan.workers,
        "floor_seconds_per_iteration": floor,
        "seconds_per_iteration": measured,
        "floor_fraction": floor / measured if measured > 0 else None,
        "cpu_seconds_per_iteration": cpu_measured,
        "cpu_floor_fraction": cpu_floor / cpu_measured if cpu_measured > 0 else None,
    }


def _runners() -> dict[str, Callable[..., dict[str, Any]]]:
    from distgp.bench import baselines, forecasts

    return {
        "gsmp": gsmp_run,
        "rbf": baselines.gpytorch_rbf,
        "sm": baselines.gpytorch_sm,
        "rbcm": baselines.rbcm,
        "ets": forecasts.ets,
    }


def execute(runner: str, path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run one model on one dataset in this process; errors become an ``error`` entry.

    Meant to run in a fresh worker process: ``peak_rss_mb`` is then the model's peak memory
    (including the interpreter and imports, ``start_rss_mb`` after loading the data).
    """
    from threadpoolctl import threadpool_limits

    from distgp.data import load_dataset

    if runner != "gsmp":  # GSMP does not import torch; its memory then excludes torch's
        import torch

        torch.set_num_threads(1)
    dataset = load_dataset(path)
    start = peak_rss_mb()
    # Baselines run --jobs at a time on one thread each; GSMP runs as installed (distgp sets
    # its own thread limits, whatever the environment says).
    with threadpool_limits(1) if runner != "gsmp" else contextlib.nullcontext():
        try:
            result = _runners()[runner](dataset, **options)
        except Exception as exc:  # a failed model is a table entry, not the end of the suite
            text = " ".join(str(exc).split())[:200]
            result = {"error": f"{type(exc).__name__}: {text}"}
    result["start_rss_mb"] = start
    result["peak_rss_mb"] = peak_rss_mb()
    return result


@dataclass(frozen=True)
class Task:
    """One model run: ``runner`` (a key of the runner table) on the dataset at ``path``."""

    dataset: str
    method: str
    runner: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


STOP_POLL_SECONDS = 0.2  # how often a model run's thread checks whether the suite stopped


def run_isolated(
    tasks: Sequence[Task], jobs: int, timeout: float, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Run each task in its own spawned process, ``jobs`` at a time; results in task order.

    A task that runs past ``timeout`` seconds is killed and reported as an error. When the
    suite stops (Ctrl-C, SIGTERM) the runs in progress are killed at once.
    """
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def one(task: Task) -> dict[str, Any]:
        with context.Pool(1) as pool:  # leaving it kills the run if it is still going
            pending = pool.apply_async(execute, (task.runner, task.path, task.options))
            deadline = time.monotonic() + timeout
            while not pending.ready() and not stop.is_set() and time.monotonic() < deadline:
                pending.wait(STOP_POLL_SECONDS)
            if stop.is_set():
                return {"error": "stopped"}
            if not pending.ready():
                out = {"error": f"killed after the {timeout:g} s limit (--timeout)"}
            else:
                out = pending.get()
        progress(f"{task.dataset:16s} {task.method:14s} {_brief(out)}")
        return out

    executor = ThreadPoolExecutor(max(1, jobs))
    try:
        return list(executor.map(one, tasks))
    finally:  # after an interruption: the runs stop, and no queued one starts
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"error: {result['error']}"
    return f"MSE {result['mse']:.4g}  NLPD {result['nlpd']:.3f}  {result['seconds']:.1f} s"


# ----------------------------------------------------------------------------------------------
# The suite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distgp.bench.report import add_common_arguments, add_run_arguments
    from distgp.cli.common import at_least

    add_common_arguments(parser)
    add_run_arguments(
        parser, f"every SLIM-KL dataset; --quick: {','.join(QUICK_DATASETS)}", "model run"
    )
    parser.add_argument(
        "--skip-baselines",
        action="store_true",
        help="no GPyTorch baselines (GSMP, trivial forecasts and ETS only)",
    )
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="GSMP with distgp fit's defaults only (no reference-grid or noise-floor variants)",
    )
    parser.add_argument(
        "--sm-seeds",
        type=at_least(1),
        metavar="K",
        help="SpectralMixture seeds for the median (default 5)",
    )
    parser.add_argument(
        "--jobs",
        type=at_least(1),
        default=2,
        metavar="J",
        help="baseline runs at a time (default 2; GSMP runs always go one at a time)",
    )


def run(args: argparse.Namespace) -> int:
    from distgp.bench.report import data_dir, load_note, publish
    from distgp.cli.common import Progress

    folder = data_dir(args.data_dir)
    default = QUICK_DATASETS if args.quick else every_dataset(folder)
    names = choose_datasets(args.datasets, default, folder)
    progress = Progress()
    settings = Settings.from_args(args)
    load_start = os.getloadavg()[0]
    rows = benchmark(folder, names, settings, progress)
    load = (load_start, os.getloadavg()[0])
    body = render(rows, settings) + "\n\n" + load_note(*load)
    payload = {"suite": "kernel", "settings": settings.__dict__, "load": load, "datasets": rows}
    publish(args, "kernel", body, payload)
    return 0


def every_dataset(folder: Path) -> list[str]:
    """Every ``.mat`` file of the folder: the SLIM-KL ones in :data:`DATASETS` order first."""
    available = {p.stem for p in folder.glob("*.mat")}
    ordered = [d for d in DATASETS if d in available] + sorted(available - set(DATASETS))
    return ordered + list(BUILTIN_DATASETS)


def dataset_source(folder: Path, name: str) -> str:
    """What ``distgp fit --data`` takes for a dataset: ``builtin:NAME``, or the stem's .mat file."""
    return name if name in BUILTIN_DATASETS else str(folder / f"{name}.mat")


def choose_datasets(option: str | None, default: Sequence[str], folder: Path) -> list[str]:
    """Dataset stems from ``--datasets`` (or ``default``), checked against the folder's files."""
    from distgp.exceptions import InputDataError

    names = [s.strip() for s in option.split(",") if s.strip()] if option is not None else []
    if option is not None and not names:
        raise InputDataError(f"--datasets {option!r} names no dataset; drop it to run them all")
    twice = [s for k, s in enumerate(names) if s in names[:k]]
    if twice:
        raise InputDataError(f"--datasets names {twice[0]} twice; give each dataset once")
    names = names or list(default)
    available = sorted(p.stem for p in folder.glob("*.mat"))
    missing = [s for s in names if s not in available and s not in BUILTIN_DATASETS]
    if missing:
        listed = ", ".join(available) or "none (no .mat file there: set --data-dir)"
        raise InputDataError(f"dataset {missing[0]} is not in {folder}; available: {listed}")
    return names


@dataclass
class Settings:
    """What the suite runs (recorded in the JSON output)."""

    quick: bool
    baselines: bool
    variants: bool
    seed: int
    sm_seeds: int
    jobs: int
    timeout: float
    gsmp_iterations: int | None
    baseline_iterations: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        from distgp.bench import baselines

        return cls(
            quick=args.quick,
            baselines=not args.skip_baselines,
            variants=not args.defaults_only,
            seed=args.seed,
            sm_seeds=args.sm_seeds or (2 if args.quick else baselines.SM_SEEDS),
            jobs=args.jobs,
            timeout=args.timeout,
            gsmp_iterations=QUICK_ITERATIONS if args.quick else None,
            baseline_iterations=QUICK_ITERATIONS if args.quick else baselines.ITERATIONS,
        )


def benchmark(
    folder: Path, names: Sequence[str], settings: Settings, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Run every model on every dataset; one result record per dataset."""
    from distgp.bench import baselines
    from distgp.config import FitConfig
    from distgp.data import load_dataset

    default_floor = FitConfig().learn.noise_floor
    rows: list[dict[str, Any]] = []
    gsmp_tasks: list[Task] = []
    baseline_tasks: list[Task] = []
    for name in names:
        path = dataset_source(folder, name)
        dataset = load_dataset(path)
        estimate = baselines.estimated_noise_fraction(dataset)
        row: dict[str, Any] = {
            "dataset": name,
            "n": len(dataset.y_train),
            "n_test": len(dataset.y_test),
            "dims": dataset.dims,
            "series": dataset.series,
            "paper_mse": PAPER.get(name, (None, ""))[0],
            "paper_source": PAPER.get(name, (None, ""))[1],
            "noise_estimate": estimate,
            "trivial": trivial_baselines(dataset),
            "models": {},
            "skipped": {},
        }
        rows.append(row)
        floor_est = min(max(estimate, ESTIMATE_CLIP[0]), ESTIMATE_CLIP[1])
        # the variants fix the trend (linear) so that only the default run pays for the
        # rolling-origin selection of a series
        fixed = {"kernel.trend": "linear"}
        variants = {"gsmp-data": {}, "gsmp-ref": {"kernel.grid": "reference", **fixed}}
        for floor in NOISE_FLOORS:
            if not math.isclose(floor, default_floor):
                variants[f"floor {floor:g}"] = {"learn.noise_floor": floor, **fixed}
        variants["floor est."] = {"learn.noise_floor": floor_est, **fixed}
        if not settings.variants:
            variants = {"gsmp-data": {}}
        for method, overrides in variants.items():
            reason = gsmp_skip_reason(dataset, overrides.get("kernel.grid", "data"))
            if reason:
                row["skipped"][method] = reason
                continue
            overrides = {"seed": settings.seed, **overrides}
            if settings.gsmp_iterations:
                overrides["learn.max_iterations"] = settings.gsmp_iterations
            gsmp_tasks.append(Task(name, method, "gsmp", path, {"overrides": overrides}))
        if dataset.series:  # the forecaster's baseline runs even without the GPyTorch ones
            baseline_tasks.append(Task(name, "ets", "ets", path, {"seed": settings.seed}))
        if settings.baselines:
            common = {"iterations": settings.baseline_iterations}
            baseline_tasks.append(Task(name, "rbf", "rbf", path, {"seed": settings.seed, **common}))
            restarts = {"subset_seed": settings.seed, **common}  # same data, other starts
            baseline_tasks.extend(
                Task(name, f"sm seed {s}", "sm", path, {"seed": settings.seed + s, **restarts})
                for s in range(settings.sm_seeds)
            )
    progress(f"{len(gsmp_tasks)} GSMP runs, one at a time")
    results = run_isolated(gsmp_tasks, 1, settings.timeout, progress)
    progress(f"{len(baseline_tasks)} baseline runs, {settings.jobs} at a time")
    results += run_isolated(baseline_tasks, settings.jobs, settings.timeout, progress)
    by_name = {row["dataset"]: row for row in rows}
    sm_runs: dict[str, list[dict[str, Any]]] = {}
    for task, result in zip([*gsmp_tasks, *baseline_tasks], results, strict=True):
        if task.runner == "sm":
            sm_runs.setdefault(task.dataset, []).append(result)
        else:
            by_name[task.dataset]["models"][task.method] = result
    for name, runs in sm_runs.items():
        by_name[name]["models"]["sm"] = sm_summary(runs)
    return rows


def sm_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The SM restarts as one result (:func:`~distgp.bench.baselines.best_of_seeds`), with the
    highest peak memory of the seeds that reported one: a seed killed by ``--timeout`` or
    stopped has none, and counts as a failed seed."""
    from distgp.bench import baselines

    summary = baselines.best_of_seeds(runs)
    peaks = [r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r]
    summary["peak_rss_mb"] = max(peaks, default=None)
    return summary


def gsmp_skip_reason(dataset, grid: str) -> str | None:
    """Why a single-agent GSMP run is not attempted on ``dataset`` (``None``: run it)."""
    from distgp.kernels.grid import expand, reference_grid

    n = len(dataset.y_train)
    if n > MAX_GSMP_N:
        return (
            f"n={n} > {MAX_GSMP_N}: a one-agent exact fit costs O(n^3) per DSCA iteration; "
            "see 'distgp bench admm' (8 agents)"
        )
    if grid == "reference":
        directions = sum(len(g.directions) for g in expand(reference_grid(dataset.dims)))
        cost = float(n) ** 2 * directions
        if cost > REFERENCE_BUDGET:
            return (
                f"reference grid expands to {directions} cosine directions at P={dataset.dims} "
                f"(M 2^(P-1)); n^2 x directions = {cost:.1e} > {REFERENCE_BUDGET:.0e}"
            )
    return None


TRIVIAL = ("mean", "naive", "drift", "s-naive", "s-naive+drift")


def trivial_baselines(dataset) -> dict[str, dict[str, Any]]:
    """Training mean, and for 1-D series naive, drift, seasonal naive with and without drift."""
    from distgp.bench import baselines, forecasts

    out = {"mean": baselines.train_mean(dataset)}
    if dataset.series:
        out["naive"] = forecasts.naive(dataset)
        out["drift"] = forecasts.drift(dataset)
        out["s-naive"] = baselines.seasonal_naive(dataset)
        out["s-naive+drift"] = baselines.seasonal_naive(dataset, drift=True)
    return out


# ----------------------------------------------------------------------------------------------
# Tables


def _value(row: dict[str, Any], method: str, key: str) -> float | str | None:
    """A metric of a model run, ``error``/``skipped`` when it did not run, ``None`` if not asked."""
    result = row["models"].get(method) or row["trivial"].get(method)
    if result is None:
        return "skipped" if method in row["skipped"] else None
    if "error" in result:
        return "error"
    return result.get(key)


def _number(value: Any) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _lowest(values: Sequence[Any]) -> float:
    """The smallest of the numeric ``values`` (NaN when none is a number)."""
    numbers = [v for v in map(_number, values) if not math.isnan(v)]
    return min(numbers) if numbers else math.nan


def render(rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """All tables and the target summary as markdown."""
    from distgp.bench.report import markdown_table

    mse_rows, nlpd_rows, cover_rows, cost_rows, noise_rows = [], [], [], [], []
    methods = {
        "GSMP data": "gsmp-data",
        "GSMP ref": "gsmp-ref",
        "RBF-ARD": "rbf",
        f"SM(10) best of {settings.sm_seeds}": "sm",
        "ETS": "ets",
        "train mean": "mean",
        **{name: name for name in TRIVIAL[1:]},
    }
    floor_rows = [r for r in (_floor_row(row) for row in rows) if r is not None]
    for row in rows:
        name = row["dataset"]
        head = {"dataset": name, "n": row["n"], "P": row["dims"], "paper": row["paper_mse"]}
        mse_rows.append(
            {
                **head,
                **{label: _value(row, m, "mse") for label, m in methods.items()},
                "selected": _value(row, "gsmp-data", "selected"),
                "ETS model": _value(row, "ets", "model"),
            }
        )
        nlpd_rows.append(
            {"dataset": name, **{label: _value(row, m, "nlpd") for label, m in methods.items()}}
        )
        cover_rows.append(
            {
                "dataset": name,
                **{label: _value(row, m, "coverage95") for label, m in methods.items()},
            }
        )
        cost_rows.append(
            {
                "dataset": name,
                "GSMP data s": _value(row, "gsmp-data", "seconds"),
                "iters": _value(row, "gsmp-data", "iterations"),
                "active/M": _active(row, "gsmp-data"),
                "peak MiB": _value(row, "gsmp-data", "peak_rss_mb"),
                "GSMP ref s": _value(row, "gsmp-ref", "seconds"),
                "ref active/M": _active(row, "gsmp-ref"),
                "RBF s": _value(row, "rbf", "seconds"),
                "RBF n hyper": _value(row, "rbf", "n_hyper"),
                "SM s/seed": _value(row, "sm", "seconds"),
                "SM n hyper": _value(row, "sm", "n_hyper"),
                "SM n cond": _value(row, "sm", "n_condition"),
            }
        )
        noise_rows.append(_noise_row(row))
    floors = ", ".join(f"{f:g}" for f in NOISE_FLOORS)
    parts = [
        "Test MSE, raw units. `paper`: published numbers ("
        "1-D series: FUSION'22 GSM-DSCA column, multi-D: SLIM-KL code's saved GSMP results), "
        "reference values, not measured here. GSMP runs are one agent (DSCA). `GSMP data`: the "
        "defaults of `distgp fit` (for a 1-D series the trend and bandwidth chosen by rolling "
        "origin on the training data, `selected`); `GSMP ref` and the noise-floor variants use "
        "a linear trend. Forecast baselines (1-D series): naive, drift (whole span), seasonal "
        "naive (period 12) with and without drift (last season's change), ETS chosen by AICc "
        f"(distgp.bench.forecasts). `SM(10) best of {settings.sm_seeds}`: of that many "
        "SpectralMixture restarts (seeds) on the same training points, the one with the lowest "
        "training negative log marginal likelihood; its test numbers (no test data in the "
        "choice).",
        "",
        markdown_table(mse_rows, list(mse_rows[0])),
        "",
        "Test NLPD (mean negative log predictive density, raw units; lower is better).",
        "",
        markdown_table(nlpd_rows, list(nlpd_rows[0])),
        "",
        "Coverage: fraction of test points inside the central 95% predictive interval.",
        "",
        markdown_table(cover_rows, list(cover_rows[0])),
        "",
        "Cost: GSMP learning seconds (wall, DSCA only), DSCA iterations, active components / M, "
        "peak resident memory of the fit process (MiB, interpreter and imports included); "
        "baseline seconds include prediction (SM: median per seed, runs "
        f"{settings.jobs} at a time). `n hyper` / `n cond`: points used to train the "
        "hyperparameters / to condition the prediction (random subsets above the caps).",
        "",
        markdown_table(cost_rows, list(cost_rows[0])),
        "",
        "Noise: learned noise variance as a fraction of var(y) with the default floor, the "
        "robust estimate (baselines.estimated_noise_fraction), and test MSE / learned noise with "
        f"the floor at {floors} and at the estimate (the library has no fixed-noise option; a "
        "floor at the estimate is the nearest setting: the noise is learned but cannot fall "
        "below the estimate).",
        "",
        markdown_table(noise_rows, list(noise_rows[0])),
        "",
        *_floor_section(rows, floor_rows),
        *summary_lines(rows),
    ]
    skipped = [
        f"* {row['dataset']} {method}: {reason}"
        for row in rows
        for method, reason in row["skipped"].items()
    ]
    errors = [
        f"* {row['dataset']} {method}: {result['error']}"
        for row in rows
        for method, result in row["models"].items()
        if "error" in result
    ] + [
        f"* {row['dataset']} sm: {len(sm['seed_errors'])} of {settings.sm_seeds} seeds failed "
        f"({'; '.join(sm['seed_errors'])})"
        for row in rows
        if (sm := row["models"].get("sm")) and sm.get("seed_errors")
    ]
    if skipped:
        parts += ["", "Skipped runs:", "", *skipped]
    if errors:
        parts += ["", "Failed runs:", "", *errors]
    if settings.quick:
        parts += ["", f"--quick: {QUICK_ITERATIONS} iterations per model; not comparable."]
    return "\n".join(parts)


def _floor_row(row: dict[str, Any]) -> dict[str, Any] | None:
    result = row["models"].get("gsmp-data")
    if not result or "floor_fraction" not in result:
        return None
    per_it = result["flops_per_iteration"]
    rates = result["rates"]
    return {
        "dataset": row["dataset"],
        "n": row["n"],
        "P": row["dims"],
        "iters": result["iterations"],
        "GEMM MF/it": per_it["gemm"] / 1e6,
        "chol MF/it": per_it["cholesky"] / 1e6,
        "inv MF/it": per_it["inverse"] / 1e6,
        "GEMM GF/s": rates["gemm"] / 1e9,
        "chol GF/s": rates["cholesky"] / 1e9,
        "inv GF/s": rates["inverse"] / 1e9,
        "threads": f"{result['blas_threads']}x{result['workers']}",
        "floor ms/it": 1e3 * result["floor_seconds_per_iteration"],
        "ms/it": 1e3 * result["seconds_per_iteration"],
        "of floor": result["floor_fraction"],
        "CPU ms/it": 1e3 * result["cpu_seconds_per_iteration"],
        "of floor (CPU)": result["cpu_floor_fraction"],
    }


def _floor_section(rows: Sequence[dict[str, Any]], floor_rows: list[dict[str, Any]]) -> list[str]:
    """The flop-floor table (when a run reported flops) and its target line over every
    multi-dimensional dataset (when there is one): one without a floor fraction (failed,
    skipped, measured 0 s) counts as not met and is named."""
    from distgp.bench.report import markdown_table

    multi = [row["dataset"] for row in rows if row["dims"] > 1]
    target = [_floor_target(multi, {r["dataset"]: r for r in floor_rows}), ""] if multi else []
    if not floor_rows:
        return target
    return [
        "Flop floor of GSMP data (one agent): flops per DSCA iteration as the code does them "
        "(counted at every dense call of the final fit and its prediction, trial steps "
        "included, not the held-out fits of a series' default path, divided by the "
        "iterations; MF = 1e6 flops): GEMM-type (forming the covariance, traces and quadratic "
        "forms), Cholesky, and the inverse from the factor; this machine's rates at the same n "
        "under the fit's thread plan (`threads`: BLAS threads x envelope-group workers), "
        "measured in the fit's process after it. `GEMM GF/s` is the aggregate rate of "
        "`workers` products run at once, each on `BLAS threads` (the bank runs its envelope "
        "groups' products so); Cholesky and inverse run one at a time in the fit and are rated "
        "so, as are solves (at one product's rate); `floor ms/it`: those flops at those rates; "
        "`of floor`: floor / measured seconds per iteration. `CPU ms/it` and `of floor (CPU)`: "
        "the same with the fit's process CPU time over the same span as its wall time "
        "and rates per CPU second (other work on a shared machine stretches wall time, not CPU "
        "time). Element-wise work is not counted.",
        "",
        markdown_table(floor_rows, list(floor_rows[0])),
        "",
        *target,
    ]


def _floor_target(multi: Sequence[str], by_name: dict[str, dict[str, Any]]) -> str:
    """The flop-floor target line over the ``multi`` datasets (floor rows ``by_name``)."""

    def fraction(name: str, column: str) -> float:
        return _number(by_name.get(name, {}).get(column))

    wall = [d for d in multi if fraction(d, "of floor") >= FLOOR_TARGET]
    cpu = [d for d in multi if fraction(d, "of floor (CPU)") >= FLOOR_TARGET]
    missing = [d for d in multi if math.isnan(fraction(d, "of floor"))]
    return (
        f"* each DSCA iteration reaches >= {FLOOR_TARGET:.2f} of the floor on {len(wall)} of "
        f"{len(multi)} multi-dimensional datasets in wall time ({', '.join(wall) or 'none'}),"
        f" on {len(cpu)} in CPU time ({', '.join(cpu) or 'none'})" + _unmeasured(missing)
    )


def _unmeasured(names: Sequence[str]) -> str:
    """A target line's tail naming the datasets it could not measure (counted as not met)."""
    return f"; not measured, counted as not met: {', '.join(names)}" if names else ""


def _active(row: dict[str, Any], method: str) -> str | None:
    result = row["models"].get(method)
    if result is None or "error" in result:
        return None
    return f"{result['active']}/{result['components']}"


def _noise_row(row: dict[str, Any]) -> dict[str, Any]:
    from distgp.config import FitConfig

    default_floor = FitConfig().learn.noise_floor
    out: dict[str, Any] = {
        "dataset": row["dataset"],
        "estimate": row["noise_estimate"],
        "learned (default)": _value(row, "gsmp-data", "noise_fraction"),
    }
    for floor in NOISE_FLOORS:
        method = "gsmp-data" if math.isclose(floor, default_floor) else f"floor {floor:g}"
        out[f"MSE floor {floor:g}"] = _value(row, method, "mse")
        out[f"noise floor {floor:g}"] = _value(row, method, "noise_fraction")
    out["MSE floor est."] = _value(row, "floor est.", "mse")
    out["noise floor est."] = _value(row, "floor est.", "noise_fraction")
    out["NLPD floor est."] = _value(row, "floor est.", "nlpd")
    return out


def summary_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The targets of the issue, counted from the measured rows."""
    with_paper = [r for r in rows if r["paper_mse"] is not None]
    beats_paper = [
        r["dataset"] for r in with_paper if _number(_value(r, "gsmp-data", "mse")) <= r["paper_mse"]
    ]
    beats_gpytorch = [
        r["dataset"]
        for r in rows
        if _number(_value(r, "gsmp-data", "mse"))
        < _lowest([_value(r, "rbf", "mse"), _value(r, "sm", "mse")])
        and not math.isnan(_number(_value(r, "rbf", "mse")))
        and not math.isnan(_number(_value(r, "sm", "mse")))
    ]
    baselined = [
        r
        for r in rows
        if not math.isnan(_number(_value(r, "rbf", "mse")))
        and not math.isnan(_number(_value(r, "sm", "mse")))
    ]
    series = [r for r in rows if r["series"]]
    beats_trivial = [
        r["dataset"]
        for r in series
        if _number(_value(r, "gsmp-data", "mse"))
        <= _lowest([res.get("mse") for res in r["trivial"].values()])
    ]
    beats_ets = [
        r["dataset"]
        for r in series
        if _number(_value(r, "gsmp-data", "mse")) < _number(_value(r, "ets", "mse"))
    ]
    no_ets = [
        r["dataset"]
        for r in series
        if math.isnan(_number(_value(r, "ets", "mse")))
        or math.isnan(_number(_value(r, "gsmp-data", "mse")))
    ]
    beats_mean = [
        r["dataset"]
        for r in rows
        if _number(_value(r, "gsmp-data", "mse")) <= _number(_value(r, "mean", "mse"))
    ]
    small = [r for r in rows if r["n"] <= FAST_FIT_N]
    times = {r["dataset"]: _number(_value(r, "gsmp-data", "seconds")) for r in small}
    fast = [name for name, s in times.items() if s < FAST_FIT_SECONDS]
    measured = [(name, s) for name, s in times.items() if not math.isnan(s)]  # failed runs out
    slowest = max(measured, key=lambda kv: kv[1], default=None)
    lines = [
        "Targets (GSMP with the data grid, one agent, default settings):",
        "",
        f"* test MSE <= paper on {len(beats_paper)} of {len(with_paper)} datasets with a paper "
        f"number (target >= 10 of 12): {', '.join(beats_paper) or 'none'}",
        f"* test MSE below both GPyTorch baselines on {len(beats_gpytorch)} of {len(rows)} "
        f"datasets (target: all; {len(baselined)} had baselines): "
        f"{', '.join(beats_gpytorch) or 'none'}",
        f"* 1-D series: test MSE <= the best trivial forecast (mean, naive, drift, s-naive, "
        f"s-naive+drift) on {len(beats_trivial)} of {len(series)} (target: all): "
        f"{', '.join(beats_trivial) or 'none'}",
        f"* 1-D series: test MSE below AICc-chosen ETS on {len(beats_ets)} of {len(series)} "
        f"(target >= 6 of 9): {', '.join(beats_ets) or 'none'}" + _unmeasured(no_ets),
        f"* test MSE <= the training mean on {len(beats_mean)} of {len(rows)}",
        f"* learns in < {FAST_FIT_SECONDS:.0f} s on {len(fast)} of {len(small)} datasets with "
        f"n <= {FAST_FIT_N}" + (f" (slowest: {slowest[0]}, {slowest[1]:.1f} s)" if slowest else ""),
    ]
    memory = next((r for r in rows if r["dataset"] == MEMORY_DATASET), None)
    if memory is not None:
        lines.append(_memory_line(_number(_value(memory, "gsmp-data", "peak_rss_mb"))))
    return lines


def _memory_line(peak: float) -> str:
    """The memory target line; a fit that reported no peak (failed, killed) misses it."""
    target = f"target < {MEMORY_TARGET_MB:.0f} MiB"
    if math.isnan(peak):
        return f"* {MEMORY_DATASET} fit peak memory not measured ({target}: missed)"
    verdict = "met" if peak < MEMORY_TARGET_MB else "missed"
    return f"* {MEMORY_DATASET} fit peak memory {peak:.0f} MiB ({target}: {verdict})"
