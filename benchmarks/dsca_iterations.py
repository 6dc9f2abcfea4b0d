"""Before/after table of the single-agent DSCA fit of two source trees (issue 13, item 2).

Runs ``distgp.bench.kernel.gsmp_run`` (``distgp fit``'s defaults, one agent) on each dataset, once
with each tree on ``PYTHONPATH``, alternating the trees per dataset so that the machine's load
falls on both alike, and prints a Markdown table of iterations, learning seconds, test MSE and
the final objective (the negative log marginal likelihood in raw units)::

    python benchmarks/dsca_iterations.py --before /work/main --after . \\
        --datasets airfoil600,concrete824,cccp1000,ale80,electricitydata,CO2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "slimkl"
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


def run_one(tree: str, path: Path, threads: int, overrides: str) -> dict:
    """One fit with ``tree`` first on the path, in a fresh process; its result record."""
    tree = str(Path(tree).resolve())
    env = {**os.environ, "PYTHONPATH": tree}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    out = subprocess.run(
        [sys.executable, "-c", ONE_RUN, str(path), str(threads), overrides],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{tree} on {path.name} failed:\n{out.stderr[-2000:]}")
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
    parser.add_argument("--json", help="also write the records here")
    args = parser.parse_args(argv)
    rows = []
    overrides = {"before": args.overrides, "after": args.after_overrides or args.overrides}
    print(
        "| dataset | iters before | iters after | s before | s after | MSE before | MSE after "
        "| NLML before | NLML after | active before | active after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(args.datasets.split(",")):
        path = Path(args.data_dir) / f"{name}.mat"
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        rec = {
            tag: run_one(getattr(args, tag), path, args.threads, overrides[tag]) for tag in order
        }
        rows.append({"dataset": name, **rec})
        b, a = rec["before"], rec["after"]
        print(
            f"| {name} | {b['iterations']} | {a['iterations']} | {b['seconds']:.1f} | "
            f"{a['seconds']:.1f} | {b['mse']:.4g} | {a['mse']:.4g} | {b['objective']:.2f} | "
            f"{a['objective']:.2f} | {b['active']} | {a['active']} |",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
