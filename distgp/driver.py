"""One kernel-learning run: shards -> agents -> DSCA or quantised ADMM -> a fitted model.

Used by :class:`~distgp.GSMPRegressor` and ``distgp fit``. The driver owns the loop; learning
happens in the agents (``agents/``), the consensus maths in ``consensus/`` and the transport in a
backend. With one agent the run is a centralised DSCA solve; with more, quantised ADMM rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distgp.agents.address import check_ray_address
from distgp.agents.agent import AgentSettings, SolveReply, StepReply
from distgp.agents.backends import AgentFailure, Backend, make_backend
from distgp.checkpoint import Checkpoint, config_json
from distgp.config import FitConfig
from distgp.consensus.admm import ADMMCoordinator, ADMMOptions, RoundRecord
from distgp.consensus.quantizer import Quantizer
from distgp.data import Scaler, ShardSummary, shard_indices
from distgp.exceptions import BackendError, ModelFileError
from distgp.gp import GSMPModel
from distgp.kernels.grid import SpectralGrid, data_grid, reference_grid
from distgp.learn.dsca import DSCAOptions

SOLVE_CHUNK = 25  # single-agent DSCA iterations between progress reports and checkpoints
INITIAL_NOISE = 0.1  # starting noise variance, standardised units


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        model: the fitted GP.
        theta: final parameters (``M + 1``: weights, then the noise variance).
        rounds: ADMM rounds (0 for a single agent).
        iterations: DSCA iterations of a single-agent run (0 with ADMM).
        converged: stopping criterion met before the cap.
        bits_sent, bits_float64: communication, as sent and as float64 messages would cost.
        seconds: wall time of learning (agents' set-up to the final consensus).
        objective: final negative log marginal likelihood summed over agents, raw units.
        history: per-round records (ADMM) or per-iteration objectives (single agent).
        events: faults and recoveries, one line each.
        nodes: node id of each agent.
    """

    model: GSMPModel
    theta: np.ndarray
    rounds: int
    iterations: int
    converged: bool
    bits_sent: int
    bits_float64: int
    seconds: float
    objective: float
    agents: int
    history: list[Any] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    shard_sizes: list[int] = field(default_factory=list)


Reporter = Callable[[str, dict[str, Any]], None]


def build_grid(config: FitConfig, summary: ShardSummary) -> SpectralGrid:
    """The spectral grid of the run, from merged shard statistics only."""
    k = config.kernel
    if k.grid == "reference":
        return reference_grid(summary.dims, k.components)
    return data_grid(summary.n, summary.dims, k.components, k.levels, k.frequency_scale)


def initial_theta(components: int) -> np.ndarray:
    """Equal weights summing to ``1 - INITIAL_NOISE`` (``var(y) = 1``), then the noise."""
    return np.r_[np.full(components, (1.0 - INITIAL_NOISE) / components), INITIAL_NOISE]


def agent_settings(config: FitConfig) -> AgentSettings:
    c, lr = config.consensus, config.learn
    quantizer = None
    if c.agents > 1 and c.quantize:
        quantizer = Quantizer(delta=c.delta) if c.delta is not None else Quantizer(bits=c.bits)
    return AgentSettings(
        noise_floor=lr.noise_floor,
        solver=lr.solver,
        inner_iterations=lr.inner_iterations,
        dsca=DSCAOptions(
            max_iterations=lr.max_iterations,
            tol=lr.tol,
            kkt_tol=lr.kkt_tol,
            blocks=lr.blocks,
            prune_tol=lr.prune_tol,
        ),
        local_iterations=c.local_iterations,
        quantizer=quantizer,
        seed=config.seed,
    )


def fit(
    X: np.ndarray,
    y: np.ndarray,
    config: FitConfig,
    groups: np.ndarray | None = None,
    report: Reporter | None = None,
    backend: Backend | None = None,
    initial: np.ndarray | None = None,
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
) -> FitResult:
    """Learn GSMP weights from validated raw data ``X`` (``n x P``) and ``y`` (``n``).

    Args:
        groups: labels for ``shard: column:NAME``.
        report: progress callback ``report(event, fields)``.
        backend: an already built backend (default: from ``config.backend``); the caller keeps
            it (and shuts it down), so it can serve several fits.
        initial: warm start (``M + 1`` parameters of an earlier fit with the same grid size);
            ignored when its size does not match the grid.
        checkpoint: where to save the driver's state after every round (or DSCA chunk).
        resume: continue from ``checkpoint`` instead of starting afresh.
    """
    config.validate()
    saved = None
    if resume:
        if checkpoint is None:
            raise ModelFileError("resuming needs a checkpoint")
        saved = checkpoint.load()
        if saved["config_json"] != json.loads(config_json(config)):
            raise ModelFileError("the checkpoint was written with other settings; start a new run")
    report = report or (lambda event, fields: None)
    c = config.consensus
    shards = preflight(config, len(y), groups, check_address=backend is None)
    owned = backend is None
    backend = backend or make_backend(
        config.backend_name,
        config.backend.address,
        config.backend.cpus_per_agent,
        config.backend.round_timeout,
    )
    with backend if owned else contextlib.nullcontext(backend):
        report("start", {"agents": c.agents, "backend": backend.name, "n": len(y)})
        backend.start([(X[idx], y[idx]) for idx in shards])
        start = time.perf_counter()
        summary = ShardSummary.merge(list(_answers(backend.broadcast("summary")).values()))
        scaler = Scaler.from_summary(summary, standardize_inputs=config.kernel.grid == "data")
        grid = build_grid(config, summary)
        settings = agent_settings(config)
        setup_args = (scaler.to_dict(), grid.to_dict(), settings)
        _answers(backend.broadcast("setup", *setup_args))
        report("setup", {"components": grid.components, "dims": grid.dims})
        theta0 = initial_theta(grid.components)
        if initial is not None and np.shape(initial) == theta0.shape:
            theta0 = np.maximum(
                np.asarray(initial, float), np.r_[np.zeros(grid.components), settings.noise_floor]
            )
        saver = _Saver(checkpoint, config, start, saved)
        if c.agents == 1:
            run = _single_agent(backend, theta0, config, report, saver, saved)
        else:
            rho = float(np.mean([len(idx) for idx in shards]))  # curvature scale of l_j
            run = _admm(backend, theta0, config, settings, setup_args, rho, report, saver, saved)
        theta = run["theta"]
        losses = _evaluate(backend, theta, setup_args, run["events"])
        seconds = saver.elapsed()
        nodes = backend.nodes()
    n_total = len(y)
    nlml = 0.5 * sum(losses.values()) + 0.5 * n_total * math.log(2 * math.pi)
    objective = nlml + n_total * math.log(scaler.y_scale)
    model = GSMPModel(
        grid=grid,
        scaler=scaler,
        weights=theta[:-1].copy(),
        noise_variance=float(theta[-1]),
        X_train=scaler.x(X),
        y_train=scaler.y(y),
    )
    return FitResult(
        model=model,
        theta=theta,
        rounds=run["rounds"],
        iterations=run["iterations"],
        converged=run["converged"],
        bits_sent=run["bits"],
        bits_float64=run["bits_float64"],
        seconds=seconds,
        objective=float(objective),
        agents=c.agents,
        history=run["history"],
        events=run["events"],
        nodes=nodes,
        shard_sizes=[len(s) for s in shards],
    )


def preflight(
    config: FitConfig, n: int, groups: np.ndarray | None = None, check_address: bool = True
) -> list[np.ndarray]:
    """Checks that need the data size but no agent: sharding and the Ray address.

    Returns:
        The training indices of each agent's shard.
    """
    method = "column" if config.data.shard.startswith("column:") else config.data.shard
    shards = shard_indices(n, config.consensus.agents, method, groups, config.seed)
    if check_address and config.backend_name == "ray":
        check_ray_address(config.backend.address)
    return shards


def _answers(replies: dict[int, Any]) -> dict[int, Any]:
    """Results of a call every agent must answer (set-up, evaluation)."""
    failed = [r for r in replies.values() if isinstance(r, AgentFailure)]
    if failed:
        f = failed[0]
        raise BackendError(
            f"agent {f.agent} failed during set-up or evaluation ({f.reason}: {f.detail})"
        )
    return replies


class _Saver:
    """Checkpoint writer that also carries the learning time across a resume."""

    def __init__(
        self, checkpoint: Checkpoint | None, config: FitConfig, start: float, saved
    ) -> None:
        self.checkpoint = checkpoint
        self.config = config
        self.start = start
        self.before = float(saved["seconds"]) if saved is not None else 0.0

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start

    def __call__(self, state: dict[str, Any]) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(self.config, {**state, "seconds": self.elapsed()})


def _evaluate(backend: Backend, theta: np.ndarray, setup_args: tuple, events: list[str]) -> dict:
    """Every agent's local objective at the final weights; a dead agent is rebuilt once."""
    replies = backend.broadcast("evaluate", theta)
    for j, reply in list(replies.items()):
        if isinstance(reply, AgentFailure):
            backend.recover(j)
            _answers(backend.call("setup", {j: setup_args}))
            replies[j] = backend.call("evaluate", {j: (theta,)})[j]
            events.append(f"evaluation: agent {j} {reply.reason}; restarted from its shard")
    return _answers(replies)


def _single_agent(
    backend: Backend, theta0: np.ndarray, config: FitConfig, report: Reporter, save: _Saver, saved
) -> dict:
    theta = theta0
    history: list[float] = []
    iterations, converged = 0, False
    if saved is not None:
        theta = np.asarray(saved["theta"], float)
        history = list(saved["history_json"])
        iterations = int(saved["iterations"])
    budget = config.learn.max_iterations
    while iterations < budget and not converged:
        chunk = min(SOLVE_CHUNK, budget - iterations)
        reply: SolveReply = _answers(backend.call("solve", {0: (theta, chunk)}))[0]
        theta = reply.theta
        history.extend(reply.history if not history else reply.history[1:])
        iterations += reply.iterations
        converged = reply.converged
        report(
            "iteration",
            {
                "iteration": iterations,
                "objective": reply.loss,
                "active": int(np.count_nonzero(theta[:-1])),
                "noise": float(theta[-1]),
            },
        )
        if not converged:
            save({"theta": theta, "iterations": iterations, "history_json": history})
    return {
        "theta": theta,
        "rounds": 0,
        "iterations": iterations,
        "converged": converged,
        "bits": 0,
        "bits_float64": 0,
        "history": history,
        "events": [],
    }


def _admm(
    backend: Backend,
    theta0: np.ndarray,
    config: FitConfig,
    settings: AgentSettings,
    setup_args: tuple,
    rho: float,
    report: Reporter,
    save: _Saver,
    saved,
) -> dict:
    c = config.consensus
    coordinator = ADMMCoordinator(
        theta0=theta0,
        lower=np.r_[np.zeros(len(theta0) - 1), settings.noise_floor],
        agents=c.agents,
        quantizer=settings.quantizer,
        options=ADMMOptions(
            rho=c.rho, max_rounds=c.max_rounds, abs_tol=c.abs_tol, rel_tol=c.rel_tol
        ),
        rho=rho,
        seed=config.seed,
    )
    events: list[str] = []
    if saved is not None:
        history = [RoundRecord(**record) for record in saved["history_json"]]
        coordinator.restore(saved, history)
        coordinator.in_sync[:] = False  # the restarted agents receive their state once more
        events = list(saved["events_json"])
        for j in range(c.agents):
            _answers(backend.call("restore", {j: (coordinator.round, coordinator.resync_state(j))}))
    while not coordinator.done:
        tic = time.perf_counter()
        requests = {j: coordinator.request(j) for j in range(c.agents)}
        replies = backend.call("local_step", requests)
        answered: dict[int, StepReply] = {}
        round_events: list[str] = []
        for j, r in replies.items():
            if isinstance(r, StepReply):
                answered[j] = r
            else:
                round_events.append(
                    f"round {coordinator.round + 1}: agent {j} {r.reason}; left out"
                )
                _recover(backend, j, coordinator, setup_args, round_events)
        if not answered and all(u is None for u in coordinator.uploads):
            raise BackendError("no agent answered the first round; check the backend and agents")
        record: RoundRecord = coordinator.update(
            {j: r.upload for j, r in answered.items()},
            {j: r.bits for j, r in answered.items()},
            {j: r.loss for j, r in answered.items()},
        )
        record.seconds = time.perf_counter() - tic
        record.events = round_events + record.events
        events.extend(round_events)
        report("round", {"record": record})
        if not coordinator.done:
            save(
                {
                    **coordinator.state(),
                    "history_json": [dataclasses.asdict(r) for r in coordinator.history],
                    "events_json": events,
                }
            )
    history = coordinator.history
    return {
        "theta": coordinator.z.copy(),
        "rounds": coordinator.round,
        "iterations": 0,
        "converged": coordinator.converged,
        "bits": sum(r.bits for r in history),
        "bits_float64": sum(r.bits_float64 for r in history),
        "history": history,
        "events": events,
    }


def _recover(
    backend: Backend, j: int, coordinator: ADMMCoordinator, setup_args: tuple, events: list[str]
) -> None:
    """Rebuild agent ``j`` from its shard and bring it back to the coordinator's round."""
    try:
        backend.recover(j)
        for method, args in (
            ("setup", setup_args),
            ("restore", (coordinator.round + 1, coordinator.resync_state(j))),
        ):
            reply = backend.call(method, {j: args})[j]
            if isinstance(reply, AgentFailure):
                raise BackendError(reply.detail)
        events.append(f"round {coordinator.round + 1}: agent {j} restarted from its shard")
    except BackendError as exc:
        events.append(f"round {coordinator.round + 1}: agent {j} could not be restarted ({exc})")
