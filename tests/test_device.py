"""The torch path (``device=cuda``, here ``torch:cpu``) equals the numpy path to 1e-8 relative."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.bandit import BKB
from distgp.config import FitConfig
from distgp.data import Scaler
from distgp.driver import fit
from distgp.exceptions import ConfigError
from distgp.gp import GSMPModel
from distgp.kernels import SubKernelBank, data_grid
from distgp.kernels.compute import check_device, ops_for
from distgp.kernels.trend import TrendBank, TrendBasis
from distgp.learn import DSCAOptions, LocalObjective, dsca

torch = pytest.importorskip("torch")
DEVICES = ["torch:cpu"] + (["cuda"] if torch.cuda.is_available() else [])
RTOL = 1e-8


@pytest.fixture(autouse=True)
def no_implicit_numpy(monkeypatch):
    """Make every implicit numpy conversion of a torch tensor (``np.asarray(tensor)``) fail,
    as it does for a CUDA tensor, so that ``torch:cpu`` tests catch what only a GPU would
    (every test here)."""

    def refuse(self, *args, **kwargs):
        raise TypeError("implicit numpy conversion of a torch tensor (fails on CUDA)")

    monkeypatch.setattr(torch.Tensor, "__array__", refuse)


def _problem(rng, n=70, dims=2):
    X = rng.standard_normal((n, dims))
    y = np.sin(2.0 * X[:, 0]) + 0.3 * X[:, 1] ** 2 + 0.05 * rng.standard_normal(n)
    grid = data_grid(n, dims, components=40, levels=2)
    return X, (y - y.mean()) / y.std(), grid


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) <= rtol * scale


@pytest.mark.parametrize("device", DEVICES)
def test_bank_gram_products_and_cross_match_numpy(rng, device):
    X, _, grid = _problem(rng)
    cpu, dev = SubKernelBank(X, grid), SubKernelBank(X, grid, device=device)
    w = rng.uniform(0, 1, grid.components) * (rng.uniform(size=grid.components) > 0.3)
    K = cpu.gram(w)
    assert _close(dev.ops.numpy(dev.gram(w)), K)
    A = np.linalg.inv(K + np.eye(len(K)))
    alpha = rng.standard_normal(len(K))
    idx = np.arange(grid.components)
    t_cpu, q_cpu = cpu.products(idx, A=A, alpha=alpha)
    t_dev, q_dev = dev.products(idx, A=dev.ops.asarray(A), alpha=alpha)
    assert _close(t_dev, t_cpu) and _close(q_dev, q_cpu)
    Xs = rng.standard_normal((9, X.shape[1]))
    assert _close(dev.ops.numpy(dev.cross(Xs, w)), cpu.cross(Xs, w))


@pytest.mark.parametrize("device", DEVICES)
def test_dsca_fit_and_prediction_match_numpy(rng, device):
    X, y, grid = _problem(rng)
    theta0 = np.r_[np.full(grid.components, 0.9 / grid.components), 0.1]
    options = DSCAOptions(max_iterations=40)
    runs = {
        d: dsca(LocalObjective(SubKernelBank(X, grid, device=d), y, 1e-3), theta0, None, options)
        for d in ("cpu", device)
    }
    ref, got = runs["cpu"], runs[device]
    assert got.iterations == ref.iterations
    assert _close(got.theta, ref.theta) and abs(got.value - ref.value) <= RTOL * abs(ref.value)
    scaler = Scaler(np.zeros(X.shape[1]), np.ones(X.shape[1]), 0.0, 1.0)
    models = {
        d: GSMPModel(grid, scaler, ref.theta[:-1], float(ref.theta[-1]), X, y, device=d)
        for d in ("cpu", device)
    }
    Xs = rng.standard_normal((15, X.shape[1]))
    mean_cpu, std_cpu = models["cpu"].predict(Xs, return_std=True)
    mean_dev, std_dev = models[device].predict(Xs, return_std=True)
    assert _close(mean_dev, mean_cpu) and _close(std_dev, std_cpu)


def _series(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(1.0, n + 1.0)
    y = 0.05 * x + np.sin(2 * np.pi * x / 12) + 0.1 * rng.normal(size=n)
    return x[:, None], (y - y.mean()) / y.std()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["quadratic", "local"])
def test_trend_bank_apply_and_curvature_on_device_match_numpy(rng, device, kind):
    X, y = _series()
    X = (X - X.mean()) / X.std()
    grid = data_grid(len(y), 1, components=12)
    trend = TrendBasis.named(kind, 1)
    objectives = {
        d: LocalObjective(TrendBank(X, grid, trend, device=d), y, 1e-3) for d in ("cpu", device)
    }
    cpu, dev = objectives["cpu"], objectives[device]
    theta = np.r_[rng.uniform(0.01, 0.1, cpu.M), 0.1]
    assert _close(dev.curvature(theta), cpu.curvature(theta))  # alpha stays a device tensor
    v = rng.standard_normal(len(y))
    idx = np.arange(cpu.M)
    assert _close(dev.bank.apply(dev.bank.ops.asarray(v), idx), cpu.bank.apply(v, idx))


@pytest.mark.parametrize("device", DEVICES)
def test_admm_fit_with_a_trend_on_device_matches_numpy(device):
    """Two agents (curvature rounds included) on a series with a trend, on the device."""
    X, y = _series(80)
    results = {}
    for d in ("cpu", device):
        config = FitConfig()
        config.kernel.components = 12
        config.kernel.trend = "local"
        config.consensus.agents = 2
        config.consensus.max_rounds = 12  # past the curvature rounds 2 and 10
        config.consensus.local_iterations = 4
        config.backend.name = "inline"
        config.learn.device = d
        results[d] = fit(X, y, config)
    ref, got = results["cpu"], results[device]
    assert got.rounds == ref.rounds and ref.rounds >= 10
    assert _close(got.theta, ref.theta)
    assert abs(got.objective - ref.objective) <= RTOL * abs(ref.objective)


@pytest.mark.parametrize("device", DEVICES)
def test_gram_and_apply_copy_no_matrix_to_the_device(rng, device, monkeypatch):
    """Once built, a trend bank's ``gram`` (the polynomial part) and ``apply`` (the sum by
    owner) copy no host matrix to the device: they ran once per factorisation / chunk."""
    X, y = _series()
    X = (X - X.mean()) / X.std()
    grid = data_grid(len(y), 1, components=12)
    cpu = TrendBank(X, grid, TrendBasis.named("quadratic", 1))
    dev = TrendBank(X, grid, TrendBasis.named("quadratic", 1), device=device)
    w = rng.uniform(0.01, 0.1, cpu.M)
    v = rng.standard_normal(len(y))
    idx = np.arange(cpu.M)
    dev.gram(w), dev.apply(dev.ops.asarray(v), idx)  # fill the caches (features, envelopes)
    copied = []
    to_device = dev.ops.asarray

    def spy(a):
        if not isinstance(a, torch.Tensor) and np.ndim(a) >= 2:
            copied.append(np.shape(a))
        return to_device(a)

    monkeypatch.setattr(dev.ops, "asarray", spy)
    assert _close(dev.ops.numpy(dev.gram(w)), cpu.gram(w))
    assert _close(dev.apply(dev.ops.asarray(v), idx), cpu.apply(v, idx))
    assert copied == []


@pytest.mark.parametrize("device", DEVICES)
def test_solve_lower_takes_a_vector_as_numpy_does(rng, device):
    ops, ref = ops_for(device), ops_for("cpu")
    L = np.tril(rng.standard_normal((6, 6))) + 6 * np.eye(6)
    b = rng.standard_normal(6)
    x = ops.solve_lower(ops.asarray(L), ops.asarray(b))
    assert tuple(x.shape) == (6,) and _close(ops.numpy(x), ref.solve_lower(L, b))


def test_device_names_are_checked():
    assert check_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="choose cpu or cuda"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            check_device("cuda")


def _bkb_run(device: str, resparsify: float, batch: bool) -> tuple[list[int], BKB]:
    """A seeded BKB run: asks, tells, new arms mid-run, a state round trip."""
    rng = np.random.default_rng(3)
    arms = rng.uniform(size=(400, 2))

    def reward(x: np.ndarray) -> float:
        return float(-np.sum((x - 0.3) ** 2) + 0.02 * np.sin(15.0 * x[0]))

    bandit = BKB(arms, seed=1, device=device, beta=2.0, resparsify=resparsify, batch=batch)
    asked = []
    for step in range(40):
        idx = np.atleast_1d(bandit.ask())
        asked += [int(i) for i in idx]
        bandit.tell(idx, [reward(bandit.arms[i]) for i in idx])
        if step == 20:
            bandit.add_arms(rng.uniform(size=(30, 2)))
            bandit = BKB.from_state(bandit.state_dict()).to(device)  # loads on the CPU
    bandit.ask()  # refresh the posterior with every reward
    return asked, bandit


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("resparsify", "batch"), [(2.0, False), (1.0, False), (2.0, True)])
def test_bkb_embedding_on_device_matches_numpy(device, resparsify, batch):
    asked_cpu, cpu = _bkb_run("cpu", resparsify, batch)
    asked_dev, dev = _bkb_run(device, resparsify, batch)
    assert dev._state.device == device and cpu._state.device == "cpu"
    assert asked_dev == asked_cpu and dev.dictionary_size == cpu.dictionary_size
    assert cpu.dictionary_size > 5 and (resparsify > 1 or cpu.rebuilds > 20)
    assert _close(dev._mean, cpu._mean) and _close(dev._var, cpu._var)
    assert _close(dev._state.to_state()["Z"], cpu._state.to_state()["Z"])


def test_bkb_device_is_checked():
    arms = np.linspace(0, 1, 20)[:, None]
    with pytest.raises(ConfigError, match="choose cpu or cuda"):
        BKB(arms, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            BKB(arms, device="cuda")
