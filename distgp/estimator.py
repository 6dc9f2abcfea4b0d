"""The scikit-learn estimator :class:`GSMPRegressor`."""

from __future__ import annotations

import copy
import numbers
import re
import warnings
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from distgp.config import (
    BackendConfig,
    ConsensusConfig,
    DataConfig,
    FitConfig,
    KernelConfig,
    LearnConfig,
    TuneConfig,
    typed_setting,
)
from distgp.data import check_varying_inputs, check_X, check_X_y, in_time_order
from distgp.data.checks import check_values
from distgp.exceptions import ConfigError, InputDataError, NotFittedError
from distgp.settings import entries, put

if TYPE_CHECKING:
    from distgp.gp import GSMPModel

MIN_SAMPLES = 2  # a GP fit needs two points to standardise y

PARAMETERS = {
    "components": "kernel.components",
    "grid": "kernel.grid",
    "levels": "kernel.levels",
    "frequency_scale": "kernel.frequency_scale",
    "slow_components": "kernel.slow_components",
    "trend": "kernel.trend",
    "season": "kernel.season",
    "output_transform": "kernel.transform",
    "horizon": "tune.horizon",
    "origins": "tune.origins",
    "folds": "tune.folds",
    "tune": "tune.budget",
    "tune_batch": "tune.batch",
    "search_origins": "tune.search_origins",
    "calibrate": "tune.calibrate",
    "tunables": "tune.tunables",
    "noise_floor": "learn.noise_floor",
    "solver": "learn.solver",
    "inner_iterations": "learn.inner_iterations",
    "blocks": "learn.blocks",
    "max_iterations": "learn.max_iterations",
    "tol": "learn.tol",
    "kkt_tol": "learn.kkt_tol",
    "min_gain": "learn.min_gain",
    "prune_tol": "learn.prune_tol",
    "agents": "consensus.agents",
    "backend": "backend.name",
    "address": "backend.address",
    "cpus_per_agent": "backend.cpus_per_agent",
    "gpus_per_agent": "backend.gpus_per_agent",
    "round_timeout": "backend.round_timeout",
    "bits": "consensus.bits",
    "delta": "consensus.delta",
    "rounds": "consensus.max_rounds",
    "local_iterations": "consensus.local_iterations",
    "rho": "consensus.rho",
    "abs_tol": "consensus.abs_tol",
    "rel_tol": "consensus.rel_tol",
    "balance_rounds": "consensus.balance_rounds",
    "shard": "data.shard",
    "prediction": "predict",
    "threads": "learn.threads",
    "device": "learn.device",
}
"""Constructor parameter -> the setting it sets (:mod:`distgp.config`), whose default, check and
meaning it takes. A parameter is named as the setting's ``distgp fit`` flag (``--tune-batch``:
``tune_batch``) unless scikit-learn reads that name as a method (``--transform``:
``output_transform``, ``--predict``: ``prediction``). ``random_state`` becomes ``seed``,
``bits=None`` with ``delta`` unset turns ``consensus.quantize`` off, and ``warm_start`` is the
estimator's own. The settings of files and folders do not apply to arrays, and
``data.min_shard_size`` keeps its default (2 with one agent, whose data never leaves the
caller's process)."""


class GSMPRegressor(RegressorMixin, BaseEstimator):
    """Gaussian process regression with a GSMP kernel learned by SLIM-KL.

    A scikit-learn estimator: ``__init__`` only stores its arguments, ``fit(X, y)`` validates
    with scikit-learn's helpers and returns ``self``, fitted attributes end with ``_``, and
    ``score`` is R^2 (:class:`~sklearn.base.RegressorMixin`). The execution options
    (``agents``, ``backend``, ``address``, ``cpus_per_agent``, ``gpus_per_agent``,
    ``round_timeout``) are parameters like scikit-learn's ``n_jobs``: with
    one agent the fit is a centralised DSCA solve, with more the agents run quantised consensus
    ADMM, each on a private shard. Invalid settings raise :class:`~distgp.exceptions.ConfigError`
    when ``fit`` starts.

    Args:
        components: number of GSMP sub-kernels ``M`` (default 500 in 1-D, 100 per dimension).
        grid: ``data`` (data-driven, default) or ``reference`` (the SLIM-KL code's grid).
        levels: bandwidth levels of the data grid.
        frequency_scale: scale of the grid's frequencies (1: up to the Nyquist frequency of as
            many evenly spaced points as distinct training inputs).
        slow_components: zero-frequency components of the data grid, below its spacing.
        trend: trend part ``auto`` (default: with one input and at most 1000 points, the choice
            of :func:`distgp.selection.fit_selected` among the default candidates on held-out
            training data, by rolling origin for a series (:func:`distgp.data.is_series`), else
            by random folds;
            otherwise, or with too little data to hold out, linear for one input and none for
            several), ``none``, ``constant``, ``linear``, ``quadratic`` or ``local`` (one
            input: a random-walk level and slope) (:mod:`distgp.kernels.trend`).
        season: period of a seasonal pattern and walk in input units (one evenly spaced
            input; 0, the default: none, and a series whose changes repeat with a significant
            period gets a candidate with that season in the ``auto`` choice).
        output_transform: output transform ``none`` (default), ``log``, ``boxcox`` or
            ``boxcox:LAMBDA`` (:mod:`distgp.transforms`); predictions are on ``y``'s scale.
        horizon: points held out per rolling origin of a series (default: 10% of ``n``, at
            least 4; ``fit`` sees no prediction inputs, so set the forecast's own horizon).
        origins: rolling origins of a 1-D series.
        folds: ``K`` of the K-fold validation of other data.
        tune: BKB evaluations over outer settings scored on held-out training data
            (:func:`distgp.tune.tune`; 0, the default, is off).
        tune_batch: evaluations BKB proposes at a time.
        search_origins: rolling origins of a ``tune`` search on a series, where they fit.
        calibrate: widen the predictive variance by the held-out mean squared z-score of the
            outer choice where that exceeds 1 (default ``True``).
        tunables: the outer settings ``tune`` searches, comma-separated (default trend,
            levels, components, noise_floor, transform; ``season`` is searched when named;
            those that do not apply to the data are left out).
        noise_floor: lower bound of the noise variance as a fraction of ``var(y)``.
        solver: ``closed_form`` (default) or ``cvxpy`` block solver.
        inner_iterations: closed-form alternations per block.
        blocks: DSCA blocks ``S``.
        max_iterations: DSCA iterations of a single-agent fit.
        tol: relative objective decrease at which DSCA stops.
        kkt_tol: accuracy of the scaled KKT conditions at which DSCA stops.
        min_gain: nats of log marginal likelihood that 10 DSCA iterations must gain for it
            to go on (0: off).
        prune_tol: weights below this times the largest become exactly zero.
        agents: number of agents ``N``.
        backend: ``inline`` or ``ray`` (default: inline for one agent, ray otherwise).
        address: Ray cluster address; ``None`` starts a local Ray instance.
        cpus_per_agent: CPUs each Ray agent reserves (``None``: the agents share the machine).
        gpus_per_agent: GPUs each Ray agent reserves, fractional allowed (needs
            ``device='cuda'``).
        round_timeout: seconds after which a slower agent is left out of the round.
        bits: bits per weight in ADMM messages (``None`` with ``delta`` unset: float64).
        delta: uniform quantisation step instead of ``bits``.
        rounds: ADMM round cap.
        local_iterations: DSCA iterations per agent per round.
        rho: initial ADMM penalty (default: the mean shard size); after round 2 the agents'
            curvature sets it, one value per parameter.
        abs_tol, rel_tol: absolute and relative tolerances of ADMM's stopping rule.
        balance_rounds: last round in which residual balancing may raise the penalty.
        shard: ``random`` or ``contiguous``.
        prediction: ``private`` (each agent predicts from its own shard, combined by rBCM;
            the default with more than one agent) or ``pooled`` (exact, on every training
            point).
        random_state: seed of sharding and quantisation noise (an int, a
            :class:`numpy.random.RandomState`, or ``None`` for a fresh seed per fit).
        warm_start: start ``fit`` from the previous fit's weights when the number of
            parameters (grid size and trend terms) matches (each at least
            :data:`~distgp.driver.WARM_FLOOR` of the cold start's) and the kernel and
            noise-floor settings are the same (otherwise a warning, and a cold start); not with
            ``tune``, whose search scores each setting from a cold start.
        threads: threads of each process (``None``: distgp chooses, whatever the environment).
        device: ``cpu`` (numpy) or ``cuda`` (torch float64 on a GPU) for learning and prediction.

    Attributes:
        weights_: ``M`` learned sub-kernel weights (raw output units squared; of ``g(y)``
            with an output transform).
        trend_weights_: ``T`` learned weights of the trend part (same units), named by
            ``model_.trend.labels()`` (polynomial terms, random walks, seasonal pattern and
            walk); ``kernel_`` holds the spectral part only (the gpytorch kernel has no trend
            part yet).
        tune_evaluations_: outer settings scored on held-out training data
            (:class:`distgp.holdout.Evaluation`; empty when no choice ran).
        noise_variance_: learned noise variance (raw output units squared).
        variance_scale_: factor on the predictive variance from the held-out errors of the
            outer choice (1 without one, or with ``calibrate=False``; docs/forecasting.md).
        spectrum_: ``M x P`` frequencies (cycles per raw input unit) of the components.
        active_components_: number of non-zero weights.
        n_features_in_: number of input dimensions.
        theta_: the ``M + 1`` parameters in standardised units (weights, then noise).
        history_: per-round ADMM records, or per-iteration objectives of a single agent.
        rounds_, iterations_, converged_, bits_sent_, bits_float64_, objective_, seconds_,
        events_: run statistics.
        bits_sent_held_out_: bits of the held-out fits' messages before the final fit (the
            default path's choice, ``tune``), counted as ``bits_sent_`` is.
        model_: the fitted :class:`~distgp.gp.GSMPModel`.

    Example:
        >>> import numpy as np
        >>> from distgp import GSMPRegressor
        >>> x = np.arange(60.0)[:, None]
        >>> y = np.sin(2 * np.pi * x[:, 0] / 12) + 0.01 * x[:, 0]
        >>> model = GSMPRegressor(components=100).fit(x, y)
        >>> mean, std = model.predict(np.array([[60.0], [61.0]]), return_std=True)
    """

    def __init__(
        self,
        *,
        components: int | None = KernelConfig.components,
        grid: str = KernelConfig.grid,
        levels: int | None = KernelConfig.levels,
        frequency_scale: float = KernelConfig.frequency_scale,
        slow_components: int = KernelConfig.slow_components,
        trend: str = KernelConfig.trend,
        season: float = KernelConfig.season,
        output_transform: str = KernelConfig.transform,
        horizon: int | None = TuneConfig.horizon,
        origins: int = TuneConfig.origins,
        folds: int = TuneConfig.folds,
        tune: int = TuneConfig.budget,
        tune_batch: int = TuneConfig.batch,
        search_origins: int = TuneConfig.search_origins,
        calibrate: bool = TuneConfig.calibrate,
        tunables: str = TuneConfig.tunables,
        noise_floor: float = LearnConfig.noise_floor,
        solver: str = LearnConfig.solver,
        inner_iterations: int = LearnConfig.inner_iterations,
        blocks: int = LearnConfig.blocks,
        max_iterations: int = LearnConfig.max_iterations,
        tol: float = LearnConfig.tol,
        kkt_tol: float = LearnConfig.kkt_tol,
        min_gain: float = LearnConfig.min_gain,
        prune_tol: float = LearnConfig.prune_tol,
        agents: int = ConsensusConfig.agents,
        backend: str | None = BackendConfig.name,
        address: str | None = BackendConfig.address,
        cpus_per_agent: float | None = BackendConfig.cpus_per_agent,
        gpus_per_agent: float | None = BackendConfig.gpus_per_agent,
        round_timeout: float | None = BackendConfig.round_timeout,
        bits: int | None = ConsensusConfig.bits,
        delta: float | None = ConsensusConfig.delta,
        rounds: int = ConsensusConfig.max_rounds,
        local_iterations: int = ConsensusConfig.local_iterations,
        rho: float | None = ConsensusConfig.rho,
        abs_tol: float = ConsensusConfig.abs_tol,
        rel_tol: float = ConsensusConfig.rel_tol,
        balance_rounds: int = ConsensusConfig.balance_rounds,
        shard: str = DataConfig.shard,
        prediction: str | None = FitConfig.predict,
        random_state: int | np.random.RandomState | None = FitConfig.seed,
        warm_start: bool = False,
        threads: int | None = LearnConfig.threads,
        device: str = LearnConfig.device,
    ) -> None:
        self.components = components
        self.grid = grid
        self.levels = levels
        self.frequency_scale = frequency_scale
        self.slow_components = slow_components
        self.trend = trend
        self.season = season
        self.output_transform = output_transform
        self.horizon = horizon
        self.origins = origins
        self.folds = folds
        self.tune = tune
        self.tune_batch = tune_batch
        self.search_origins = search_origins
        self.calibrate = calibrate
        self.tunables = tunables
        self.noise_floor = noise_floor
        self.solver = solver
        self.inner_iterations = inner_iterations
        self.blocks = blocks
        self.max_iterations = max_iterations
        self.tol = tol
        self.kkt_tol = kkt_tol
        self.min_gain = min_gain
        self.prune_tol = prune_tol
        self.agents = agents
        self.backend = backend
        self.address = address
        self.cpus_per_agent = cpus_per_agent
        self.gpus_per_agent = gpus_per_agent
        self.round_timeout = round_timeout
        self.bits = bits
        self.delta = delta
        self.rounds = rounds
        self.local_iterations = local_iterations
        self.rho = rho
        self.abs_tol = abs_tol
        self.rel_tol = rel_tol
        self.balance_rounds = balance_rounds
        self.shard = shard
        self.prediction = prediction
        self.random_state = random_state
        self.warm_start = warm_start
        self.threads = threads
        self.device = device

    def _config(self) -> FitConfig:
        """The settings of this estimator; a bad value raises :class:`ConfigError` naming the
        parameter."""
        config = FitConfig()
        config.data.source = "<array>"
        try:
            for parameter, path in PARAMETERS.items():
                put(config, path, typed_setting(path, getattr(self, parameter)))
            config.consensus.quantize = self.bits is not None or self.delta is not None
            config.seed = _seed(self.random_state)
            if not isinstance(self.warm_start, bool | np.bool_):
                raise ConfigError(f"warm_start must be True or False, got {self.warm_start!r}")
            if config.data.shard.startswith("column:"):
                raise ConfigError(
                    f"shard {config.data.shard!r} needs a CSV's column, which arrays do not "
                    "have: use shard='random' or 'contiguous' (or distgp fit --data FILE.csv "
                    "--shard column:NAME)",
                    setting="data.shard",
                )
            if config.consensus.agents == 1:  # the data is in this process: no shard to guard
                config.data.min_shard_size = MIN_SAMPLES
            return config.validate()
        except ConfigError as exc:
            raise _in_parameter_names(exc) from None

    def fit(self, X, y) -> GSMPRegressor:
        """Learn the kernel weights and condition the GP on ``(X, y)``.

        Args:
            X: ``n x P`` inputs (array-like, at least 2 rows). y: ``n`` outputs.

        Returns:
            ``self``.
        """
        from distgp.data import is_series
        from distgp.selection import fit_selected
        from distgp.tune import tunable_names, tune

        target = getattr(y, "name", None)  # a pandas Series' column name
        X, y = _validated(self, X, y, reset=True)
        X, y = check_X_y(X, y)  # distgp's own limits (magnitudes whose squares overflow)
        check_varying_inputs(X, getattr(self, "feature_names_in_", None))
        X, y, _ = in_time_order(X, y)
        config = self._config()
        if self.warm_start and self.tune:
            raise ConfigError(
                "warm_start does not apply with tune (each setting the search scores starts "
                "cold); set warm_start=False or tune=0",
                setting="warm_start",
            )
        objective = _objective_settings(config)
        initial = None
        if self.warm_start and hasattr(self, "theta_"):
            if objective == getattr(self, "_objective_settings", None):
                initial = self.theta_
            else:
                warnings.warn(
                    "warm_start: the kernel or noise-floor settings changed since the last fit, "
                    "whose weights belong to another model; this fit starts cold",
                    UserWarning,
                    stacklevel=2,
                )
        try:
            if self.tune:
                names = tunable_names(config)
                result, self.tune_evaluations_, _ = tune(
                    X, y, config, is_series(X), self.tune, names
                )
            else:
                result, self.tune_evaluations_ = fit_selected(
                    X, y, config, is_series(X), initial=initial
                )
        except (ConfigError, InputDataError) as exc:
            raise _in_parameter_names(exc) from None
        if initial is not None and np.shape(initial) != np.shape(result.theta):
            # the driver starts from earlier weights only when the parameter vector keeps its
            # length (grid components + trend terms + noise)
            warnings.warn(
                f"warm_start: the last fit had {np.size(initial)} parameters and this one has "
                f"{np.size(result.theta)} (another grid size or trend, e.g. from another number "
                "of input columns), so the last fit's weights belong to another model; this fit "
                "started cold",
                UserWarning,
                stacklevel=2,
            )
        model = result.model
        # as a CLI fit of a CSV records them: `distgp predict` matches columns by name, and
        # a series' model forecasts past its end (--ahead)
        if hasattr(self, "feature_names_in_"):
            model.input_names = tuple(str(name) for name in self.feature_names_in_)
            model.target_name = str(target) if target is not None else None
        if is_series(X):
            model.mark_series(X)
        y_var = model.scaler.y_scale**2
        self.model_ = model
        self._parts = result.parts  # each agent's shard: private prediction asks them
        self._objective_settings = objective  # what a warm start must share
        self.theta_ = result.theta.copy()
        self.weights_ = model.weights[: model.grid.components] * y_var
        self.trend_weights_ = model.weights[model.grid.components :] * y_var
        self.noise_variance_ = float(model.noise_variance * y_var)
        self.variance_scale_ = model.variance_scale
        self.spectrum_ = model.grid.means / model.scaler.x_scale
        self.active_components_ = int(np.count_nonzero(model.weights))
        self.history_ = copy.deepcopy(result.history)
        self.rounds_ = result.rounds
        self.iterations_ = result.iterations
        self.converged_ = result.converged
        self.bits_sent_ = result.bits_sent
        self.bits_float64_ = result.bits_float64
        self.bits_sent_held_out_ = int(sum(e.bits for e in self.tune_evaluations_))
        self.objective_ = result.objective
        self.seconds_ = result.seconds
        self.events_ = list(result.events)
        return self

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "model_")
        except SklearnNotFittedError as exc:
            raise NotFittedError(str(exc)) from None

    def predict(self, X, return_std: bool = False):
        """Predictive mean (``n_*``) in raw output units, and the standard deviation of a new
        observation (noise included) if ``return_std``.

        Under an output transform both are on ``y``'s own scale: with ``boxcox`` and a fitted
        (or given) ``lambda < 0`` the mean does not exist (``y`` has a pole where ``g(y)``
        reaches ``-1 / lambda``), so ``predict`` returns the **median** ``g^-1(mu)`` and, as
        the spread, half the central 68% interval (infinite when ``mu + s`` passes the pole);
        see :mod:`distgp.transforms`."""
        self._check_fitted()
        return self._model().predict(self._inputs(X), return_std=return_std, parts=self._parts)

    def score(self, X, y, sample_weight=None) -> float:
        """R² of the point prediction at ``X`` against ``y`` (scikit-learn's); NaN or infinite
        ``y`` are refused by row, as in ``fit``."""
        _check_finite_outputs(y)
        return super().score(X, y, sample_weight=sample_weight)

    def predict_interval(self, X, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends (each ``n_*``, raw output units) of the central ``level``
        predictive interval of a new observation, noise included (exact under an output
        transform, where it is not symmetric about the mean)."""
        self._check_fitted()
        return self._model().predict_interval(self._inputs(X), level, parts=self._parts)

    def _model(self) -> GSMPModel:
        """The fitted model, predicting on this estimator's ``device`` now (``set_params``
        after fitting, or unpickled where the fit's GPU is absent: then the CPU)."""
        from distgp.driver import prediction_device

        self.model_.device = prediction_device(self.device)
        return self.model_

    def _inputs(self, X) -> np.ndarray:
        X = _validated(self, X, reset=False)
        return check_X(X, dims=self.n_features_in_, what="prediction inputs X")

    @property
    def kernel_(self):
        """The learned kernel as a float64 :class:`~distgp.kernels.GSMPKernel` on raw inputs
        (``.to(torch.float32)`` for a float32 model)."""
        self._check_fitted()
        import torch

        from distgp.kernels.gsmp import GSMPKernel

        model = self.model_
        return GSMPKernel(
            model.grid,
            weights=self.weights_,
            input_shift=model.scaler.x_mean,
            input_scale=model.scaler.x_scale,
            dtype=torch.float64,
        )


def _validated(estimator: GSMPRegressor, X, y="no_validation", *, reset: bool):
    """scikit-learn's ``validate_data`` (float64, 2-D X, 1-D y, ``n_features_in_``), its
    ``ValueError`` re-raised as :class:`InputDataError` with the same message. NaN and infinite
    values are refused by distgp's own check, which names the first one's row (numbered from 0)
    and column and the fix (scikit-learn's text recommends other estimators); its
    :class:`InputDataError` is the ``ValueError`` scikit-learn's checks expect."""
    try:
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        else:
            _check_finite_outputs(y, "training outputs y")
            X, y = validate_data(
                estimator,
                X,
                y,
                reset=reset,
                dtype=np.float64,
                y_numeric=True,
                ensure_min_samples=MIN_SAMPLES,
                ensure_all_finite=False,
            )
    except InputDataError:
        raise
    except ValueError as exc:
        raise InputDataError(" ".join(str(exc).split())) from None
    names = getattr(estimator, "feature_names_in_", None)
    what = "training inputs X" if reset else "prediction inputs X"
    check_values(X, what, None if names is None else [str(n) for n in names], first_row=0)
    return X if isinstance(y, str) and y == "no_validation" else (X, y)


def _check_finite_outputs(y, what: str = "outputs y") -> None:
    """Refuse NaN or infinite outputs ``y`` (a vector or a column) by distgp's check, which
    names the first one's row (scikit-learn says only ``Input y contains NaN``); outputs of
    another shape, or that are not numbers, are left to scikit-learn."""
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 1:
        check_values(values, what, first_row=0)


def _in_parameter_names(exc: ConfigError | InputDataError) -> ConfigError | InputDataError:
    """``exc`` with the config keys and command-line flags it names written as this
    estimator's parameters (``kernel.season`` and ``--season`` -> ``season``; ``tune.folds
    (--folds)`` -> ``folds``); keys with no parameter stay as they are, and a fix that needs
    one (a smaller ``data.min_shard_size``) is left out."""
    message = str(exc)
    setting = getattr(exc, "setting", None)
    if setting == "data.min_shard_size":  # no parameter sets it: fewer agents is the fix
        message = message.replace(" or lower data.min_shard_size", "")
    names = {**PARAMETERS, "random_state": "seed"}
    flags = {e.path: e.flag for e in entries(FitConfig) if e.flag}
    for path, flag in flags.items():  # "tune.folds (--folds)": the key alone
        message = message.replace(f"{path} (--{flag})", path)
    for parameter, path in sorted(names.items(), key=lambda item: -len(item[1])):
        if "." in path:
            message = re.sub(rf"(?<![\w.]){re.escape(path)}(?![\w])", parameter, message)
        elif setting == path:  # a top-level key is a word too: only as the subject
            message = re.sub(rf"^{path}\b", parameter, message)
        if path in flags:
            message = re.sub(rf"(?<![\w-])--{re.escape(flags[path])}(?![\w-])", parameter, message)
    if isinstance(exc, ConfigError):
        return ConfigError(message, setting=setting)
    return type(exc)(message)


def _objective_settings(config: FitConfig) -> tuple[str, float]:
    """The settings that define the learned weights' meaning (the kernel section and the noise
    floor): a warm start from weights of other settings ends at a worse optimum."""
    from distgp.checkpoint import config_json

    return config_json(config.kernel), config.learn.noise_floor


def _seed(random_state) -> int:
    """A non-negative int seed from scikit-learn's ``random_state`` convention (a numpy
    ``Generator`` too)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    top = np.iinfo(np.int32).max
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(top))
    try:
        return int(check_random_state(random_state).randint(top))
    except ValueError:
        raise ConfigError(
            "random_state must be None, a non-negative int, a numpy RandomState or Generator, "
            f"got {random_state!r}",
            setting="seed",
        ) from None
