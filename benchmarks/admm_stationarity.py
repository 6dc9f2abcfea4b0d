"""How near ADMM results are to a stationary point of the summed objective (stop.stationarity).

Runs ``distgp fit`` as installed on the inline backend and prints one Markdown row per run:
airfoil600 over 4 and 8 agents with float64 and 8-bit messages, and three 80-point shard files
cut from airfoil600's training rows (rows 1-80, 81-160, 161-240; the first 60 test rows as the
test file) with 40 components, float64 (the case an audit of the distributed core measured),
with the default tolerances and with tighter ones::

    python benchmarks/admm_stationarity.py --data-dir ../shared/data/slimkl

Columns: converged (Boyd's residual test), rounds, objective (negative log evidence, raw units),
test MSE, active weights, bits sent over their float64 size, and ``stop.stationarity``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.io

RUNS = (
    ("airfoil600, 4 agents, float64", ["--agents", "4", "--no-quantize"]),
    ("airfoil600, 4 agents, 8-bit", ["--agents", "4"]),
    ("airfoil600, 8 agents, float64", ["--agents", "8", "--no-quantize"]),
    ("airfoil600, 8 agents, 8-bit", ["--agents", "8"]),
)


def write_shards(mat: Path, folder: Path) -> tuple[str, str]:
    """Three 80-row shard CSVs and a 60-row test CSV from ``mat``; their glob and test path."""
    d = scipy.io.loadmat(str(mat))
    X, y, Xt, yt = d["xtrain"], d["ytrain"].ravel(), d["xtest"], d["ytest"].ravel()
    header = ",".join([f"x{i}" for i in range(X.shape[1])] + ["y"])
    for j in range(3):
        rows = slice(80 * j, 80 * (j + 1))
        np.savetxt(
            folder / f"site-{j}.csv",
            np.c_[X[rows], y[rows]],
            delimiter=",",
            header=header,
            comments="",
            fmt="%.10g",
        )
    test = folder / "test.csv"
    np.savetxt(
        test, np.c_[Xt[:60], yt[:60]], delimiter=",", header=header, comments="", fmt="%.10g"
    )
    return str(folder / "site-*.csv"), str(test)


def row(name: str, argv: list[str], out: Path) -> str:
    command = [sys.executable, "-m", "distgp", "fit", *argv]
    command += ["--backend", "inline", "--no-plots", "--quiet", "--out", str(out)]
    subprocess.run(command, check=True)
    m = json.loads((out / "metrics.json").read_text())
    ratio = m["bits_sent"] / m["bits_float64"]
    cells = [
        name,
        "yes" if m["converged"] else "no",
        m["rounds"],
        f"{m['objective']:.3f}",
        f"{m['mse']:.4g}",
        m["active_components"],
        f"{ratio:.4f}",
        f"{m['stop']['stationarity']:.3g}",
    ]
    return "| " + " | ".join(map(str, cells)) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/slimkl")
    args = parser.parse_args()
    mat = Path(args.data_dir) / "airfoil600.mat"
    print(
        "| run | converged | rounds | objective | test MSE | active | bits / float64 | "
        "stationarity |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k, (name, argv) in enumerate(RUNS):
            print(row(name, ["--data", str(mat), *argv], folder / f"run{k}"), flush=True)
        shards, test = write_shards(mat, folder)
        argv = ["--shards", shards, "--target", "y", "--test", test, "--components", "40"]
        argv += ["--no-quantize"]
        print(row("3 shards of 80, 40 components, float64", argv, folder / "shards"), flush=True)
        tight = [*argv, "--abs-tol", "1e-7", "--rel-tol", "1e-6", "--rounds", "400"]
        print(row("the same, tolerances 1e-7 / 1e-6, 400 rounds", tight, folder / "tight"))


if __name__ == "__main__":
    main()
