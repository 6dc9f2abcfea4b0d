"""BKB, batch BKB and exact GP-UCB: exactness, dictionary size, lifecycle, beta, state."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from distgp.bandit import BKB, GPUCB, RBFKernel
from distgp.bandit.base import ArmBandit, batch_beta, practical_beta, theory_beta, ucb_scores
from distgp.bandit.nystrom import DTCState, arm_bytes, check_arm_memory
from distgp.exceptions import ConfigError, InputDataError, ModelFileError


def smooth(X: np.ndarray) -> np.ndarray:
    return np.sin(3 * X[:, 0]) * np.cos(2 * X[:, 1]) + 0.5 * X[:, 0]


@pytest.fixture
def arms() -> np.ndarray:
    return np.random.default_rng(0).random((300, 2))


def run(bandit: ArmBandit, f, steps: int, noise: float = 0.05, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = bandit.ask()
        bandit.tell(idx, f(bandit.arms[idx]) + noise * rng.standard_normal(len(idx)))


# --- exactness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "resparsify"), [(False, 2.0), (True, 2.0), (False, 1.0)])
def test_bkb_with_every_pull_in_the_dictionary_equals_exact_gpucb(arms, batch, resparsify):
    kernel = RBFKernel(0.3)
    bkb = BKB(arms, kernel, qbar=1e12, seed=3, batch=batch, resparsify=resparsify)
    exact = GPUCB(arms, kernel, seed=3, batch=batch)
    rng = np.random.default_rng(1)
    for _ in range(25):
        a, b = bkb.ask(), exact.ask()
        np.testing.assert_array_equal(a, b)
        y = smooth(arms[a]) + 0.05 * rng.standard_normal(len(a))
        bkb.tell(a, y)
        exact.tell(b, y)
        m1, v1 = bkb.posterior()
        m2, v2 = exact.posterior()
        np.testing.assert_allclose(m1, m2, rtol=0, atol=1e-8)
        np.testing.assert_allclose(v1, v2, rtol=0, atol=1e-8)
        assert bkb.beta == pytest.approx(exact.beta, rel=1e-10)
    assert set(bkb.dictionary.tolist()) == set(bkb.history["arm"].tolist())


def test_hallucinated_asks_match_exact_gp_bucb(arms):
    kernel = RBFKernel(0.3)
    bkb, exact = BKB(arms, kernel, qbar=1e12, seed=0), GPUCB(arms, kernel, seed=0)
    for _ in range(6):
        a, b = bkb.ask(5), exact.ask(5)
        np.testing.assert_array_equal(a, b)
        bkb.tell(a, smooth(arms[a]))
        exact.tell(b, smooth(arms[b]))


def _dtc_variance(K: np.ndarray, S: list[int], n: np.ndarray, lam: float) -> np.ndarray:
    """The DTC variance (divided by lam) of every arm on dictionary ``S``, from scratch."""
    s, U = np.linalg.eigh(K[np.ix_(S, S)])
    keep = s > s[-1] * len(s) * np.finfo(float).eps
    Z = K[:, S] @ (U[:, keep] / np.sqrt(s[keep]))
    V = Z.T @ (Z * n[:, None]) + lam * np.eye(Z.shape[1])
    resid = np.diag(K) - (Z**2).sum(1)
    return np.maximum(resid / lam + ((Z @ np.linalg.inv(V)) * Z).sum(1), 0.0)


@pytest.mark.parametrize("seed", [189, 217])
def test_hallucinated_asks_with_a_sparse_dictionary_match_a_greedy_ucb_from_scratch(seed):
    """lam = 1 and qbar = 1 keep the dictionary sparse, so hallucinated pulls grow the working
    span, which can raise other arms' variances: the lazy search's stale UCBs were no upper
    bounds and it proposed arms below the argmax (these seeds did)."""
    rng = np.random.default_rng(seed)
    X = rng.random((300, 2))
    kernel = RBFKernel(0.4)
    bandit = BKB(X, kernel, noise_variance=1.0, beta=3.0, qbar=1.0, initial=2, seed=seed)
    for _ in range(40):
        i = bandit.ask()
        bandit.tell(i, smooth(X[i]) + 0.1 * rng.standard_normal(1))
    mean, var = bandit.posterior()
    S, n = bandit.dictionary.tolist(), bandit._counts.astype(float)
    want = []
    for _ in range(6):
        arm = int(np.argmax(ucb_scores(mean, var, bandit.beta)))
        want.append(arm)
        n[arm] += 1
        S += [] if arm in S else [arm]
        var = _dtc_variance(kernel(X, X), S, n, bandit.lam)
    assert bandit.ask(6).tolist() == want


def test_exact_gpucb_matches_a_dense_gp(arms):
    lam = 0.01
    gp = GPUCB(arms, RBFKernel(0.3), noise_variance=lam, normalize_y=False, seed=0)
    run(gp, smooth, 15)
    h = gp.history
    X, y = arms[h["arm"]], h["y"]
    K = RBFKernel(0.3)(X, X) + lam * np.eye(len(y))
    k = RBFKernel(0.3)(arms, X)
    mean = k @ np.linalg.solve(K, y)
    var = (1.0 - np.einsum("ij,ji->i", k, np.linalg.solve(K, k.T))) / lam
    m, v = gp.posterior()
    np.testing.assert_allclose(m, mean, atol=1e-8)
    np.testing.assert_allclose(v, var, atol=1e-8)


def test_exact_gpucb_dictionary_counts_every_pull_across_a_kernel_change(arms):
    """Its factor is rebuilt lazily after a new kernel: the largest dictionary read 0."""
    gp = GPUCB(arms, RBFKernel(0.3), seed=0)
    run(gp, smooth, 6)
    gp.set_kernel(RBFKernel(0.2))
    assert gp.dictionary_size == gp.dictionary_size_max == 6


def test_bandit_arguments_of_the_wrong_kind_and_empty_arm_sets():
    arms = np.random.default_rng(0).uniform(size=(10, 2))
    with pytest.raises(ConfigError, match=r"max_batch must be a whole number, got 1\.5"):
        BKB(arms, batch=True, max_batch=1.5)
    bandit = BKB(arms, max_batch=np.int64(3))
    assert bandit.add_arms(np.empty((0, 2))).size == 0 and len(bandit.arms) == 10


@pytest.mark.parametrize("value", [True, np.bool_(True)])
@pytest.mark.parametrize("name", ["beta", "noise_variance", "lam", "qbar", "fnorm"])
def test_a_bool_is_no_bandit_setting(name, value):
    with pytest.raises(ConfigError, match=rf"^bandit\.{name} must be a number, got (np\.)?True_?$"):
        BKB(np.random.default_rng(0).uniform(size=(10, 2)), **{name: value})


@pytest.mark.parametrize("n", [True, np.bool_(True)])
def test_ask_refuses_a_bool_count(n):
    bandit = BKB(np.random.default_rng(0).uniform(size=(10, 2)), seed=0)
    with pytest.raises(ConfigError, match="ask needs a whole number n >= 1"):
        bandit.ask(n)


# --- dictionary --------------------------------------------------------------------------------


def test_dictionary_stays_far_below_t_on_a_smooth_function():
    arms = np.random.default_rng(0).random((2000, 2))
    bandit = BKB(arms, RBFKernel(0.4), beta=3.0, seed=0)
    run(bandit, smooth, 200)
    assert bandit.observations == 200
    assert 0 < bandit.dictionary_size_max <= 40
    assert bandit.rank <= bandit.dictionary_size


@pytest.mark.parametrize("batch", [False, True])
def test_incremental_updates_match_a_rebuild_from_scratch(batch):
    arms = np.random.default_rng(5).random((800, 3))
    bandit = BKB(arms, RBFKernel(0.4), beta=2.0, qbar=3.0, batch=batch, seed=1)
    rng = np.random.default_rng(0)
    while bandit.observations < 120:
        idx = bandit.ask(4)
        bandit.tell(idx, smooth(arms[idx]) + arms[idx, 2] + 0.05 * rng.standard_normal(len(idx)))
    bandit.posterior()
    assert bandit.rebuilds < 20  # mostly incremental: about log(T) / log(rho) resamplings
    mean, var = bandit.posterior()
    st = bandit._state
    scratch = DTCState(arms, bandit._kdiag, bandit.lam)
    scratch.n, scratch.ysum = st.n.copy(), st.ysum.copy()
    scratch.rebuild(bandit.kernel, arms, bandit._kdiag, st.atoms)
    np.testing.assert_allclose(scratch.variance(), var, rtol=1e-6, atol=1e-6 * var.max())
    np.testing.assert_allclose(scratch.mean(*bandit._y_standardisation()), mean, rtol=0, atol=1e-6)
    # and from the history alone (counts and sums by arm)
    assert st.n.sum() == bandit.observations and np.allclose(st.ysum, bandit._ysum)


def test_incremental_dictionary_is_resampled_when_too_large():
    arms = np.random.default_rng(0).random((1500, 2))
    lazy = BKB(arms, RBFKernel(0.3), beta=3.0, resparsify=1.2, seed=0)
    rng = np.random.default_rng(1)
    for a in rng.integers(len(arms), size=300):  # pulls spread everywhere: variances shrink
        lazy.tell(a, smooth(arms[[a]])[0] + 0.05 * rng.standard_normal())
        _, var = lazy.posterior()
        pulled = np.flatnonzero(lazy._counts)
        expected = np.minimum(3.0 * var[pulled] * lazy._counts[pulled], 1.0).sum()
        assert lazy.dictionary_size <= 1.2 * max(expected, 1.0)
    assert 1 <= lazy.rebuilds <= 10


def test_dictionary_is_never_empty(arms):
    bandit = BKB(arms, RBFKernel(0.3), qbar=1e-9, seed=0)
    run(bandit, smooth, 10)
    assert bandit.dictionary_size >= 1


# --- UCB and beta arithmetic -------------------------------------------------------------------


def test_ucb_scores_with_a_hand_computable_posterior():
    mean = np.array([0.5, 1.0, -1.0])
    var = np.array([1.0, 0.25, -1e-18])  # roundoff below zero counts as 0
    np.testing.assert_allclose(ucb_scores(mean, var, 2.0), [2.5, 2.0, -1.0])


def test_practical_and_theory_beta_by_hand():
    # sqrt(0.01)*2 + sqrt(0.04 * (log(e^2) * 3 + log(1/0.5)))
    # sqrt(lam) F + sqrt(xi^2 (log(t) I + log(1/delta))), t = 7, I = 3
    assert practical_beta(7, 3.0, 0.01, 0.04, 2.0, 0.5) == pytest.approx(
        0.1 * 2 + math.sqrt(0.04 * (math.log(7) * 3 + math.log(2)))
    )
    # eps = 0.5, alpha = 3:
    # 2 xi sqrt(alpha log(kappa2 t) I + log(1/delta)) + (1 + 1/sqrt(0.5)) sqrt(lam) F
    got = theory_beta(10, 2.0, 0.04, 0.09, 1.5, 0.1, 0.5, 1.0)
    want = (
        2 * 0.3 * math.sqrt(3 * math.log(10) * 2.0 + math.log(10))
        + (1 + 1 / math.sqrt(0.5)) * 0.2 * 1.5
    )
    assert got == pytest.approx(want)


class FakePosterior(ArmBandit):
    """A bandit whose posterior is fixed by hand (mean 0.5/1.0/0.0, variance 1/0.25/4)."""

    def _refresh(self) -> None:
        self._mean = np.array([0.5, 1.0, 0.0])
        self._var = np.array([1.0, 0.25, 4.0])

    def _begin_hallucination(self) -> None:
        pass

    def _hallucinate(self, arm: int, variance: np.ndarray) -> None:
        variance[arm] = 0.0

    def _arms_added(self, k: int) -> None:
        pass

    def _kernel_changed(self) -> None:
        pass


def test_arm_selection_with_a_fake_posterior():
    # beta = 1 GP std = sqrt(lam) = 0.5: UCBs are 1.0, 1.25, 1.0 -> arm 1, then arm 0 or 2 (tie:
    # the first index) once arm 1's variance is hallucinated away.
    bandit = FakePosterior(np.eye(3), RBFKernel(1.0), beta=1.0, lam=0.25, initial=1, seed=0)
    bandit.tell(2, 1.0)  # one reward so that the UCB, not the random start, chooses
    assert bandit.beta == pytest.approx(0.5)
    np.testing.assert_array_equal(bandit.ask(2), [1, 0])


# --- lifecycle ---------------------------------------------------------------------------------


def test_ask_twice_before_tell_gives_other_arms(arms):
    bandit = BKB(arms, RBFKernel(0.3), seed=0)
    run(bandit, smooth, 5)
    first, second = bandit.ask(), bandit.ask()
    assert first[0] != second[0]
    assert bandit.pending == [int(first[0]), int(second[0])]
    bandit.tell(second, smooth(arms[second]))
    assert bandit.pending == [int(first[0])]
    assert bandit.cancel(int(first[0])) and bandit.pending == []


def test_tell_of_an_arm_that_was_not_asked_is_recorded(arms):
    bandit = BKB(arms, RBFKernel(0.3), seed=0)
    bandit.tell([7, 8], [0.1, 0.2])
    assert bandit.observations == 2
    assert bandit.history["batch"].tolist() == [-1, -1]
    with pytest.raises(InputDataError, match="outside"):
        bandit.tell(len(arms), 1.0)
    with pytest.raises(InputDataError, match="one reward per arm"):
        bandit.tell([1, 2], [1.0])
    bandit.tell([3, 4], np.array([[0.3], [0.4]]))  # a column of rewards is one per arm
    assert bandit.history["y"].tolist() == [0.1, 0.2, 0.3, 0.4]
    shapes = {(1, 2): [[1.0, 2.0]], (2, 2): np.ones((2, 2)), (2, 1, 1): np.ones((2, 1, 1))}
    for shape, rewards in shapes.items():
        expected = f"rewards as shape (2,) or a column (2, 1), one per arm; got shape {shape}"
        with pytest.raises(InputDataError, match=re.escape(expected)):
            bandit.tell([1, 2], rewards)
    with pytest.raises(InputDataError, match=r"1-D sequence of them .*got shape \(2, 1\)"):
        bandit.tell([[1], [2]], [1.0, 2.0])
    assert bandit.observations == 4  # nothing recorded by a refused call


def test_failed_evaluations_are_recorded_and_skipped(arms):
    bandit = BKB(arms, RBFKernel(0.3), seed=0)
    run(bandit, smooth, 3)
    arm = int(bandit.ask()[0])
    bandit.tell(arm, float("nan"))
    assert bandit.failures == 1 and bandit.observations == 3
    assert math.isnan(bandit.history["y"][-1])
    for _ in range(10):
        nxt = bandit.ask()
        assert arm not in nxt.tolist()
        bandit.tell(nxt, smooth(arms[nxt]))


def test_rewards_of_every_real_kind_are_taken_and_a_huge_int_is_a_failure():
    bandit = BKB(np.random.default_rng(0).uniform(size=(20, 2)), seed=0)
    bandit.tell([0, 1, 2], [np.float32(0.5), 2, np.array(1.5)])
    bandit.tell(np.array([3, 4]), np.array([[1], [2]]))
    bandit.tell(5, 10**400)  # an int beyond the float range: inf, a failed evaluation
    assert bandit.history["y"][:5].tolist() == [0.5, 2.0, 1.5, 1.0, 2.0]
    assert bandit.failures == 1 and math.isnan(bandit.history["y"][-1])


@pytest.mark.parametrize("cls", [BKB, GPUCB])
def test_failures_count_as_the_worst_reward_so_the_search_leaves_a_failing_region(cls):
    grid = np.linspace(0, 1, 200)[:, None]

    def f(x: float) -> float:  # the maximum lies where the objective fails
        return math.nan if x > 0.5 else -((x - 0.8) ** 2)

    failures = {}
    for impute in (True, False):
        bandit = cls(grid, RBFKernel(0.2), seed=0, impute_failed=impute, repeat=False, beta=3.0)
        for _ in range(40):
            arm = int(bandit.ask()[0])
            bandit.tell(arm, f(grid[arm, 0]))
        failures[impute] = bandit.failures
        if impute:  # the state round trip keeps the imputed rewards
            clone = ArmBandit.from_state(bandit.state_dict())
            assert np.allclose(clone.ask(1), bandit.ask(1))
    assert failures[True] <= 10 < 30 <= failures[False]


def test_same_seed_same_run_other_seed_differs(arms):
    runs = []
    for seed in (5, 5, 6):
        bandit = BKB(arms, RBFKernel(0.3), seed=seed, initial=3)
        run(bandit, smooth, 12)
        runs.append(bandit.history["arm"].tolist())
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_bad_settings_raise_config_errors(arms):
    with pytest.raises(ConfigError, match="at least 2 arms"):
        BKB(arms[:1])
    with pytest.raises(ConfigError, match="ratio_threshold"):
        BKB(arms, ratio_threshold=1.0)
    with pytest.raises(ConfigError, match="beta"):
        BKB(arms, beta="huge")
    with pytest.raises(ConfigError, match="qbar"):
        BKB(arms, qbar=0)
    with pytest.raises(ConfigError, match="resparsify must be at least 1"):
        BKB(arms, resparsify=0.5)


def test_an_arm_set_that_cannot_fit_says_how_many_arms_would():
    with pytest.raises(ConfigError, match=r"at most 2520 arms fit"):
        check_arm_memory(10**6, 6, available=2520 * arm_bytes(6))
    check_arm_memory(2520, 6, available=2520 * arm_bytes(6))


def test_batch_practical_beta_accumulates_the_reference_logdet(arms):
    bandit = BKB(arms, RBFKernel(0.3), batch=True, initial=2, lam=0.01, noise_variance=0.01, seed=0)
    run(bandit, smooth, 2)
    var2 = bandit.posterior()[1]
    start = math.log(2) * float(bandit._counts @ var2)
    assert bandit.beta == pytest.approx(batch_beta(start, 0.01, 0.01, 1.0, 0.5, 2.0))
    batch = bandit.ask()
    bandit.tell(batch, smooth(arms[batch]))
    gain = float(np.log1p(var2[batch]).sum())
    assert bandit.beta == pytest.approx(batch_beta(start + gain, 0.01, 0.01, 1.0, 0.5, 2.0))


def test_add_arms_and_set_kernel_keep_the_data(arms):
    def exact_from_history(bandit, kernel):
        exact = GPUCB(bandit.arms, kernel, seed=0)
        exact.tell(bandit.history["arm"], bandit.history["y"])
        return exact.posterior()

    for bandit in (BKB(arms, RBFKernel(0.3), seed=0, qbar=1e12), GPUCB(arms, RBFKernel(0.3))):
        run(bandit, smooth, 8)
        new = bandit.add_arms(np.array([[0.5, 0.5], [0.1, 0.9]]))
        assert new.tolist() == [300, 301]
        bandit.tell(new, smooth(bandit.arms[new]))
        for got, want in zip(
            bandit.posterior(), exact_from_history(bandit, RBFKernel(0.3)), strict=True
        ):
            np.testing.assert_allclose(got, want, atol=1e-8)
        bandit.set_kernel(RBFKernel(0.5))
        run(bandit, smooth, 3)
        for got, want in zip(
            bandit.posterior(), exact_from_history(bandit, RBFKernel(0.5)), strict=True
        ):
            np.testing.assert_allclose(got, want, atol=1e-8)


# --- batches -----------------------------------------------------------------------------------


def test_batch_bkb_batches_and_its_regret_is_sane():
    arms = np.random.default_rng(2).random((1500, 2))
    f = smooth(arms)
    results = {}
    for batch in (False, True):
        bandit = BKB(arms, RBFKernel(0.4), beta=3.0, batch=batch, seed=0)
        sizes, regret, rng = [], 0.0, np.random.default_rng(0)
        while sum(sizes) < 300:
            idx = bandit.ask(300 - sum(sizes)) if batch else bandit.ask()
            bandit.tell(idx, f[idx] + 0.05 * rng.standard_normal(len(idx)))
            sizes.append(len(idx))
            regret += float((f.max() - f[idx]).sum())
        results[batch] = (sizes, regret)
    sizes, regret = results[True]
    assert max(sizes) > 1 and len(sizes) < 150
    random_regret = 300 * float(f.max() - f.mean())
    assert regret < 0.3 * random_regret
    assert regret < 2.0 * results[False][1] + 5.0


def test_batch_rule_stops_when_the_variance_bound_passes_the_threshold(arms):
    bandit = BKB(arms, RBFKernel(0.3), batch=True, ratio_threshold=2.0, seed=0)
    run(bandit, smooth, 30)
    _, fb = bandit.posterior()
    batch = bandit.ask()
    bound = 1.0 + np.cumsum(np.maximum(fb[batch], 0.0))
    assert bound[-1] > 2.0 or len(batch) == len(arms)
    assert np.all(bound[:-1] <= 2.0)


# --- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "options"),
    [(BKB, {"qbar": 2.0}), (BKB, {"batch": True}), (BKB, {"resparsify": 1.0}), (GPUCB, {})],
)
def test_save_and_load_resume_the_same_run(tmp_path, arms, cls, options):
    def continued(bandit):
        out = []
        rng = np.random.default_rng(9)
        for _ in range(8):
            idx = bandit.ask()
            out.append(idx.tolist())
            bandit.tell(idx, smooth(arms[idx]) + 0.05 * rng.standard_normal(len(idx)))
        return out, bandit.posterior()

    original = cls(arms, RBFKernel(0.3), seed=4, **options)
    run(original, smooth, 10)
    pending = original.ask()  # saved with an arm in flight
    original.save(tmp_path / "state.npz")
    restored = ArmBandit.load(tmp_path / "state.npz")
    assert type(restored) is cls and restored.pending == pending.tolist()
    for b in (original, restored):
        b.tell(pending, smooth(arms[pending]))
    (picks_a, (m_a, v_a)), (picks_b, (m_b, v_b)) = continued(original), continued(restored)
    assert picks_a == picks_b
    np.testing.assert_array_equal(m_a, m_b)
    np.testing.assert_array_equal(v_a, v_b)


def test_saving_into_a_missing_folder_or_onto_a_folder_is_named(tmp_path, arms):
    """A missing folder gave FileNotFoundError naming the internal temporary file."""
    bandit = BKB(arms, RBFKernel(0.3), seed=0)
    missing = tmp_path / "missing"
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"folder {missing} does not exist; create it")
    ):
        bandit.save(missing / "state.npz")
    with pytest.raises(
        IsADirectoryError, match=re.escape(f"cannot write {tmp_path}: it is a folder")
    ):
        bandit.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_save_appends_npz_as_numpy_does_and_a_kernel_is_checked(tmp_path, arms):
    """save("state") wrote 'state', which load("state.npz") could not find; kernel=1.0 was an
    AttributeError ('float' object has no attribute 'diag')."""
    bandit = BKB(arms, RBFKernel(0.3), seed=0)
    assert bandit.save(tmp_path / "state") == tmp_path / "state.npz"
    assert BKB.load(tmp_path / "state.npz").seed == 0
    assert BKB.load(tmp_path / "state").seed == 0  # the path given to save, as np.load users do
    with pytest.raises(ConfigError, match=r"kernel must be a bandit kernel .* got float 1.0"):
        BKB(arms, kernel=1.0)
    with pytest.raises(ConfigError, match="kernel must be a bandit kernel"):
        bandit.set_kernel("rbf")


def test_loading_something_else_is_a_model_file_error(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a distgp bandit state"):
        ArmBandit.load(tmp_path / "other.npz")
    with pytest.raises(ModelFileError, match="does not exist"):
        ArmBandit.load(tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match=re.escape(f"{tmp_path} is a folder; pass the")):
        BKB.load(tmp_path)  # it said the file does not exist


def test_a_bandit_class_refuses_the_state_of_another(tmp_path, arms):
    """GPUCB.load of a BKB's file gave back a BKB."""
    bkb = BKB(arms, RBFKernel(0.3), seed=0).save(tmp_path / "bkb.npz")
    gpucb = GPUCB(arms, RBFKernel(0.3), seed=0).save(tmp_path / "gpucb.npz")
    with pytest.raises(ModelFileError, match=r"by a BKB, not a GPUCB; load it with BKB\.load"):
        GPUCB.load(bkb)
    with pytest.raises(ModelFileError, match=r"by a GPUCB, not a BKB; load it with GPUCB\.load"):
        BKB.load(gpucb)
    assert type(BKB.load(bkb)) is BKB and type(GPUCB.load(gpucb)) is GPUCB
    assert type(ArmBandit.load(bkb)) is BKB and type(ArmBandit.load(gpucb)) is GPUCB


@pytest.mark.parametrize("cls", [BKB, GPUCB])
def test_no_repeats_on_a_deterministic_objective(arms, cls):
    bandit = cls(arms[:40], RBFKernel(0.3), beta=3.0, repeat=False, seed=0)
    seen = []
    for _ in range(8):
        idx = bandit.ask(5)
        seen += idx.tolist()
        bandit.tell(idx, smooth(arms[idx]))
    assert len(seen) == len(set(seen)) == 40
    with pytest.raises(InputDataError, match="every arm was evaluated"):
        bandit.ask()


def test_set_kernel_with_a_noise_variance_moves_lam_and_matches_exact(arms):
    bkb = BKB(arms, RBFKernel(0.3), qbar=1e12, seed=0)
    run(bkb, smooth, 10)
    bkb.set_kernel(RBFKernel(0.4, 2.0), noise_variance=0.05)
    assert bkb.lam == bkb.noise_variance == 0.05
    exact = GPUCB(arms, RBFKernel(0.4, 2.0), noise_variance=0.05, seed=0)
    exact.tell(bkb.history["arm"], bkb.history["y"])
    for got, want in zip(bkb.posterior(), exact.posterior(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-8)


def test_a_batch_of_pulls_at_once_equals_one_by_one(arms):
    kernel = RBFKernel(0.3)
    kdiag = kernel.diag(arms)
    one, many = DTCState(arms, kdiag, 0.01), DTCState(arms, kdiag, 0.01)
    for state in (one, many):
        state.rebuild(kernel, arms, kdiag, np.arange(0, 60, 3))
    picks = np.random.default_rng(0).integers(0, 100, size=40).tolist()
    ys = smooth(arms[picks]).tolist()
    for arm, y in zip(picks, ys, strict=True):
        one.pull(arm, y)
    many.pull_many(picks, ys)  # 40 pulls > rank / 2: the matrix-product path
    np.testing.assert_allclose(many.variance(), one.variance(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(many.mean(0.1, 2.0), one.mean(0.1, 2.0), rtol=0, atol=1e-8)


def test_a_constant_added_to_every_reward_changes_nothing():
    """Rewards are standardised with Welford's update: at an offset of 1e6 the scale is the
    rewards' own standard deviation (running sums of squares lose it to a relative error near
    0.3) and the search picks the same arms. (At 1e9 the rewards themselves keep only 1e-7 of
    their spread, and a near-tie in the scores can pick another arm.)"""
    rng = np.random.default_rng(0)
    arms = rng.uniform(size=(200, 1))

    def run(offset: float) -> tuple[list[int], float]:
        bandit = BKB(arms, seed=0)
        picked = []
        for _ in range(12):
            arm = int(bandit.ask()[0])
            picked.append(arm)
            bandit.tell(arm, offset - (arms[arm, 0] - 0.3) ** 2)
        return picked, bandit._y_standardisation()[1]

    base, scale = run(0.0)
    rewards = -((arms[base, 0] - 0.3) ** 2)
    assert scale == pytest.approx(float(np.std(rewards)), rel=1e-12)
    shifted, shifted_scale = run(1e6)
    assert shifted_scale == pytest.approx(scale, rel=1e-8)
    assert shifted == base


def test_a_bandit_saved_with_running_sums_loads_their_mean_and_spread(tmp_path):
    """Files written before Welford's update hold ``y_total`` and ``y_sumsq``."""
    import json

    arms = np.random.default_rng(1).uniform(size=(50, 2))
    bandit = BKB(arms, seed=0)
    bandit.tell([3, 7, 11], [1.0, 2.0, 4.0])
    state = dict(bandit.state_dict())
    meta = json.loads(str(state["meta"]))
    mean, spread = meta.pop("y_mean"), meta.pop("y_spread")
    meta["y_total"], meta["y_sumsq"] = 7.0, 21.0
    state["meta"] = np.asarray(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **state)
    old = BKB.load(tmp_path / "old.npz")
    assert old._y_standardisation() == pytest.approx(bandit._y_standardisation())
    assert (old._y_mean, old._y_spread) == pytest.approx((mean, spread))
    meta["y_mean"], meta["y_m2"] = mean, spread**2  # a file with Welford's sum of squares
    state["meta"] = np.asarray(json.dumps(meta))
    np.savez(tmp_path / "m2.npz", **state)
    assert BKB.load(tmp_path / "m2.npz")._y_standardisation() == pytest.approx(
        bandit._y_standardisation()
    )


def test_a_state_with_the_old_new_data_flag_loads_and_a_new_state_has_none(tmp_path):
    """``new_data`` was written and loaded but never read; files that hold it still load."""
    import json

    bandit = BKB(np.random.default_rng(1).uniform(size=(50, 2)), seed=0)
    bandit.tell([3, 7], [1.0, 2.0])
    state = dict(bandit.state_dict())
    meta = json.loads(str(state["meta"]))
    assert "new_data" not in meta
    meta["new_data"] = True
    state["meta"] = np.asarray(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **state)
    np.testing.assert_array_equal(BKB.load(tmp_path / "old.npz").ask(3), bandit.ask(3))


def test_rewards_near_the_float64_limit_keep_a_finite_scale():
    """Squared deviations of rewards above 1e154 overflowed Welford's sum into an inf scale."""
    arms = np.random.default_rng(2).uniform(size=(40, 2))
    rewards = np.array([1.0, 2.0, 4.0])
    small, huge = BKB(arms, seed=0), BKB(arms, seed=0)
    small.tell([3, 7, 11], rewards)
    huge.tell([3, 7, 11], rewards * 1e200)
    _, scale = huge._y_standardisation()
    assert np.isfinite(scale)
    assert scale / 1e200 == pytest.approx(small._y_standardisation()[1], rel=1e-12)
    assert np.isfinite(huge.ask()).all()


def test_a_bandit_with_numpy_integer_settings_saves(tmp_path):
    arms = np.random.default_rng(0).uniform(size=(30, 2))
    bandit = BKB(arms, seed=np.int64(0), batch=True, max_batch=np.int64(3))
    bandit.tell([1, 2], [0.5, 0.7])
    bandit.save(tmp_path / "b.npz")
    assert BKB.load(tmp_path / "b.npz").fitted == 2


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda a: BKB(a, seed=-1), ConfigError, "seed must be a non-negative integer"),
        (lambda a: BKB(a, beta=math.inf), ConfigError, "positive, finite number"),
        (lambda a: BKB(a).ask(2.5), ConfigError, "whole number n >= 1, got 2.5"),
        (lambda a: BKB(a).tell(5, "abc"), InputDataError, "real-number rewards, got str 'abc'"),
        (lambda a: BKB(a).tell(5, "1.5"), InputDataError, "got str '1.5'; pass a float"),
        (lambda a: BKB(a).tell(5, None), InputDataError, "got NoneType None"),
        (lambda a: BKB(a).tell([5, 6], [0.5, True]), InputDataError, "got bool True"),
        (lambda a: BKB(a).tell(5, np.True_), InputDataError, "got bool np.True_"),
        (lambda a: BKB(a).tell(5.0, 1.0), InputDataError, "integer arm indices"),
    ],
)
def test_misuse_of_the_bandit_is_named(call, error, message):
    arms = np.random.default_rng(0).uniform(size=(20, 2))
    with pytest.raises(error, match=re.escape(message)):
        call(arms)


@pytest.mark.parametrize("batch", [False, True])
def test_random_start_draws_distinct_arms(batch):
    """The initial random pulls never repeat an arm while others are open (one bandit in 150
    drew a told arm again: a wasted pull, and batch BKB's beta then started one pull late)."""
    arms = np.random.default_rng(0).random((12, 2))
    for seed in range(150):
        bandit = BKB(arms, RBFKernel(0.3), batch=batch, initial=6, seed=seed)
        run(bandit, smooth, 6)
        first = [a for a, _, _ in bandit._history][:6]
        assert len(set(first)) == 6, (seed, first)
