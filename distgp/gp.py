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

from distgp.data import Scaler, check_X
from distgp.exceptions import ModelFileError, NumericsWarning
from distgp.io import read_npz, save_npz
from distgp.kernels.bank import SubKernelBank
from distgp.kernels.grid import SpectralGrid
from distgp.learn.objective import robust_cholesky
from distgp.threads import owned_threads

MODEL_FORMAT = "distgp-gsmp-model"
MODEL_VERSION = 1
_PREDICT_CHUNK = 4096


@dataclass
class GSMPModel:
    """A learned GSMP GP: grid, weights, noise and the (standardised) training data.

    Attributes:
        grid: the spectral grid.
        scaler: raw <-> standardised units.
        weights: ``M`` sub-kernel weights (standardised output units).
        noise_variance: noise variance (standardised output units).
        X_train: ``n x P`` standardised training inputs (``None`` for a private model).
        y_train: ``n`` standardised training outputs (``None`` for a private model).
        recipe: the grid's recipe (what agents rebuild it from).
        run_config: the fit's settings as JSON (a private model's agents are rebuilt from it).
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
    run_config: str | None = None
    device: str = field(default="cpu", compare=False)
    threads: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._posterior: tuple[SubKernelBank, Any, Any] | None = None

    @property
    def dims(self) -> int:
        return int(self.grid.dims)

    @property
    def private(self) -> bool:
        """Whether predictions need the agents (no training data in the model)."""
        return self.X_train is None

    def _factor(self) -> tuple[SubKernelBank, Any, Any]:
        if self._posterior is None or self._posterior[0].device != self.device:
            bank = SubKernelBank(self.X_train, self.grid, cache_envelopes=False, device=self.device)
            C = bank.gram(self.weights, lower=True)  # the factorisation reads no more
            bank.ops.add_diagonal(C, self.noise_variance)
            L, _ = robust_cholesky(C, bank.ops)
            del C
            alpha = bank.ops.cho_solve(L, bank.ops.asarray(self.y_train))
            self._posterior = (bank, L, alpha)
        return self._posterior

    def predict(self, X: np.ndarray, return_std: bool = False):
        """Predictive mean (and standard deviation, noise included) in raw output units.

        Args:
            X: ``n_* x P`` raw inputs.
        """
        X = check_X(X, dims=self.dims, what="prediction inputs X")
        if self.private:
            from distgp.driver import predict_with_agents

            mean, std = predict_with_agents(self, X)
            return (mean, std) if return_std else mean
        with owned_threads(len(self.y_train), self.threads) as plan:
            bank, L, alpha = self._factor()
            bank.workers = plan.workers
            return self._predict(bank, L, alpha, self.scaler.x(X), return_std)

    def _predict(self, bank, L, alpha, Z: np.ndarray, return_std: bool):
        ops = bank.ops
        means, variances = [], []
        prior = float(self.weights.sum())
        for start in range(0, len(Z), _PREDICT_CHUNK):
            Ks = bank.cross(Z[start : start + _PREDICT_CHUNK], self.weights)
            means.append(ops.numpy(Ks @ alpha))
            if return_std:
                latent = prior - ops.numpy((ops.solve_lower(L, Ks.T) ** 2).sum(0))
                if np.any(latent < -1e-8 * max(prior, 1e-300)):
                    warnings.warn(
                        "negative predictive variances clipped to 0", NumericsWarning, stacklevel=3
                    )
                variances.append(np.maximum(latent, 0.0) + self.noise_variance)
        mean = self.scaler.y_back(np.concatenate(means))
        if not return_std:
            return mean
        std = np.sqrt(np.concatenate(variances)) * self.scaler.y_scale
        return mean, std

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        arrays = {
            "format": np.asarray(MODEL_FORMAT),
            "version": np.asarray(MODEL_VERSION),
            "weights": self.weights,
            "noise_variance": np.asarray(self.noise_variance),
            **self.grid.to_dict(),
            **{f"scaler_{k}": v for k, v in self.scaler.to_dict().items()},
        }
        if not self.private:
            arrays["X_train"], arrays["y_train"] = self.X_train, self.y_train
        else:
            arrays["recipe_json"] = np.asarray(json.dumps(self.recipe))
            arrays["run_config_json"] = np.asarray(self.run_config or "{}")
        for key, value in (metadata or {}).items():
            arrays[f"meta_{key}"] = np.asarray(value)
        return save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> GSMPModel:
        path = Path(path)
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
        if int(data.get("version", -1)) != MODEL_VERSION:
            raise ModelFileError(
                f"{path} has model version {data.get('version')}; this distgp reads "
                f"version {MODEL_VERSION}"
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
                run_config=str(data["run_config_json"]) if "run_config_json" in data else None,
            )
        except (KeyError, ValueError) as exc:
            raise ModelFileError(
                f"{path} is an incomplete or corrupt distgp model ({exc}); re-run 'distgp fit'"
            ) from None
        if model.weights.shape != (grid.components,) or (
            not model.private and model.X_train.shape[1] != grid.dims
        ):
            raise ModelFileError(
                f"{path} is inconsistent (weights or inputs do not match its grid); "
                "re-run 'distgp fit'"
            )
        return model


def regression_metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """Test MSE, RMSE and NLPD (mean negative log predictive density), in raw units."""
    err = np.asarray(y, float) - mean
    var = np.maximum(np.asarray(std, float) ** 2, 1e-300)
    mse = float(np.mean(err**2))
    nlpd = float(np.mean(0.5 * np.log(2 * math.pi * var) + 0.5 * err**2 / var))
    return {"mse": mse, "rmse": math.sqrt(mse), "nlpd": nlpd}
