"""Baselines a user would pick instead of a GSMP kernel, scored on the same train/test splits.

Every baseline is a function ``(dataset, seed, ...) -> dict`` whose result holds at least ``mse``
and ``nlpd`` (test set, raw output units) and ``seconds`` (wall time of fitting and predicting).
Models work in standardised units internally (inputs and outputs centred and scaled with training
statistics; only the SpectralMixture baseline gives a 1-D series one input unit per sample, for its
spectral initialisation) and map their predictions back to raw units.

* :func:`train_mean`: predict the training mean (the sanity floor for any regression).
* :func:`seasonal_naive`: for 1-D monthly series, repeat the last season, optionally plus the
  last year's mean drift (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 5.2).
* :func:`gpytorch_rbf` and :func:`gpytorch_sm`: GPyTorch exact GPs with ``ScaleKernel(RBFKernel)``
  (ARD) and ``SpectralMixtureKernel`` (ARD), ``ConstantMean``, ``GaussianLikelihood``, float64,
  Adam. :func:`best_of_seeds` keeps the SM restart with the lowest training loss (a random
  start can collapse).
* :func:`rbcm`: robust Bayesian committee machine (Deisenroth & Ng, ICML 2015) with RBF-ARD
  experts, one per random shard (the shards ``distgp`` gives its agents for the same seed). The
  experts share one set of hyperparameters trained on the sum of their log marginal likelihoods,
  the same product-of-experts likelihood that SLIM-KL's ADMM optimises, and as in the rBCM paper.

Exact GPs cost ``O(n^3)`` per iteration and gpytorch's spectral-mixture kernel ``O(n^2 Q P)``
memory and time, so the GPyTorch baselines train their hyperparameters on a random subset of at
most ``max_train`` points (subset of data) and condition their predictions on at most
``max_condition`` points; the result says how many were used (``n_hyper``, ``n_condition``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from distgp.data import Dataset, Scaler, ShardSummary, shard_indices
from distgp.exceptions import InputDataError
from distgp.experts import rbcm_combine
from distgp.gp import regression_metrics

SEASON = 12  # points per season of the monthly series
ITERATIONS = 200  # Adam iterations of the GPyTorch baselines
LEARNING_RATE = 0.1
SM_MIXTURES = 10
SM_SEEDS = 5
RBF_MAX_TRAIN = 2000  # hyperparameter-training subset of the RBF baselines
RBF_MAX_CONDITION = 10_000  # points an RBF prediction conditions on (one Cholesky of this size)
SM_MAX_TRAIN = 256  # SM hyperparameter subset for P > 1 (its cost is O(n^2 Q P) per iteration)
SM_MAX_CONDITION = 1000  # SM predictions condition on at most this many points
CHOLESKY_SIZE = 10_000  # gpytorch uses Cholesky (not CG) up to this size
STD_FLOOR = 1e-12


# ----------------------------------------------------------------------------------------------
# Trivial baselines


def train_mean(dataset: Dataset, seed: int = 0) -> dict[str, Any]:
    """Predict the training mean with the training standard deviation as predictive std.

    Args:
        dataset: the split to score.
        seed: unused (the baseline is deterministic); kept for the common signature.
    """
    start = time.perf_counter()
    y = dataset.y_train
    n_test = len(dataset.y_test)
    mean = np.full(n_test, y.mean())
    std = np.full(n_test, max(float(y.std(ddof=1)), STD_FLOOR))
    return _scored(dataset, mean, std, start)


def seasonal_naive(
    dataset: Dataset, seed: int = 0, drift: bool = False, period: int = SEASON
) -> dict[str, Any]:
    """Seasonal naive forecast of a 1-D series: the value one or more seasons earlier.

    A test point ``k`` seasons past the last training season gets ``y(x - k period step)``, plus
    ``k`` times the yearly drift when ``drift`` is set: the mean change from the second-to-last
    to the last training season, ``mean(y[-period:] - y[-2 period:-period])``. The predictive std
    is ``sigma sqrt(k)``, as for a seasonal random walk, with ``sigma`` from all training seasonal
    differences by :func:`walk_sigma` (their root mean square; with drift their sd about it).

    Args:
        dataset: a 1-D series (``dataset.series``) with evenly spaced inputs.
        seed: unused (the baseline is deterministic).
        drift: add the mean yearly drift.
        period: points per season.

    Raises:
        InputDataError: the dataset is not an evenly spaced 1-D series longer than one season.
    """
    start = time.perf_counter()
    if not dataset.series:
        raise InputDataError(f"{dataset.name} is not a 1-D series; seasonal naive does not apply")
    x, y = dataset.X_train[:, 0], dataset.y_train
    if len(y) < 2 * period:
        raise InputDataError(f"{dataset.name} has {len(y)} points, fewer than two seasons")
    step = float(x[1] - x[0])
    diffs = y[period:] - y[:-period]
    slope = float(diffs[-period:].mean()) if drift else 0.0
    sigma = walk_sigma(diffs, slope if drift else None)
    ahead = (dataset.X_test[:, 0] - x[-1]) / (period * step)
    seasons = np.maximum(np.ceil(ahead - 1e-9), 1.0)
    source = np.rint((dataset.X_test[:, 0] - seasons * period * step - x[0]) / step).astype(int)
    if np.any(source < 0) or np.any(source >= len(y)):
        raise InputDataError(f"{dataset.name}: test inputs do not follow the training window")
    mean = y[source] + seasons * slope
    return _scored(dataset, mean, sigma * np.sqrt(seasons), start)


def walk_sigma(diffs: np.ndarray, drift: float | None = None) -> float:
    """Residual scale of a (seasonal) random walk from its training differences.

    Without drift a walk's residual is the difference itself: ``sigma`` is their root mean
    square, not their sd about their mean (Hyndman's ``forecast::rwf``/``snaive``). With a
    ``drift`` the residuals are the differences less it: their sd about it, ``ddof`` 1.
    """
    if drift is None:
        value = np.sqrt(np.mean(np.square(diffs)))
    else:
        value = np.sqrt(np.sum(np.square(diffs - drift)) / (len(diffs) - 1))
    return max(float(value), STD_FLOOR)


def _scored(
    dataset: Dataset, mean: np.ndarray, std: np.ndarray, start: float, **extra: Any
) -> dict[str, Any]:
    scores = regression_metrics(dataset.y_test, mean, std)
    return {**scores, "seconds": time.perf_counter() - start, **extra}


# ----------------------------------------------------------------------------------------------
# GPyTorch exact GPs


def _scaler(dataset: Dataset, per_sample: bool = False) -> Scaler:
    """Training-set standardisation of inputs and outputs.

    ``per_sample``: a 1-D series is only centred and divided by its step (one input unit per
    sample), the unit ``initialize_from_data_empspect`` reads frequencies in (cycles per
    sample); only the SpectralMixture baseline asks for it.
    """
    scaler = Scaler.from_summary(ShardSummary.of(dataset.X_train, dataset.y_train))
    if per_sample and dataset.series:
        x = dataset.X_train[:, 0]
        return Scaler(scaler.x_mean, np.array([float(x[1] - x[0])]), scaler.y_mean, scaler.y_scale)
    return scaler


def _subset(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted random indices of at most ``limit`` of ``n`` points (all when ``limit`` is None)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


class _Expert:
    """One GPyTorch exact GP on a shard; experts built from the same modules share them."""

    def __init__(self, X, y, likelihood, mean, kernel) -> None:
        import gpytorch

        class Model(gpytorch.models.ExactGP):
            def __init__(self) -> None:
                super().__init__(X, y, likelihood)
                self.mean_module = mean
                self.covar_module = kernel

            def forward(self, x):
                return gpytorch.distributions.MultivariateNormal(
                    self.mean_module(x), self.covar_module(x)
                )

        self.model = Model()
        self.n = int(y.shape[0])


def _train(experts: Sequence[_Expert], iterations: int, lr: float) -> float:
    """Adam on the sum of the experts' exact log marginal likelihoods, divided by total ``n``.

    Returns:
        The final loss (negative log marginal likelihood per point, standardised units).
    """
    import gpytorch
    import torch

    modules = torch.nn.ModuleList([e.model for e in experts])
    modules.train()
    optimizer = torch.optim.Adam(modules.parameters(), lr=lr)
    mlls = [gpytorch.mlls.ExactMarginalLogLikelihood(e.model.likelihood, e.model) for e in experts]
    total = sum(e.n for e in experts)
    loss = torch.zeros(())
    for _ in range(iterations):
        optimizer.zero_grad()
        loss = -sum(
            mll(e.model(*e.model.train_inputs), e.model.train_targets) * (e.n / total)
            for mll, e in zip(mlls, experts, strict=True)
        )
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def _posterior(expert: _Expert, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latent posterior mean, variance and prior variance of an expert at ``X`` (``n_* x P``)."""
    import torch

    model = expert.model
    model.eval()
    with torch.no_grad():
        latent = model(X)
        prior = model.covar_module(X, diag=True)
    return (
        latent.mean.numpy(),
        np.maximum(latent.variance.numpy(), 0.0),
        np.maximum(prior.numpy(), STD_FLOOR),
    )


def _fit_gp(
    dataset: Dataset,
    seed: int,
    make_kernel: Callable[[Any, Any], tuple[Any, str]],
    iterations: int,
    lr: float,
    max_train: int | None,
    max_condition: int | None,
    per_sample: bool = False,
    subset_seed: int | None = None,
) -> dict[str, Any]:
    """Train one exact GP (hyperparameters on a subset) and score it on the test split.

    ``per_sample``: the input scaling of :func:`_scaler`. ``subset_seed``: seed of the random
    subsets (default ``seed``), so that restarts from several seeds can share their data.
    """
    import gpytorch
    import torch

    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed if subset_seed is None else subset_seed)
    scaler = _scaler(dataset, per_sample)
    X = torch.as_tensor(scaler.x(dataset.X_train), dtype=torch.float64)
    y = torch.as_tensor(scaler.y(dataset.y_train), dtype=torch.float64)
    Xs = torch.as_tensor(scaler.x(dataset.X_test), dtype=torch.float64)
    hyper = torch.as_tensor(_subset(len(y), max_train, rng))
    condition = torch.as_tensor(_subset(len(y), max_condition, rng))
    with gpytorch.settings.max_cholesky_size(CHOLESKY_SIZE):
        kernel, init = make_kernel(X[hyper], y[hyper])
        likelihood = gpytorch.likelihoods.GaussianLikelihood()
        expert = _Expert(X[hyper], y[hyper], likelihood, gpytorch.means.ConstantMean(), kernel)
        expert.model.double()
        loss = _train([expert], iterations, lr)
        expert.model.set_train_data(X[condition], y[condition], strict=False)
        mean, var, _ = _posterior(expert, Xs)
        noise = float(likelihood.noise.detach())
    result = _scored(
        dataset,
        scaler.y_back(mean),
        np.sqrt(var + noise) * scaler.y_scale,
        start,
        n_hyper=len(hyper),
        n_condition=len(condition),
        noise_variance=noise * scaler.y_scale**2,
        loss=loss,
        init=init,
        seed=seed,
    )
    return result


def gpytorch_rbf(
    dataset: Dataset,
    seed: int = 0,
    iterations: int = ITERATIONS,
    lr: float = LEARNING_RATE,
    max_train: int | None = RBF_MAX_TRAIN,
    max_condition: int | None = RBF_MAX_CONDITION,
) -> dict[str, Any]:
    """GPyTorch exact GP with ``ScaleKernel(RBFKernel(ard_num_dims=P))``.

    Args:
        dataset: the split to score.
        seed: torch and subset seed.
        iterations: Adam iterations on the exact marginal likelihood.
        lr: Adam learning rate.
        max_train: hyperparameters are trained on at most this many random training points.
        max_condition: predictions condition on at most this many random training points.

    Returns:
        ``mse``, ``rmse``, ``nlpd`` (raw units), ``seconds``, ``n_hyper``, ``n_condition``,
        ``noise_variance`` (raw units), ``loss``, ``init``, ``seed``.
    """
    return _fit_gp(dataset, seed, _rbf_kernel, iterations, lr, max_train, max_condition)


def _rbf_kernel(X, y) -> tuple[Any, str]:
    import gpytorch

    dims = int(X.shape[1])
    return gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=dims)), "default"


def gpytorch_sm(
    dataset: Dataset,
    seed: int = 0,
    mixtures: int = SM_MIXTURES,
    iterations: int = ITERATIONS,
    lr: float = LEARNING_RATE,
    max_train: int | None = None,
    max_condition: int | None = SM_MAX_CONDITION,
    subset_seed: int | None = None,
) -> dict[str, Any]:
    """GPyTorch exact GP with ``SpectralMixtureKernel(num_mixtures, ard_num_dims=P)``.

    1-D series, in one input unit per sample, start from ``initialize_from_data_empspect`` (a
    Gaussian mixture fitted to the empirical spectrum in cycles per sample; seeded through
    numpy's global generator, which is saved and restored), falling back to
    ``initialize_from_data`` if that fails; other data start from
    ``initialize_from_data``. The result's ``init`` says which one ran.

    Args:
        dataset: the split to score.
        seed: torch, numpy and subset seed.
        mixtures: number of spectral mixture components ``Q``.
        iterations: Adam iterations.
        lr: Adam learning rate.
        max_train: hyperparameter subset size; ``None`` means all points for a 1-D series and
            ``SM_MAX_TRAIN`` otherwise.
        max_condition: predictions condition on at most this many random training points.
        subset_seed: seed of the hyperparameter and conditioning subsets (default ``seed``):
            restarts that share it train on the same points, so their losses compare.
    """
    if max_train is None and not dataset.series:
        max_train = SM_MAX_TRAIN

    def make_kernel(X, y) -> tuple[Any, str]:
        import gpytorch
        import torch

        kernel = gpytorch.kernels.SpectralMixtureKernel(
            num_mixtures=mixtures, ard_num_dims=int(X.shape[1])
        ).double()
        if dataset.series:
            state = np.random.get_state()
            np.random.seed(seed)
            try:
                kernel.initialize_from_data_empspect(X, y)
                return kernel, "empspect"
            except (ValueError, RuntimeError, np.linalg.LinAlgError):
                torch.manual_seed(seed)
            finally:
                np.random.set_state(state)
        kernel.initialize_from_data(X, y)
        return kernel, "data"

    return _fit_gp(
        dataset,
        seed,
        make_kernel,
        iterations,
        lr,
        max_train,
        max_condition,
        per_sample=True,
        subset_seed=subset_seed,
    )


def best_of_seeds(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The restart with the lowest training loss (negative log marginal likelihood per point):
    its test ``mse``, ``nlpd`` and ``coverage95``, chosen without test data, as random restarts
    are resolved in common practice; ``seconds`` is the median per seed.

    Also ``seed`` (the chosen one), ``seeds``, ``failed_seeds`` with their ``seed_errors``, and
    every seed's ``mse_per_seed``, ``loss_per_seed`` and their ``median_mse`` for reference.

    Args:
        results: one result dict per seed; entries with an ``error`` key, or a training loss
            that is not finite, count as failed seeds.
    """
    trained = ["error" not in r and np.isfinite(r.get("loss", np.nan)) for r in results]
    good = [r for r, ok in zip(results, trained, strict=True) if ok]
    errors = [
        str(r.get("error", "training loss not finite"))
        for r, ok in zip(results, trained, strict=True)
        if not ok
    ]
    if not good:
        return {"error": "; ".join(errors) or "no seeds ran"}
    best = min(good, key=lambda r: r["loss"])
    return {
        **{key: best[key] for key in ("mse", "nlpd", "coverage95", "seed", "loss", "init")},
        "seconds": float(np.median([r["seconds"] for r in good])),
        "seeds": len(good),
        "failed_seeds": len(errors),
        "seed_errors": errors,
        "mse_per_seed": [r["mse"] for r in good],
        "loss_per_seed": [r["loss"] for r in good],
        "median_mse": float(np.median([r["mse"] for r in good])),
        "n_hyper": best["n_hyper"],
        "n_condition": best["n_condition"],
    }


# ----------------------------------------------------------------------------------------------
# Robust Bayesian committee machine


def rbcm(
    dataset: Dataset,
    agents: int,
    seed: int = 0,
    iterations: int = ITERATIONS,
    lr: float = LEARNING_RATE,
) -> dict[str, Any]:
    """rBCM with RBF-ARD experts, one per random shard of the training set.

    The experts share a ``ScaleKernel(RBFKernel(ard))``, a ``ConstantMean`` and a
    ``GaussianLikelihood`` trained by Adam on the sum of the experts' log marginal likelihoods
    (each expert sees only its shard). Each expert predicts from its own shard and the latent
    predictions are combined by :func:`rbcm_combine` (the prior mean, the shared constant, is
    taken out before and put back after); the noise variance is added for NLPD. With one expert
    there is nothing to combine and the prediction is that expert's, i.e. the full exact GP
    (the entropy weight ``beta`` would otherwise rescale a lone expert's precision).

    Args:
        dataset: the split to score.
        agents: number of experts ``K`` (shards as ``distgp`` deals them for ``seed``).
        seed: shard and torch seed.
        iterations: Adam iterations.
        lr: Adam learning rate.

    Returns:
        ``mse``, ``rmse``, ``nlpd`` (raw units), ``seconds``, ``agents``, ``shard_sizes``,
        ``noise_variance`` (raw units), ``loss``.
    """
    import gpytorch
    import torch

    start = time.perf_counter()
    torch.manual_seed(seed)
    scaler = _scaler(dataset)
    X = torch.as_tensor(scaler.x(dataset.X_train), dtype=torch.float64)
    y = torch.as_tensor(scaler.y(dataset.y_train), dtype=torch.float64)
    Xs = torch.as_tensor(scaler.x(dataset.X_test), dtype=torch.float64)
    shards = shard_indices(len(y), agents, "random", seed=seed)
    with gpytorch.settings.max_cholesky_size(CHOLESKY_SIZE):
        kernel, _ = _rbf_kernel(X, y)
        likelihood = gpytorch.likelihoods.GaussianLikelihood()
        mean_module = gpytorch.means.ConstantMean()
        experts = []
        for idx in shards:
            index = torch.as_tensor(idx)
            expert = _Expert(X[index], y[index], likelihood, mean_module, kernel)
            expert.model.double()
            experts.append(expert)
        loss = _train(experts, iterations, lr)
        parts = [_posterior(e, Xs) for e in experts]
        noise = float(likelihood.noise.detach())
        offset = float(mean_module.constant.detach())
    means = np.array([p[0] for p in parts]) - offset
    variances = np.array([p[1] for p in parts])
    if len(experts) == 1:
        mean, var = means[0], variances[0]
    else:
        mean, var = rbcm_combine(means, variances, parts[0][2])
    return _scored(
        dataset,
        scaler.y_back(mean + offset),
        np.sqrt(var + noise) * scaler.y_scale,
        start,
        agents=agents,
        shard_sizes=[len(s) for s in shards],
        noise_variance=noise * scaler.y_scale**2,
        loss=loss,
    )


def estimated_noise_fraction(dataset: Dataset) -> float:
    """A robust estimate of the noise variance as a fraction of ``var(y_train)``.

    1-D series: second differences ``y[t+1] - 2 y[t] + y[t-1]`` of a smooth signal plus white
    noise have variance ``6 sigma^2``. Other data: differences between each training point and
    its nearest neighbour in standardised input space have variance about ``2 sigma^2``. Both use
    the median absolute deviation (``sigma = 1.4826 MAD``), so a few outliers or sharp features
    do not inflate the estimate. The nearest-neighbour estimate also contains the signal change
    over the neighbour distance, so it is an upper bound on rough data.
    """
    y = dataset.y_train
    if dataset.series:
        diffs = y[2:] - 2.0 * y[1:-1] + y[:-2]
        factor = 6.0
    else:
        scaler = Scaler.from_summary(ShardSummary.of(dataset.X_train, y))
        Z = scaler.x(dataset.X_train)
        nearest = np.empty(len(y), dtype=int)
        for start in range(0, len(y), 1024):
            block = Z[start : start + 1024]
            d2 = (block**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2.0 * block @ Z.T
            d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
            nearest[start : start + len(block)] = d2.argmin(1)
        diffs = y - y[nearest]
        factor = 2.0
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return (1.4826 * mad) ** 2 / factor / float(np.var(y))
