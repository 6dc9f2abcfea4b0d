"""The agent: one private data shard and the local DSCA solver.

An :class:`Agent` is a plain class; backends only move its messages (the inline backend calls it
directly, the Ray backend wraps it in an actor). What leaves an agent: one
:class:`~distgp.data.ShardSummary` (counts, per-dimension moments and ranges) before learning,
then per call a weight-sized vector (``D = M + 1``) and scalars. Raw inputs and outputs never do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from distgp.consensus.quantizer import Quantizer, float_bits
from distgp.data import Scaler, ShardSummary
from distgp.exceptions import DistGPError
from distgp.kernels.bank import SubKernelBank
from distgp.kernels.grid import SpectralGrid
from distgp.learn.dsca import DSCAOptions, dsca
from distgp.learn.objective import LocalObjective, ProximalTerm
from distgp.learn.solvers import make_solver


@dataclass(frozen=True)
class AgentSettings:
    """How an agent solves and quantises (sent once, at set-up).

    Attributes:
        noise_floor: lower bound of the noise variance (standardised units).
        solver: ``closed_form`` or ``cvxpy``.
        inner_iterations: closed-form alternations per block.
        dsca: DSCA options of a stand-alone solve; ``local_iterations`` replaces
            ``max_iterations`` inside ADMM rounds.
        local_iterations: DSCA iterations per ADMM round (warm-started).
        quantizer: message quantiser, or ``None`` for float64 messages.
        seed: base seed of the quantisation noise.
    """

    noise_floor: float
    solver: str = "closed_form"
    inner_iterations: int = 1
    dsca: DSCAOptions = field(default_factory=DSCAOptions)
    local_iterations: int = 10
    quantizer: Quantizer | None = None
    seed: int = 0


@dataclass(frozen=True)
class StepReply:
    """An agent's answer to one ADMM round: a weight-sized vector and scalars.

    Attributes:
        round: the round answered.
        upload: ``Q(theta_j)`` (``D``).
        bits: bits of the upload message.
        loss: local objective ``l_j(theta_j)`` (standardised units).
        iterations: DSCA iterations run.
        seconds: wall time of the local solve.
    """

    round: int
    upload: np.ndarray
    bits: int
    loss: float
    iterations: int
    seconds: float


@dataclass(frozen=True)
class SolveReply:
    """Answer of a stand-alone DSCA solve (single agent)."""

    theta: np.ndarray
    loss: float
    iterations: int
    converged: bool
    history: tuple[float, ...]


class AgentNotReadyError(DistGPError, RuntimeError):
    """An agent was asked to solve before ``setup`` (for instance after a restart)."""


class Agent:
    """One data holder.

    Args:
        agent_id: index of the agent (0..N-1).
        X: ``n_j x P`` raw inputs of the shard.
        y: ``n_j`` raw outputs of the shard.
    """

    def __init__(self, agent_id: int, X: np.ndarray, y: np.ndarray) -> None:
        self.agent_id = int(agent_id)
        self._X = np.asarray(X, float)
        self._y = np.asarray(y, float)
        self._objective: LocalObjective | None = None
        self._settings: AgentSettings | None = None
        self._reset_round_state()

    def _reset_round_state(self) -> None:
        self._last_round = 0
        self._reply: StepReply | None = None
        self._warm: np.ndarray | None = None

    # --- set-up --------------------------------------------------------------------------------

    def summary(self) -> ShardSummary:
        """Aggregate statistics of the shard (the only data-derived message besides weights)."""
        return ShardSummary.of(self._X, self._y)

    def setup(self, scaler: dict, grid: dict, settings: AgentSettings) -> int:
        """Build the shard's sub-kernel bank once; return the shard size."""
        scaler_ = Scaler.from_dict(scaler)
        grid_ = SpectralGrid.from_dict(grid)
        bank = SubKernelBank(scaler_.x(self._X), grid_)
        self._objective = LocalObjective(bank, scaler_.y(self._y), settings.noise_floor)
        self._settings = settings
        self._solver = make_solver(settings.solver, settings.inner_iterations)
        self._reset_round_state()
        return int(self._X.shape[0])

    @property
    def ready(self) -> bool:
        return self._objective is not None

    def _require(self) -> tuple[LocalObjective, AgentSettings]:
        if self._objective is None or self._settings is None:
            raise AgentNotReadyError(f"agent {self.agent_id} has not been set up")
        return self._objective, self._settings

    # --- solving -------------------------------------------------------------------------------

    def solve(self, theta0: np.ndarray, max_iterations: int) -> SolveReply:
        """Stand-alone DSCA from ``theta0`` for at most ``max_iterations`` iterations."""
        objective, settings = self._require()
        options = replace(settings.dsca, max_iterations=max_iterations)
        result = dsca(objective, theta0, self._solver, options)
        return SolveReply(
            result.theta, result.loss, result.iterations, result.converged, tuple(result.history)
        )

    def local_step(self, round: int, z: np.ndarray, dual: np.ndarray, rho: float) -> StepReply:
        """ADMM local update for ``round``: warm-started DSCA on ``l_j + dual^T (theta - z) +
        rho/2 ||theta - z||^2``, then quantisation. Asking again for the same round returns the
        same reply, so retried calls are safe."""
        objective, settings = self._require()
        if self._reply is not None and round == self._last_round:
            return self._reply
        start = time.perf_counter()
        theta0 = self._warm if self._warm is not None else np.asarray(z, float)
        penalty = ProximalTerm(np.asarray(dual, float), float(rho), np.asarray(z, float))
        options = replace(settings.dsca, max_iterations=settings.local_iterations)
        result = dsca(objective, theta0, self._solver, options, penalty=penalty)
        if settings.quantizer is None:
            upload, bits = result.theta.copy(), float_bits(objective.dim)
        else:
            rng = np.random.default_rng([settings.seed, self.agent_id, round])
            upload, bits = settings.quantizer(result.theta, rng)
        self._warm = upload
        self._last_round = round
        self._reply = StepReply(
            round=round,
            upload=upload,
            bits=int(bits),
            loss=float(result.loss),
            iterations=result.iterations,
            seconds=time.perf_counter() - start,
        )
        return self._reply

    def restore(self, last_round: int, last_upload: np.ndarray | None) -> None:
        """Resume after a restart: the coordinator sends back this agent's last upload."""
        self._require()
        self._reset_round_state()
        self._last_round = int(last_round)
        self._warm = None if last_upload is None else np.asarray(last_upload, float).copy()

    def evaluate(self, theta: np.ndarray) -> float:
        """Local objective ``l_j(theta)`` (standardised units)."""
        objective, _ = self._require()
        return float(objective.value(np.maximum(np.asarray(theta, float), objective.lower)))

    def memory(self) -> tuple[float, int]:
        """Peak resident memory of this agent's process (MiB) and the bytes its shard and cached
        sub-kernel envelopes and features hold (0 before set-up)."""
        from distgp.memory import peak_rss_mb

        held = 0
        if self._objective is not None:
            held = self._X.nbytes + self._y.nbytes + self._objective.bank.nbytes
        return peak_rss_mb(), int(held)
