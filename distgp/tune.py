"""BKB on top of the learner: ``distgp fit --tune BUDGET`` chooses outer settings DSCA cannot
learn (trend family, grid levels and size, noise floor, transform, season).

Each evaluation is a full fit per split of the training data, scored on the held-out part
(:mod:`distgp.holdout`); the first ones are the default path's (:mod:`distgp.selection`), and
the search's best replaces the default path's choice only when it is clearly better.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from distgp.config import FitConfig
from distgp.exceptions import ConfigError
from distgp.holdout import (
    Evaluation,
    as_forecast,
    configured,
    evaluate_many,
    has_room,
    holdout_splits,
    horizon_reported,
    in_input_order,
    keep_for_resume,
    learnable,
    mark_searching,
    no_split_error,
    rolling_horizon,
    unlearnable,
)
from distgp.kernels.grid import default_components, default_levels
from distgp.kernels.trend import TrendBasis
from distgp.seasonality import seasonal_period
from distgp.selection import applies, calibrated, check_data, default_candidates, simplest_best

TUNABLES: dict[str, tuple[str, tuple[Any, ...]]] = {
    "trend": ("kernel.trend", ("none", "constant", "linear", "quadratic", "local")),
    "levels": ("kernel.levels", (1, 2, 4)),
    "components": ("kernel.components", (0.25, 0.5, 1.0)),  # fraction of the default M
    "noise_floor": ("learn.noise_floor", (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    "transform": ("kernel.transform", ("none", "log")),
    "season": ("kernel.season", ("none", "period")),
}
"""Outer settings BKB chooses among: config key and candidate values (ordered; an arm encodes
each by its position). ``transform`` is only offered for positive outputs, the ``local`` trend
(the last trend value) only with one input on the data grid, ``season`` only for a series on
the data grid with a period (the user's ``kernel.season``, else the one
:func:`~distgp.seasonality.seasonal_period` finds): without a season or with that period.
``tune.tunables`` leaves the season out unless named: on the training-only pseudo-tests of
``benchmarks/tune_guard_backtest.py`` searching it turned the nine series' geometric mean
ratio to the default path's choice from 1.00 (no switch) to 1.20 (clay 0.93x,
employmentdata 5.4x)."""

TUNE_BETA = 2.0  # UCB width in GP standard deviations


def tunable_names(config: FitConfig) -> list[str]:
    """The tunables ``tune.tunables`` names (comma-separated), in order."""
    return [name.strip() for name in config.tune.tunables.split(",") if name.strip()]


def check_tunables(names: list[str]) -> list[str]:
    """The tunable names, checked; an unknown or repeated one is a :class:`ConfigError`."""
    unknown = [n for n in names if n not in TUNABLES]
    if unknown:
        raise ConfigError(f"unknown tunable {unknown[0]!r}; choose among: {', '.join(TUNABLES)}")
    repeated = [n for i, n in enumerate(names) if n in names[:i]]
    if repeated:
        raise ConfigError(f"tunes {repeated[0]} twice; name each tunable once")
    if not names:
        raise ConfigError(f"tune needs at least one tunable among: {', '.join(TUNABLES)}")
    return names


def tune_arms(
    names: list[str], positive: bool, local: bool = True, seasonal: bool = False
) -> tuple[list[str], np.ndarray]:
    """Tunables actually searched and the ``A x D`` grid of value positions (every combination);
    ``local``: whether the local trend applies (one input, the data grid); ``seasonal``:
    whether a season does (a series with a period, the data grid)."""
    names = [n for n in names if (n != "transform" or positive) and (n != "season" or seasonal)]
    sizes = [len(TUNABLES[n][1]) - (n == "trend" and not local) for n in names]
    grid = np.array(list(np.ndindex(*sizes)), dtype=float)
    return names, grid


def search_space(
    names: list[str], config: FitConfig, facts: TrainingFacts
) -> tuple[list[str], np.ndarray, float | None]:
    """``(names, grid, period)``: the tunables that apply to the training data, their
    :func:`tune_arms` grid and the searched season's period (input units; ``None`` without).

    Raises:
        ConfigError: none of ``names`` applies (fewer than two arms)."""
    local = facts.dims == 1 and config.kernel.grid == "data"
    period = (config.kernel.season or facts.period) if facts.series and local else None
    searched, grid = tune_arms(names, facts.positive, local, seasonal=bool(period))
    if len(grid) < 2 and facts.shards and set(names) <= {"transform", "season"}:
        raise ConfigError(
            f"no tunable among {', '.join(names)} is searched on shard files (a transform or a "
            "season needs the outputs in the driver, which never reads the shards); add trend, "
            "levels, components or noise_floor to tune.tunables (--tunables)",
            setting="tune.tunables",
        )
    if len(grid) < 2:
        raise ConfigError(
            f"no tunable among {', '.join(names)} applies to this data (transform: positive "
            "outputs; season: a series on the data grid with a period; trend, levels, "
            "components and noise_floor: any data); add one to tune.tunables (--tunables)",
            setting="tune.tunables",
        )
    return searched, grid, period


def arm_overrides(
    names: list[str], row: np.ndarray, config: FitConfig, dims: int, period: float | None = None
) -> dict[str, Any]:
    """Config overrides of one arm (value positions ``row``); ``period``: the season's, in
    input units (where ``season`` is searched)."""
    out: dict[str, Any] = {}
    for name, position in zip(names, row, strict=True):
        key, values = TUNABLES[name]
        value = values[int(position)]
        if name == "components":
            base = config.kernel.components or default_components(dims)
            value = max(1, round(base * value))
        elif name == "season":
            value = float(period) if value == "period" else 0.0
        out[key] = value
    return out


def tune(
    X: np.ndarray | None,
    y: np.ndarray | None,
    config: FitConfig,
    series: bool | None,
    budget: int,
    names: list[str] | None = None,
    report: Callable[[str, dict[str, Any]], None] | None = None,
    shards: list | None = None,
    **fit_options: Any,
):
    """Batch BKB over outer settings; each evaluation is scored on held-out training data.

    The first evaluations are what the default path would fit: where it selects (one input),
    the candidates of :func:`default_candidates` (``level`` and ``flat`` are not on the grid:
    they are scored, not told to BKB), otherwise the default setting; rewards are ``-log``
    held-out MSE. They all run, even past a smaller ``budget``, so that the choice is never
    one the default path would not make. A series is scored on ``tune.search_origins``
    rolling origins where it has room for them (more held-out data than the default
    selection's, as the best of many candidates is chosen).
    Once those are scored, each setting BKB proposes races the default path's choice fold by
    fold (:data:`~distgp.holdout.RACE_FACTOR`; BKB is told its :func:`reward`). The best
    setting scored on every fold replaces the default path's choice only when it is
    :meth:`~Evaluation.clearly_better_than` it (by more than two standard errors of the paired
    per-fold differences: the lowest of many noisy scores is biased low), and the chosen
    setting is refitted on all training data.

    With the inline backend the evaluations run one after another in this process, each a full
    fit per split of the training set (:func:`~distgp.holdout.evaluate`). With a Ray backend
    agents score each batch at once, each on its own shard (:mod:`distgp.tune_shards`): with
    one agent, four copies of it each run one evaluation of the batch (the same numbers as
    inline); with ``N`` agents, each scores every candidate on its own shard.

    With ``shards`` (shard files the agents read; ``X``, ``y`` and ``series`` are then None)
    the agents score on any backend, and the driver learns only what their summaries say: the
    number of points, the input width and whether every shard is a series (one input, evenly
    spaced once sorted). Transforms are not searched (they need the outputs in the driver).

    Returns:
        ``(FitResult, evaluations, best)`` with ``best`` the chosen evaluation.
    """
    from distgp.bandit import BKB

    if budget < 2:
        raise ConfigError(f"tune budget must be at least 2 evaluations, got {budget}")
    report = report or (lambda event, fields: None)
    names = check_tunables(list(names or tunable_names(config)))
    config = copy.deepcopy(config)
    origins = config.tune.origins  # the default path's; the search may use more
    if shards is None:
        series = as_forecast(series, X, fit_options.get("X_test"), report)
        config = horizon_reported(config, X, series, fit_options.get("X_test"), report)
    mark_searching(fit_options, "the --tune search")  # saved for --resume once it has chosen
    with _scoring(X, y, config, series, shards, fit_options, names, report, budget) as scoring:
        facts = scoring.facts
        names, grid, period = search_space(names, config, facts)
        seeds = _first_candidates(
            names, grid, config, facts.series, facts.dims, facts.n, facts.positive, facts.period
        )
        if budget <= len(seeds):  # never below the default path: all of its candidates run
            report("no search", {"budget": budget, "first": len(seeds)})
            budget = len(seeds)
        span = np.maximum(grid.max(0), 1.0)
        # a setting's held-out score is deterministic (the same splits and seed): one scored
        # is never proposed again (repeat=False), and the search ends when every one is scored
        bandit = BKB(grid / span, beta=TUNE_BETA, batch=False, seed=config.seed, repeat=False)
        evaluations: list[Evaluation] = []
        pending = list(seeds)  # what the default path fits comes first, batch after batch
        default: Evaluation | None = None  # the default path's choice, once its seeds are in
        t = config.tune
        while len(evaluations) < budget:
            size = min(config.tune.batch, budget - len(evaluations))
            chosen, pending = pending[:size], pending[size:]
            arms = _proposals(bandit, size, chosen + pending)
            if not chosen and not arms:  # every setting of the space is scored
                report("space scored", {"evaluations": len(evaluations), "budget": budget})
                break
            batch = chosen + [
                (
                    _arm_label(names, grid[a], period),
                    arm_overrides(names, grid[a], config, facts.dims, period),
                    a,
                )
                for a in arms
            ]
            if default is None and len(evaluations) >= len(seeds):
                scored_seeds = evaluations[: len(seeds)]
                default = default_choice(scored_seeds, origins, t.origins, facts.series)
            bars = [None if default is None or a is None else default.folds for _, _, a in batch]
            scored = scoring.score([(label, overrides) for label, overrides, _ in batch], bars)
            for e in scored:
                evaluations.append(e)
                report("candidate", {"evaluation": e})
            told = [(a, e) for (_, _, a), e in zip(batch, scored, strict=True) if a is not None]
            if told:
                rewards = [reward(e, default) for _, e in told]
                bandit.tell(np.array([a for a, _ in told]), np.array(rewards))
        if default is None:  # the default path's candidates filled the budget's batches
            default = default_choice(evaluations[: len(seeds)], origins, t.origins, facts.series)
        best = min((e for e in evaluations if not e.stopped), key=lambda e: e.mse)
        if not best.clearly_better_than(default):
            if best is not default:
                report("kept", {"evaluation": default, "lowest": best})
            best = default
        best.chosen = True
        report("selected", {"evaluation": best})
        keep_for_resume(evaluations, fit_options)
        result = scoring.fit(configured(config, best.overrides), report)
    return calibrated(result, best, config, report), evaluations, best


def _proposals(bandit, size: int, seeds: list[tuple]) -> list[int]:
    """Arms BKB proposes for the part of a batch of ``size`` that the default path's
    candidates still waiting (``seeds``, their first ``size`` in this batch) leave free. An
    arm that is one of those candidates, or beyond the room, is cancelled: a proposal left
    pending would count as a pull BKB's variances assume (GP-BUCB) and steer the search away
    from a setting nobody scored."""
    room = size - min(size, len(seeds))
    if room == 0 or bandit.exhausted:
        return []
    known = {a for _, _, a in seeds if a is not None}
    arms: list[int] = []
    for arm in np.atleast_1d(bandit.ask(size)).tolist():
        if arm in known or arm in arms or len(arms) == room:
            bandit.cancel(arm)
        else:
            arms.append(int(arm))
    return arms


def reward(e: Evaluation, default: Evaluation | None) -> float:
    """BKB's reward for an evaluation: ``-log`` of its held-out MSE (``nan`` if not finite);
    for a stopped one, of its MSE projected to every fold by the ratio to the default path's
    choice on the folds it ran (``mse / bar_mse * default.mse``): the early folds of a rolling
    origin may be easier or harder than the rest, and an unprojected score would rate a setting
    that lost to the default on them above the default's own score on all folds."""
    mse = e.mse
    if e.stopped and default is not None and e.bar_mse:
        mse = e.mse / e.bar_mse * default.mse
    return -math.log(mse) if math.isfinite(mse) and mse > 0 else math.nan


def default_choice(
    first: list[Evaluation], origins: int, searched: int, series: bool
) -> Evaluation:
    """The default path's choice among the first evaluations (its candidates), by its own
    rule: the simplest within 1% of the best; on a series scored on ``searched`` rolling
    origins (one shard), over the last ``origins`` of them only, the default path's own folds
    (the earlier origins come first). With several shards, over all their folds."""
    one_shard = all(len(e.folds) == searched for e in first)
    if not (series and one_shard and searched > origins):
        return simplest_best(first)
    own = [
        Evaluation.scored(e.name, e.overrides, e.folds[-origins:], e.counts[-origins:], 0.0)
        for e in first
    ]
    return first[own.index(simplest_best(own))]


def tune_origins(config: FitConfig, series: bool, n: int) -> int:
    """Rolling origins of a tuning run: ``tune.search_origins`` (at least ``tune.origins``) where
    the series has room for them, else ``tune.origins``."""
    t = config.tune
    origins = max(t.origins, t.search_origins)
    if not series:
        return t.origins
    return origins if has_room(n, origins, rolling_horizon(n, t.horizon)) else t.origins


def _first_candidates(
    names: list[str],
    grid: np.ndarray,
    config: FitConfig,
    series: bool,
    dims: int,
    n: int,
    positive: bool = False,
    period: float | None = None,
) -> list[tuple[str, dict[str, Any], int | None]]:
    """``(label, overrides, arm or None)`` of what the default path would fit: the selection's
    candidates where it applies (one input; :func:`default_candidates` for ``positive``
    outputs and a seasonal ``period``), else the default setting (an arm)."""
    default_row = np.array([_default_position(name, config, dims) for name in names], float)
    season = config.kernel.season or period  # the searched season's period
    if not applies(config, series, n, dims=dims):
        first = int(np.flatnonzero(np.all(grid == default_row, axis=1))[0])
        row = grid[first]
        return [
            (_arm_label(names, row, season), arm_overrides(names, row, config, dims, season), first)
        ]
    keys = {TUNABLES[name][0]: i for i, name in enumerate(names)}
    out = []
    for label, overrides in default_candidates(config, series, positive, n, period).items():
        row, arm = default_row.copy(), None
        on_grid = (  # component counts are not on the grid (it holds fractions of M)
            k in keys and k != "kernel.components" and v in TUNABLES[names[keys[k]]][1]
            for k, v in overrides.items()
        )
        if all(on_grid):
            for k, v in overrides.items():
                row[keys[k]] = TUNABLES[names[keys[k]]][1].index(v)
            arm = int(np.flatnonzero(np.all(grid == row, axis=1))[0])
            overrides = arm_overrides(names, row, config, dims, season)
        out.append((label, dict(overrides), arm))
    return out


def _arm_label(names: list[str], row: np.ndarray, period: float | None = None) -> str:
    """``name=value, ...`` of an arm; a searched season shows its period (input units)."""
    values = [TUNABLES[n][1][int(v)] for n, v in zip(names, row, strict=True)]
    values = [f"{period:g}" if v == "period" else v for v in values]
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


@dataclass(frozen=True)
class TrainingFacts:
    """What the outer choice knows of the training data.

    Attributes:
        n: training points (all shards).
        dims: input dimensions ``P``.
        series: a 1-D series (rolling origin) rather than regression data (K folds).
        positive: every output is positive, so transforms are searched (False with shard
            files: a transform needs the outputs in the driver).
        period: the series' seasonal period (:func:`~distgp.seasonality.seasonal_period`,
            input units; ``None`` without one, or with shard files).
        shards: the data is in shard files the agents read (the driver holds no outputs).
    """

    n: int
    dims: int
    series: bool
    positive: bool
    period: float | None = None
    shards: bool = False  # shard files: the driver holds none of the data


def training_facts(X: np.ndarray, y: np.ndarray, series: bool) -> TrainingFacts:
    """The :class:`TrainingFacts` of training data in the driver (``n x P`` inputs ``X``)."""
    period = seasonal_period(X, y) if series else None
    return TrainingFacts(len(y), X.shape[1], bool(series), bool(np.all(y > 0)), period)


def check_search(
    config: FitConfig, X: np.ndarray, y: np.ndarray, series: bool, names: list[str]
) -> TrainingFacts:
    """:func:`~distgp.selection.check_data`, and that some of the tunables ``names`` apply to
    the training data (:func:`search_space`): a tuning run's bad input, found before any agent
    starts. Returns the data's :class:`TrainingFacts`."""
    check_data(config, X, y, series)
    facts = training_facts(X, y, series)
    search_space(check_tunables(list(names)), config, facts)
    return facts


@dataclass
class Scoring:
    """How a tuning run scores batches and fits its choice.

    Attributes:
        facts: the training data's :class:`TrainingFacts`.
        score: ``score(batch, bars)`` scores a batch of ``(name, overrides)``, in order, each
            raced against its bar (``None``, or the per-fold MSEs of the default path's
            choice: :func:`evaluate_many`).
        fit: ``fit(config, report)``: the final fit of the chosen setting on all training data.
    """

    facts: TrainingFacts
    score: Callable[[list[tuple[str, dict[str, Any]]], list], list[Evaluation]]
    fit: Callable[[FitConfig, Callable], Any]


@contextlib.contextmanager
def _scoring(
    X: np.ndarray | None,
    y: np.ndarray | None,
    config: FitConfig,
    series: bool | None,
    shards: list | None,
    fit_options: dict[str, Any],
    names: list[str],
    report: Callable[[str, dict[str, Any]], None],
    budget: int,
) -> Iterator[Scoring]:
    """The :class:`Scoring` of a tuning run; sets ``config.tune.origins`` (:func:`tune_origins`).

    Data in the driver, inline backend: full fits in turn on the splits of the whole training
    set. Data in the driver, Ray backend: agents holding the run's shards
    (:func:`~distgp.tune_shards.replicas` copies of each, so a batch runs at once), started
    once. Shard files: their agents, on any backend, started once to summarise their shards.
    The final fit reuses the backend. ``names`` (the tunables asked for) are checked against
    data in the driver before any agent starts (:func:`search_space`)."""
    from distgp.agents.agent import ShardArrays
    from distgp.driver import check_shard_settings, fit, make_run_backend, preflight
    from distgp.tune_shards import replicas, score_on_agents, shard_splits, validation_rule

    t = config.tune
    backend, groups = fit_options.get("backend"), fit_options.get("groups")
    name = backend.name if backend is not None else config.backend_name
    if shards is None:
        facts = check_search(config, X, y, series, names)  # before any agent starts
        t.origins = tune_origins(config, facts.series, facts.n)
        splits = holdout_splits(
            facts.n, facts.series, t.horizon, t.origins, t.folds, config.seed, X=X
        )
        if facts.series:
            splits = in_input_order(splits, X)
        scorable = learnable(splits, y, config, groups)
        if not scorable:
            raise no_split_error(unlearnable(splits, y))
        splits = scorable
    if shards is None and name != "ray":

        def in_process(batch: list, bars: list) -> list[Evaluation]:
            return evaluate_many(X, y, config, batch, splits, backend, groups=groups, bars=bars)

        yield Scoring(
            facts, in_process, lambda c, report: fit(X, y, c, report=report, **fit_options)
        )
        return
    if shards is None:
        indices = preflight(config, facts.n, groups, check_address=backend is None)
        parts = [ShardArrays(X[idx], y[idx]) for idx in indices]
        sizes = [len(idx) for idx in indices]
    else:
        check_shard_settings(config, shards, backend)
        parts = list(shards)
    owned = backend is None
    backend = backend or make_run_backend(config)
    # copies of each agent for a batch side by side; a batch is never larger than the budget
    copies = replicas(len(parts), min(t.batch, budget)) if name == "ray" else 1
    options = {**fit_options, "backend": backend}
    with backend if owned else contextlib.nullcontext(backend):
        counted = [backend.traffic.bytes]  # the scoring agents' set-up counts with the first batch
        backend.start([part for _ in range(copies) for part in parts])
        if shards is not None:
            facts, sizes = _shard_facts(backend, config, len(parts))
            t.origins = tune_origins(config, facts.series, facts.n)
        rule = validation_rule(config, facts.n, facts.series, len(parts))
        splits = [shard_splits(size, j, rule) for j, size in enumerate(sizes)]  # bad input first
        if rule["local"]:
            report(
                "agent splits",
                {
                    "agents": len(parts),
                    "series": facts.series,
                    "splits": len(splits[0]),
                    "held_out": sorted({len(held) for own in splits for _, held in own}),
                },
            )

        def on_agents(batch: list, bars: list) -> list[Evaluation]:
            scored = score_on_agents(backend, config, batch, rule, len(parts), bars, counted[0])
            counted[0] = backend.traffic.bytes
            return scored

        yield Scoring(
            facts,
            on_agents,
            lambda c, report: fit(X, y, c, report=report, shards=shards, **options),
        )


def _shard_facts(backend, config: FitConfig, shards: int) -> tuple[TrainingFacts, list[int]]:
    """The training facts and shard sizes from the summaries of the agents holding
    ``shards`` shard files (agent ``j`` holds shard ``j``; further agents are copies)."""
    from distgp.agents.summaries import gather_summaries, merge_summaries

    replies, _ = gather_summaries(backend, config.data.min_shard_size)
    own = {j: replies[j] for j in range(shards)}
    summary = merge_summaries(own)
    series = all(bool(r["series"]) for r in own.values())
    sizes = [int(own[j]["n"]) for j in range(shards)]
    return TrainingFacts(summary.n, summary.dims, series, positive=False, shards=True), sizes


def _default_position(name: str, config: FitConfig, dims: int) -> int:
    """Position of the config's own value among a tunable's candidates (nearest for numbers)."""
    _, values = TUNABLES[name]
    if name == "trend":
        return values.index(TrendBasis.named(config.kernel.trend, dims).kind)
    if name == "components":
        return values.index(1.0)
    if name == "levels":
        levels = config.kernel.levels or default_levels(dims)
        return int(np.argmin([abs(v - levels) for v in values]))
    if name == "noise_floor":
        return int(np.argmin([abs(math.log(v / config.learn.noise_floor)) for v in values]))
    if name == "season":
        return int(config.kernel.season > 0)
    return values.index(config.kernel.transform) if config.kernel.transform in values else 0
