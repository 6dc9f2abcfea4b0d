"""Do two threads of distgp's dense calls, and two held-out fits, run side by side? (issue 13)

Three measurements on this machine, each the best of ``--repeats``, wall seconds:

1. **The calls.** Ten Cholesky factorisations and inverses of an ``n x n`` matrix, twice, one
   after another and then in two threads, with scipy's wrappers (which hold the GIL) and with
   :mod:`distgp.kernels.lapack` (which does not); one BLAS thread per call.
2. **The held-out fits.** The default path's candidates of a series (``distgp.tune``) scored on
   its rolling origins by :func:`distgp.holdout.evaluate_many` with ``learn.threads`` 1 (one fit
   at a time) and 2 (two at a time); the scores must be equal.
3. **The whole fit.** ``distgp fit``'s default path (``fit_selected``) with ``learn.threads`` 1
   and as installed.

::

    python benchmarks/parallel_fits.py [--data-dir ../shared/data/slimkl] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

import distgp.holdout as holdout
import distgp.selection as selection
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.data import load_dataset
from distgp.kernels import lapack


def best_of(repeats: int, task) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        task()
        times.append(time.perf_counter() - tic)
    return min(times)


def calls(n: int, repeats: int) -> list[str]:
    rng = np.random.default_rng(0)
    B = rng.standard_normal((n, n))
    C = np.asfortranarray(B @ B.T + n * np.eye(n))

    def scipy_pair() -> None:
        for _ in range(10):
            L = scipy.linalg.lapack.dpotrf(C, lower=1)[0]
            scipy.linalg.lapack.dpotri(L, lower=1)

    def distgp_pair() -> None:
        for _ in range(10):
            lapack.potri_lower(lapack.potrf_lower(C)[0])

    rows = []
    for name, task in (("scipy wrappers", scipy_pair), ("distgp.kernels.lapack", distgp_pair)):
        with threadpool_limits(1):
            serial = best_of(repeats, lambda t=task: (t(), t()))
            with ThreadPoolExecutor(2) as pool:
                threads = best_of(repeats, lambda t=task: list(pool.map(lambda _: t(), range(2))))
        rows.append(f"| {name} | {n} | {serial:.3f} | {threads:.3f} | {serial / threads:.2f} |")
    return rows


def held_out(name: str, folder, repeats: int) -> str:
    data = load_dataset(str(folder / f"{name}.mat"))
    X, y = data.X_train, data.y_train
    horizon = holdout.rolling_horizon(len(y))
    splits = holdout.in_input_order(holdout.holdout_splits(len(y), True, horizon, 2), X)
    positive = bool(np.all(y > 0))
    candidates = list(selection.default_candidates(FitConfig(), True, positive, len(y)).items())
    seconds, scores = {}, {}
    for threads in (1, 2):
        config = FitConfig()
        config.learn.threads = threads

        def score(config=config, threads=threads) -> None:
            evaluations = holdout.evaluate_many(X, y, config, candidates, splits)
            scores[threads] = [e.folds for e in evaluations]

        seconds[threads] = best_of(repeats, score)
    same = "yes" if scores[1] == scores[2] else "NO"
    ratio = seconds[1] / seconds[2]
    cells = [name, len(y), f"{len(candidates)} x 2", f"{seconds[1]:.2f}", f"{seconds[2]:.2f}"]
    return "| " + " | ".join(map(str, [*cells, f"{ratio:.2f}", same])) + " |"


def whole_fit(name: str, folder, repeats: int) -> str:
    data = (
        load_dataset(str(folder / f"{name}.mat")) if name != "builtin:co2" else load_dataset(name)
    )
    seconds, mse = {}, {}
    for threads in (1, None):
        config = FitConfig()
        config.learn.threads = threads

        def run(config=config, threads=threads) -> None:
            result, _ = selection.fit_selected(
                data.X_train, data.y_train, config, data.series, X_test=data.X_test
            )
            mse[threads] = float(np.mean((result.forecast() - data.y_test) ** 2))

        seconds[threads] = best_of(repeats, run)
    same = "yes" if mse[1] == mse[None] else "NO"
    ratio = seconds[1] / seconds[None]
    cells = [name, len(data.y_train), f"{seconds[1]:.2f}", f"{seconds[None]:.2f}"]
    return "| " + " | ".join(map(str, [*cells, f"{ratio:.2f}", f"{mse[None]:.4g}", same])) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SLIM-KL data folder")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    args = parser.parse_args()
    folder = data_dir(args.data_dir)
    print("1. Ten factorisations and inverses, twice (seconds)\n")
    print("| calls | n | one after another | two threads | speed-up |")
    print("|---|---|---|---|---|")
    for n in (300, 640, 1000):
        print("\n".join(calls(n, args.repeats)), flush=True)
    print("\n2. The default path's held-out fits (`evaluate_many`, seconds)\n")
    print("| series | n | fits | one at a time | two at a time | speed-up | same scores |")
    print("|---|---|---|---|---|---|---|")
    for name in ("ECG_signal", "clay", "hoteldata"):
        print(held_out(name, folder, args.repeats), flush=True)
    print("\n3. `fit_selected`, the default path of `distgp fit` (seconds)\n")
    print("| data | n | threads 1 | as installed | speed-up | test MSE | same |")
    print("|---|---|---|---|---|---|---|")
    for name in ("ECG_signal", "clay", "builtin:co2", "passengerdata"):
        print(whole_fit(name, folder, args.repeats), flush=True)


if __name__ == "__main__":
    main()
