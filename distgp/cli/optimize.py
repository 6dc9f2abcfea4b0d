"""``distgp optimize``: BKB (or batch BKB, or exact GP-UCB) on a test function or your callable."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from distgp.cli.common import EXIT_FAILURE, Progress, add_common, lock_output, resumed_config
from distgp.cli.flags import add_setting_flags
from distgp.exceptions import ConfigError


def add_parser(commands) -> None:
    from distgp.bandit.config import OptimizeConfig

    p = commands.add_parser(
        "optimize",
        help="maximise a reward / minimise a function with BKB (budgeted kernelized bandit)",
        description=(
            "Optimise a built-in test function (branin, hartmann6, ackley[D], levy[D]; "
            "minimised) or MODULE:CALLABLE over a finite set of arms with BKB. A callable returns "
            "a real number; one that raises or returns NaN fails that evaluation (the first 5 "
            "all raising one TypeError, IndexError, KeyError, AttributeError or NameError, and "
            "none working, stop the run), one that returns another type (bool, str, None, a "
            "list) stops it at once. With --batch the "
            "arms of an adaptive batch are evaluated in parallel by the agents. Writes "
            "result.json, history.csv and regret.png into --out. Every setting flag is also a "
            "key of the --config file, which holds the rest (docs/configuration.md)."
        ),
    )
    add_common(p)
    add_setting_flags(p, OptimizeConfig)
    p.set_defaults(handler=run_optimize)


def run_optimize(args: argparse.Namespace) -> int:
    from distgp.agents.address import check_ray_address
    from distgp.agents.evaluators import make_evaluator
    from distgp.bandit.problems import make_problem
    from distgp.checkpoint import Checkpoint
    from distgp.io import check_output_dir, check_own_folder
    from distgp.optimize.loop import check_space, optimize
    from distgp.optimize.refit import evaluator_cpu_share

    config = _resumed_config(args) if args.resume else _config(args)
    _check_maximize(config, args)
    config.validate()
    problem = make_problem(config)  # every input check happens before --out is touched
    check_parameter_names(problem.space.names)
    if config.backend_name == "ray":
        flag = args.flag_table.flag_of("agents.address")
        check_ray_address(  # fail fast, not after Ray's minutes of retries
            config.agents.address, setting=f"flag {flag}" if flag else "agents.address"
        )
    progress = Progress(args.quiet)
    out = check_output_dir(config.out)
    check_own_folder(out, "optimize")
    lock_output(args, out)  # creates it; removed on an early Ctrl-C if nothing was written
    checkpoint = args.checkpoint = Checkpoint(out, kind="optimize")
    state = checkpoint.load() if args.resume else None
    if state is not None:
        check_space(state, problem.space)  # before any agent starts
    clear = (lambda: None) if state is not None else _earlier_run(out, checkpoint, progress)
    b = config.bandit
    progress(
        f"{problem.name}: {len(problem.space)} arms in {problem.space.dims} encoded dimension(s); "
        f"{'batch ' if b.batch else ''}{b.algorithm.upper()} with a {config.kernel.name} kernel, "
        f"{config.agents.count} agent(s) on the {config.backend_name} backend"
    )
    step = max(1, config.budget // 20)
    shown = [0]

    def report(event: str, fields: dict) -> None:
        if event == "event":
            progress(fields["message"])
            return
        if fields["evaluations"] - shown[0] < step and fields["evaluations"] < config.budget:
            return
        shown[0] = fields["evaluations"]
        regret = fields["regret"]
        best = fields["best"]
        progress(
            f"evaluation {fields['evaluations']:5d}/{config.budget}  "
            f"best {'-' if best is None else f'{best:.6g}'}"
            + ("" if regret is None else f"  regret {regret:.4g}")
            + f"  dictionary {fields['dictionary']}  last batch {fields['batch_size']} arm(s)"
            + (f"  failed {fields['failed']}" if fields["failed"] else "")
        )

    from threadpoolctl import threadpool_limits

    # one BLAS thread: the bandit makes many small LAPACK calls, which oversubscribed threads
    # slow down by up to 100x on small machines (see distgp/threads.py)
    with (
        threadpool_limits(1),
        make_evaluator(
            config.backend_name,
            problem.objective,
            config.agents.count,
            config.agents.address,
            share_fraction=evaluator_cpu_share(config),
        ) as evaluator,
    ):
        if state is not None:
            progress(f"resuming from {checkpoint.path}")
        result = optimize(
            problem,
            config,
            evaluator,
            report,
            save=lambda s: (clear(), checkpoint.save(config, s)),
            resume=state,
        )
    clear()
    _write_outputs(out, problem, config, result, progress, plots=config.plots)
    checkpoint.remove()
    if result.best_value is None:  # results are written, but the objective never worked
        first = next((r.error for r in result.records if r.error), "no error message")
        if result.code_error is not None:
            from distgp.optimize.loop import EARLY_FAILURES

            sys.stderr.write(
                f"distgp optimize: error: stopped after {len(result.records)} of "
                f"{config.budget} evaluations, none worked and the first {EARLY_FAILURES} "
                f"failed with {result.code_error} (the first: {first}): an error in the "
                "objective's code, not at some points; "
                f"{_called_with(problem)}; fix it and run again (see {out / 'history.csv'})\n"
            )
            return EXIT_FAILURE
        sys.stderr.write(
            f"distgp optimize: error: all {len(result.records)} evaluations failed (the first: "
            f"{first}); see {out / 'history.csv'}\n"
        )
        return EXIT_FAILURE
    return 0


def _called_with(problem) -> str:
    """How the objective is called, in words (the cause of most errors in its first lines)."""
    from distgp.bandit.problems import ArrayObjective

    if isinstance(problem.objective, ArrayObjective):
        return "with a bounds attribute it is called with a 1-D numpy array x (x[0], x[1], ...)"
    return "with a space: section it is called with a dict {name: value}"


def _check_maximize(config, args: argparse.Namespace) -> None:
    """Refuse ``maximize`` on a built-in function, naming where it came from (the flag or the
    config) and how to undo it."""
    if not config.maximize or ":" in config.function:
        return
    if "--maximize" in args.flag_table.given(args):
        fix = "drop --maximize"
    else:
        fix = "drop maximize: true from the config (or pass --no-maximize)"
    raise ConfigError(
        f"the built-in function {config.function} is minimised (its known optimum gives the "
        f"regret); {fix}, or give a MODULE:CALLABLE to maximise"
    )


def _config(args: argparse.Namespace):
    from distgp.bandit.config import load_optimize_config

    config = load_optimize_config(args.config)
    args.flag_table.apply(config, args)
    return config


def _resumed_config(args: argparse.Namespace):
    from distgp.bandit.config import OptimizeConfig

    return resumed_config(args, OptimizeConfig, "optimize")


def result_record(problem, config, result) -> dict:
    """The content of ``result.json`` (the README, "Optimisation with BKB")."""
    import dataclasses

    from distgp import __version__

    best = result.best_params
    sizes = result.batch_sizes
    return {
        "function": problem.name,
        "best_x": None if best is None else list(best.values()),
        "best_params": best,
        "best_value": result.best_value,
        "optimal_value": problem.optimal_value,
        "simple_regret": result.simple_regret,
        "best_regret": result.best_regret,
        "cumulative_regret": result.cumulative_regret,
        "evaluations": result.evaluations,
        "failures": result.failures,
        "seconds": round(result.seconds, 3),
        "dictionary_size_max": result.dictionary_size_max,
        "batches": len(sizes),
        "batch_size_max": max(sizes) if sizes else 0,
        "batch_size_mean": sum(sizes) / len(sizes) if sizes else 0.0,
        "algorithm": ("batch-" if config.bandit.batch else "") + config.bandit.algorithm,
        "kernel": config.kernel.name,
        "kernel_refits": result.refits,
        "arms": result.arms,  # at the end, with the arms added near the best point
        "arms_initial": len(problem.space),
        "agents": config.agents.count,
        "backend": config.backend_name,
        "maximize": problem.maximize,
        "events": result.events,
        "seed": config.seed,
        "version": __version__,
        "config": dataclasses.asdict(config),
    }


HISTORY_LEADING = ("evaluation", "batch", "agent")  # history.csv columns before the parameters
HISTORY_TRAILING = (  # and after them
    "value",
    "regret",
    "best_value",
    "failed",
    "error",
    "seconds",
    "dictionary_size",
    "arms",
)


def check_parameter_names(names: list[str]) -> None:
    """Refuse parameter names that would repeat a fixed column of ``history.csv``."""
    clash = [n for n in names if n in HISTORY_LEADING + HISTORY_TRAILING]
    if clash:
        raise ConfigError(
            f"parameter name {clash[0]!r} is also a column of history.csv; rename the parameter"
        )


def history_csv(problem, result) -> str:
    """One row per evaluation: parameters, value, regret, best so far, failure and timing."""
    names = problem.space.names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*HISTORY_LEADING, *names, *HISTORY_TRAILING])
    best = None
    for r in result.records:
        if r.error is None and (best is None or problem.sign * (r.value - best) > 0):
            best = r.value
        writer.writerow(
            [
                r.index,
                r.batch,
                r.agent,
                *(_cell(r.params[n]) for n in names),
                _cell(r.value),
                _cell(r.regret),
                _cell(best),
                int(r.error is not None),
                r.error or "",
                f"{r.seconds:.6f}",
                r.dictionary_size,
                r.arms,
            ]
        )
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # round-trip precision: 10 digits merged 1e9 + small values
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def regret_plot(problem, result, path) -> None:
    """Simple regret (or best value) against evaluations, with each evaluation's regret."""
    from distgp.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    index = [r.index + 1 for r in result.records]
    if problem.optimal_value is not None:
        own = [math.nan if r.regret is None else r.regret for r in result.records]
        running, curve = math.inf, []
        for value in own:
            running = min(running, value) if not math.isnan(value) else running
            curve.append(running)
        ax.plot(index, own, ".", ms=3, alpha=0.4, label="regret of the evaluation")
        ax.plot(index, curve, "-", lw=1.8, label="simple regret (best so far)")
        ax.set_ylabel("regret")
        if all(v > 0 for v in curve if math.isfinite(v)):
            ax.set_yscale("log")
    else:
        running, curve = None, []
        for r in result.records:
            if r.error is None and (running is None or problem.sign * (r.value - running) > 0):
                running = r.value
            curve.append(math.nan if running is None else running)
        ax.plot(index, curve, "-", lw=1.8, label="best value so far")
        ax.set_ylabel("value")
    ax.set_xlabel("evaluations")
    ax.set_title(f"{problem.name}")
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


OUTPUTS = ("result.json", "history.csv", "regret.png")  # what a run writes beside its checkpoint


def _earlier_run(out: Path, checkpoint, progress: Progress) -> Callable[[], None]:
    """Before a new run over ``out``: check what an earlier run left there and return what
    removes it (its outputs and checkpoint), for the new run's first write, so the folder never
    mixes two runs and keeps the earlier run when the new one writes nothing. Only an
    optimisation's checkpoint or ``result.json`` counts as an earlier run; any other is refused,
    never deleted. The notice is written even with ``--quiet``: files are deleted."""
    if checkpoint.path.exists():
        checkpoint.check_replaceable()
        notice = (
            f"replacing an interrupted run's checkpoint in {out} (--resume {out} would continue it)"
        )
    elif (out / "result.json").is_file():
        _check_result(out / "result.json")
        notice = f"replacing the results of an earlier run in {out}"
    else:
        return lambda: None
    pending = [notice]

    def clear() -> None:
        if pending:
            progress.notice(pending.pop())
            checkpoint.remove()
            for name in OUTPUTS:
                (out / name).unlink(missing_ok=True)

    return clear


def _check_result(path: Path) -> None:
    """Refuse a ``result.json`` that ``distgp optimize`` did not write (a new run replaces
    it)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        record = None
    if not (isinstance(record, dict) and {"function", "evaluations", "version"} <= set(record)):
        raise ConfigError(
            f"--out {path.parent} holds a result.json that distgp optimize did not write; "
            "choose another output folder"
        )


def _write_outputs(out, problem, config, result, progress, plots: bool) -> None:
    from distgp.io import ensure_output_dir, write_json, write_text

    ensure_output_dir(out)
    write_text(out / "history.csv", history_csv(problem, result))
    if plots:
        regret_plot(problem, result, out / "regret.png")
    record = result_record(problem, config, result)
    write_json(out / "result.json", record)
    for line in result.events:
        progress(line)
    regret = ""
    if record["simple_regret"] is not None:
        regret = f", simple regret {record['simple_regret']:.4g}"
        if record["best_regret"] is not None and record["best_regret"] > record["simple_regret"]:
            regret += (  # with noise the best observed value is not the best true one
                f" (at another point; the best value's own regret is {record['best_regret']:.4g})"
            )
    progress(
        f"best value {record['best_value']}{regret} after {record['evaluations']} evaluations "
        f"({record['failures']} failed) in {record['batches']} batch(es), {record['seconds']:.1f} s"
    )
    progress(f"wrote {out}/result.json, history.csv" + (" and regret.png" if plots else ""))
