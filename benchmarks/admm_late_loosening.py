"""ADMM with and without the late loosening of the penalty (``ADMMOptions.loosen_late``).

Every run is a ``distgp fit`` on the inline backend (agents in turn, the same rounds as on Ray),
once with the penalty frozen after ``consensus.balance_rounds`` (off) and once with the late
halvings of ``docs/admm.md`` section 4 (on), on the test split of each file::

    python benchmarks/admm_late_loosening.py --data-dir ../shared/data/slimkl

prints a Markdown table of rounds, how the run stopped (``rule``: Boyd et al.'s tests held,
``cap``: the round cap), the final objective (negative log marginal likelihood summed over the
agents, raw units), test MSE, learning seconds, and the residuals over their tolerances at the
last round. The grid: the four multi-input sets with 2, 4 and 8 agents (quantised, and airfoil600
also with float64 messages) and the one-input series with 4 agents under each trend of the
default path's candidates that differ in how they converge (``local``, ``local`` on ``log y``,
``quadratic``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from pathlib import Path

import numpy as np

from distgp import driver
from distgp.config import FitConfig
from distgp.consensus import admm
from distgp.data import load_dataset

MULTI = ("ale80", "airfoil600", "cccp1000", "concrete824")
SERIES = ("builtin:co2", "CO2", "clay", "unemployment", "hoteldata")
SERIES_TRENDS = {
    "local": {"trend": "local"},
    "local, log": {"trend": "local", "transform": "log"},
    "quadratic": {"trend": "quadratic"},
}


def grid(data_dir: Path) -> list[tuple[str, str, int, bool, str, dict]]:
    """``(label, source, agents, quantised, setting, kernel overrides)`` of every run."""
    runs = []
    for name in MULTI:
        for agents in (2, 4, 8):
            for quantised in (True, False) if name == "airfoil600" else (True,):
                runs.append((name, str(data_dir / f"{name}.mat"), agents, quantised, "-", {}))
    for name in SERIES:
        source = name if name.startswith("builtin:") else str(data_dir / f"{name}.mat")
        for setting, kernel in SERIES_TRENDS.items():
            runs.append((name, source, 4, True, setting, kernel))
    return runs


def run_once(source: str, agents: int, quantised: bool, kernel: dict, late: bool) -> dict:
    """One fit with the late loosening on or off; its rounds, stop, objective and test MSE."""
    driver.ADMMOptions = functools.partial(admm.ADMMOptions, loosen_late=late)
    data = load_dataset(source)
    config = FitConfig()
    config.consensus.agents = agents
    if not quantised:
        config.consensus.quantize, config.consensus.bits = False, None
    config.backend.name = "inline"
    for key, value in kernel.items():
        setattr(config.kernel, key, value)
    tic = time.perf_counter()
    result = driver.fit(data.X_train, data.y_train, config.validate(), X_test=data.X_test)
    seconds = time.perf_counter() - tic
    stop = result.stop
    return {
        "rounds": result.rounds,
        "stop": "rule" if result.converged else "cap",
        "objective": result.objective,
        "mse": float(np.mean((data.y_test - result.forecast()) ** 2)),
        "seconds": seconds,
        "r": stop["primal_residual"] / stop["primal_tol"],
        "s": stop["dual_residual"] / stop["dual_tol"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/slimkl"))
    parser.add_argument("--only", help="comma-separated dataset labels (default: the grid's)")
    parser.add_argument("--json", type=Path, help="also write every run as JSON lines")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    print(
        "| data | agents | messages | setting | rounds off/on | stop off/on | objective off "
        "| on - off | MSE off | MSE on | s off | s on | r/tol, s/tol off | on |"
    )
    print("|" + "---|" * 14)
    rows = []
    for label, source, agents, quantised, setting, kernel in grid(args.data_dir):
        if only and label not in only:
            continue
        off, on = (run_once(source, agents, quantised, kernel, late) for late in (False, True))
        rows.append(
            {
                "data": label,
                "agents": agents,
                "quantised": quantised,
                "setting": setting,
                "off": off,
                "on": on,
            }
        )
        if args.json:
            with args.json.open("a") as out:
                out.write(json.dumps(rows[-1]) + "\n")
        print(
            f"| {label} | {agents} | {'8-bit' if quantised else 'float64'} | {setting} "
            f"| {off['rounds']}/{on['rounds']} | {off['stop']}/{on['stop']} "
            f"| {off['objective']:.3f} | {on['objective'] - off['objective']:+.3f} "
            f"| {off['mse']:.5g} | {on['mse']:.5g} | {off['seconds']:.1f} | {on['seconds']:.1f} "
            f"| {off['r']:.2f}, {off['s']:.2f} | {on['r']:.2f}, {on['s']:.2f} |",
            flush=True,
        )
    fewer = sum(r["on"]["rounds"] < r["off"]["rounds"] for r in rows)
    more = sum(r["on"]["rounds"] > r["off"]["rounds"] for r in rows)
    rule = [sum(r[k]["stop"] == "rule" for r in rows) for k in ("off", "on")]
    lower = sum(r["on"]["objective"] < r["off"]["objective"] - 1e-6 for r in rows)
    higher = sum(r["on"]["objective"] > r["off"]["objective"] + 1e-6 for r in rows)
    ratios = [r["on"]["mse"] / r["off"]["mse"] for r in rows if r["off"]["mse"] > 0]
    gm = math.exp(float(np.mean(np.log(ratios)))) if ratios else math.nan
    total = [sum(r[k]["rounds"] for r in rows) for k in ("off", "on")]
    print()
    print(
        f"* {len(rows)} runs: fewer rounds on {fewer}, more on {more} (total {total[0]} -> "
        f"{total[1]}); the stopping rule met on {rule[0]} off, {rule[1]} on; objective lower on "
        f"{lower}, higher on {higher}; test MSE geometric mean ratio on/off {gm:.3f}"
    )


if __name__ == "__main__":
    main()
