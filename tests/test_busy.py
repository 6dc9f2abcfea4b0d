"""Busy background processes of ``distgp bench threads --load K``: started, stopped, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from distgp.bench.busy import busy_processes


def _proc(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name (state first)."""
    return _proc(pid, "stat").decode().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gone(pid: int, within: float = 20.0) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            state = _stat(pid)[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_busy_processes_work_while_the_block_runs_and_stop_after_it():
    with busy_processes(2) as started:
        assert len(started) == 2 and all(p.poll() is None for p in started)
        deadline = time.monotonic() + 20
        while min(_cpu_seconds(p.pid) for p in started) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(_cpu_seconds(p.pid) for p in started) >= 0.05  # they compute
    assert all(p.poll() is not None for p in started)
    with busy_processes(0) as none:
        assert none == []


def test_busy_processes_stop_when_the_block_fails():
    with pytest.raises(KeyboardInterrupt), busy_processes(1) as started:
        raise KeyboardInterrupt
    assert started[0].poll() is not None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_busy_processes_end_by_themselves_when_their_parent_is_killed():
    code = (
        "import time; from distgp.bench.busy import busy_processes\n"
        "with busy_processes(1) as p:\n"
        "    print(p[0].pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)  # no finally runs in the parent
        parent.wait()
        assert _gone(child)
    finally:
        parent.kill()
        parent.stdout.close()


@pytest.mark.slow
def test_bench_threads_under_load_on_a_tiny_dataset(tmp_path):
    """``distgp bench threads --load 1``: the section is threads-load, it records K, and no
    busy process outlives the run."""
    import scipy.io

    x = np.linspace(0, 6, 40)[:, None]
    y = np.sin(x[:, 0]) + 0.05 * np.cos(7 * x[:, 0])
    split = {"xtrain": x[:30], "ytrain": y[:30], "xtest": x[30:], "ytest": y[30:]}
    scipy.io.savemat(tmp_path / "tiny.mat", split)
    results, report = tmp_path / "RESULTS.md", tmp_path / "threads.json"
    bench = subprocess.Popen(
        [
            *(sys.executable, "-m", "distgp", "bench", "threads", "--data-dir", str(tmp_path)),
            *("--datasets", "tiny", "--repeats", "1", "--load", "1"),
            *("--results", str(results), "--json", str(report)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = bench.communicate()
    assert bench.returncode == 0, err
    assert _busy_of(bench.pid) == []  # stopped before the bench ended, not left to end alone
    payload = json.loads(report.read_text())
    assert payload["suite"] == "threads-load" and payload["busy_processes"] == 1
    row = payload["datasets"][0]
    assert row["n"] == 30 and all(not s["errors"] for s in row["settings"].values())
    text = results.read_text()
    assert "## threads-load" in text and "--load 1" in text and "1 busy process" in text


def _busy_of(parent: int) -> list[int]:
    """Live busy processes started by process ``parent`` (their last argument is its id)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = _proc(int(entry), "cmdline").split(b"\0")
            except OSError:
                continue
            if (
                b"getppid" in b" ".join(argv)
                and str(parent).encode() in argv
                and not _gone(int(entry), within=0.0)
            ):
                out.append(int(entry))
    return out
