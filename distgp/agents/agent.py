"""The agent: one private data shard, the local DSCA solver, its own ADMM dual.

An :class:`Agent` is a plain class; backends only move its messages (the inline backend calls it
directly, the Ray backend wraps it in an actor). Every call arrives as bytes
(:mod:`distgp.consensus.wire`) through :meth:`Agent.handle`, and every answer leaves as bytes.

What leaves an agent: a :class:`~distgp.data.ShardSummary` of at least ``min_shard_size`` points
(counts, means, sums of squared deviations, column names), per ADMM round the change of one
weight-sized vector ``x_j + u_j`` and four scalars (from two of which the driver can recover
``x_j`` and the dual ``u_j``: weight vectors), its curvature in three rounds, and at prediction
time its expert's latent mean and variance at the driver's test inputs; when tuning outer
settings, the pooled held-out MSE of its shard-local fits (:mod:`distgp.tune_shards`). Raw
inputs and outputs never do.

The shard is either handed over at start (the one-file simulation, :class:`ShardArrays`) or read
by the agent itself where it runs (:class:`ShardFile`); the driver then never opens the file.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from distgp import calendar
from distgp.config import ConsensusConfig, LearnConfig
from distgp.consensus.admm import Penalty, RoundReply, RoundRequest, log_codes
from distgp.consensus.quantizer import DeltaCoder
from distgp.consensus.wire import decode, encode
from distgp.data import Scaler, ShardSummary, array_digest, is_series, load_dataset
from distgp.exceptions import ConfigError, DistGPError, InputDataError
from distgp.io import read_npz, remove_written, save_npz
from distgp.kernels.trend import bank_from_recipe, prior_variance
from distgp.learn.dsca import DSCAOptions, SolveState, dsca
from distgp.learn.objective import LocalObjective, ProximalTerm, robust_cholesky
from distgp.learn.solvers import make_solver
from distgp.threads import owned_threads


@dataclass
class ShardData:
    """A shard as its agent holds it: ``n x P`` inputs, ``n`` outputs, the ``P`` input column
    names, the output column's (``None`` for arrays and .npz files), the calendar units of
    input columns that held dates (:mod:`distgp.calendar`) and those whose times gave UTC
    offsets."""

    X: np.ndarray
    y: np.ndarray
    names: list[str]
    target: str | None = None
    time_units: dict[str, str] = field(default_factory=dict)
    utc_inputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ShardArrays:
    """A shard handed to the agent at start (the one-file simulation)."""

    X: np.ndarray
    y: np.ndarray

    def load(self) -> ShardData:
        X = np.asarray(self.X, float)
        return ShardData(X, np.asarray(self.y, float), [f"x{p}" for p in range(X.shape[1])])


MISSING_FIX = "check the path (on the agent's node)"
"""The fix a missing shard file's error ends with (at prediction a private model says more)."""


@dataclass(frozen=True)
class ShardFile:
    """A shard file the agent reads where it runs.

    Attributes:
        path: ``.csv`` (header row, numeric columns) or ``.npz`` (``X``, ``y``); ``$VARS`` and ``~``
            are expanded on the agent's node, so one entry can name a per-node folder.
        target: output column of a CSV (default: the last).
        resources: Ray custom resources the agent's node must have (its placement), e.g.
            ``{"site_a": 1}``; empty: anywhere.
    """

    path: str
    target: str | None = None
    resources: tuple[tuple[str, float], ...] = ()

    def load(self) -> ShardData:
        path = os.path.expanduser(os.path.expandvars(self.path))
        if Path(path).is_dir():
            raise InputDataError(f"shard file {path} is a folder; name the files in it")
        if not Path(path).is_file():
            raise InputDataError(f"cannot read shard file {path}: no such file; {MISSING_FIX}")
        # only what is the shard's own business (readable, numeric, finite): whether outputs
        # and inputs vary is checked over every shard together, in the driver
        data = load_dataset(path, target=self.target, test_fraction=0.0, whole=False)
        return ShardData(
            data.X_train,
            data.y_train,
            list(data.feature_names),
            data.target_name,
            data.time_units,
            data.utc_inputs,
        )


@dataclass(frozen=True)
class AgentSettings:
    """How an agent solves and codes its messages (sent once, at set-up).

    Attributes:
        noise_floor: lower bound of the noise variance (standardised units).
        solver: ``closed_form`` or ``cvxpy``.
        inner_iterations: closed-form alternations per block.
        dsca: DSCA options of a stand-alone solve; ``local_iterations`` replaces
            ``max_iterations`` inside ADMM rounds.
        local_iterations: DSCA iterations per ADMM round (warm-started).
        bits, delta: message quantisation (see :class:`DeltaCoder`); both ``None``: float64.
        seed: base seed of the quantisation noise.
        state_dir: folder on the agent's node where it keeps its round state (for resuming);
            ``None``: kept in memory only.
        device: where the shard's dense work runs (``cpu``, ``cuda``).
        run: the run's id, kept in the state file: a restore takes up only its own run's state
            (``None``: any, as before run ids).
    """

    noise_floor: float
    solver: str = LearnConfig.solver
    inner_iterations: int = LearnConfig.inner_iterations
    dsca: DSCAOptions = field(default_factory=DSCAOptions)
    local_iterations: int = ConsensusConfig.local_iterations
    bits: int | None = None
    delta: float | None = None
    seed: int = 0
    state_dir: str | None = None
    device: str = "cpu"
    run: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "noise_floor": self.noise_floor,
            "solver": self.solver,
            "inner_iterations": self.inner_iterations,
            "dsca": asdict(self.dsca),  # by name: a new option cannot be left out
            "local_iterations": self.local_iterations,
            "bits": self.bits,
            "delta": self.delta,
            "seed": self.seed,
            "state_dir": self.state_dir,
            "device": self.device,
            "run": self.run,
        }

    @classmethod
    def from_wire(cls, fields: dict[str, Any]) -> AgentSettings:
        return cls(**{**fields, "dsca": DSCAOptions(**fields["dsca"])})


class AgentNotReadyError(DistGPError, RuntimeError):
    """An agent was asked to solve before ``setup`` (for instance after a restart)."""


class Agent:
    """One data holder.

    Args:
        agent_id: index of the agent (0..N-1).
        shard: :class:`ShardArrays` or :class:`ShardFile`; a file is read on first use, in the
            agent's own process.
    """

    def __init__(self, agent_id: int, shard: ShardArrays | ShardFile) -> None:
        self.agent_id = int(agent_id)
        self._shard = shard
        self._data: tuple[np.ndarray, np.ndarray, list[str]] | None = None
        self._objective: LocalObjective | None = None
        self._settings: AgentSettings | None = None
        self._reset_round_state()

    def _reset_round_state(self) -> None:
        self._last_round = 0
        self._reply: RoundReply | None = None
        self._x: np.ndarray | None = None
        self._u: np.ndarray | None = None
        self._rho: np.ndarray | None = None
        self._penalty: Penalty | None = None
        self._saved: dict[str, np.ndarray] = {}  # the last round state written to the state file
        self._z_hat: np.ndarray | None = None
        self._v_hat: np.ndarray | None = None

    # --- transport -----------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes:
        """Decode a call ``[method, args]``, run it inside the agent's thread plan, encode the
        answer.

        The plan (:func:`~distgp.threads.owned_threads` for the shard size and the ``threads``
        setting) covers every call, also those that factorise outside DSCA and prediction
        (``evaluate``, the objective at ``z`` of an ADMM round, set-up): with the BLAS pools' own
        thread count the woken OpenBLAS threads of a small shard spin for 0.1-0.3 CPU seconds
        after each call (``distgp fit`` of a 100-point series: 0.7 of its 2.1 CPU seconds).
        Bad input or a setting the shard cannot support (an unreadable shard, a shard too
        small) comes back as ``{"error": text}`` so that the driver can report it in one line;
        other exceptions propagate.
        """
        method, args = decode(message)
        if method not in _METHODS:
            raise DistGPError(f"agent {self.agent_id}: unknown call {method!r}")
        size = self._objective.n if self._objective is not None else 0
        threads = self._settings.dsca.threads if self._settings is not None else None
        try:
            with owned_threads(size, threads):
                return encode(getattr(self, method)(*args))
        except (InputDataError, ConfigError) as exc:
            return encode({"error": str(exc)})

    # --- set-up --------------------------------------------------------------------------------

    def _shard_data(self) -> ShardData:
        if self._data is None:
            self._data = self._shard.load()
        return self._data

    def summary(
        self,
        min_points: int,
        columns: list[str] | None = None,
        time_units: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Aggregate statistics of the shard (:class:`ShardSummary`), its column names and
        whether it is a time series (one input, a series once sorted: the outer choice
        validates a series by rolling origin); refused below ``min_points`` points.

        ``columns``: the input columns in the order the run uses (another shard's), when this
        shard holds the same ones in another order; ``time_units``: the units the run counts
        its date columns in (the finest of the shards'), where this shard's spacing gave
        another. The agent keeps its inputs so from now on."""
        data = self._shard_data()
        X, y, names, units = data.X, data.y, data.names, dict(data.time_units)
        if columns is not None and list(columns) != names:
            order = [names.index(c) for c in columns]  # the driver checked they are the same
            X, names = X[:, order], list(columns)
        for column, unit in (time_units or {}).items():
            if units.get(column) not in (None, unit):  # the same dates in the run's unit
                p = names.index(column)
                X = X.copy()
                X[:, p] = calendar.to_numbers(calendar.to_dates(X[:, p], units[column]), unit)
                units[column] = unit
        if (names, units) != (data.names, data.time_units):
            self._data = ShardData(X, y, names, data.target, units, data.utc_inputs)
            data = self._data
        if len(y) < min_points:
            raise InputDataError(
                f"the shard holds {len(y)} point(s), below the minimum of "
                f"{min_points} for anything an agent sends about its data; merge it with "
                "another shard or lower data.min_shard_size (--min-shard-size)"
            )
        series = is_series(np.sort(X, axis=0))
        return {
            **ShardSummary.of(X, y).to_wire(),
            "columns": names,
            "target": data.target,
            "time_units": data.time_units,
            "utc_inputs": data.utc_inputs,
            "series": series,
            "digest": array_digest(X, y),  # one-way: a model checks its shards did not change
        }

    def setup(self, scaler: dict, grid: dict, settings: dict, shard: dict | None = None) -> int:
        """Build the shard's sub-kernel bank once; return the shard size.

        ``shard``: for an agent rebuilt during a run, how the run holds its shard (``columns``
        and ``time_units``, as :meth:`summary` takes them) and the ``digest`` it sent at the
        start: a shard file that changed since is refused."""
        if shard is not None:
            now = self.summary(0, shard["columns"], shard["time_units"])["digest"]
            if now != shard["digest"]:
                raise InputDataError(
                    f"the shard of agent {self.agent_id} changed since the run started (its "
                    "SHA-256 differs from the one it sent then); restore the file, or start a "
                    "new run to learn from the new data"
                )
        data = self._shard_data()
        X, y = data.X, data.y
        scaler_ = Scaler.from_dict(scaler)
        settings_ = AgentSettings.from_wire(settings)
        bank = bank_from_recipe(scaler_.x(X), grid, device=settings_.device)
        self._objective = LocalObjective(bank, scaler_.y(y), settings_.noise_floor)
        self._settings = settings_
        self._coder = DeltaCoder(bits=settings_.bits, delta=settings_.delta)
        self._solver = make_solver(settings_.solver, settings_.inner_iterations)
        self._reset_round_state()
        return len(y)

    def _require(self) -> tuple[LocalObjective, AgentSettings]:
        if self._objective is None or self._settings is None:
            raise AgentNotReadyError(f"agent {self.agent_id} has not been set up")
        return self._objective, self._settings

    # --- solving -------------------------------------------------------------------------------

    def solve(self, theta0: np.ndarray, max_iterations: int, state: list | None = None) -> list:
        """Stand-alone DSCA from ``theta0``, continuing the solve whose call returned ``state``
        (``None``: a new solve): ``[theta, loss, iterations, converged, history, state]``."""
        objective, settings = self._require()
        options = replace(settings.dsca, max_iterations=int(max_iterations))
        carried = None if state is None else SolveState.from_wire(state)
        result = dsca(objective, np.asarray(theta0, float), self._solver, options, state=carried)
        return [
            result.theta,
            result.loss,
            result.iterations,
            result.converged,
            result.history,
            result.state.to_wire(),
        ]

    def round(self, request: list) -> list:
        """One ADMM round (see :mod:`distgp.consensus.admm`); asking again for the same round
        returns the same reply, so retried calls are safe."""
        objective, settings = self._require()
        req = RoundRequest.from_wire(request)
        if self._reply is not None and req.round == self._last_round:
            return self._reply.to_wire()
        D = objective.dim
        if req.resync or self._z_hat is None:
            self._reset_round_state()
            self._z_hat, self._v_hat, self._u = np.zeros(D), np.zeros(D), np.zeros(D)
        self._z_hat = DeltaCoder.apply(req.z, self._z_hat)
        z = np.maximum(self._z_hat, objective.lower)
        residual, x_norm2 = None, 0.0
        if self._x is not None:
            self._u = self._u + self._x - z
            residual = float(np.sum((self._x - z) ** 2))
            x_norm2 = float(self._x @ self._x)
        if req.rho is not None:
            if isinstance(req.rho, Penalty):
                self._penalty = req.rho
            else:  # a new balancing scale of the penalty already held
                self._penalty = replace(self._penalty, scale=float(req.rho))
            rho = self._penalty.values()
            if self._rho is not None:
                self._u = self._u * self._rho / rho  # the unscaled dual rho u stays fixed
            self._rho = rho
        loss_at_z = float(objective.value(z))
        if self._rho is None:
            raise AgentNotReadyError(f"agent {self.agent_id} has no penalty yet; resync it")
        penalty = ProximalTerm(self._rho * self._u, self._rho, z)
        options = replace(settings.dsca, max_iterations=settings.local_iterations)
        theta0 = self._x if self._x is not None else z
        result = dsca(objective, theta0, self._solver, options, penalty=penalty)
        self._x = result.theta.copy()
        rng = np.random.default_rng([settings.seed, self.agent_id, req.round])
        message = self._coder.encode(self._x + self._u, self._v_hat, rng)
        self._v_hat = DeltaCoder.apply(message, self._v_hat)
        self._last_round = req.round
        self._reply = RoundReply(
            round=req.round,
            v=message,
            residual=residual,
            x_norm2=x_norm2,
            dual_norm2=float(np.sum((self._rho * self._u) ** 2)),
            loss_at_z=loss_at_z,
            curvature=objective.curvature(z) if req.curvature else None,
        )
        self._save_state()
        return self._reply.to_wire()

    # --- own checkpoint ------------------------------------------------------------------------

    _STATE = ("_x", "_u", "_rho", "_z_hat", "_v_hat", "_last_round")  # and the penalty

    def _state_file(self) -> Path | None:
        folder = self._settings.state_dir if self._settings is not None else None
        return None if folder is None else Path(folder) / f"agent-{self.agent_id}.npz"

    def _save_state(self) -> None:
        """Keep this and the previous round's state on the agent's own disk (if configured)."""
        path = self._state_file()
        if path is None:
            return
        now = {"now" + name: np.asarray(getattr(self, name)) for name in self._STATE}
        p = self._penalty
        now["now_penalty_codes"] = p.codes
        now["now_penalty"] = np.array([p.low, p.high, p.scale])
        if self._settings.run is not None:
            now["now_run"] = np.asarray(self._settings.run)
        # the previous round's state is the one kept in memory, not read back from the file
        arrays = {"before" + k[3:]: v for k, v in self._saved.items()} | now
        self._saved = now
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npz(path, arrays)
        except OSError:  # no writable state folder on this node: the state stays in memory
            pass

    def restore(self, last_round: int) -> bool:
        """After a restart: take up the state this agent kept for ``last_round``, if it has it
        (else it starts afresh with the next round's resync). Returns whether it did."""
        self._require()
        self._reset_round_state()
        path = self._state_file()
        if path is None or not path.is_file():
            return False
        saved = read_npz(path)
        run = self._settings.run
        if run is not None and str(saved.get("now_run", "")) != run:
            return False  # another run's state (the same --out on this node)
        for prefix in ("now", "before"):
            key = f"{prefix}_last_round"
            if key in saved and int(saved[key]) == int(last_round):
                for name in self._STATE:
                    value = saved[prefix + name]
                    setattr(self, name, value.copy() if value.ndim else value.item())
                self._last_round = int(self._last_round)
                low, high, scale = (float(v) for v in saved[prefix + "_penalty"])
                self._penalty = Penalty(saved[prefix + "_penalty_codes"], low, high, scale)
                self._saved = {
                    "now" + k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)
                }
                return True
        return False

    def forget(self) -> None:
        """At the end of a run: delete this agent's state file (and the folder, if that leaves
        it empty) from its node's disk."""
        path = self._state_file()
        if path is None:
            return
        remove_written(path)
        self._saved = {}
        with contextlib.suppress(OSError):  # it holds other agents' or the user's files
            path.parent.rmdir()

    # --- evaluation and prediction -------------------------------------------------------------

    def _held(self, theta: np.ndarray | None) -> np.ndarray:
        """``theta``, or (``None``) the consensus this agent holds from the last round."""
        objective, _ = self._require()
        if theta is None:
            if self._z_hat is None:
                raise AgentNotReadyError(f"agent {self.agent_id} holds no consensus yet")
            theta = self._z_hat
        return np.maximum(np.asarray(theta, float), objective.lower)

    def evaluate(self, theta: np.ndarray | None, gradient: bool = False) -> float | list:
        """Local objective ``l_j(theta)`` (standardised units); ``None``: at the held consensus,
        so the final weights need not travel again. ``gradient``: also ``dl_j/dtheta`` (``D``,
        float32) and its positive part ``tr(C_j^-1 K_m)`` (8-bit log codes), from which the
        driver tells how near the result is to a stationary point of ``sum_j l_j``."""
        objective, _ = self._require()
        theta = self._held(theta)
        if not gradient:
            return float(objective.value(theta))
        fac = objective.factorize(theta)
        scale, q = objective.linearization(fac, np.arange(objective.dim))
        gradient = np.asarray(scale - q, np.float32)
        lost = ~(scale > 0)  # traces lost to rounding (a numerically singular covariance):
        if lost.any():  # scaled by the smallest resolved one, not by a log code of 1e-300
            scale = np.where(lost, scale[~lost].min(initial=1.0), scale)
        return [float(fac.value), gradient, list(log_codes(scale))]

    def predict(
        self, Z: np.ndarray, weights: np.ndarray | None = None, noise: float | None = None
    ) -> list:
        """This expert's latent posterior at standardised inputs ``Z`` (``n_* x P``) under the
        given kernel (``None``: the held consensus): ``[mean (n_*), variance (n_*)]``,
        standardised units, noise excluded."""
        objective, settings = self._require()
        if weights is None:
            held = self._held(None)
            weights, noise = held[:-1], float(held[-1])
        bank, ops, y = objective.bank, objective.bank.ops, objective.y
        weights = np.asarray(weights, float)
        Z = np.asarray(Z, float)
        with owned_threads(bank.n, settings.dsca.threads) as plan:
            bank.workers = plan.workers
            C = bank.gram(weights, lower=True)  # the factorisation reads no more
            ops.add_diagonal(C, float(noise))
            L, _ = robust_cholesky(C, ops)
            alpha = ops.cho_solve(L, ops.asarray(y))
            Ks = bank.cross(Z, weights)
            latent = ops.numpy((ops.solve_lower(L, Ks.T) ** 2).sum(0))
            mean = ops.numpy(Ks @ alpha)
        prior = prior_variance(bank, Z, weights)
        variance = np.maximum(prior - latent, 1e-12 * prior)
        return [mean, variance]

    def score(
        self,
        config: str,
        candidates: list[dict[str, Any]],
        rule: dict[str, Any],
        shard: int,
        bars: list[list[float] | None] | None = None,
    ) -> list[list]:
        """Score outer settings on this shard alone (:mod:`distgp.tune_shards`; ``shard``: its
        index among the run's shards; ``bars``: per candidate, the folds to race it against,
        or ``None``): per candidate ``[per-fold held-out MSEs (raw units), per-fold held-out
        points, seconds, per-fold sums of squared z-scores]``."""
        from distgp.tune_shards import score_shard

        data = self._shard_data()
        return score_shard(data.X, data.y, shard, config, candidates, rule, bars)

    def memory(self) -> list:
        """Peak resident memory of this agent's process (MiB) and the bytes its shard and cached
        sub-kernel envelopes and features hold (0 before set-up)."""
        from distgp.memory import peak_rss_mb

        held = 0
        if self._objective is not None and self._data is not None:
            held = self._data[0].nbytes + self._data[1].nbytes + self._objective.bank.nbytes
        return [peak_rss_mb(), int(held)]


_METHODS = (
    "summary",
    "setup",
    "solve",
    "round",
    "restore",
    "evaluate",
    "predict",
    "score",
    "memory",
    "forget",
)
