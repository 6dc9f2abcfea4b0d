"""Outer model choice: settings DSCA cannot learn, scored on data held out from the training set.

DSCA learns the weights of a fixed grid by the evidence; the grid, the trend family, the
transform and the noise floor are outer settings. Each candidate setting is scored by full fits
on part of the **training** data and the error of their predictions on the rest (the test split
is never seen):

* a 1-D series: rolling origin (FPP3 5.10). With ``origins`` origins and horizon ``h``, fold
  ``k`` trains on the first ``n - k h`` points and predicts the next ``h``;
* other data: ``folds`` random folds (K-fold cross-validation).

The score is the held-out mean squared error in raw units over all folds (each fold weighted
by its held-out points).

:func:`fit_selected` is the default path of ``distgp fit`` for data with one input (a series or
not): it scores the few candidates of :func:`default_candidates` (trend family, the log
transform for a positive series, a smoother local trend for a series, and near-constant models
that predict about the training mean or the recent level) and refits the best on all training
data, so a model whose held-out predictions lose to a flat one is not chosen.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from distgp import flops
from distgp.config import FitConfig
from distgp.exceptions import ConfigError, InputDataError
from distgp.kernels.grid import default_components, default_levels
from distgp.kernels.lapack import GIL_FREE_MIN_N
from distgp.kernels.trend import TrendBasis
from distgp.seasonality import seasonal_period, series_step
from distgp.settings import put
from distgp.threads import blas_threads, default_threads

if TYPE_CHECKING:
    from distgp.driver import FitResult

DEFAULT_CANDIDATES: dict[str, dict[str, Any]] = {
    "level": {
        "kernel.trend": "constant",
        "kernel.components": 1,
        "kernel.slow_components": 0,
        "kernel.frequency_scale": 4.0,
    },
    "flat": {"kernel.trend": "constant", "kernel.components": 1},
    "local trend": {"kernel.trend": "local"},
    "quadratic trend": {"kernel.trend": "quadratic"},
}
"""Candidates of the default selection for data with one input (overrides of the user's
config), simplest first. ``level``: a constant and one zero-frequency component narrower than
the data's spacing (nearly white), a model that forecasts the training mean, the fallback when
every richer model forecasts worse on held-out data (a short noisy series); ``flat``: a constant
and the grid's few zero-frequency components (one broad one and the slow ones), a model that
forecasts about the recent level and, between inputs, a smooth mixture of a few bandwidths;
``local trend``: the full grid with the random-walk level and slope of the ``local`` trend
family (:mod:`distgp.kernels.trend`; it nests the full grid alone: the evidence may give the
walks no weight); ``quadratic trend``: the full grid with a quadratic trend part (it nests the
linear one: every coefficient has its own weight, learned by the evidence). ``local trend``
replaced the full grid alone, chosen on training data only (``python
benchmarks/local_trend_backtest.py``, docs/forecasting.md)."""

LOG_CANDIDATES: dict[str, dict[str, Any]] = {
    "local trend, log": {"kernel.trend": "local", "kernel.transform": "log"},
    "quadratic trend, log": {"kernel.trend": "quadratic", "kernel.transform": "log"},
}
"""Candidates the default selection adds for a series of positive values with no transform set
(after :data:`DEFAULT_CANDIDATES`, so they count as the more complex): the full grid with the
local or the quadratic trend, fitted to ``log y``, for growth and seasonality that scale with
the level. Chosen on training data only (``python benchmarks/log_candidates_backtest.py``,
docs/forecasting.md)."""

SMOOTHER_FLOOR = 0.1
"""Noise floor (fraction of ``var(y)``) of :func:`smoother_candidates`."""
SMOOTHER_MIN_N = 100
"""Fewest training points of a series that gets :func:`smoother_candidates` (issue 10's bound
of a short series)."""


def smoother_candidates(config: FitConfig, log: bool, n: int) -> dict[str, dict[str, Any]]:
    """Candidates the default selection adds last for a series of at least
    :data:`SMOOTHER_MIN_N` points: the local trend (and, with ``log``, its log model) with the
    noise floor raised to :data:`SMOOTHER_FLOOR`, so that at least a tenth of the variance is
    noise. With hundreds of weights the evidence can explain a noisy series almost exactly and
    forecast from its last wiggles; a higher floor makes the fit smoother. Chosen on training
    data only (``python benchmarks/candidate_backtest.py``, docs/forecasting.md). A shorter
    series keeps the candidates chosen for short series: two origins of a few points each cannot
    tell eight candidates apart (statsmodels' El Nino December temperatures, 49 points: one of
    these won by one origin's luck and forecast twice as badly as the training mean). A floor
    the user set at or above it leaves nothing to add (the candidates only ever raise it)."""
    if config.learn.noise_floor >= SMOOTHER_FLOOR or n < SMOOTHER_MIN_N:
        return {}
    floor = {"learn.noise_floor": SMOOTHER_FLOOR}
    out = {f"local trend, floor {SMOOTHER_FLOOR:g}": {"kernel.trend": "local", **floor}}
    if log:
        out[f"local trend, log, floor {SMOOTHER_FLOOR:g}"] = {
            "kernel.trend": "local",
            "kernel.transform": "log",
            **floor,
        }
    return out


SEASONAL_CANDIDATE = "linear trend, season"


def seasonal_candidates(config: FitConfig, period: float | None) -> dict[str, dict[str, Any]]:
    """The candidate the default selection adds last for a series with a seasonal ``period``
    (:func:`~distgp.seasonality.seasonal_period`, input units): ``linear trend, season``, the
    grid's few zero-frequency components (``flat``'s) with a linear trend and the seasonal
    pattern and walk of that period (:mod:`distgp.kernels.trend`): a fixed season and one that
    evolves, each phase forecast from its recent seasons. Nothing when no period was found, the
    user set a season (every candidate then has it) or on the reference grid (raw inputs: a
    season needs the data grid's). Chosen on training data only, against the local trend, no
    trend, a quadratic trend, the noise floor at 0.1 and the log model with the season
    (``python benchmarks/candidate_backtest.py``, docs/forecasting.md)."""
    if not period or config.kernel.season or config.kernel.grid != "data":
        return {}
    return {
        SEASONAL_CANDIDATE: {
            "kernel.components": 1,
            "kernel.trend": "linear",
            "kernel.season": float(period),
        }
    }


SIMPLER_TOLERANCE = 0.01  # a simpler candidate within 1% of the best held-out MSE is chosen
SELECT_MAX_N = 1000  # the default selection runs on data with one input up to this many points
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
            included); see :attr:`mean_z2`.
        stopped: scored on its first folds only: behind the default path's choice on them
            (:func:`behind`); never chosen.
        bar_mse: of a stopped evaluation, its bar's MSE over the same folds (see
            :func:`reward`).
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
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held-out)`` index pairs within ``n`` training points.

    Raises:
        InputDataError: the rolling origin needs more points than the series has.
    """
    if series:
        h = rolling_horizon(n, horizon, min_horizon)
        if h < 1 or origins < 1:
            raise ConfigError("the rolling-origin horizon and number of origins must be >= 1")
        if not has_room(n, origins, h, min_train):
            raise InputDataError(
                f"a rolling origin of {origins} x {h} held-out points leaves {n - origins * h} "
                f"of the series' {n} training points (at least {min_train} needed); use a "
                "shorter horizon or fewer origins"
            )
        return [
            (np.arange(n - k * h), np.arange(n - k * h, n - (k - 1) * h))
            for k in range(origins, 0, -1)
        ]
    if folds < 2 or n < 2 * folds:
        raise InputDataError(f"{folds}-fold validation needs at least {2 * folds} points, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [
        (np.sort(np.concatenate(parts[:k] + parts[k + 1 :])), np.sort(parts[k]))
        for k in range(folds)
    ]


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
    if steps is not None:  # the forecast asked for a horizon the series has no room for
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
    order, and a candidate :func:`behind` its bar after a fold stops there (a race)."""
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

    def score(task: tuple[int, int]) -> tuple[float, float, float]:
        i, k = task
        return _split_score(X, y, trials[i], splits[k], backend, groups)

    counts = [len(held) for _, held in splits]
    scores: dict[tuple[int, int], tuple[float, float, float]] = {}
    alive = list(range(len(candidates)))
    tic = time.perf_counter()
    with contextlib.ExitStack() as stack:
        pool = None
        if width > 1:
            # the process-wide BLAS limit is ``share`` for the whole batch, so the limit a task
            # sets and restores on its way goes back to ``share``, not to this thread's own
            stack.enter_context(blas_threads(share))
            pool = stack.enter_context(ThreadPoolExecutor(width))
        for folds in [[k] for k in range(K)] if racing else [list(range(K))]:
            tasks = [(i, k) for i in alive for k in folds]
            results = pool.map(score, tasks) if pool else map(score, tasks)
            scores.update(zip(tasks, results, strict=True))
            done = folds[-1] + 1
            alive = [
                i
                for i in alive
                if bars[i] is None
                or not behind([scores[i, k][0] for k in range(done)], bars[i], counts)
            ]
    wall = time.perf_counter() - tic
    busy = sum(seconds for _, _, seconds in scores.values()) or 1.0
    out = []
    for i, (name, overrides) in enumerate(candidates):
        mine = [scores[i, k] for k in range(K) if (i, k) in scores]
        seconds = wall * sum(s for _, _, s in mine) / busy
        errors, z2 = [m for m, _, _ in mine], [z for _, z, _ in mine]
        e = Evaluation.scored(name, overrides, errors, counts[: len(mine)], seconds, z2)
        if len(mine) < K:
            e.stopped = True
            e.bar_mse = float(np.average(bars[i][: len(mine)], weights=e.counts))
        out.append(e)
    return out


def behind(
    folds: Sequence[float], bar: Sequence[float], counts: Sequence[int], factor: float = 0
) -> bool:
    """Whether a setting's held-out squared error on its first ``len(folds)`` folds (per-fold
    MSEs, ``counts`` held-out points each) exceeds ``factor`` (:data:`RACE_FACTOR` by default)
    times the bar's on the same folds, with folds left to score."""
    k = len(folds)
    if k >= len(bar):
        return False
    ours = float(np.dot(folds, counts[:k]))
    theirs = float(np.dot(bar[:k], counts[:k]))
    return not ours <= (factor or RACE_FACTOR) * theirs  # a non-finite score is behind


def parallel_fits(config: FitConfig, tasks: int, rows: int, backend=None) -> tuple[int, int]:
    """``(width, threads)``: how many of ``tasks`` independent held-out fits on up to ``rows``
    training points run at once and the threads of each, the run's thread budget
    (``learn.threads``, else the idle cores) split among them. ``(1, budget)`` when a shared
    backend (a Ray instance) runs the fits, their agents are not in this process, or the fits
    are smaller than :data:`~distgp.kernels.lapack.GIL_FREE_MIN_N` rows: their dense calls then
    hold the GIL, and two at a time were slower than one after another (0.78x on hoteldata's
    148 points at commit d0d25df, ``benchmarks/parallel_fits.py``)."""
    total = config.learn.threads or default_threads()
    if backend is not None or config.backend_name != "inline" or rows < GIL_FREE_MIN_N:
        return 1, total
    width = max(1, min(total, tasks))
    return width, max(1, total // width)


def _split_score(
    X: np.ndarray,
    y: np.ndarray,
    trial: FitConfig,
    split: tuple[np.ndarray, np.ndarray],
    backend,
    groups: np.ndarray | None,
) -> tuple[float, float, float]:
    """One split's held-out MSE (raw units), sum of squared z-scores and seconds, from a fit on
    its training part (``inf`` scores if that cannot be factorised)."""
    from distgp.driver import fit

    train, held = split
    tic = time.perf_counter()
    try:
        part = None if groups is None else groups[train]
        # predicted while the agents live: a private model's agents hold only this split
        result = fit(X[train], y[train], trial, groups=part, backend=backend, X_test=X[held])
        mse = float(np.mean((y[held] - result.forecast()) ** 2))
        mean, std = result.prediction
        z = (result.model.transform.forward(y[held]) - mean) / std
        z2 = float(np.sum(z**2))
    except np.linalg.LinAlgError:  # a setting that cannot be factorised scores inf
        mse = z2 = math.inf
    return mse, z2, time.perf_counter() - tic


def default_candidates(
    config: FitConfig, series: bool, positive: bool, n: int, period: float | None = None
) -> dict[str, dict]:
    """The default selection's candidates for ``n`` training points, simplest first:
    :data:`DEFAULT_CANDIDATES`, :data:`LOG_CANDIDATES` for a series of ``positive`` outputs
    with no transform set, then for a series :func:`smoother_candidates` and, with a seasonal
    ``period`` (input units), :func:`seasonal_candidates`; on the reference grid (raw inputs)
    the full grid alone stands in for the local trend, and there is no seasonal walk."""
    candidates = dict(DEFAULT_CANDIDATES)
    log = series and positive and config.kernel.transform == "none"
    if log:
        candidates.update(LOG_CANDIDATES)
    if series:
        candidates.update(smoother_candidates(config, log, n))
    if series:
        candidates.update(seasonal_candidates(config, period))
    if config.kernel.grid == "data":
        return candidates
    return {  # the local trend needs the data grid's standardised inputs: the full grid alone
        name.replace("local trend", "stationary"): (
            {**overrides, "kernel.trend": "none"}
            if overrides.get("kernel.trend") == "local"
            else overrides
        )
        for name, overrides in candidates.items()
    }


def applies(config: FitConfig, series: bool, n: int, *, dims: int) -> bool:
    """Whether the default selection runs: trend ``auto``, one input, at most
    ``SELECT_MAX_N`` points, and room for the held-out data (the rolling origin of a series;
    otherwise ``tune.folds`` folds, each training on at least ``MIN_TRAIN`` points)."""
    t = config.tune
    if not (config.kernel.trend == "auto" and dims == 1 and n <= SELECT_MAX_N):
        return False
    if not series:
        return n >= 2 * t.folds and n - math.ceil(n / t.folds) >= MIN_TRAIN
    if t.horizon is not None:
        holdout_splits(n, True, t.horizon, t.origins)  # a horizon the user set must fit
        return True
    return has_room(n, t.origins, rolling_horizon(n))


def check_data(
    config: FitConfig,
    X: np.ndarray,
    y: np.ndarray,
    series: bool,
    names: list[str] | None = None,
) -> None:
    """Fail fast on outer settings the training data cannot support: a trend family or a
    season its ``n x P`` inputs ``X`` cannot hold, a transform that needs positive data, a
    rolling origin longer than the series, and with ``names`` (a tuning run's tunables), none
    of them applying (:func:`search_space`)."""
    from distgp.transforms import OutputTransform, parse_transform

    dims = X.shape[1]
    step = series_step(X) if config.kernel.season else 0.0
    TrendBasis.named(config.kernel.trend, dims, config.kernel.season, step)
    OutputTransform.fitted(*parse_transform(config.kernel.transform), y)
    if series:
        applies(config, series, len(y), dims=1)
    if names:
        search_space(names, config, training_facts(X, y, series))


def training_facts(X: np.ndarray, y: np.ndarray, series: bool) -> TrainingFacts:
    """The :class:`TrainingFacts` of training data in the driver (``n x P`` inputs ``X``)."""
    period = seasonal_period(X, y) if series else None
    return TrainingFacts(len(y), X.shape[1], bool(series), bool(np.all(y > 0)), period)


def fit_selected(
    X: np.ndarray,
    y: np.ndarray,
    config: FitConfig,
    series: bool,
    report: Callable[[str, dict[str, Any]], None] | None = None,
    **fit_options: Any,
):
    """``driver.fit`` after choosing among :func:`default_candidates` on held-out training
    data: by rolling origin for a series, by ``tune.folds`` random folds for other data with
    one input.

    Returns:
        ``(FitResult, evaluations)``; ``evaluations`` is empty when no selection ran (several
        inputs, a trend family fixed by the user, or too little data), and the fit then uses
        ``config`` as is (trend ``auto`` is then linear with one input, none with several).
    """
    from distgp.driver import fit

    report = report or (lambda event, fields: None)
    if config.kernel.trend == "auto":  # a fixed trend family: no selection to score
        series = as_forecast(series, X, fit_options.get("X_test"), report)
    check_data(config, X, y, series)
    if not applies(config, series, len(y), dims=X.shape[1]):
        if X.shape[1] == 1 and config.kernel.trend == "auto":
            report("no choice", {"n": len(y), "many": len(y) > SELECT_MAX_N})
        return fit(X, y, config, report=report, **fit_options), []
    if fit_options.get("backend") is None and config.backend_name == "ray":
        # one Ray instance for every candidate's fits and the final fit (ray.init takes seconds)
        from distgp.driver import make_run_backend, preflight

        preflight(config, len(y), fit_options.get("groups"))
        with make_run_backend(config) as backend:
            return _select_and_fit(
                X, y, config, series, report, {**fit_options, "backend": backend}
            )
    return _select_and_fit(X, y, config, series, report, fit_options)


def _select_and_fit(
    X: np.ndarray,
    y: np.ndarray,
    config: FitConfig,
    series: bool,
    report: Callable[[str, dict[str, Any]], None],
    fit_options: dict[str, Any],
):
    """:func:`fit_selected`'s choice and final fit, on ``fit_options``'s backend if any."""
    from distgp.driver import fit

    config = horizon_reported(config, X, series, fit_options.get("X_test"), report)
    t = config.tune
    if not series:
        report("folds", {"folds": t.folds})
    splits = holdout_splits(len(y), series, t.horizon, t.origins, t.folds, config.seed)
    if series:
        splits = in_input_order(splits, X)
    backend, groups = fit_options.get("backend"), fit_options.get("groups")
    period = seasonal_period(X, y) if series else None
    positive = bool(np.all(y > 0))
    candidates = list(default_candidates(config, series, positive, len(y), period).items())
    if any(name == SEASONAL_CANDIDATE for name, _ in candidates):
        report("season", {"period": period})
    with flops.excluded():  # a benchmark's flops per iteration are the final fit's
        evaluations = evaluate_many(X, y, config, candidates, splits, backend, groups=groups)
    for evaluation in evaluations:
        report("candidate", {"evaluation": evaluation})
    best = simplest_best(evaluations)
    best.chosen = True
    report("selected", {"evaluation": best})
    lowest = min(evaluations, key=lambda e: e.mse)
    if lowest is not best:
        report("simpler", {"evaluation": best, "lowest": lowest})
    # no warm start from a fold: DSCA is a local method, and the final fit should be the fit
    # the candidate's own settings give (a fold's optimum can lead it elsewhere)
    result = fit(X, y, configured(config, best.overrides), report=report, **fit_options)
    return calibrated(result, best, config, report), evaluations


def calibrated(
    result: FitResult,
    chosen: Evaluation,
    config: FitConfig,
    report: Callable[[str, dict[str, Any]], None] | None = None,
) -> FitResult:
    """``result`` with its predictive variance widened by the chosen setting's held-out
    :attr:`~Evaluation.mean_z2` where that exceeds 1 (``tune.calibrate``; the predictive mean
    is unchanged).

    The evidence fixes the kernel's overall scale from the training data alone; with the noise
    at its floor, or a forecast further out than the data's own correlations reach, its
    intervals are too narrow. The held-out folds measure that where the forecast is made (a
    rolling origin's lead times). Intervals are only widened: narrowing them on a few dozen
    held-out points under-covered more often than it helped (docs/forecasting.md,
    ``benchmarks/calibration_backtest.py``)."""
    z2 = chosen.mean_z2
    if not config.tune.calibrate or z2 is None:
        return result
    scale = max(1.0, z2)
    result.model.variance_scale = scale
    if result.prediction is not None:
        mean, std = result.prediction
        result.prediction = (mean, std * math.sqrt(scale))
    if report is not None:
        report("calibrated", {"mean_z2": z2, "scale": scale, "points": int(sum(chosen.counts))})
    return result


def simplest_best(evaluations: list[Evaluation]) -> Evaluation:
    """The first (simplest) evaluation within :data:`SIMPLER_TOLERANCE` of the lowest MSE."""
    lowest = min(e.mse for e in evaluations)
    return next(e for e in evaluations if e.mse <= lowest * (1 + SIMPLER_TOLERANCE))


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


# ----------------------------------------------------------------------------------------------
# BKB on top of the learner (``distgp fit --tune BUDGET``)

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
    """The tunable names, checked; an unknown one is a :class:`ConfigError`."""
    unknown = [n for n in names if n not in TUNABLES]
    if unknown:
        raise ConfigError(f"unknown tunable {unknown[0]!r}; choose among: {', '.join(TUNABLES)}")
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
    if len(grid) < 2:
        raise ConfigError(
            f"no tunable among {', '.join(names)} applies to this data (transform: positive "
            "outputs; season: a series on the data grid with a period; trend, levels, "
            "components and noise_floor: any data); add one to --tunables"
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
    held-out MSE. A series is scored on ``tune.search_origins`` rolling origins where it has
    room for them (more held-out data than the default selection's, as the best of many
    candidates is chosen).
    Once those are scored, each setting BKB proposes races the default path's choice fold by
    fold (:data:`RACE_FACTOR`; BKB is told its :func:`reward`). The best setting scored on
    every fold replaces the default path's choice only when it is
    :meth:`~Evaluation.clearly_better_than` it (by more than two standard errors of the paired
    per-fold differences: the lowest of many noisy scores is biased low), and the chosen
    setting is refitted on all training data.

    With the inline backend the evaluations run one after another in this process, each a full
    fit per split of the training set (:func:`evaluate`). With a Ray backend agents score each
    batch at once, each on its own shard (:mod:`distgp.tune_shards`): with one agent, four
    copies of it each run one evaluation of the batch (the same numbers as inline); with ``N``
    agents, each scores every candidate on its own shard.

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
    with _scoring(X, y, config, series, shards, fit_options, names) as scoring:
        facts = scoring.facts
        names, grid, period = search_space(names, config, facts)
        seeds = _first_candidates(
            names, grid, config, facts.series, facts.dims, facts.n, facts.positive, facts.period
        )
        if budget <= len(seeds):
            report("no search", {"budget": budget, "first": len(seeds)})
        span = np.maximum(grid.max(0), 1.0)
        bandit = BKB(grid / span, beta=TUNE_BETA, batch=False, seed=config.seed)
        evaluations: list[Evaluation] = []
        pending = list(seeds)  # what the default path fits comes first, batch after batch
        default: Evaluation | None = None  # the default path's choice, once its seeds are in
        t = config.tune
        while len(evaluations) < budget:
            size = min(config.tune.batch, budget - len(evaluations))
            chosen, pending = pending[:size], pending[size:]
            known = [a for _, _, a in chosen + pending if a is not None]
            arms = np.atleast_1d(bandit.ask(size))
            arms = [int(a) for a in arms if a not in known][: size - len(chosen)]
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
        first = evaluations[: min(len(seeds), budget)]
        default = default_choice(first, origins, t.origins, facts.series)
        best = min((e for e in evaluations if not e.stopped), key=lambda e: e.mse)
        if not best.clearly_better_than(default):
            if best is not default:
                report("kept", {"evaluation": default, "lowest": best})
            best = default
        best.chosen = True
        report("selected", {"evaluation": best})
        result = scoring.fit(configured(config, best.overrides), report)
    return calibrated(result, best, config, report), evaluations, best


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
    """

    n: int
    dims: int
    series: bool
    positive: bool
    period: float | None = None


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
        check_data(config, X, y, series)
        facts = training_facts(X, y, series)
        search_space(names, config, facts)  # tunables that do not apply: before any agent
        t.origins = tune_origins(config, facts.series, facts.n)
        splits = holdout_splits(facts.n, facts.series, t.horizon, t.origins, t.folds, config.seed)
        if facts.series:
            splits = in_input_order(splits, X)
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
    copies = replicas(len(parts), t.batch) if name == "ray" else 1
    options = {**fit_options, "backend": backend}
    with backend if owned else contextlib.nullcontext(backend):
        backend.start([part for _ in range(copies) for part in parts])
        if shards is not None:
            facts, sizes = _shard_facts(backend, config, len(parts))
            t.origins = tune_origins(config, facts.series, facts.n)
        rule = validation_rule(config, facts.n, facts.series, len(parts))
        for j, size in enumerate(sizes):  # bad input before any agent scores
            shard_splits(size, j, rule)

        yield Scoring(
            facts,
            lambda batch, bars: score_on_agents(backend, config, batch, rule, len(parts), bars),
            lambda c, report: fit(X, y, c, report=report, shards=shards, **options),
        )


def _shard_facts(backend, config: FitConfig, shards: int) -> tuple[TrainingFacts, list[int]]:
    """The training facts and shard sizes from the summaries of the agents holding
    ``shards`` shard files (agent ``j`` holds shard ``j``; further agents are copies)."""
    from distgp.driver import answered, merge_summaries

    replies = answered(backend.broadcast("summary", config.data.min_shard_size))
    own = {j: replies[j] for j in range(shards)}
    summary = merge_summaries(own)
    series = all(bool(r["series"]) for r in own.values())
    sizes = [int(own[j]["n"]) for j in range(shards)]
    return TrainingFacts(summary.n, summary.dims, series, positive=False), sizes


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
