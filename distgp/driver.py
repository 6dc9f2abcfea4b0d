"""One kernel-learning run: shards -> agents -> DSCA or consensus ADMM -> a fitted model.

Used by :class:`~distgp.GSMPRegressor` and ``distgp fit``. The driver owns the loop; learning
happens in the agents (``agents/``), the consensus maths in ``consensus/`` and the transport in a
backend, which moves encoded bytes and counts them. With one agent the run is a centralised DSCA
solve; with more, ADMM rounds. Shards are either arrays the driver deals out (the one-file
simulation) or files each agent reads where it runs (the driver never opens them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distgp.agents.address import check_ray_address
from distgp.agents.agent import MISSING_FIX, AgentSettings, ShardArrays, ShardFile
from distgp.agents.backends import AgentFailure, Backend, Shard, make_backend
from distgp.agents.summaries import answered, gather_summaries, shard_view
from distgp.checkpoint import Checkpoint, config_json, restoring
from distgp.config import FitConfig
from distgp.consensus.admm import ADMMCoordinator, ADMMOptions, RoundReply, absolute_tolerance
from distgp.consensus.quantizer import DeltaCoder
from distgp.data import (
    Scaler,
    ShardSummary,
    agent_sites,
    array_digest,
    refuse_flat_data,
    shard_indices,
    varying_columns,
)
from distgp.exceptions import BackendError, ConfigError, InputDataError, ModelFileError
from distgp.experts import combine_experts
from distgp.gp import GSMPModel
from distgp.kernels.grid import grid_from_recipe
from distgp.kernels.trend import TrendBasis, recipe_prior_variance
from distgp.learn.dsca import DSCAOptions
from distgp.seasonality import series_step
from distgp.transforms import OutputTransform, parse_transform

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
        bits_sent: 8 x every byte that crossed between driver and agents, both ways.
        bits_float64: the same messages with float64 fields in the same sparse coding.
        bits_float64_dense: the same messages with dense float64 vectors.
        seconds: wall time of learning (agents' set-up to the final consensus).
        cpu_seconds: this process's CPU time over the same span (the agents' own with the
            inline backend, whose agents run in it; the driver's alone with Ray).
        objective: final negative log marginal likelihood summed over agents, raw units.
        history: per-round records (ADMM) or per-iteration objectives (single agent).
        events: faults and recoveries, one line each.
        nodes: node id of each agent.
        shard_sizes: points per agent.
        missing: agents that left the run for good (their data was lost), one line each.
        stop: the stopping rule at the last round: residuals and unwidened tolerances.
        prediction: ``(mean, std)`` at the ``X_test`` given to :func:`fit`, raw units of the
            output transform's ``g(y)`` (of ``y`` without one); :meth:`forecast` is on ``y``'s
            scale.
        parts: the agents' shards (arrays the driver dealt, or file specs), for private
            prediction later (:func:`predict_with_agents`).
        n_train: training points of the agents that finished the run.
    """

    model: GSMPModel
    theta: np.ndarray
    rounds: int
    iterations: int
    converged: bool
    bits_sent: int
    bits_float64: int
    bits_float64_dense: int
    seconds: float
    objective: float
    agents: int
    cpu_seconds: float = 0.0
    history: list[Any] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    shard_sizes: list[int] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stop: dict[str, float] = field(default_factory=dict)
    prediction: tuple[np.ndarray, np.ndarray] | None = None
    parts: list = field(default_factory=list)
    n_train: int = 0

    def forecast(self) -> np.ndarray:
        """Predictive mean of ``y`` at ``X_test`` (``prediction`` through the transform)."""
        return self.model.transform.moments(*self.prediction)[0]


Reporter = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class ShardColumns:
    """What the agents' shard files hold, as the agents read them: input ``columns`` in the
    run's order, the output column (``None`` for .npz shards) and the calendar units of input
    columns that held dates."""

    columns: list[str]
    target: str | None
    time_units: dict[str, str]


TestInputs = Callable[[ShardColumns], np.ndarray]
"""Raw test inputs read to match the agents' shard files (their columns known only then)."""


def grid_recipe(config: FitConfig, summary: ShardSummary) -> dict[str, Any]:
    """What agents need to build the spectral grid themselves (from merged statistics only)."""
    k = config.kernel
    return {
        "kind": k.grid,
        "n": summary.n,
        "distinct": summary.distinct,  # the frequency bound's count of input rows
        "dims": summary.dims,
        "components": k.components,
        "levels": k.levels,
        "frequency_scale": k.frequency_scale,
        "slow_components": k.slow_components,
        # frequencies along a constant column would only repeat the pure envelopes
        "constant_dims": [int(p) for p in np.flatnonzero(~varying_columns(summary))],
    }


WARM_FLOOR = 0.1
"""Fraction of the cold start's weights below which a warm start's weights are raised
(``GSMPRegressor(warm_start=True)``, ``distgp optimize``'s refits). From exact zeros DSCA kept
every pruned component at 0: refitted to data whose structure lay along another input, a warm
start ended at objective 83.0 (R^2 0.00004) where a cold fit reached 45.2 (R^2 0.9998); with the
floor it reaches the cold fit's 45.2."""


def initial_theta(components: int) -> np.ndarray:
    """Equal weights summing to ``1 - INITIAL_NOISE`` (``var(y) = 1``), then the noise."""
    return np.r_[np.full(components, (1.0 - INITIAL_NOISE) / components), INITIAL_NOISE]


def agent_settings(config: FitConfig, state_dir: str | None = None) -> AgentSettings:
    c, lr = config.consensus, config.learn
    quantized = c.agents > 1 and c.quantize
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
            threads=lr.threads,
            min_gain=lr.min_gain,
        ),
        local_iterations=c.local_iterations,
        bits=c.bits if quantized and c.delta is None else None,
        delta=c.delta if quantized else None,
        seed=config.seed,
        state_dir=state_dir,
        device=lr.device,
    )


def make_run_backend(config: FitConfig) -> Backend:
    """The backend a run's settings ask for (the caller starts and shuts it down)."""
    b = config.backend
    return make_backend(
        config.backend_name,
        b.address,
        b.cpus_per_agent,
        b.round_timeout,
        gpus_per_agent=b.gpus_per_agent,
        threads=config.learn.threads,
    )


def fit(
    X: np.ndarray | None,
    y: np.ndarray | None,
    config: FitConfig,
    groups: np.ndarray | None = None,
    report: Reporter | None = None,
    backend: Backend | None = None,
    initial: np.ndarray | None = None,
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
    shards: list[ShardFile] | None = None,
    X_test: np.ndarray | TestInputs | None = None,
) -> FitResult:
    """Learn GSMP weights from validated raw data ``X`` (``n x P``) and ``y`` (``n``), or from
    shard files that the agents read themselves (``shards``; then ``X`` and ``y`` are None).

    Args:
        groups: labels for ``shard: column:NAME``.
        report: progress callback ``report(event, fields)``.
        backend: an already built backend (default: from ``config.backend``); the caller keeps
            it (and shuts it down), so it can serve several fits.
        initial: warm start (``M + 1`` parameters of an earlier fit with the same grid size);
            ignored when its size does not match the grid.
        checkpoint: where to save the driver's state after every round (or DSCA chunk); the
            agents keep their own round state beside it (``agents/`` in the same folder).
        resume: continue from ``checkpoint`` instead of starting afresh.
        shards: one shard file per agent (``config.consensus.agents`` must match).
        X_test: raw inputs to predict at before the agents leave (``FitResult.prediction``):
            privately (rBCM over the agents) or pooled, as ``config.predict`` says; with
            ``shards``, a function of the shards' :class:`ShardColumns` that reads them (called
            before the fit, so a test file that does not match fails early).
    """
    config.validate()
    saved = None
    if resume:
        if checkpoint is None:
            raise ModelFileError("resuming needs a checkpoint")
        saved = checkpoint.load()
        if _as_validated(saved["config_json"]) != json.loads(config_json(config)):
            raise ModelFileError("the checkpoint was written with other settings; start a new run")
    report = report or (lambda event, fields: None)
    c = config.consensus
    pooled = prediction_mode(config) == "pooled"
    transform = OutputTransform()
    y_raw, indices = y, []  # the outputs as given, and each agent's rows (none with shard files)
    step = 0.0  # the series' step, for a season (none with shard files)
    if shards is not None:
        check_shard_settings(config, shards, backend)
        parts: list[Shard] = list(shards)
    else:
        step = series_step(X) if config.kernel.season else 0.0
        # a trend the inputs cannot hold
        TrendBasis.named(config.kernel.trend, X.shape[1], config.kernel.season, step)
        if config.kernel.transform != "none":
            transform = OutputTransform.fitted(*parse_transform(config.kernel.transform), y)
            y_raw, y = y, transform.forward(y)
        indices = preflight(config, len(y), groups, check_address=backend is None)
        parts = [ShardArrays(X[idx], y[idx]) for idx in indices]
    digest = None if shards is not None else data_digest(parts)
    stored = None if saved is None else saved.get("data_digest")
    if (
        stored is not None
        and digest != str(stored)
        and not _legacy_digest(stored, X, y_raw, indices, transform)
    ):
        raise ModelFileError(
            "the training data changed since the checkpoint was written; start a new run "
            "(without --resume)"
        )
    owned = backend is None
    backend = backend or make_run_backend(config)
    with backend if owned else contextlib.nullcontext(backend):
        report("start", {"agents": c.agents, "backend": backend.name})
        backend.traffic = type(backend.traffic)()
        backend.start(parts)
        start, cpu_start = time.perf_counter(), time.process_time()
        replies, summary = gather_summaries(backend, config.data.min_shard_size)
        digests = None if shards is None else [str(replies[j]["digest"]) for j in sorted(replies)]
        unchecked = None  # a note when a resumed checkpoint could not be checked
        if saved is not None and shards is not None:
            unchecked = check_resumed_shards(saved, digests, shards)
        twins = None if shards is None else same_data(replies, [s.path for s in shards])
        if twins is not None:
            report("same data", {"files": twins})
        if callable(X_test):
            first = replies[min(replies)]
            X_test = X_test(
                ShardColumns(list(first["columns"]), first.get("target"), first["time_units"])
            )
        # whether the data vary is a question about every shard together (one site's constant
        # outputs or inputs are fine beside others'): the agents check only their own files
        together = "" if shards is None else " of all shard files together"
        refuse_flat_data(
            [ShardSummary.from_wire(replies[j]) for j in sorted(replies)],
            f"training inputs X{together}",
            transform.outputs_named + together,
        )
        scaler = Scaler.from_summary(
            summary,
            standardize_inputs=config.kernel.grid == "data",
            outputs=transform.outputs_named + together,
        )
        scale = float(scaler.x_scale[0])
        season = config.kernel.season / scale
        trend = TrendBasis.named(config.kernel.trend, summary.dims, season, step / scale)
        recipe = {
            **grid_recipe(config, summary),
            "trend_degree": trend.degree,
            "trend_walks": trend.walks,
            "trend_season": trend.season,
            "trend_season_step": trend.season_step,
        }
        grid = grid_from_recipe(recipe)
        components = grid.components + trend.size
        state_dir = checkpoint.agent_state_dir if checkpoint is not None else None
        run_id = _run_id(saved)
        settings = dataclasses.replace(agent_settings(config, state_dir), run=run_id)
        setup_args = (scaler.to_dict(), recipe, settings.to_wire())
        sizes = answered(backend.broadcast("setup", *setup_args))
        rebuild_args = {j: (*setup_args, shard_view(r)) for j, r in replies.items()}
        shard_sizes = [int(sizes[j]) for j in range(c.agents)]
        report("setup", {"components": components, "dims": grid.dims, "n": summary.n})
        theta0 = initial_theta(components)
        if initial is not None and np.shape(initial) == theta0.shape:
            # a warm start keeps every weight at least WARM_FLOOR of the cold start's: a
            # component the earlier data pruned to 0 can still grow for the new data
            theta0 = np.maximum(
                np.asarray(initial, float),
                np.r_[WARM_FLOOR * theta0[:components], settings.noise_floor],
            )
        saver = _Saver(checkpoint, config, (start, cpu_start), saved, digest, digests, run_id)
        if c.agents == 1:
            run = _single_agent(backend, theta0, config, report, saver, saved)
        else:
            rho = float(np.mean(shard_sizes))  # curvature scale of l_j
            run = _admm(backend, theta0, config, settings, rebuild_args, rho, report, saver, saved)
        if unchecked is not None:
            run["events"].append(unchecked)
        theta = run["theta"]
        members = run["members"]
        held = run["held"]
        several = c.agents > 1
        losses = _evaluate(backend, theta, rebuild_args, members, run["events"], held, several)
        if several:  # how near the consensus is to a stationary point of sum_j l_j
            lower = np.r_[np.zeros(len(theta) - 1), settings.noise_floor]
            losses, kkt = summed_stationarity(losses, theta, lower, config.learn.prune_tol)
            run["stop"]["stationarity"] = kkt
            abs_part = absolute_tolerance(len(members), len(theta), config.consensus.abs_tol)
            if run["converged"] and unsettled_consensus(kkt, run["stop"]["primal_tol"], abs_part):
                run["stop"]["far_from_stationary"] = True
                run["events"].append(unsettled_note(kkt, config.learn.kkt_tol))
        seconds, cpu_seconds = saver.elapsed(), saver.elapsed_cpu()
        prediction = None
        if X_test is not None and len(X_test) and not pooled:
            prediction = _predict_private(backend, scaler, theta, X_test, members, recipe, held)
        nodes = backend.nodes()
        traffic = backend.traffic
        if state_dir is not None:  # the run is done: its agents delete their round state
            backend.call("forget", {j: () for j in members})
    n_total = sum(shard_sizes[j] for j in members)
    nlml = 0.5 * sum(losses.values()) + 0.5 * n_total * math.log(2 * math.pi)
    objective = nlml + n_total * math.log(scaler.y_scale)
    if not transform.identity:  # the likelihood of y, not of g(y): add -sum log g'(y)
        objective -= float(transform.log_derivative(y_raw).sum())
    model = GSMPModel(
        grid=grid,
        scaler=scaler,
        weights=theta[:-1].copy(),
        noise_variance=float(theta[-1]),
        X_train=scaler.x(X) if pooled else None,
        y_train=scaler.y(y) if pooled else None,
        recipe=recipe,
        run_config=config_json(located(config)),
        trend=trend if trend.size else None,
        transform=transform,
        data_digest=digest,
        device=prediction_device(config.learn.device),
        threads=config.learn.threads,
    )
    first = replies[min(replies)]
    if shards is not None and first.get("target") is not None:  # CSV shards: names, as a CSV's
        model.input_names = tuple(first["columns"])
        model.target_name = str(first["target"])
        model.time_units = dict(first["time_units"])
        offsets = {c for r in replies.values() for c in r.get("utc_inputs", ())}
        model.utc_inputs = tuple(c for c in model.input_names if c in offsets)
    if shards is not None:  # what a private prediction checks the agents' files against
        model.data_digest = shard_files_digest(replies)
        model.shard_digests = digests
    if len(members) < c.agents:  # a private model's experts: the agents that stayed
        model.members = list(members)
    if X_test is not None and len(X_test) and pooled:
        prediction = model.predict_latent(X_test, return_std=True)
    before = saved["traffic"] if saved is not None and "traffic" in saved else np.zeros(3)
    return FitResult(
        model=model,
        theta=theta,
        rounds=run["rounds"],
        iterations=run["iterations"],
        converged=run["converged"],
        bits_sent=8 * (traffic.bytes + int(before[0])),
        bits_float64=8 * (traffic.float64_bytes + int(before[1])),
        bits_float64_dense=8 * (traffic.dense_float64_bytes + int(before[2])),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        objective=float(objective),
        agents=c.agents,
        history=run["history"],
        events=run["events"],
        nodes=nodes,
        shard_sizes=shard_sizes,
        missing=run["missing"],
        stop=run["stop"],
        prediction=prediction,
        parts=parts,
        n_train=n_total,
    )


def _run_id(saved) -> str:
    """The id of a run (kept in its agents' state files, so that a resume takes up only its
    own): a resumed run's from its checkpoint, else a new one."""
    if saved is not None and "run_id" in saved:
        return str(saved["run_id"])
    return uuid.uuid4().hex[:16]


def check_resumed_shards(saved: dict, digests: list[str], shards: list[ShardFile]) -> str | None:
    """Refuse to resume a run on shard files whose agents now send other digests than the
    checkpoint recorded: the saved consensus, duals and penalty were learned from the data the
    files held then. A checkpoint of an earlier version records none: then the event line
    that says so (the files could not be checked), else ``None``."""
    stored = saved.get("shard_digests_json")
    if stored is None:
        return (
            "the checkpoint (of an earlier distgp version) records no digests of the shard "
            "files, so the resume could not check that they are unchanged"
        )
    if len(stored) != len(digests):  # the settings (and so the file count) are checked before
        raise ModelFileError(
            f"the checkpoint records {len(stored)} shard file(s) but the run has "
            f"{len(digests)}; start a new run (without --resume)"
        )
    changed = [
        f"{shards[j].path} (agent {j})"
        for j, (was, now) in enumerate(zip(stored, digests, strict=True))
        if str(was) != now
    ]
    if changed:
        raise ModelFileError(
            "shard file(s) changed since the checkpoint was written (their SHA-256 differs "
            f"from the one their agents sent then): {', '.join(changed)}; restore the file(s), "
            "or start a new run (without --resume) to learn from the new data"
        )
    return None


def _legacy_digest(stored, X, y_raw, indices, transform: OutputTransform) -> bool:
    """Whether a checkpoint's data digest is that of an earlier version, which transformed
    ``y`` and not ``y / c``: the same data, and the same model once standardised."""
    if transform.identity:
        return False
    unscaled = dataclasses.replace(transform, scale=1.0).forward(y_raw)
    legacy = [ShardArrays(X[idx], unscaled[idx]) for idx in indices]
    return data_digest(legacy) == str(stored)


def _as_validated(stored: dict) -> Any:
    """A checkpoint's recorded settings as :meth:`FitConfig.validate` leaves them (an earlier
    version recorded ``bits`` beside ``delta`` or float64 messages), for comparison."""
    from distgp.config import build

    try:
        config = build(FitConfig, dict(stored), "")
        config.validate()
    except ConfigError:
        return stored
    return json.loads(config_json(config))


def located(config: FitConfig) -> FitConfig:
    """``config`` with its data, test and shard files as absolute paths: a private model
    rebuilds its agents from them wherever ``distgp predict`` runs. A shard path with ``$VARS``
    or ``~`` stays as written (it expands on its agent's node), as does one not found from here
    (a file only another node has)."""
    d = config.data

    def absolute(value: str | None) -> str | None:
        if value and not value.startswith(("builtin:", "<")) and os.path.exists(value):
            return os.path.abspath(value)
        return value

    paths: dict[str, Any] = {key: absolute(getattr(d, key)) for key in ("source", "test")}
    if d.shards is not None:
        paths["shards"] = [s if "$" in s or s.startswith("~") else absolute(s) for s in d.shards]
    return dataclasses.replace(config, data=dataclasses.replace(d, **paths))


def predict_with_agents(
    model: GSMPModel,
    X: np.ndarray,
    backend: Backend | None = None,
    parts: list[Shard] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Private prediction after the fit: rebuild the fit's agents from its shards (``parts``, or
    from the fit's settings: the same shard files, or the same one-file simulation), set them up
    with the model's kernel and combine their experts at raw inputs ``X``. Raw-unit mean and std
    (noise included). Shard files are read by agents on the fit's backend; a one-file simulation
    (whose data the driver holds anyway) runs its agents in this process."""
    from distgp.config import build
    from distgp.data import load_dataset

    if model.recipe is None or not model.run_config:
        raise ModelFileError("this private model does not record its agents; refit it")
    config = build(FitConfig, json.loads(model.run_config), "")
    if parts is None and config.data.shards is not None:
        parts = list(shard_files(config))
    elif parts is None:
        if config.data.source.startswith("<"):
            raise ModelFileError(
                "this private model was fitted from arrays in memory (several agents); its "
                "agents cannot be rebuilt from the file: predict with the fitted estimator, or "
                "fit with one agent (agents=1) for a model that predicts on its own"
            )
        d = config.data
        column = d.shard.split(":", 1)[1] if d.shard.startswith("column:") else None
        if not d.source.startswith("builtin:") and not os.path.exists(d.source):
            raise ModelFileError(
                f"this private model's agents are rebuilt from its training file {d.source}, "
                "which does not exist here: restore it, or refit with --predict pooled"
            )
        data = load_dataset(  # as the fit read it: whole when a --test file was the test split
            d.source,
            target=d.target,
            test_fraction=0.0 if d.test is not None else d.test_fraction,
            shard_column=column,
            seed=config.seed,
        )
        indices = preflight(config, len(data.y_train), data.groups_train)
        y = model.transform.forward(data.y_train)  # the agents model g(y), as in the fit
        parts = [ShardArrays(data.X_train[i], y[i]) for i in indices]
        if model.data_digest is not None and data_digest(parts) != model.data_digest:
            raise ModelFileError(
                f"{d.source} does not give the data this model's agents were fitted on (the "
                "file changed, or the fit was given arrays): predict with the fitted estimator, "
                "or refit with predict: pooled"
            )
    theta = np.r_[model.weights, model.noise_variance]
    owned = backend is None
    if backend is None:
        backend = _prediction_backend(config, parts)
    members = model.members if model.members is not None else list(range(len(parts)))
    if model.shard_digests is not None:  # each file checked on its own: the members' suffice
        parts = [parts[j] for j in members]
    with backend if owned else contextlib.nullcontext(backend):
        backend.start(parts)
        try:
            summaries, _ = gather_summaries(backend, config.data.min_shard_size)
        except InputDataError as exc:
            raise _missing_at_prediction(exc) from None
        _check_shard_files(model, summaries, members, parts)
        if model.shard_digests is not None:
            members = list(range(len(parts)))  # the started agents are the members
        settings = agent_settings(config)
        answered(
            backend.broadcast("setup", model.scaler.to_dict(), model.recipe, settings.to_wire())
        )
        return _predict_private(backend, model.scaler, theta, X, members, model.recipe)


PREDICT_ADDRESS_FIX = (
    "start that cluster, or name the one the shard files' nodes are in now with "
    "'distgp predict --address HOST:PORT'"
)


def _prediction_backend(config: FitConfig, parts: list[Shard]) -> Backend:
    """The backend a private model's agents are rebuilt on: the fit's for shard files (its
    address checked first: an unreachable one fails in seconds, not after Ray's minutes of
    retries), this process for a one-file simulation's shards."""
    if not any(isinstance(part, ShardFile) for part in parts):
        return make_backend("inline", threads=config.learn.threads)
    b, name = config.backend, config.backend_name
    if name == "ray":
        check_ray_address(b.address, fix=PREDICT_ADDRESS_FIX)
    return make_backend(
        name,
        b.address,
        b.cpus_per_agent if name == "ray" else None,
        b.round_timeout if name == "ray" else None,
        gpus_per_agent=b.gpus_per_agent if name == "ray" else None,
        threads=config.learn.threads,
    )


def at_address(model: GSMPModel, address: str) -> None:
    """Rebuild a private shard-file model's agents on the Ray cluster at ``address`` instead of
    the fit's (``distgp predict --address``)."""
    config = json.loads(model.run_config) if model.private and model.run_config else None
    if config is None or config.get("data", {}).get("shards") is None:
        raise ConfigError(
            "--address names the Ray cluster that a private model's shard-file agents are "
            "rebuilt on; this model's predictions need none: drop --address"
        )
    config["backend"] = {**config.get("backend", {}), "name": "ray", "address": address}
    model.run_config = json.dumps(config, sort_keys=True)


def _missing_at_prediction(exc: InputDataError) -> InputDataError:
    """A private model's agent that cannot find its shard file: the error with the fixes that
    apply at prediction (the agents read the fit's files again), not the fit's."""
    text = str(exc)
    if not text.endswith(f"no such file; {MISSING_FIX}"):
        return exc
    return ModelFileError(
        text[: -len(MISSING_FIX)]
        + "this private model's agents read the fit's shard files again to predict: restore "
        "the file at that path, or refit on the files there are"
    )


def _check_shard_files(
    model: GSMPModel, summaries: dict[int, dict], members: list[int], parts: list[Shard]
) -> None:
    """Refuse shard files whose digests differ from the fit's: file by file where the model
    records each (its members' files were started, in order), else all together."""
    if model.shard_digests is not None:
        changed = [
            (members[i], getattr(parts[i], "path", "?"))
            for i, r in sorted(summaries.items())
            if r["digest"] != model.shard_digests[members[i]]
        ]
        if changed:
            raise ModelFileError(
                "shard file(s) changed since the fit, so they do not give the data this model's "
                f"agents were fitted on: {', '.join(f'{path} (agent {j})' for j, path in changed)}"
                "; restore them, or refit on them"
            )
    elif (model.data_digest or "").startswith("shards:") and (
        shard_files_digest(summaries) != model.data_digest
    ):  # a model of an earlier version: one digest of all files
        raise ModelFileError(
            "the shard files do not give the data this model's agents were fitted on (a "
            "file changed since the fit); restore them, or refit on them"
        )


def same_data(replies: dict[int, dict], paths: list[str]) -> list[str] | None:
    """The first shard files (of agents ``j``: ``paths[j]``) whose agents sent one digest in
    their summaries ``replies``: the same data under other names; ``None`` when all differ."""
    named: dict[str, list[str]] = {}
    for j in sorted(replies):
        named.setdefault(str(replies[j]["digest"]), []).append(paths[j])
    return next((files for files in named.values() if len(files) > 1), None)


def shard_files(config: FitConfig) -> list[ShardFile]:
    """The :class:`ShardFile` of each agent from the config."""
    places = config.data.placements or [""] * len(config.data.shards)
    return [
        ShardFile(
            path,
            config.data.target,
            tuple((name, 0.001) for name in place.split("+") if name),
        )
        for path, place in zip(config.data.shards, places, strict=True)
    ]


def check_shard_settings(config: FitConfig, shards: list[ShardFile], backend=None) -> None:
    """Refuse what a run on shard files cannot do (the driver never reads them)."""
    if config.kernel.transform != "none":
        raise ConfigError(
            "kernel.transform: output transforms need the training outputs in the driver, "
            "which never reads shard files; set it to none with data.shards",
            setting="kernel.transform",
        )
    if prediction_mode(config) == "pooled":
        raise ConfigError(
            "pooled prediction needs the training data in the driver, which never reads "
            "shard files; use private prediction (the default)"
        )
    if config.kernel.season:
        raise ConfigError(
            "kernel.season: a season needs the series' step, read from the training inputs in "
            "the driver, which never reads shard files; set it to 0 with data.shards",
            setting="kernel.season",
        )
    agents = config.consensus.agents
    if len(shards) != agents:
        raise ConfigError(f"{len(shards)} shard files for {agents} agents; give one each")
    if backend is None and config.backend_name == "ray":
        check_ray_address(config.backend.address)


def data_digest(parts: list[Shard]) -> str:
    """SHA-256 of the simulation's shards (one-way: it reveals no point), so that a private
    model can check that its data source still gives the data its agents were fitted on."""
    return array_digest(*(a for part in parts for a in (part.X, part.y)))


def shard_files_digest(summaries: dict[int, dict]) -> str:
    """The digest of shard files, from the one each agent sends in its summary (the driver
    never reads the files): a private model checks them before it predicts."""
    import hashlib

    digest = hashlib.sha256()
    for j in sorted(summaries):
        digest.update(str(summaries[j]["digest"]).encode())
    return "shards:" + digest.hexdigest()


def prediction_mode(config: FitConfig) -> str:
    """``private`` or ``pooled``: as configured, else private for more than one agent or for
    shard files (whose data the driver never holds)."""
    if config.predict is not None:
        return config.predict
    private = config.consensus.agents > 1 or config.data.shards is not None
    return "private" if private else "pooled"


def prediction_device(device: str) -> str:
    """The device of the driver's prediction: ``device`` if this machine has it, else ``cpu``
    (GPUs reserved by Ray agents may sit on other nodes)."""
    from distgp.exceptions import ConfigError
    from distgp.kernels.compute import check_device

    try:
        return check_device(device)
    except ConfigError:
        return "cpu"


def preflight(
    config: FitConfig, n: int, groups: np.ndarray | None = None, check_address: bool = True
) -> list[np.ndarray]:
    """Checks that need the data size but no agent: sharding, shard sizes and the Ray address.

    Returns:
        The training indices of each agent's shard.
    """
    method = "column" if config.data.shard.startswith("column:") else config.data.shard
    agents, minimum = config.consensus.agents, config.data.min_shard_size

    def too_small(j: int, size: int) -> ConfigError:
        if method == "column":  # sites are dealt to agents round-robin: fewer agents pool them
            return ConfigError(
                f"shard of agent {j} (site {agent_sites(groups, agents, j)}) would hold {size} "
                f"point(s), below the minimum shard size {minimum}; use fewer agents (sites are "
                "pooled), drop that site's rows, or lower data.min_shard_size",
                setting="data.min_shard_size",
            )
        return ConfigError(
            f"shard of agent {j} would hold {size} point(s), below the minimum shard size "
            f"{minimum}; use at most {max(n // minimum, 1)} agents or lower "
            "data.min_shard_size",
            setting="data.min_shard_size",
        )

    if agents == 1 and n < minimum:
        raise ConfigError(
            f"the training data holds {n} point(s), below the minimum shard size {minimum} "
            "(the fewest an agent sends anything about); lower data.min_shard_size",
            setting="data.min_shard_size",
        )
    if agents > 1 and method != "column" and n // agents < minimum:  # before any 2-point check
        # near-equal splits: the first n % agents shards hold one point more, the last the fewest
        raise too_small(agents - 1, n // agents)
    shards = shard_indices(n, agents, method, groups, config.seed)
    if agents > 1:
        small = [j for j, idx in enumerate(shards) if len(idx) < minimum]
        if small:
            raise too_small(small[0], len(shards[small[0]]))
    if check_address and config.backend_name == "ray":
        check_ray_address(config.backend.address)
    return shards


class _Saver:
    """Checkpoint writer that also carries the learning time (wall and CPU) across a resume."""

    def __init__(
        self,
        checkpoint: Checkpoint | None,
        config: FitConfig,
        start: tuple[float, float],
        saved,
        digest: str | None = None,
        shard_digests: list[str] | None = None,
        run_id: str | None = None,
    ) -> None:
        """``start``: ``time.perf_counter()`` and ``time.process_time()`` when learning began;
        ``digest``: of the training data the driver dealt (``None`` for shard files);
        ``shard_digests``: the SHA-256 each agent sent of its shard file. A resume checks
        whichever was saved. ``run_id``: the run's id, which its agents' state files keep."""
        self.checkpoint = checkpoint
        self.run_id = run_id
        self.config = config
        self.digest = digest
        self.shard_digests = shard_digests
        self.start, self.cpu_start = start
        self.before = float(saved["seconds"]) if saved is not None else 0.0
        self.before_cpu = float(saved.get("cpu_seconds", 0.0)) if saved is not None else 0.0

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start

    def elapsed_cpu(self) -> float:
        return self.before_cpu + time.process_time() - self.cpu_start

    def __call__(self, state: dict[str, Any]) -> None:
        if self.checkpoint is not None:
            extra: dict[str, Any] = {} if self.digest is None else {"data_digest": self.digest}
            if self.shard_digests is not None:
                extra["shard_digests_json"] = self.shard_digests
            if self.run_id is not None:
                extra["run_id"] = self.run_id
            times = {"seconds": self.elapsed(), "cpu_seconds": self.elapsed_cpu()}
            self.checkpoint.save(self.config, {**state, **times, **extra})


def _evaluate(
    backend: Backend,
    theta: np.ndarray,
    rebuild_args: dict[int, tuple],
    members: list[int],
    events: list[str],
    held: list[int] = (),
    gradient: bool = False,
) -> dict:
    """Every remaining agent's local objective at the final weights (not sent again to the
    agents in ``held``, which hold them from the last round); a dead agent is rebuilt once.
    ``gradient``: each reply is ``[l_j, dl_j/dtheta, log codes of its scale]``
    (:meth:`distgp.agents.agent.Agent.evaluate`)."""
    args = {j: (None if j in held else theta, gradient) for j in members}
    replies = backend.call("evaluate", args)
    for j, reply in list(replies.items()):
        if isinstance(reply, AgentFailure):
            backend.recover(j)
            answered(backend.call("setup", {j: rebuild_args[j]}))
            replies[j] = backend.call("evaluate", {j: (theta, gradient)})[j]
            events.append(f"evaluation: agent {j} {reply.reason}; restarted from its shard")
    return answered(replies)


# When a converged consensus is flagged as far from stationary (unsettled_consensus): the scaled
# gradient of the summed objective exceeds its own scale (stationarity > 1, against DSCA's 0.01),
# and the primal tolerance the agents met is over 10 times its absolute part, i.e. the agreement
# test passed through its relative part, which grows with the agents' weights' norms. Measured
# (inline, default settings): ordinary converged runs reach stationarity 0.36-3.0 (airfoil600 x4
# 0.42, builtin:co2 x2/x4/x8 3.0/2.0/2.6, cccp1000 x4 0.36, concrete824 x2 0.57, 300 sine points
# x3 1.2; --delta 0.5 7.2) with tolerances 1.1-2.4 times their absolute part; two shards on
# far-apart input ranges (audit 11 item 4) stop at 5.1 and 8.9 with the tolerance 1700-3400
# times it.
UNSETTLED_STATIONARITY = 1.0
UNSETTLED_TOLERANCE_GROWTH = 10.0


def unsettled_consensus(stationarity: float, primal_tol: float, abs_part: float) -> bool:
    """Whether a consensus that met ADMM's residual tests is far from a stationary point of the
    summed objective, its agreement measured against a tolerance inflated by the weights' norms
    (see :data:`UNSETTLED_STATIONARITY`); the stopping rule itself is unchanged (docs/admm.md)."""
    return (
        math.isfinite(stationarity)
        and stationarity > UNSETTLED_STATIONARITY
        and primal_tol > UNSETTLED_TOLERANCE_GROWTH * abs_part
    )


def unsettled_note(stationarity: float, kkt_tol: float) -> str:
    return (
        f"warning: the consensus met ADMM's residual tests, but the summed objective's gradient "
        f"is {stationarity:.3g} of its scale from stationary (DSCA's test: {kkt_tol:g}) and the "
        "agreement was measured against weights grown far past their scale: the agents' data "
        "may disagree (e.g. shards covering different input regions); try more --rounds with "
        "a larger --rho, or fewer agents or a pooled fit"
    )


def summed_stationarity(replies: dict, theta: np.ndarray, lower: np.ndarray, prune_tol: float):
    """The agents' local objectives at ``theta`` and the scaled KKT violation of their sum
    there (:func:`distgp.learn.dsca.stationarity`; weights DSCA would prune count as zero),
    from :func:`_evaluate`'s replies with gradients."""
    from distgp.consensus.admm import from_log_codes
    from distgp.learn.dsca import prune, stationarity

    losses = {j: float(r[0]) for j, r in replies.items()}
    gradient = np.sum([np.asarray(r[1], float) for r in replies.values()], axis=0)
    scale = np.sum([from_log_codes(*r[2]) for r in replies.values()], axis=0)
    pruned = theta.copy()
    prune(pruned, len(theta) - 1, prune_tol)
    return losses, stationarity(gradient / scale, np.maximum(pruned, lower), lower)


def _predict_private(
    backend: Backend,
    scaler: Scaler,
    theta: np.ndarray,
    X_test: np.ndarray,
    members: list[int],
    recipe: dict,
    held: list[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """rBCM over the agents' experts at raw ``X_test``; raw-unit mean and std (noise included)
    of the modelled outputs (``g(y)`` under an output transform). Agents in ``held`` use the
    weights they hold from the last round, so the weights travel only to the others."""
    weights, noise = theta[:-1], float(theta[-1])
    Z = scaler.x(np.asarray(X_test, float))
    args = {j: (Z,) if j in held else (Z, weights, noise) for j in members}
    answers = answered(backend.call("predict", args))
    prior = recipe_prior_variance(recipe, Z, weights)
    mean, latent = combine_experts([answers[j] for j in members], prior)
    return scaler.y_back(mean), np.sqrt(latent + noise) * scaler.y_scale


def _single_agent(
    backend: Backend, theta0: np.ndarray, config: FitConfig, report: Reporter, save: _Saver, saved
) -> dict:
    theta = theta0
    history: list[float] = []
    iterations, converged, state = 0, False, None
    events: list[str] = []
    if saved is not None:
        with restoring(saved):
            theta = np.asarray(saved["theta"], float)
            history = list(saved["history_json"])
            iterations = int(saved["iterations"])
            state = saved.get("solve_state_json")
            events = [*saved.get("events_json", []), resumed_event("iteration", iterations)]
    budget = config.learn.max_iterations
    while iterations < budget and not converged:
        chunk = min(SOLVE_CHUNK, budget - iterations)
        call = {0: (theta, chunk, state)}  # the solver's state: chunks do not change the solve
        theta, loss, done, converged, trace, state = answered(backend.call("solve", call))[0]
        theta = np.asarray(theta, float)
        history.extend(trace if not history else trace[1:])
        iterations += int(done)
        report(
            "iteration",
            {
                "iteration": iterations,
                "objective": loss,
                "active": int(np.count_nonzero(theta[:-1])),
                "noise": float(theta[-1]),
            },
        )
        if not converged:
            save(
                {
                    "theta": theta,
                    "iterations": iterations,
                    "history_json": history,
                    "solve_state_json": list(state),
                    "events_json": events,
                    "traffic": _traffic(backend),
                }
            )
    return {
        "theta": theta,
        "rounds": 0,
        "iterations": iterations,
        "converged": bool(converged),
        "history": history,
        "events": events,
        "members": [0],
        "held": [],
        "missing": [],
        "stop": {},
    }


def resumed_event(step: str, done: int) -> str:
    """The event line of a run resumed from its checkpoint after ``done`` of its ``step``s."""
    return (
        f"resumed from the checkpoint after {step} {done}: the agents were set up again "
        "(their set-up messages count in the bits a second time)"
    )


def _traffic(backend: Backend) -> np.ndarray:
    t = backend.traffic
    return np.array([t.bytes, t.float64_bytes, t.dense_float64_bytes])


def _admm(
    backend: Backend,
    theta0: np.ndarray,
    config: FitConfig,
    settings: AgentSettings,
    rebuild_args: dict[int, tuple],
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
        coder=DeltaCoder(bits=settings.bits, delta=settings.delta),
        options=ADMMOptions(
            rho=c.rho,
            max_rounds=c.max_rounds,
            abs_tol=c.abs_tol,
            rel_tol=c.rel_tol,
            balance_rounds=c.balance_rounds,
        ),
        rho=rho,
        seed=config.seed,
    )
    events: list[str] = []
    missing: list[str] = []
    if saved is not None:
        with restoring(saved):
            history = [_record(r) for r in saved["history_json"]]
            coordinator.restore(saved, history)
            events = [*saved["events_json"], resumed_event("round", coordinator.round)]
            missing = list(saved["missing_json"])
        for j in np.flatnonzero(coordinator.active & ~coordinator.resync):
            if not backend.call("restore", {int(j): (coordinator.round,)})[int(j)]:
                coordinator.restart(int(j))
    unanswered: list[str] = []  # events of rounds in a row that no agent answered
    silent = 0  # how many such rounds
    while not coordinator.done:
        tic = time.perf_counter()
        before = backend.traffic.snapshot()
        members = [j for j in range(c.agents) if coordinator.active[j]]
        requests = coordinator.requests(members)
        replies = backend.call("round", {j: (requests[j].to_wire(),) for j in members})
        answered: dict[int, RoundReply] = {}
        round_events: list[str] = unanswered
        for j, r in replies.items():
            if isinstance(r, AgentFailure):
                round_events.append(
                    f"round {coordinator.round + 1}: agent {j} {r.reason}; left out"
                )
                _recover(backend, j, coordinator, rebuild_args[j], round_events, missing)
            else:
                answered[j] = RoundReply.from_wire(r)
        if not answered and coordinator.round == 0:
            _no_first_round(replies, config.backend.round_timeout)
        if not coordinator.active.any():
            raise BackendError("every agent has left the run; nothing to learn from")
        if not answered:  # every agent failed at once: the restarted ones take the round again
            silent += 1
            if silent >= MAX_UNANSWERED:
                raise BackendError(
                    f"no agent answered round {coordinator.round + 1} in {silent} tries; check "
                    "the backend and the agents' nodes, then --resume"
                )
            unanswered = round_events
            continue
        silent, unanswered = 0, []
        record = coordinator.update(answered)
        after = backend.traffic
        record.bits = 8 * (after.bytes - before.bytes)
        record.bits_float64 = 8 * (after.float64_bytes - before.float64_bytes)
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
                    "missing_json": missing,
                    "traffic": _traffic(backend),
                }
            )
    last = coordinator.history[-1]
    stop = {
        "primal_residual": last.primal_residual,
        "primal_tol": last.primal_tol,
        "dual_residual": last.dual_residual,
        "dual_tol": last.dual_tol,
        "rho": last.rho,
        "objective_at_z": last.objective,  # the last round's
        "diverged": coordinator.diverged,
        "result_round": coordinator.round if coordinator.converged else coordinator.best_round,
    }
    # the objective of the consensus returned (the lowest seen, when not converged)
    stop["result_objective"] = next(
        (r.objective for r in coordinator.history if r.round == stop["result_round"]),
        last.objective,
    )
    return {
        "theta": coordinator.consensus,
        "rounds": coordinator.round,
        "iterations": 0,
        "converged": coordinator.converged,
        "history": coordinator.history,
        "events": events,
        "members": [j for j in range(c.agents) if coordinator.active[j]],
        "held": coordinator.holding(),
        "missing": missing,
        "stop": stop,
    }


def _record(fields: dict):
    from distgp.consensus.admm import RoundRecord

    return RoundRecord(**fields)


MAX_UNANSWERED = 3  # rounds in a row that no agent answers before a run stops


def _no_first_round(replies: dict[int, Any], timeout: float) -> None:
    """Raise the error of a first ADMM round that no agent answered: the round timeout when
    every agent was late (a setting to raise), else the backend."""
    reasons = {r.reason for r in replies.values() if isinstance(r, AgentFailure)}
    if reasons == {"timeout"}:
        raise ConfigError(
            f"no agent answered the first round within backend.round_timeout ({timeout:g} s); "
            "raise it",
            setting="backend.round_timeout",
        )
    raise BackendError("no agent answered the first round; check the backend and agents")


def _recover(
    backend: Backend,
    j: int,
    coordinator: ADMMCoordinator,
    setup_args: tuple,
    events: list[str],
    missing: list[str],
) -> None:
    """Rebuild agent ``j`` from its shard (``setup_args``: its set-up with the run's view of
    its shard, :func:`shard_view`); it starts afresh next round. An agent whose shard cannot
    be reached any more (its node is gone), or changed since the run started, leaves the
    run."""
    where = f"round {coordinator.round + 1}: agent {j}"
    try:
        backend.recover(j)
        reply = backend.call("setup", {j: setup_args})[j]
        if isinstance(reply, AgentFailure):
            raise BackendError(reply.detail)
        coordinator.restart(j)
        events.append(f"{where} restarted from its shard")
    except (BackendError, InputDataError) as exc:
        coordinator.drop(j)
        line = f"agent {j}: data missing from round {coordinator.round + 1} on ({exc})"
        missing.append(line)
        events.append(f"{where} left the run: {exc}")
