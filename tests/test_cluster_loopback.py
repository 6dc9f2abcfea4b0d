"""A real two-node Ray cluster on loopback (``cluster/loopback.sh``): the agents of one
``distgp fit`` run on both nodes, and the script leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "cluster" / "loopback.sh"
LIMIT = 150  # the script's own time limit (its trap then stops the nodes)
GRACE = 90  # time the script gets to stop the nodes after SIGTERM (it needs at most ~40 s)


def run_loopback(out: Path, **settings: str) -> str:
    """Run the loopback script (bounded, always stopped); return its output."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHON": sys.executable,
        "LOOPBACK_LIMIT": str(LIMIT),
        **settings,
    }
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "builtin:co2", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=LIMIT + GRACE)
    finally:
        if proc.poll() is None:  # past its own limit: let its trap stop the nodes, then kill
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    assert proc.returncode == 0, output[-4000:]
    return output


@pytest.mark.cluster
def test_loopback_cluster_runs_agents_on_two_nodes(tmp_path):
    out = tmp_path / "fit"
    output = run_loopback(out)
    assert "OK: agents ran on 2 nodes" in output
    assert "processes left behind" not in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(set(metrics["nodes"])) == 2, metrics["nodes"]
    assert metrics["agents"] == 4
    assert metrics["mse"] > 0


@pytest.mark.cluster
def test_shard_files_stay_on_their_nodes_and_a_lost_node_leaves_the_run(tmp_path):
    """Each agent reads its file from its own node's folder; when the second node dies mid-fit
    its agents cannot be rebuilt elsewhere, and the run ends with the head node's agents."""
    out = tmp_path / "fit"
    output = run_loopback(out, LOOPBACK_SHARDS="1", LOOPBACK_KILL_ROUND="2", LOOPBACK_ROUNDS="60")
    assert "OK: agents ran on 2 nodes" in output
    assert "processes left behind" not in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["agents"] == 4 and metrics["n_train"] == 120  # the head node's two sites
    missing = " ".join(metrics["missing_agents"])
    assert "agent 2" in missing and "agent 3" in missing, metrics["missing_agents"]
    assert metrics["mse"] > 0 and metrics["prediction"] == "private"
