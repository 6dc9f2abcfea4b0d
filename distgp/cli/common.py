"""Shared command-line plumbing: one-line errors, config files with flag overrides, progress."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from distgp.exceptions import DistGPError, NumericalError, NumericsWarning

EXIT_USAGE = 2
EXIT_FAILURE = 1  # the run itself failed (numerical failure, an output that cannot be written)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line and exit status 2.

    Flags match exactly: ``allow_abbrev`` is off, so a mistyped ``--shards`` is not taken for
    ``--shard``. Sub-command parsers are built with this class too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command, mapping distgp errors to one line: exit status 2 for bad input,
    1 for a numerical failure or an output that cannot be written."""
    warnings.simplefilter("once", NumericsWarning)
    try:
        return int(args.handler(args) or 0)
    except NumericalError as exc:
        sys.stderr.write(f"distgp {args.command}: error: {_one_line(exc)}\n")
        return EXIT_FAILURE
    except DistGPError as exc:
        sys.stderr.write(f"distgp {args.command}: error: {_one_line(exc)}\n")
        return EXIT_USAGE
    except OSError as exc:  # e.g. a full disk while writing results: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        sys.stderr.write(f"distgp {args.command}: error: {exc.strerror or _one_line(exc)}{where}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write(f"distgp {args.command}: interrupted\n")
        return 130


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def add_common(parser: argparse.ArgumentParser, out_default: str) -> None:
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="YAML config; flags override its values"
    )
    parser.add_argument("--out", metavar="DIR", help=f"output folder (default: {out_default})")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def apply_overrides(config: Any, args: argparse.Namespace, mapping: dict[str, str]) -> None:
    """Copy each flag that was given (not None) into ``config`` at its dotted key."""
    from distgp.config import override

    for flag, dotted in mapping.items():
        value = getattr(args, flag, None)
        if value is not None:
            override(config, dotted, value)


class Progress:
    """Progress lines on stderr (silent with ``--quiet``), with elapsed time."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"[{elapsed:7.1f}s] {message}\n")
            sys.stderr.flush()


def integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        value = integer(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {low}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def quiet_libraries() -> None:
    """Silence chatty third-party start-up messages (not Ray's authentication)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def resumed_config(args: argparse.Namespace, cls: type, kind: str, flags: dict, switches=()) -> Any:
    """The settings of the interrupted run in ``args.resume`` (from its checkpoint).

    Options that would change the run (``flags`` and boolean ``switches`` other than the output
    folder) are refused, so a resumed run is the run that was interrupted.
    """
    from distgp.checkpoint import Checkpoint
    from distgp.config import build
    from distgp.exceptions import ConfigError

    given = [f for f in (*flags, "config") if f != "out" and getattr(args, f, None) is not None]
    given += [f for f in switches if getattr(args, f)]
    if given or (args.out is not None and args.out != args.resume):
        flag = "--" + (given[0] if given else "out").replace("_", "-")
        raise ConfigError(f"--resume continues a run with its own settings; drop {flag}")
    config = build(cls, Checkpoint(args.resume, kind=kind).load()["config_json"])
    config.out = args.resume
    return config
