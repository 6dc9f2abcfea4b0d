"""The ``distgp`` command line: ``fit``, ``predict``, ``optimize`` and ``bench``.

Every command takes ``--config FILE.yaml`` (flags override it) and writes into ``--out DIR``.
Bad input ends with one line on stderr naming the problem and exit status 2; a run that fails
for another reason (an output that cannot be written) ends with one line and exit status 1.
"""

from __future__ import annotations

import contextlib
import os
import sys

from distgp.cli.common import OneLineParser, run_command

QUIET_IMPORT_COMMANDS = ("fit", "predict")
"""Commands whose numerical work is all distgp's: their BLAS pools start with one thread
(:func:`quiet_blas_at_import`)."""


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


def quiet_blas_at_import(argv: list[str]) -> bool:
    """Before numpy loads, let ``fit`` and ``predict`` start their BLAS pools with one thread.

    A pool started with every core spins its idle threads after each multi-threaded call,
    before distgp's own limits (:mod:`distgp.threads`) apply to a single call: about 0.25 CPU s
    per process on this 2-core machine. distgp raises the limits itself where more threads pay
    (OpenBLAS grows its pool on request). Thread variables the user set are kept; ``optimize``
    and ``bench`` are left alone (a user's objective and the GPyTorch baselines do their own
    numerical work). Returns whether the variables were set."""
    from distgp.threads import set_thread_env

    if not argv or argv[0] not in QUIET_IMPORT_COMMANDS or "numpy" in sys.modules:
        return False
    set_thread_env(1)
    return True


class _BestEffort:
    """stderr whose writes never fail the run: after a closed pipe (``| head``) or a full
    device, progress, warnings and errors are dropped (a write elsewhere, a warning say, would
    otherwise end the command with exit 1)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``distgp`` script; returns the exit status."""
    if sys.stderr is None:  # started with stderr closed (2>&-): progress and errors go nowhere
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    elif not isinstance(sys.stderr, _BestEffort):
        sys.stderr = _BestEffort(sys.stderr)
    quiet_blas_at_import(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command they were given to: 'distgp fit: error: ...'
        prog = " ".join(["distgp", *filter(None, (args.command, getattr(args, "suite", None)))])
        OneLineParser(prog=prog).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
