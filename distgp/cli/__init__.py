"""The ``distgp`` command line: ``fit``, ``predict``, ``optimize`` and ``bench``.

Every command takes ``--config FILE.yaml`` (flags override it) and writes into ``--out DIR``.
Bad input ends with one line on stderr naming the problem and exit status 2; a run that fails
for another reason (an output that cannot be written) ends with one line and exit status 1.
"""

from __future__ import annotations

import sys

from distgp.cli.common import OneLineParser, run_command


def build_parser() -> OneLineParser:
    from distgp.cli import bench, fit, optimize, predict

    parser = OneLineParser(
        prog="distgp",
        description=(
            "Distributed GP kernel learning (SLIM-KL: GSMP kernel, DSCA, quantised ADMM over Ray "
            "agents) and scalable bandit optimisation (BKB)."
        ),
        epilog=(
            "Run 'distgp COMMAND --help' for the options of a command. Exit status: 0 done, "
            "2 bad input (one line on stderr), 1 the run failed."
        ),
    )
    from distgp import __version__

    parser.add_argument("--version", action="version", version=f"distgp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in (fit, predict, optimize, bench):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``distgp`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
