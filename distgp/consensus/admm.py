"""Quantized consensus ADMM coordinator (slimkl.md section 4), free of any transport.

Round ``t`` with agents ``j = 1..N`` and penalty ``rho``:

1. every agent receives ``(z, lambda_j, rho)`` and returns ``q_j = Q(theta_j)``, where ``theta_j``
   approximately minimises ``l_j(theta) + lambda_j^T (theta - z) + rho/2 ||theta - z||^2``;
2. ``z+ = Q(max(lower, mean_j(q_j + lambda_j / rho)))`` (projection onto the bounds, then
   quantisation, so the consensus is itself a sendable message);
3. ``lambda_j += rho (q_j - z+)``, known to both sides without sending it;
4. residual balancing on the residuals relative to their tolerances (Wohlberg 2017):
   ``rho *= tau`` if ``r/eps_pri > mu s/eps_dual``, ``rho /= tau`` if the reverse holds.

Primal residual ``r = ||[q_1 .. q_N] - z+ 1^T||_F``, dual residual ``s = rho sqrt(N) ||z+ - z||``;
stop when both fall below Boyd et al.'s tolerances (widened by the quantiser's resolution at
``z``, since quantised messages cannot agree more closely) or after ``max_rounds``. Agents that
do not
answer in a round (dead or late) keep their last upload and their dual; when they come back
their state is sent once in full (charged at 64 bits per entry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from distgp.consensus.quantizer import Quantizer, float_bits
from distgp.exceptions import ConfigError


@dataclass(frozen=True)
class ADMMOptions:
    """Settings of the coordinator.

    Attributes:
        rho: initial penalty; ``None`` picks ``rho = mean shard size`` (the scale of the local
            objectives' curvature in standardised units).
        max_rounds: round cap.
        abs_tol, rel_tol: Boyd et al.'s absolute and relative tolerances.
        balance_mu, balance_tau: residual-balancing ratio and factor.
        min_rounds: rounds before stopping is allowed.
    """

    rho: float | None = None
    max_rounds: int = 50
    abs_tol: float = 1e-4
    rel_tol: float = 1e-3
    balance_mu: float = 3.0
    balance_tau: float = 2.0
    min_rounds: int = 3

    def __post_init__(self) -> None:
        if self.rho is not None and not self.rho > 0:
            raise ConfigError(f"rho must be positive, got {self.rho}")
        if self.max_rounds < 1:
            raise ConfigError(f"max_rounds must be at least 1, got {self.max_rounds}")
        if self.balance_tau <= 1 or self.balance_mu <= 1:
            raise ConfigError("residual balancing needs balance_mu > 1 and balance_tau > 1")


@dataclass
class RoundRecord:
    """What happened in one round (all scalars; ``history`` rows of the fit)."""

    round: int
    rho: float
    primal_residual: float
    dual_residual: float
    primal_tol: float
    dual_tol: float
    bits: int
    bits_float64: int
    active_components: int
    participants: int
    loss: float = math.nan
    seconds: float = math.nan
    events: list[str] = field(default_factory=list)


class ADMMCoordinator:
    """State and updates of the consensus variable, the duals and the penalty.

    Args:
        theta0: starting consensus (``D = M + 1``; the last entry is the noise variance).
        lower: lower bounds (``D``).
        agents: number of agents ``N``.
        quantizer: message quantiser, or ``None`` for float64 messages.
        options: :class:`ADMMOptions`.
        rho: initial penalty (used when ``options.rho`` is None).
        seed: seed of the coordinator's quantisation noise.
    """

    def __init__(
        self,
        theta0: np.ndarray,
        lower: np.ndarray,
        agents: int,
        quantizer: Quantizer | None,
        options: ADMMOptions,
        rho: float,
        seed: int = 0,
    ) -> None:
        self.lower = np.asarray(lower, float)
        self.N = int(agents)
        self.D = self.lower.size
        self.quantizer = quantizer
        self.options = options
        self.rho = float(options.rho if options.rho is not None else rho)
        self.seed = int(seed)
        self.round = 0
        self.z, bits = self._quantize(np.maximum(theta0, self.lower), 0)
        self.duals = np.zeros((self.N, self.D))
        self.uploads: list[np.ndarray | None] = [None] * self.N
        self.in_sync = np.zeros(self.N, dtype=bool)
        self.history: list[RoundRecord] = []
        self.converged = False
        self._pending_bits = bits * self.N  # the first broadcast, charged to round 1
        self._pending_float = float_bits(self.D) * self.N

    # --- messages ------------------------------------------------------------------------------

    def _quantize(self, x: np.ndarray, salt: int) -> tuple[np.ndarray, int]:
        if self.quantizer is None:
            return x.copy(), float_bits(x.size)
        rng = np.random.default_rng([self.seed, 1_000_003, salt])
        return self.quantizer(x, rng)

    def request(self, agent: int) -> tuple[int, np.ndarray, np.ndarray, float]:
        """The call for ``agent`` in the next round: ``(round, z, dual, rho)``."""
        return self.round + 1, self.z, self.duals[agent], self.rho

    def resync_state(self, agent: int) -> np.ndarray | None:
        """The agent's last upload, to restore a restarted agent (``None`` before its first)."""
        return self.uploads[agent]

    # --- one round -----------------------------------------------------------------------------

    def update(
        self, uploads: dict[int, np.ndarray], upload_bits: dict[int, int], losses: dict[int, float]
    ) -> RoundRecord:
        """Consume the answers of round ``round + 1`` and advance the state.

        Args:
            uploads: quantised ``theta_j`` (``D``) per agent that answered.
            upload_bits: bits each upload cost.
            losses: each answering agent's local objective ``l_j`` at its ``theta_j``.
        """
        if not uploads and all(u is None for u in self.uploads):
            raise RuntimeError("no agent has answered yet; cannot form a consensus")
        self.round += 1
        events = []
        bits = self._pending_bits + sum(upload_bits.values())
        bits_float = self._pending_float + len(uploads) * float_bits(self.D)
        # Agents that were out of sync (skipped or restarted) received their dual and warm start.
        for j in uploads:
            if not self.in_sync[j] and self.round > 1:
                bits += 2 * float_bits(self.D)
                bits_float += 2 * float_bits(self.D)
                events.append(f"agent {j} resynchronised")
        for j, q in uploads.items():
            self.uploads[j] = np.asarray(q, float)
        known = [j for j in range(self.N) if self.uploads[j] is not None]
        stacked = np.array([self.uploads[j] for j in known])
        duals = self.duals[known]
        target = np.maximum((stacked + duals / self.rho).mean(axis=0), self.lower)
        z_old = self.z
        self.z, broadcast_bits = self._quantize(target, self.round)
        for j in uploads:
            self.duals[j] += self.rho * (self.uploads[j] - self.z)
        self.in_sync[:] = False
        self.in_sync[list(uploads)] = True
        r = float(np.linalg.norm(stacked - self.z))
        s = float(self.rho * math.sqrt(len(known)) * np.linalg.norm(self.z - z_old))
        size = math.sqrt(len(known) * self.D)
        eps_pri = size * self.options.abs_tol + self.options.rel_tol * max(
            float(np.linalg.norm(stacked)), math.sqrt(len(known)) * float(np.linalg.norm(self.z))
        )
        eps_dual = size * self.options.abs_tol + self.options.rel_tol * float(
            np.linalg.norm(self.duals[known])
        )
        if self.quantizer is not None:
            # Quantised messages cannot agree more closely than the quantiser resolves.
            floor = math.sqrt(len(known)) * float(np.linalg.norm(self.quantizer.resolution(self.z)))
            eps_pri += floor
            eps_dual += self.rho * floor
        record = RoundRecord(
            round=self.round,
            rho=self.rho,
            primal_residual=r,
            dual_residual=s,
            primal_tol=eps_pri,
            dual_tol=eps_dual,
            bits=bits,
            bits_float64=bits_float,
            active_components=int(np.count_nonzero(self.z[:-1])),
            participants=len(uploads),
            loss=float(sum(losses.values())) if len(losses) == self.N else math.nan,
            events=events,
        )
        self.history.append(record)
        self.converged = self.round >= self.options.min_rounds and r <= eps_pri and s <= eps_dual
        self._balance(r / eps_pri, s / eps_dual)
        rho_bits = float_bits(1) * self.N if self.rho != record.rho else 0
        self._pending_bits = broadcast_bits * self.N + rho_bits
        self._pending_float = float_bits(self.D) * self.N + rho_bits
        return record

    def _balance(self, r: float, s: float) -> None:
        mu, tau = self.options.balance_mu, self.options.balance_tau
        if r > mu * s:
            self.rho *= tau
        elif s > mu * r:
            self.rho /= tau

    @property
    def done(self) -> bool:
        return self.converged or self.round >= self.options.max_rounds

    # --- checkpointing -------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume (arrays only, for ``np.savez``)."""
        uploads = np.array([u if u is not None else np.full(self.D, np.nan) for u in self.uploads])
        return {
            "admm_round": np.asarray(self.round),
            "admm_rho": np.asarray(self.rho),
            "admm_z": self.z,
            "admm_duals": self.duals,
            "admm_uploads": uploads,
            "admm_in_sync": self.in_sync,
            "admm_pending_bits": np.asarray([self._pending_bits, self._pending_float]),
            "admm_converged": np.asarray(self.converged),
        }

    def restore(self, state, history: list[RoundRecord]) -> None:
        self.round = int(state["admm_round"])
        self.rho = float(state["admm_rho"])
        self.z = np.asarray(state["admm_z"], float)
        self.duals = np.asarray(state["admm_duals"], float).copy()
        uploads = np.asarray(state["admm_uploads"], float)
        self.uploads = [None if np.isnan(u).any() else u.copy() for u in uploads]
        self.in_sync = np.asarray(state["admm_in_sync"], bool).copy()
        self._pending_bits, self._pending_float = (int(b) for b in state["admm_pending_bits"])
        self.converged = bool(state["admm_converged"])
        self.history = list(history)
