"""Exact GP prediction with a learned GSMP kernel, the fitted-model file, and metrics.

A pooled model holds the (standardised) training data of all agents and predicts exactly:
``mean = K_* C^-1 y``, ``var = k_** + s2 - K_* C^-1 K_*^T`` (noise included), computed in
standardised units and mapped back to raw units. A private model (the default for more than one
agent) holds no training point: its predictions come from the agents, each an expert on its own
shard, combined by the driver (:func:`distgp.driver.predict_with_agents`).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distgp.data import Scaler, check_X, check_y
from distgp.exceptions import DistGPError, ModelFileError, NumericsWarning
from distgp.io import read_npz, save_npz
from distgp.kernels.bank import SubKernelBank
from distgp.kernels.grid import SpectralGrid
from distgp.kernels.trend import TrendBank, TrendBasis, kernel_bank, prior_variance
from distgp.learn.objective import robust_cholesky
from distgp.threads import owned_threads
from distgp.transforms import OutputTransform, central_quantile

MODEL_FORMAT = "distgp-gsmp-model"
MODEL_VERSION = 2
READABLE_VERSIONS = ("1", "2")
"""Model file versions this distgp reads: version 1 has no ``transform_scale`` (read as 1: its
log and Box-Cox transforms were of ``y`` itself); a reader of version 1 alone, which would
ignore the scale, refuses version 2."""
_PREDICT_CHUNK = 4096
Z95 = 1.959963984540054  # half-width of the central 95% interval of N(0, 1)


@dataclass
class GSMPModel:
    """A learned GSMP GP: grid, weights, noise and the (standardised) training data.

    Attributes:
        grid: the spectral grid.
        scaler: raw <-> standardised units.
        weights: ``M + T`` sub-kernel weights (standardised output units): the grid's, then
            the trend part's (:mod:`distgp.kernels.trend`).
        noise_variance: noise variance (standardised output units).
        X_train: ``n x P`` standardised training inputs (``None`` for a private model).
        y_train: ``n`` standardised training outputs (``None`` for a private model).
        recipe: the grid's recipe (what agents rebuild it from).
        members: the agents whose shards the model holds (a private model's experts: those
            that left the fit are not asked); ``None``: all of them.
        shard_digests: per agent, the SHA-256 of its shard file at the fit (private models
            of shard files; what a rebuilt agent's file is checked against).
        run_config: the fit's settings as JSON (a private model's agents are rebuilt from it).
        data_digest: SHA-256 of a one-file simulation's shards (checked when they are rebuilt).
        trend: the trend basis (``None``: no trend part).
        transform: the output transform ``g``; the GP models ``g(y)`` (:mod:`distgp.transforms`).
        variance_scale: factor on every predictive variance (1: the evidence's own scale),
            set from held-out errors by :func:`distgp.selection.calibrated`; equivalent to scaling
            every weight and the noise by it (the predictive mean of ``g(y)`` does not
            change; on ``y``'s scale a log or Box-Cox mean, which includes the variance, does).
        input_names: the input columns of a CSV the model was fitted on, in order (``None``
            for other data); prediction files are matched to them by name.
        target_name: that CSV's output column (``None`` for other data).
        time_units: input columns of that CSV that held dates, with the calendar unit their
            numbers count since 1970-01-01 (:mod:`distgp.calendar`); empty for other data.
        utc_inputs: those of them read with UTC offsets: their dates are written in UTC (``Z``).
        series_end: the last training input of a series (one evenly spaced input; raw units),
            ``None`` for other data; with ``series_step`` it places :meth:`ahead`'s inputs.
        series_step: that series' spacing (raw input units).
        series_rule: how a series of dates continues on the calendar
            (:func:`distgp.calendar.series_rule`; ``None``: even steps).
        device: where prediction computes (``cpu`` or ``cuda``; not saved with the model).
        threads: thread budget of prediction (``None``: distgp chooses; not saved).
    """

    grid: SpectralGrid
    scaler: Scaler
    weights: np.ndarray
    noise_variance: float
    X_train: np.ndarray | None
    y_train: np.ndarray | None
    recipe: dict | None = None
    members: list[int] | None = None
    shard_digests: list[str] | None = None
    run_config: str | None = None
    data_digest: str | None = None
    trend: TrendBasis | None = None
    transform: OutputTransform = field(default_factory=OutputTransform)
    variance_scale: float = 1.0
    input_names: tuple[str, ...] | None = None
    target_name: str | None = None
    time_units: dict[str, str] = field(default_factory=dict)
    utc_inputs: tuple[str, ...] = ()
    series_end: float | None = None
    series_step: float | None = None
    series_rule: str | None = None
    device: str = field(default="cpu", compare=False)
    threads: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._posterior: tuple[SubKernelBank | TrendBank, Any, Any] | None = None

    def __getstate__(self) -> dict:
        """Pickle without the prediction cache (rebuilt on demand; it holds ``n x n``
        factors and the sub-kernel bank)."""
        return {**self.__dict__, "_posterior": None}

    @property
    def components(self) -> int:
        """Number of weights ``M + T``."""
        return self.grid.components + (0 if self.trend is None else self.trend.size)

    @property
    def dims(self) -> int:
        return int(self.grid.dims)

    @property
    def private(self) -> bool:
        """Whether predictions need the agents (no training data in the model)."""
        return self.X_train is None

    def _factor(self) -> tuple[SubKernelBank | TrendBank, Any, Any]:
        if self._posterior is None or self._posterior[0].device != self.device:
            bank = kernel_bank(
                self.X_train, self.grid, self.trend, cache_envelopes=False, device=self.device
            )
            C = bank.gram(self.weights, lower=True)  # the factorisation reads no more
            bank.ops.add_diagonal(C, self.noise_variance)
            L, _ = robust_cholesky(C, bank.ops)
            del C
            alpha = bank.ops.cho_solve(L, bank.ops.asarray(self.y_train))
            self._posterior = (bank, L, alpha)
        return self._posterior

    def predict(self, X: np.ndarray, return_std: bool = False, parts=None):
        """Predictive mean (and standard deviation, noise included) in raw output units.

        With an output transform, these are the mean and standard deviation of ``g^-1(w)``
        (:mod:`distgp.transforms`).

        Args:
            X: ``n_* x P`` raw inputs.
            parts: a private model's shards, when the caller holds them (see
                :meth:`predict_latent`).
        """
        if self.transform.identity:
            return self.predict_latent(X, return_std, parts)
        mean, std = self.transform.moments(*self.predict_latent(X, return_std=True, parts=parts))
        return (mean, std) if return_std else mean

    def mark_series(self, X: np.ndarray) -> None:
        """Record where the ``n x 1`` training inputs of a series end and their spacing (the
        median step), so that :meth:`ahead` can place forecast inputs past them."""
        x = np.sort(np.asarray(X, float)[:, 0])
        self.series_end, self.series_step = float(x[-1]), float(np.median(np.diff(x)))

    def ahead(self, steps: int) -> np.ndarray:
        """``steps x 1`` raw inputs ``1 .. steps`` spacings past the last training input of a
        series (:meth:`mark_series`). Raises :class:`ModelFileError` for a model not fitted on
        a series."""
        if self.series_end is None or self.series_step is None:
            raise ModelFileError(
                "this model records no series end to forecast from (it was not fitted on a "
                "series of one input column, or it was fitted on shard files, whose inputs stay "
                "with their agents); predict at the inputs of a file with --data"
            )
        return (self.series_end + self.series_step * np.arange(1, steps + 1, dtype=float))[:, None]

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The training inputs ``n x P`` and outputs ``n`` in raw units (a pooled model holds
        them; a private one does not: :class:`ModelFileError`)."""
        if self.private:
            raise ModelFileError("a private model holds no training data; its agents do")
        X = self.X_train * self.scaler.x_scale + self.scaler.x_mean
        return X, self.transform.inverse(self.scaler.y_back(self.y_train))

    def predict_interval(
        self, X: np.ndarray, level: float = 0.95, parts=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends (each ``n_*``, raw output units) of the central ``level``
        predictive interval of a new observation: ``g^-1(mean -+ z std)`` of the Gaussian
        predictive of ``g(y)`` (:meth:`predict_latent`); symmetric about the mean only without
        an output transform.

        Args:
            X: ``n_* x P`` raw inputs.
            level: coverage probability, ``0 < level < 1``.
            parts: a private model's shards, when the caller holds them.
        """
        central_quantile(level)  # a bad level fails before the prediction, not after
        mean, std = self.predict_latent(X, return_std=True, parts=parts)
        return self.transform.interval(mean, std, level)

    def predict_latent(self, X: np.ndarray, return_std: bool = False, parts=None):
        """Gaussian predictive mean (and std, noise included, times ``sqrt(variance_scale)``)
        of ``g(y)``, raw ``g`` units.

        ``parts``: a private model's shards (:class:`~distgp.agents.agent.Shard`), which its
        agents are rebuilt from (default: as the fit's settings say,
        :func:`~distgp.driver.predict_with_agents`)."""
        X = check_X(X, dims=self.dims, what="prediction inputs X")
        if self.private:
            from distgp.driver import predict_with_agents

            mean, std = predict_with_agents(self, X, parts=parts)
        else:
            with owned_threads(len(self.y_train), self.threads) as plan:
                bank, L, alpha = self._factor()
                bank.workers = plan.workers
                if not return_std:
                    return self._predict(bank, L, alpha, self.scaler.x(X), False)
                mean, std = self._predict(bank, L, alpha, self.scaler.x(X), True)
        if not return_std:
            return mean
        return mean, std * math.sqrt(self.variance_scale)

    def _predict(self, bank, L, alpha, Z: np.ndarray, return_std: bool):
        ops = bank.ops
        means, variances = [], []
        for start in range(0, len(Z), _PREDICT_CHUNK):
            chunk = Z[start : start + _PREDICT_CHUNK]
            Ks = bank.cross(chunk, self.weights)
            means.append(ops.numpy(Ks @ alpha))
            if return_std:
                with np.errstate(over="ignore", invalid="ignore"):
                    prior = prior_variance(bank, chunk, self.weights)
                    latent = prior - ops.numpy((ops.solve_lower(L, Ks.T) ** 2).sum(0))
                # a trend's prior variance past float64 (inputs ~1e77 standardised units
                # beyond the data and further): the variance is unbounded there, not NaN
                latent = np.where(np.isfinite(prior), latent, np.inf)
                if np.any(latent < -1e-8 * np.maximum(prior, 1e-300)):
                    warnings.warn(
                        "negative predictive variances clipped to 0", NumericsWarning, stacklevel=3
                    )
                variances.append(np.maximum(latent, 0.0) + self.noise_variance)
        mean = self.scaler.y_back(np.concatenate(means))
        if not return_std:
            return mean
        std = np.sqrt(np.concatenate(variances)) * self.scaler.y_scale
        return mean, std

    def score(self, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Test MSE, RMSE, NLPD and 95% coverage on ``y``'s scale (:func:`regression_metrics`)."""
        mean, std = self.predict_latent(X, return_std=True)
        return regression_metrics(y, mean, std, self.transform)

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        arrays = {
            "format": np.asarray(MODEL_FORMAT),
            "version": np.asarray(MODEL_VERSION),
            "weights": self.weights,
            "noise_variance": np.asarray(self.noise_variance),
            "variance_scale": np.asarray(self.variance_scale),
            **self.grid.to_dict(),
            **(self.trend.to_dict() if self.trend is not None else {}),
            **self.transform.to_dict(),
            **{f"scaler_{k}": v for k, v in self.scaler.to_dict().items()},
        }
        if not self.private:
            arrays["X_train"], arrays["y_train"] = self.X_train, self.y_train
        else:
            arrays["recipe_json"] = np.asarray(json.dumps(self.recipe))
            arrays["agents_json"] = np.asarray(
                json.dumps({"members": self.members, "shard_digests": self.shard_digests})
            )
            arrays["run_config_json"] = np.asarray(self.run_config or "{}")
            if self.data_digest is not None:
                arrays["data_digest"] = np.asarray(self.data_digest)
        if self.input_names is not None:
            arrays["input_names"] = np.asarray(self.input_names, dtype=str)
        if self.target_name is not None:
            arrays["target_name"] = np.asarray(self.target_name)
        if self.time_units:
            arrays["time_units_json"] = np.asarray(json.dumps(self.time_units))
        if self.utc_inputs:
            arrays["utc_inputs"] = np.asarray(self.utc_inputs, dtype=str)
        if self.series_end is not None:
            arrays["series_end"] = np.asarray(self.series_end)
            arrays["series_step"] = np.asarray(self.series_step)
        if self.series_rule is not None:
            arrays["series_rule"] = np.asarray(self.series_rule)
        for key, value in (metadata or {}).items():
            arrays[f"meta_{key}"] = np.asarray(value)
        return save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> GSMPModel:
        """The model saved at ``path``: a ``model.npz``, or a fit's output folder holding one."""
        path = Path(path)
        if path.is_dir():
            if not (path / "model.npz").is_file():
                raise ModelFileError(
                    f"{path} is a folder without a model.npz; pass the model.npz that "
                    "'distgp fit' wrote, or its output folder"
                )
            path = path / "model.npz"
        if not path.is_file():
            raise ModelFileError(
                f"model file {path} does not exist; pass the model.npz that 'distgp fit' wrote"
            )
        try:
            data = read_npz(path)
        except ValueError as exc:
            raise ModelFileError(
                f"cannot read {path} as a distgp model ({exc}); re-run 'distgp fit'"
            ) from None
        if str(data.get("format", "")) != MODEL_FORMAT:
            raise ModelFileError(
                f"{path} is not a distgp model file; pass the model.npz that 'distgp fit' wrote"
            )
        if str(data.get("version", "")).strip() not in READABLE_VERSIONS:
            raise ModelFileError(
                f"{path} has model version {data.get('version')}; this distgp reads "
                f"versions {', '.join(READABLE_VERSIONS)}"
            )
        try:
            grid = SpectralGrid.from_dict(data)
            scaler = Scaler.from_dict(
                {k[len("scaler_") :]: v for k, v in data.items() if k.startswith("scaler_")}
            )
            model = cls(
                grid=grid,
                scaler=scaler,
                weights=np.asarray(data["weights"], float),
                noise_variance=float(data["noise_variance"]),
                X_train=np.asarray(data["X_train"], float) if "X_train" in data else None,
                y_train=np.asarray(data["y_train"], float) if "y_train" in data else None,
                recipe=json.loads(str(data["recipe_json"])) if "recipe_json" in data else None,
                **_agents(data),
                run_config=str(data["run_config_json"]) if "run_config_json" in data else None,
                data_digest=str(data["data_digest"]) if "data_digest" in data else None,
                trend=TrendBasis.from_dict(data, grid.dims),
                transform=OutputTransform.from_dict(data),
                variance_scale=float(data.get("variance_scale", 1.0)),
                input_names=(
                    tuple(str(c) for c in data["input_names"]) if "input_names" in data else None
                ),
                target_name=str(data["target_name"]) if "target_name" in data else None,
                time_units=_time_units(data),
                utc_inputs=tuple(str(c) for c in data.get("utc_inputs", ())),
                series_end=float(data["series_end"]) if "series_end" in data else None,
                series_step=float(data["series_step"]) if "series_step" in data else None,
                series_rule=str(data["series_rule"]) if "series_rule" in data else None,
            )
        except (KeyError, ValueError, DistGPError) as exc:
            raise ModelFileError(
                f"{path} is an incomplete or corrupt distgp model ({exc}); re-run 'distgp fit'"
            ) from None
        if model.trend is not None and model.trend.size == 0:
            model.trend = None
        if model.weights.shape != (model.components,) or (
            not model.private and model.X_train.shape[1] != grid.dims
        ):
            raise ModelFileError(
                f"{path} is inconsistent (weights or inputs do not match its grid); "
                "re-run 'distgp fit'"
            )
        return model


def regression_metrics(
    y: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    transform: OutputTransform | None = None,
) -> dict[str, float]:
    """Test MSE, RMSE, NLPD (mean negative log predictive density) and the coverage of the
    central 95% predictive interval, in raw units.

    Without ``transform``, ``mean`` and ``std`` describe a Gaussian predictive for ``y``. With
    one, they describe the Gaussian predictive of ``g(y)``: the MSE uses the point prediction of
    :meth:`~distgp.transforms.OutputTransform.moments` (the mean of ``g^-1(w)``), the NLPD the
    density of ``y``, ``N(g(y); mean, std^2) g'(y)`` (0 at an output ``g`` cannot reach, a
    non-positive one: the NLPD is then infinite), and the interval ``g^-1(mean -+ 1.96 std)``.
    """
    y = check_y(y, len(mean))  # an n x 1 column would broadcast to n x n
    if transform is not None and not transform.identity:
        point, _ = transform.moments(mean, std)
        inside = y > 0  # outputs the transform can reach; the density is 0 at the others
        w = np.where(inside, transform.forward(np.where(inside, y, 1.0)), np.nan)
        jacobian = transform.log_derivative(np.maximum(y, 1e-300))
    else:
        point, w, jacobian = mean, y, np.zeros_like(y)
    err = y - point
    var = np.maximum(np.asarray(std, float) ** 2, 1e-300)
    mse = float(np.mean(err**2))
    dens = 0.5 * np.log(2 * math.pi * var) + 0.5 * (w - mean) ** 2 / var - jacobian
    nlpd = float(np.mean(dens)) if np.all(np.isfinite(dens)) else math.inf
    half = Z95 * np.sqrt(var)
    coverage = float(np.mean(np.abs(w - mean) <= half))  # g is monotone: same event for y
    return {"mse": mse, "rmse": math.sqrt(mse), "nlpd": nlpd, "coverage95": coverage}


def _time_units(data: dict) -> dict[str, str]:
    """A model file's date columns and their units (none in files without dates)."""
    from distgp.calendar import UNITS

    if "time_units_json" not in data:
        return {}
    units = json.loads(str(data["time_units_json"]))
    if not isinstance(units, dict) or not set(units.values()) <= set(UNITS):
        raise ValueError(f"time units {units!r} are not columns and units")
    return {str(k): str(v) for k, v in units.items()}


def _agents(data: dict) -> dict[str, Any]:
    """A private model's ``members`` and ``shard_digests`` (``None`` in files before them)."""
    agents = json.loads(str(data["agents_json"])) if "agents_json" in data else {}
    return {"members": agents.get("members"), "shard_digests": agents.get("shard_digests")}
