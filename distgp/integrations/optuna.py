"""``BKBSampler``: BKB as an Optuna sampler.

BKB is a *relative* sampler: the joint space of the completed trials (Optuna's
``IntersectionSearchSpace``) is discretised into ``arms`` points (scrambled Sobol) and each new
trial gets the arm with the highest UCB. Every distribution is handled jointly: floats and ints
on a linear or log scale, stepped floats and ints (as integers counting steps), categoricals
(one-hot, see :mod:`distgp.bandit.spaces`). Parameters outside the joint space (those first seen
in this trial, or conditional ones) are drawn by ``independent_sampler``, with a warning
(``warn_independent_sampling=False`` silences it). A completed trial holding a value outside
its distribution (enqueued: Optuna completes it with a warning) is left out of the model, with
a warning. Algorithm: ``docs/bkb.md``.

Lifecycle (Optuna's call order within a trial), all under one lock so that ``n_jobs`` worker
threads share the sampler safely:

* ``sample_relative``: the bandit is first told every completed trial it has not seen (trials
  added with ``study.add_trial``, or finished by another process), then asked for one arm,
  which stays pending (hallucinated), so concurrent trials get different arms;
* ``after_trial``: a completed trial's value is told (negated for ``minimize``: BKB maximises);
  a failed or pruned trial is told as a failure: its arm is never proposed again and the model
  counts it as the worst value so far (``impute_failed``, :mod:`distgp.bandit.base`), so the
  search leaves regions where trials fail or are pruned (TPE also ranks pruned trials below
  completed ones). Left pending, such a trial kept the highest UCB and was proposed again and
  again.

Arms are not proposed twice (``repeat=False``): a repeated configuration of a deterministic
objective teaches nothing. Pass ``repeat=True`` for a noisy one. A sampler holds its bandit's
state, so it serves one study; a second study gets a ``ValueError`` (an unpickled copy serves
the study it is next used with, e.g. one holding the same trials).

A new joint space starts a new bandit, told every completed trial; a trial still running on
the old bandit is told to the new one when it completes. Multi-objective studies are refused
with a ``ValueError``.

Example::

    import optuna
    from distgp.integrations.optuna import BKBSampler

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_int("y", 0, 10)
        return (x - 1) ** 2 + (y - 3) ** 2

    study = optuna.create_study(sampler=BKBSampler(seed=0))
    study.optimize(objective, n_trials=30, n_jobs=2)
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from distgp.bandit.spaces import CategoricalParam, FloatParam, IntParam, Param
from distgp.exceptions import InputDataError
from distgp.integrations.common import ParamBandit, check_options

_INDEPENDENT_WARNING = (
    "BKBSampler samples parameter '{param}' of trial {trial} with {sampler} because it is not in "
    "the joint search space of the completed trials. Set warn_independent_sampling=False to "
    "silence this warning."
)
_OUTSIDE_WARNING = (
    "BKBSampler leaves completed trial {trial} out of its model: {error} (an enqueued value "
    "outside the distribution)"
)


class BKBSampler(BaseSampler):
    """Optuna sampler driven by BKB (single-objective studies).

    Args:
        arms: number of arms the joint space is discretised into.
        seed: seed of the arms, the bandit and the default independent sampler.
        algorithm: ``bkb`` or ``gpucb`` (exact, for comparisons).
        independent_sampler: samples parameters outside the joint space (default
            ``RandomSampler(seed=seed)``).
        warn_independent_sampling: warn when a parameter goes to ``independent_sampler`` after
            the first completed trial.
        **options: bandit options (:class:`~distgp.bandit.base.ArmBandit`, ``qbar``, ``kernel``).
    """

    def __init__(
        self,
        *,
        arms: int = 2000,
        seed: int | None = None,
        algorithm: str = "bkb",
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        **options: Any,
    ) -> None:
        check_options(seed, algorithm, options, arms)
        self._arms = arms
        self._seed = seed
        self._algorithm = algorithm
        self._options = {"repeat": False, **options}
        self._warn = warn_independent_sampling
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._search_space = IntersectionSearchSpace()
        self._lock = threading.Lock()
        self._bandit: ParamBandit | None = None
        self._codecs: dict[str, _Codec] = {}
        self._key: tuple | None = None
        self._told: set[int] = set()
        self._outside: set[int] = set()  # completed trials with a value outside the space
        self._pending: dict[int, tuple[ParamBandit, int]] = {}  # trial number -> (bandit, arm)
        self._study: tuple[str, int] | None = None  # the one study this sampler serves

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._study = None  # an unpickled copy serves the study it is used with next

    @property
    def bandit(self) -> ParamBandit | None:
        """The current bandit (``None`` before the first joint space)."""
        return self._bandit

    def reseed_rng(self) -> None:
        """Fresh randomness for the bandit (and the arms of later bandits) and the independent
        sampler; Optuna calls it in each ``n_jobs`` worker thread."""
        with self._lock:
            self._seed = int(np.random.SeedSequence().entropy % 2**32)
            if self._bandit is not None:
                self._bandit.bandit.reseed(self._seed)
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._raise_error_if_multi_objective(study)
        with self._lock:  # IntersectionSearchSpace caches state between calls
            self._check_study(study)
            space = self._search_space.calculate(study)
        return {n: d for n, d in space.items() if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        search_space = {n: d for n, d in search_space.items() if not d.single()}
        if not search_space:
            return {}
        with self._lock:
            bandit = self._bandit_for(search_space)
            self._catch_up(study, bandit)
            if bandit.exhausted:  # every arm tried (a small discrete space): the best again
                values = bandit.params_of(bandit.best_arm())
                return {name: self._codecs[name].decode(v) for name, v in values.items()}
            ((arm, values),) = bandit.ask(1)
            self._pending[trial.number] = (bandit, arm)
        return {name: self._codecs[name].decode(v) for name, v in values.items()}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        if self._warn and any(
            t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
        ):
            optuna.logging.get_logger(__name__).warning(
                _INDEPENDENT_WARNING.format(
                    param=param_name,
                    trial=trial.number,
                    sampler=type(self._independent_sampler).__name__,
                )
            )
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        with self._lock:
            bandit, arm = self._pending.pop(trial.number, (None, -1))
            current = self._bandit
            done = state == TrialState.COMPLETE and bool(values)
            if bandit is not None and bandit is not current:
                bandit.cancel(arm)  # asked on an earlier joint space
                bandit = None
            if bandit is not None and not done:
                bandit.tell(arm, math.nan)  # failed or pruned: counted as the worst value
                bandit = None
            if done and current is not None and trial.number not in self._told:
                # a trial sampled before this bandit existed is told here too, so that every
                # completed trial is told once, when it completes
                arm = arm if bandit is not None else self._arm_of(trial)
                if arm is not None:
                    current.tell(arm, _sign(study) * values[0])
                    self._told.add(trial.number)
        self._independent_sampler.after_trial(study, trial, state, values)

    # --- under the lock ----------------------------------------------------------------------

    def _check_study(self, study: Study) -> None:
        key = (study.study_name, study._study_id)
        if self._study is None:
            self._study = key
        elif key != self._study:
            raise ValueError(
                f"this BKBSampler serves study {self._study[0]!r}; its bandit holds that study's "
                f"trials, so give study {key[0]!r} a sampler of its own"
            )

    def _bandit_for(self, search_space: dict[str, BaseDistribution]) -> ParamBandit:
        key = tuple(sorted((n, repr(d)) for n, d in search_space.items()))
        if key != self._key or self._bandit is None:
            codecs = {n: _Codec(n, d) for n, d in sorted(search_space.items())}
            self._bandit = ParamBandit(
                [c.param for c in codecs.values()],
                self._arms,
                self._seed,
                self._algorithm,
                **dict(self._options),
            )
            self._codecs, self._key, self._told = codecs, key, set()
        return self._bandit

    def _catch_up(self, study: Study, bandit: ParamBandit) -> None:
        """Tell ``bandit`` every completed trial of the joint space it has not been told."""
        sign = _sign(study)
        for past in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if past.number not in self._told:
                arm = self._arm_of(past)
                if arm is not None:
                    bandit.tell(arm, sign * float(past.value))
                    self._told.add(past.number)

    def _arm_of(self, trial: FrozenTrial) -> int | None:
        """The current bandit's arm of ``trial``'s parameters, or ``None`` when the trial lacks
        a parameter of the joint space, drew it from another distribution or holds a value
        outside it (an enqueued one; warned once per trial)."""
        assert self._bandit is not None
        if not all(trial.distributions.get(n) == c.distribution for n, c in self._codecs.items()):
            return None
        try:
            params = {n: c.encode(trial.params[n]) for n, c in self._codecs.items()}
            return self._bandit.arm_of(params)
        except InputDataError as error:
            if trial.number not in self._outside:
                self._outside.add(trial.number)
                optuna.logging.get_logger(__name__).warning(
                    _OUTSIDE_WARNING.format(trial=trial.number, error=error)
                )
            return None


def _sign(study: Study) -> float:
    return -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0


class _Codec:
    """One Optuna distribution as a bandit parameter, and back.

    Stepped floats and ints become integer step counts ``k`` (value ``low + k * step``), so
    arms sit on the grid; categorical choices become their indices (Optuna's internal
    representation), so choices that Python calls equal (``1`` and ``True``), which Optuna
    records as the first of them, are one arm and refuse nothing; everything else maps one to
    one.
    """

    def __init__(self, name: str, d: BaseDistribution) -> None:
        self.distribution = d
        self.step: float | None = None
        self.param: Param
        if isinstance(d, CategoricalDistribution):
            # Optuna's index of a choice is that of the first equal one (1, True and 1.0 are
            # one choice to it): one arm per index it can record
            self.param = CategoricalParam(
                name, tuple(sorted({int(d.to_internal_repr(c)) for c in d.choices}))
            )
        elif d.step is not None and not (isinstance(d, IntDistribution) and d.step == 1):
            self.step = float(d.step)
            steps = math.floor((d.high - d.low) / self.step + 1e-9)
            self.param = IntParam(name, 0.0, float(steps))
        elif isinstance(d, IntDistribution):
            self.param = IntParam(name, float(d.low), float(d.high), bool(d.log))
        else:
            assert isinstance(d, FloatDistribution)
            self.param = FloatParam(name, float(d.low), float(d.high), bool(d.log))

    def encode(self, value: Any) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return int(d.to_internal_repr(value))
        if self.step is None:
            return value
        return round((float(value) - d.low) / self.step)

    def decode(self, value: Any) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.to_external_repr(value)
        if self.step is not None:
            value = min(d.low + int(value) * self.step, d.high)
        if isinstance(d, IntDistribution):
            return round(value)
        return float(value)
