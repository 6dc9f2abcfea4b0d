#!/usr/bin/env bash
# Start a real two-node Ray cluster on this host, run `distgp fit` with 4 agents on it, check that
# the agents ran on both nodes, and stop both nodes again (always: on success, failure or signal).
#
# Usage: cluster/loopback.sh [DATA] [OUT]
#   DATA  data source of `distgp fit` (default: builtin:co2)
#   OUT   output folder of the fit (default: inside the temporary directory, removed at exit)
# Environment:
#   LOOPBACK_LIMIT    seconds before the whole run is aborted (default 240)
#   LOOPBACK_AGENTS   agents of the fit (default 4)
#   LOOPBACK_ROUNDS   ADMM round cap of the fit (default 20)
#   LOOPBACK_SHARDS=1 fit from shard files instead of DATA: each node gets its own folder
#                     (DISTGP_NODE_DIR in its environment) holding only the shards of the agents
#                     pinned to it (custom resources site_head / site_worker); the driver reads
#                     only the test file. The agents' shard path is "$DISTGP_NODE_DIR/site-J.csv",
#                     expanded on the node where each agent runs.
#   LOOPBACK_KILL_ROUND=R  with LOOPBACK_SHARDS=1: kill the second node once the fit has
#                     checkpointed round R; the fit must finish with the head node's agents and
#                     report the worker's agents as missing
#   LOOPBACK_KEEP=1   keep the temporary directory (Ray logs, not the token) for debugging
#   PYTHON            interpreter with ray and distgp (default: python); `ray` and `distgp` are
#                     taken from PATH, with the checkout's .venv/bin (made by `make`) put first
#                     when it exists
#   LOOPBACK_VENV     virtual environment whose bin/ goes first on PATH (default: the checkout's
#                     .venv); empty: PATH as it is
#
# Token authentication stays on: a fresh token is written to a private file in the temporary
# directory (mode 600, never printed) and both nodes and the driver read it through
# RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH. Each node has its own ports and --temp-dir, so the
# run touches neither ~/.ray/auth_token nor /tmp/ray and does not collide with other Ray instances.
# Ray advertises the host's primary address even when given 127.0.0.1, but every connection stays
# on this host. Exit status 0 when the fit ran on two distinct nodes.
set -euo pipefail

VENV="${LOOPBACK_VENV-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}"
if [[ -n "$VENV" && -x "$VENV/bin/python" ]]; then
    export PATH="$VENV/bin:$PATH" # run verbatim from a checkout, .venv not activated
fi

DATA="${1:-builtin:co2}"
LIMIT="${LOOPBACK_LIMIT:-240}"
AGENTS="${LOOPBACK_AGENTS:-4}"
ROUNDS="${LOOPBACK_ROUNDS:-20}"
PYTHON="${PYTHON:-python}"
STOP_GRACE=30 # seconds the nodes get to drain and exit after SIGTERM

export RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

TMP="$(mktemp -d /tmp/dgplb.XXXXXX)" # short: Ray's unix socket paths must stay under 108 bytes
OUT="${2:-$TMP/out}"
MARK="DISTGP_LOOPBACK_ID=$TMP" # set on both nodes; all their processes inherit it
HEAD_PID=""
WORKER_PID=""
CHILD_PID="" # the client process being waited for (readiness check, fit)
WATCHDOG_PID=""

log() { printf '[loopback %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# A block of $1 consecutive free TCP ports, space-separated.
free_ports() {
    "$PYTHON" - "$1" <<'PY'
import random
import socket
import sys


def free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


need = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - need)
    if all(free(p) for p in range(base, base + need)):
        print(" ".join(str(p) for p in range(base, base + need)))
        break
else:
    sys.exit("no free block of ports found")
PY
}

# PIDs of the processes whose environment holds the assignment $1 (Ray's worker processes start
# in their own sessions, so process groups do not find them).
processes_with() {
    local env_file pid
    for env_file in /proc/[0-9]*/environ; do
        pid="${env_file#/proc/}"
        pid="${pid%/environ}"
        if { tr '\0' '\n' <"$env_file" | grep -qxF "$1"; } 2>/dev/null; then
            echo "$pid"
        fi
    done
}

stragglers() { processes_with "$MARK"; } # every process of the run, both nodes

# The processes of one node: its raylet, helpers and actors inherit DISTGP_NODE_DIR=$1.
node_processes() { processes_with "DISTGP_NODE_DIR=$1"; }

# Ask the nodes' `ray start --block` processes to drain and stop their node; wait until they
# have exited, then kill what is left of their process groups (started with setsid).
stop_nodes() {
    local pid waited=0
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((waited < STOP_GRACE)); do
            sleep 1
            waited=$((waited + 1))
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}

cleanup() {
    local status=$? left
    trap - EXIT
    trap '' INT TERM # finish stopping the nodes even when signalled again
    if [[ -n "$WATCHDOG_PID" ]]; then
        kill "$WATCHDOG_PID" 2>/dev/null || true
    fi
    if [[ -n "$CHILD_PID" ]] && kill -0 "$CHILD_PID" 2>/dev/null; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        sleep 2
        kill -KILL "$CHILD_PID" 2>/dev/null || true
    fi
    log "stopping the Ray nodes"
    # shellcheck disable=SC2086
    stop_nodes $WORKER_PID $HEAD_PID
    for _ in 1 2 3 4 5; do
        left="$(stragglers)"
        [[ -z "$left" ]] && break
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
        sleep 1
    done
    left="$(stragglers)"
    if [[ -n "$left" ]]; then
        log "processes left behind: $left"
        status=1
    fi
    if [[ "${LOOPBACK_KEEP:-0}" == 1 ]]; then
        rm -f "$TMP/auth_token"
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    log "done (exit $status)"
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The whole run is bounded: the watchdog signals this script, whose trap stops the nodes.
(
    trap - EXIT INT
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$LIMIT" &
    sleeper=$!
    wait "$sleeper"
    log "time limit of $LIMIT s reached"
    kill -TERM $$ 2>/dev/null
) &
WATCHDOG_PID=$!

# 9 named ports for the head, 7 for the second node, 32 worker ports for each node.
read -r -a PORTS <<<"$(free_ports $((16 + 2 * 32)))"
GCS_PORT=${PORTS[0]}

(
    umask 077
    "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' >"$TMP/auth_token"
)
unset RAY_AUTH_TOKEN RAY_ADDRESS # RAY_AUTH_TOKEN would take precedence over the file
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TMP/auth_token"

common=(--block --node-ip-address=127.0.0.1 --num-cpus=1 --object-store-memory=134217728
    --disable-usage-stats)
SHARDS="${LOOPBACK_SHARDS:-0}"
mkdir -p "$TMP/data/head" "$TMP/data/worker"
log "starting the head node on 127.0.0.1:$GCS_PORT"
env "$MARK" DISTGP_NODE_DIR="$TMP/data/head" setsid ray start --head "${common[@]}" \
    --port="$GCS_PORT" --temp-dir="$TMP/head" --resources='{"site_head": 4}' \
    --include-dashboard=false --dashboard-host=127.0.0.1 --dashboard-port="${PORTS[1]}" \
    --ray-client-server-port="${PORTS[2]}" --node-manager-port="${PORTS[3]}" \
    --object-manager-port="${PORTS[4]}" --dashboard-agent-listen-port="${PORTS[5]}" \
    --dashboard-agent-grpc-port="${PORTS[6]}" --metrics-export-port="${PORTS[7]}" \
    --runtime-env-agent-port="${PORTS[8]}" \
    --min-worker-port="${PORTS[16]}" --max-worker-port="${PORTS[47]}" \
    >"$TMP/head.log" 2>&1 </dev/null &
HEAD_PID=$!

for _ in $(seq 90); do
    grep -qs "Ray runtime started" "$TMP/head.log" && break
    kill -0 "$HEAD_PID" 2>/dev/null || break
    sleep 1
done
if ! grep -q "Ray runtime started" "$TMP/head.log"; then
    tail -20 "$TMP/head.log" >&2
    log "the head node did not start"
    exit 1
fi

log "starting the second node"
env "$MARK" DISTGP_NODE_DIR="$TMP/data/worker" setsid ray start \
    --address="127.0.0.1:$GCS_PORT" "${common[@]}" \
    --temp-dir="$TMP/worker" --resources='{"site_worker": 4}' \
    --node-manager-port="${PORTS[9]}" --object-manager-port="${PORTS[10]}" \
    --dashboard-agent-listen-port="${PORTS[11]}" --dashboard-agent-grpc-port="${PORTS[12]}" \
    --metrics-export-port="${PORTS[13]}" --runtime-env-agent-port="${PORTS[14]}" \
    --min-worker-port="${PORTS[48]}" --max-worker-port="${PORTS[79]}" \
    >"$TMP/worker.log" 2>&1 </dev/null &
WORKER_PID=$!

"$PYTHON" - "127.0.0.1:$GCS_PORT" <<'PY' &
import sys
import time

import ray

ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    if len(alive) >= 2:
        print(f"cluster up: {len(alive)} nodes, {ray.cluster_resources()['CPU']:.0f} CPUs")
        sys.exit(0)
    time.sleep(1)
sys.exit("the second node did not join within 90 s")
PY
CHILD_PID=$!
if ! wait "$CHILD_PID"; then
    tail -20 "$TMP/worker.log" >&2
    exit 1
fi

if [[ "$SHARDS" == 1 ]]; then
    # Four sites: agents 0 and 1 on the head node, 2 and 3 on the second node. Each shard file
    # exists only in the folder of the node its agent is pinned to.
    "$PYTHON" - "$TMP/data" <<'PY'
import sys

import numpy as np

folder = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.uniform(0, 10, size=(4 * 60 + 40, 2))
y = np.sin(x[:, 0]) + 0.3 * x[:, 1] + 0.1 * rng.standard_normal(len(x))
rows = lambda idx: "a,b,y\n" + "".join(f"{x[i, 0]},{x[i, 1]},{y[i]}\n" for i in idx)  # noqa: E731
for j in range(4):
    node = "head" if j < 2 else "worker"
    with open(f"{folder}/{node}/site-{j}.csv", "w") as f:
        f.write(rows(range(60 * j, 60 * (j + 1))))
with open(f"{folder}/test.csv", "w") as f:
    f.write(rows(range(240, 280)))
PY
    # shellcheck disable=SC2016
    SHARD_LIST='$DISTGP_NODE_DIR/site-0.csv@site_head,$DISTGP_NODE_DIR/site-1.csv@site_head,$DISTGP_NODE_DIR/site-2.csv@site_worker,$DISTGP_NODE_DIR/site-3.csv@site_worker'
    # with a node to kill, tolerances no run meets, so the fit outlives the kill
    if [[ -n "${LOOPBACK_KILL_ROUND:-}" ]]; then
        printf 'consensus:\n  abs_tol: 1.0e-12\n  rel_tol: 1.0e-12\n' >"$TMP/shards.yaml"
    else
        printf 'seed: 0\n' >"$TMP/shards.yaml"
    fi
    log "distgp fit --shards (4 site files, 2 per node) on the cluster"
    (cd "$TMP" && exec distgp fit --config "$TMP/shards.yaml" --shards "$SHARD_LIST" --target y \
        --test "$TMP/data/test.csv" \
        --rounds "$ROUNDS" --components 60 --backend ray --address "127.0.0.1:$GCS_PORT" \
        --round-timeout 20 --no-plots --quiet --out "$OUT") &
    CHILD_PID=$!
    if [[ -n "${LOOPBACK_KILL_ROUND:-}" ]]; then
        # one poller: returns once the fit has checkpointed the round (or has ended)
        "$PYTHON" - "$OUT/checkpoint.npz" "$LOOPBACK_KILL_ROUND" "$CHILD_PID" <<'PY' || true
import os
import sys
import time

import numpy as np

path, target, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while True:
    try:
        with np.load(path) as state:
            if int(state["admm_round"]) >= target:
                break
    except Exception:  # not written yet, or being replaced
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the fit ended before the round to kill the node at")
    time.sleep(0.05)
PY
        log "killing the second node (its agents' data goes with it)"
        # shellcheck disable=SC2046
        kill -KILL -- "-$WORKER_PID" $(node_processes "$TMP/data/worker") 2>/dev/null || true
        WORKER_PID=""
    fi
    wait "$CHILD_PID"
else
    log "distgp fit --data $DATA --agents $AGENTS on the cluster"
    distgp fit --data "$DATA" --agents "$AGENTS" --rounds "$ROUNDS" --backend ray \
        --address "127.0.0.1:$GCS_PORT" --round-timeout 60 --no-plots --quiet --out "$OUT" &
    CHILD_PID=$!
    wait "$CHILD_PID"
fi

"$PYTHON" - "$OUT/metrics.json" <<'PY'
import json
import sys

with open(sys.argv[1]) as f:
    metrics = json.load(f)
nodes = metrics["nodes"]
print(f"nodes: {nodes}")
print(f"mse: {metrics['mse']:.6g}  rounds: {metrics['rounds']}  events: {metrics['events']}")
print(f"missing agents: {metrics.get('missing_agents')}")
if len(set(nodes)) != 2:
    sys.exit(f"FAIL: expected the agents on 2 distinct nodes, got {len(set(nodes))}")
print("OK: agents ran on 2 nodes")
PY
