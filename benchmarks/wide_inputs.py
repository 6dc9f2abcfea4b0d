"""Fits with 11 inputs and 1300 training points (issue 13: every such fit under 30 s).

The shared datasets stop at 8 inputs (concrete824). This script writes two seeded synthetic
sets of 1625 rows (the default 80/20 split leaves 1300 to train) and runs ``distgp fit`` on each
as installed, in a fresh process, with the default ``learn.min_gain`` and with it off:

* ``friedman11``: Friedman's function of five inputs plus a product of two more, four inputs of
  noise, Gaussian noise of standard deviation 1;
* ``ordinal11``: correlated inputs (one log-normal), a linear signal with a saturating
  interaction, rounded and clipped to the integers 3-8 (the shape of a wine-quality table).

    python benchmarks/wide_inputs.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROWS = 1625
INPUTS = 11


def friedman11(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.random((ROWS, INPUTS))
    y = (
        10 * np.sin(np.pi * X[:, 0] * X[:, 1])
        + 20 * (X[:, 2] - 0.5) ** 2
        + 10 * X[:, 3]
        + 5 * X[:, 4]
        + 2 * X[:, 5] * X[:, 6]
        + rng.normal(0.0, 1.0, ROWS)
    )
    return X, y


def ordinal11(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cov = 0.85 * np.eye(INPUTS) + 0.15 * np.ones((INPUTS, INPUTS))
    X = rng.standard_normal((ROWS, INPUTS)) @ np.linalg.cholesky(cov).T
    X[:, 3] = np.exp(X[:, 3])
    signal = X @ rng.normal(0.0, 0.3, INPUTS) + 0.5 * np.tanh(X[:, 0] * X[:, 1])
    y = np.clip(np.round(5.6 + signal + rng.normal(0.0, 0.7, ROWS)), 3, 8)
    return X, y


DATASETS = {"friedman11": (friedman11, 0), "ordinal11": (ordinal11, 1)}


def write_csv(path: Path, X: np.ndarray, y: np.ndarray) -> None:
    header = ",".join([f"x{i}" for i in range(X.shape[1])] + ["y"])
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="")


def fit(csv: Path, out: Path, extra: list[str]) -> dict:
    """``distgp fit`` as installed in a fresh process; its metrics."""
    command = [sys.executable, "-m", "distgp", "fit", "--data", str(csv), "--no-plots"]
    subprocess.run([*command, "--out", str(out), *extra], check=True, capture_output=True)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder of the CSV files and runs (default: a new one)")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="distgp-wide-"))
    folder.mkdir(parents=True, exist_ok=True)
    print("| dataset | n x P | min_gain | iterations | learning s | test MSE | NLML | active |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (make, seed) in DATASETS.items():
        csv = folder / f"{name}.csv"
        write_csv(csv, *make(np.random.default_rng(seed)))
        for label, extra in (("default", []), ("0 (off)", ["--min-gain", "0"])):
            m = fit(csv, folder / f"{name}-{label.split()[0]}", extra)
            print(
                f"| {name} | {m['n_train']} x {m['dims']} | {label} | {m['iterations']} | "
                f"{m['seconds']:.1f} | {m['mse']:.4g} | {m['objective']:.2f} | "
                f"{m['active_components']}/{m['components']} |"
            )


if __name__ == "__main__":
    main()
