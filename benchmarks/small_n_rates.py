"""Why ale80 stays below a third of the flop floor: BLAS rates at the bank's own shapes.

The floor of ``distgp bench kernel`` rates the counted flops at this machine's GEMM rate for an
``n x n`` by ``n x 512`` product. At ``n = 80`` the bank's calls are narrower: per envelope group
one ``dsymm`` (traces) and one ``dgemm`` (quadratic forms) of ``80 x 80`` by ``80 x d`` and one
``dsyrk`` (the Gram matrix) of width ``d`` (``d = 202`` at the start of an ale80 fit, when every
component is active). This script times those calls alone, one BLAS thread, and then the bank's
``products`` and ``gram`` on the same shard with every component active, so the time outside
BLAS is what is left.

    python benchmarks/small_n_rates.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg


def best_us(task, repeats: int = 7, number: int = 200) -> float:
    """Best of ``repeats`` mean times of ``number`` calls, in microseconds."""
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        for _ in range(number):
            task()
        times.append((time.perf_counter() - tic) / number)
    return 1e6 * min(times)


def blas_calls(n: int, width: int) -> dict[str, tuple[str, float, float]]:
    """``key -> (call, microseconds, GF/s)`` of the bank's BLAS calls and the floor's GEMM."""
    rng = np.random.default_rng(0)
    B = rng.standard_normal((n, n))
    S = np.asfortranarray(B @ B.T)
    Phi = np.asfortranarray(rng.standard_normal((n, width)))
    P512 = rng.standard_normal((n, 512))
    calls = {
        "floor": ("floor GEMM n x n @ n x 512", lambda: S @ P512, 2.0 * n * n * 512),
        "symm": (
            f"dsymm n x n @ n x {width} (traces)",
            lambda: scipy.linalg.blas.dsymm(1.0, S, Phi, side=0, lower=1),
            2.0 * n * n * width,
        ),
        "gemm": (
            f"dgemm n x n @ n x {width} (quadratic forms)",
            lambda: S @ Phi,
            2.0 * n * n * width,
        ),
        "syrk": (
            f"dsyrk n x {width} (Gram matrix, counted n^2 d)",
            lambda: scipy.linalg.blas.dsyrk(1.0, Phi, lower=1),
            1.0 * n * n * width,
        ),
    }
    out = {}
    for key, (name, task, flop) in calls.items():
        us = best_us(task)
        out[key] = (name, us, flop / us / 1e3)
    return out


def bank_rows(path: str) -> list[tuple[str, float, float]]:
    """``(call, microseconds, of which BLAS alone)`` of the bank of ``distgp fit``'s defaults
    on a dataset, at the first iteration (every component active)."""
    from distgp.config import FitConfig
    from distgp.data import Scaler, ShardSummary, load_dataset
    from distgp.driver import grid_recipe, initial_theta
    from distgp.kernels.trend import bank_from_recipe
    from distgp.learn import LocalObjective

    data = load_dataset(path)
    summary = ShardSummary.of(data.X_train, data.y_train)
    scaler = Scaler.from_summary(summary, standardize_inputs=True)
    bank = bank_from_recipe(scaler.x(data.X_train), grid_recipe(FitConfig(), summary))
    objective = LocalObjective(bank, scaler.y(data.y_train), FitConfig().learn.noise_floor)
    theta = initial_theta(bank.M)
    everything = np.arange(bank.M)
    fac = objective.factorize(theta)
    A = fac.inverse()
    widths = [2 * len(g.coef) for g in bank.groups if np.any(g.directions)]
    rates = {w: blas_calls(bank.n, w) for w in set(widths)}
    products_blas = sum(rates[w]["symm"][1] + rates[w]["gemm"][1] for w in widths)
    gram_blas = sum(rates[w]["syrk"][1] for w in widths)

    def products():
        bank.products(everything, A=A, alpha=fac.alpha)

    def gram():
        bank.gram(theta[: bank.M], lower=True)

    groups = f"{len(widths)} featured groups"
    return [
        (f"products, every component ({groups})", best_us(products, number=50), products_blas),
        (f"gram, every component ({groups})", best_us(gram, number=50), gram_blas),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/slimkl")
    args = parser.parse_args()
    from distgp.threads import blas_threads

    with blas_threads(1):
        print("| call (n = 80) | us | GF/s |\n|---|---|---|")
        for name, us, rate in blas_calls(80, 202).values():
            print(f"| {name} | {us:.1f} | {rate:.1f} |")
        print("\n| bank call (ale80, first iteration) | us | of which BLAS alone (us) |")
        print("|---|---|---|")
        for name, us, blas in bank_rows(f"{args.data_dir}/ale80.mat"):
            print(f"| {name} | {us:.0f} | {blas:.0f} |")


if __name__ == "__main__":
    main()
