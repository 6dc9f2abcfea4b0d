"""The coordinator of consensus ADMM with agent-held duals, free of any transport.

Scaled consensus ADMM (Boyd et al. 2011, section 7.1) over agents ``j = 1..N`` with local
objectives ``l_j`` and the bound ``theta >= lower`` on the consensus ``z``; see ``docs/admm.md``.
Round ``t``:

1. the coordinator sends the change of the consensus ``z^t`` (a :class:`Packed` message against
   the copy ``z_hat`` every agent keeps) and the penalty ``rho``;
2. agent ``j`` updates its own scaled dual ``u_j += x_j - z^t`` (it knows ``x_j``, ``z^t`` and
   ``rho``, so duals need not travel; the coordinator could recover ``x_j`` and ``u_j`` from two
   consecutive ``v_j``), solves ``x_j ~ argmin l_j(x) + rho/2 ||x - z^t + u_j||^2``
   with warm-started DSCA steps, and sends the change of ``v_j = x_j + u_j`` against its copy
   ``v_hat_j``, plus four scalars: ``||x_j^(t-1) - z^t||^2`` (its share of the primal residual),
   ``||x_j||^2``, ``||rho u_j||^2`` (for the tolerances) and ``l_j(z^t)`` (the objective at z);
3. the coordinator sets ``z^(t+1) = max(lower, mean_j v_hat_j)``.

Stopping (Boyd et al. 3.3.1, unwidened): the residuals of iterate ``t - 1`` reach the coordinator
in round ``t``: ``r = sqrt(sum_j ||x_j - z^t||^2)``, ``s = rho sqrt(N) ||z^t - z^(t-1)||``, and the
run stops with consensus ``z^t`` when ``r <= sqrt(N D) abs_tol + rel_tol max(||x||, sqrt(N)||z||)``
and ``s <= sqrt(N D) abs_tol + rel_tol ||rho u||``. Quantised runs meet the same rule: their
messages code changes, whose quantisation error shrinks as the iterates settle.

Penalty: one value per parameter, ``rho_m = curvature_scale x mean_j g_jm`` with ``g_jm`` the
Gauss-Newton curvature of ``l_j`` in ``theta_m`` at the consensus (an upper bound of the Hessian's
diagonal), which the agents send in the rounds listed in ``curvature_rounds``: GSMP weights span
orders of magnitude, and a single penalty is far too stiff for some and too loose for others.
On top of it, residual balancing scales the whole vector, on relative residuals and damped (only
when one residual exceeds the other by ``balance_mu``, at most every ``balance_every`` rounds)
until ``balance_rounds``. After that the penalty only ever halves, and only while the agents
agree within the primal tolerance and the dual residual alone, more than ``balance_mu`` times
its tolerance-relative size, keeps the run from stopping: a penalty too stiff makes the consensus
creep (each halving lets ``z`` move twice as far per round). The dual residual is the penalty
times the consensus's move, so it falls below that bound after finitely many halvings, and the
fixed-penalty theory covers the rest of the run. ``balance_rounds = 0`` leaves the penalty to
the curvature rounds alone.
Agents rescale their duals whenever the penalty changes.

Result: the consensus the stopping rule accepted; otherwise (round cap, divergence) the
consensus of the round with the lowest objective ``sum_j l_j(z^t)``, which every round measures.
A run stops as diverged when the objective has not improved for ``DIVERGENCE_ROUNDS`` rounds
while the primal residual has stayed above its tolerance and ``DIVERGENCE_GROWTH`` times its
smallest for the last ``DIVERGENCE_PERSIST`` rounds (with 2-bit messages residual balancing can
drive the penalty so low that the agents drift apart; a one-round jump after a penalty change,
which the next rounds undo, is no divergence).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from distgp.config import ConsensusConfig, FitConfig
from distgp.consensus.quantizer import DeltaCoder
from distgp.consensus.wire import Packed
from distgp.exceptions import ConfigError
from distgp.settings import require

DIVERGENCE_ROUNDS = 20  # rounds without a lower objective at z ...
DIVERGENCE_GROWTH = 1e3  # ... while the primal residual exceeds its smallest this many times
DIVERGENCE_PERSIST = 10  # ... (and its tolerance) in each of this many rounds in a row


@dataclass(frozen=True)
class ADMMOptions:
    """Settings of the coordinator.

    Attributes:
        rho: initial penalty; ``None`` picks the mean shard size (the scale of the local
            objectives' curvature in standardised units).
        max_rounds: round cap.
        abs_tol, rel_tol: Boyd et al.'s absolute and relative tolerances.
        balance_mu, balance_tau: residual-balancing ratio and factor.
        balance_every: rounds between penalty changes.
        balance_rounds: last round of two-way balancing (0: none, and no late halving).
        balance_down: also lower the penalty when the dual residual dominates.
        loosen_late: after ``balance_rounds`` (if not 0), still halve the penalty (never raise
            it) when the agents agree within the primal tolerance while the dual residual, more
            than ``balance_mu`` times larger relative to its tolerance, keeps the run from
            stopping (a penalty too stiff: the consensus creeps).
        curvature_rounds: rounds whose replies carry the agents' curvature (empty: one scalar
            penalty for every parameter).
        curvature_scale: penalty as a multiple of the mean curvature.
        min_rounds: rounds before stopping is allowed.
    """

    rho: float | None = ConsensusConfig.rho
    max_rounds: int = ConsensusConfig.max_rounds
    abs_tol: float = ConsensusConfig.abs_tol
    rel_tol: float = ConsensusConfig.rel_tol
    balance_mu: float = 3.0
    balance_tau: float = 2.0
    balance_every: int = 5
    balance_rounds: int = ConsensusConfig.balance_rounds
    balance_down: bool = True
    loosen_late: bool = True
    curvature_rounds: tuple[int, ...] = (2, 10, 20)
    curvature_scale: float = 2.0
    min_rounds: int = 3

    def __post_init__(self) -> None:
        for name in ("rho", "max_rounds", "abs_tol", "rel_tol", "balance_rounds"):
            require(FitConfig, f"consensus.{name}", getattr(self, name))
        if self.balance_tau <= 1 or self.balance_mu <= 1:
            raise ConfigError("residual balancing needs balance_mu > 1 and balance_tau > 1")


@dataclass(frozen=True)
class RoundRequest:
    """What the coordinator sends agent ``j`` in a round.

    Attributes:
        round: round number (from 1).
        z: change of the consensus against the agent's copy.
        rho: the penalty when it changed since the agent's last round, else ``None``: a
            :class:`Penalty` in full, or a float, the new balancing scale of the last full one.
        resync: the agent starts afresh (zero copies, zero dual): first round or after a restart.
        curvature: the agent adds its curvature at ``z`` to the reply.
    """

    round: int
    z: Packed
    rho: Penalty | float | None
    resync: bool
    curvature: bool = False

    def to_wire(self) -> list:
        rho = self.rho.to_wire() if isinstance(self.rho, Penalty) else self.rho
        return [self.round, self.z, rho, self.resync, self.curvature]

    @classmethod
    def from_wire(cls, fields: list) -> RoundRequest:
        rho = Penalty.from_wire(fields[2]) if isinstance(fields[2], list) else fields[2]
        return cls(int(fields[0]), fields[1], rho, bool(fields[3]), bool(fields[4]))


@dataclass(frozen=True)
class Penalty:
    """A per-parameter penalty as it travels: 8-bit codes on a log scale between ``low`` and
    ``high`` (float32), times a balancing ``scale`` (a power of 2). Both ends decode the same
    codes, so they hold the same penalty to the last bit; any positive penalty is valid ADMM, so
    its coarse grid costs no accuracy."""

    codes: np.ndarray
    low: float
    high: float
    scale: float = 1.0

    @classmethod
    def of(cls, values: np.ndarray, scale: float = 1.0) -> Penalty:
        codes, low, high = log_codes(values)
        return cls(codes, low, high, scale)

    def values(self) -> np.ndarray:
        return from_log_codes(self.codes, self.low, self.high) * self.scale

    def to_wire(self) -> list:
        return [self.codes, self.low, self.high, self.scale]

    @classmethod
    def from_wire(cls, fields: list) -> Penalty:
        return cls(np.asarray(fields[0], np.uint8), *(float(f) for f in fields[1:]))


def log_codes(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Positive values as 8-bit codes on a log scale: ``(codes, low, high)``, float32 bounds."""
    logs = np.log(np.maximum(np.asarray(values, float), 1e-300))
    low, high = float(np.float32(logs.min())), float(np.float32(logs.max()))
    if high <= low:
        return np.zeros(len(logs), np.uint8), low, low
    codes = np.clip(np.rint((logs - low) / (high - low) * 255), 0, 255).astype(np.uint8)
    return codes, low, high


def from_log_codes(codes: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.exp(low + (high - low) * np.asarray(codes, float) / 255)


@dataclass(frozen=True)
class RoundReply:
    """An agent's answer to one round: the change of ``v_j`` and scalars (see module docstring).

    ``residual`` is ``None`` in the agent's first round after a (re)start; ``curvature``
    (``D``) only when the request asked for it. On the wire the four scalars travel as float32
    and the curvature as 8-bit log codes (:func:`log_codes`).
    """

    round: int
    v: Packed
    residual: float | None
    x_norm2: float
    dual_norm2: float
    loss_at_z: float
    curvature: np.ndarray | None = None

    def to_wire(self) -> list:
        values = [
            math.nan if self.residual is None else self.residual,
            self.x_norm2,
            self.dual_norm2,
            self.loss_at_z,
        ]
        with np.errstate(over="ignore"):  # a norm beyond float32 (a dual grown on a
            stats = np.array(values, dtype=np.float32)  # near-singular shard) travels as inf
        curvature = None if self.curvature is None else list(log_codes(self.curvature))
        return [self.round, self.v, stats, curvature]

    @classmethod
    def from_wire(cls, fields: list) -> RoundReply:
        residual, x_norm2, dual_norm2, loss_at_z = (float(v) for v in fields[2])
        curvature = None if fields[3] is None else from_log_codes(*fields[3])
        return cls(
            int(fields[0]),
            fields[1],
            None if math.isnan(residual) else residual,
            x_norm2,
            dual_norm2,
            loss_at_z,
            curvature,
        )


@dataclass
class RoundRecord:
    """What happened in one round (all scalars; ``history`` rows of the fit).

    ``primal_residual`` etc. describe iterate ``round - 1`` (see module docstring); ``objective``
    is ``sum_j l_j(z^round)`` when every agent answered, else NaN.
    """

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
    objective: float = math.nan
    seconds: float = math.nan
    events: list[str] = field(default_factory=list)


def absolute_tolerance(agents: int, dims: int, abs_tol: float) -> float:
    """The absolute part ``sqrt(N D) abs_tol`` of both residual tolerances (module docstring)
    for ``agents`` answering agents and ``dims`` parameters."""
    return math.sqrt(agents * dims) * abs_tol


class ADMMCoordinator:
    """State and updates of the consensus, the agents' message copies and the penalty.

    Args:
        theta0: starting consensus (``D = M + 1``; the last entry is the noise variance).
        lower: lower bounds (``D``).
        agents: number of agents ``N``.
        coder: message coder (quantised or float64).
        options: :class:`ADMMOptions`.
        rho: initial penalty (used when ``options.rho`` is None).
        seed: seed of the coordinator's quantisation noise.
    """

    def __init__(
        self,
        theta0: np.ndarray,
        lower: np.ndarray,
        agents: int,
        coder: DeltaCoder,
        options: ADMMOptions,
        rho: float,
        seed: int = 0,
    ) -> None:
        self.lower = np.asarray(lower, float)
        self.N = int(agents)
        self.D = self.lower.size
        self.coder = coder
        self.options = options
        self.penalty = Penalty.of(
            np.full(self.D, float(options.rho if options.rho is not None else rho))
        )
        self.rho = self.penalty.values()
        self.rho_sent = np.zeros(self.N, dtype=bool)  # agent holds the current penalty
        self.rho_full = np.zeros(self.N, dtype=bool)  # agent holds the current penalty's codes
        self.seed = int(seed)
        self.round = 0
        self.z_target = np.maximum(np.asarray(theta0, float), self.lower)
        self.z_hat = np.zeros(self.D)  # what the agents hold; starts at zero on both ends
        self.z_used = self.z_target.copy()  # max(lower, z_hat) once the first message is sent
        self.z_previous: np.ndarray | None = None
        self.v_hat = np.zeros((self.N, self.D))
        self.active = np.ones(self.N, dtype=bool)  # agents still in the run
        self.heard = np.zeros(self.N, dtype=bool)  # agents with a v_hat in use
        self.resync = np.ones(self.N, dtype=bool)
        self.history: list[RoundRecord] = []
        self.converged = False
        self.diverged = False
        self.final: np.ndarray | None = None
        self.best_objective = math.inf  # lowest sum_j l_j(z^t) so far, its round and z^t
        self.best_round = 0
        self.best_z: np.ndarray | None = None
        self.min_primal = math.inf
        self.rounds_apart = 0  # complete rounds in a row with a diverging primal residual
        self._last_change = 0

    # --- messages ------------------------------------------------------------------------------

    def _rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 1_000_003, self.round, salt])

    def requests(self, agents: list[int]) -> dict[int, RoundRequest]:
        """The calls of the next round: one broadcast change, a full copy for resyncing agents."""
        t = self.round + 1
        message = self.coder.encode(self.z_target, self.z_hat, self._rng(0))
        new_hat = DeltaCoder.apply(message, self.z_hat)
        out: dict[int, RoundRequest] = {}
        curvature = t in self.options.curvature_rounds
        for j in agents:
            rho: Penalty | float | None = None
            if self.resync[j] or not self.rho_full[j]:
                rho = self.penalty
            elif not self.rho_sent[j]:
                rho = self.penalty.scale
            if self.resync[j]:  # a full copy, in float64 so that it equals everyone's z_hat
                full = DeltaCoder().encode(new_hat, np.zeros(self.D), self._rng(1 + j))
                out[j] = RoundRequest(t, full, rho, True, curvature)
            else:
                out[j] = RoundRequest(t, message, rho, False, curvature)
            self.rho_sent[j] = self.rho_full[j] = True
        self._pending_hat = new_hat
        return out

    def restart(self, agent: int) -> None:
        """Agent ``agent`` lost its state: it starts afresh in the next round."""
        self.resync[agent] = True
        self.heard[agent] = False
        self.rho_sent[agent] = self.rho_full[agent] = False
        self.v_hat[agent] = 0.0

    def drop(self, agent: int) -> None:
        """Agent ``agent`` leaves the run for good (its data is gone). The objective is then a
        sum over fewer shards and the residuals over fewer agents, so the best round and the
        smallest residual start afresh (an earlier, larger sum is no bar to the new one)."""
        self.active[agent] = False
        self.heard[agent] = False
        self.best_objective, self.best_round, self.best_z = math.inf, self.round, None
        self.min_primal, self.rounds_apart = math.inf, 0

    # --- one round -----------------------------------------------------------------------------

    def update(self, replies: dict[int, RoundReply]) -> RoundRecord:
        """Consume the replies of round ``round + 1`` and advance the state."""
        self.round += 1
        self.z_previous, self.z_hat = self.z_used, self._pending_hat
        self.z_used = np.maximum(self.z_hat, self.lower)
        events = []
        residuals, x_norms, dual_norms, losses, curvatures = [], [], [], [], []
        for j, reply in replies.items():
            if self.resync[j]:
                self.v_hat[j] = 0.0
                if self.round > 1:
                    events.append(f"agent {j} resynchronised")
            self.v_hat[j] = DeltaCoder.apply(reply.v, self.v_hat[j])
            self.heard[j] = True
            self.resync[j] = False
            if reply.residual is not None:
                residuals.append(reply.residual)
            x_norms.append(reply.x_norm2)
            dual_norms.append(reply.dual_norm2)
            losses.append(reply.loss_at_z)
            if reply.curvature is not None:
                curvatures.append(np.asarray(reply.curvature, float))
        if not self.heard.any():
            raise RuntimeError("no agent has answered yet; cannot form a consensus")
        in_run = int(self.active.sum())
        complete = len(replies) == in_run and len(residuals) == in_run
        N, D = len(replies), self.D
        r = math.sqrt(sum(residuals)) if complete else math.inf
        s = math.sqrt(max(N, 1)) * float(np.linalg.norm(self.rho * (self.z_used - self.z_previous)))
        scale = absolute_tolerance(N, D, self.options.abs_tol)
        eps_pri = scale + self.options.rel_tol * max(
            math.sqrt(sum(x_norms)), math.sqrt(N) * float(np.linalg.norm(self.z_used))
        )
        eps_dual = scale + self.options.rel_tol * math.sqrt(sum(dual_norms))
        record = RoundRecord(
            round=self.round,
            rho=float(np.median(self.rho)),
            primal_residual=r,
            dual_residual=s,
            primal_tol=eps_pri,
            dual_tol=eps_dual,
            bits=0,
            bits_float64=0,
            active_components=int(np.count_nonzero(self.z_used[:-1])),
            participants=len(replies),
            objective=float(sum(losses)) if len(losses) == in_run else math.nan,
            events=events,
        )
        self.history.append(record)
        if complete and self.round > self.options.min_rounds and r <= eps_pri and s <= eps_dual:
            self.converged = True
            self.final = self.z_used.copy()
        self._track_best(record)
        heard = self.heard & self.active
        self.z_target = np.maximum(self.v_hat[heard].mean(axis=0), self.lower)
        if curvatures and not self.converged:
            self._set_penalty(np.mean(curvatures, axis=0))
        elif complete and not self.converged:
            self._balance(r / eps_pri, s / eps_dual)
        return record

    def _track_best(self, record: RoundRecord) -> None:
        """Keep the round with the lowest objective at ``z``; flag divergence."""
        if math.isfinite(record.objective) and record.objective < self.best_objective:
            self.best_objective, self.best_round = record.objective, self.round
            self.best_z = self.z_used.copy()
        r = record.primal_residual
        if not math.isfinite(r) or self.converged:
            return
        self.min_primal = min(self.min_primal, r)
        apart = r > DIVERGENCE_GROWTH * self.min_primal and r > record.primal_tol
        self.rounds_apart = self.rounds_apart + 1 if apart else 0
        if (
            self.best_z is not None
            and self.round - self.best_round >= DIVERGENCE_ROUNDS
            and self.rounds_apart >= DIVERGENCE_PERSIST
        ):
            self.diverged = True
            record.events.append(
                f"diverged: the primal residual has stayed above its tolerance and "
                f"{DIVERGENCE_GROWTH:g} times its smallest for {self.rounds_apart} rounds (now "
                f"{r / self.min_primal:.3g} times) and the objective at z has not improved for "
                f"{self.round - self.best_round} rounds; the result is round {self.best_round}'s "
                "consensus"
            )

    def _set_penalty(self, curvature: np.ndarray) -> None:
        """``rho_m = curvature_scale x curvature_m``, kept within ``1e-3`` of the largest."""
        rho = self.options.curvature_scale * np.maximum(curvature, 0.0)
        top = float(rho.max(initial=0.0))
        if not top > 0:
            return
        self.penalty = Penalty.of(np.maximum(rho, 1e-3 * top), self.penalty.scale)
        self.rho = self.penalty.values()
        self.rho_sent[:] = self.rho_full[:] = False
        self._last_change = self.round

    def _balance(self, r: float, s: float) -> None:
        """Residual balancing on the residuals over their tolerances ``r`` and ``s``."""
        o = self.options
        if self.round - self._last_change < o.balance_every:
            return
        if self.round > o.balance_rounds:
            late = o.loosen_late and o.balance_rounds > 0
            if not (late and r <= 1.0 < s and s > o.balance_mu * r):
                return
            factor = 1.0 / o.balance_tau
        elif r > o.balance_mu * s:
            factor = o.balance_tau
        elif o.balance_down and s > o.balance_mu * r:
            factor = 1.0 / o.balance_tau
        else:
            return
        self.penalty = dataclasses.replace(self.penalty, scale=self.penalty.scale * factor)
        self.rho = self.penalty.values()
        self.rho_sent[:] = False
        self._last_change = self.round

    def holding(self) -> list[int]:
        """Agents that hold the result (the consensus they were sent last), so it need not
        travel again: those in the run that answered and need no resync."""
        if self.final is None and not np.array_equal(self.consensus, self.z_used):
            return []
        return [int(j) for j in np.flatnonzero(self.active & self.heard & ~self.resync)]

    @property
    def done(self) -> bool:
        return self.converged or self.diverged or self.round >= self.options.max_rounds

    @property
    def consensus(self) -> np.ndarray:
        """The result: the consensus the stopping rule accepted, else the one with the lowest
        objective (the last one sent before any objective is known)."""
        if self.final is not None:
            return self.final.copy()
        return (self.best_z if self.best_z is not None else self.z_used).copy()

    # --- checkpointing -------------------------------------------------------------------------

    _STATE = (
        "round",
        "rho",
        "z_target",
        "z_hat",
        "z_used",
        "v_hat",
        "rho_sent",
        "rho_full",
        "active",
        "heard",
        "resync",
        "converged",
        "diverged",
        "best_objective",
        "best_round",
        "min_primal",
        "rounds_apart",
        "_last_change",
    )

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume (arrays only, for ``np.savez``)."""
        out = {f"admm_{name.strip('_')}": np.asarray(getattr(self, name)) for name in self._STATE}
        p = self.penalty
        out["admm_penalty_codes"] = p.codes
        out["admm_penalty"] = np.array([p.low, p.high, p.scale])
        for name in ("z_previous", "best_z"):
            if getattr(self, name) is not None:
                out[f"admm_{name}"] = getattr(self, name)
        return out

    def restore(self, state, history: list[RoundRecord]) -> None:
        for name in self._STATE:
            if f"admm_{name.strip('_')}" not in state:  # a checkpoint of an older distgp
                continue
            value = np.asarray(state[f"admm_{name.strip('_')}"])
            setattr(self, name, value.copy() if value.ndim else value.item())
        self.round, self._last_change = int(self.round), int(self._last_change)
        self.rounds_apart = int(self.rounds_apart)
        self.rho = np.asarray(self.rho, float)
        self.penalty = Penalty(
            np.asarray(state["admm_penalty_codes"], np.uint8), *map(float, state["admm_penalty"])
        )
        self.converged, self.diverged = bool(self.converged), bool(self.diverged)
        self.best_round = int(self.best_round)
        self.best_objective, self.min_primal = float(self.best_objective), float(self.min_primal)
        for name in ("z_previous", "best_z"):
            if f"admm_{name}" in state:
                setattr(self, name, np.asarray(state[f"admm_{name}"], float))
        self.history = list(history)
