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


def test_yaml_numbers_in_exponent_form_are_numbers(tmp_path):
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; the config reader takes it as YAML 1.2
    does, a float, in every section."""
    from distgp.bandit.config import load_optimize_config
    from distgp.config import load_fit_config

    path = tmp_path / "c.yaml"
    path.write_text("learn:\n  tol: 1e-5\n  prune_tol: 2E-4\nconsensus:\n  abs_tol: +3e-6\n")
    config = load_fit_config(path)
    assert (config.learn.tol, config.learn.prune_tol, config.consensus.abs_tol) == (
        1e-5,
        2e-4,
        3e-6,
    )
    path.write_text("budget: 5\nbandit:\n  noise_variance: 1e-3\n")
    assert load_optimize_config(path).bandit.noise_variance == 1e-3


def test_tunables_may_be_a_yaml_list_of_names(tmp_path):
    """``tunables: [trend, levels]`` was refused (``must be a string``) although other settings
    of names (``data.shards``) take a list: the names are joined as the flag would give them."""
    from distgp.config import load_fit_config

    path = tmp_path / "c.yaml"
    path.write_text("tune:\n  budget: 5\n  tunables: [trend, levels]\n")
    assert load_fit_config(path).validate().tune.tunables == "trend,levels"
