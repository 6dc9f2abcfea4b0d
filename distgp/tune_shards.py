"""Outer-setting evaluations computed by the agents, each on its own shard.

The path of ``distgp fit --tune`` with a Ray backend, and with shard files on any backend (the
agents read their files; the driver learns from their summaries only the number of points, the
input width and whether the shards are a series).
For every batch BKB proposes, the driver sends each agent one ``score`` call holding the batch's
candidate settings (config overrides) and the validation rule; the agents answer at once, in
parallel under Ray. Agent ``j`` splits its own shard the way the sequential path splits the
training set (rolling origin in time for a 1-D series, seeded random folds otherwise), runs a
stand-alone fit of each candidate on each training part **inside its own process** and returns,
per candidate the held-out MSE of each of its folds (raw units) and each fold's number of
held-out points. The driver's score of a candidate is the count-weighted mean over all folds of
all agents: the pooled held-out MSE of shard-local models. No raw data and no prediction leave
an agent, only two numbers per fold (and its seconds) per candidate.

With one agent the shard is the whole training set and the splits are those of
:func:`distgp.holdout.holdout_splits`, so every score equals the sequential path's. With ``N``
agents each local fit sees about ``n / N`` points (a shard of a series is a thinned series
over the same span), so a batch of ``B`` candidates costs about ``B / N^2`` of the sequential
path's dense algebra, and the score rates a candidate by how its shard-sized models forecast,
which is what the experts of an ``N``-agent model are.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from distgp.config import FitConfig, build
from distgp.exceptions import BackendError, InputDataError
from distgp.holdout import (
    MIN_HORIZON,
    MIN_TRAIN,
    VALIDATION_ITERATIONS,
    Evaluation,
    evaluate_many,
    holdout_splits,
    learnable,
    no_split_error,
)

LOCAL_MIN_HORIZON = 2  # with several agents: held-out points per origin within a shard, at least
LOCAL_MIN_TRAIN = 8  # with several agents: a shard's fold trains on at least this many points


def validation_rule(config: FitConfig, n: int | None, series: bool, agents: int) -> dict[str, Any]:
    """What every agent needs to split its shard (sent with each ``score`` call).

    Args:
        n: training points in all (``None`` with shard files: a set horizon is then used as is).
        agents: agents of the run; with one, the splits are exactly the sequential path's.
    """
    t = config.tune
    fraction = None if t.horizon is None or n is None else t.horizon / n
    return {
        "series": bool(series),
        "horizon": t.horizon,
        "fraction": fraction,
        "origins": t.origins,
        "folds": t.folds,
        "seed": config.seed,
        "local": agents > 1,
        "iterations": VALIDATION_ITERATIONS,
    }


def shard_splits(
    n: int, agent: int, rule: dict[str, Any], X: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held-out)`` index pairs within a shard of ``n`` points (time-sorted for a series;
    with its inputs ``X``, K folds keep copies of an input row together).

    With several agents a set horizon shrinks in proportion to the shard, the rolling origin
    may be shorter (:data:`LOCAL_MIN_HORIZON`, :data:`LOCAL_MIN_TRAIN`) and each agent's folds
    have their own seed."""
    horizon = rule["horizon"]
    if rule["local"] and rule["fraction"] is not None:
        horizon = max(1, round(rule["fraction"] * n))
    local = rule["local"]
    try:
        return holdout_splits(
            n,
            rule["series"],
            horizon,
            rule["origins"],
            rule["folds"],
            seed=[rule["seed"], agent] if local else rule["seed"],
            min_horizon=LOCAL_MIN_HORIZON if local else MIN_HORIZON,
            min_train=LOCAL_MIN_TRAIN if local else MIN_TRAIN,
            X=X,
        )
    except InputDataError as exc:
        raise InputDataError(
            f"tuning on agent {agent}'s shard of {n} points: {exc}, or fewer agents"
        ) from None


def score_shard(
    X: np.ndarray,
    y: np.ndarray,
    shard: int,
    config_text: str,
    candidates: list[dict[str, Any]],
    rule: dict[str, Any],
    bars: list[list[float] | None] | None = None,
) -> list[list]:
    """An agent's part of a batch: per candidate ``[per-fold held-out MSEs, per-fold held-out
    points, seconds, per-fold sums of squared z-scores]`` (fewer folds for a candidate that
    stopped behind its bar).

    Args:
        X, y: the agent's shard (raw units), ``n_j x P`` and ``n_j``.
        shard: the shard's index ``j`` (seeds its folds).
        config_text: the run's settings as JSON (:func:`distgp.checkpoint.config_json`).
        candidates: dotted config overrides, one map per candidate.
        rule: from :func:`validation_rule`.
        bars: per candidate, ``None`` or the bar's per-fold MSEs on this shard's folds
            (:func:`distgp.holdout.evaluate_many`).
    """
    config = build(FitConfig, json.loads(config_text), "")
    config.consensus.agents = 1  # a stand-alone fit in this process
    # its folds' fits send nothing: the shard, which met data.min_shard_size, is what its
    # scores are about
    config.data.min_shard_size = 1
    config.backend.name, config.backend.address, config.backend.gpus_per_agent = (
        "inline",
        None,
        None,
    )
    config.data.shards = config.data.placements = None
    config.data.shard, config.predict = "random", None
    if rule["series"]:  # a shard of a series, in time order
        order = np.argsort(X[:, 0], kind="stable")
        X, y = X[order], y[order]
    splits = learnable(shard_splits(len(y), shard, rule, X), y)
    if not splits:
        raise no_split_error("flat", f"on agent {shard}'s shard: ")
    named = [("", overrides) for overrides in candidates]
    scored = evaluate_many(X, y, config, named, splits, iterations=rule["iterations"], bars=bars)
    return [[e.folds, e.counts, e.seconds, e.z2] for e in scored]


def replicas(agents: int, batch: int) -> int:
    """Copies of each shard's agent that score a batch side by side: enough that a batch of
    ``batch`` evaluations runs at once (4 with one agent and batch 4, 1 with four or more)."""
    return max(1, batch // agents)


def score_on_agents(
    backend,
    config: FitConfig,
    batch: list[tuple[str, dict[str, Any]]],
    rule: dict[str, Any],
    shards: int,
    bars: list[list[float] | None] | None = None,
    since: int | None = None,
) -> list[Evaluation]:
    """Score a batch of ``(name, overrides)`` on a backend started with ``R`` copies of
    ``shards`` shards (actor ``r * shards + j`` holds shard ``j``; :func:`replicas` on Ray, one
    copy in process); candidate ``i`` goes to copy ``i mod R`` of every shard.

    Each evaluation's ``seconds`` is its share of the batch's wall time (so the seconds of a
    tuning run add up to its wall time), ``folds`` the held-out MSE of each fold of each shard.
    ``bars``: per candidate, ``None`` or an evaluation's ``folds`` on the same shards, each
    agent racing the candidate against its own shard's part (:func:`distgp.holdout.evaluate_many`);
    a candidate any agent stopped is ``stopped``. Each evaluation's ``bits`` is its share of
    the messages since ``since`` (bytes of ``backend.traffic``; default: this call's start), so
    that the set-up of the scoring agents counts with the first batch.
    """
    from distgp.agents.backends import AgentFailure
    from distgp.checkpoint import config_json

    tic = time.perf_counter()
    sent = backend.traffic.bytes if since is None else since
    copies = max(1, backend.agents // shards)
    text = config_json(config)
    bars = bars or [None] * len(batch)
    share = {
        r: [dict(o) for i, (_, o) in enumerate(batch) if i % copies == r] for r in range(copies)
    }

    def own(bar: list[float] | None, j: int) -> list[float] | None:  # shard j's folds of a bar
        if bar is None or len(bar) % shards:
            return None
        K = len(bar) // shards
        return list(bar[j * K : (j + 1) * K])

    calls = {
        r * shards + j: (
            text,
            share[r],
            rule,
            j,
            [own(bar, j) for i, bar in enumerate(bars) if i % copies == r],
        )
        for r in range(copies)
        if share[r]
        for j in range(shards)
    }
    replies = backend.call("score", calls)
    for reply in replies.values():
        if isinstance(reply, AgentFailure):
            raise BackendError(
                f"agent {reply.agent} failed while scoring outer settings ({reply.reason}: "
                f"{reply.detail}); rerun, or tune with --backend inline"
            )
    wall = time.perf_counter() - tic
    total = 8 * (backend.traffic.bytes - sent)  # the batch's messages, shared out equally
    out = []
    for i, (name, overrides) in enumerate(batch):
        r, position = i % copies, i // copies
        answers = [replies[r * shards + j][position] for j in range(shards)]
        folds = [float(v) for a in answers for v in a[0]]
        counts = [int(v) for a in answers for v in a[1]]
        z2 = [float(v) for a in answers for v in a[3]]
        e = Evaluation.scored(name, overrides, folds, counts, wall / len(batch), z2)
        e.bits = total // len(batch) + (i < total % len(batch))
        if bars[i] is not None and len(folds) < len(bars[i]):
            e.stopped = True  # the bar over the folds each agent ran
            ran = [b for j, a in enumerate(answers) for b in own(bars[i], j)[: len(a[0])]]
            e.bar_mse = float(np.average(ran, weights=counts))
        out.append(e)
    return out
