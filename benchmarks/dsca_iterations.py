"""Before/after table of the single-agent DSCA fit of two source trees (issue 13, item 2).

Runs ``distgp.bench.kernel.gsmp_run`` (``distgp fit``'s defaults, one agent) on each dataset, once
with each tree on ``PYTHONPATH``, alternating the trees per dataset so that the machine's load
falls on both alike, and prints a Markdown table of iterations, learning seconds, test MSE and
the final objective (the negative log marginal likelihood in raw units)::

    python benchmarks/dsca_iterations.py --before /work/main --after . \\
        --datasets airfoil600,concrete824,cccp1000,ale80,electricitydata,CO2

``--backtest`` reads no test split: each dataset's training data is cut into a fitting part and a
pseudo-test, and the MSE column is the pseudo-test's. The series are those of
``horizon_backtest.py`` (the last test-sized block of each training set; ``--datasets all``: all
21); a multi-input dataset holds out a seeded random fifth of its training points::

    python benchmarks/dsca_iterations.py --before /work/main --after . --backtest --datasets all
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from horizon_backtest import shared_series, statsmodels_series

from distgp.bench.report import data_dir

BENCHMARKS = Path(__file__).resolve().parent
DATA = BENCHMARKS.parent / ".." / "shared" / "data" / "slimkl"
ONE_RUN = """
import json, sys, warnings
from pathlib import Path
import distgp
warnings.simplefilter("ignore")
from distgp.bench.kernel import gsmp_run
from distgp.data import load_dataset
assert Path(distgp.__file__).resolve().is_relative_to(Path.cwd().resolve()), distgp.__file__
overrides = {"learn.threads": int(sys.argv[2]), **json.loads(sys.argv[3])}
r = gsmp_run(load_dataset(sys.argv[1]), overrides)
keys = ("iterations", "seconds", "mse", "objective", "active", "converged", "selected")
print(json.dumps({k: r[k] for k in keys}))
"""
# the same record on a pseudo-test cut from the training data (argv[4]: the benchmarks folder)
ONE_BACKTEST = """
import json, sys, time, warnings
from pathlib import Path
import numpy as np
import distgp
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[4])
from horizon_backtest import shared_series, statsmodels_series
from distgp.bench.report import data_dir
from distgp.config import FitConfig
from distgp.data import load_dataset
from distgp.holdout import configured
from distgp.selection import fit_selected
assert Path(distgp.__file__).resolve().is_relative_to(Path.cwd().resolve()), distgp.__file__
name, folder = sys.argv[1].split("|")
overrides = {"learn.threads": int(sys.argv[2]), **json.loads(sys.argv[3])}
series = {**shared_series(data_dir(folder)), **statsmodels_series()}
if name in series:
    x, y, T = series[name]
    X, Y, Xp, Yp, is_series = x[:-T], y[:-T], x[-T:], y[-T:], True
else:
    data = load_dataset(str(Path(folder) / f"{name}.mat"))
    held = np.random.default_rng(0).permutation(len(data.y_train))[: len(data.y_train) // 5]
    fit_part = np.setdiff1d(np.arange(len(data.y_train)), held)
    X, Y = data.X_train[fit_part], data.y_train[fit_part]
    Xp, Yp, is_series = data.X_train[held], data.y_train[held], False
tic = time.perf_counter()
result, evaluations = fit_selected(X, Y, configured(FitConfig(), overrides), is_series, X_test=Xp)
print(json.dumps({
    "iterations": result.iterations, "seconds": time.perf_counter() - tic,
    "mse": float(np.mean((result.forecast() - Yp) ** 2)), "objective": result.objective,
    "active": int(np.count_nonzero(result.theta[:-1])), "converged": result.converged,
    "selected": next((e.name for e in evaluations if e.chosen), None),
}))
"""


def run_one(tree: str, source: str, threads: int, overrides: str, backtest: bool) -> dict:
    """One fit with ``tree`` first on the path, in a fresh process; its result record."""
    tree = str(Path(tree).resolve())
    env = {**os.environ, "PYTHONPATH": tree}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    script = [ONE_BACKTEST, source, str(threads), overrides, str(BENCHMARKS)]
    if not backtest:
        script = [ONE_RUN, source, str(threads), overrides]
    out = subprocess.run(
        [sys.executable, "-c", *script],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{tree} on {source} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="source tree of the old code")
    parser.add_argument("--after", required=True, help="source tree of the new code")
    parser.add_argument("--datasets", required=True, help="comma-separated SLIM-KL file stems")
    parser.add_argument("--data-dir", default=str(DATA), help="SLIM-KL data folder")
    parser.add_argument("--threads", type=int, default=1, help="threads of each fit")
    parser.add_argument("--overrides", default="{}", help="FitConfig overrides of both, as JSON")
    parser.add_argument(
        "--after-overrides", help="FitConfig overrides of the new tree, as JSON (default: the same)"
    )
    parser.add_argument(
        "--backtest", action="store_true", help="score on a pseudo-test cut from the training data"
    )
    parser.add_argument("--json", help="also write the records here")
    args = parser.parse_args(argv)
    rows = []
    overrides = {"before": args.overrides, "after": args.after_overrides or args.overrides}
    print(
        "| dataset | iters before | iters after | s before | s after | MSE before | MSE after "
        "| NLML before | NLML after | active before | active after | chose before | chose after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = args.datasets.split(",")
    if args.backtest and names == ["all"]:
        names = list({**shared_series(data_dir(args.data_dir)), **statsmodels_series()})
    for i, name in enumerate(names):
        source = str(Path(args.data_dir) / f"{name}.mat")
        if args.backtest:
            source = f"{name}|{args.data_dir}"
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        rec = {
            tag: run_one(getattr(args, tag), source, args.threads, overrides[tag], args.backtest)
            for tag in order
        }
        rows.append({"dataset": name, **rec})
        b, a = rec["before"], rec["after"]
        print(
            f"| {name} | {b['iterations']} | {a['iterations']} | {b['seconds']:.1f} | "
            f"{a['seconds']:.1f} | {b['mse']:.4g} | {a['mse']:.4g} | {b['objective']:.2f} | "
            f"{a['objective']:.2f} | {b['active']} | {a['active']} | {b['selected']} | "
            f"{a['selected']} |",
            flush=True,
        )
    ratio = np.array([r["after"]["mse"] / r["before"]["mse"] for r in rows])
    iters = np.array([[r[t]["iterations"] for t in ("before", "after")] for r in rows])
    seconds = np.array([[r[t]["seconds"] for t in ("before", "after")] for r in rows])
    print(
        f"\nafter: MSE lower on {np.sum(ratio < 1 - 1e-9)}, higher on {np.sum(ratio > 1 + 1e-9)} "
        f"of {len(ratio)} (geometric mean ratio {np.exp(np.mean(np.log(ratio))):.3g}); "
        f"iterations {iters[:, 0].sum()} -> {iters[:, 1].sum()}, "
        f"at the cap {np.sum(iters[:, 0] >= 500)} -> {np.sum(iters[:, 1] >= 500)}; "
        f"seconds {seconds[:, 0].sum():.0f} -> {seconds[:, 1].sum():.0f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
