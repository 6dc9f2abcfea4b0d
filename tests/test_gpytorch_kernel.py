"""GSMPKernel against GPyTorch's own kernel test case, in float32 and float64.

``gpytorch.test.base_kernel_test_case.BaseKernelTestCase`` ships with GPyTorch: every kernel of
the library passes it (batches, ``active_dims``, ``kernel[i]``, pickling, dtype and device).
The "no ARD" kernel is isotropic (a one-column grid shared by every input dimension), the ARD
kernel has a data grid over ``num_dims`` dimensions; the weights are drawn from a fixed seed and
differ between batch members, so that slicing a batch is tested on distinct kernels.
"""

from __future__ import annotations

import math
import unittest

import gpytorch
import numpy as np
import pytest
import torch
from gpytorch.test.base_kernel_test_case import BaseKernelTestCase

from distgp.kernels import GSMPKernel, SubKernelBank, data_grid, reference_grid

COMPONENTS = 6


def random_weights(kwargs: dict, M: int) -> torch.Tensor:
    """The same weights on every call (two kernels built alike are equal), distinct across a
    batch."""
    batch = kwargs.get("batch_shape", torch.Size([]))
    return torch.rand(*batch, M, generator=torch.Generator().manual_seed(0)) + 0.1


class _GSMPKernelCase(BaseKernelTestCase):
    seed = 0
    dtype = torch.float32

    def setUp(self):
        self._default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        super().setUp()

    def tearDown(self):
        super().tearDown()
        torch.set_default_dtype(self._default_dtype)

    def create_kernel_no_ard(self, **kwargs):
        grid = reference_grid(dims=1, components=COMPONENTS)
        return GSMPKernel(grid, weights=random_weights(kwargs, COMPONENTS), **kwargs)

    def create_kernel_ard(self, num_dims, **kwargs):
        grid = data_grid(50, num_dims, components=4 * num_dims, levels=2)
        return GSMPKernel(grid, weights=random_weights(kwargs, grid.components), **kwargs)


class TestGSMPKernelFloat32(_GSMPKernelCase, unittest.TestCase):
    dtype = torch.float32


class TestGSMPKernelFloat64(_GSMPKernelCase, unittest.TestCase):
    dtype = torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_default_and_to(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        kernel = GSMPKernel(reference_grid(dims=2, components=5))
    finally:
        torch.set_default_dtype(previous)
    assert kernel.dtype == dtype and kernel.grid.means.dtype == dtype
    x = torch.randn(4, 2, dtype=dtype)
    assert kernel(x).to_dense().dtype == dtype and kernel(x, diag=True).dtype == dtype
    other = torch.float64 if dtype == torch.float32 else torch.float32
    kernel.to(other)
    y = x.to(other)
    full, diag = kernel(y).to_dense(), kernel(y, diag=True)
    assert full.dtype == other and diag.dtype == other
    assert torch.allclose(diag, full.diagonal(), rtol=1e-5)


def test_the_diagonal_of_two_input_sets_is_their_pairs_covariance():
    """``diag=True`` with ``x1 != x2``: ``k(x1_i, x2_i)``, not ``k(0)``, as gpytorch's own
    kernels give."""
    kernel = GSMPKernel(reference_grid(dims=1, components=20), dtype=torch.float64)
    a, b = (
        torch.randn(4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
        for s in (0, 1)
    )
    full = kernel(a, b).to_dense().diagonal()
    assert torch.allclose(kernel(a, b, diag=True), full, rtol=1e-12)
    assert not torch.allclose(full, kernel(a, a, diag=True))


def test_isotropic_grid_equals_repeated_reference_grid():
    x = torch.randn(7, 3, dtype=torch.float64)
    w = torch.rand(8, dtype=torch.float64) + 0.1
    shared = GSMPKernel(reference_grid(dims=1, components=8), weights=w, dtype=torch.float64)
    full = GSMPKernel(reference_grid(dims=3, components=8), weights=w, dtype=torch.float64)
    assert torch.allclose(shared(x).to_dense(), full(x).to_dense(), atol=1e-12)


def test_batched_weights_equal_separate_kernels():
    rng = np.random.default_rng(0)
    grid = data_grid(40, 2, components=10)
    w = torch.as_tensor(rng.uniform(0.1, 1.0, size=(3, grid.components)))
    batched = GSMPKernel(grid, weights=w, batch_shape=torch.Size([3]), dtype=torch.float64)
    X = torch.as_tensor(rng.normal(size=(6, 2)))
    K = batched(X).to_dense()
    assert K.shape == (3, 6, 6)
    for b in range(3):
        dense = SubKernelBank(X.numpy(), grid).gram(w[b].numpy())
        assert np.allclose(K[b].detach().numpy(), dense, atol=1e-10)
        assert torch.allclose(batched[b].weights, batched.weights[b])
    assert batched[1].grid.means.shape == (grid.components, 2)  # the grid is not sliced


def test_input_width_must_match_a_multi_column_grid():
    kernel = GSMPKernel(data_grid(30, 2, components=6))
    with pytest.raises(ValueError, match="expected inputs with d=2"):
        kernel(torch.zeros(3, 4)).to_dense()


def test_loading_another_grid_of_the_same_size_takes_effect():
    x = torch.randn(5, 1, dtype=torch.float64)
    low = GSMPKernel(reference_grid(dims=1, components=4), dtype=torch.float64)
    high = GSMPKernel(data_grid(30, 1, components=4, slow=0), dtype=torch.float64)
    assert not torch.allclose(low(x).to_dense(), high(x).to_dense())
    low.load_state_dict(high.state_dict())
    assert torch.allclose(low(x).to_dense(), high(x).to_dense())


@pytest.mark.parametrize("diag", [False, True])
def test_last_dim_is_batch_is_refused_with_the_alternative(diag):
    kernel = GSMPKernel(reference_grid(dims=1, components=6), dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="GSMPKernel does not support last_dim_is_batch"):
        kernel(x, diag=diag, last_dim_is_batch=True)
    with pytest.raises(ValueError, match="leading dimensions"):  # through a wrapper's forward
        gpytorch.kernels.ScaleKernel(kernel)(x, last_dim_is_batch=True).to_dense()
    per_column = kernel(x.mT.unsqueeze(-1)).to_dense()  # the alternative the message names
    assert per_column.shape == (2, 5, 5)
    assert torch.allclose(per_column[1], kernel(x[:, 1:]).to_dense())


def test_weights_setter_refuses_negative_nan_and_misshapen_weights():
    kernel = GSMPKernel(reference_grid(dims=1, components=6), batch_shape=torch.Size([3]))
    before = kernel.weights.detach().clone()
    for bad in (-torch.ones(6), torch.tensor([1.0, 1, 1, 1, 1, float("nan")]), [math.inf] * 6):
        with pytest.raises(ValueError, match="weights must be non-negative finite numbers"):
            kernel.weights = bad
    for bad in (torch.ones(5), torch.ones(2, 6), torch.tensor(1.0)):
        with pytest.raises(
            ValueError,
            match=r"weights must have shape \(6,\) \(M=6\) or batch_shape x M = \(3, 6\)",
        ):
            kernel.weights = bad
    assert torch.equal(kernel.weights, before)  # a refused value changes nothing
    kernel.weights = torch.zeros(6)  # an exact zero is kept at the floor
    assert torch.all(kernel.weights <= 1e-29) and torch.all(kernel.weights > 0)
    kernel.weights = torch.arange(18.0).reshape(3, 6)
    assert torch.allclose(kernel.weights[2], torch.arange(12.0, 18.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_with_batches():
    grid = data_grid(40, 2, components=10)
    w = torch.rand(3, grid.components, dtype=torch.float64) + 0.1
    cpu = GSMPKernel(grid, weights=w, batch_shape=torch.Size([3]), dtype=torch.float64)
    gpu = GSMPKernel(grid, weights=w, batch_shape=torch.Size([3]), dtype=torch.float64).cuda()
    x = torch.randn(3, 50, 2, dtype=torch.float64)
    K = gpu(x.cuda()).to_dense()
    assert K.device.type == "cuda" and gpu.grid.means.device.type == "cuda"
    assert torch.allclose(K.cpu(), cpu(x).to_dense(), atol=1e-10)
    assert torch.allclose(gpu(x.cuda(), diag=True).cpu(), K.diagonal(dim1=-2, dim2=-1).cpu())
