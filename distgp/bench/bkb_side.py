"""Side by side with the authors' code: ``distgp bench bkb --side-by-side [--reference DIR]``.

The setup of bkb.md section 3.5 and issue 11: ``A = 2000`` arms uniform in ``[0, 1]^3``, RBF
lengthscale 0.5, a reward of 20 seeded RBF bumps scaled to ``max |f| = 1``, noise standard
deviation 0.05, ``lam = xi^2 = 0.0025``, ``F = 1``, ``delta = 0.5``, the practical (reference)
beta, ``qbar = 3``, ``C~ = 2``, the same two initial arms (0 and 1), ``T = 1500``; totals over
seeds. The reference (``bkb_lib.py`` of github.com/luigicarratino/batch-bkb, MIT) is an optional
peer: pass the folder of a checkout with ``--reference``; it is imported from there, never
copied into distgp.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SIDE = {"arms": 2000, "dims": 3, "budget": 1500, "seeds": 3}
LENGTHSCALE = 0.5
BUMPS = 20
NOISE_STD = 0.05
QBAR, RATIO = 3.0, 2.0
TARGET_REGRET = 0.10


def problem(arms_count: int, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Arms uniform in the unit cube and a seeded bump reward scaled to ``max |f| = 1``."""
    from distgp.bandit.kernels import RBFKernel

    rng = np.random.default_rng((seed, 3))
    arms = rng.random((arms_count, dims))
    centres = rng.random((BUMPS, dims))
    f = RBFKernel(LENGTHSCALE)(arms, centres) @ rng.standard_normal(BUMPS)
    return arms, f / np.abs(f).max()


def distgp_run(make: Callable, arms: np.ndarray, f: np.ndarray, budget: int, seed: int) -> dict:
    """Tell arms 0 and 1, then ask (adaptive batches for batch BKB) and tell until ``budget``."""
    rng = np.random.default_rng((seed, 11))
    tic = time.perf_counter()
    bandit = make(arms, seed)
    init = np.array([0, 1])
    bandit.tell(init, f[init] + NOISE_STD * rng.standard_normal(2))
    pulls = init.tolist()
    while len(pulls) < budget:
        idx = bandit.ask(budget - len(pulls) if bandit.batch else None)
        bandit.tell(idx, f[idx] + NOISE_STD * rng.standard_normal(len(idx)))
        pulls += idx.tolist()
    return _summary(time.perf_counter() - tic, f, pulls, bandit.batches + 1)


def reference_run(cls, arms: np.ndarray, f: np.ndarray, budget: int, seed: int) -> dict:
    """The same protocol through the reference's ``initialize`` / ``predict`` / ``update``."""
    from sklearn.gaussian_process.kernels import RBF

    utils = sys.modules["utils"]
    rng = np.random.default_rng((seed, 11))
    tic = time.perf_counter()
    kernel = utils.FastMixinKernel(RBF(LENGTHSCALE), RBF(LENGTHSCALE))  # numpy 2: bkb.md 5.1
    lam = NOISE_STD**2
    options = {"lam": lam, "dot": kernel, "noise_variance": lam, "fnorm": 1.0, "delta": 0.5}
    extra = {"ratio_threshold": RATIO} if "Batch" in cls.__name__ else {}
    alg = cls(qbar=QBAR, **options, **extra)
    init = np.array([0, 1])
    alg.initialize(arms, init, f[init] + NOISE_STD * rng.standard_normal(2))
    pulls, batches, state = init.tolist(), 1, np.random.RandomState(seed)
    while len(pulls) < budget:
        idx = np.atleast_1d(np.asarray(alg.predict()[0]))[: budget - len(pulls)]
        alg.update(idx, f[idx] + NOISE_STD * rng.standard_normal(len(idx)), state)
        pulls += idx.tolist()
        batches += 1
    return _summary(time.perf_counter() - tic, f, pulls, batches)


def _summary(seconds: float, f: np.ndarray, pulls: list[int], batches: int) -> dict:
    return {
        "seconds": seconds,
        "cumulative_regret": float((f.max() - f[np.array(pulls)]).sum()),
        "batches": batches,
    }


def load_reference(folder: str | None) -> Any:
    """The reference's ``bkb_lib`` module from ``folder``, or ``None``."""
    if folder is None:
        return None
    path = Path(folder)
    if not (path / "bkb_lib.py").is_file():
        from distgp.exceptions import ConfigError

        raise ConfigError(
            f"--reference {folder}: no bkb_lib.py there; pass a checkout of "
            "github.com/luigicarratino/batch-bkb"
        )
    sys.path.insert(0, str(path))
    try:
        return importlib.import_module("bkb_lib")
    finally:
        sys.path.remove(str(path))


def side_by_side(reference_dir: str | None, seeds: list[int], budget: int, progress) -> dict:
    """Totals over seeds for every algorithm (reference ones only with ``reference_dir``)."""
    from distgp.bandit import BKB, GPUCB, RBFKernel

    lam = NOISE_STD**2
    common = {"noise_variance": lam, "lam": lam, "normalize_y": False, "initial": 2}
    kernel = RBFKernel(LENGTHSCALE)
    algorithms: dict[str, Callable] = {}
    ref = load_reference(reference_dir)
    if ref is not None:
        algorithms["reference BKB"] = lambda a, f, T, s: reference_run(ref.BKB, a, f, T, s)
        algorithms["reference batch BKB"] = lambda a, f, T, s: reference_run(
            ref.Batch_BKB, a, f, T, s
        )

    def ours(**options):
        return lambda a, f, T, s: distgp_run(
            lambda arms, seed: BKB(arms, kernel, qbar=QBAR, seed=seed, **common, **options),
            a,
            f,
            T,
            s,
        )

    algorithms["distgp BKB (incremental, rho = 2)"] = ours()
    algorithms["distgp BKB (resample every step)"] = ours(resparsify=1.0)
    algorithms["distgp batch BKB"] = ours(batch=True, ratio_threshold=RATIO)
    algorithms["distgp batch BKB (resample every batch)"] = ours(
        batch=True, ratio_threshold=RATIO, resparsify=1.0
    )
    algorithms["distgp exact GP-UCB (incremental)"] = lambda a, f, T, s: distgp_run(
        lambda arms, seed: GPUCB(arms, kernel, seed=seed, **common), a, f, T, s
    )
    runs: dict[str, dict[str, Any]] = {}
    for name, algorithm in algorithms.items():
        per_seed = []
        for seed in seeds:
            arms, f = problem(SIDE["arms"], SIDE["dims"], seed)
            progress(f"side by side: {name}, seed {seed}")
            per_seed.append(algorithm(arms, f, budget, seed))
        runs[name] = {
            key: float(sum(r[key] for r in per_seed))
            for key in ("seconds", "cumulative_regret", "batches")
        }
        runs[name]["per_seed"] = [r["cumulative_regret"] for r in per_seed]
    return {"budget": budget, "seeds": seeds, "reference": ref is not None, "runs": runs}


def render_side_by_side(side: dict) -> str:
    from distgp.bench.report import markdown_table

    rows = [
        {
            "algorithm": name,
            f"seconds ({len(side['seeds'])} runs)": r["seconds"],
            "cumulative regret (total)": r["cumulative_regret"],
            "per seed": " / ".join(f"{v:.0f}" for v in r["per_seed"]),
            "batches (total)": r["batches"],
        }
        for name, r in side["runs"].items()
    ]
    head = (
        f"### Side by side: A = {SIDE['arms']}, d = {SIDE['dims']}, T = {side['budget']}\n\n"
        f"RBF lengthscale {LENGTHSCALE}, {BUMPS} bumps scaled to max |f| = 1, noise std "
        f"{NOISE_STD}, lam = noise variance, practical beta, qbar = {QBAR:g}, C~ = {RATIO:g}, "
        f"arms 0 and 1 first; totals over seeds {side['seeds']}, one process, one BLAS thread."
        + ("" if side["reference"] else " Reference not measured (no --reference).")
    )
    targets = "\n".join(side_targets(side))
    return "\n\n".join([head, markdown_table(rows, list(rows[0])), targets])


def side_targets(side: dict) -> list[str]:
    runs = side["runs"]
    bkb, exact = (
        runs["distgp BKB (incremental, rho = 2)"],
        runs["distgp exact GP-UCB (incremental)"],
    )
    ratio = bkb["seconds"] / exact["seconds"]
    change = bkb["cumulative_regret"] / exact["cumulative_regret"] - 1.0
    lines = [
        "Targets:\n",
        f"* BKB time / exact GP-UCB time = {ratio:.2f} (target <= 1: "
        f"{'met' if ratio <= 1 else 'missed'}); regret vs exact {change:+.1%} (target within "
        f"{TARGET_REGRET:.0%}: {'met' if abs(change) <= TARGET_REGRET else 'missed'})",
    ]
    if side["reference"]:
        ours, ref = runs["distgp batch BKB"], runs["reference batch BKB"]
        gap = ours["cumulative_regret"] / ref["cumulative_regret"] - 1.0
        ok = gap <= TARGET_REGRET and ours["seconds"] <= ref["seconds"]
        lines.append(
            f"* batch BKB regret vs reference batch BKB {gap:+.1%}, time "
            f"{ours['seconds']:.1f} s vs {ref['seconds']:.1f} s (target within "
            f"{TARGET_REGRET:.0%} at no more time: {'met' if ok else 'missed'})"
        )
    return lines
