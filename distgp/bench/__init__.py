"""Benchmark suites behind ``distgp bench SUITE``.

Each suite module defines ``add_arguments(parser)`` and ``run(args) -> int``; it prints a table,
and can write JSON (``--json``) and replace its section of ``benchmarks/RESULTS.md``
(``--results``). Numbers are measured on the machine that runs them, nothing is hard-coded.
"""

SUITES = {
    "kernel": (
        "distgp.bench.kernel",
        "kernel learning on the SLIM-KL datasets vs GPyTorch baselines",
    ),
    "admm": ("distgp.bench.admm", "agents, rounds, bits and scaling of quantised ADMM"),
    "bkb": ("distgp.bench.bkb", "BKB, batch BKB and exact GP-UCB: time and regret"),
    "faults": ("distgp.bench.faults", "killed and hung agents over Ray: completion and MSE change"),
    "tune": (
        "distgp.bench.tune",
        "distgp fit --tune (BKB over outer settings, agents over Ray) vs the defaults",
    ),
    "threads": (
        "distgp.bench.threads",
        "distgp fit as installed vs fixed BLAS thread settings (median of repeats)",
    ),
}
