"""Built-in test functions: optima, bounds, names, noise."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.bandit.functions import Ackley, Branin, Hartmann6, Levy, get_function
from distgp.exceptions import ConfigError, InputDataError

FUNCTIONS = [Branin(), Hartmann6(), Ackley(), Ackley(5), Levy(), Levy(8)]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_optimal_value_at_every_optimizer(fn):
    values = fn.evaluate_true(fn.optimizers)
    np.testing.assert_allclose(values, fn.optimal_value, atol=1e-5)
    assert fn.optimizers.shape == (len(fn._optimizers), fn.dim)
    assert fn.bounds.shape == (fn.dim, 2)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_optimum_beats_random_points(fn):
    lo, hi = fn.bounds.T
    X = lo + (hi - lo) * np.random.default_rng(0).random((500, fn.dim))
    assert fn.evaluate_true(X).min() > fn.optimal_value - 1e-9


def test_known_values():
    assert Branin().evaluate_true(np.array([0.0, 0.0])) == pytest.approx(55.60211264)
    # w = 0.75 everywhere: sin^2(0.75 pi) + 2 (w-1)^2 (1 + 10 sin^2(0.75 pi + 1)) + (w-1)^2 (1 + 1)
    levy = 0.5 + 2 * 0.0625 * (1 + 10 * np.sin(0.75 * np.pi + 1) ** 2) + 0.125
    assert Levy(3).evaluate_true(np.zeros(3)) == pytest.approx(levy)
    assert Ackley(3).evaluate_true(np.ones(3)) == pytest.approx(3.6253849, rel=1e-6)


def test_shapes_and_bounds_are_validated():
    fn = Branin()
    assert fn.evaluate_true(np.zeros((4, 2))).shape == (4,)
    with pytest.raises(InputDataError, match="expects points with 2 coordinates"):
        fn.evaluate_true(np.zeros((4, 3)))
    with pytest.raises(InputDataError, match="outside the bounds"):
        fn.evaluate_true(np.array([11.0, 0.0]))


def test_names():
    assert get_function("branin").dim == 2
    assert get_function("hartmann6").dim == 6
    assert get_function("ackley").dim == 2
    assert get_function("ackley5").dim == 5
    assert get_function("LEVY8").name == "levy8"
    for bad in ("rosenbrock", "ackley0", "levy-3", ""):
        with pytest.raises(ConfigError):
            get_function(bad)


def test_noise_is_seeded():
    fn = get_function("hartmann6", noise_std=0.1)
    x = np.full(6, 0.5)
    a = fn(x, rng=np.random.default_rng(1))
    b = fn(x, rng=np.random.default_rng(1))
    assert a == b and a != fn.evaluate_true(x)
    with pytest.raises(ConfigError):
        Branin(noise_std=-1.0)
