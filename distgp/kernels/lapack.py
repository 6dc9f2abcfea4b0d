"""The few BLAS/LAPACK routines of the CPU hot path, called without holding the GIL.

scipy's wrappers (``scipy.linalg.lapack.dpotrf``, ``scipy.linalg.blas.dsyrk``, ...) keep the
GIL for the whole call, so two threads factorising or forming matrices run one after another:
the envelope-group workers of a fit and held-out fits side by side gained 0-10% on two cores.
These call the same routines of the same library (scipy's Cython exports of its BLAS and
LAPACK) through ctypes, which releases the GIL around a foreign call. Results are those of
scipy's wrappers to the last bit.

Every matrix argument is a float64 Fortran-ordered (column-major) array; results are written
in place where the routine does.
"""

from __future__ import annotations

import ctypes

import numpy as np
import scipy.linalg.cython_blas
import scipy.linalg.cython_lapack

_ptr = ctypes.c_void_p  # every argument is a pointer (Fortran calling convention)


def _routine(module, name: str, arguments: int):
    """The C function ``name`` that ``module`` (scipy's Cython BLAS or LAPACK) exports, as a
    ctypes function of ``arguments`` pointers (ctypes releases the GIL while it runs)."""
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    return ctypes.CFUNCTYPE(None, *[_ptr] * arguments)(address)


_dpotrf = _routine(scipy.linalg.cython_lapack, "dpotrf", 5)
_dpotri = _routine(scipy.linalg.cython_lapack, "dpotri", 5)
_dpotrs = _routine(scipy.linalg.cython_lapack, "dpotrs", 8)
_dsyrk = _routine(scipy.linalg.cython_blas, "dsyrk", 10)
_dsymm = _routine(scipy.linalg.cython_blas, "dsymm", 12)

_LOWER, _LEFT, _NO_TRANSPOSE = b"L", b"L", b"N"
GIL_FREE_MIN_N = 256
"""Matrices with at least this many rows take these routines (:class:`~distgp.kernels.compute.
NumpyOps`); below, where a call lasts tens of microseconds, the ctypes argument handling is a
visible part of it, scipy's wrappers are cheaper, and two threads have little to share."""


class _Scalars:
    """The integer and float arguments of one call, in two small arrays whose element
    addresses are passed (LAPACK takes every argument by reference)."""

    def __init__(self, ints: tuple[int, ...], floats: tuple[float, ...] = ()) -> None:
        self._ints = np.array((*ints, 0), dtype=np.intc)  # the last one: LAPACK's info
        self._floats = np.array(floats or (0.0,), dtype=np.float64)
        self._i, self._f = self._ints.ctypes.data, self._floats.ctypes.data

    def int(self, k: int) -> int:
        return self._i + k * self._ints.itemsize

    def float(self, k: int) -> int:
        return self._f + 8 * k

    @property
    def info_address(self) -> int:
        return self.int(len(self._ints) - 1)

    @property
    def info(self) -> int:
        return int(self._ints[-1])


def _fortran(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.float64 or not a.flags.f_contiguous:
        raise ValueError("expected a float64 Fortran-ordered array")
    return a


def _clear_upper(L: np.ndarray) -> None:
    """Zero the strict upper triangle of Fortran-ordered square ``L`` (column by column: each
    column's head is contiguous)."""
    for j in range(1, L.shape[0]):
        L[:j, j] = 0.0


def potrf_lower(C: np.ndarray) -> tuple[np.ndarray, int]:
    """Lower Cholesky factor of symmetric ``n x n`` ``C`` (its lower triangle read) in a new
    array with a zero strict upper triangle, and LAPACK's ``info`` (0: positive definite)."""
    L = np.array(C, dtype=np.float64, order="F")
    n = L.shape[0]
    args = _Scalars((n, max(1, n)))
    _dpotrf(_LOWER, args.int(0), L.ctypes.data, args.int(1), args.info_address)
    _clear_upper(L)
    return L, args.info


def potri_lower(L: np.ndarray) -> tuple[np.ndarray, int]:
    """``C^-1`` from the lower factor ``L`` of ``C`` in a new array (its lower triangle valid;
    the strict upper one is ``L``'s), and LAPACK's ``info``."""
    inverse = np.array(L, dtype=np.float64, order="F")
    n = inverse.shape[0]
    args = _Scalars((n, max(1, n)))
    _dpotri(_LOWER, args.int(0), inverse.ctypes.data, args.int(1), args.info_address)
    return inverse, args.info


def potrs_lower(L: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """``C^-1 b`` from the lower factor ``L`` of ``C`` (Fortran-ordered) for ``n`` or ``n x k``
    ``b``, in a new array of ``b``'s shape, and LAPACK's ``info``."""
    _fortran(L)
    x = np.array(b, dtype=np.float64, order="F")
    n = L.shape[0]
    args = _Scalars((n, 1 if x.ndim == 1 else x.shape[1], max(1, n)))
    _dpotrs(
        *(_LOWER, args.int(0), args.int(1), L.ctypes.data, args.int(2)),
        *(x.ctypes.data, args.int(2), args.info_address),
    )
    return x, args.info


def syrk_lower(B: np.ndarray, C: np.ndarray, beta: float) -> np.ndarray:
    """``C := B B^T + beta C`` on the lower triangle of Fortran-ordered ``n x n`` ``C`` (its
    strict upper triangle untouched), for ``n x k`` ``B``; returns ``C``."""
    B = np.asfortranarray(B, dtype=np.float64)
    _fortran(C)
    n, k = B.shape
    args = _Scalars((n, k, max(1, n)), (1.0, beta))
    _dsyrk(
        *(_LOWER, _NO_TRANSPOSE, args.int(0), args.int(1), args.float(0)),
        *(B.ctypes.data, args.int(2), args.float(1), C.ctypes.data, args.int(2)),
    )
    return C


def symm_lower(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A B`` in a new Fortran-ordered ``n x k`` array, for symmetric ``n x n`` ``A`` of which
    only the lower triangle is read (``A`` Fortran-ordered; ``B`` ``n x k``)."""
    _fortran(A)
    B = np.asfortranarray(B, dtype=np.float64)
    n, k = B.shape
    out = np.empty((n, k), order="F")
    args = _Scalars((n, k, max(1, n)), (1.0, 0.0))
    _dsymm(
        *(_LEFT, _LOWER, args.int(0), args.int(1), args.float(0), A.ctypes.data, args.int(2)),
        *(B.ctypes.data, args.int(2), args.float(1), out.ctypes.data, args.int(2)),
    )
    return out
