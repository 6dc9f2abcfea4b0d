"""``distgp fit``: learn a GSMP kernel on one agent or many, and evaluate it on the test split."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from distgp.cli.common import Progress, add_common, lock_output, resumed_config
from distgp.cli.flags import add_setting_flags
from distgp.config import ConsensusConfig, FitConfig
from distgp.exceptions import ConfigError

CUSTOM_FLAGS = {"data.shards": "shards"}  # globs and NAME@RESOURCE, expanded by shard_list
# outputs a fit writes only with some settings; a refit into the same folder removes stale ones
DEFAULT_ROUNDS = ConsensusConfig().max_rounds
OPTIONAL_OUTPUTS = {"spectrum.png", "prediction.png", "convergence.png", "tune.csv", "tune.png"}
OUTPUTS = {"model.npz", "history.csv", "metrics.json", *OPTIONAL_OUTPUTS}


def _selection():
    """:mod:`distgp.selection`, imported when a line needs its constants (not at start-up: it
    imports the kernels and scipy)."""
    from distgp import selection

    return selection


OUTER_CHOICE_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "horizon": lambda f: (
        f"rolling origins hold out {f['horizon']} points each: the forecast horizon of the "
        "test inputs (--horizon sets it)"
    ),
    "horizon too long": lambda f: (
        f"the test inputs reach {f['wanted']} steps ahead, too far for the rolling origins in "
        f"this series (each leaves {_selection().MIN_TRAIN} or more training points): they hold "
        f"out {f['used']} each"
    ),
    "simpler": lambda f: (
        f"chose {f['evaluation'].name}: the simplest candidate within "
        f"{100 * _selection().SIMPLER_TOLERANCE:g}% of the lowest held-out MSE "
        f"({f['lowest'].mse:.5g}, {f['lowest'].name})"
    ),
    "season": lambda f: (
        f"the training data's changes repeat every {f['period']:g} "
        f"{f.get('unit', 'input unit')}s (their autocorrelation): the candidate "
        f"{_selection().SEASONAL_CANDIDATE} has a season of that period (--season sets one for "
        "every fit)"
    ),
    "agent splits": lambda f: (
        f"--tune scores each setting on the {f['agents']} agents' own shards: "
        + ("rolling origins" if f["series"] else "folds")
        + f" ({f['splits']} per shard) of {', '.join(map(str, f['held_out']))} held-out "
        "point(s) each, a horizon in proportion to the shard's size"
    ),
    "folds": lambda f: (
        f"candidates scored on {f['folds']} random folds of the training data (one input, not "
        "a series; --folds sets them)"
    ),
    "unused folds": lambda f: (
        f"--folds (tune.folds) does not apply: {f['why']}; --tune BUDGET scores settings on folds"
    ),
    "past the end": lambda f: (
        "the test inputs all lie past the training inputs: candidates scored by rolling origin "
        "in input order (a forecast), not by random folds"
    ),
    "no search": lambda f: (
        f"a budget of {f['budget']} scores only the default path's {f['first']} candidates "
        f"(all of them, whatever the budget, on --tune's held-out splits); BKB searches from "
        f"evaluation {f['first'] + 1}"
    ),
    "space scored": lambda f: (
        f"every setting of the search space is scored after {f['evaluations']} evaluations; "
        f"the search ends before its budget of {f['budget']}"
    ),
    "kept": lambda f: (
        f"kept {f['evaluation'].name}: the lowest held-out MSE ({f['lowest'].mse:.5g}, "
        f"{f['lowest'].name}) is not lower by more than two standard errors of the per-fold "
        "differences"
    ),
    "no choice": lambda f: (
        f"no held-out choice of the model: {_selection().no_choice(f['why'], f['n'])}; a "
        "linear trend (--trend sets the family)"
    ),
    "calibrated": lambda f: (
        f"held-out errors of the chosen setting: mean squared z-score {f['mean_z2']:.3g} on "
        f"{f['points']} points; "
        + (
            f"predictive variance x {f['scale']:.3g} (--no-calibrate keeps the evidence's)"
            if f["scale"] > 1
            else "predictive variance kept (intervals are only widened)"
        )
    ),
}
"""Progress lines of the outer choice's reports (distgp.tune), by event."""


def add_parser(commands) -> None:
    p = commands.add_parser(
        "fit",
        help="learn GSMP kernel weights (one agent, or many with quantised ADMM)",
        description=(
            "Learn the weights of a GSMP kernel with DSCA; with --agents N > 1 the agents agree "
            "through quantised consensus ADMM, each keeping its data shard. Writes metrics.json, "
            "model.npz, history.csv and plots into --out. Every setting flag is also a key of "
            "the --config file (docs/configuration.md)."
        ),
    )
    add_common(p)
    add_setting_flags(p, FitConfig, custom=CUSTOM_FLAGS)
    p.set_defaults(handler=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from distgp.checkpoint import Checkpoint
    from distgp.data import (
        ShardSummary,
        load_dataset,
        site_labels,
        time_input_note,
        varying_columns,
        with_test_file,
    )
    from distgp.data.readers import check_fixed_target
    from distgp.driver import preflight
    from distgp.io import check_output_dir, check_output_names, check_own_folder
    from distgp.selection import check_data
    from distgp.transforms import OutputTransform, parse_transform
    from distgp.tune import check_search, tunable_names

    config = _resumed_config(args) if args.resume else _config(args)
    config.validate()
    if config.data.shards is not None:
        return _run_shard_fit(args, config)
    if config.data.target is not None:
        check_fixed_target(config.data.source, config.data.target, "data.target")
    progress = Progress(args.quiet)
    out = check_output_dir(config.out)
    check_output_names(out, OUTPUTS, "fit")
    check_own_folder(out, "fit")
    lock_output(args, out)
    checkpoint = args.checkpoint = Checkpoint(out)
    command = _command_config(args, checkpoint, config)
    if not args.resume and checkpoint.path.is_file():
        checkpoint.check_replaceable()
        progress(
            f"replacing an interrupted run's checkpoint in {out} (--resume {out} would continue it)"
        )
    elif not args.resume and (out / "metrics.json").is_file():
        progress(f"replacing the results of an earlier fit in {out}")
    shard_column = (
        config.data.shard.split(":", 1)[1] if config.data.shard.startswith("column:") else None
    )
    dataset = load_dataset(
        config.data.source,
        target=config.data.target,
        test_fraction=0.0 if config.data.test is not None else config.data.test_fraction,
        shard_column=shard_column,
        seed=config.seed,
    )
    if config.data.test_fraction is not None and dataset.own_split:
        raise ConfigError(
            f"data.test_fraction splits a file without a test split, but {config.data.source} "
            "has its own (xtest, ytest); drop data.test_fraction",
            setting="data.test_fraction",
        )
    if config.data.test is not None:  # the whole --data file trains
        dataset = with_test_file(
            dataset,
            config.data.source,
            config.data.test,
            config.data.target,
            config.data.test_fraction,
        )
    if shard_column is not None and args.consensus__agents is None and config.consensus.agents == 1:
        config.consensus.agents = len(site_labels(dataset.groups_train))
        progress(
            f"{config.consensus.agents} agents, one per value of {shard_column} (--agents sets it)"
        )
    preflight(config, len(dataset.y_train), dataset.groups_train)
    X, y, series = dataset.X_train, dataset.y_train, dataset.series
    if config.tune.budget:
        check_search(config, X, y, series, tunable_names(config))
    else:
        check_data(config, X, y, series)
    kind, lam = parse_transform(config.kernel.transform)  # test outputs it cannot reach
    OutputTransform(kind, lam or 0.0).check(dataset.y_test, "test outputs y")
    progress(
        f"data {dataset.name}: {len(dataset.y_train)} training / {len(dataset.y_test)} test "
        f"points, "
        f"{dataset.dims} input dimension(s)"
    )
    note = time_input_note(dataset)
    if note is not None:
        progress(note)
    varying = varying_columns(ShardSummary.of(dataset.X_train, dataset.y_train))
    constant = [n for n, v in zip(dataset.feature_names, varying, strict=True) if not v]
    if constant and len(constant) < dataset.dims:
        progress(
            f"input column(s) {', '.join(constant)} are constant in the training data (to "
            "rounding): they carry no information; drop them, or rescale them if they vary"
        )
    if args.resume:
        progress(f"resuming from {checkpoint.path}")
    result, evaluations = _learn(
        dataset, config, progress, checkpoint, bool(args.resume), dataset.X_test
    )
    _write_outputs(out, dataset, command, result, progress, config.plots, evaluations)
    checkpoint.remove()
    return 0


def _config(args: argparse.Namespace) -> FitConfig:
    from distgp.config import build, read_yaml

    mapping = read_yaml(args.config) if args.config is not None else {}
    config = build(FitConfig, mapping)
    args.flag_table.apply(config, args)
    d = config.data
    if args.shards is not None:  # the flag's files (and their resources) replace the file's
        d.shards, d.placements = args.shards.split(","), None
    if d.shards is not None:
        name = "--shards" if args.shards is not None else "data.shards"
        d.shards, d.placements = shard_list(d.shards, d.placements, name)
        check_distinct(d.shards, d.placements, name)
        given = args.consensus__agents is not None or "agents" in (mapping.get("consensus") or {})
        if not given:  # one agent per file
            config.consensus.agents = len(d.shards)
    return config


def shard_list(
    entries: list[str], placements: list[str] | None, name: str
) -> tuple[list[str], list[str] | None]:
    """Shard files and their placements from ``--shards`` (split at commas) or a config's
    ``data.shards`` (``name``): each entry a file or a glob, ``PATH@RESOURCE`` pinning its files;
    a config's own ``placements`` stay where no entry names a resource. Globs are expanded here,
    on the driver's disk, only to list names (sorted); the files are not opened."""
    import glob

    from distgp.exceptions import InputDataError

    paths, places = [], []
    for entry in filter(None, (e.strip() for e in entries)):
        path, place = split_placement(entry)
        names = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not names:
            raise InputDataError(
                f"{name} pattern {path!r} matches no file on the driver's disk (globs are "
                "expanded by the driver, $VARS unexpanded); check the path, or list node-local "
                "files one by one"
            )
        folders = [n for n in names if os.path.isdir(n)]
        if folders:
            raise InputDataError(
                f"{name} names the folder {folders[0]}; give its files, e.g. "
                f"'{os.path.join(folders[0], '*.csv')}'"
            )
        paths += names
        places += [place] * len(names)
    if not any(places):
        return paths, placements
    if placements is not None:
        raise ConfigError(
            f"data.placements and NAME@RESOURCE in {name} both pin shard files; pin them in one "
            "of the two",
            setting="data.placements",
        )
    return paths, places


def split_placement(entry: str) -> tuple[str, str]:
    """A shard entry's path and placement: ``PATH@RESOURCE`` splits at the last ``@`` when
    ``RESOURCE`` is a plain resource name (``NAME`` or ``NAME+NAME``, no ``/``), so a path may
    hold ``@`` (``dir@host/a.csv``); a trailing ``@`` ends a path whose file name holds one
    (``a@b.csv@``, unpinned)."""
    path, at, place = entry.rpartition("@")
    if not at:
        return entry, ""
    if not place:
        return path, ""
    if "/" in place or os.sep in place:
        return entry, ""
    return path, place


def check_distinct(paths: list[str], placements: list[str] | None, name: str) -> None:
    """Refuse a shard file listed twice (one resolved path, pinned to the same nodes or to
    none): two agents would hold its data, counted twice."""
    from distgp.exceptions import InputDataError

    places = placements if placements and len(placements) == len(paths) else [""] * len(paths)
    seen: dict[tuple[str, str], str] = {}
    for path, place in zip(paths, places, strict=True):
        key = (os.path.realpath(path), place)
        if key in seen:
            first = seen[key]
            also = "" if first == path else f" (as {first} and {path})"
            raise InputDataError(
                f"{name} lists the shard file {first} twice{also}: two agents would count its "
                "data twice; give each file once"
            )
        seen[key] = path


def _run_shard_fit(args: argparse.Namespace, config) -> int:
    """``distgp fit --shards``: the agents read their files; the driver reads only ``--test``."""
    from distgp.checkpoint import Checkpoint
    from distgp.data import Dataset, load_test_file
    from distgp.driver import ShardColumns
    from distgp.io import check_output_dir, check_output_names, check_own_folder

    progress = Progress(args.quiet)
    out = check_output_dir(config.out)
    check_output_names(out, OUTPUTS, "fit")
    check_own_folder(out, "fit")
    lock_output(args, out)
    checkpoint = args.checkpoint = Checkpoint(out)
    command = _command_config(args, checkpoint, config)
    if not args.resume:
        checkpoint.check_replaceable()
    test: dict[str, np.ndarray] = {}

    def read_test(shards: ShardColumns) -> np.ndarray:
        """The --test file, its columns matched to the shard files' (by name for CSVs)."""
        named = shards.columns if shards.target is not None else None
        target = config.data.target or shards.target
        test["X"], test["y"] = load_test_file(
            config.data.test, target, len(shards.columns), named, shards.time_units
        )
        return test["X"]

    where = (
        " in this process (the inline backend simulates agents; ray gives each its own)"
        if config.backend_name == "inline"
        else ""
    )
    progress(
        f"{len(config.data.shards)} shard files, read by their agents{where}; test: "
        f"{config.data.test or 'none'}"
    )
    if config.tune.folds != _selection().DEFAULT_FOLDS and not config.tune.budget:
        why = "shard files get no default held-out choice (the driver holds no data)"
        progress(OUTER_CHOICE_LINES["unused folds"]({"why": why}))
    reader = read_test if config.data.test is not None else None
    result, evaluations = _learn(None, config, progress, checkpoint, bool(args.resume), reader)
    empty = np.zeros((0, result.model.dims))
    X_test, y_test = test.get("X", empty), test.get("y", np.zeros(0))
    dataset = Dataset(empty, np.zeros(0), X_test, y_test, "shards")
    _write_outputs(out, dataset, command, result, progress, config.plots, evaluations)
    checkpoint.remove()
    return 0


def _resumed_config(args: argparse.Namespace):
    return resumed_config(args, FitConfig, "fit")


def _command_config(args: argparse.Namespace, checkpoint, config: FitConfig) -> FitConfig:
    """The command's own settings, which metrics.json records and every checkpoint keeps:
    ``config``, or on ``--resume`` the interrupted command's (``config`` is then its final fit's,
    with an outer choice's settings; so is the record of a checkpoint that kept no other)."""
    from distgp.config import build

    if not args.resume:
        checkpoint.command_config = config
        return config
    saved = checkpoint.resumed_command_config()
    if saved is None:
        return config
    command = checkpoint.command_config = build(FitConfig, saved)
    command.out = config.out
    return command


def _learn(dataset, config, progress, checkpoint=None, resume=False, X_test=None):
    """One fit, after the outer choice of :mod:`distgp.tune` where it runs (``--tune``; the
    default selection with one input in one file); ``dataset`` is None with shard files, and
    ``X_test`` then a reader of the test inputs (:data:`distgp.driver.TestInputs`). Returns
    ``(FitResult, evaluations)``."""
    from distgp.driver import fit, shard_files
    from distgp.holdout import Evaluation, keep_for_resume
    from distgp.selection import calibrated, fit_selected
    from distgp.tune import tunable_names, tune

    if config.consensus.agents == 1 and config.consensus.max_rounds != DEFAULT_ROUNDS:
        progress(
            "--rounds (consensus.max_rounds) does not apply: it caps the ADMM rounds of several "
            "agents, and one agent learns alone (--max-iterations caps its DSCA iterations)"
        )

    def report(event, fields):
        if event in ("candidate", "selected"):
            e = fields["evaluation"]
            verb = "candidate" if event == "candidate" else "selected "
            early = f"  (stopped after {len(e.folds)} fold(s))" if e.stopped else ""
            progress(f"{verb} {e.name:27s} held-out MSE {e.mse:.5g}{early}")
        elif event in OUTER_CHOICE_LINES:
            if dataset is not None and dataset.time_units:  # a series of dates: its unit
                fields = {**fields, "unit": next(iter(dataset.time_units.values()))}
            progress(OUTER_CHOICE_LINES[event](fields))
        elif event == "start":
            progress(f"starting {fields['agents']} agent(s) on the {fields['backend']} backend")
        elif event == "same data":
            files = fields["files"]
            progress(
                f"warning: shard files {', '.join(files)} hold the same data (one SHA-256 digest): "
                f"the fit counts it {len(files)} times; give each agent its own shard"
            )
        elif event == "setup":
            auto = config.kernel.trend == "auto" and not config.tune.budget
            if dataset is None and fields["dims"] == 1 and auto:  # shard files
                progress(OUTER_CHOICE_LINES["no choice"]({"why": "shards", "n": fields["n"]}))
            progress(
                f"agents ready: {fields['components']} GSMP components over "
                f"{fields['dims']} dimension(s); the objective below is y'C^-1 y + log det C "
                "in standardised units (metrics.json: the negative log evidence, raw units)"
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

    options = {
        "report": report,
        "checkpoint": checkpoint,
        "X_test": X_test if callable(X_test) or (X_test is not None and len(X_test)) else None,
    }
    shards = shard_files(config) if dataset is None else None
    if shards is None:
        options["groups"] = dataset.groups_train
    if config.tune.budget and not resume:
        names = tunable_names(config)
        X, y, series = (
            (None, None, None)
            if dataset is None
            else (dataset.X_train, dataset.y_train, dataset.series)
        )
        result, evaluations, _ = tune(
            X, y, config, series, config.tune.budget, names, shards=shards, **options
        )
        return result, evaluations
    if resume:  # the final fit of an outer choice made before the interruption, if one ran
        choice = [Evaluation.from_dict(e) for e in checkpoint.resumed_outer_choice()]
        keep_for_resume(choice, options)  # for a second interruption
        if shards is not None:
            result = fit(None, None, config, resume=True, shards=shards, **options)
        else:
            result = fit(dataset.X_train, dataset.y_train, config, resume=True, **options)
        chosen = next((e for e in choice if e.chosen), None)
        if chosen is not None:  # as the uninterrupted run would have it
            result = calibrated(result, chosen, config, report)
        return result, choice
    if shards is not None:
        return fit(None, None, config, shards=shards, **options), []
    return fit_selected(dataset.X_train, dataset.y_train, config, dataset.series, **options)


def season_in_input_units(model) -> float:
    """The seasonal period in input units (0: none), as the user gave it or the series'
    period was found: the standardised period times the input scale, to 12 significant
    digits (the round trip through the scale leaves a 12.0 as 11.999999999999998)."""
    if model.trend is None or not model.trend.season:
        return 0.0
    return float(f"{model.trend.season * model.scaler.x_scale[0]:.12g}")


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
        scores = {"mse": None, "rmse": None, "nlpd": None, "coverage95": None}
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
        "season": season_in_input_units(model),
        # input columns of dates and the units they (and the season) are counted in
        "time_units": {**model.time_units, **dataset.time_units},
        "transform": model.transform.kind,
        "transform_lambda": model.transform.lam,
        "noise_variance": float(model.noise_variance * y_var),
        "variance_scale": model.variance_scale,
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
    """Write the fit's outputs into a staging folder in ``out``, then move them into place
    (``metrics.json`` last): a failure leaves ``out`` as it was."""
    import dataclasses

    from distgp import calendar
    from distgp import plots as figures
    from distgp.io import ensure_output_dir, publish_outputs, staged_outputs, write_json, write_text

    ensure_output_dir(out)
    # an earlier fit's optional outputs may be stale (model.npz alone: one interrupted while
    # its outputs were moved into place, metrics.json going last)
    earlier_fit = (out / "metrics.json").exists() or (out / "model.npz").exists()
    record = metrics_record(dataset, config, result)
    # the outer choice (distgp.tune): its fits' wall time comes on top of "seconds"
    record["tune_evaluations"] = len(evaluations)
    record["tune_seconds"] = round(sum(e.seconds for e in evaluations), 3)
    record["bits_sent_held_out"] = int(sum(e.bits for e in evaluations))  # before the final fit
    chosen = next((e for e in evaluations if e.chosen), None)
    if chosen is not None:  # the settings fitted on all training data: config plus these
        record["tune_chosen"] = {"setting": chosen.name, "overrides": chosen.overrides}
    record["config"] = dataclasses.asdict(config)
    if dataset.target_name is not None:  # named columns: prediction files are matched by name
        result.model.input_names = tuple(dataset.feature_names)
        result.model.target_name = dataset.target_name
        result.model.time_units = dict(dataset.time_units)
        result.model.utc_inputs = tuple(dataset.utc_inputs)
    if dataset.series:  # distgp predict --ahead H forecasts past its end
        result.model.mark_series(dataset.X_train)
        unit = dataset.time_units.get(dataset.feature_names[0])
        if unit is not None:  # a series of dates continues on the calendar
            dates = calendar.to_dates(dataset.X_train[:, 0], unit)
            result.model.series_rule = calendar.series_rule(dates, unit)
    with staged_outputs(out) as stage:
        result.model.save(stage / "model.npz", {"dataset": dataset.name})
        write_text(stage / "history.csv", history_csv(result))
        written = ["model.npz", "history.csv"]
        if plots:
            figures.spectrum(result.model, stage / "spectrum.png")
            written.append("spectrum.png")
            if dataset.dims == 1 and len(dataset.y_train):  # shard files: no data to draw
                figures.prediction(result.model, dataset, stage / "prediction.png")
                written.append("prediction.png")
            if result.rounds:
                figures.convergence(result.history, stage / "convergence.png")
                written.append("convergence.png")
        if evaluations:
            from distgp.holdout import evaluations_csv

            write_text(stage / "tune.csv", evaluations_csv(evaluations))
            written.append("tune.csv")
            if plots:
                figures.tuning(evaluations, stage / "tune.png")
                written.append("tune.png")
        write_json(stage / "metrics.json", record)
        # an earlier fit's optional outputs that this one did not rewrite (not a user's own file)
        stale = sorted(OPTIONAL_OUTPUTS - set(written)) if earlier_fit else []
        publish_outputs(stage, out, [*written, "metrics.json"], stale)
    if result.prediction is not None and len(dataset.y_test):
        note = result.model.transform.unmappable(*result.prediction)
        if note:
            progress(note)
    if record["mse"] is not None:
        progress(
            f"test MSE {record['mse']:.5g}  RMSE {record['rmse']:.4g}  NLPD {record['nlpd']:.4g}  "
            f"({record['active_components']}/{record['components']} components active, "
            f"{record['seconds']:.1f} s)"
        )
    if result.stop.get("diverged"):
        c = config.consensus
        fix = "a smaller --rho or fewer agents"
        if c.quantize:  # quantisation may be the cause: float64 messages tell
            more = f"more bits per weight (--bits {c.bits + 2}) or " if (c.bits or 32) < 16 else ""
            fix = f"{more}--no-quantize; if float64 messages diverge too, {fix}"
        progress(
            f"ADMM diverged by round {result.rounds}; the model is round "
            f"{result.stop['result_round']}'s consensus, the lowest objective seen (converged: "
            f"false in metrics.json); try {fix}"
        )
    elif not result.converged:
        if result.rounds:
            cap, test = f"round cap ({config.consensus.max_rounds}; --rounds)", "ADMM's tests"
        else:
            cap, test = (
                f"iteration cap ({config.learn.max_iterations}; --max-iterations)",
                "DSCA's tests",
            )
        returned = result.stop.get("result_round")
        kept = (
            f"; the model is round {returned}'s consensus, the lowest objective seen"
            if result.rounds and returned not in (None, result.rounds, 1)
            else ""
        )
        progress(
            f"stopped at the {cap} before {test} held (converged: false in metrics.json){kept}"
        )
    if result.rounds and not result.converged and result.stop.get("result_round") == 1:
        progress(
            "the model is the starting point (round 1's consensus): no later round lowered the "
            "agents' objective at the consensus; try fewer agents, larger shards or a smaller "
            "--rho"
        )
    if result.rounds:
        ratio = record["bits_sent"] / max(record["bits_float64"], 1)
        kkt = result.stop.get("stationarity")
        settled = (
            f"; at the result the summed objective's gradient is {kkt:.3g} of its scale from "
            f"stationary (DSCA's own test: {config.learn.kkt_tol:g})"
            if kkt is not None
            else ""
        )
        progress(
            f"{result.rounds} rounds, {record['bits_sent']} bits sent ({ratio:.3f} of float64)"
            + settled
        )
        if result.stop.get("far_from_stationary"):  # said even with --quiet: the result is poor
            from distgp.driver import unsettled_note

            progress.notice(unsettled_note(kkt, config.learn.kkt_tol))
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
