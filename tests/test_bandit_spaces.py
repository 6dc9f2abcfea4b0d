"""Search spaces: arms, encoding, validation, local arms; the bandit kernels."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.bandit.kernels import GSMPArmKernel, RBFKernel, kernel_from_state
from distgp.bandit.spaces import (
    CategoricalParam,
    FiniteSpace,
    FloatParam,
    IntParam,
    ParamSpace,
    space_from_mapping,
)
from distgp.exceptions import ConfigError, InputDataError


def mixed_space(count: int = 500) -> ParamSpace:
    return ParamSpace(
        [
            FloatParam("lr", 1e-4, 1e-1, log=True),
            IntParam("layers", 1, 4),
            CategoricalParam("act", ("relu", "tanh", "gelu")),
            FloatParam("dropout", 0.0, 0.5),
        ],
        count=count,
        seed=0,
    )


def test_arms_are_encoded_in_the_unit_cube_and_decode_to_valid_values():
    space = mixed_space()
    assert space.dims == 1 + 1 + 3 + 1
    assert len(space) == 500 and np.all((space.arms >= 0) & (space.arms <= 1))
    assert np.all(space.arms[:, 2:5].sum(1) == 1)
    for i in range(0, 500, 37):
        p = space.decode(i)
        assert 1e-4 <= p["lr"] <= 1e-1 and p["layers"] in (1, 2, 3, 4)
        assert p["act"] in ("relu", "tanh", "gelu") and 0 <= p["dropout"] <= 0.5
        np.testing.assert_allclose(space.encode(p), space.arms[i], atol=1e-12)
    assert space.find(space.arms[17]) == 17


def test_same_seed_same_arms():
    np.testing.assert_array_equal(mixed_space().arms, mixed_space().arms)
    other = ParamSpace(mixed_space().params, count=500, seed=1)
    assert not np.array_equal(other.arms, mixed_space().arms)


def test_small_discrete_spaces_are_enumerated():
    space = ParamSpace([IntParam("a", 0, 2), CategoricalParam("b", ("x", "y"))], count=100)
    assert len(space) == 6
    assert {tuple(space.decode(i).values()) for i in range(6)} == {
        (a, b) for a in (0, 1, 2) for b in ("x", "y")
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FloatParam("x", 1.0, 1.0), "zero width"),
        (lambda: FloatParam("x", 2.0, 1.0), "low .* must be below high"),
        (lambda: FloatParam("x", 0.0, 1.0, log=True), "log scale needs low > 0"),
        (lambda: IntParam("n", -1, 5, log=True), "log scale needs low > 0"),
        (lambda: ParamSpace([FloatParam("x", 0, 1)], count=1), "at least 2 arms"),
        (lambda: ParamSpace([FloatParam("x", 0, 1)], count=2.5), "a whole number of at least 2"),
        (lambda: ParamSpace([CategoricalParam("c", ("a",))], count=10), "at least 2 arms"),
        (lambda: FiniteSpace(np.ones((5, 2))), "at least 2 arms"),
        (lambda: ParamSpace([FloatParam("x", 0, 1), FloatParam("x", 0, 2)]), "unique"),
        (lambda: space_from_mapping({"x": {"low": 0, "high": 1, "scale": 2}}, 10), "unknown key"),
        (lambda: space_from_mapping({"x": {"type": "bool"}}, 10), "float, int or categorical"),
        (lambda: CategoricalParam("c", (1, 1.0)), "choices 1 and 1.0 are equal"),
        (lambda: CategoricalParam("c", (float("nan"), 2.0)), "cannot be NaN"),
        (
            lambda: ParamSpace([FloatParam(f"x{i}", 0, 1) for i in range(21202)], count=2),
            "at most 21201 encoded dimensions.*arms.method: random",
        ),
    ],
)
def test_bad_spaces_raise_one_line_config_errors(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_space_from_mapping():
    space = space_from_mapping(
        {
            "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "n": {"type": "int", "low": 1, "high": 8},
            "act": {"choices": ["relu", "tanh"]},
        },
        count=64,
        seed=3,
    )
    assert space.names == ["lr", "n", "act"] and len(space) == 64
    with pytest.raises(InputDataError, match="outside"):
        space.encode({"lr": 1.0, "n": 2, "act": "relu"})
    with pytest.raises(InputDataError, match="missing"):
        space.encode({"lr": 0.01})


@pytest.mark.parametrize("low", [True, np.bool_(False)])
def test_a_bool_bound_is_no_number(low):
    with pytest.raises(InputDataError, match=r"^space\.x\.low=\S+ is not a number$"):
        space_from_mapping({"x": {"low": low, "high": 3}}, 10)


def test_local_arms_stay_valid_and_near():
    space = mixed_space()
    row = space.arms[5]
    near = space.around(row, 50, 0.05, np.random.default_rng(0))
    assert near.shape == (50, space.dims)
    np.testing.assert_array_equal(near[:, 2:5], np.tile(row[2:5], (50, 1)))
    assert np.abs(near[:, [0, 5]] - row[[0, 5]]).max() < 0.5
    for r in near[:5]:
        np.testing.assert_allclose(space.encode(space.decode_row(r)), r, atol=1e-12)


def test_finite_space():
    pts = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 30.0], [2.0, 30.0]])
    space = FiniteSpace(pts, names=["a", "b"])
    assert len(space) == 3
    np.testing.assert_allclose(space.arms, [[0, 0], [0.5, 0], [1, 1]])
    assert space.decode(2) == {"a": 2.0, "b": 30.0}
    with pytest.raises(ConfigError, match="finite candidate set"):
        space.around(space.arms[0], 3, 0.1, np.random.default_rng(0))


def test_rbf_kernel():
    k = RBFKernel([0.5, 2.0], variance=2.0)
    A, B = np.array([[0.0, 0.0]]), np.array([[0.5, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(k(A, B), [[2.0 * np.exp(-1.0), 2.0]])
    np.testing.assert_allclose(k.diag(B), [2.0, 2.0])
    with pytest.raises(ConfigError):
        RBFKernel(0.0)
    assert isinstance(kernel_from_state(k.to_state()), RBFKernel)


def test_gsmp_kernel_adapter_matches_the_bank():
    from distgp.data import Scaler
    from distgp.kernels.bank import SubKernelBank
    from distgp.kernels.grid import data_grid

    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    scaler = Scaler(np.full(2, 0.5), np.full(2, 0.3), 0.0, 1.0)
    grid = data_grid(30, 2, components=12, levels=2)
    weights = rng.random(grid.components)
    k = GSMPArmKernel(grid, scaler, weights)
    K = k(X[:5], X)
    expected = SubKernelBank(scaler.x(X), grid).cross(scaler.x(X[:5]), weights)
    np.testing.assert_allclose(K, expected)
    np.testing.assert_allclose(np.diag(k(X, X)), k.diag(X), rtol=1e-10)
    again = kernel_from_state(k.to_state())
    np.testing.assert_allclose(again(X[:5], X), K)
