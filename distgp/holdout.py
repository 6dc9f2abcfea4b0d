"""Outer settings scored on data held out from the training set.

DSCA learns the weights of a fixed grid by the evidence; the grid, the trend family, the
transform and the noise floor are outer settings. Each candidate setting is scored by full fits
on part of the **training** data and the error of their predictions on the rest (the test split
is never seen):

* a 1-D series: rolling origin (FPP3 5.10). With ``origins`` origins and horizon ``h``, fold
  ``k`` trains on the first ``n - k h`` points and predicts the next ``h``;
* other data: ``folds`` random folds (K-fold cross-validation), every copy of an input row
  in the same fold.

The score is the held-out mean squared error in raw units over all folds (each fold weighted
by its held-out points). The default path's choice (:mod:`distgp.selection`) and ``--tune``'s
search (:mod:`distgp.tune`) both score with :func:`evaluate_many`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from distgp.config import FitConfig
from distgp.data import has_spread
from distgp.exceptions import ConfigError, InputDataError
from distgp.kernels.lapack import GIL_FREE_MIN_N
from distgp.settings import put
from distgp.threads import blas_threads, thread_budget

HORIZON_FRACTION = 0.1  # default held-out points per origin, as a fraction of n
MIN_HORIZON = 4
MIN_TRAIN = 16  # a fold trains on at least this many points
VALIDATION_ITERATIONS = 150  # DSCA iterations of a validation fit (the final fit runs in full)
GUARD_ERRORS = 2.0
"""Standard errors of the paired per-fold differences by which ``--tune``'s lowest held-out
score must beat the default path's choice to replace it (:meth:`Evaluation.clearly_better_than`).
Two, not Breiman's one: the lowest of 32 scores is biased low, and on training-only pseudo-tests
(``python benchmarks/tune_guard_backtest.py``) one standard error replaced the default for the
worse on 3 of 11 datasets, two on none."""

RACE_FACTOR = 1.0
"""A setting ``--tune``'s search proposes stops after a fold where its held-out squared error
so far exceeds this many times that of the default path's choice on the same folds
(:func:`behind`; a race, as in successive halving, which keeps a fixed fraction instead). The
search replaces that choice only by a setting :meth:`~Evaluation.clearly_better_than` it: with
two folds, one lost fold rules that out; with four, a setting behind after the first folds
would need the others to win by far more than their spread. Replayed on un-raced ``--tune 32``
runs of airfoil600, ale80, hoteldata, unemployment and cccp1000 (``python
benchmarks/race_replay.py`` at commit 78fe082, the season then searched too) it left 48, 107,
75, 74 and 65 of 128 fold fits and the same choice on each; a factor of 1.1 left 95, 120, 78,
80 and 104."""
OUTLIER_Z2 = 25.0
"""A held-out point's squared z-score counts at most this many times its split's robust
variance (:func:`winsorised_z2`), never below the nominal 1: as a 5-sigma error."""
CHI2_1_MEDIAN = 0.45493642311957283  # median of z^2 for z ~ N(0, 1)


@dataclass
class Evaluation:
    """One scored setting.

    Attributes:
        name: the candidate's label.
        overrides: dotted config overrides of the candidate.
        mse: held-out mean squared error (raw units), over all folds.
        seconds: wall time of the candidate's fits.
        folds: per-fold MSE (with several shards: shard by shard, each shard's folds in turn).
        counts: held-out points of each fold.
        z2: per fold, the sum of the held-out points' squared standardised errors
            ``((g(y) - mean) / std)^2`` (Gaussian predictive of the transformed output, noise
            included), each winsorised (:func:`winsorised_z2`); see :attr:`mean_z2`.
        stopped: scored on its first folds only: behind the default path's choice on them
            (:func:`behind`); never chosen.
        bar_mse: of a stopped evaluation, its bar's MSE over the same folds (see
            :func:`distgp.tune.reward`).
        bits: 8 x the bytes its fits' messages took between the driver and the agents (the
            ``bits_sent`` of each fit), or its share of a batch the agents scored.
    """

    name: str
    overrides: dict[str, Any]
    mse: float
    seconds: float
    folds: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    chosen: bool = False
    z2: list[float] = field(default_factory=list)
    stopped: bool = False
    bar_mse: float | None = None
    bits: int = 0

    @classmethod
    def scored(
        cls,
        name: str,
        overrides: dict[str, Any],
        folds: list[float],
        counts: list[int],
        seconds: float,
        z2: Sequence[float] = (),
    ) -> Evaluation:
        """An evaluation from its per-fold MSEs and held-out counts (``inf`` if any fold is)."""
        finite = all(map(math.isfinite, folds))
        mse = float(np.average(folds, weights=counts)) if finite else math.inf
        return cls(name, dict(overrides), mse, seconds, list(folds), list(counts), z2=list(z2))

    @property
    def mean_z2(self) -> float | None:
        """Mean squared standardised held-out error ``sum(z2) / sum(counts)`` (``None`` without
        finite ``z2``): about 1 for calibrated intervals. It is the factor on the predictive
        variance that maximises the held-out log predictive density: scaling the whole
        covariance (every weight and the noise) leaves the predictive mean unchanged and
        multiplies the predictive variance (Sundararajan and Keerthi 2001, for leave-one-out)."""
        if not self.z2 or len(self.z2) != len(self.counts):
            return None
        total = float(np.sum(self.z2))
        return total / float(np.sum(self.counts)) if math.isfinite(total) and total > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as JSON-able fields (:meth:`from_dict` reads them back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Evaluation:
        return cls(**fields)

    def clearly_better_than(self, other: Evaluation, errors: float = GUARD_ERRORS) -> bool:
        """Whether this setting's held-out error is below ``other``'s by more than ``errors``
        standard errors of their paired per-fold differences (Breiman et al.'s
        one-standard-error rule, widened: ``other`` is the simpler model, and the best of many
        noisy scores is biased low)."""
        if not math.isfinite(self.mse) or self.mse >= other.mse:
            return False
        if not math.isfinite(other.mse):
            return True
        if len(self.folds) != len(other.folds) or len(self.folds) < 2:
            return True
        d = np.subtract(self.folds, other.folds)
        return bool(d.mean() + errors * d.std(ddof=1) / math.sqrt(len(d)) < 0)


def holdout_splits(
    n: int,
    series: bool,
    horizon: int | None = None,
    origins: int = 2,
    folds: int = 4,
    seed: int | list[int] = 0,
    min_horizon: int = MIN_HORIZON,
    min_train: int = MIN_TRAIN,
    X: np.ndarray | None = None,
    scoring: str = "--tune",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held-out)`` index pairs within ``n`` training points.

    With the ``n x P`` training inputs ``X``, K folds hold out every copy of an input row
    together (:func:`grouped_folds`), so a fold scores predictions at inputs its fit has not seen.
    ``scoring``: what asked for the held-out scoring, which a series too short for any rolling
    origin should drop (``--tune``, or ``--horizon and --origins``).

    Raises:
        InputDataError: the rolling origin needs more points than the series has.
    """
    if series:
        h = rolling_horizon(n, horizon, min_horizon)
        if h < 1 or origins < 1:
            raise ConfigError("the rolling-origin horizon and number of origins must be >= 1")
        if not has_room(n, 1, 1, min_train):  # no horizon or number of origins fits
            raise InputDataError(
                f"the series has {n} training points, too few for held-out scoring: a rolling "
                f"origin needs at least {min_train + 1} (each fold trains on {min_train} or "
                f"more); drop {scoring} or add data"
            )
        if not has_room(n, origins, h, min_train):
            raise InputDataError(
                f"a rolling origin of {origins} x {h} held-out points needs at least "
                f"{origins * h + min_train} training points (each fold trains on {min_train} or "
                f"more); the series has {n}: use a shorter horizon or fewer origins"
            )
        return [
            (np.arange(n - k * h), np.arange(n - k * h, n - (k - 1) * h))
            for k in range(origins, 0, -1)
        ]
    if folds < 2 or n < 2 * folds:
        raise InputDataError(
            f"{folds}-fold validation needs at least {2 * folds} points, got {n}: set "
            f"tune.folds (--folds) to at most {max(n // 2, 2)}"
        )
    order = np.random.default_rng(seed).permutation(n)
    if X is None:
        parts = np.array_split(order, folds)
    else:
        parts = grouped_folds(order, np.unique(X, axis=0, return_inverse=True)[1].ravel(), folds)
    return [
        (np.sort(np.concatenate(parts[:k] + parts[k + 1 :])), np.sort(parts[k]))
        for k in range(folds)
        if len(parts[k]) and len(parts[k]) < n
    ]


def grouped_folds(order: np.ndarray, labels: np.ndarray, folds: int) -> list[np.ndarray]:
    """``np.array_split(order, folds)`` (as sets) with the rows of a label in one fold.

    The labels are laid out in the order of their first row in ``order``, each as a block of
    its rows, and a label goes to the fold (of ``array_split``'s bounds) that holds its block's
    centre: without a repeated label, these are ``array_split``'s folds. A label with many rows
    may leave a fold empty."""
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    first = np.full(labels.max() + 1, len(order))
    np.minimum.at(first, labels, rank)
    sizes = np.bincount(labels)
    ranked = np.argsort(first)
    starts = np.empty(len(sizes))
    starts[ranked] = np.cumsum(sizes[ranked]) - sizes[ranked]
    bounds = np.cumsum([len(p) for p in np.array_split(order, folds)])
    fold = np.searchsorted(bounds, starts + sizes / 2, side="right")[labels]
    return [np.flatnonzero(fold == k) for k in range(folds)]


NO_SPLIT = {
    "flat": "the outputs of every held-out split's training part are constant",
    "agents": "every held-out split's training part is too small to share among the agents "
    "(each shard at least data.min_shard_size points)",
}
"""Why no split scores a setting (:func:`unlearnable`), in words."""


def learnable(
    splits: list[tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    config: FitConfig | None = None,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(train, held-out)`` splits a setting can be scored on: those whose training
    outputs ``y[train]`` vary (from a constant training part, a series that starts flat,
    nothing is learned and every setting would forecast that constant alike) and, with the
    run's ``config`` (and shard labels ``groups``), whose training part its agents can share
    (:func:`distgp.driver.preflight`: an earlier origin may leave too few points per agent)."""
    from distgp.driver import preflight

    def shareable(train: np.ndarray) -> bool:
        if config is None or config.consensus.agents == 1:
            return True
        try:
            preflight(config, len(train), None if groups is None else groups[train], False)
        except (ConfigError, InputDataError):
            return False
        return True

    return [(tr, held) for tr, held in splits if has_spread(y[tr]) and shareable(tr)]


def unlearnable(splits: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray) -> str:
    """Why :func:`learnable` kept none of ``splits``: a key of :data:`NO_SPLIT`."""
    return "agents" if any(has_spread(y[train]) for train, _ in splits) else "flat"


def no_split_error(why: str, where: str = "") -> InputDataError:
    """``--tune``'s error when no split can score a setting (``why``: a key of
    :data:`NO_SPLIT`; ``where``: a prefix naming the shard)."""
    return InputDataError(
        f"{where}{NO_SPLIT[why]}, so no setting can be scored; tune on more data, with fewer "
        "agents, or without --tune"
    )


def past_the_end(X: np.ndarray, X_test: np.ndarray | None) -> bool:
    """Whether every prediction input lies past the last input of one-input training data
    ``X`` (``n x 1``): a forecast, also of unevenly spaced times, to be scored by rolling
    origin in input order."""
    return (
        X_test is not None
        and len(X_test) > 0
        and X.shape[1] == 1
        and float(np.min(X_test[:, 0])) > float(np.max(X[:, 0]))
    )


def as_forecast(
    series: bool,
    X: np.ndarray,
    X_test: np.ndarray | None,
    report: Callable[[str, dict[str, Any]], None],
) -> bool:
    """``series``, or ``True`` (said through ``report``) when the prediction inputs all lie
    :func:`past_the_end` of one-input training data: scored by rolling origin then."""
    if not series and past_the_end(X, X_test):
        report("past the end", {})
        return True
    return series


def in_input_order(
    splits: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rolling-origin ``splits`` of positions in input order mapped to rows of one-input ``X``
    (the identity for a series already in time order)."""
    order = np.argsort(X[:, 0], kind="stable")
    return [(np.sort(order[train]), np.sort(order[held])) for train, held in splits]


def rolling_horizon(n: int, horizon: int | None = None, min_horizon: int = MIN_HORIZON) -> int:
    """Held-out points per rolling origin: ``horizon`` if set, else :data:`HORIZON_FRACTION`
    of ``n`` (at least ``min_horizon``)."""
    return horizon if horizon is not None else max(min_horizon, math.ceil(HORIZON_FRACTION * n))


def forecast_horizon(X: np.ndarray, X_test: np.ndarray | None) -> int | None:
    """Steps (of the training series' median spacing) from the end of a 1-D series ``X``
    (``n x 1``) to its furthest prediction input in ``X_test``; ``None`` when there are no
    prediction inputs beyond the end (interpolation, or none given)."""
    if X_test is None or len(X_test) == 0 or X.shape[1] != 1:
        return None
    x = np.unique(X[:, 0])
    if len(x) < 2:
        return None
    lead = (float(np.max(X_test[:, 0])) - x[-1]) / float(np.median(np.diff(x)))
    return round(lead) if lead >= 0.5 else None


def with_forecast_horizon(
    config: FitConfig, X: np.ndarray, series: bool, X_test: np.ndarray | None
) -> tuple[FitConfig, int | None]:
    """``config`` with ``tune.horizon`` set to the forecast horizon the prediction inputs ask
    for (at least :data:`MIN_HORIZON`), so the rolling origins score the lead times the
    forecast needs (FPP3 5.10); and that horizon. ``(config, None)`` unchanged when the user
    set a horizon, the data is not a series, nothing is forecast past its end, or the series
    has no room for ``tune.origins`` origins of that horizon."""
    t = config.tune
    steps = None if t.horizon is not None or not series else forecast_horizon(X, X_test)
    if steps is None:
        return config, None
    horizon = max(steps, MIN_HORIZON)
    if not has_room(len(X), t.origins, horizon):
        return config, None
    return configured(config, {"tune.horizon": horizon}), horizon


def horizon_reported(
    config: FitConfig,
    X: np.ndarray,
    series: bool,
    X_test: np.ndarray | None,
    report: Callable[[str, dict[str, Any]], None],
) -> FitConfig:
    """:func:`with_forecast_horizon`, saying through ``report`` which horizon the rolling
    origins hold out, or that the forecast's own does not fit in the series."""
    config, horizon = with_forecast_horizon(config, X, series, X_test)
    if horizon is not None:
        report("horizon", {"horizon": horizon})
        return config
    steps = forecast_horizon(X, X_test) if series and config.tune.horizon is None else None
    # the forecast asked for a horizon the series has room for, but not this one (where no
    # rolling origin fits at all, the splits' error says so)
    if steps is not None and has_room(len(X), 1, 1):
        wanted, used = max(steps, MIN_HORIZON), rolling_horizon(len(X))
        report("horizon too long", {"wanted": wanted, "used": used})
    return config


def has_room(n: int, origins: int, horizon: int, min_train: int = MIN_TRAIN) -> bool:
    """Whether ``origins`` origins of ``horizon`` points leave ``min_train`` training points."""
    return n - origins * horizon >= min_train


def configured(config: FitConfig, overrides: dict[str, Any]) -> FitConfig:
    """A copy of ``config`` with dotted ``overrides`` applied and checked."""
    out = copy.deepcopy(config)
    for key, value in overrides.items():
        put(out, key, value)
    return out.validate()


def evaluate(
    X: np.ndarray,
    y: np.ndarray,
    config: FitConfig,
    name: str,
    overrides: dict[str, Any],
    splits: list[tuple[np.ndarray, np.ndarray]],
    backend=None,
    iterations: int | None = VALIDATION_ITERATIONS,
    groups: np.ndarray | None = None,
) -> Evaluation:
    """Score one setting: a full fit per split on its training part, MSE on its held-out part.

    ``groups`` (shard labels of ``shard: column:NAME``) are split with the data."""
    candidates = [(name, overrides)]
    return evaluate_many(X, y, config, candidates, splits, backend, iterations, groups)[0]


def evaluate_many(
    X: np.ndarray,
    y: np.ndarray,
    config: FitConfig,
    candidates: Sequence[tuple[str, dict[str, Any]]],
    splits: list[tuple[np.ndarray, np.ndarray]],
    backend=None,
    iterations: int | None = VALIDATION_ITERATIONS,
    groups: np.ndarray | None = None,
    bars: Sequence[Sequence[float] | None] | None = None,
    done: Callable[[Evaluation], None] | None = None,
) -> list[Evaluation]:
    """Score ``(name, overrides)`` settings on the same splits (:func:`evaluate` for each).

    The fits are independent, so without a shared backend they run side by side in threads,
    as many at once as :func:`parallel_fits` allows, each with that share of the thread budget
    (the dense calls release the GIL: :mod:`distgp.kernels.lapack`). The scores are those of
    one fit after another: each fit is deterministic, and below
    :data:`~distgp.threads.BLAS_PARALLEL_N` rows its thread count changes none of its numbers
    (one BLAS thread per call). Each evaluation's ``seconds`` is its share of the wall time, so
    they add up to it.

    ``bars``: per candidate, ``None`` or a bar's per-fold MSEs on the same splits (in
    ``--tune``, the default path's choice's); with any, the folds are scored one at a time, in
    order, and a candidate :func:`behind` its bar after a fold stops there (a race).

    ``done``: called with each candidate's evaluation as soon as it is scored (progress), in
    candidate order; its ``seconds`` are then its own fits' (side by side, they add up to more
    than the wall time: the returned evaluations hold the shares)."""
    K = len(splits)
    bars = list(bars) if bars is not None else [None] * len(candidates)
    racing = any(bar is not None for bar in bars)
    rows = max((len(train) for train, _ in splits), default=0)
    width, share = parallel_fits(config, len(candidates) * (1 if racing else K), rows, backend)
    trials = []
    for _, overrides in candidates:
        trial = configured(config, overrides)
        if iterations is not None:
            trial.learn.max_iterations = min(trial.learn.max_iterations, iterations)
        if width > 1:
            trial.learn.threads = share
        trials.append(trial)

    def score(task: tuple[int, int]) -> SplitScore:
        i, k = task
        return _split_score(X, y, trials[i], splits[k], backend, groups)

    counts = [len(held) for _, held in splits]
    scores: dict[tuple[int, int], SplitScore] = {}

    def evaluation(i: int, share_of: float | None = None) -> Evaluation:
        """Candidate ``i`` from its scored folds; ``seconds`` its fits' own, times
        ``share_of`` (wall time over the fits' total) when given."""
        name, overrides = candidates[i]
        mine = [scores[i, k] for k in range(K) if (i, k) in scores]
        seconds = sum(s.seconds for s in mine) * (1.0 if share_of is None else share_of)
        errors, z2 = [s.mse for s in mine], [s.z2 for s in mine]
        e = Evaluation.scored(name, overrides, errors, counts[: len(mine)], seconds, z2)
        e.bits = sum(s.bits for s in mine)
        if len(mine) < K:
            e.stopped = True
            e.bar_mse = float(np.average(bars[i][: len(mine)], weights=e.counts))
        return e

    alive = list(range(len(candidates)))
    reported = 0  # candidates handed to ``done`` so far (in order)
    tic = time.perf_counter()
    with contextlib.ExitStack() as stack:
        pool = None
        if width > 1:
            # the process-wide BLAS limit is ``share`` for the whole batch, so the limit a task
            # sets and restores on its way goes back to ``share``, not to this thread's own
            stack.enter_context(blas_threads(share))
            pool = ThreadPoolExecutor(width)  # interrupted: the fits not yet started never do
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        for folds in [[k] for k in range(K)] if racing else [list(range(K))]:
            tasks = [(i, k) for i in alive for k in folds]
            results = pool.map(score, tasks) if pool else map(score, tasks)
            for task, result in zip(tasks, results, strict=True):
                scores[task] = result
                if done is not None and not racing and task[1] == K - 1:
                    done(evaluation(task[0]))
                    reported += 1
            scored = folds[-1] + 1
            alive = [
                i
                for i in alive
                if bars[i] is None
                or not behind([scores[i, k].mse for k in range(scored)], bars[i], counts)
            ]
    wall = time.perf_counter() - tic
    busy = sum(s.seconds for s in scores.values()) or 1.0
    out = [evaluation(i, wall / busy) for i in range(len(candidates))]
    if done is not None:
        for e in out[reported:]:  # a race's: once every fold is in
            done(e)
    return out


def behind(
    folds: Sequence[float], bar: Sequence[float], counts: Sequence[int], factor: float | None = None
) -> bool:
    """Whether a setting's held-out squared error on its first ``len(folds)`` folds (per-fold
    MSEs, ``counts`` held-out points each) exceeds ``factor`` (:data:`RACE_FACTOR` by default)
    times the bar's on the same folds, with folds left to score."""
    k = len(folds)
    if k >= len(bar):
        return False
    ours = float(np.dot(folds, counts[:k]))
    theirs = float(np.dot(bar[:k], counts[:k]))
    factor = RACE_FACTOR if factor is None else factor  # read when called (race_replay sets it)
    return not ours <= factor * theirs  # a non-finite score is behind


def parallel_fits(config: FitConfig, tasks: int, rows: int, backend=None) -> tuple[int, int]:
    """``(width, threads)``: how many of ``tasks`` independent held-out fits on up to ``rows``
    training points run at once and the threads of each, the run's thread budget
    (``learn.threads``, else the idle cores) split among them. ``(1, budget)`` when a shared
    backend (a Ray instance) runs the fits, their agents are not in this process, or the fits
    are smaller than :data:`~distgp.kernels.lapack.GIL_FREE_MIN_N` rows: their dense calls then
    hold the GIL, and two at a time were slower than one after another (0.78x on hoteldata's
    148 points at commit d0d25df, ``benchmarks/parallel_fits.py``)."""
    total = thread_budget(config.learn.threads)
    if backend is not None or config.backend_name != "inline" or rows < GIL_FREE_MIN_N:
        return 1, total
    width = max(1, min(total, tasks))
    return width, max(1, total // width)


class SplitScore(NamedTuple):
    """One held-out split of one setting: MSE (raw units), sum of squared z-scores, seconds of
    its fit, and the bits of its fit's messages (``bits_sent``)."""

    mse: float
    z2: float
    seconds: float
    bits: int


def _split_score(
    X: np.ndarray,
    y: np.ndarray,
    trial: FitConfig,
    split: tuple[np.ndarray, np.ndarray],
    backend,
    groups: np.ndarray | None,
) -> SplitScore:
    """One split's scores from a fit on its training part (``inf`` if that cannot be
    factorised)."""
    from distgp.driver import fit

    train, held = split
    tic = time.perf_counter()
    bits = 0
    try:
        part = None if groups is None else groups[train]
        # predicted while the agents live: a private model's agents hold only this split
        result = fit(X[train], y[train], trial, groups=part, backend=backend, X_test=X[held])
        bits = int(result.bits_sent)
        mse = float(np.mean((y[held] - result.forecast()) ** 2))
        mean, std = result.prediction
        z2 = winsorised_z2((result.model.transform.forward(y[held]) - mean) / std)
    except np.linalg.LinAlgError:  # a setting that cannot be factorised scores inf
        mse = z2 = math.inf
    return SplitScore(mse, z2, time.perf_counter() - tic, bits)


def winsorised_z2(z: np.ndarray) -> float:
    """The sum of one held-out split's squared z-scores ``z``, each at most
    :data:`OUTLIER_Z2` times the split's robust variance ``median(z^2) / 0.4549`` (the median
    of ``z^2`` for ``z ~ N(0, s^2)`` is ``0.4549 s^2``). An outlier held out is predicted by a
    fit that never saw it: its z-score (1e13 for one point of 1e12 among values of 1) would set
    the calibration factor alone, on a final model whose variance already absorbs it. Errors
    of Gaussian scale are never clipped in practice (``|z| > 5 s``: probability 6e-7), and a
    split whose errors are all too large for its intervals keeps them (the cap scales with
    them). The robust variance is at least 1, a z-score's nominal variance: a split whose
    errors are mostly 0 (a model that fits most points exactly) keeps its misses. A split of
    one or two points has the outlier in its median and clips nothing."""
    z2 = np.asarray(z, float) ** 2
    cap = OUTLIER_Z2 * max(1.0, float(np.median(z2)) / CHI2_1_MEDIAN)
    return float(np.sum(np.minimum(z2, cap)))


def evaluations_csv(evaluations: list[Evaluation]) -> str:
    """One row per scored setting: name, held-out MSE, seconds, per-fold MSEs and held-out
    points, overrides, whether it was chosen and whether it stopped early (its MSE then over
    the folds it was scored on)."""
    lines = ["evaluation,setting,heldout_mse,seconds,fold_mse,fold_points,overrides,chosen,stopped"]
    for i, e in enumerate(evaluations):
        folds = " ".join(f"{v:.6g}" for v in e.folds)
        points = " ".join(str(c) for c in e.counts)
        settings = " ".join(f"{k}={v}" for k, v in e.overrides.items())
        chosen, stopped = "yes" if e.chosen else "", "yes" if e.stopped else ""
        lines.append(
            f'{i},"{e.name}",{e.mse:.8g},{e.seconds:.3f},{folds},{points},"{settings}",{chosen},'
            f"{stopped}"
        )
    return "\n".join(lines) + "\n"


def keep_for_resume(evaluations: list[Evaluation], fit_options: dict[str, Any]) -> None:
    """Record an outer choice in the run's checkpoint (``fit_options["checkpoint"]``) before
    its final fit starts, so that ``--resume`` ends with the same calibration and records."""
    checkpoint = fit_options.get("checkpoint")
    if checkpoint is not None:
        checkpoint.outer_choice = [e.to_dict() for e in evaluations]
        checkpoint.searching = None


def mark_searching(fit_options: dict[str, Any], what: str) -> None:
    """Mark the run's checkpoint (``fit_options["checkpoint"]``) as in an outer choice (``what``:
    ``the --tune search``), which is not saved until it has chosen (:func:`keep_for_resume`):
    an interrupt then says the run starts again, not that ``--resume`` continues it."""
    checkpoint = fit_options.get("checkpoint")
    if checkpoint is not None:
        checkpoint.searching = what
