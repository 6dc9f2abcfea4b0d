"""A bandit over named parameters: the layer both framework adapters share."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from distgp.bandit.base import SETTING_OPTIONS, ArmBandit, check_bandit_settings
from distgp.bandit.bkb import BKB
from distgp.bandit.config import WARMUP, ArmsConfig, KernelSection, OptimizeConfig
from distgp.bandit.evidence import fit_rbf
from distgp.bandit.gpucb import GPUCB
from distgp.bandit.spaces import Param, ParamSpace, add_local_arms
from distgp.exceptions import ConfigError
from distgp.settings import require

ALGORITHMS = {"bkb": BKB, "gpucb": GPUCB}
DEFAULT_BETA = 3.0  # GP standard deviations, the command line's default


OWN_OPTIONS = ("kernel", "evidence", "local")  # taken by ParamBandit, not the bandit


def check_options(
    seed: Any, algorithm: Any, options: Mapping[str, Any], arms: Any = ArmsConfig.count
) -> None:
    """Refuse an adapter's unknown ``algorithm``, a ``seed`` that is not a non-negative
    integer, ``arms`` that is not a whole number of at least 2, a bandit option the algorithm
    does not take, or an option value the bandit would refuse (at construction, not at the
    first trial): ``local`` by the rule of ``arms.local``, the numeric bandit options
    (``beta``, ``initial``, ``qbar``...) by :func:`~distgp.bandit.base.check_bandit_settings`,
    as the bandit checks them when the first trial builds it."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    require(OptimizeConfig, "arms.count", arms, name="arms")
    accepted = {*OWN_OPTIONS, *_keywords(ALGORITHMS[algorithm])}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} for algorithm {algorithm}; the options are "
            f"{', '.join(sorted(accepted))}"
        )
    if "local" in options:
        require(OptimizeConfig, "arms.local", options["local"], name="local")
    check_bandit_settings({k: options[k] for k in SETTING_OPTIONS if k in options})


def _keywords(cls: type) -> set[str]:
    """The keyword-only arguments of ``cls`` and the classes it passes ``**options`` to."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and issubclass(klass, ArmBandit):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
    return names - {"seed"}


class ParamBandit:
    """A BKB (or GP-UCB) bandit whose arms are a :class:`ParamSpace` of named parameters.

    Args:
        params: the numeric and categorical parameters.
        arms: number of arms drawn from the space.
        seed: seed of the arms and of the bandit.
        algorithm: ``bkb`` or ``gpucb``.
        **options: bandit options (``batch``, ``beta``, ``qbar``, ``kernel``...). ``beta``
            defaults to 3 GP standard deviations, as in ``distgp optimize`` (the reference
            ``practical`` beta explores much more; see :mod:`distgp.bandit.base`).
            ``evidence`` (default ``True`` unless a ``kernel`` is given): the RBF's lengthscales
            (one per encoded column), variance and noise follow the evidence of the rewards
            told, on ``distgp optimize --kernel rbf``'s schedule (after every reward from the
            5th to the 10th, then every 25th), each fit ``O(n^3)`` in the ``n`` rewards up to
            300 and on a random 300 of them beyond (:mod:`distgp.bandit.evidence`).
            ``local`` (default 30): new arms added near the
            best point after every reward, at ``distgp optimize``'s steps (a fixed set of
            Sobol arms is sparse in several dimensions).
    """

    def __init__(
        self,
        params: Sequence[Param],
        arms: int = 2000,
        seed: int | None = None,
        algorithm: str = "bkb",
        **options: Any,
    ) -> None:
        check_options(seed, algorithm, options, arms)
        self.space = ParamSpace(params, arms, 0 if seed is None else seed)
        kernel = options.pop("kernel", None)
        self.evidence = bool(options.pop("evidence", kernel is None))
        self._seed = 0 if seed is None else int(seed)
        self._next_fit = KernelSection.evidence_from
        self.local = int(options.pop("local", ArmsConfig.local))
        self._local_rng = np.random.default_rng((self._seed, 1))
        options.setdefault("beta", DEFAULT_BETA)
        self.bandit: ArmBandit = ALGORITHMS[algorithm](
            self.space.arms, kernel, seed=seed, **options
        )

    def ask(self, n: int | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Propose arms (see :meth:`ArmBandit.ask`) as ``(arm, params)`` pairs."""
        return [(int(a), self.params_of(int(a))) for a in self.bandit.ask(n)]

    def params_of(self, arm: int) -> dict[str, Any]:
        return self.space.decode_row(self.bandit.arms[arm])

    def arm_of(self, params: Mapping[str, Any]) -> int:
        """The arm of ``params`` (added to the arm set when it is not one of the arms)."""
        row = self.space.encode(params)
        dist = np.abs(self.bandit.arms - row).max(1)
        best = int(np.argmin(dist))
        if dist[best] <= 1e-9:
            return best
        return int(self.bandit.add_arms(row[None])[0])

    def tell(self, arm: int, reward: float) -> None:
        """Reward (to maximise) of ``arm``; NaN for a failed evaluation."""
        self.bandit.tell(arm, reward)
        fitted = self.bandit.fitted
        if self.evidence and fitted >= self._next_fit:
            arms, rewards = zip(*self.bandit.model_data(), strict=True)
            X = self.bandit.arms[list(arms)]
            kernel, noise = fit_rbf(X, np.array(rewards), seed=self._seed)
            self.bandit.set_kernel(kernel, noise_variance=noise)
            k = KernelSection
            self._next_fit = fitted + (1 if fitted < WARMUP else k.refit_every)
        if self.local and self.bandit.observations:
            best = self.bandit.arms[self.best_arm()]
            scale = ArmsConfig.local_scale
            add_local_arms(self.bandit, self.space, best, self.local, scale, self._local_rng)

    def cancel(self, arm: int) -> None:
        self.bandit.cancel(arm)

    def best_arm(self) -> int:
        """The arm of the largest reward told (the first one, on ties)."""
        history = self.bandit.history
        rewards = np.where(np.isnan(history["y"]), -np.inf, history["y"])
        return int(history["arm"][int(np.argmax(rewards))])

    @property
    def exhausted(self) -> bool:
        """Whether :meth:`ask` has nothing to propose (every arm blocked or pending)."""
        return self.bandit.exhausted
