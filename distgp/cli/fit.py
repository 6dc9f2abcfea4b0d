"""``distgp fit``: learn a GSMP kernel on one agent or many, and evaluate it on the test split."""

from __future__ import annotations

import argparse
import math

import numpy as np

from distgp.cli.common import (
    Progress,
    add_common,
    apply_overrides,
    integer,
    number,
    resumed_config,
)
from distgp.config import ConsensusConfig, LearnConfig

FLAGS = {
    "data": "data.source",
    "target": "data.target",
    "test_fraction": "data.test_fraction",
    "shard": "data.shard",
    "test": "data.test",
    "min_shard_size": "data.min_shard_size",
    "predict": "predict",
    "grid": "kernel.grid",
    "components": "kernel.components",
    "levels": "kernel.levels",
    "trend": "kernel.trend",
    "transform": "kernel.transform",
    "horizon": "tune.horizon",
    "origins": "tune.origins",
    "tune": "tune.budget",
    "tunables": "tune.tunables",
    "solver": "learn.solver",
    "blocks": "learn.blocks",
    "max_iterations": "learn.max_iterations",
    "noise_floor": "learn.noise_floor",
    "threads": "learn.threads",
    "device": "learn.device",
    "agents": "consensus.agents",
    "bits": "consensus.bits",
    "delta": "consensus.delta",
    "rho": "consensus.rho",
    "rounds": "consensus.max_rounds",
    "local_iterations": "consensus.local_iterations",
    "backend": "backend.name",
    "address": "backend.address",
    "cpus_per_agent": "backend.cpus_per_agent",
    "round_timeout": "backend.round_timeout",
    "gpus_per_agent": "backend.gpus_per_agent",
    "seed": "seed",
    "out": "out",
}


def add_parser(commands) -> None:
    p = commands.add_parser(
        "fit",
        help="learn GSMP kernel weights (one agent, or many with quantised ADMM)",
        description=(
            "Learn the weights of a GSMP kernel with DSCA; with --agents N > 1 the agents agree "
            "through quantised consensus ADMM, each keeping its data shard. Writes metrics.json, "
            "model.npz, history.csv and plots into --out."
        ),
    )
    add_common(p, "runs/fit")
    data = p.add_argument_group("data")
    data.add_argument(
        "--data", metavar="SOURCE", help="a .mat/.csv/.npz file or builtin:co2 (default)"
    )
    data.add_argument("--target", metavar="COLUMN", help="output column of a CSV (default: last)")
    data.add_argument(
        "--test-fraction",
        type=number,
        metavar="F",
        help="held-out fraction when the file has no test split",
    )
    data.add_argument(
        "--shard",
        metavar="HOW",
        help="random (default), contiguous, or column:NAME (one shard per site id)",
    )
    data.add_argument(
        "--shards",
        metavar="FILES",
        help="shard files, one per agent, that the agents read where they run (a glob, or a "
        "comma-separated list; NAME@RESOURCE pins a shard to nodes with that Ray resource); "
        "the driver never opens them",
    )
    data.add_argument(
        "--test",
        metavar="FILE",
        help="the driver's own evaluation data with --shards (.csv with --target, .npz, .mat)",
    )
    data.add_argument(
        "--min-shard-size",
        type=integer,
        metavar="K",
        help="fewest points an agent may send anything about (default 10)",
    )
    data.add_argument(
        "--predict",
        choices=["private", "pooled"],
        help="private (default for N > 1: each agent predicts from its own shard, the driver "
        "combines them by rBCM) or pooled (exact, moves every training point to the driver)",
    )
    kern = p.add_argument_group("kernel")
    kern.add_argument(
        "--grid",
        choices=["data", "reference"],
        help="data-driven grid (default) or the paper's reference grid",
    )
    kern.add_argument(
        "--components",
        type=integer,
        metavar="M",
        help="number of sub-kernels (default 500 in 1-D, 100 per dimension)",
    )
    kern.add_argument(
        "--levels", type=integer, metavar="L", help="bandwidth levels of the data grid"
    )
    kern.add_argument(
        "--trend",
        choices=["auto", "none", "constant", "linear", "quadratic"],
        help="trend part learned with the weights (default auto: for a 1-D series chosen by "
        "rolling-origin validation on the training data; none for several inputs)",
    )
    kern.add_argument(
        "--transform",
        metavar="T",
        help="output transform for positive data: none (default), log, boxcox, boxcox:LAMBDA",
    )
    kern.add_argument(
        "--horizon",
        type=integer,
        metavar="H",
        help="held-out points per rolling origin of the selection (default 10%% of n, >= 4)",
    )
    kern.add_argument(
        "--origins", type=integer, metavar="K", help="rolling origins of the selection (default 2)"
    )
    kern.add_argument(
        "--tune",
        type=integer,
        metavar="BUDGET",
        help="run batch BKB over outer settings for BUDGET evaluations (each a fit scored on "
        "held-out training data); writes tune.csv and tune.png",
    )
    kern.add_argument(
        "--tunables",
        metavar="A,B",
        help="settings --tune searches (default trend,levels,components,noise_floor,transform)",
    )
    learn = p.add_argument_group("local solver")
    learn.add_argument(
        "--solver",
        choices=["closed_form", "cvxpy"],
        help="block subproblem solver (default closed_form)",
    )
    learn.add_argument(
        "--blocks",
        type=integer,
        metavar="S",
        help=f"DSCA blocks solved in parallel (default {LearnConfig.blocks})",
    )
    learn.add_argument(
        "--max-iterations",
        type=integer,
        metavar="K",
        help=f"DSCA iterations of a single-agent fit (default {LearnConfig.max_iterations})",
    )
    learn.add_argument(
        "--noise-floor",
        type=number,
        metavar="F",
        help="lower bound of the noise variance as a fraction of var(y) "
        f"(default {LearnConfig.noise_floor:g})",
    )
    cons = p.add_argument_group("agents and consensus")
    cons.add_argument(
        "--agents",
        type=integer,
        metavar="N",
        help=f"number of agents (default {ConsensusConfig.agents})",
    )
    q = cons.add_mutually_exclusive_group()
    q.add_argument(
        "--bits",
        type=integer,
        metavar="B",
        help=f"bits per changed weight per message, 2..32 (default {ConsensusConfig.bits})",
    )
    q.add_argument(
        "--delta", type=number, metavar="D", help="uniform quantisation step instead of --bits"
    )
    q.add_argument("--no-quantize", action="store_true", help="send float64 messages")
    cons.add_argument("--rho", type=number, help="initial ADMM penalty (default: mean shard size)")
    cons.add_argument(
        "--rounds",
        type=integer,
        metavar="R",
        help=f"ADMM round cap (default {ConsensusConfig.max_rounds})",
    )
    cons.add_argument(
        "--local-iterations",
        type=integer,
        metavar="K",
        help=f"DSCA iterations per agent per round (default {ConsensusConfig.local_iterations})",
    )
    run = p.add_argument_group("where agents run")
    run.add_argument(
        "--backend",
        choices=["inline", "ray"],
        help="inline (1 agent default) or ray (default for N > 1)",
    )
    run.add_argument(
        "--address",
        metavar="ADDR",
        help="join this Ray cluster (auto, HOST:PORT); default: start a local Ray instance",
    )
    run.add_argument(
        "--cpus-per-agent",
        type=number,
        metavar="C",
        help="CPUs reserved per agent (default: share the machine)",
    )
    run.add_argument(
        "--gpus-per-agent",
        type=number,
        metavar="G",
        help="GPUs each Ray agent reserves, fractional allowed (needs --device cuda)",
    )
    run.add_argument(
        "--threads",
        type=integer,
        metavar="N",
        help="threads of each process (driver or agent); default: distgp chooses from the cores "
        "(or the agent's CPU share), whatever OMP_NUM_THREADS says",
    )
    run.add_argument(
        "--device",
        metavar="cpu|cuda",
        help="where the dense work runs: cpu (numpy, default) or cuda (torch float64 on a GPU)",
    )
    run.add_argument(
        "--round-timeout",
        type=number,
        metavar="SEC",
        help="leave out of a round an agent slower than this (default 600)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write figures")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run whose --out was DIR, with its own settings",
    )
    p.set_defaults(handler=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from distgp.checkpoint import Checkpoint
    from distgp.data import load_dataset
    from distgp.driver import preflight
    from distgp.io import check_output_dir
    from distgp.tune import check_data

    config = _resumed_config(args) if args.resume else _config(args)
    config.validate()
    if config.data.shards is not None:
        return _run_shard_fit(args, config)
    progress = Progress(args.quiet)
    out = check_output_dir(config.out)
    checkpoint = Checkpoint(out)
    if not args.resume and checkpoint.path.is_file():
        progress(
            f"replacing an interrupted run's checkpoint in {out} (--resume {out} would continue it)"
        )
    shard_column = (
        config.data.shard.split(":", 1)[1] if config.data.shard.startswith("column:") else None
    )
    dataset = load_dataset(
        config.data.source,
        target=config.data.target,
        test_fraction=config.data.test_fraction,
        shard_column=shard_column,
        seed=config.seed,
    )
    preflight(config, len(dataset.y_train), dataset.groups_train)
    check_data(config, dataset.y_train, dataset.series)
    progress(
        f"data {dataset.name}: {len(dataset.y_train)} training / {len(dataset.y_test)} test "
        f"points, "
        f"{dataset.dims} input dimension(s)"
    )
    if args.resume:
        progress(f"resuming from {checkpoint.path}")
    result, evaluations = _learn(
        dataset, config, progress, checkpoint, bool(args.resume), dataset.X_test
    )
    _write_outputs(out, dataset, config, result, progress, not args.no_plots, evaluations)
    if evaluations:
        from distgp.io import write_text
        from distgp.tune import evaluations_csv

        write_text(out / "tune.csv", evaluations_csv(evaluations))
        if not args.no_plots:
            from distgp import plots as figures

            figures.tuning(evaluations, out / "tune.png")
    checkpoint.remove()
    return 0


def _config(args: argparse.Namespace):
    from distgp.config import load_fit_config
    from distgp.exceptions import ConfigError

    config = load_fit_config(args.config)
    apply_overrides(config, args, FLAGS)
    if args.shards is not None:
        config.data.shards, config.data.placements = shard_list(args.shards)
        if args.agents is None:
            config.consensus.agents = len(config.data.shards)
    if args.no_quantize:
        config.consensus.quantize = False
    elif args.delta is not None:
        config.consensus.bits = None
    if args.delta is not None and args.delta <= 0:
        raise ConfigError(f"--delta must be positive, got {args.delta}")
    return config


def shard_list(text: str) -> tuple[list[str], list[str] | None]:
    """Shard files from ``--shards``: a glob or a comma-separated list; ``PATH@RESOURCE`` pins a
    shard. Globs are expanded here only to list names (sorted); the files are not opened."""
    import glob

    from distgp.exceptions import InputDataError

    entries = [e.strip() for e in text.split(",") if e.strip()]
    paths, places = [], []
    for entry in entries:
        path, _, place = entry.partition("@")
        names = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not names:
            raise InputDataError(f"--shards pattern {path!r} matches no file; check the path")
        paths += names
        places += [place] * len(names)
    return paths, places if any(places) else None


def _run_shard_fit(args: argparse.Namespace, config) -> int:
    """``distgp fit --shards``: the agents read their files; the driver reads only ``--test``."""
    from distgp.checkpoint import Checkpoint
    from distgp.data import Dataset, load_dataset
    from distgp.io import check_output_dir

    progress = Progress(args.quiet)
    out = check_output_dir(config.out)
    checkpoint = Checkpoint(out)
    X_test = y_test = None
    if config.data.test is not None:
        test = load_dataset(config.data.test, target=config.data.target, test_fraction=0.0)
        X_test, y_test = test.X_train, test.y_train
        if len(test.y_test):  # a .mat file: its own test split
            X_test, y_test = test.X_test, test.y_test
    progress(
        f"{len(config.data.shards)} shard files, read by their agents; test: "
        f"{config.data.test or 'none'}"
    )
    result, _ = _learn(None, config, progress, checkpoint, bool(args.resume), X_test)
    dims = result.model.dims
    empty = np.zeros((0, dims))
    dataset = Dataset(
        empty,
        np.zeros(0),
        X_test if X_test is not None else empty,
        y_test if y_test is not None else np.zeros(0),
        "shards",
    )
    _write_outputs(out, dataset, config, result, progress, plots=not args.no_plots)
    checkpoint.remove()
    return 0


def _resumed_config(args: argparse.Namespace):
    from distgp.config import FitConfig

    return resumed_config(args, FitConfig, "fit", FLAGS, ("no_quantize",))


def _learn(dataset, config, progress, checkpoint=None, resume=False, X_test=None):
    """One fit (shard files), or with the outer choice of :mod:`distgp.tune` (data in the
    driver); returns ``(FitResult, evaluations)``."""
    from distgp.driver import fit, shard_files
    from distgp.tune import fit_selected, tune

    def report(event, fields):
        if event in ("candidate", "selected"):
            e = fields["evaluation"]
            verb = "candidate" if event == "candidate" else "selected "
            progress(f"{verb} {e.name:18s} held-out MSE {e.mse:.5g}  ({e.seconds:.1f} s)")
        elif event == "start":
            progress(f"starting {fields['agents']} agent(s) on the {fields['backend']} backend")
        elif event == "setup":
            progress(
                f"agents ready: {fields['components']} GSMP components over "
                f"{fields['dims']} dimension(s)"
            )
        elif event == "iteration":
            progress(
                f"iteration {fields['iteration']:4d}  objective {fields['objective']:.4f}  "
                f"active {fields['active']}  noise {fields['noise']:.3g}"
            )
        elif event == "round":
            r = fields["record"]
            loss = "" if math.isnan(r.objective) else f"  objective at z {r.objective:.3f}"
            progress(
                f"round {r.round:3d}{loss}  primal {r.primal_residual:.2e}/{r.primal_tol:.1e}  "
                f"dual {r.dual_residual:.2e}/{r.dual_tol:.1e}  rho {r.rho:.3g}  "
                f"active {r.active_components}  kbits {r.bits / 1e3:.1f}"
            )
            for event_line in r.events:
                progress(f"  {event_line}")

    if dataset is None:
        result = fit(
            None,
            None,
            config,
            report=report,
            checkpoint=checkpoint,
            resume=resume,
            shards=shard_files(config),
            X_test=X_test,
        )
        return result, []
    options = {
        "report": report,
        "groups": dataset.groups_train,
        "checkpoint": checkpoint,
        "X_test": X_test if X_test is not None and len(X_test) else None,
    }
    if config.tune.budget and not resume:
        budget, names = config.tune.budget, config.tune.tunables.split(",")
        names = [s.strip() for s in names if s.strip()]
        result, evaluations, _ = tune(
            dataset.X_train, dataset.y_train, config, dataset.series, budget, names, **options
        )
        return result, evaluations
    return fit_selected(
        dataset.X_train,
        dataset.y_train,
        config,
        dataset.series and not resume,
        resume=resume,
        **options,
    )


def metrics_record(dataset, config, result) -> dict:
    """The content of ``metrics.json`` (design.md section 2)."""
    from distgp import __version__
    from distgp.driver import prediction_mode
    from distgp.gp import regression_metrics

    model = result.model
    if len(dataset.y_test) and result.prediction is not None:
        mean, std = result.prediction
        scores = regression_metrics(dataset.y_test, mean, std, result.model.transform)
    else:
        scores = {"mse": None, "rmse": None, "nlpd": None}
    y_var = model.scaler.y_scale**2
    return {
        **scores,
        "n_train": result.n_train,
        "n_test": len(dataset.y_test),
        "dims": dataset.dims,
        "agents": result.agents,
        "components": model.components,
        "active_components": int(np.count_nonzero(model.weights)),
        "trend": model.trend.kind if model.trend is not None else "none",
        "transform": model.transform.kind,
        "transform_lambda": model.transform.lam,
        "noise_variance": float(model.noise_variance * y_var),
        "rounds": result.rounds,
        "iterations": result.iterations,
        "converged": result.converged,
        "bits_sent": int(result.bits_sent),
        "bits_float64": int(result.bits_float64),
        "bits_float64_dense": int(result.bits_float64_dense),
        "prediction": prediction_mode(config),
        "missing_agents": result.missing,
        "stop": result.stop,
        "seconds": round(result.seconds, 3),
        "objective": result.objective,
        "dataset": dataset.name,
        "grid": model.grid.kind,
        "backend": config.backend_name,
        "nodes": sorted(set(result.nodes)),
        "shard_sizes": result.shard_sizes,
        "events": result.events,
        "seed": config.seed,
        "version": __version__,
    }


def _write_outputs(out, dataset, config, result, progress, plots: bool, evaluations=()) -> None:
    import dataclasses

    from distgp.io import ensure_output_dir, write_json, write_text

    ensure_output_dir(out)
    record = metrics_record(dataset, config, result)
    # the outer choice (distgp.tune): its fits' wall time comes on top of "seconds"
    record["tune_evaluations"] = len(evaluations)
    record["tune_seconds"] = round(sum(e.seconds for e in evaluations), 3)
    record["config"] = dataclasses.asdict(config)
    result.model.save(out / "model.npz", {"dataset": dataset.name})
    write_text(out / "history.csv", history_csv(result))
    if plots:
        from distgp import plots as figures

        figures.spectrum(result.model, out / "spectrum.png")
        if dataset.dims == 1:
            figures.prediction(result.model, dataset, out / "prediction.png")
        if result.rounds:
            figures.convergence(result.history, out / "convergence.png")
    write_json(out / "metrics.json", record)
    if record["mse"] is not None:
        progress(
            f"test MSE {record['mse']:.5g}  RMSE {record['rmse']:.4g}  NLPD {record['nlpd']:.4g}  "
            f"({record['active_components']}/{record['components']} components active, "
            f"{record['seconds']:.1f} s)"
        )
    if result.rounds:
        ratio = record["bits_sent"] / max(record["bits_float64"], 1)
        progress(
            f"{result.rounds} rounds, {record['bits_sent']} bits sent ({ratio:.3f} of float64)"
        )
    progress(f"wrote {out}/metrics.json, model.npz, history.csv" + (" and plots" if plots else ""))


def history_csv(result) -> str:
    """Per-round (ADMM) or per-iteration (single agent) history as CSV text."""
    if result.rounds:
        lines = [
            "round,objective_at_z,primal_residual,dual_residual,primal_tol,dual_tol,rho,bits,bits_float64,active_components,participants,seconds"
        ]
        for r in result.history:
            lines.append(
                f"{r.round},{r.objective:.10g},{r.primal_residual:.6g},{r.dual_residual:.6g},{r.primal_tol:.6g},"
                f"{r.dual_tol:.6g},{r.rho:.6g},{r.bits},{r.bits_float64},{r.active_components},"
                f"{r.participants},{r.seconds:.4f}"
            )
    else:
        lines = ["iteration,objective"] + [f"{i},{v:.10g}" for i, v in enumerate(result.history)]
    return "\n".join(lines) + "\n"
