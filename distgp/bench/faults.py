"""``distgp bench faults``: killed and hung agents over Ray.

All runs share one Ray instance, the data, the seed and the settings; only the fault differs.

* **clean**: the reference run, no fault.
* **killed**: in each of ``--runs`` seeded runs one random agent is killed (``ray.kill``) after a
  random round of the clean run; the driver leaves it out of the round in which it is found dead
  and rebuilds it from its shard.
* **hung**: one agent sleeps far longer than ``--round-timeout`` in one round; that round times
  out without it, the hung actor is replaced, and the run goes on.

Reported per scenario: runs, runs completed, runs whose events name the fault, worst and mean
relative change of the test MSE against the clean run, rounds and wall time. Target: every run
completes and the MSE stays within 2% of the clean run.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from distgp.bench.report import add_common_arguments, data_dir, markdown_table, publish
from distgp.cli.common import at_least, positive_number

TARGET_MSE_CHANGE = 0.02
HANG_ROUND = 3  # the round in which the hung agent sleeps
DATASET = "airfoil600.mat"
COLUMNS = (
    "scenario",
    "runs",
    "completed",
    "fault reported",
    "worst MSE change %",
    "mean MSE change %",
    "rounds",
    "slowest round s",
    "seconds",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="SOURCE",
        help=f"data source of the fits (default: {DATASET} in the data folder)",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="SLIM-KL data folder")
    parser.add_argument(
        "--agents",
        type=at_least(2),
        default=4,
        metavar="N",
        help="agents per run, at least 2: one is killed (default 4)",
    )
    parser.add_argument(
        "--runs",
        type=at_least(1),
        metavar="N",
        help="seeded runs with a killed agent (default 10)",
    )
    parser.add_argument(
        "--rounds", type=at_least(2), metavar="R", help="ADMM round cap, at least 2 (default 50)"
    )
    parser.add_argument(
        "--round-timeout",
        type=positive_number,
        metavar="SEC",
        help="seconds before a round goes on without an agent (default 10)",
    )
    parser.add_argument(
        "--seed", type=at_least(0), default=0, metavar="S", help="seed of the fault schedule"
    )
    parser.add_argument(
        "--address", metavar="ADDR", help="run on this Ray cluster (default: a local instance)"
    )
    add_common_arguments(parser)


def hanging_agent(agent: int, round: int, seconds: float) -> type:
    """An :class:`~distgp.agents.agent.Agent` subclass for ``RayBackend(agent_class=...)``:
    agent ``agent`` sleeps ``seconds`` before answering round ``round`` (once; a replacement
    started later is asked for later rounds only)."""
    from distgp.agents.agent import Agent

    def round_(self, request: list) -> list:
        if self.agent_id == agent and int(request[0]) == round:
            time.sleep(seconds)
        return Agent.round(self, request)

    return type("HangingAgent", (Agent,), {"round": round_, "__module__": __name__})


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from distgp.agents.ray_runtime import connect, disconnect
    from distgp.data import load_dataset
    from distgp.exceptions import BackendError

    runs = args.runs or (3 if args.quick else 10)
    rounds = args.rounds or (20 if args.quick else 50)
    timeout = args.round_timeout or (5.0 if args.quick else 10.0)
    source = args.data or str(data_dir(args.data_dir) / DATASET)
    dataset = load_dataset(source, seed=args.seed)

    def one(kill: tuple[int, int] | None = None, agent_class: type | None = None) -> dict:
        return _run_fit(dataset, args.agents, rounds, timeout, args.seed, kill, agent_class)

    started = connect(args.address)
    try:
        clean = one()
        if not clean["completed"]:
            raise BackendError(f"the clean run failed: {clean['error']}")
        rng = np.random.default_rng(args.seed)
        killed = []
        for i in range(runs):
            after = int(rng.integers(1, max(clean["rounds"], 2)))
            agent = int(rng.integers(args.agents))
            killed.append({**one(kill=(after, agent)), "after_round": after, "agent": agent})
            print(
                f"killed run {i + 1}/{runs}: agent {agent} after round {after}: "
                f"{_describe(killed[-1], clean)}",
                flush=True,
            )
        hang_round = min(HANG_ROUND, clean["rounds"])
        hung = one(agent_class=hanging_agent(0, hang_round, 20 * timeout))
        hung["hang_round"] = hang_round
        print(f"hung run: agent 0 in round {hang_round}: {_describe(hung, clean)}", flush=True)
    finally:
        disconnect(started)

    rows = [
        _row("clean", [clean], clean, None),
        _row("killed agent", killed, clean, "died"),
        _row(f"hung agent (timeout {timeout:g} s)", [hung], clean, "timeout"),
    ]
    table = markdown_table(rows, COLUMNS)
    every = [*killed, hung]
    changes = [abs(_change(r, clean)) for r in every if r["completed"]]
    met = len(changes) == len(every) and max(changes) <= TARGET_MSE_CHANGE
    summary = (
        f"Data {dataset.name} ({len(dataset.y_train)} training points), {args.agents} agents, "
        f"clean run: MSE {clean['mse']:.5g} in {clean['rounds']} rounds. Target (all runs "
        f"complete, MSE within {TARGET_MSE_CHANGE:.0%}): {'met' if met else 'NOT met'}."
    )
    payload: dict[str, Any] = {
        "suite": "faults",
        "data": dataset.name,
        "agents": args.agents,
        "runs": runs,
        "rounds": rounds,
        "round_timeout": timeout,
        "seed": args.seed,
        "clean": clean,
        "killed": killed,
        "hung": hung,
        "target_met": met,
    }
    publish(args, "faults", f"{table}\n\n{summary}", payload)
    return 0


def _run_fit(
    dataset,
    agents: int,
    rounds: int,
    timeout: float,
    seed: int,
    kill: tuple[int, int] | None,
    agent_class: type | None,
) -> dict:
    """One fit over Ray; ``kill = (round, agent)`` kills the agent once that round is done."""
    from distgp.agents.backends import RayBackend
    from distgp.config import FitConfig
    from distgp.driver import fit
    from distgp.gp import regression_metrics

    config = FitConfig(seed=seed)
    config.backend.name = "ray"
    config.consensus.agents = agents
    config.consensus.max_rounds = rounds
    config.backend.round_timeout = timeout
    extra = {"agent_class": agent_class} if agent_class is not None else {}
    backend = RayBackend(round_timeout=timeout, **extra)

    def report(event: str, fields: dict) -> None:
        if kill is not None and event == "round" and fields["record"].round == kill[0]:
            backend.kill(kill[1])

    tic = time.perf_counter()
    try:
        result = fit(
            dataset.X_train,
            dataset.y_train,
            config,
            report=report,
            backend=backend,
            X_test=dataset.X_test,
        )
    except Exception as exc:  # a failed run is a result of this benchmark
        return {"completed": False, "error": f"{type(exc).__name__}: {exc}"}
    mean, std = result.prediction
    return {
        "completed": True,
        "mse": regression_metrics(dataset.y_test, mean, std)["mse"],
        "rounds": result.rounds,
        "events": list(result.events),
        "slowest_round": max((r.seconds for r in result.history), default=0.0),
        "seconds": time.perf_counter() - tic,
    }


def _change(run: dict, clean: dict) -> float:
    return (run["mse"] - clean["mse"]) / clean["mse"]


def _describe(run: dict, clean: dict) -> str:
    if not run["completed"]:
        return f"FAILED ({run['error']})"
    return (
        f"MSE {run['mse']:.5g} ({_change(run, clean):+.2%}), {run['rounds']} rounds, "
        f"events: {'; '.join(run['events']) or 'none'}"
    )


def _row(name: str, runs: list[dict], clean: dict, fault: str | None) -> dict:
    done = [r for r in runs if r["completed"]]
    changes = [100 * _change(r, clean) for r in done]
    return {
        "scenario": name,
        "runs": len(runs),
        "completed": len(done),
        "fault reported": "-"
        if fault is None
        else sum(any(f" {fault};" in e for e in r["events"]) for r in done),
        "worst MSE change %": max(changes, key=abs) if changes else None,
        "mean MSE change %": sum(changes) / len(changes) if changes else None,
        "rounds": sum(r["rounds"] for r in done) / len(done) if done else None,
        "slowest round s": max((r["slowest_round"] for r in done), default=None),
        "seconds": sum(r["seconds"] for r in done) / len(done) if done else None,
    }
