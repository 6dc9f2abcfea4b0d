"""Floating-point operation counts of the dense work, as the code does it (for the benchmarks).

The bank and the objective report each dense call here; counting is off (a no-op) unless a
:func:`counting` block is open. Kinds: ``gemm`` (matrix products and rank-k updates: forming the
covariance, traces and quadratic forms), ``cholesky`` (``n^3 / 3``), ``inverse`` (``C^-1`` from
the factor, ``2 n^3 / 3``) and ``solve`` (triangular solves, ``2 n^2`` per right-hand side).
Element-wise work (envelopes, Hadamard products) is memory-bound and not counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

KINDS = ("gemm", "cholesky", "inverse", "solve")
_counter: dict[str, float] | None = None
_lock = threading.Lock()


def add(kind: str, flops: float) -> None:
    """Record ``flops`` operations of ``kind`` in the open :func:`counting` block, if any (from
    any thread: held-out fits run side by side)."""
    if _counter is not None:
        with _lock:
            _counter[kind] = _counter.get(kind, 0.0) + float(flops)


@contextmanager
def counting() -> Iterator[dict[str, float]]:
    """Count the flops of the block; yields the (filling) ``kind -> flops`` mapping."""
    global _counter
    previous, _counter = _counter, dict.fromkeys(KINDS, 0.0)
    try:
        yield _counter
    finally:
        _counter = previous


@contextmanager
def excluded() -> Iterator[None]:
    """Count nothing of the block (in any thread) even inside a :func:`counting` block: the
    held-out fits of an outer choice are not the final fit whose iterations the floor is per."""
    global _counter
    previous, _counter = _counter, None
    try:
        yield
    finally:
        _counter = previous


def measured_rates(
    n: int, columns: int = 512, repeats: int = 3, clock=time.perf_counter, streams: int = 1
) -> dict[str, float]:
    """This machine's dense rates (flop/s) at size ``n``, under the current thread limits.

    ``gemm``: ``n x n`` by ``n x columns`` products (the shape of the bank's products), one per
    stream, ``streams`` of them at once in as many threads (the bank runs its envelope groups'
    products ``workers`` at a time; BLAS releases the GIL): the aggregate rate, all streams'
    flops over the span from their release to the last one's end. ``cholesky`` and ``inverse``:
    LAPACK ``dpotrf`` and ``dpotri`` of an ``n x n`` matrix, one stream, as the fit runs them;
    ``solve`` (one stream too) at the one-stream GEMM rate. Best of ``repeats``. ``clock``: wall
    (``time.perf_counter``) or this process's CPU time (``time.process_time``: flops per CPU
    second, which other work on a shared machine does not dilute).
    """
    import scipy.linalg

    rng = np.random.default_rng(0)
    B = rng.standard_normal((n, n))
    A = B @ B.T + n * np.eye(n)
    P = rng.standard_normal((n, columns))

    def timed(task) -> float:
        tic = clock()
        task()
        return clock() - tic

    def best(measure) -> float:
        return max(min(measure() for _ in range(repeats)), 1e-9)

    L = scipy.linalg.cholesky(A, lower=True)
    product = 2.0 * n * n * columns
    single = product / best(lambda: timed(lambda: A @ P))
    gemm = single
    if streams > 1:
        operands = [(A.copy(), P.copy()) for _ in range(streams)]  # each stream its own
        tasks = [lambda a=a, p=p: a @ p for a, p in operands]
        gemm = streams * product / best(lambda: _at_once(tasks, clock))

    def factor() -> None:
        scipy.linalg.cholesky(A, lower=True, check_finite=False)

    chol = n**3 / 3.0 / best(lambda: timed(factor))
    inv = 2.0 * n**3 / 3.0 / best(lambda: timed(lambda: scipy.linalg.lapack.dpotri(L, lower=1)))
    return {"gemm": gemm, "cholesky": chol, "inverse": inv, "solve": single, "gemm_stream": single}


def _at_once(tasks: list, clock) -> float:
    """Run ``tasks`` in as many threads released together; the ``clock`` seconds from their
    release to the end of the last (thread start-up not included)."""
    barrier = threading.Barrier(len(tasks) + 1)

    def run(task) -> None:
        barrier.wait()
        task()

    threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    barrier.wait()
    tic = clock()
    for thread in threads:
        thread.join()
    return clock() - tic


def floor_seconds(flops: dict[str, float], rates: dict[str, float]) -> float:
    """Seconds the counted ``flops`` take at the measured ``rates`` (the flop floor)."""
    return sum(flops.get(kind, 0.0) / rates[kind] for kind in KINDS if flops.get(kind))
