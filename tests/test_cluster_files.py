"""Offline checks of ``cluster/``: launcher YAMLs against Ray's schema, KubeRay manifests, the
runtime environment, the Dockerfile, and the security defaults (token auth on, dashboard on
127.0.0.1, no secret in the files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
LAUNCHER_YAMLS = ["local.yaml", "aws.yaml"]
KUBERAY_YAMLS = ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml"]
RAY_IMAGE = "rayproject/ray:2.60.0-py311-cpu"
LAUNCHER_KEYS = {
    "cluster_name",
    "max_workers",
    "upscaling_speed",
    "idle_timeout_minutes",
    "docker",
    "provider",
    "auth",
    "available_node_types",
    "head_node_type",
    "file_mounts",
    "cluster_synced_files",
    "file_mounts_sync_continuously",
    "rsync_exclude",
    "rsync_filter",
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
    "min_workers",
}


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _ray_start(commands: list[str]) -> str:
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 1, commands
    return starts[0]


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_yaml_passes_rays_schema(name):
    config = _load(name)
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError:  # private API moved: fall back to the documented top-level keys
        assert set(config) <= LAUNCHER_KEYS, set(config) - LAUNCHER_KEYS
        assert {"provider", "head_start_ray_commands", "worker_start_ray_commands"} <= set(config)
        return
    prepared = prepare_config(config)
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_local_yaml_is_on_prem_with_placeholders():
    provider = _load("local.yaml")["provider"]
    assert provider["type"] == "local"
    assert provider["head_ip"] == "HEAD_IP"
    assert provider["worker_ips"] and all(
        ip.startswith("WORKER_IP") for ip in provider["worker_ips"]
    )


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_keeps_token_auth_and_a_loopback_dashboard(name):
    config = _load(name)
    head = _ray_start(config["head_start_ray_commands"])
    worker = _ray_start(config["worker_start_ray_commands"])
    assert "--head" in head and "--address=$RAY_HEAD_IP:6379" in worker
    assert "--dashboard-host=127.0.0.1" in head
    for command in (head, worker):
        assert "RAY_AUTH_MODE=token" in command
    # The nodes read the token from a file copied from the user's machine, not from this repo.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("torch==2.13.0" in c and "whl/cpu" in c for c in config["setup_commands"])


@pytest.mark.parametrize("name", KUBERAY_YAMLS)
def test_kuberay_manifest_structure(name):
    doc = _load(name)
    assert doc["apiVersion"] == "ray.io/v1"
    if name.endswith("rayjob.yaml"):
        assert doc["kind"] == "RayJob"
        entrypoint = doc["spec"]["entrypoint"]
        assert "distgp fit" in entrypoint and "--address auto" in entrypoint
        assert doc["spec"]["shutdownAfterJobFinishes"] is True
        assert isinstance(yaml.safe_load(doc["spec"]["runtimeEnvYAML"]), dict)
        spec = doc["spec"]["rayClusterSpec"]
    else:
        assert doc["kind"] == "RayCluster"
        spec = doc["spec"]
    assert spec["rayVersion"] == "2.60.0"
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    groups = spec["workerGroupSpecs"]
    assert groups and all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in groups)
    pods = [head["template"]] + [g["template"] for g in groups]
    for pod in pods:
        for container in pod["spec"]["containers"]:
            image = container["image"]
            assert image == RAY_IMAGE or image.startswith("distgp:"), image
            names = {e["name"] for e in container.get("env", [])}
            assert not names & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}  # set by the operator


def test_kuberay_dashboard_is_loopback_except_where_the_operator_needs_it():
    cluster = _load("kuberay/raycluster.yaml")["spec"]["headGroupSpec"]["rayStartParams"]
    assert cluster["dashboard-host"] == "127.0.0.1"
    job = _load("kuberay/rayjob.yaml")["spec"]["rayClusterSpec"]
    # The operator submits and polls the job through the head Service: token auth guards it.
    assert job["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert job["authOptions"]["mode"] == "token"


def test_runtime_env_is_valid():
    runtime_env = pytest.importorskip("ray.runtime_env")
    config = _load("runtime_env.yaml")
    assert "working_dir" not in config  # given by `ray job submit --working-dir .`
    env = runtime_env.RuntimeEnv(working_dir=".", **config)
    assert env.env_vars()["OMP_NUM_THREADS"] == "1"
    submit = (CLUSTER / "runtime_env.yaml").read_text()
    assert "-- python -m distgp fit" in submit and "-- distgp fit" not in submit  # as README.md


def test_dockerfile_pins_the_ray_image_and_cpu_torch():
    text = (CLUSTER / "Dockerfile").read_text()
    assert re.search(rf"^FROM {re.escape(RAY_IMAGE)}$", text, re.M)
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    assert "-c constraints.txt" in text
    assert ".git" in (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    readme = (CLUSTER.parent / "README.md").read_text()  # the same CPU build outside CI
    assert (
        ".venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
        in readme
    )
    assert "CPU build of torch first" not in (CLUSTER.parent / "Makefile").read_text()


def _cluster_files() -> list[Path]:
    return sorted(p for p in CLUSTER.rglob("*") if p.is_file())


def test_no_file_disables_token_auth_or_holds_a_secret():
    files = _cluster_files()
    assert len(files) >= 9
    for path in files:
        text = path.read_text()
        assert not re.search(r"RAY_AUTH_MODE\W*disabled", text, re.I), path
        assert not re.search(r"mode:\s*disabled", text), path
        assert not re.search(r"RAY_AUTH_TOKEN\s*[=:]\s*\S", text), path  # a literal token
        assert not re.search(r"\b[0-9a-f]{64}\b", text), path  # a Ray-generated token
        assert "BEGIN" not in text or "PRIVATE KEY" not in text, path


def test_loopback_script_is_strict_and_cleans_up():
    text = (CLUSTER / "loopback.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text
    assert "trap cleanup EXIT" in text
    assert "RAY_AUTH_MODE=token" in text
    assert "--dashboard-host=127.0.0.1" in text
    assert "ray stop" not in text  # it would stop every Ray instance of this host


def test_launcher_has_a_gpu_worker_type_with_cuda_torch():
    types = _load("aws.yaml")["available_node_types"]
    gpu = [
        t for t in types.values() if t.get("docker", {}).get("worker_image", "").endswith("-gpu")
    ]
    assert len(gpu) == 1 and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1
    setup = gpu[0]["worker_setup_commands"]
    assert any("torch==2.13.0" in c and "whl/cpu" not in c for c in setup)
    assert any("chmod 600 ~/.ray/auth_token" in c for c in setup)


def test_kuberay_cluster_has_a_gpu_worker_group():
    groups = _load("kuberay/raycluster.yaml")["spec"]["workerGroupSpecs"]
    gpu = [g for g in groups if "num-gpus" in g["rayStartParams"]]
    assert len(gpu) == 1
    container = gpu[0]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("-gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    text = (CLUSTER / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM rayproject/ray:2\.60\.0-py311-gpu$", text, re.M)
    assert "whl/cpu" not in text and "-c constraints.txt" in text


def test_the_global_worker_cap_leaves_room_for_every_worker_type():
    """aws.yaml's global max_workers equalled the CPU type's: no GPU node could start beside
    a full CPU group."""
    config = _load("aws.yaml")
    types = config["available_node_types"]
    workers = sum(t["max_workers"] for k, t in types.items() if k != config["head_node_type"])
    assert config["max_workers"] >= workers


def test_the_aws_header_does_not_promise_gpu_autoscaling():
    """distgp refuses --gpus-per-agent while the cluster has no GPU: GPU nodes start by
    min_workers (cluster/README.md section 5), not when agents ask."""
    header = (CLUSTER / "aws.yaml").read_text().split("cluster_name:")[0]
    assert "when agents ask" not in header and "min_workers" in header


def test_loopback_takes_ray_from_the_checkouts_venv(tmp_path):
    """Run verbatim from a checkout whose .venv is not on PATH (cluster/README.md section 1),
    loopback.sh failed with 'setsid: failed to execute ray'; it puts .venv/bin first (here
    LOOPBACK_VENV names a stand-in whose ray only says where it is from)."""
    import os
    import subprocess
    import sys

    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "ray").write_text("#!/bin/sh\necho 'ray of the venv'\nexit 1\n")
    (bin_dir / "ray").chmod(0o755)
    env = {**os.environ, "PATH": "/usr/bin:/bin", "LOOPBACK_VENV": str(tmp_path / "venv")}
    env.pop("PYTHON", None)
    run = subprocess.run(
        ["bash", str(CLUSTER / "loopback.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "ray of the venv" in run.stderr, run.stderr
