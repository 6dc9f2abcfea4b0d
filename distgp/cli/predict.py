"""``distgp predict``: predictive mean, standard deviation and 95% interval of a saved model,
as CSV."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from distgp.cli.common import Progress, at_least
from distgp.exceptions import ConfigError

PREDICTION_LEVEL = 0.95  # coverage of the interval columns lower95 and upper95
MAX_AHEAD = 1_000_000  # forecast steps of --ahead (1e8 took 10 minutes and 12 GiB)
OUTPUTS = ("forecast.png", "predictions.csv", "metrics.json")  # in the order they are published


def add_parser(commands) -> None:
    p = commands.add_parser(
        "predict",
        help="predict with a model.npz written by 'distgp fit'",
        description=(
            "Predict with a fitted model at the inputs of SOURCE (its test split when it has one: "
            ".mat, .npz with xtest, builtin:co2; otherwise all its rows), or H steps past the "
            "end of the series a model was fitted on (--ahead H). Writes predictions.csv "
            "(inputs, mean, std, the central 95% interval lower95 and upper95, and y when "
            "known) and, when y is known, metrics.json; with --ahead, forecast.png (the series and "
            "its forecast) when the model holds its training data."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="MODEL.npz",
        help="model file written by distgp fit (or the fit's output folder)",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--data", metavar="SOURCE", help="a .mat/.csv/.npz file or builtin:co2 to predict at"
    )
    where.add_argument(
        "--ahead",
        type=at_least(1),
        metavar="H",
        help=(
            "for a model fitted on a series: forecast the H steps after its last training "
            "point, at the series' spacing (fit with --test-fraction 0 to train on all of it)"
        ),
    )
    p.add_argument("--target", metavar="COLUMN", help="output column of a CSV, if it has one")
    p.add_argument(
        "--out", metavar="DIR", default="runs/predict", help="output folder (default: runs/predict)"
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help=(
            "for a private model fitted on --shards: the Ray cluster (HOST:PORT, auto) to "
            "rebuild its agents on, where the shard files' nodes are now (default: the fit's "
            "backend.address)"
        ),
    )
    p.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="accepted for symmetry (checked like fit's); predict needs no settings",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from distgp.data import default_input_names, is_csv_source, load_prediction_inputs
    from distgp.gp import GSMPModel, regression_metrics
    from distgp.io import (
        check_output_dir,
        check_output_names,
        check_own_folder,
        ensure_output_dir,
        publish_outputs,
        staged_outputs,
        write_json,
        write_text,
    )

    progress = Progress(args.quiet)
    if args.config is not None:  # a missing or broken file is a mistake worth naming
        from distgp.config import load_fit_config

        load_fit_config(args.config).validate(devices=False)  # predict runs on the CPU
    if args.ahead is not None and args.ahead > MAX_AHEAD:
        raise ConfigError(
            f"--ahead {args.ahead} is more steps than predict writes ({MAX_AHEAD}); forecast "
            "fewer, or predict at the inputs of a file with --data"
        )
    if args.ahead is not None and args.target is not None:
        raise ConfigError(
            "--target names the known outputs of a --data file; a forecast --ahead has none: "
            "drop --target"
        )
    out = check_output_dir(args.out)
    check_own_folder(out, "predict")  # a fit's metrics.json would be replaced
    check_output_names(out, OUTPUTS, "predict")
    model = GSMPModel.load(args.model)  # the file, or the fit's output folder
    if args.address is not None:
        from distgp.driver import at_address

        at_address(model, args.address)
    unfinished = unfinished_run_note(args.model)
    if unfinished is not None:  # even with --quiet: the model may not be the one meant
        progress.notice(unfinished)
    # times are written in UTC (marked Z) where the file predicted at gave offsets; a
    # forecast --ahead continues the training file's
    csv_file = args.data is not None and is_csv_source(args.data)
    utc = set() if csv_file else set(model.utc_inputs)  # a CSV's own fill it when read
    scored: list[str] = []  # the CSV column read as the known outputs, if any
    if args.ahead is not None:
        names = list(model.input_names or default_input_names(model.dims))
        X, y = _ahead(model, names[0], args.ahead), None
    else:
        X, y, names = load_prediction_inputs(
            args.data,
            model.dims,
            args.target or model.target_name,
            model.input_names,
            require_target=args.target is not None,
            time_units=model.time_units,
            utc=utc,
            scored=scored,
        )
    if model.input_names is None and csv_file and names != default_input_names(model.dims):
        progress(
            "the model records no column names (fitted on arrays, .npz or .mat data): its "
            f"inputs are taken by position, the file's columns {', '.join(names)}"
            + (
                f"; column {scored[0]} is taken as the known outputs, scored against and "
                "written as y" + ("" if args.target else " (--target names another)")
                if scored
                else ""
            )
        )
    elif (  # a built-in dataset has named columns, matched by name
        model.input_names is not None
        and args.data is not None
        and not csv_file
        and not args.data.startswith("builtin:")
    ):
        progress(
            f"{args.data} has no named columns to match: its inputs are taken by position as "
            f"the model's {', '.join(model.input_names)}"
        )
    latent = model.predict_latent(X, return_std=True)
    mean, std = model.transform.moments(*latent)
    lower, upper = model.transform.interval(*latent, PREDICTION_LEVEL)
    beyond = int(np.count_nonzero(~np.isfinite(mean) | ~np.isfinite(std)))
    unmappable = model.transform.unmappable(*latent, PREDICTION_LEVEL)
    if unmappable:
        progress(unmappable)
    elif beyond:
        progress(
            f"{beyond} of the {len(mean)} predictions pass float64's range on the original "
            f"scale of {model.transform.kind}(y) (written as inf): their inputs lie far beyond "
            "the training data"
        )
    ensure_output_dir(out)
    outputs = ["mean", "std", "lower95", "upper95"] + (["y"] if y is not None else [])
    inputs = _distinct_inputs(names, outputs)
    for old_name, new_name in zip(names, inputs, strict=True):
        if old_name != new_name:
            progress(
                f"input column {old_name!r} is written as {new_name!r} ({old_name} is an output)"
            )
    header = [*inputs, *outputs]
    columns = [_input_texts(model, name, X[:, p], name in utc) for p, name in enumerate(names)]
    columns += [_texts(v) for v in (mean, std, lower, upper)]
    if y is not None:  # rows whose outputs are not known yet stay empty
        columns.append(["" if np.isnan(v) else repr(float(v)) for v in y])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes names holding commas or quotes
    writer.writerow(header)
    writer.writerows(zip(*columns, strict=True))
    scores = None
    if y is not None:
        known = ~np.isnan(y)
        if not known.all():
            progress(
                f"{int((~known).sum())} of the {len(y)} rows have no output yet: predicted, "
                "not scored"
            )
        y, latent_known = y[known], tuple(v[known] for v in latent)
        scores = regression_metrics(y, *latent_known, model.transform)
        progress(
            f"MSE {scores['mse']:.5g}  NLPD {scores['nlpd']:.4g}  95% coverage "
            f"{scores['coverage95']:.3g} on {len(y)} points"
        )
        unreachable = int(np.sum(y <= 0)) if not model.transform.identity else 0
        if unreachable:
            progress(
                f"{unreachable} of the {len(y)} outputs are <= 0, which the model of "
                f"{model.transform.kind}(y) gives no density: the NLPD is infinite (null in "
                "metrics.json) and they lie outside every interval"
            )
    plot = args.ahead is not None and not model.private
    if plot:  # a forecast is drawn up to its first step too large to draw
        from distgp.plots import drawable

        shown = drawable(mean, lower, upper)
        drawn = len(mean) if shown.all() else int(np.argmin(shown))
        plot = drawn > 0
    with staged_outputs(out) as stage:
        written = ["predictions.csv"]
        write_text(stage / "predictions.csv", text.getvalue())
        if plot:
            _plot_forecast(model, X[:drawn], names, stage / "forecast.png")
            written.insert(0, "forecast.png")
        if scores is not None:
            write_json(stage / "metrics.json", {**scores, "n": len(y), "model": str(args.model)})
            written.append("metrics.json")
        # an earlier prediction's scores or figure would not describe this one
        publish_outputs(stage, out, written, [n for n in OUTPUTS if n not in written])
    progress(f"wrote {len(mean)} predictions to {out}/predictions.csv")
    if plot:
        part = (
            f" (its first {drawn} steps: the mean or the 95% interval of the rest is too "
            "large to draw)"
            if drawn < len(mean)
            else ""
        )
        progress(f"wrote {out}/forecast.png{part}")
    elif args.ahead is not None and not model.private:
        progress(
            "no forecast.png: the mean or the 95% interval of its first step is already too "
            "large to draw"
        )
    elif args.ahead is not None:
        progress(
            "no forecast.png: a private model holds no training data to draw the series from "
            "(its agents keep it)"
        )
    return 0


def unfinished_run_note(model: str) -> str | None:
    """A warning when the folder of ``model`` (a model.npz, or a fit's output folder) holds an
    unfinished fit's checkpoint: its model.npz is then an earlier finished run's, or, with no
    metrics.json (the fit was stopped while moving its outputs into place), maybe either's."""
    from distgp.checkpoint import CHECKPOINT_NAME

    path = Path(model)
    folder = path if path.is_dir() else path.parent
    if not (folder / CHECKPOINT_NAME).is_file():
        return None
    resume = f"'distgp fit --resume {folder}' finishes it"
    if not (folder / "metrics.json").is_file():
        return (
            f"warning: {folder} holds an unfinished fit ({CHECKPOINT_NAME}) stopped while writing "
            f"its outputs (no metrics.json): the model may be either run's; {resume}"
        )
    return (
        f"warning: {folder} holds an unfinished fit ({CHECKPOINT_NAME}): the model is the "
        f"earlier finished run's; {resume}"
    )


def _ahead(model, name: str, steps: int) -> np.ndarray:
    """``steps x 1`` raw inputs after a series' end: on the calendar for a series of dates
    (month ends stay month ends), else at the series' spacing."""
    unit = model.time_units.get(name)
    X = model.ahead(steps)  # refuses a model without a series end
    if unit is None:
        return X
    from distgp import calendar

    last = calendar.to_dates([model.series_end], unit)[0]
    dates = calendar.following(last, unit, model.series_step, steps, model.series_rule)
    return calendar.to_numbers(dates, unit)[:, None]


def _texts(values: np.ndarray) -> list[str]:
    """Numbers at round-trip precision."""
    return [repr(float(v)) for v in values]


def _input_texts(model, name: str, values: np.ndarray, utc: bool) -> list[str]:
    """An input column as written: dates for a column that held them (in UTC, marked ``Z``,
    with ``utc``), else numbers."""
    unit = model.time_units.get(name)
    if unit is None:
        return _texts(values)
    from distgp import calendar

    dates = calendar.to_dates(values, unit)
    return calendar.format_dates(dates, utc=utc)


def _plot_forecast(model, X_ahead: np.ndarray, names: list[str], path) -> None:
    """The series the model was fitted on and its forecast with the 95% interval."""
    from distgp import plots as figures
    from distgp.data import Dataset

    X, y = model.training_data()
    empty = np.empty(0)
    series = Dataset(X, y, X_ahead, empty, "forecast", names, target_name=model.target_name)
    figures.prediction(model, series, path)


def _distinct_inputs(names: list[str], outputs: list[str]) -> list[str]:
    """Input column names, each one that equals an output column (or an earlier name) suffixed
    with ``_input`` (then a number) so that every column of predictions.csv has its own name."""
    taken = set(outputs)
    distinct = []
    for name in names:
        candidate, k = name, 1
        while candidate in taken:
            candidate = f"{name}_input" + (f"{k}" if k > 1 else "")
            k += 1
        taken.add(candidate)
        distinct.append(candidate)
    return distinct
