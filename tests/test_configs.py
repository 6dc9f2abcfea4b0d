"""Every ready config in configs/ runs (a smoke test with few iterations and rounds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distgp.cli import main
from distgp.config import read_yaml

REPO = Path(__file__).resolve().parents[1]
FIT_CONFIGS = [
    pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if "9500" in p.stem else [])
    for p in sorted((REPO / "configs").glob("*.yaml"))
    if {"data", "consensus"} & set(read_yaml(p))
]


@pytest.mark.parametrize("config", FIT_CONFIGS)
def test_fit_config_runs(config, tmp_path, monkeypatch, data_dir, ray_local):
    monkeypatch.chdir(REPO)  # configs name the shared data relative to the repository
    out = tmp_path / "run"
    argv = [
        "fit",
        "--config",
        str(config),
        "--out",
        str(out),
        "--quiet",
        "--no-plots",
        "--max-iterations",
        "3",
        "--rounds",
        "2",
        "--local-iterations",
        "1",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] > 0 and metrics["components"] > 0
