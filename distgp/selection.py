"""The default path's outer choice for data with one input (``distgp fit`` without ``--tune``).

:func:`fit_selected` scores the few candidates of :func:`default_candidates` (trend family, the
log transform for a positive series, a smoother local trend and a season for a series, and
near-constant models that predict about the training mean or the recent level) on held-out
training data (:mod:`distgp.holdout`) and refits the simplest of the best on all training data,
so a model whose held-out predictions lose to a flat one is not chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from distgp import flops
from distgp.config import FitConfig, TuneConfig
from distgp.exceptions import ConfigError
from distgp.holdout import (
    MIN_TRAIN,
    NO_SPLIT,
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
    rolling_horizon,
    unlearnable,
)
from distgp.kernels.trend import TrendBasis
from distgp.seasonality import seasonal_period, series_step

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


DEFAULT_ORIGINS = TuneConfig().origins
DEFAULT_FOLDS = TuneConfig().folds


def no_choice(why: str, n: int) -> str:
    """Why the default path made no held-out choice on ``n`` points, in words: ``why`` is
    ``"many"``, ``"few"``, ``"shards"`` or a key of :data:`~distgp.holdout.NO_SPLIT`."""
    if why == "many":
        return f"{n} points are more than it runs on ({SELECT_MAX_N}); --tune BUDGET searches"
    if why == "few":
        return f"{n} points are too few for it (each fold trains on {MIN_TRAIN} or more)"
    if why == "shards":
        return "shard files are scored only by --tune BUDGET (on the agents' own shards)"
    return NO_SPLIT[why]


def applies(config: FitConfig, series: bool, n: int, *, dims: int) -> bool:
    """Whether the default selection runs: trend ``auto``, one input, at most
    ``SELECT_MAX_N`` points, and room for the held-out data (the rolling origin of a series;
    otherwise ``tune.folds`` folds, each training on at least ``MIN_TRAIN`` points)."""
    t = config.tune
    if not (config.kernel.trend == "auto" and dims == 1 and n <= SELECT_MAX_N):
        return False
    if not series:
        return n >= 2 * t.folds and n - math.ceil(n / t.folds) >= MIN_TRAIN
    if t.horizon is not None or t.origins != DEFAULT_ORIGINS:
        # a rolling origin the user set must fit
        scoring = "--tune (and --horizon, --origins)" if t.budget else "--horizon and --origins"
        holdout_splits(n, True, t.horizon, t.origins, scoring=scoring)
        return True
    return has_room(n, t.origins, rolling_horizon(n))


def check_data(config: FitConfig, X: np.ndarray, y: np.ndarray, series: bool) -> None:
    """Fail fast on training data and outer settings it cannot support: outputs that do not
    vary, a trend family or a season its ``n x P`` inputs ``X`` cannot hold, a transform that
    needs positive data, a rolling origin longer than the series (``--tune``'s tunables:
    :func:`distgp.tune.check_search`)."""
    from distgp.data.scaling import refuse_flat_outputs
    from distgp.transforms import OutputTransform, parse_transform

    dims = X.shape[1]
    season = config.kernel.season
    step = series_step(X) if season else 0.0
    TrendBasis.named(config.kernel.trend, dims, season, step)
    span = float(np.ptp(X[:, 0])) if dims == 1 and len(X) else math.inf
    if season > span:
        raise ConfigError(
            f"kernel.season ({season:g}) is longer than the training inputs span ({span:g}): "
            "no cycle of it is seen to repeat; set a shorter one, or 0",
            setting="kernel.season",
        )
    OutputTransform.fitted(*parse_transform(config.kernel.transform), y)
    if len(y):  # before the held-out splits' progress lines
        refuse_flat_outputs(float(np.std(y)), float(np.mean(y)), "training outputs y")
    if series:
        applies(config, series, len(y), dims=1)
    if config.tune.folds != DEFAULT_FOLDS:  # folds the user set must apply, and fit
        if series:
            raise ConfigError(
                "tune.folds is for regression data; a series is held out by rolling origin: "
                "set tune.origins (--origins) or tune.horizon (--horizon) instead",
                setting="tune.folds",
            )
        if unused_folds(config, dims, len(y)) is None:
            holdout_splits(len(y), False, folds=config.tune.folds)


def unused_folds(config: FitConfig, dims: int, n: int) -> str | None:
    """Why ``tune.folds`` scores nothing on regression data of ``n`` points with ``dims``
    inputs (``None`` where K folds score settings: ``--tune``, or the default selection)."""
    if config.tune.budget:
        return None
    if config.kernel.trend != "auto":
        return "the trend family is fixed (--trend), so no held-out choice runs"
    if dims != 1:
        return f"the default held-out choice runs on one input, these data have {dims}"
    if n > SELECT_MAX_N:
        return f"the default held-out choice runs on up to {SELECT_MAX_N} points, not {n}"
    return None


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
    unused = unused_folds(config, X.shape[1], len(y))
    if config.tune.folds != DEFAULT_FOLDS and not series and unused is not None:
        report("unused folds", {"why": unused})
    if not applies(config, series, len(y), dims=X.shape[1]):
        if X.shape[1] == 1 and config.kernel.trend == "auto":
            report("no choice", {"n": len(y), "why": "many" if len(y) > SELECT_MAX_N else "few"})
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
    splits = holdout_splits(len(y), series, t.horizon, t.origins, t.folds, config.seed, X=X)
    if series:
        splits = in_input_order(splits, X)
    backend, groups = fit_options.get("backend"), fit_options.get("groups")
    scorable = learnable(splits, y, config, groups)
    if not scorable:
        report("no choice", {"n": len(y), "why": unlearnable(splits, y)})
        return fit(X, y, config, report=report, **fit_options), []
    splits = scorable
    mark_searching(fit_options, "the default path's held-out choice")  # saved once it has chosen
    period = seasonal_period(X, y) if series else None
    positive = bool(np.all(y > 0))
    candidates = list(default_candidates(config, series, positive, len(y), period).items())
    if any(name == SEASONAL_CANDIDATE for name, _ in candidates):
        report("season", {"period": period})

    def scored(evaluation: Evaluation) -> None:  # each as it is scored: progress
        report("candidate", {"evaluation": evaluation})

    with flops.excluded():  # a benchmark's flops per iteration are the final fit's
        evaluations = evaluate_many(
            X, y, config, candidates, splits, backend, groups=groups, done=scored
        )
    best = simplest_best(evaluations)
    best.chosen = True
    report("selected", {"evaluation": best})
    lowest = min(evaluations, key=lambda e: e.mse)
    if lowest is not best:
        report("simpler", {"evaluation": best, "lowest": lowest})
    # no warm start from a fold: DSCA is a local method, and the final fit should be the fit
    # the candidate's own settings give (a fold's optimum can lead it elsewhere)
    keep_for_resume(evaluations, fit_options)
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
    ``benchmarks/calibration_backtest.py``). Each held-out ``z^2`` is winsorised at 5 robust
    sigmas of its split (:func:`~distgp.holdout.winsorised_z2`): one outlier, predicted by a
    fold that never saw it, does not set the factor alone."""
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
