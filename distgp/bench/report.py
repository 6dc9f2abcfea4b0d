"""Tables, machine description and the RESULTS.md sections written by the benchmark suites."""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distgp.io import ensure_output_dir, write_json, write_text

DEFAULT_DATA_DIR = "../shared/data/slimkl"


def data_dir(explicit: str | None = None) -> Path:
    """The SLIM-KL data folder: ``--data-dir``, ``$DISTGP_DATA`` or ``../shared/data/slimkl``."""
    from distgp.exceptions import InputDataError

    path = Path(explicit or os.environ.get("DISTGP_DATA", DEFAULT_DATA_DIR))
    if not path.is_dir():
        raise InputDataError(
            f"benchmark data folder {path} does not exist; pass --data-dir or set DISTGP_DATA"
        )
    return path


def fmt(value: Any, digits: int = 4) -> str:
    """Compact number formatting for tables."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-markdown table of ``rows`` restricted to ``columns``."""
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def machine() -> str:
    """One line describing where the numbers were measured."""
    cpus = os.cpu_count() or 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory = f", {mem:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    return f"{platform.machine()}, {cpus} cores{memory}, Python {platform.python_version()}"


def stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def save_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        write_json(path, {"date": stamp(), "machine": machine(), **payload})


def read_results(path: str | Path) -> str:
    """The text of a RESULTS.md file (a new file's heading when it is missing); a file that is
    not UTF-8 is a :class:`ConfigError`. Run before a suite too, which may take hours."""
    from distgp.exceptions import ConfigError

    path = Path(path)
    if not path.exists():
        return "# Benchmark results\n\nLatest tables printed by each `distgp bench` suite.\n"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"results file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 or "
            "give another file"
        ) from None
    check_markers(text, path)
    return text


MARKER = re.compile(r"<!-- (\S+?):(start|end) -->")


def check_markers(text: str, path: Path) -> None:
    """Each section of a RESULTS.md file between its own start and end marker, once, none
    inside another (a section is replaced from its start to its end marker): a
    :class:`ConfigError` naming the first marker out of place otherwise."""
    from distgp.exceptions import ConfigError

    def unclosed(name: str, before: str = "") -> ConfigError:
        return ConfigError(
            f"results file {path} has `<!-- {name}:start -->` without its end{before}; fix the "
            f"file: add `<!-- {name}:end -->` or remove the start"
        )

    seen: set[str] = set()
    inside: str | None = None
    for match in MARKER.finditer(text):
        name, kind = match.groups()
        marker = f"`{match.group(0)}`"
        if inside is not None and kind == "start":
            raise unclosed(inside, f" before {marker}")
        if kind == "start" and name in seen:
            raise ConfigError(f"results file {path} has {marker} twice; fix the file: keep one")
        if kind == "end" and inside != name:
            raise ConfigError(
                f"results file {path} has {marker} without its start; fix the file: add "
                f"`<!-- {name}:start -->` or remove the end"
            )
        inside = name if kind == "start" else None
        seen.add(name)
    if inside is not None:
        raise unclosed(inside)


def update_results(path: str | Path, suite: str, command: str, body: str) -> None:
    """Replace the ``suite`` section of a RESULTS.md file (created if missing)."""
    text = read_results(path)
    start, end = f"<!-- {suite}:start -->", f"<!-- {suite}:end -->"
    section = (
        f"{start}\n## {suite}\n\n`{command}` on {stamp()}, {machine()}.\n\n{body.rstrip()}\n{end}"
    )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    write_text(path, text)


OUT_RESULTS = "RESULTS.md"  # the section file of --out DIR, beside SECTION.json


def add_common_arguments(parser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="this suite's options by their long names (datasets: a,b; sm_seeds: 3; quick: "
        "true); flags given override the file",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=f"write the JSON (SECTION.json) and the table (this suite's section of "
        f"DIR/{OUT_RESULTS}) into DIR",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--results", metavar="RESULTS.md", help="replace this suite's section of a RESULTS.md file"
    )
    parser.add_argument("--quick", action="store_true", help="small settings for a smoke test")


def add_run_arguments(parser, datasets: str, run: str | None = None, seed: bool = True) -> None:
    """``--datasets`` (``datasets`` describes the default), ``--data-dir`` and ``--seed`` of a
    suite that fits the SLIM-KL data, and ``--timeout`` of each ``run`` (``"model run"``) when
    the suite runs them in subprocesses."""
    from distgp.cli.common import at_least, positive_number

    parser.add_argument(
        "--datasets", metavar="A,B", help=f"comma-separated file stems (default: {datasets})"
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="SLIM-KL data folder (default ../shared/data/slimkl)"
    )
    if seed:
        parser.add_argument(
            "--seed", type=at_least(0), default=0, help="seed of every run (default 0)"
        )
    if run is not None:
        parser.add_argument(
            "--timeout",
            type=positive_number,
            default=1800.0,
            metavar="SEC",
            help=f"kill a single {run} after this many seconds (default 1800)",
        )


def load_note(start: float, end: float) -> str:
    """A line on how busy the machine was (timings are wall-clock)."""
    return (
        f"Load average (1 min) of this machine: {start:.1f} at the start, {end:.1f} at the end "
        f"on {os.cpu_count()} CPUs; other processes share them, so timings are upper bounds."
    )


WHERE_OPTIONS = frozenset({"config", "out", "json", "results", "jsonl", "data_dir", "address"})
"""Options that say where the data, the cluster and the outputs are, not what is measured:
left out of the recorded command line."""


def run_options(args: argparse.Namespace, always: Sequence[str] = ()) -> dict[str, Any]:
    """The options of the suite's parser (``args.suite_parser``) that shape its numbers and
    differ from their defaults, by flag in the parser's order; those named in ``always`` (by
    destination) also at their default."""
    options, seen = {}, set()
    for action in args.suite_parser._actions:
        flags = [f for f in action.option_strings if f.startswith("--")]
        if not flags or action.dest in WHERE_OPTIONS | seen or action.dest == "help":
            continue  # an option's --no- inverse (same destination) is not a second option
        seen.add(action.dest)
        value = getattr(args, action.dest)
        if action.dest in always or value != action.default:
            options[flags[0]] = value
    return options


def command_line(args: argparse.Namespace, options: dict[str, Any] | None = None) -> str:
    """``distgp bench SUITE`` with every option of :func:`run_options` (``options``, when
    already found): the command that measures the same numbers."""
    parts = ["distgp bench", args.suite]
    for flag, value in (run_options(args) if options is None else options).items():
        parts.append(flag if value is True else f"{flag} {_option_text(value)}")
    return " ".join(parts)


def _option_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(_option_text, value))
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def publish(
    args: argparse.Namespace,
    suite: str,
    body: str,
    payload: dict[str, Any],
    always: Sequence[str] = (),
) -> None:
    """Print a suite's tables, and write them to ``--json`` and the ``suite`` section of
    ``--results`` when asked, and into ``--out DIR`` (``suite.json`` and the section of
    ``DIR/RESULTS.md``), with the command line and the options that shaped them
    (:func:`run_options`; ``always``: also these at their default)."""
    options = run_options(args, always)
    command = command_line(args, options=options)
    print(body)
    named = {flag[2:]: value for flag, value in options.items()}
    payload = {**payload, "command": command, "options": named}
    save_json(args.json, payload)
    if args.results:
        update_results(args.results, suite, command, body)
    if args.out:
        out = ensure_output_dir(args.out)
        save_json(str(out / f"{suite}.json"), payload)
        update_results(out / OUT_RESULTS, suite, command, body)
