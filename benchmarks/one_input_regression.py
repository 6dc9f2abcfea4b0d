"""Regression with one input that is not a series: the full grid alone against the default
path's choice by K folds (issue 10, small data beyond series).

Synthetic, seeded data: 200 training inputs drawn uniformly on [0, 10], five functions at a
signal-to-noise ratio (variance of the function over the noise variance) of 0.1, 1 and 10,
three seeds each, and 2000 fresh test points from the same distribution. `full grid`: a fit
with the default grid and trend auto (linear with one input) as `distgp fit` ran before the
selection covered such data; `selected`: `fit_selected`, the default path now (its candidates
scored on 4 random folds of the training data). The table shows test MSE over the noise
variance (1 is the best possible) and the training mean's, and the median wall seconds of each
path (fit and prediction, as installed)::

    python benchmarks/one_input_regression.py
"""

from __future__ import annotations

import time

import numpy as np

from distgp.config import FitConfig
from distgp.driver import fit
from distgp.selection import fit_selected

FUNCTIONS = {
    "smooth": lambda x: np.sin(x) + 0.5 * np.cos(2.3 * x),
    "fast periodic": lambda x: np.sin(2 * np.pi * x / 0.7),
    "trend + periodic": lambda x: 0.5 * x + np.sin(3 * x),
    "step": lambda x: np.where(x > 5, 1.0, -1.0) + 0.3 * np.sin(x),
    "two scales": lambda x: np.sin(x) + 0.3 * np.sin(7 * x),
}
SNRS = (0.1, 1.0, 10.0)
SEEDS = 3


def main() -> None:
    print("| function | SNR | seed | full grid | selected | chose | training mean |")
    print("|---|---|---|---|---|---|---|")
    ratios, seconds = [], []
    for name, f in FUNCTIONS.items():
        for snr in SNRS:
            for seed in range(SEEDS):
                rng = np.random.default_rng(seed)
                noise = np.var(f(rng.uniform(0, 10, 100_000))) / snr
                x, xt = rng.uniform(0, 10, (200, 1)), rng.uniform(0, 10, (2000, 1))
                y = f(x[:, 0]) + np.sqrt(noise) * rng.standard_normal(200)
                yt = f(xt[:, 0]) + np.sqrt(noise) * rng.standard_normal(2000)
                tic = time.perf_counter()
                full = fit(x, y, FitConfig(), X_test=xt).forecast()
                middle = time.perf_counter()
                chosen, evaluations = fit_selected(x, y, FitConfig(), False, X_test=xt)
                seconds.append((middle - tic, time.perf_counter() - middle))
                scores = [
                    np.mean((p - yt) ** 2) / noise
                    for p in (full, chosen.forecast(), np.full(len(yt), y.mean()))
                ]
                pick = next(e.name for e in evaluations if e.chosen)
                ratios.append(scores[1] / scores[0])
                print(
                    f"| {name} | {snr:g} | {seed} | {scores[0]:.3f} | {scores[1]:.3f} | {pick} | "
                    f"{scores[2]:.3f} |"
                )
    ratios = np.array(ratios)
    mean = np.exp(np.log(ratios).mean())
    print(
        f"\nselected / full grid: lower on {np.sum(ratios < 0.999)}, higher on "
        f"{np.sum(ratios > 1.001)} of {len(ratios)}; geometric mean {mean:.3f}"
    )
    full_s, selected_s = np.median(seconds, axis=0)
    print(f"median seconds: full grid {full_s:.2f}, selected {selected_s:.2f}")


if __name__ == "__main__":
    main()
