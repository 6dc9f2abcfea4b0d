"""The torch path (``device=cuda``, here ``torch:cpu``) equals the numpy path to 1e-8 relative."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.data import Scaler
from distgp.exceptions import ConfigError
from distgp.gp import GSMPModel
from distgp.kernels import SubKernelBank, data_grid
from distgp.kernels.compute import check_device
from distgp.learn import DSCAOptions, LocalObjective, dsca

torch = pytest.importorskip("torch")
DEVICES = ["torch:cpu"] + (["cuda"] if torch.cuda.is_available() else [])
RTOL = 1e-8


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


def test_device_names_are_checked():
    assert check_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="choose cpu or cuda"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            check_device("cuda")
