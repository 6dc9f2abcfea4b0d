"""Private prediction: each agent is an expert on its own shard, the driver combines them.

With the consensus kernel, agent ``j`` conditions the GP on its own shard only and returns its
latent mean and variance at the driver's test inputs; the driver combines them with the robust
Bayesian committee machine (rBCM, Deisenroth & Ng, ICML 2015, eq. 20; see ``docs/admm.md``). No
training point leaves an agent; what the driver sees are the experts' predictions at the points
it asked about.
"""

from __future__ import annotations

import numpy as np

VARIANCE_FLOOR = 1e-12


def rbcm_combine(
    means: np.ndarray, variances: np.ndarray, prior_variance: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Combine ``K`` experts' latent predictions with the rBCM rule.

    ``beta_k = (log s_**^2 - log s_k^2) / 2``,
    ``s^-2 = sum_k beta_k s_k^-2 + (1 - sum_k beta_k) s_**^-2``,
    ``mu = s^2 sum_k beta_k s_k^-2 mu_k``. The prior mean is zero (standardised units).

    Args:
        means: ``K x n_*`` expert means.
        variances: ``K x n_*`` expert latent variances.
        prior_variance: ``n_*`` (or scalar) prior latent variance ``k(x_*, x_*)``.

    Returns:
        Mean and latent variance, each ``n_*``.
    """
    means = np.asarray(means, float)
    # floored like the experts' variances: a kernel with every weight at 0 has no latent variance
    prior = np.maximum(
        np.broadcast_to(np.asarray(prior_variance, float), means.shape[1:]), VARIANCE_FLOOR
    )
    variances = np.minimum(np.maximum(np.asarray(variances, float), VARIANCE_FLOOR), prior)
    beta = 0.5 * (np.log(prior)[None, :] - np.log(variances))
    precision = (beta / variances).sum(0) + (1.0 - beta.sum(0)) / prior
    precision = np.maximum(precision, VARIANCE_FLOOR / prior)
    mean = (beta * means / variances).sum(0) / precision
    return mean, 1.0 / precision


def combine_experts(answers: list[list[np.ndarray]], prior_variance: float) -> tuple:
    """rBCM over the agents' ``[mean, variance]`` answers; a lone expert is returned as is."""
    means = np.array([a[0] for a in answers])
    variances = np.array([a[1] for a in answers])
    if len(answers) == 1:
        return means[0], variances[0]
    return rbcm_combine(means, variances, prior_variance)
