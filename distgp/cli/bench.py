"""``distgp bench SUITE``: run a benchmark suite and print its table."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from distgp.bench import SUITES
from distgp.bench.report import OUT_RESULTS, read_results
from distgp.cli.common import OneLineParser
from distgp.io import check_output_dir, check_output_file

DESCRIPTION = """Run a benchmark suite on this machine and print its table.

Every suite takes --config FILE.yaml, a mapping of the suite's options by their long names
(underscores or dashes: 'datasets: ale80,clay' or a list, 'sm-seeds: 3', 'quick: true'); flags
given on the command line override the file (each on/off option --X has a --no-X that undoes
the file's 'X: true'). --out DIR writes the suite's JSON (SECTION.json)
and its table (the suite's section of DIR/RESULTS.md) into DIR; --json and --results write the
same to a file of your choice. The command line recorded with the table names every option that
shaped the numbers, whether from the file or the command line."""


class SuiteParser(OneLineParser):
    """A suite's parser: ``--config FILE.yaml`` gives option values, the flags given override
    them (they start the namespace the command line is parsed into)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
        pre.add_argument("--config")
        try:
            path = pre.parse_known_args(args)[0].config
        except argparse.ArgumentError:  # '--config' without a file: the suite's parse says so
            path = None
        if path is not None and namespace is None:
            namespace = argparse.Namespace(**config_values(self, path))
        return super().parse_known_args(args, namespace)


def config_values(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """The options in the YAML mapping at ``path``, keyed by destination and converted as
    their flags are; a bad file, an unknown key or a bad value ends in ``parser.error``."""
    from distgp.config import read_yaml
    from distgp.exceptions import ConfigError

    try:
        mapping = read_yaml(path)
    except ConfigError as exc:
        parser.error(str(exc))
    actions: dict[str, argparse.Action] = {}
    for a in parser._actions:  # the first of a destination: --X, not its --no-X inverse
        if a.option_strings and a.dest not in ("help", "config"):
            actions.setdefault(a.dest, a)
    values = {}
    for key, value in mapping.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None:
            known = ", ".join(dest.replace("_", "-") for dest in actions)
            parser.error(f"config file {path}: unknown key {key}; known keys: {known}")
        values[action.dest] = _option_value(parser, action, f"config file {path}: {key}", value)
    return values


def _option_value(
    parser: argparse.ArgumentParser, action: argparse.Action, where: str, value: Any
) -> Any:
    """``value`` from a config file as the flag of ``action`` would give it."""
    if action.nargs == 0:  # an on/off flag
        if not isinstance(value, bool):
            parser.error(f"{where} must be true or false, got {value!r}")
        return action.const if value else action.default
    if isinstance(value, list):  # a comma-separated list
        value = ",".join(map(str, value))
    if isinstance(value, bool | dict) or value is None:
        parser.error(f"{where} takes the value of {action.option_strings[0]}, got {value!r}")
    try:
        return action.type(str(value)) if action.type else str(value)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        parser.error(f"{where}: {exc}")


def add_parser(commands) -> None:
    p = commands.add_parser(
        "bench",
        help="run a benchmark suite (kernel, admm, bkb, faults, threads, tune) and print its table",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    suites = p.add_subparsers(dest="suite", metavar="SUITE", parser_class=SuiteParser)
    for name, (module, help_text) in SUITES.items():
        if importlib.util.find_spec(module) is None:
            continue
        sp = suites.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sp)
        _add_inverses(sp)
        sp.set_defaults(handler=_runner(module), suite_parser=sp)
    p.set_defaults(handler=lambda args: p.error("choose a suite: " + ", ".join(SUITES)))


def _add_inverses(parser: argparse.ArgumentParser) -> None:
    """``--no-X`` for each on/off option ``--X``, so that a flag undoes a config file's
    ``X: true`` (named once in the command's description, not listed one by one)."""
    inverses = []
    for action in list(parser._actions):
        if isinstance(action, argparse._StoreTrueAction):
            flag = next(f for f in action.option_strings if f.startswith("--"))
            inverses.append(f"--no-{flag[2:]}")
            parser.add_argument(
                f"--no-{flag[2:]}",
                dest=action.dest,
                action="store_false",
                default=action.default,
                help=argparse.SUPPRESS,
            )
    if inverses:
        parser.description += (
            f". Each on/off option has its --no- form ({', '.join(inverses)}), which undoes "
            "the option's 'true' in a config file"
        )


def _runner(module: str):
    def run(args) -> int:
        for flag in ("json", "results", "jsonl"):  # before a run that may take hours
            if getattr(args, flag, None):
                check_output_file(getattr(args, flag), f"--{flag}")
        if getattr(args, "results", None):
            read_results(args.results)
        if args.out:
            read_results(Path(check_output_dir(args.out)) / OUT_RESULTS)
        return importlib.import_module(module).run(args)

    return run
