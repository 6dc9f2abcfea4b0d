"""The GSMP kernel as a :class:`gpytorch.kernels.Kernel`."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from gpytorch.constraints import Positive
from gpytorch.kernels import Kernel

from distgp.kernels.bank import envelope, features
from distgp.kernels.grid import SpectralGrid, expand

WEIGHT_FLOOR = 1e-30  # Positive() is a softplus: an exact zero weight is stored as this


class GridBuffers(torch.nn.Module):
    """The fixed part of a GSMP kernel: buffers that follow ``.to()`` and are saved, never
    learned, and (unlike the kernel's own buffers) never sliced by a batch index.

    Attributes:
        means: ``M x P`` frequencies (cycles per transformed input unit).
        variances: ``M x P`` spectral variances.
        input_shift, input_scale: ``P`` affine input transform, ``z = (x - shift) / scale``.
    """

    def __init__(
        self, grid: SpectralGrid, shift: np.ndarray, scale: np.ndarray, dtype: torch.dtype
    ) -> None:
        super().__init__()
        for name, value in (
            ("means", grid.means),
            ("variances", grid.variances),
            ("input_shift", shift),
            ("input_scale", scale),
        ):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, float), dtype=dtype))


class GSMPKernel(Kernel):
    r"""Grid spectral mixture product kernel.

    .. math::
        k(x, x') = \sum_{m=1}^M w_m \prod_{p=1}^P \cos(2\pi \mu_{mp} \tau_p)
        \exp(-2\pi^2 v_{mp} \tau_p^2), \quad \tau = (x - x') / s,

    with a fixed grid (``mu``, ``v``: buffers) and learnable non-negative weights ``w``
    (``raw_weights`` under a ``Positive`` constraint). Inputs are shifted and scaled first
    (zeros and ones unless the kernel comes from a fitted :class:`~distgp.GSMPRegressor`).
    Theory and defaults: ``docs/gsmp.md``.

    A grid with one column (``P = 1``) is shared by every input dimension (isotropic, like the
    SLIM-KL reference grid, whose columns are all equal), so the kernel takes inputs of any
    width ``d``; the product of ``d`` cosines is expanded into ``2^(d-1)`` cosine directions per
    component, which suits a few dimensions. A grid with ``P > 1`` columns needs ``d = P``.

    ``batch_shape`` gives a batch of weight vectors (``batch_shape x M``) over the one grid:
    ``kernel[i]`` selects weight vectors, never grid rows.

    Args:
        grid: the spectral grid (``M`` components over ``P`` dimensions).
        weights: initial weights (``M`` or ``batch_shape x M``), default ``1 / M`` each.
        input_shift, input_scale: ``P`` affine input transform.
        dtype: of the weights and buffers (default: ``torch.get_default_dtype()``).
        **kwargs: :class:`gpytorch.kernels.Kernel` options (``batch_shape``, ``active_dims``).

    Example:
        >>> from distgp.kernels import GSMPKernel, reference_grid
        >>> kernel = GSMPKernel(reference_grid(dims=1, components=50))
        >>> kernel(torch.randn(5, 3)).to_dense().shape
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
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        M, P = grid.means.shape
        dtype = torch.get_default_dtype() if dtype is None else dtype
        shift = np.zeros(P) if input_shift is None else np.asarray(input_shift, float)
        scale = np.ones(P) if input_scale is None else np.asarray(input_scale, float)
        if shift.shape != (P,) or scale.shape != (P,):
            raise ValueError(
                f"input_shift and input_scale must have P={P} entries, "
                f"got {shift.shape} and {scale.shape}"
            )
        self.grid = GridBuffers(grid, shift, scale, dtype)
        self._expansions: dict[tuple, list[tuple[torch.Tensor, ...]]] = {}
        self._grid_stamp: tuple = ()
        self.register_parameter(
            "raw_weights", torch.nn.Parameter(torch.zeros(*self.batch_shape, M, dtype=dtype))
        )
        self.register_constraint("raw_weights", Positive())
        self.weights = torch.full((M,), 1.0 / M, dtype=dtype) if weights is None else weights

    @property
    def weights(self) -> torch.Tensor:
        """Non-negative component weights (``batch_shape x M``)."""
        return self.raw_weights_constraint.transform(self.raw_weights)

    @weights.setter
    def weights(self, value) -> None:
        """Set the weights: ``M`` non-negative finite numbers (shared by the batch) or
        ``batch_shape x M``; an exact zero is stored as ``WEIGHT_FLOOR`` (the ``Positive``
        constraint's softplus cannot reach zero).

        Raises:
            ValueError: a shape that is neither, or a negative, NaN or infinite weight.
        """
        raw = self.raw_weights
        given = torch.as_tensor(value, dtype=raw.dtype, device=raw.device)
        M, batch = raw.shape[-1], tuple(self.batch_shape)
        expected = f"({M},) (M={M})"
        if batch:
            expected += f" or batch_shape x M = {(*batch, M)}"
        value = None
        if given.dim() > 0 and given.shape[-1] == M:
            with contextlib.suppress(RuntimeError):  # not broadcastable to the batch
                value = given.expand(raw.shape)
        if value is None:
            raise ValueError(
                f"GSMPKernel weights must have shape {expected}, got {tuple(given.shape)}"
            )
        bad = ~torch.isfinite(given) | (given < 0)
        if bool(bad.any()):
            raise ValueError(
                "GSMPKernel weights must be non-negative finite numbers (zero is allowed), got "
                f"{given[bad].reshape(-1)[0].item()} ({int(bad.sum())} of {given.numel()} entries)"
            )
        value = value.clamp_min(WEIGHT_FLOOR)
        self.initialize(raw_weights=self.raw_weights_constraint.inverse_transform(value))

    def __call__(self, x1, x2=None, diag: bool = False, last_dim_is_batch: bool = False, **params):
        if last_dim_is_batch:
            _refuse_last_dim_is_batch()
        return super().__call__(x1, x2, diag=diag, **params)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params,
    ) -> torch.Tensor:
        """Covariance between ``... x n x d`` and ``... x m x d`` inputs.

        Returns:
            ``... x n x m`` matrix, or the ``... x n`` diagonal when ``diag=True`` (``...`` is
            the input batch broadcast with ``batch_shape``).

        Raises:
            ValueError: ``last_dim_is_batch=True`` (deprecated by GPyTorch, not supported).
        """
        if last_dim_is_batch:  # e.g. from a wrapping ScaleKernel's forward
            _refuse_last_dim_is_batch()
        d = self._check_width(x1, x2)
        weights = self.weights
        batch = torch.broadcast_shapes(weights.shape[:-1], x1.shape[:-2], x2.shape[:-2])
        if diag and x1.shape == x2.shape and torch.equal(x1, x2):  # every k_m(0) = 1
            total = weights.sum(-1).to(torch.promote_types(weights.dtype, x1.dtype))
            return total[..., None].expand(*batch, x1.shape[-2])
        if diag:  # k(x1_i, x2_i) at distinct pairs (rare): the full matrix's diagonal
            return self.forward(x1, x2, **params).diagonal(dim1=-2, dim2=-1)
        g = self.grid
        shift, scale = g.input_shift, g.input_scale
        z1, z2 = (x1 - shift) / scale, (x2 - shift) / scale
        out = None
        for variance, directions, owner, coef in self._expansion(d, z1.dtype, z1.device):
            w = weights[..., owner]  # batch x J: each direction's component weight
            w = torch.cat((w, w), -1).unsqueeze(-2)  # batch x 1 x 2J (cosine, sine columns)
            inner = (features(z1, directions, coef) * w) @ features(z2, directions, coef).mT
            term = envelope(z1, z2, variance) * inner
            out = term if out is None else out + term
        return out.expand(*batch, *out.shape[-2:])

    def _check_width(self, x1: torch.Tensor, x2: torch.Tensor) -> int:
        P = self.grid.means.shape[1]
        d = x1.shape[-1]
        if x2.shape[-1] != d or (P > 1 and d != P):
            raise ValueError(
                f"GSMPKernel expected inputs with d={P}, got {x1.shape[-1]} and {x2.shape[-1]}"
            )
        return d

    def _expansion(self, d: int, dtype: torch.dtype, device: torch.device) -> list:
        """Envelope groups for inputs of width ``d`` as tensors: ``(variance (d), directions
        (J x d), owner (J, component index), coef (J))``; cached per ``d``, dtype and device
        until the grid buffers move (``.to()``) or change (``load_state_dict``)."""
        g = self.grid
        stamp = tuple((t.data_ptr(), t._version) for t in (g.means, g.variances))
        if stamp != self._grid_stamp:
            self._expansions, self._grid_stamp = {}, stamp
        key = (d, dtype, device)
        if key not in self._expansions:
            means = g.means.detach().cpu().double().numpy()
            variances = g.variances.detach().cpu().double().numpy()
            if means.shape[1] != d:  # a one-column grid shared by every dimension
                means, variances = np.repeat(means, d, 1), np.repeat(variances, d, 1)
            groups = expand(SpectralGrid(means, variances, kind="isotropic"))

            def tensor(a, kind=dtype):
                return torch.as_tensor(np.asarray(a), dtype=kind, device=device)

            self._expansions[key] = [
                (
                    tensor(grp.variance),
                    tensor(grp.directions),
                    tensor(grp.components[grp.owner], torch.long),
                    tensor(grp.coef),
                )
                for grp in groups
            ]
        return self._expansions[key]


def _refuse_last_dim_is_batch() -> None:
    raise ValueError(
        "GSMPKernel does not support last_dim_is_batch=True (deprecated by GPyTorch): put the "
        "batch in the leading dimensions instead, e.g. with a one-column grid "
        "x.mT.unsqueeze(-1) (... x d x n x 1) for one covariance per input column"
    )
