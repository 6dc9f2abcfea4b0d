"""``BKBSampler``: BKB as an Optuna sampler.

BKB is a *relative* sampler over the numeric part of the search space (``FloatDistribution``
without ``step``, ``IntDistribution`` with ``step=1``; linear or log): the joint space of the
completed trials is discretised into ``arms`` points (scrambled Sobol), and each new trial gets the
arm with the highest UCB. Everything else (categorical parameters, stepped floats, parameters
first seen in this trial, the first trial) is drawn by a ``RandomSampler``, with a warning
(``warn_independent_sampling=False`` silences it).

Call order within a trial (Optuna's lifecycle): ``infer_relative_search_space`` ->
``sample_relative`` (the bandit is first told every finished trial it has not seen, then asked
for one arm, marked pending) -> ``sample_independent`` for the rest -> the objective ->
``after_trial`` (the bandit is told the value; a failed trial is recorded as a failed evaluation,
a pruned one just stops being pending). Running trials stay pending, so parallel workers
(``n_jobs``) get different arms. The study direction is respected (BKB maximises internally).

Example::

    import optuna
    from distgp.integrations.optuna import BKBSampler

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_int("y", 0, 10)
        return (x - 1) ** 2 + (y - 3) ** 2

    study = optuna.create_study(sampler=BKBSampler(seed=0))
    study.optimize(objective, n_trials=30)
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from distgp.bandit.spaces import FloatParam, IntParam
from distgp.integrations.common import ParamBandit

_INDEPENDENT_WARNING = (
    "BKBSampler cannot handle parameter '{param}' of trial {trial} jointly ({reason}); it is "
    "sampled by RandomSampler. Set warn_independent_sampling=False to silence this warning."
)


class BKBSampler(BaseSampler):
    """Optuna sampler driven by BKB.

    Args:
        arms: number of arms the numeric space is discretised into.
        seed: seed of the arms, the bandit and the fallback sampler.
        algorithm: ``bkb`` or ``gpucb`` (exact, for comparisons).
        warn_independent_sampling: warn when a parameter falls back to random sampling.
        **options: bandit options (:class:`~distgp.bandit.base.ArmBandit`, ``qbar``, ``kernel``).
    """

    def __init__(
        self,
        *,
        arms: int = 2000,
        seed: int | None = None,
        algorithm: str = "bkb",
        warn_independent_sampling: bool = True,
        **options: Any,
    ) -> None:
        self._arms = arms
        self._seed = seed
        self._algorithm = algorithm
        self._options = options
        self._warn = warn_independent_sampling
        self._random = RandomSampler(seed=seed)
        self._search_space = IntersectionSearchSpace()
        self._bandit: ParamBandit | None = None
        self._key: tuple | None = None
        self._told: set[int] = set()
        self._arm_of_trial: dict[int, int] = {}

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        if self._bandit is not None:
            self._bandit.bandit.reseed()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._search_space.calculate(study)
        return {n: d for n, d in space.items() if _supported(d) and not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        key = tuple(sorted((n, repr(d)) for n, d in search_space.items()))
        if key != self._key:  # a new joint space: a new bandit, told every finished trial
            params = [_param(n, d) for n, d in sorted(search_space.items())]
            self._bandit = ParamBandit(
                params, self._arms, self._seed, self._algorithm, **dict(self._options)
            )
            self._key, self._told, self._arm_of_trial = key, set(), {}
        bandit = self._bandit
        assert bandit is not None
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        for past in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if past.number in self._told or not all(n in past.params for n in search_space):
                continue
            arm = self._arm_of_trial.pop(past.number, None)
            if arm is None:
                arm = bandit.arm_of({n: past.params[n] for n in search_space})
            value = past.value if past.state == TrialState.COMPLETE else None
            bandit.tell(arm, math.nan if value is None else sign * value)
            self._told.add(past.number)
        ((arm, params),) = bandit.ask(1)
        self._arm_of_trial[trial.number] = arm
        return params

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._warn and any(
            t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
        ):
            reason = (
                "the parameter is categorical or stepped"
                if not _supported(param_distribution)
                else "it is not in every finished trial"
            )
            optuna.logging.get_logger(__name__).warning(
                _INDEPENDENT_WARNING.format(param=param_name, trial=trial.number, reason=reason)
            )
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        arm = self._arm_of_trial.pop(trial.number, None)
        if arm is None or self._bandit is None:
            return
        if state == TrialState.COMPLETE and values:
            sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
            self._bandit.tell(arm, sign * values[0])
        elif state == TrialState.FAIL:
            self._bandit.tell(arm, math.nan)
        else:  # pruned: no value
            self._bandit.cancel(arm)
            return
        self._told.add(trial.number)

    @property
    def bandit(self) -> ParamBandit | None:
        """The current bandit (``None`` before the first joint space)."""
        return self._bandit


def _supported(d: BaseDistribution) -> bool:
    if isinstance(d, FloatDistribution):
        return d.step is None
    if isinstance(d, IntDistribution):
        return d.step == 1
    return False


def _param(name: str, d: BaseDistribution) -> FloatParam | IntParam:
    if isinstance(d, IntDistribution):
        return IntParam(name, float(d.low), float(d.high), bool(d.log))
    assert isinstance(d, FloatDistribution)
    return FloatParam(name, float(d.low), float(d.high), bool(d.log))
