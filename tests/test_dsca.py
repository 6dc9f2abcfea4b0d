"""DSCA: monotone descent, closed form vs cvxpy SOCP, KKT at the end, sparsity on sinusoids."""

from __future__ import annotations

import numpy as np
import pytest

from distgp.kernels import SubKernelBank, data_grid
from distgp.learn import (
    ClosedFormSolver,
    ConicSolver,
    DSCAOptions,
    LocalObjective,
    ProximalTerm,
    dsca,
    kkt_violation,
)
from distgp.learn.dsca import GAIN_WINDOW, SolveState, block_partition
from distgp.learn.solvers import positive_cubic_root
from tests.helpers import sinusoids


def small_problem(n=30, components=8, seed=1):
    x, y = sinusoids(n, seed=seed, noise=0.1)
    z = (x - x.mean()) / x.std()
    y = (y - y.mean()) / y.std()
    grid = data_grid(n, 1, components=components, slow=0)
    return LocalObjective(SubKernelBank(z, grid), y, noise_floor=1e-3)


def start(objective):
    return np.r_[np.full(objective.M, 0.5 / objective.M), 0.5]


def sinusoid_objective(n, components):
    """Three sinusoids with little noise (``tests.helpers.sinusoids``), a data grid of
    ``components`` lines; returns the objective and each line's frequency in cycles per sample."""
    x, y = sinusoids(n, noise=0.05)
    z = (x - x.mean()) / x.std()
    grid = data_grid(n, 1, components=components, slow=0)
    objective = LocalObjective(SubKernelBank(z, grid), (y - y.mean()) / y.std(), noise_floor=1e-3)
    return objective, grid.means[:, 0] / x.std()


def test_cubic_root_solves_the_stationarity_condition(rng):
    a = rng.uniform(0, 2, size=50)
    b = rng.normal(size=50)
    rho = 1.7
    t = positive_cubic_root(rho, b, a)
    assert np.all(t >= 0)
    pos = a > 0
    assert np.allclose(rho * t[pos] ** 3 + b[pos] * t[pos] ** 2, a[pos], atol=1e-10)
    # the root minimises a/t + b t + rho/2 t^2 over t > 0
    f = lambda s: a / s + b * s + rho / 2 * s**2  # noqa: E731
    assert np.all(f(t[pos] * 1.001)[pos] >= f(t[pos])[pos] - 1e-12)
    assert np.allclose(positive_cubic_root(0.0, np.array([4.0]), np.array([9.0])), 1.5)
    assert np.allclose(positive_cubic_root(2.0, np.array([-3.0, 1.0]), np.zeros(2)), [1.5, 0.0])


@pytest.mark.parametrize(
    "solver,blocks",
    [
        (ClosedFormSolver(1), 1),
        (ClosedFormSolver(1), 4),
        (ClosedFormSolver(3), 3),
        (ConicSolver(), 2),
    ],
)
def test_objective_never_increases(solver, blocks):
    objective = small_problem()
    result = dsca(
        objective, start(objective), solver, DSCAOptions(max_iterations=15, blocks=blocks)
    )
    history = np.array(result.history)
    assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1]))
    assert history[-1] < history[0]


@pytest.mark.parametrize("rho", [0.0, 5.0])
def test_one_closed_form_sweep_is_the_same_for_any_partition(rho):
    """A single closed-form sweep is elementwise, so DSCA solves all blocks in one call; the
    blockwise sweep (a solver not marked separable) must give the same iterates."""

    class Blockwise(ClosedFormSolver):
        separable = False

    objective = small_problem()
    theta0 = start(objective)
    penalty = ProximalTerm(np.zeros(objective.dim), rho, theta0 * 1.1) if rho else None
    options = DSCAOptions(max_iterations=20, blocks=4)
    assert ClosedFormSolver(1).separable and not ClosedFormSolver(2).separable
    joint = dsca(objective, theta0, ClosedFormSolver(1), options, penalty=penalty)
    blockwise = dsca(objective, theta0, Blockwise(1), options, penalty=penalty)
    assert joint.iterations == blockwise.iterations
    assert np.allclose(joint.history, blockwise.history, rtol=1e-13, atol=0)
    assert np.allclose(joint.theta, blockwise.theta, rtol=1e-12, atol=1e-300)


def test_closed_form_and_cvxpy_reach_the_same_objective():
    objective = small_problem()
    options = DSCAOptions(max_iterations=3000, tol=1e-12, blocks=2, prune_tol=0.0, min_gain=0)
    fast = dsca(objective, start(objective), ClosedFormSolver(1), options)
    socp = dsca(
        objective,
        start(objective),
        ConicSolver(),
        DSCAOptions(max_iterations=200, tol=1e-11, blocks=2, prune_tol=0.0, min_gain=0),
    )
    assert fast.loss == pytest.approx(socp.loss, rel=1e-4)


def test_kkt_conditions_hold_at_the_end():
    objective = small_problem()
    options = DSCAOptions(max_iterations=4000, tol=1e-12, kkt_tol=1e-4, prune_tol=1e-6, min_gain=0)
    result = dsca(objective, start(objective), options=options)
    assert result.converged
    assert kkt_violation(objective, result.theta, result.factorization) < 1e-3


def test_proximal_term_pulls_to_the_anchor():
    objective = small_problem()
    anchor = start(objective) * 1.3
    penalty = ProximalTerm(np.zeros(objective.dim), 1e6, anchor)
    result = dsca(
        objective, start(objective), options=DSCAOptions(max_iterations=30), penalty=penalty
    )
    assert np.allclose(result.theta, anchor, rtol=1e-2, atol=1e-4)
    history = np.array(result.history)
    assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1]))


def test_three_sinusoids_put_the_weight_on_the_true_frequencies():
    objective, freqs = sinusoid_objective(240, 200)
    result = dsca(objective, start(objective), options=DSCAOptions(max_iterations=400))
    weights = result.theta[:-1]
    truth = np.array([1 / 12.0, 1 / 6.4, 1 / 33.0])
    spacing = freqs[1] - freqs[0]
    near = np.zeros_like(weights, dtype=bool)
    for f in truth:
        near |= np.abs(freqs - f) <= 1.5 * spacing
        assert weights[np.abs(freqs - f) <= 1.5 * spacing].sum() > 0.05
    assert weights[near].sum() > 0.95 * weights.sum()
    assert np.count_nonzero(weights > 0.01 * weights.max()) <= 6  # sparse: a few lines only


def test_block_partition_is_consecutive_and_complete():
    parts = block_partition(np.array([1, 3, 4, 7, 9, 10, 12]), 3)
    assert [list(p) for p in parts] == [[1, 3, 4], [7, 9], [10, 12]]
    assert len(block_partition(np.array([5]), 4)) == 1


@pytest.mark.parametrize("min_gain", [DSCAOptions.min_gain, 1e6])
def test_pruned_frequencies_re_enter_without_raising_the_objective(min_gain):
    objective, freqs = sinusoid_objective(120, 60)
    line = np.abs(freqs - 1 / 12.0) <= 3.5 * (freqs[1] - freqs[0])
    theta0 = start(objective)
    theta0[:-1][line] = 0.0  # the strongest line starts pruned: only a revival brings it back
    # a coarse pruning threshold: violators entering at 10 x it together would raise l;
    # min_gain 1e6 nats: every window counts as settled, and still the line re-enters
    options = DSCAOptions(max_iterations=400, prune_tol=0.02, min_gain=min_gain)
    result = dsca(objective, theta0, options=options)
    history = np.array(result.history)
    assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1]))
    assert result.theta[:-1][line].sum() > 0.2 * result.theta[:-1].sum()


def test_a_slow_tail_that_gains_little_ends_early():
    objective, _ = sinusoid_objective(240, 200)
    full = dsca(objective, start(objective), options=DSCAOptions(max_iterations=400, min_gain=0))
    short = dsca(
        objective, start(objective), options=DSCAOptions(max_iterations=400, min_gain=0.05)
    )
    assert short.converged and short.iterations < full.iterations
    history = np.array(short.history)
    assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1]))
    assert 0.5 * (history[-GAIN_WINDOW - 1] - history[-1]) < 0.05  # the last window gained little
    assert 0.5 * (short.value - full.value) < 1.0  # nats of evidence left behind


def test_little_gain_does_not_stop_an_admm_local_solve():
    objective = small_problem()
    penalty = ProximalTerm(np.zeros(objective.dim), 0.1, start(objective) * 1.3)
    runs = [
        dsca(objective, start(objective), options=DSCAOptions(60, min_gain=g), penalty=penalty)
        for g in (0.0, 1e6)  # 1e6 nats: every window of an evidence fit would count as settled
    ]
    assert [r.iterations for r in runs] == [60, 60]
    assert np.array_equal(runs[0].theta, runs[1].theta)


@pytest.mark.parametrize("chunk", [7, 23])
def test_a_solve_run_in_chunks_takes_the_same_steps_as_one_call(chunk):
    """``distgp fit`` runs DSCA in chunks (progress and checkpoints between them); with the
    state each call hands on (min_gain's window, the over-relaxation, the revivals made) the
    chunks take the same steps and stop at the same iteration as one call."""
    objective, _ = sinusoid_objective(240, 200)
    options = DSCAOptions(max_iterations=400)
    whole = dsca(objective, start(objective), options=options)
    assert 2 * chunk < whole.iterations  # several chunks, the last one cut short
    theta, state, iterations, history = start(objective), None, 0, []
    while True:
        part = dsca(objective, theta, options=DSCAOptions(max_iterations=chunk), state=state)
        theta, state = part.theta, SolveState.from_wire(part.state.to_wire())
        iterations += part.iterations
        history += part.history if not history else part.history[1:]
        if part.converged or iterations >= options.max_iterations:
            break
    assert iterations == whole.iterations
    np.testing.assert_array_equal(theta, whole.theta)
    np.testing.assert_array_equal(history, whole.history)
