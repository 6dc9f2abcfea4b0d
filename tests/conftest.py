"""Shared test fixtures: thread limits, seeded data, one Ray instance per test session."""

from __future__ import annotations

import os

# Before numpy loads: one BLAS thread (oversubscribed OpenBLAS is ~100x slower on small calls).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("DISTGP_DATA", REPO.parent / "shared" / "data" / "slimkl"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The SLIM-KL datasets (skip the test where they are not available)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"SLIM-KL data folder {DATA_DIR} not found (set DISTGP_DATA)")
    return DATA_DIR


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance shared by every test that needs it (about 6 s to start)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            object_store_memory=256 * 2**20,
        )
    yield ray
    ray.shutdown()
