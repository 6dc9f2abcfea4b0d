"""How much of a small fit's learning time is a fresh process's one-time work.

``distgp bench kernel`` runs every model in a fresh process, so ale80's floor fraction (34
iterations, about 45 ms of learning) carries work that a process does once: threadpoolctl's
first scan of the loaded libraries (the first thread limit), the first call into each BLAS
library, first-use Python paths. This script runs the bench's own GSMP run twice in each of
``--processes`` fresh processes and reports, per fit, the learning seconds and the fraction of
the flop floor (the bench's definitions, :func:`distgp.bench.kernel.gsmp_run`), then times
threadpoolctl's scan apart (in a fresh process, after the same imports).

    python benchmarks/cold_start.py [--data-dir DIR] [--dataset ale80] [--processes 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

_TWO_FITS = """
import json, sys
from distgp.bench.kernel import gsmp_run
from distgp.data import load_dataset
dataset = load_dataset(sys.argv[1])
runs = [gsmp_run(dataset, {}) for _ in range(2)]
print(json.dumps([[r["seconds"], r["floor_fraction"], r["objective"]] for r in runs]))
"""

_SCAN = """
import json, time
import distgp.driver, distgp.kernels.bank  # the fit's imports, as in the first fit
from threadpoolctl import ThreadpoolController
tic = time.perf_counter()
ThreadpoolController()
first = time.perf_counter() - tic
tic = time.perf_counter()
ThreadpoolController()
print(json.dumps([first, time.perf_counter() - tic]))
"""


def fresh(code: str, *args: str) -> list:
    """Run ``code`` in a fresh interpreter (no thread variables changed) and read its JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/slimkl")
    parser.add_argument("--dataset", default="ale80")
    parser.add_argument("--processes", type=int, default=7)
    args = parser.parse_args()
    path = str(Path(args.data_dir) / f"{args.dataset}.mat")
    fits = [fresh(_TWO_FITS, path) for _ in range(args.processes)]
    scans = [fresh(_SCAN) for _ in range(args.processes)]
    if len({f[k][2] for f in fits for k in (0, 1)}) != 1:
        raise SystemExit("the fits disagree: the comparison needs identical iterates")

    def median(values) -> float:
        return statistics.median(values)

    print(f"{args.dataset}, {args.processes} fresh processes, two fits each (medians; min-max):")
    print()
    print("| fit | learning ms | of floor |")
    print("|---|---|---|")
    for k, label in ((0, "first in its process"), (1, "second in its process")):
        ms = [1e3 * f[k][0] for f in fits]
        frac = [f[k][1] for f in fits]
        print(
            f"| {label} | {median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f}) "
            f"| {median(frac):.3f} ({min(frac):.3f}-{max(frac):.3f}) |"
        )
    first = [1e3 * s[0] for s in scans]
    again = [1e3 * s[1] for s in scans]
    print()
    print(
        f"threadpoolctl's scan in a fresh process: {median(first):.2f} ms "
        f"({min(first):.2f}-{max(first):.2f}); again in the same process: {median(again):.2f} ms"
    )


if __name__ == "__main__":
    main()
