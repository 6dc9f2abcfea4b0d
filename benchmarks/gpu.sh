#!/usr/bin/env bash
# GPU benchmark of distgp's torch float64 path (issue 13), for a lent GPU machine.
#
#   OUT=/some/folder DATA_DIR=path/to/slimkl benchmarks/gpu.sh      # from the repository root
#
# Needs only python3 with numpy, scipy, torch (CUDA), threadpoolctl and pyyaml (pytest for part
# a): distgp itself comes from this tree through PYTHONPATH; Ray and cvxpy are not used (agents
# run in-process, the inline backend). DATA_DIR holds the SLIM-KL .mat files (cccp1000.mat,
# cccp9500.mat, airfoil600.mat). Every part has its own time limit; the whole run stays under
# 9 minutes. Tables go to $OUT/gpu.md (and each part's raw output beside it).
#
#   a. equality: tests/test_device.py on the GPU, and a 30-iteration cccp1000 fit on the CPU
#      (numpy) and the GPU (torch): weights, objective and predictions, max relative difference
#   b. cccp9500, one agent, exact GP, --device cuda (target: learning < 60 s)
#   c. 8 agents (in-process) with shards of 20 000 synthetic 4-D points each on the GPU, rounds
#      capped; a smaller shard size, labelled, if 20 000 does not fit the time limit
#   d. threads: the same CPU fits (iterations capped) with --threads 1, 4, 16 and as installed
#      (more threads never slower)
#   e. BKB with 200 000 arms in 6-D, 300 steps, its arm embedding on the CPU and on the GPU
#
# A dry run without a GPU (small sizes, torch on the CPU): DEVICE=torch:cpu QUICK=1 OUT=... $0
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:?set OUT to the folder for the results}"
DATA_DIR="${DATA_DIR:-$ROOT/../shared/data/slimkl}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then BIG=cccp1000 SHARD=500 ITERS=(--max-iterations 5); else
  BIG=cccp9500 SHARD=20000 ITERS=(); fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RAY_USAGE_STATS_ENABLED=0 MPLBACKEND=Agg
unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS  # measure distgp as installed
mkdir -p "$OUT"
REPORT="$OUT/gpu.md"
cd "$ROOT"

for f in cccp1000 $BIG airfoil600; do
  [[ -f "$DATA_DIR/$f.mat" ]] || { echo "missing $DATA_DIR/$f.mat (set DATA_DIR)" >&2; exit 2; }
done

{
  echo "# distgp GPU benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c "import torch, numpy, scipy, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'cores', __import__('os').cpu_count())"
  echo '```'
} > "$REPORT"

part() {  # part NAME SECONDS: run stdin as python with a time limit, append its output
  local name="$1" limit="$2" rc=0
  echo "== part $name (limit ${limit}s)" >&2
  timeout "$limit" "$PY" - > "$OUT/$name.txt" 2> "$OUT/$name.log" || rc=$?
  { echo; cat "$OUT/$name.txt"; } >> "$REPORT"
  if [[ $rc -ne 0 ]]; then
    echo "part $name: exit $rc (124: over its ${limit}s limit); see $name.log" >> "$REPORT"
  fi
  return 0
}

# --- a. equality ---------------------------------------------------------------------------------
{
  echo
  echo "## a. GPU vs CPU equality"
  echo
  echo '```'
  timeout 45 "$PY" -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -5 || true
  echo '```'
} >> "$REPORT"

part a_fit 60 <<EOF
import time, numpy as np
from distgp.config import FitConfig
from distgp.data import load_dataset
from distgp.driver import fit

ds = load_dataset("$DATA_DIR/cccp1000.mat")
runs = {}
for device in ("cpu", "$DEVICE"):
    config = FitConfig()
    config.learn.max_iterations = 5 if $QUICK else 30
    config.learn.device = device
    tic = time.perf_counter()
    result = fit(ds.X_train, ds.y_train, config)
    mean, std = result.model.predict(ds.X_test, return_std=True)
    runs[device] = (result, mean, std, time.perf_counter() - tic)
rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))
(rc, mc, sc, tc), (rg, mg, sg, tg) = runs["cpu"], runs["$DEVICE"]
print(f"cccp1000 (n=1000, P=4), {rc.iterations} DSCA iterations, default settings, $DEVICE:\n")
print("| quantity | max relative difference GPU vs CPU |\n|---|---|")
print(f"| weights and noise (theta) | {rel(rg.theta, rc.theta):.2e} |")
print(f"| objective | {abs(rg.objective - rc.objective) / abs(rc.objective):.2e} |")
print(f"| predictive mean | {rel(mg, mc):.2e} |")
print(f"| predictive std | {rel(sg, sc):.2e} |")
print(f"\niterations CPU {rc.iterations} / GPU {rg.iterations}; seconds (fit + predict) "
      f"CPU {tc:.1f} / GPU {tg:.1f}; target: agree to 1e-8 relative")
EOF

# --- b. cccp9500 on the GPU ------------------------------------------------------------------------
part b_big 100 <<EOF
import json, subprocess, sys, time
tic = time.perf_counter()
subprocess.run([sys.executable, "-m", "distgp", "fit", "--data", "$DATA_DIR/$BIG.mat",
                "--device", "$DEVICE", "--out", "$OUT/$BIG", "--no-plots", "--quiet",
                *"${ITERS[*]}".split()], check=True)
wall = time.perf_counter() - tic
m = json.load(open("$OUT/$BIG/metrics.json"))
print("## b. $BIG, one agent, exact GP on $DEVICE\n")
print("| n | P | M | iterations | converged | learning s | wall s (process) | test MSE | active |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {m['n_train']} | {m['dims']} | {m['components']} | {m['iterations']} | {m['converged']} | "
      f"{m['seconds']:.1f} | {wall:.1f} | {m['mse']:.4g} | {m['active_components']} |")
print(f"\ntarget: learning < 60 s: {'met' if m['seconds'] < 60 else 'missed'}")
EOF

# --- c. 8 agents x 20 000 points -------------------------------------------------------------------
synthetic_part() {  # synthetic_part SHARD LIMIT
  part "c_agents_$1" "$2" <<EOF
import time, numpy as np
from distgp.config import FitConfig
from distgp.driver import fit
from distgp.gp import GSMPModel

shard, agents = $1, 8
rng = np.random.default_rng(0)
def f(X):
    return np.sin(3 * X[:, 0]) + 0.5 * np.cos(5 * X[:, 1]) + X[:, 2] * X[:, 3] + 0.3 * X[:, 1] ** 2
X = rng.uniform(-1, 1, (agents * shard + 2000, 4))
y = f(X) + 0.1 * rng.standard_normal(len(X))
Xt, yt, X, y = X[-2000:], y[-2000:], X[:-2000], y[:-2000]
config = FitConfig()
config.consensus.agents = agents
config.consensus.max_rounds = 6
config.consensus.local_iterations = 3
config.backend.name = "inline"
config.learn.device = "$DEVICE"
tic = time.perf_counter()
result = fit(X, y, config)
seconds = time.perf_counter() - tic
m = result.model
sub = rng.choice(len(X), shard, replace=False)  # prediction conditions on one shard's worth
small = GSMPModel(m.grid, m.scaler, m.weights, m.noise_variance, m.scaler.x(X[sub]),
                  m.scaler.y(y[sub]), device="$DEVICE")
mse = float(np.mean((small.predict(Xt) - yt) ** 2))
per_round = np.mean([r.seconds for r in result.history])
print(f"## c. {agents} agents x {shard} points (synthetic 4-D, noise variance 0.01), $DEVICE\n")
print("Agents run in-process one after another on one GPU (inline backend); ADMM capped at 6 "
      "rounds of 3 local DSCA iterations; test MSE of a GP conditioned on a random "
      f"{shard}-point subset with the learned kernel (2000 test points).\n")
print("| agents | shard | rounds | converged | learning s | s per round | active / M | test MSE |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {agents} | {shard} | {result.rounds} | {result.converged} | {seconds:.1f} | "
      f"{per_round:.1f} | {int((m.weights > 0).sum())}/{m.grid.components} | {mse:.4g} |")
EOF
}
synthetic_part "$SHARD" 130
if ! grep -q "^| 8 | $SHARD |" "$REPORT"; then
  echo "$SHARD-point shards did not finish in time; smaller shards, labelled:" >> "$REPORT"
  synthetic_part 5000 40
fi

# --- d. threads on the CPU -------------------------------------------------------------------------
part d_threads 100 <<EOF
import json, subprocess, sys, tempfile
rows = []
for data, extra in (("airfoil600", ["--max-iterations", "5" if $QUICK else "100"]),
                    ("cccp1000", ["--max-iterations", "5" if $QUICK else "30"])):
    for threads in ("1", "4", "16", None):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "distgp", "fit", "--data", f"$DATA_DIR/{data}.mat",
                   "--out", out, "--no-plots", "--quiet", *extra]
            cmd += ["--threads", threads] if threads else []
            subprocess.run(cmd, check=True)
            m = json.load(open(f"{out}/metrics.json"))
        rows.append((data, threads or "as installed", m["seconds"], m["mse"]))
print("## d. CPU threads: the same fit (airfoil600: 100, cccp1000: 30 DSCA iterations) with "
      "--threads 1, 4, 16 and as installed\n")
print("| dataset | threads | learning s | test MSE |\n|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.6g} |")
for data in ("airfoil600", "cccp1000"):
    t = {r[1]: r[2] for r in rows if r[0] == data}
    ok = t["4"] <= 1.1 * t["1"] and t["16"] <= 1.1 * t["4"]
    print(f"\n{data}: more threads never slower (10% noise allowance): {'met' if ok else 'missed'}")
EOF

# --- e. BKB's arm embedding on the GPU -------------------------------------------------------------
part e_bkb 60 <<EOF
import time, numpy as np
from distgp.bandit import BKB
from distgp.bandit.kernels import RBFKernel

arms = np.random.default_rng(0).uniform(size=(20000 if $QUICK else 200000, 6))
f = lambda x: float(-np.sum((x - 0.3) ** 2) + 0.05 * np.sin(12.0 * x[0]))
runs = {}
for device in ("cpu", "$DEVICE"):
    bandit = BKB(arms, RBFKernel(0.5), beta=3.0, seed=0, device=device)
    tic = time.perf_counter()
    for _ in range(60 if $QUICK else 300):
        i = int(np.atleast_1d(bandit.ask())[0])
        bandit.tell(i, f(arms[i]))
    bandit.ask()
    runs[device] = (bandit, time.perf_counter() - tic)
(c, tc), (g, tg) = runs["cpu"], runs["$DEVICE"]
rel = lambda a, b: float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
print(f"## e. BKB, {len(arms)} arms in 6-D, {c.observations} steps: embedding on cpu and $DEVICE\n")
print("| device | seconds | dictionary | rank |\n|---|---|---|---|")
for name, (b, t) in runs.items():
    print(f"| {name} | {t:.1f} | {b.dictionary_size} | {b.rank} |")
print(f"\nmax relative difference of the posterior mean {rel(g._mean, c._mean):.2e}, "
      f"variance {rel(g._var, c._var):.2e} (target 1e-8)")
EOF

echo "wrote $REPORT" >&2
