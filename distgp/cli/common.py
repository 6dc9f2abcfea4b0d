"""Shared command-line plumbing: one-line errors, config files with flag overrides, progress."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distgp.cli.flags import integer, number
from distgp.exceptions import (
    BackendError,
    ConfigError,
    DistGPError,
    NumericalError,
    NumericsWarning,
    ObjectiveError,
)

EXIT_USAGE = 2
EXIT_FAILURE = 1  # the run itself failed (numerical failure, an output that cannot be written)

RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops as on Ctrl-C (checkpoint kept,
    agents and Ray shut down)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command, mapping distgp errors to one line: exit status 2 for bad input,
    1 for a numerical failure or an output that cannot be written; 130 on Ctrl-C, 143 on
    SIGTERM."""
    if getattr(args, "quiet", False):  # Ray's notice that token auth is on (it stays on)
        logging.getLogger(RAY_AUTH_LOGGER).setLevel(logging.ERROR)
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        with warnings.catch_warnings():  # the filters and the printer restored afterwards
            warnings.simplefilter("always", NumericsWarning)  # WarningLines shows each once
            warnings.showwarning = WarningLines(args.command)
            return _run(args)
    finally:
        lock = getattr(args, "out_lock", None)
        if lock is not None:
            lock.release()
        if main_thread:
            signal.signal(signal.SIGTERM, before)


def lock_output(args: argparse.Namespace, out: Path, flag: str = "--out") -> None:
    """Lock the run's output folder ``out`` until the command ends (:func:`run_command` releases
    it), so that no second run writes into it meanwhile; once held, again is a no-op."""
    from distgp.io import lock_output_dir

    if getattr(args, "out_lock", None) is None:
        args.out_lock = lock_output_dir(out, flag)


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class WarningLines:
    """Python warnings as one line each on stderr, ``distgp CMD: warning: TEXT`` (with ``--quiet``
    too), like the command's errors; not Python's two lines with the source line. A warning is
    shown once per run, also when only its numbers change (a jitter at every iterate, say). A
    library's warning names its category and where it was raised."""

    def __init__(self, command: str | None) -> None:
        self.prefix = f"distgp {command}: warning: " if command else "distgp: warning: "
        self.seen: set[tuple[type, str]] = set()
        self._lock = threading.Lock()  # warnings come from the solver's threads too

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split()) or category.__name__
        key = (category, NUMBER.sub("#", text))
        with self._lock:
            if key in self.seen:
                return
            self.seen.add(key)
        if not issubclass(category, NumericsWarning):
            text += f" ({category.__name__}, {os.path.basename(filename)}:{lineno})"
        sys.stderr.write(f"{self.prefix}{text}\n")
        sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except NumericalError as exc:
        sys.stderr.write(f"distgp {args.command}: error: {_one_line(exc)}\n")
        return EXIT_FAILURE
    except DistGPError as exc:
        checkpoint = getattr(args, "checkpoint", None)
        if checkpoint is not None and not checkpoint.path.is_file():
            checkpoint.remove()  # agents' round state of a run that saved nothing to resume
        hint = _flag_hint(args, exc)
        resumable = _resumable(args)
        if resumable and isinstance(exc, BackendError | ObjectiveError):  # once fixed, it resumes
            hint += f"; 'distgp {args.command} --resume {checkpoint.path.parent}' continues the run"
        sys.stderr.write(f"distgp {args.command}: error: {_one_line(exc)}{hint}\n")
        return EXIT_USAGE
    except OSError as exc:  # e.g. a full disk while writing results: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        checkpoint = getattr(args, "checkpoint", None)
        if _resumable(args):  # kept: the run is not lost
            where += (
                f"; once it is fixed, 'distgp {args.command} --resume {checkpoint.path.parent}' "
                "finishes the run and writes its outputs"
            )
        sys.stderr.write(f"distgp {args.command}: error: {exc.strerror or _one_line(exc)}{where}\n")
        return EXIT_FAILURE
    except Exception as exc:
        if not type(exc).__module__.startswith("ray."):
            raise
        # the Ray runtime itself failed (its node or raylet died): Ray has printed its story
        checkpoint = getattr(args, "checkpoint", None)
        hint = ""
        if _resumable(args):
            hint = f"; 'distgp {args.command} --resume {checkpoint.path.parent}' continues the run"
        first = _one_line(ANSI_ESCAPE.sub("", str(exc).split("\n", 1)[0]))[:200]
        sys.stderr.write(
            f"distgp {args.command}: error: the Ray runtime failed ({type(exc).__name__}: "
            f"{first}){hint}\n"
        )
        return EXIT_FAILURE
    except KeyboardInterrupt as exc:
        checkpoint = getattr(args, "checkpoint", None)
        hint = ""
        if checkpoint is not None and checkpoint.searching:  # a file there is an older run's
            hint = (
                f"; {checkpoint.searching} is not resumable (the run is checkpointed only once "
                "it has chosen): run the same command again to start it over"
            )
        elif _resumable(args):
            hint = f"; 'distgp {args.command} --resume {checkpoint.path.parent}' continues it"
        elif checkpoint is not None and checkpoint.path.is_file():  # an older run's
            hint = (
                "; the run had saved no checkpoint yet: run the same command again to start it "
                f"over ({checkpoint.path} is an earlier run's, which the new run replaces at its "
                "first checkpoint)"
            )
        terminated = isinstance(exc, Terminated)
        sys.stderr.write(
            f"distgp {args.command}: {'terminated' if terminated else 'interrupted'}{hint}\n"
        )
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


def _resumable(args: argparse.Namespace) -> bool:
    """Whether ``--resume`` continues the run of ``args.checkpoint`` (absent for a command without
    one): its file is there and is this run's (saved by it, or the one it resumes), not an older
    run's left in the folder (also while a ``--tune`` search runs)."""
    checkpoint = getattr(args, "checkpoint", None)
    return (
        checkpoint is not None
        and checkpoint.path.is_file()
        and (checkpoint.written or bool(getattr(args, "resume", None)))
        and not checkpoint.searching
    )


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colours in Ray's messages


def _flag_hint(args: argparse.Namespace, exc: DistGPError) -> str:
    """`` (flag --x)`` for an error naming a setting that a flag of this command sets."""
    table = getattr(args, "flag_table", None)
    path = exc.setting if isinstance(exc, ConfigError) else None
    flag = table.flag_of(path) if table is not None and path else None
    return f" (flag {flag})" if flag and flag not in str(exc) else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--quiet`` and ``--resume``: a command's options that are not settings."""
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="YAML config; flags override its values"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run whose --out was DIR, with its own settings",
    )


class Progress:
    """Progress lines on stderr (silent with ``--quiet``), with elapsed time."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:  # best-effort: main() makes stderr writes never fail the run
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"[{elapsed:7.1f}s] {message}\n")
            sys.stderr.flush()

    def notice(self, message: str) -> None:
        """A line written even with ``--quiet`` (e.g. files about to be deleted)."""
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"[{elapsed:7.1f}s] {message}\n")
        sys.stderr.flush()


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


def resumed_config(args: argparse.Namespace, cls: type, kind: str) -> Any:
    """The settings of the interrupted run in ``args.resume`` (from its checkpoint).

    Setting flags (other than the output folder) and ``--config`` are refused, so a resumed run
    is the run that was interrupted.
    """
    from distgp.checkpoint import Checkpoint
    from distgp.config import build

    given = [f for f in args.flag_table.given(args) if f != "--out"]
    given += ["--config"] if args.config is not None else []
    out = args.flag_table.flag_of("out")
    out_value = getattr(args, "out", None)
    if given or (out_value is not None and out_value != args.resume):
        raise ConfigError(
            f"--resume continues a run with its own settings; drop {given[0] if given else out}"
        )
    if Path(args.resume).is_dir():  # before reading the checkpoint another run may be writing
        lock_output(args, Path(args.resume), "--resume")
    mapping = dict(Checkpoint(args.resume, kind=kind).load()["config_json"])
    space = mapping.pop("space", None)  # a free-form mapping (optimize), not a typed section
    config = build(cls, mapping)
    if space is not None:
        config.space = space
    config.out = args.resume
    return config
