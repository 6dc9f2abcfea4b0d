"""Thread ownership: distgp chooses its BLAS, LAPACK and torch thread counts itself.

Whatever ``OMP_NUM_THREADS`` and friends say, every computing call (DSCA, prediction, an agent)
sets its own limits with threadpoolctl and ``torch.set_num_threads`` for its duration:

* dense work on matrices below :data:`BLAS_PARALLEL_N` rows runs on one BLAS thread per task,
  and the parallelism goes to independent tasks instead (envelope groups of the sub-kernel bank,
  agents). Multi-threaded OpenBLAS on such sizes gains little on an idle machine and loses up to
  10-26x on a busy one (its threads spin while they wait for each other);
* larger matrices (a Cholesky of ``n >= BLAS_PARALLEL_N``) use every thread in BLAS;
* below :data:`PARALLEL_MIN_N` rows a task is too short to pay for waking another thread, so
  everything runs on one.

The thread budget of a process is :func:`default_threads`: the cores this process may run on (or
what an agent's CPU reservation allows) that other work is not already using (from the load
average, or the tasks runnable now where fewer; waking a thread on a busy core costs a
scheduler time slice at every synchronisation),
unless a call is given ``threads`` explicitly.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from distgp.exceptions import ConfigError

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_PARALLEL_N = 2048  # matrices with at least this many rows get multi-threaded BLAS
PARALLEL_MIN_N = 400  # below this many rows everything runs on one thread
_process_threads: int | None = None
_controller: tuple[int, Any] | None = None  # (len(sys.modules) when built, ThreadpoolController)
_held = threading.local()  # .limit: (count, len(sys.modules)) set by this thread's innermost block


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_threads(threads: int | None) -> int | None:
    """Validate an explicit thread count (``None``: let distgp choose)."""
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads):
        raise ConfigError(f"threads must be a whole number, got {threads!r}")
    if threads is not None:
        from distgp.config import FitConfig
        from distgp.settings import require

        require(FitConfig, "learn.threads", threads)
    return threads


def set_process_threads(threads: int | None) -> None:
    """Set this process's thread budget (an agent's CPU reservation); ``None``: all its cores."""
    global _process_threads
    _process_threads = check_threads(threads)


def idle_cores(cores: int) -> int:
    """Of ``cores``, those that other work leaves idle, at least one. Other work is the
    1-minute load average, or the tasks runnable right now where that is less (the average
    lags: just after a busy process ends it still counts it); this thread not counted."""
    try:
        others = os.getloadavg()[0] - 1.0
    except (AttributeError, OSError):  # Windows
        return cores
    now = _runnable_now()
    if now is not None:
        others = min(others, now - 1.0)
    return max(1, min(cores, round(available_cores() - others)))


def _runnable_now() -> int | None:
    """Tasks runnable on the machine at this instant (Linux's ``/proc/loadavg``), this one
    included; ``None`` where the OS does not say."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def thread_budget(threads: int | None = None) -> int:
    """The threads a computation may use: ``threads`` (checked) up to the cores this process
    may run on (more threads than cores only wait for each other: OpenBLAS's spin, and a
    co2 fit with ``--threads 36`` on 2 cores ran for minutes instead of 6 s), else
    :func:`default_threads`."""
    explicit = check_threads(threads)
    return min(explicit, available_cores()) if explicit else default_threads()


def default_threads() -> int:
    """The thread budget of this process: its cores (or the budget set by
    :func:`set_process_threads`) that other work leaves idle."""
    budget = _process_threads if _process_threads is not None else available_cores()
    return idle_cores(budget)


@dataclass(frozen=True)
class ThreadPlan:
    """How a computation on ``n x n`` matrices uses its threads.

    Attributes:
        blas: threads inside each BLAS/LAPACK/torch call.
        workers: independent tasks run at once (each with ``blas`` threads).
    """

    blas: int
    workers: int

    @classmethod
    def for_size(cls, n: int, threads: int | None = None) -> ThreadPlan:
        """The plan for matrices with ``n`` rows and a budget of ``threads`` (default
        :func:`default_threads`)."""
        total = thread_budget(threads)
        if n < PARALLEL_MIN_N:
            return cls(blas=1, workers=1)
        if n >= BLAS_PARALLEL_N:
            return cls(blas=total, workers=1)
        return cls(blas=1, workers=total)


def _pools() -> Any:
    """threadpoolctl's controller of the loaded BLAS/OpenMP libraries (finding them takes
    about 0.3 ms, so it is kept until a module is imported, which may load another one)."""
    global _controller
    if _controller is None or _controller[0] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        _controller = (len(sys.modules), ThreadpoolController())
    return _controller[1]


@contextmanager
def blas_threads(threads: int | None = 1) -> Iterator[None]:
    """Limit BLAS/OpenMP threads (and torch's, when torch is loaded) inside the block.

    ``None`` uses :func:`default_threads`. The limits replace whatever the environment set.
    Inside a block of this thread with the same count and no import since, it changes nothing.
    """
    count = thread_budget(threads)
    key = (count, len(sys.modules))
    outer = getattr(_held, "limit", None)
    if outer == key:
        yield
        return
    torch = sys.modules.get("torch")  # agents never import torch just to set its threads
    if torch is not None and getattr(getattr(torch, "__spec__", None), "_initializing", False):
        torch = None  # still being imported by another thread: its functions may not exist yet
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(count)
    _held.limit = key
    try:
        with _pools().limit(limits=count):
            yield
    finally:
        _held.limit = outer
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)


@contextmanager
def owned_threads(n: int, threads: int | None = None) -> Iterator[ThreadPlan]:
    """Set the limits of :meth:`ThreadPlan.for_size` for the block and yield the plan."""
    plan = ThreadPlan.for_size(n, threads)
    with blas_threads(plan.blas):
        yield plan


def thread_env(threads: int = 1) -> dict[str, str]:
    """Environment variables that cap BLAS/OpenMP threads in a new process (its import time)."""
    return {name: str(threads) for name in _THREAD_VARS}


def set_thread_env(threads: int = 1) -> None:
    """Cap threads for libraries not yet loaded in this process (call before importing numpy)."""
    for name, value in thread_env(threads).items():
        os.environ.setdefault(name, value)
