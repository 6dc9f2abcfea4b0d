"""Typed configuration of ``distgp optimize``, loaded from YAML (flags override it).

Sections (every key optional)::

    function: branin          # built-in NAME or MODULE:CALLABLE
    budget: 100               # evaluations T
    maximize: false           # true maximises a MODULE:CALLABLE; built-ins are minimised
    noise_std: 0.0            # Gaussian noise added to a built-in function
    seed: 0
    out: runs/optimize
    arms: {count: 2000, method: sobol, local: 30, local_scale: 0.1}
    bandit: {algorithm: bkb, batch: false, ratio_threshold: 2.0, qbar: 3.0, beta: 3.0, ...}
    kernel: {name: gsmp, lengthscale: null, variance: 1.0, components: null, refit_every: 25, ...}
    agents: {count: 1, backend: null, address: null}
    space:                    # only for a callable without bounds; it receives a dict
      lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      layers: {type: int, low: 1, high: 4}
      act: {choices: [relu, tanh]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distgp.bandit.base import BETA_MODES
from distgp.bandit.spaces import ARM_METHODS
from distgp.config import DEVICE_RULE, build, check_device_setting, read_yaml
from distgp.exceptions import ConfigError
from distgp.settings import (
    Rule,
    a_folder,
    a_seed,
    at_least,
    between,
    check_settings,
    non_negative,
    one_of,
    positive,
    section,
    setting,
)

ALGORITHMS = ("bkb", "gpucb")
KERNELS = ("rbf", "gsmp")
WARMUP = 10  # kernel.warmup's default (raised to 2 per agent with more agents)


def _valid_beta(beta: str | float) -> bool:
    return beta in BETA_MODES if isinstance(beta, str) else 0 < beta < math.inf


@dataclass
class ArmsConfig:
    """Arms: how the search space becomes arms.

    ``local`` new arms are added near the best point after every batch (a zooming heuristic in
    the spirit of Ada-BKB's adaptive discretisation; 0 keeps the arm set fixed).
    """

    count: int = setting(2000, help="arms drawn", rule=at_least(2), flag="arms", metavar="A")
    method: str = setting(
        "sobol", help="how arms are drawn: sobol or random", rule=one_of(*ARM_METHODS), flag=""
    )
    local: int = setting(
        30, help="new arms near the best point per batch", rule=non_negative(), metavar="K"
    )
    local_scale: float = setting(
        0.1,
        help="step of local arms, encoded units (also /4 and /16)",
        rule=between(0, 1, open_low=True),
        flag="",
    )


@dataclass
class BanditConfig:
    """Bandit: the algorithm and its parameters (see :class:`~distgp.bandit.base.ArmBandit`).

    The command line's default ``beta`` is a fixed 3 GP standard deviations, not the reference
    code's ``practical`` beta (the library default): on the built-in functions the reference beta
    keeps exploring (about ``sqrt(log(t) d_eff)`` standard deviations), so nearly every pull
    enters the dictionary and the simple regret after 300 evaluations is larger
    (``distgp bench bkb`` measures both).
    """

    algorithm: str = setting(
        "bkb", help="bkb, or the exact gpucb baseline", rule=one_of(*ALGORITHMS), metavar="NAME"
    )
    batch: bool = setting(False, help="batch BKB: adaptive parallel batches")
    ratio_threshold: float = setting(
        2.0,
        help="batch BKB: a batch ends when the variances grew by this factor (above 1)",
        rule=Rule(lambda v: v > 1, "above 1 (at 1 every batch has one arm)"),
        flag="",
    )
    max_batch: int | None = setting(
        None, help="batch BKB: most arms per batch", rule=at_least(1), flag=""
    )
    qbar: float = setting(3.0, help="BKB: oversampling of the dictionary", rule=positive(), flag="")
    beta: str | float = setting(
        3.0,
        help="UCB width: practical, theory, or a number of GP standard deviations",
        rule=Rule(_valid_beta, "practical, theory or a positive, finite number"),
        metavar="B",
    )
    noise_variance: float = setting(
        1e-2, help="noise variance of the rewards (standardised)", rule=positive(), flag=""
    )
    lam: float | None = setting(
        None, help="regulariser (default: noise_variance)", rule=positive(), flag=""
    )
    fnorm: float = setting(1.0, help="RKHS norm bound of theory beta", rule=non_negative(), flag="")
    delta: float = setting(
        0.5,
        help="confidence of theory beta",
        rule=between(0, 1, open_low=True, open_high=True),
        flag="",
    )
    epsilon: float = setting(
        0.5,
        help="accuracy of the Nyström approximation",
        rule=between(0, 1, open_high=True),
        flag="",
    )
    initial: int = setting(
        2, help="random arms before the first UCB step", rule=at_least(1), flag=""
    )
    resparsify: float = setting(
        2.0,
        help="BKB: resample the dictionary when it is this times its expected size",
        rule=Rule(lambda v: v >= 1 and math.isfinite(v), "at least 1 (1 resamples every step)"),
        flag="",
    )
    repeat: bool | None = setting(
        None, help="evaluate an arm twice (default: only on a noisy built-in)", flag=""
    )
    device: str = setting(
        "cpu",
        help="where BKB's arm embedding and its updates run: cpu (numpy) or cuda, cuda:N "
        "(torch float64 on a GPU)",
        rule=DEVICE_RULE,
        metavar="cpu|cuda",
    )


@dataclass
class KernelSection:
    """Kernel: GSMP weights re-learned by the agents (SLIM-KL, the default), or a fixed RBF.

    With ``gsmp`` the first ``warmup`` evaluations use the RBF; then the agents re-learn the GSMP
    weights and the noise from the observations every ``refit_every`` evaluations, warm-started.
    With ``evidence`` (and no fixed ``lengthscale``) the RBF's lengthscales (one per encoded
    column), variance and the noise variance follow the evidence of the evaluations so far,
    from ``evidence_from`` evaluations on: after every batch until ``warmup``, then (``rbf``)
    every ``refit_every`` evaluations; a GSMP re-fit sets the noise the agents learned with it.
    """

    name: str = setting(
        "gsmp",
        help="gsmp (re-learned by the agents every refit_every evaluations) or rbf, fitted to the "
        "evidence (kernel.evidence: false keeps it fixed)",
        rule=one_of(*KERNELS),
        flag="kernel",
        metavar="gsmp|rbf",
    )
    lengthscale: float | None = setting(
        None,
        help="fixed RBF lengthscale on encoded [0, 1] arms",
        rule=positive(),
        metavar="L",
        default_text="0.2 sqrt(D), then by the evidence",
    )
    variance: float = setting(1.0, help="RBF prior variance", rule=positive(), flag="")
    components: int | None = setting(
        None, help="GSMP M (default 8 per encoded dimension)", rule=at_least(1), flag=""
    )
    levels: int | None = setting(None, help="GSMP bandwidth levels", rule=at_least(1), flag="")
    refit_every: int = setting(
        25, help="evaluations between GSMP re-fits", rule=at_least(1), flag=""
    )
    warmup: int | None = setting(
        None,
        help="successful evaluations before the first GSMP fit (with several agents, the fit "
        "also waits for 10 per agent: the fewest an agent learns from); at least 2 per agent",
        rule=at_least(2),
        flag="",
        default_text=f"{WARMUP}, or 2 per agent with more than {WARMUP // 2} agents",
    )
    max_iterations: int = setting(
        50, help="DSCA iterations of a single-agent re-fit", rule=at_least(1), flag=""
    )
    rounds: int = setting(10, help="ADMM rounds of a multi-agent re-fit", rule=at_least(1), flag="")
    evidence: bool = setting(True, help="RBF lengthscales and noise by the evidence", flag="")
    evidence_from: int = setting(
        5, help="successful evaluations before the first evidence fit", rule=at_least(2), flag=""
    )


@dataclass
class AgentsConfig:
    """Agents: they evaluate batches (and re-learn GSMP weights)."""

    count: int = setting(1, help="evaluating agents", rule=at_least(1), flag="agents", metavar="N")
    backend: str | None = setting(
        None,
        help="inline or ray",
        rule=one_of("inline", "ray"),
        metavar="inline|ray",
        default_text="inline for 1 agent, ray otherwise",
    )
    address: str | None = setting(
        None, help="Ray cluster address", metavar="ADDR", default_text="a local Ray instance"
    )


@dataclass
class OptimizeConfig:
    """Everything ``distgp optimize`` needs."""

    function: str = setting(
        "branin",
        help="branin, hartmann6, ackley5, levy8 (minimised), or MODULE:CALLABLE",
        metavar="NAME",
    )
    budget: int = setting(100, help="evaluations", rule=at_least(1), metavar="T")
    maximize: bool = setting(
        False,
        help="maximise a MODULE:CALLABLE's value (the built-in functions are minimised, with "
        "a known optimum for the regret)",
    )
    noise_std: float = setting(
        0.0,
        help="noise added to a built-in function",
        rule=non_negative(),
        flag="noise",
        metavar="STD",
    )
    seed: int = setting(0, help="random seed", rule=a_seed())
    out: str = setting("runs/optimize", help="output folder", rule=a_folder(), metavar="DIR")
    plots: bool = setting(
        True,
        help="draw no regret.png (plots: false; by default it shows the regret, or the best "
        "value, against evaluations); a --resume run keeps the interrupted run's choice",
    )
    arms: ArmsConfig = section(ArmsConfig)
    bandit: BanditConfig = section(BanditConfig)
    kernel: KernelSection = section(KernelSection)
    agents: AgentsConfig = section(AgentsConfig)
    space: dict[str, Any] | None = None  # read as is (see load_optimize_config)

    @property
    def warmup(self) -> int:
        """``kernel.warmup``, or its default: :data:`WARMUP` evaluations, at least 2 per agent."""
        if self.kernel.warmup is not None:
            return self.kernel.warmup
        return max(WARMUP, 2 * self.agents.count)

    @property
    def backend_name(self) -> str:
        if self.agents.backend is not None:
            return self.agents.backend
        return "ray" if self.agents.count > 1 or self.agents.address else "inline"

    def validate(self) -> OptimizeConfig:
        """Check every value and the rules between settings; raise :class:`ConfigError` naming
        the first bad setting."""
        check_settings(self)
        b, g = self.bandit, self.agents
        _check(
            b.device == "cpu" or b.algorithm == "bkb",
            "bandit.device places BKB's embedding; the exact gpucb baseline runs on the cpu",
            "bandit.device",
        )
        check_device_setting(b.device, "bandit.device")
        _check(
            g.address is None or g.backend != "inline",
            "agents.address needs the ray backend; set agents.backend to ray",
            "agents.address",
        )
        _check(
            not (self.maximize and ":" not in self.function),
            f"the built-in function {self.function} is minimised (its known optimum gives the "
            "regret); drop maximize, or give a MODULE:CALLABLE to maximise",
            "maximize",
        )
        _check(
            self.warmup >= 2 * g.count,
            f"kernel.warmup must be at least 2 per agent ({2 * g.count} with {g.count} agents), "
            f"got {self.warmup}: set 'kernel: {{warmup: {2 * g.count}}}' in the --config, or "
            "leave it unset (its default grows with the agents)",
            "kernel.warmup",
        )
        k = self.kernel
        _check(
            not (k.evidence and k.lengthscale is None) or k.evidence_from <= self.warmup,
            f"kernel.evidence_from ({k.evidence_from}) is after kernel.warmup ({self.warmup}), so "
            "the evidence fits after every batch never run; lower evidence_from or raise warmup",
            "kernel.evidence_from",
        )
        return self


def _check(condition: bool, message: str, setting_path: str) -> None:
    if not condition:
        raise ConfigError(message, setting=setting_path)


def load_optimize_config(path: str | Path | None) -> OptimizeConfig:
    """Load an :class:`OptimizeConfig` from YAML (defaults when ``path`` is None)."""
    if path is None:
        return OptimizeConfig()
    mapping = read_yaml(path)
    space = mapping.pop("space", None)
    if space is not None and not isinstance(space, dict):
        raise ConfigError("config key space must be a mapping of parameter name -> settings")
    config = build(OptimizeConfig, mapping, "")
    config.space = space
    return config
