"""Re-learning the bandit's GSMP kernel on the agents between batches (SLIM-KL via the driver)."""

from __future__ import annotations

import numpy as np

from distgp.bandit.config import OptimizeConfig
from distgp.bandit.kernels import GSMPArmKernel

GSMP_COMPONENTS_PER_DIM = 8  # default GSMP size: modest, so that re-fits take seconds
# Evaluating agents and GSMP learning agents take turns (learning runs between batches), so on
# Ray each set reserves half of the agents' fair CPU share and both fit on the cluster at once.
ALTERNATING_CPU_SHARE = 0.5


def evaluator_cpu_share(config: OptimizeConfig) -> float:
    """Fraction of the fair CPU share each evaluating agent reserves on Ray: half when GSMP
    learning agents take turns with them, all of it otherwise."""
    return ALTERNATING_CPU_SHARE if config.kernel.name == "gsmp" else 1.0


class GSMPRefitter:
    """Re-learns GSMP weights with SLIM-KL from the observations, warm-starting each fit."""

    def __init__(self, config: OptimizeConfig, dims: int) -> None:
        self.config = config
        self.dims = dims
        self.theta: np.ndarray | None = None
        self.fits = 0
        self.noise_variance: float | None = None  # of the last fit, standardised units
        self._backend = None  # built at the first fit, then reused (one Ray start per run)

    def close(self) -> None:
        """Release the learning agents (and a Ray instance started for them)."""
        if self._backend is not None:
            self._backend.shutdown()
            self._backend = None

    def __call__(self, X: np.ndarray, y: np.ndarray, agent: np.ndarray) -> GSMPArmKernel | None:
        """Fit on encoded points ``X`` (``n x D``), rewards ``y`` and the agent of each point;
        ``None`` while the agents hold too few evaluations (below the minimum shard size) to
        send anything about them."""
        from distgp.config import FitConfig
        from distgp.driver import fit

        c = self.config
        fc = FitConfig()
        fc.kernel.components = c.kernel.components or GSMP_COMPONENTS_PER_DIM * self.dims
        fc.kernel.levels = c.kernel.levels
        fc.kernel.trend = "none"  # arm kernels stay stationary: k(x, x) is the weights' sum
        fc.learn.max_iterations = c.kernel.max_iterations
        fc.consensus.agents = c.agents.count
        fc.consensus.max_rounds = c.kernel.rounds
        fc.backend.name = c.backend_name
        fc.backend.address = c.agents.address
        fc.seed = c.seed
        counts = np.bincount(agent, minlength=c.agents.count)
        minimum = fc.data.min_shard_size
        own_data = counts.size == c.agents.count and counts.min() >= minimum
        if not own_data and len(y) < minimum * c.agents.count:
            return None  # too few evaluations for every agent to say anything about them
        fc.data.shard = "column:agent" if own_data else "random"
        if self._backend is None:
            from distgp.agents.backends import make_backend

            self._backend = make_backend(
                fc.backend_name, fc.backend.address, share_fraction=ALTERNATING_CPU_SHARE
            )
        groups = agent if own_data else None
        result = fit(X, y, fc, groups=groups, initial=self.theta, backend=self._backend)
        self.theta = result.theta
        self.fits += 1
        self.noise_variance = float(result.model.noise_variance)
        return GSMPArmKernel.from_model(result.model)
