"""Busy background processes: other work on the machine, for benchmarks measured under load.

Each process is a pure-Python loop (one core's worth of work, no BLAS threads of its own) that
also checks every few tens of milliseconds that its parent is still the process that started
it, so it ends by itself if that process dies without stopping it (no orphans, even after a
``kill -9``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# runs until its parent changes (the starting process died) or it is stopped
_LOOP = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(200_000):
        pass
"""
STOP_TIMEOUT = 5.0  # seconds a terminated process may take before it is killed


@contextmanager
def busy_processes(count: int) -> Iterator[list[subprocess.Popen]]:
    """Run ``count`` busy processes for the duration of the block; they are stopped when it
    ends, by an exception or Ctrl-C too."""
    started: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            started.append(
                subprocess.Popen(
                    [sys.executable, "-c", _LOOP, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
