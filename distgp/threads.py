"""BLAS thread limits.

Oversubscribed OpenBLAS threads make the many small LAPACK calls of the solvers up to 100x slower
on small machines, so agents, tests and benchmarks cap them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int = 1) -> dict[str, str]:
    """Environment variables that cap BLAS/OpenMP threads in a new process (e.g. a Ray actor)."""
    return {name: str(threads) for name in _THREAD_VARS}


def set_thread_env(threads: int = 1) -> None:
    """Cap threads for libraries not yet loaded in this process (call before importing numpy)."""
    for name, value in thread_env(threads).items():
        os.environ.setdefault(name, value)


@contextmanager
def blas_threads(threads: int | None = 1) -> Iterator[None]:
    """Limit BLAS and torch threads inside the block; ``None`` leaves them unchanged."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def driver_threads(agents: int) -> int | None:
    """BLAS threads for the driver process: one while agent processes do the work, else as set.

    An explicit ``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` always wins (``None``: unchanged).
    """
    if any(name in os.environ for name in _THREAD_VARS):
        return None
    return 1 if agents > 1 else None
