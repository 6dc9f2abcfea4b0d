"""BKBSampler against Optuna's own sampler test suite (optuna 5.0.0, pinned in the dev extras).

Upstream's ``tests/samplers_tests/test_samplers.py`` runs every built-in sampler through the
conformance classes that Optuna ships in ``optuna.testing.pytest_samplers``; the classes are
imported from the installed package here (byte-identical to ``v5.0.0-rc1`` and to the
``master`` of the same release), each with a ``sampler`` fixture giving BKB variants:

* ``BasicSamplerTestCase``, ``RelativeSamplerTestCase``, ``SingleOnlySamplerTestCase``: all run.
* ``MultiObjectiveSamplerTestCase``: N/A, BKB is single-objective; that multi-objective studies
  are refused is ``SingleOnlySamplerTestCase``.

The module-level tests of that file (tag ``v5.0.0-rc1``; the mirror has no ``v5.0.0`` tag) are
ported below with BKB in place of the built-in samplers, each named after its upstream test:

* ``test_sampler_reseed_rng``: BKB's randomness is a numpy ``Generator`` inside the bandit, not
  an Optuna ``LazyRandomState`` (expected_has_rng False, as for ``QMCSampler``); it has an
  independent sampler (expected_has_another_sampler True), which ``reseed_rng`` reseeds once.
* ``test_reseed_rng_change_sampling``, ``test_reproducible`` (both objectives),
  ``test_reproducible_in_other_process``: ported as is (the last is ``slow`` upstream and here).
* ``test_pickle_random_sampler``: ported as a pickle round trip that continues the same stream.
* ``test_sample_relative``: N/A (it tests Optuna's ``FixedSampler`` helper, not a sampler).
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from unittest.mock import patch

import pytest

optuna = pytest.importorskip("optuna")

from optuna.samplers import BaseSampler  # noqa: E402
from optuna.samplers._lazy_random_state import LazyRandomState  # noqa: E402
from optuna.testing.pytest_samplers import (  # noqa: E402
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from distgp.integrations.optuna import BKBSampler  # noqa: E402

ARMS = 200  # small arm sets keep every suite test fast


def bkb(seed: int | None = None, **options) -> BKBSampler:
    return BKBSampler(seed=seed, arms=ARMS, warn_independent_sampling=False, **options)


SAMPLERS = [
    pytest.param(lambda: bkb(), id="BKB"),
    pytest.param(lambda: bkb(algorithm="gpucb"), id="GP-UCB"),
    pytest.param(lambda: bkb(batch=True), id="batch-BKB"),
]


class TestBasicSampler(BasicSamplerTestCase):
    @pytest.fixture(params=SAMPLERS)
    def sampler(self, request) -> Callable[[], BaseSampler]:
        return request.param


class TestRelativeSampler(RelativeSamplerTestCase):
    @pytest.fixture(params=SAMPLERS)
    def sampler(self, request) -> Callable[[], BaseSampler]:
        return request.param


class TestSingleOnlySampler(SingleOnlySamplerTestCase):
    @pytest.fixture(params=SAMPLERS)
    def sampler(self, request) -> Callable[[], BaseSampler]:
        return request.param


def seven_parameters(trial) -> tuple:
    """The objective's parameters of upstream's reproducibility tests."""
    return (
        trial.suggest_float("a", 1, 9),
        trial.suggest_float("b", 1, 9, log=True),
        trial.suggest_float("c", 1, 9, step=1),
        trial.suggest_int("d", 1, 9),
        trial.suggest_int("e", 1, 9, log=True),
        trial.suggest_int("f", 1, 9, step=2),
        trial.suggest_categorical("g", range(1, 10)),
    )


def run_study(sampler: BaseSampler, objective=lambda *args: sum(args), trials: int = 15):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: objective(*seven_parameters(t)), n_trials=trials)
    return study


def test_sampler_reseed_rng():
    sampler = bkb(seed=0)
    assert not any(isinstance(a, LazyRandomState) for a in vars(sampler).values())
    others = [n for n, a in vars(sampler).items() if isinstance(a, BaseSampler)]
    assert others == ["_independent_sampler"]
    inner = sampler._independent_sampler
    before = str(inner._rng.rng.get_state())
    with patch.object(inner, "reseed_rng", wraps=inner.reseed_rng) as mock:
        sampler.reseed_rng()
        assert mock.call_count == 1
    assert str(inner._rng.rng.get_state()) != before


def test_reseed_rng_change_sampling():
    study = run_study(bkb(seed=1))
    reseeded = bkb(seed=1)
    reseeded.reseed_rng()
    other = run_study(reseeded)
    assert any(a.params != b.params for a, b in zip(study.trials, other.trials, strict=True))


@pytest.mark.parametrize("objective", [lambda *args: sum(args), lambda *args: 0.0])
def test_reproducible(objective):
    study = run_study(bkb(seed=1), objective)
    same = run_study(bkb(seed=1), objective)
    assert [t.params for t in study.trials] == [t.params for t in same.trials]
    other = run_study(bkb(seed=2), objective)
    assert any(a.params != b.params for a, b in zip(study.trials, other.trials, strict=True))


def run_optimize(k: int, sequences) -> None:
    """Module level so that a spawned process can unpickle it (as upstream's)."""
    study = run_study(bkb(seed=1))
    sequences[k] = list(study.trials[-1].params.values())


@pytest.mark.slow
def test_reproducible_in_other_process(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        sequences = manager.dict()
        for k in range(3):
            process = context.Process(target=run_optimize, args=(k, sequences))
            process.start()
            process.join()
        assert sequences[0] == sequences[1] == sequences[2]


def test_pickle_continues_the_same_stream():
    study = run_study(bkb(seed=0), trials=6)
    restored = pickle.loads(pickle.dumps(study.sampler))
    twin = optuna.create_study(sampler=restored)
    for trial in study.trials:
        twin.add_trial(trial)
    study.optimize(lambda t: sum(seven_parameters(t)), n_trials=3)
    twin.optimize(lambda t: sum(seven_parameters(t)), n_trials=3)
    assert [t.params for t in study.trials[6:]] == [t.params for t in twin.trials[6:]]
