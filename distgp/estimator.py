"""The scikit-learn style estimator :class:`GSMPRegressor`."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from distgp.config import (
    BackendConfig,
    ConsensusConfig,
    DataConfig,
    FitConfig,
    KernelConfig,
    LearnConfig,
)
from distgp.data import check_X, check_X_y
from distgp.exceptions import NotFittedError


class GSMPRegressor:
    """Gaussian process regression with a GSMP kernel learned by SLIM-KL.

    Follows the scikit-learn estimator contract: ``__init__`` only stores its arguments, ``fit``
    returns ``self``, fitted attributes end with ``_``. Execution options (``agents``, ``backend``,
    ``address``) may also be given to :meth:`fit`; with one agent the fit is a centralised DSCA
    solve, with more the agents run quantised consensus ADMM, each on a private shard.

    Args:
        components: number of GSMP sub-kernels ``M`` (default 500 in 1-D, 100 per dimension).
        grid: ``data`` (data-driven, default) or ``reference`` (the SLIM-KL code's grid).
        levels: bandwidth levels of the data grid.
        noise_floor: lower bound of the noise variance as a fraction of ``var(y)``.
        solver: ``closed_form`` (default) or ``cvxpy`` block solver.
        blocks: DSCA blocks ``S``.
        max_iterations: DSCA iterations of a single-agent fit.
        tol: relative objective decrease at which DSCA stops.
        agents: number of agents ``N``.
        backend: ``inline`` or ``ray`` (default: inline for one agent, ray otherwise).
        address: Ray cluster address; ``None`` starts a local Ray instance.
        bits: bits per weight in ADMM messages (``None`` with ``delta`` unset: float64).
        delta: uniform quantisation step instead of ``bits``.
        rounds: ADMM round cap.
        local_iterations: DSCA iterations per agent per round.
        rho: initial ADMM penalty (default: mean shard size).
        shard: ``random`` or ``contiguous``.
        random_state: seed of sharding and quantisation noise.

    Attributes:
        weights_: ``M`` learned sub-kernel weights (raw output units squared).
        noise_variance_: learned noise variance (raw output units squared).
        spectrum_: ``M x P`` frequencies (cycles per raw input unit) of the components.
        active_components_: number of non-zero weights.
        n_features_in_: number of input dimensions.
        history_: per-round ADMM records, or per-iteration objectives of a single agent.
        rounds_, bits_sent_, bits_float64_, objective_, seconds_: run statistics.
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
        components: int | None = None,
        grid: str = "data",
        levels: int | None = None,
        noise_floor: float = 1e-2,
        solver: str = "closed_form",
        blocks: int = 4,
        max_iterations: int = 300,
        tol: float = 1e-9,
        agents: int = 1,
        backend: str | None = None,
        address: str | None = None,
        bits: int | None = 8,
        delta: float | None = None,
        rounds: int = 50,
        local_iterations: int = 5,
        rho: float | None = None,
        shard: str = "random",
        random_state: int = 0,
    ) -> None:
        self.components = components
        self.grid = grid
        self.levels = levels
        self.noise_floor = noise_floor
        self.solver = solver
        self.blocks = blocks
        self.max_iterations = max_iterations
        self.tol = tol
        self.agents = agents
        self.backend = backend
        self.address = address
        self.bits = bits
        self.delta = delta
        self.rounds = rounds
        self.local_iterations = local_iterations
        self.rho = rho
        self.shard = shard
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params) -> GSMPRegressor:
        for name, value in params.items():
            if name not in _PARAMS:
                raise ValueError(f"unknown parameter {name!r} of GSMPRegressor")
            setattr(self, name, value)
        return self

    def _config(self, agents: int, backend: str | None, address: str | None) -> FitConfig:
        quantize = self.bits is not None or self.delta is not None
        return FitConfig(
            data=DataConfig(source="<array>", shard=self.shard),
            kernel=KernelConfig(grid=self.grid, components=self.components, levels=self.levels),
            learn=LearnConfig(
                solver=self.solver,
                blocks=self.blocks,
                max_iterations=self.max_iterations,
                tol=self.tol,
                noise_floor=self.noise_floor,
            ),
            consensus=ConsensusConfig(
                agents=agents,
                bits=self.bits if self.delta is None else None,
                delta=self.delta,
                quantize=quantize,
                rho=self.rho,
                max_rounds=self.rounds,
                local_iterations=self.local_iterations,
            ),
            backend=BackendConfig(name=backend, address=address),
            seed=self.random_state,
        ).validate()

    def fit(
        self,
        X,
        y,
        *,
        agents: int | None = None,
        backend: str | None = None,
        address: str | None = None,
        warm_start: np.ndarray | None = None,
    ) -> GSMPRegressor:
        """Learn the kernel weights and condition the GP on ``(X, y)``.

        Args:
            X: ``n x P`` inputs. y: ``n`` outputs.
            agents, backend, address: override the constructor's execution options for this
                call; they change where the work runs, not the model's definition.
            warm_start: ``M + 1`` parameters of an earlier fit to start from.
        """
        from distgp.driver import fit

        X, y = check_X_y(X, y)
        config = self._config(
            self.agents if agents is None else agents,
            self.backend if backend is None else backend,
            self.address if address is None else address,
        )
        result = fit(X, y, config, initial=warm_start)
        model = result.model
        y_var = model.scaler.y_scale**2
        self.model_ = model
        self._parts = result.parts  # each agent's shard: private prediction asks them
        self.theta_ = result.theta.copy()
        self.weights_ = model.weights * y_var
        self.noise_variance_ = float(model.noise_variance * y_var)
        self.spectrum_ = model.grid.means / model.scaler.x_scale
        self.active_components_ = int(np.count_nonzero(model.weights))
        self.n_features_in_ = X.shape[1]
        self.history_ = copy.deepcopy(result.history)
        self.rounds_ = result.rounds
        self.iterations_ = result.iterations
        self.converged_ = result.converged
        self.bits_sent_ = result.bits_sent
        self.bits_float64_ = result.bits_float64
        self.objective_ = result.objective
        self.seconds_ = result.seconds
        self.events_ = list(result.events)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this GSMPRegressor is not fitted yet; call fit(X, y) first")

    def predict(self, X, return_std: bool = False):
        """Predictive mean (``n_*``), and the standard deviation with noise if ``return_std``."""
        self._check_fitted()
        X = check_X(X, dims=self.n_features_in_, what="prediction inputs X")
        if self.model_.private:
            from distgp.driver import predict_with_agents

            mean, std = predict_with_agents(self.model_, X, parts=self._parts)
            return (mean, std) if return_std else mean
        return self.model_.predict(X, return_std=return_std)

    def score(self, X, y) -> float:
        """Coefficient of determination R^2 of the predictive mean."""
        X, y = check_X_y(X, y, what="scoring", min_points=1)
        residual = np.sum((y - self.predict(X)) ** 2)
        total = np.sum((y - y.mean()) ** 2)
        return float(1.0 - residual / total) if total > 0 else float("nan")

    @property
    def kernel_(self):
        """The learned kernel as a :class:`~distgp.kernels.GSMPKernel` on raw inputs."""
        self._check_fitted()
        from distgp.kernels.gsmp import GSMPKernel

        model = self.model_
        return GSMPKernel(
            model.grid,
            weights=self.weights_,
            input_shift=model.scaler.x_mean,
            input_scale=model.scaler.x_scale,
        )


_PARAMS = (
    "components",
    "grid",
    "levels",
    "noise_floor",
    "solver",
    "blocks",
    "max_iterations",
    "tol",
    "agents",
    "backend",
    "address",
    "bits",
    "delta",
    "rounds",
    "local_iterations",
    "rho",
    "shard",
    "random_state",
)
