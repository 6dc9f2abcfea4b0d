"""The GIL-free BLAS/LAPACK calls (distgp.kernels.lapack) and the held-out fits they let run
side by side (distgp.holdout.evaluate_many)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from threadpoolctl import threadpool_limits

from distgp.config import FitConfig
from distgp.holdout import evaluate_many, holdout_splits, in_input_order, parallel_fits
from distgp.kernels import lapack
from distgp.kernels.compute import NumpyOps


@pytest.fixture
def spd():
    rng = np.random.default_rng(5)
    n = 300
    B = rng.standard_normal((n, n))
    return np.asfortranarray(B @ B.T + n * np.eye(n)), rng


def test_each_routine_gives_scipys_result_to_the_last_bit(spd):
    """Same routines of the same library: every result equals scipy's wrapper bit for bit."""
    C, rng = spd
    n = len(C)
    with threadpool_limits(1):
        L, info = lapack.potrf_lower(C)
        L_ref, info_ref = scipy.linalg.lapack.dpotrf(C, lower=1)
        assert info == info_ref == 0 and np.array_equal(L, L_ref)
        assert not np.triu(L, 1).any()  # a clean factor: zero strict upper triangle
        inverse, _ = lapack.potri_lower(L)
        assert np.array_equal(inverse, scipy.linalg.lapack.dpotri(L_ref, lower=1)[0])
        for b in (rng.standard_normal(n), rng.standard_normal((n, 3))):
            x, info = lapack.potrs_lower(L, b)
            assert info == 0 and np.array_equal(x, scipy.linalg.lapack.dpotrs(L_ref, b, lower=1)[0])
        P = rng.standard_normal((n, 40))
        assert np.array_equal(
            lapack.symm_lower(inverse, P), scipy.linalg.blas.dsymm(1.0, inverse, P, lower=1)
        )
        for beta in (0.0, 1.0):
            c = np.asfortranarray(np.tril(C))
            expected = scipy.linalg.blas.dsyrk(1.0, P, beta=beta, c=c.copy(order="F"), lower=1)
            assert np.array_equal(lapack.syrk_lower(P, c, beta), expected)


def test_an_indefinite_matrix_reports_its_info_and_the_ops_say_none(spd):
    C, _ = spd
    bad = C.copy(order="F")
    bad[7, 7] = -1.0
    _, info = lapack.potrf_lower(bad)
    assert info == 8  # LAPACK's 1-based index of the failing pivot
    assert NumpyOps().cholesky(bad) is None
    with pytest.raises(ValueError, match="Fortran-ordered"):
        lapack.symm_lower(np.ascontiguousarray(C[:, :5].T @ C[:, :5]), C[:5])


def test_held_out_fits_side_by_side_score_as_one_after_another(monkeypatch):
    """Two fits at a time (threads) or one: the same scores to the last bit, and the seconds
    of the evaluations add up to the wall time of the whole batch."""
    import distgp.threads

    monkeypatch.setattr(distgp.threads, "available_cores", lambda: 4)  # as on a 4-core machine
    x = np.arange(300.0)[:, None]
    y = np.sin(2 * np.pi * x[:, 0] / 12) + 0.01 * x[:, 0]
    y = y + np.random.default_rng(1).normal(0, 0.1, 300)
    splits = in_input_order(holdout_splits(300, True, 20, 2), x)
    candidates = [
        ("local", {"kernel.trend": "local"}),
        ("quadratic", {"kernel.trend": "quadratic"}),
    ]
    runs = {}
    for threads in (1, 2):
        config = FitConfig()
        config.kernel.components = 60
        config.learn.threads = threads
        assert parallel_fits(config, 4, 280) == ((1, 1) if threads == 1 else (2, 1))
        runs[threads] = evaluate_many(x, y, config, candidates, splits, iterations=40)
    for one, two in zip(runs[1], runs[2], strict=True):
        assert one.name == two.name and one.folds == two.folds and one.z2 == two.z2
        assert one.seconds > 0 and two.seconds > 0
    shared = FitConfig()
    shared.learn.threads = 4
    assert parallel_fits(shared, 2, 300) == (2, 2)  # the budget split among the fits
    assert parallel_fits(shared, 8, 300, backend=object()) == (1, 4)  # a shared backend: in turn
    assert parallel_fits(shared, 8, 100) == (1, 4)  # small fits hold the GIL: in turn
