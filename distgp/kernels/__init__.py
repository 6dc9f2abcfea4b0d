"""GSMP kernel: spectral grids, sub-kernel evaluation and the gpytorch kernel.

``GSMPKernel`` is imported lazily so that agents, which never need torch, start fast.
"""

from distgp.kernels.bank import SubKernelBank
from distgp.kernels.grid import SpectralGrid, data_grid, default_components, reference_grid

__all__ = [
    "GSMPKernel",
    "SpectralGrid",
    "SubKernelBank",
    "data_grid",
    "default_components",
    "reference_grid",
]


def __getattr__(name: str):
    if name == "GSMPKernel":
        from distgp.kernels.gsmp import GSMPKernel

        return GSMPKernel
    raise AttributeError(f"module 'distgp.kernels' has no attribute {name!r}")
