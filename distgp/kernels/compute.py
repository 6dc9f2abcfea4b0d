"""Where the dense work runs: numpy/LAPACK on the CPU, or torch (float64) on a CUDA device.

The sub-kernel bank, the objective and prediction call the few dense operations below through
one of two interchangeable classes, so every formula is written once:

* :class:`NumpyOps` (``device="cpu"``, the default): numpy with direct BLAS/LAPACK calls
  (symmetric rank-k updates, ``dsymm`` on lower triangles, ``dpotri``), the fastest CPU path;
* :class:`TorchOps` (``device="cuda"``, ``"cuda:N"``, or ``"torch:cpu"`` to run the same torch
  code on the CPU, for tests and for checking the GPU path on a machine without one).

Arrays of size ``n x n`` stay on the device; results of length ``M`` come back as numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from distgp import flops
from distgp.exceptions import ConfigError
from distgp.kernels import lapack


def check_device(device: str) -> str:
    """Validate a device name; ``cuda`` without a visible GPU is a :class:`ConfigError`.

    A torch device imports torch here, on the validating (main) thread: imported first by the
    held-out fits' thread pool, another thread could see the half-imported module."""
    name = str(device)
    if name == "cpu":
        return name
    if name == "torch:cpu":
        import torch

        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name} needs a CUDA GPU, but torch sees none "
                "(torch.cuda.is_available() is False); use device cpu"
            )
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name} does not exist: torch sees {torch.cuda.device_count()} GPU(s)"
            )
        return name
    raise ConfigError(f"unknown device {name!r}; choose cpu or cuda (or cuda:N, torch:cpu)")


def ops_for(device: str) -> NumpyOps | TorchOps:
    """The operations for a checked device name."""
    name = check_device(device)
    return NumpyOps() if name == "cpu" else TorchOps(name.removeprefix("torch:"))


class NumpyOps:
    """Dense operations on numpy arrays with BLAS/LAPACK (CPU)."""

    device = "cpu"
    is_torch = False

    # --- conversion ----------------------------------------------------------------------------
    def asarray(self, a: Any) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float64)

    def numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def zeros(self, rows: int, cols: int) -> np.ndarray:
        return np.zeros((rows, cols))

    def index(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(idx, dtype=np.intp)

    def take_columns(self, A: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Columns ``idx`` of a column-major ``A``, column-major: rows of its C-ordered
        transpose (a faster gather than ``A[:, idx]``)."""
        return A.T[idx].T

    # --- dense algebra (the kernel's own maths: distgp.kernels.bank.envelope, features) ------
    def syrk_lower(
        self, inner: np.ndarray | None, B: np.ndarray, n: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        """``inner + B B^T``, lower triangle only (``inner`` Fortran-ordered or ``None``).

        With ``inner=None`` the product goes into ``out`` (Fortran-ordered ``n x n``, its upper
        triangle left as it is) or a new zero matrix."""
        flops.add("gemm", n * n * B.shape[1])
        B = np.asfortranarray(B)
        if inner is None and out is not None:
            if n >= lapack.GIL_FREE_MIN_N:
                return lapack.syrk_lower(B, out, 0.0)
            return scipy.linalg.blas.dsyrk(1.0, B, beta=0.0, c=out, lower=1, overwrite_c=1)
        c = np.zeros((n, n), order="F") if inner is None else inner
        if n >= lapack.GIL_FREE_MIN_N:
            return lapack.syrk_lower(B, c, 1.0)
        return scipy.linalg.blas.dsyrk(1.0, B, beta=1.0, c=c, lower=1, overwrite_c=1)

    def scratch(self, n: int) -> np.ndarray:
        """A reusable ``n x n`` work matrix (zero, Fortran-ordered)."""
        return np.zeros((n, n), order="F")

    def symmetrize_lower(self, K: np.ndarray) -> np.ndarray:
        """Fill the upper triangle of ``K`` (whose lower triangle holds the values), in place."""
        K += K.T  # numpy buffers the overlapping transpose
        K[np.diag_indices_from(K)] *= 0.5
        return K

    def symm_lower(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``A B`` for symmetric ``A`` of which only the lower triangle is read."""
        flops.add("gemm", 2.0 * A.shape[0] * A.shape[1] * B.shape[1])
        if A.shape[0] >= lapack.GIL_FREE_MIN_N and A.flags.f_contiguous:
            return lapack.symm_lower(A, B)
        return scipy.linalg.blas.dsymm(1.0, A, B, side=0, lower=1)

    def gemm(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        flops.add("gemm", 2.0 * A.shape[0] * A.shape[1] * B.shape[1])
        return A @ B

    def bincount(self, owner: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(owner, values, minlength=size)

    def add_columns(self, acc: np.ndarray, columns: np.ndarray, owner: np.ndarray) -> None:
        """``acc[:, k] += sum of columns[:, j] with owner[j] == k``, in place (a product with
        the one-hot matrix: one BLAS call)."""
        acc += columns @ np.eye(acc.shape[1])[owner]

    def column_dots(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``sum_i A_ij B_ij`` per column ``j`` (no ``A o B`` temporary: half the time)."""
        return np.einsum("ij,ij->j", A, B)

    # --- whole n x n matrices of zero-frequency groups (one pass over memory each) ----------
    def lower_part(self, E: np.ndarray) -> np.ndarray:
        """How a symmetric ``E`` is kept for the calls below: its lower triangle (zero strict
        upper triangle, column-major), so that each reads only lower triangles."""
        return np.asfortranarray(np.tril(E))

    def add_scaled(self, K: np.ndarray, P: np.ndarray, scale: float) -> None:
        """``K += scale P`` in place (``P`` as :meth:`lower_part` keeps it: the lower triangle)."""
        flops.add("gemm", 2.0 * P.size)
        if K.flags.f_contiguous and P.flags.f_contiguous:
            scipy.linalg.blas.daxpy(P.ravel(order="F"), K.ravel(order="F"), a=scale)
        else:
            K += scale * P

    def frobenius(self, A: np.ndarray, P: np.ndarray) -> float:
        """``<A, E>`` for symmetric ``A`` (only its lower triangle read) and ``E`` kept as
        ``P = tril(E)``: ``2 <A, P> - sum_i A_ii E_ii``."""
        flops.add("gemm", 2.0 * P.size)
        order = "F" if P.flags.f_contiguous else "C"
        a = np.asarray(A, order=order).ravel(order=order)
        inner = float(scipy.linalg.blas.ddot(a, P.ravel(order=order)))
        return 2.0 * inner - float(np.diag(A) @ np.diag(P))

    def quadratic(self, P: np.ndarray, v: np.ndarray) -> float:
        """``v^T E v`` for ``E`` kept as ``P = tril(E)``."""
        flops.add("gemm", 2.0 * P.size)
        return float(v @ scipy.linalg.blas.dsymv(1.0, P, v, lower=1))

    # --- factorisations ------------------------------------------------------------------------
    def all_finite(self, C: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(C)))

    def cholesky(self, C: np.ndarray, jitter: float = 0.0) -> np.ndarray | None:
        """Lower Cholesky factor of ``C + jitter I``, or ``None`` when not positive definite."""
        flops.add("cholesky", len(C) ** 3 / 3.0)
        M = C if jitter == 0 else C + jitter * np.eye(len(C))
        if len(M) >= lapack.GIL_FREE_MIN_N:
            L, info = lapack.potrf_lower(M)
        else:
            L, info = scipy.linalg.lapack.dpotrf(M, lower=1)  # zero upper triangle (clean)
        return L if info == 0 else None

    def mean_diagonal(self, C: np.ndarray) -> float:
        return float(np.mean(np.diag(C)))

    def add_diagonal(self, C: np.ndarray, value: float) -> None:
        np.einsum("ii->i", C)[...] += value  # a writable view of the diagonal

    def cho_solve(self, L: np.ndarray, b: np.ndarray) -> np.ndarray:
        flops.add("solve", 2.0 * len(L) ** 2 * (1 if b.ndim == 1 else b.shape[1]))
        if len(L) >= lapack.GIL_FREE_MIN_N and L.flags.f_contiguous:
            x, info = lapack.potrs_lower(L, b)
        else:
            x, info = scipy.linalg.lapack.dpotrs(L, b, lower=1)
        if info != 0:
            raise ValueError(f"dpotrs: illegal argument {-info}")
        return x

    def solve_lower(self, L: np.ndarray, B: np.ndarray) -> np.ndarray:
        flops.add("solve", float(len(L)) ** 2 * (1 if B.ndim == 1 else B.shape[1]))
        return scipy.linalg.solve_triangular(L, B, lower=True, check_finite=False)

    def cholesky_inverse_lower(self, L: np.ndarray) -> np.ndarray | None:
        """``C^-1`` from its factor; only the lower triangle is valid (``None`` on failure)."""
        flops.add("inverse", 2.0 * len(L) ** 3 / 3.0)
        if len(L) >= lapack.GIL_FREE_MIN_N:
            inv, info = lapack.potri_lower(L)
        else:
            inv, info = scipy.linalg.lapack.dpotri(L, lower=1)
        return inv if info == 0 else None

    def logdet(self, L: np.ndarray) -> float:
        return 2.0 * float(np.log(np.diag(L)).sum())

    def trace(self, A: np.ndarray) -> float:
        return float(np.trace(A))

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b)


class TorchOps:
    """The same operations in torch float64 on a device (``cuda``, ``cuda:N`` or ``cpu``)."""

    is_torch = True

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)

    # --- conversion ----------------------------------------------------------------------------
    def asarray(self, a: Any):
        t = self.torch
        if isinstance(a, t.Tensor):
            return a.to(device=self.device, dtype=t.float64)
        return t.as_tensor(np.asarray(a, dtype=np.float64), device=self.device)

    def numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, self.torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a, dtype=np.float64)

    def zeros(self, rows: int, cols: int):
        return self.torch.zeros((rows, cols), dtype=self.torch.float64, device=self.device)

    def index(self, idx: np.ndarray):
        return self.torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def take_columns(self, A, idx: np.ndarray):
        return A[:, self.index(idx)]

    # --- dense algebra ---------------------------------------------------------------------------
    def syrk_lower(self, inner, B, n: int, out=None):
        """``inner + B B^T`` (the full matrix: on a GPU a full product is as fast)."""
        flops.add("gemm", 2.0 * n * n * B.shape[1])
        if inner is None:
            return B @ B.T
        return inner.addmm_(B, B.T)

    def scratch(self, n: int):
        return None  # the caching allocator reuses memory already

    def symmetrize_lower(self, K):
        return K  # already full

    def symm_lower(self, A, B):
        return self.gemm(A, B)  # A is full here

    def gemm(self, A, B):
        flops.add("gemm", 2.0 * A.shape[0] * A.shape[1] * B.shape[1])
        return A @ B

    def bincount(self, owner: np.ndarray, values, size: int) -> np.ndarray:
        out = self.torch.zeros(size, dtype=self.torch.float64, device=self.device)
        out.index_add_(0, self.index(owner), values)
        return out.cpu().numpy()

    def add_columns(self, acc, columns, owner: np.ndarray) -> None:
        """As :meth:`NumpyOps.add_columns`, summed on the device (no one-hot matrix)."""
        acc.index_add_(1, self.index(owner), columns)

    def column_dots(self, A, B):
        return (A * B).sum(0)

    def lower_part(self, E):
        return E  # full matrices here

    def add_scaled(self, K, P, scale: float) -> None:
        flops.add("gemm", 2.0 * P.numel())
        K.add_(P, alpha=scale)

    def frobenius(self, A, P) -> float:
        flops.add("gemm", 2.0 * P.numel())
        return float(self.torch.vdot(A.reshape(-1), P.reshape(-1)))

    def quadratic(self, P, v) -> float:
        flops.add("gemm", 2.0 * P.numel())
        return float(v @ (P @ v))

    # --- factorisations ------------------------------------------------------------------------
    def all_finite(self, C) -> bool:
        return bool(self.torch.isfinite(C).all())

    def cholesky(self, C, jitter: float = 0.0):
        t = self.torch
        flops.add("cholesky", C.shape[0] ** 3 / 3.0)
        M = C if jitter == 0 else C + jitter * t.eye(C.shape[0], dtype=C.dtype, device=C.device)
        L, info = t.linalg.cholesky_ex(M)
        return L if int(info) == 0 else None

    def mean_diagonal(self, C) -> float:
        return float(self.torch.diagonal(C).mean())

    def add_diagonal(self, C, value: float) -> None:
        self.torch.diagonal(C).add_(value)

    def cho_solve(self, L, b):
        vec = b.ndim == 1
        flops.add("solve", 2.0 * L.shape[0] ** 2 * (1 if vec else b.shape[1]))
        x = self.torch.cholesky_solve(b[:, None] if vec else b, L)
        return x[:, 0] if vec else x

    def solve_lower(self, L, B):
        vec = B.ndim == 1  # accepted as NumpyOps accepts it (torch wants a matrix)
        flops.add("solve", float(L.shape[0]) ** 2 * (1 if vec else B.shape[1]))
        x = self.torch.linalg.solve_triangular(L, B[:, None] if vec else B, upper=False)
        return x[:, 0] if vec else x

    def cholesky_inverse_lower(self, L):
        flops.add("inverse", 2.0 * L.shape[0] ** 3 / 3.0)
        inv = self.torch.cholesky_inverse(L)  # full and symmetric
        return inv if bool(self.torch.isfinite(inv).all()) else None

    def logdet(self, L) -> float:
        return 2.0 * float(self.torch.log(self.torch.diagonal(L)).sum())

    def trace(self, A) -> float:
        return float(self.torch.trace(A))

    def dot(self, a, b) -> float:
        return float(a @ b)
