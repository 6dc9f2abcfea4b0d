"""``distgp bench SUITE``: run a benchmark suite and print its table."""

from __future__ import annotations

import importlib
import importlib.util

from distgp.bench import SUITES
from distgp.bench.report import read_results
from distgp.cli.common import OneLineParser
from distgp.io import check_output_file


def add_parser(commands) -> None:
    p = commands.add_parser(
        "bench",
        help="run a benchmark suite (kernel, admm, bkb, faults, threads, tune) and print its table",
        description="Run a benchmark suite on this machine and print its table.",
    )
    suites = p.add_subparsers(dest="suite", metavar="SUITE", parser_class=OneLineParser)
    for name, (module, help_text) in SUITES.items():
        if importlib.util.find_spec(module) is None:
            continue
        sp = suites.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sp)
        sp.set_defaults(handler=_runner(module), suite_parser=sp)
    p.set_defaults(handler=lambda args: p.error("choose a suite: " + ", ".join(SUITES)))


def _runner(module: str):
    def run(args) -> int:
        for flag in ("json", "results", "jsonl"):  # before a run that may take hours
            if getattr(args, flag, None):
                check_output_file(getattr(args, flag), f"--{flag}")
        if getattr(args, "results", None):
            read_results(args.results)
        return importlib.import_module(module).run(args)

    return run
