"""The GSMP kernel as a :class:`gpytorch.kernels.Kernel`."""

from __future__ import annotations

import math

import numpy as np
import torch
from gpytorch.constraints import Positive
from gpytorch.kernels import Kernel

from distgp.kernels.grid import SpectralGrid, expand


class GSMPKernel(Kernel):
    r"""Grid spectral mixture product kernel.

    .. math::
        k(x, x') = \sum_{m=1}^M w_m \prod_{p=1}^P \cos(2\pi \mu_{mp} \tau_p)
        \exp(-2\pi^2 v_{mp} \tau_p^2), \quad \tau = (x - x') / s,

    with a fixed grid (``mu``, ``v``: buffers) and learnable non-negative weights ``w``. Inputs
    are shifted and scaled by the buffers ``input_shift`` and ``input_scale`` first (zeros and
    ones unless the kernel comes from a fitted :class:`~distgp.GSMPRegressor`).

    Args:
        grid: the spectral grid (``M`` components over ``P`` dimensions).
        weights: initial weights (``M``), default ``1 / M`` each.
        input_shift, input_scale: ``P`` affine input transform.

    Example:
        >>> from distgp.kernels import GSMPKernel, reference_grid
        >>> kernel = GSMPKernel(reference_grid(dims=1, components=50))
        >>> kernel(torch.randn(5, 1, dtype=torch.float64)).to_dense().shape
        torch.Size([5, 5])
    """

    is_stationary = True
    has_lengthscale = False

    def __init__(
        self,
        grid: SpectralGrid,
        weights: np.ndarray | torch.Tensor | None = None,
        input_shift: np.ndarray | None = None,
        input_scale: np.ndarray | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        M, P = grid.means.shape
        dtype = torch.float64
        self.register_buffer("means", torch.as_tensor(grid.means, dtype=dtype))
        self.register_buffer("variances", torch.as_tensor(grid.variances, dtype=dtype))
        self.register_buffer(
            "input_shift",
            torch.as_tensor(np.zeros(P) if input_shift is None else input_shift, dtype=dtype),
        )
        self.register_buffer(
            "input_scale",
            torch.as_tensor(np.ones(P) if input_scale is None else input_scale, dtype=dtype),
        )
        groups = expand(grid)
        self._group_sizes = [len(g.coef) for g in groups]
        self.register_buffer(
            "group_variances", torch.as_tensor(np.array([g.variance for g in groups]), dtype=dtype)
        )
        self.register_buffer(
            "directions", torch.as_tensor(np.vstack([g.directions for g in groups]), dtype=dtype)
        )
        self.register_buffer(
            "direction_owner",
            torch.as_tensor(
                np.concatenate([g.components[g.owner] for g in groups]), dtype=torch.long
            ),
        )
        self.register_buffer(
            "direction_coef", torch.as_tensor(np.concatenate([g.coef for g in groups]), dtype=dtype)
        )
        self.register_parameter("raw_weights", torch.nn.Parameter(torch.zeros(M, dtype=dtype)))
        self.register_constraint("raw_weights", Positive())
        self.weights = torch.full((M,), 1.0 / M, dtype=dtype) if weights is None else weights

    @property
    def weights(self) -> torch.Tensor:
        """Non-negative component weights (``M``)."""
        return self.raw_weights_constraint.transform(self.raw_weights)

    @weights.setter
    def weights(self, value) -> None:
        value = torch.as_tensor(value, dtype=self.raw_weights.dtype)
        # Positive() is a softplus: keep exact zeros representable as a tiny positive number.
        value = value.clamp_min(1e-30)
        self.initialize(raw_weights=self.raw_weights_constraint.inverse_transform(value))

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params
    ) -> torch.Tensor:
        """Covariance between ``... x n x P`` and ``... x m x P`` inputs.

        Returns:
            ``... x n x m`` matrix, or the ``... x n`` diagonal when ``diag=True``.
        """
        P = self.means.shape[1]
        if x1.shape[-1] != P or x2.shape[-1] != P:
            raise ValueError(
                f"GSMPKernel expected inputs with d={P}, got {x1.shape[-1]} and {x2.shape[-1]}"
            )
        weights = self.weights
        if diag:
            return weights.sum().expand(*x1.shape[:-1]).to(x1.dtype)
        z1 = (x1 - self.input_shift) / self.input_scale
        z2 = (x2 - self.input_shift) / self.input_scale
        column_weight = weights[self.direction_owner] * self.direction_coef
        out = None
        start = 0
        for g, size in enumerate(self._group_sizes):
            sl = slice(start, start + size)
            start += size
            U = self.directions[sl]
            c = column_weight[sl]
            p1 = 2 * math.pi * z1 @ U.T
            p2 = 2 * math.pi * z2 @ U.T
            inner = (torch.cos(p1) * c) @ torch.cos(p2).transpose(-1, -2) + (
                torch.sin(p1) * c
            ) @ torch.sin(p2).transpose(-1, -2)
            s = torch.sqrt(2 * math.pi**2 * self.group_variances[g])
            a, b = z1 * s, z2 * s
            sq = (
                a.pow(2).sum(-1, keepdim=True)
                + b.pow(2).sum(-1).unsqueeze(-2)
                - 2 * a @ b.transpose(-1, -2)
            )
            envelope = torch.exp(-sq.clamp_min(0))
            term = envelope * inner
            out = term if out is None else out + term
        return out
