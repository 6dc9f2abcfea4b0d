"""GSMP grids, the sub-kernel bank and the gpytorch kernel against the dense formula."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from distgp.exceptions import ConfigError
from distgp.kernels import GSMPKernel, SpectralGrid, SubKernelBank, data_grid, reference_grid
from distgp.kernels import bank as bank_module
from distgp.kernels.bank import envelope, features
from distgp.kernels.grid import expand, frequency_bounds


def dense_component(X1, X2, mu, v):
    """prod_p cos(2 pi mu_p tau_p) exp(-2 pi^2 v_p tau_p^2), from docs/gsmp.md section 1."""
    tau = X1[:, None, :] - X2[None, :, :]
    return np.prod(np.cos(2 * np.pi * mu * tau) * np.exp(-2 * np.pi**2 * v * tau**2), axis=-1)


def random_grid(rng, M=7, P=3):
    means = rng.uniform(0, 0.8, size=(M, P)) * (rng.random((M, P)) < 0.6)
    variances = np.repeat(rng.uniform(0.01, 0.2, size=(2, P)), [M // 2, M - M // 2], axis=0)
    return SpectralGrid(means, variances)


def test_data_grid_1d_matches_nyquist_and_spacing():
    x = np.arange(100.0)[:, None]
    grid = data_grid(100, 1, components=50, slow=2)
    assert grid.components == 52 and grid.dims == 1
    F = frequency_bounds(100, 1)[0]
    # The Nyquist frequency of 100 evenly spaced points (0.5 cycles per sample), per std unit.
    assert F / x.std() == pytest.approx(0.5, rel=0.01)
    assert grid.means[:50, 0].max() == pytest.approx(F)
    spacing = F / 49
    assert np.sqrt(grid.variances[0, 0]) == pytest.approx(spacing)
    assert np.all(grid.means[50:] == 0) and np.all(grid.variances[50:, 0] < spacing**2)


def test_the_data_grid_counts_distinct_input_rows():
    """Copies of an input resolve no higher frequency: data with every row six times get the
    grid of their distinct rows. Agents count their own shards' (a merge sums the counts, an
    upper bound); a recipe from before the count, without ``distinct``, keeps its grid of n."""
    from distgp.config import FitConfig
    from distgp.data import ShardSummary
    from distgp.driver import grid_recipe
    from distgp.kernels.grid import grid_from_recipe

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 2)), rng.normal(size=120)
    copies = np.repeat(X, 6, axis=0)
    summary = ShardSummary.of(copies, y)
    assert (summary.n, summary.distinct) == (120, 20)
    shards = [ShardSummary.of(copies[:63], y[:63]), ShardSummary.of(copies[63:], y[63:])]
    merged = ShardSummary.merge([ShardSummary.from_wire(s.to_wire()) for s in shards])
    assert (merged.n, merged.distinct) == (120, 21)  # row 10 is in both shards
    recipe = grid_recipe(FitConfig(), summary)
    grid = grid_from_recipe(recipe)
    alone = grid_from_recipe(grid_recipe(FitConfig(), ShardSummary.of(X, y[:20])))
    np.testing.assert_array_equal(grid.means, alone.means)
    np.testing.assert_array_equal(grid.variances, alone.variances)
    assert grid.means.max() == pytest.approx(frequency_bounds(20, 2)[0])
    older = grid_from_recipe({k: v for k, v in recipe.items() if k != "distinct"})
    assert older.means.max() == pytest.approx(frequency_bounds(120, 2)[0])


def test_data_grid_multid_has_one_frequency_per_component_and_levels():
    grid = data_grid(200, 3, components=60, levels=3, slow=0)
    assert np.all((grid.means > 0).sum(1) <= 1)
    assert len(np.unique(grid.variances[:, 0])) == 3
    assert abs(grid.components - 60) <= 3


def test_data_grid_puts_no_frequency_along_a_constant_input():
    grid = data_grid(200, 3, components=60, levels=2, slow=0, constant=[1])
    assert np.all(grid.means[:, 1] == 0) and np.any(grid.means[:, 0] > 0)
    assert abs(grid.components - 60) <= 3  # the varying inputs share the components


def test_a_constant_input_column_gets_no_frequencies(tmp_path):
    """A constant column's frequencies would each repeat a pure envelope (a cosine of a zero
    difference is 1); on this data DSCA spread weight over the copies until its cap of 500
    iterations, and now converges in under 100."""
    from distgp.cli import main
    from distgp.gp import GSMPModel

    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(200, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] + 0.05 * rng.normal(size=200)
    rows = ["a,k,b,y"] + [f"{a},3.0,{b},{t}" for (a, b), t in zip(X, y, strict=True)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "fit",
                "--data",
                str(tmp_path / "data.csv"),
                "--quiet",
                "--no-plots",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["converged"] and metrics["iterations"] < 100 and metrics["mse"] < 0.01
    means = GSMPModel.load(out / "model.npz").grid.means
    assert np.all(means[:, 1] == 0) and np.any(means[:, 0] > 0) and np.any(means[:, 2] > 0)


def test_reference_grid_is_the_papers():
    grid = reference_grid(4)
    assert grid.components == 400 and not grid.standardize_inputs
    assert np.allclose(grid.means[:, 0], np.linspace(0, 0.5, 400))
    assert np.allclose(grid.means, grid.means[:, :1])
    assert np.allclose(grid.variances, 1e-6)
    assert reference_grid(1).components == 500


@pytest.mark.parametrize("bad", [{"components": 0}, {"levels": 0}, {"frequency_scale": 0.0}])
def test_grid_rejects_bad_settings(bad):
    with pytest.raises(ConfigError):
        data_grid(10, 1, **bad)


def test_expansion_reproduces_products_of_cosines(rng):
    grid = random_grid(rng)
    X = rng.normal(size=(9, 3))
    bank = SubKernelBank(X, grid)
    for m in range(grid.components):
        expected = dense_component(X, X, grid.means[m], grid.variances[m])
        assert np.allclose(bank.component(m), expected, atol=1e-12)
    assert sum(len(g.components) for g in expand(grid)) == grid.components


def test_reference_grid_diagonal_components_are_exact(rng):
    X = rng.uniform(0, 5, size=(6, 3))
    grid = reference_grid(3, components=5)
    bank = SubKernelBank(X, grid)
    for m in range(5):
        assert np.allclose(
            bank.component(m), dense_component(X, X, grid.means[m], grid.variances[m])
        )


def test_products_match_dense_frobenius_products(rng):
    grid = random_grid(rng)
    X = rng.normal(size=(12, 3))
    bank = SubKernelBank(X, grid)
    A = rng.normal(size=(12, 12))
    A = A + A.T
    alpha = rng.normal(size=12)
    idx = np.array([5, 0, 3])
    traces, quads = bank.products(idx, A=A, alpha=alpha)
    for i, m in enumerate(idx):
        K = bank.component(int(m))
        assert traces[i] == pytest.approx(np.sum(A * K), rel=1e-10)
        assert quads[i] == pytest.approx(alpha @ K @ alpha, rel=1e-10)


def test_zero_frequency_groups_read_only_lower_triangles(rng):
    """Slow components (an envelope each, K_m = E_g) take whole-matrix passes instead of
    feature products; they must agree with the dense formula and read only ``A``'s lower part."""
    X = rng.normal(size=(15, 2))
    grid = data_grid(15, 2, components=12, levels=2, slow=3)
    bank = SubKernelBank(X, grid)
    slow = [g for g in bank.groups if not np.any(g.directions)]
    assert len(slow) == 3
    dense = [
        dense_component(X, X, grid.means[m], grid.variances[m]) for m in range(grid.components)
    ]
    A = rng.normal(size=(15, 15))
    A = A + A.T
    upper_garbage = np.tril(A) + np.triu(rng.normal(size=(15, 15)), 1)
    alpha = rng.normal(size=15)
    idx = np.arange(grid.components)
    traces, quads = bank.products(idx, A=np.asfortranarray(upper_garbage), alpha=alpha)
    assert np.allclose(traces, [np.sum(A * K) for K in dense], rtol=1e-10)
    assert np.allclose(quads, [alpha @ K @ alpha for K in dense], rtol=1e-10)
    w = rng.uniform(size=grid.components)
    expected = sum(wm * K for wm, K in zip(w, dense, strict=True))
    assert np.allclose(bank.gram(w), expected)
    assert np.allclose(np.tril(bank.gram(w, lower=True)), np.tril(expected))
    only_slow = np.zeros(grid.components)
    only_slow[slow[0].components] = 2.0
    assert np.allclose(bank.gram(only_slow), 2.0 * dense[slow[0].components[0]])
    v = rng.normal(size=15)
    assert np.allclose(bank.apply(v, idx), np.column_stack([K @ v for K in dense]))


def test_kept_selections_give_what_fresh_ones_give(rng, monkeypatch):
    """The bank keeps the last few component selections (split by group, features gathered):
    asking again, in any order and after evictions, gives the same numbers as a fresh bank."""
    X = rng.normal(size=(12, 2))
    grid = data_grid(12, 2, components=16, levels=2, slow=2)
    A = rng.normal(size=(12, 12))
    A = np.asfortranarray(A + A.T)
    alpha = rng.normal(size=12)
    subsets = [np.sort(rng.choice(grid.components, size=k, replace=False)) for k in (3, 9, 14)]
    subsets += [np.arange(grid.components), subsets[0], np.array([], dtype=int), subsets[1]]
    kept = SubKernelBank(X, grid)
    for subset in subsets * 2:
        fresh = SubKernelBank(X, grid)
        w = np.zeros(grid.components)
        w[subset] = rng.uniform(0.5, 1.0, size=len(subset))
        assert np.array_equal(kept.gram(w), fresh.gram(w))
        got, want = kept.products(subset, A, alpha), fresh.products(subset, A, alpha)
        assert all(np.array_equal(g, f) for g, f in zip(got, want, strict=True))
        assert len(kept._selections) <= bank_module.SELECTIONS_KEPT
    some = np.zeros(grid.components)
    some[subsets[0]] = 1.0
    counted = SubKernelBank(X, grid)
    counted.gram(np.ones(grid.components))  # whole cached features: nothing gathered
    whole = counted.nbytes
    counted.gram(some)
    assert counted.nbytes > whole  # the gathered columns are counted
    monkeypatch.setattr(bank_module, "SELECTION_FEATURE_BYTES", 0)  # nothing may be kept
    tight = SubKernelBank(X, grid)
    tight.gram(np.ones(grid.components))
    assert np.allclose(tight.gram(some), kept.gram(some)) and tight.nbytes == whole
    assert all(share.features is None for share in tight._select(subsets[0]).featured)


def test_cross_covariance_and_gram_agree(rng):
    grid = random_grid(rng)
    X = rng.normal(size=(10, 3))
    w = rng.uniform(size=grid.components)
    w[2] = 0.0
    bank = SubKernelBank(X, grid)
    dense = sum(
        w[m] * dense_component(X, X, grid.means[m], grid.variances[m])
        for m in range(grid.components)
    )
    assert np.allclose(bank.gram(w), dense)
    Xs = rng.normal(size=(4, 3))
    cross = sum(
        w[m] * dense_component(Xs, X, grid.means[m], grid.variances[m])
        for m in range(grid.components)
    )
    assert np.allclose(bank.cross(Xs, w), cross)
    uncached = SubKernelBank(X, grid, cache_envelopes=False)
    assert np.allclose(uncached.gram(w), dense)
    assert bank.nbytes - uncached.nbytes == len(bank.groups) * 10 * 10 * 8  # no envelope kept


class TestGSMPKernel:
    def make(self, rng, P=2):
        grid = random_grid(rng, M=6, P=P)
        return grid, GSMPKernel(grid, weights=rng.uniform(0.1, 1.0, size=6), dtype=torch.float64)

    def test_matches_bank_and_diag(self, rng):
        grid, kernel = self.make(rng)
        X = rng.normal(size=(8, 2))
        K = kernel(torch.as_tensor(X)).to_dense().detach().numpy()
        bank = SubKernelBank(X, grid)
        assert np.allclose(K, bank.gram(kernel.weights.detach().numpy()), atol=1e-10)
        diag = kernel(torch.as_tensor(X), diag=True).detach().numpy()
        assert np.allclose(diag, np.diag(K))

    def test_batch_equals_loop(self, rng):
        _, kernel = self.make(rng)
        Xb = torch.as_tensor(rng.normal(size=(3, 5, 2)))
        batched = kernel(Xb).to_dense()
        for b in range(3):
            assert torch.allclose(batched[b], kernel(Xb[b]).to_dense())

    def test_input_transform_and_pickle(self, rng):
        grid, _ = self.make(rng)
        kernel = GSMPKernel(
            grid,
            input_shift=np.array([1.0, -2.0]),
            input_scale=np.array([2.0, 0.5]),
            dtype=torch.float64,
        )
        X = torch.as_tensor(rng.normal(size=(4, 2)))
        plain = GSMPKernel(grid, dtype=torch.float64)
        Z = (X - torch.tensor([1.0, -2.0], dtype=X.dtype)) / torch.tensor([2.0, 0.5], dtype=X.dtype)
        assert torch.allclose(kernel(X).to_dense(), plain(Z).to_dense())
        clone = pickle.loads(pickle.dumps(kernel))
        assert torch.allclose(clone(X).to_dense(), kernel(X).to_dense())
        assert {n for n, _ in kernel.named_parameters()} == {"raw_weights"}
        assert {"grid.means", "grid.variances"} <= set(dict(kernel.named_buffers()))

    def test_wrong_dimension_is_named(self, rng):
        _, kernel = self.make(rng)
        with pytest.raises(ValueError, match="expected inputs with d=2"):
            kernel(torch.zeros(3, 4, dtype=torch.float64)).to_dense()

    def test_trains_inside_exact_gp(self, rng):
        import gpytorch

        x = torch.linspace(0, 1, 40, dtype=torch.float64)[:, None]
        y = torch.sin(2 * np.pi * 3 * x[:, 0]) + 0.05 * torch.as_tensor(rng.normal(size=40))
        grid = data_grid(40, 1, components=20, slow=0)
        kernel = GSMPKernel(grid, dtype=torch.float64)

        class GP(gpytorch.models.ExactGP):
            def __init__(self):
                likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
                super().__init__(x, y, likelihood)
                self.mean = gpytorch.means.ZeroMean()
                self.cov = kernel

            def forward(self, inputs):
                return gpytorch.distributions.MultivariateNormal(
                    self.mean(inputs), self.cov(inputs)
                )

        model = GP().double()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        model.train()
        losses = []
        for _ in range(30):
            optimizer.zero_grad()
            loss = -mll(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0] - 0.3
        assert torch.all(kernel.weights >= 0)
        model.eval()
        with torch.no_grad():
            pred = model.likelihood(model(x)).mean
        assert float(torch.mean((pred - y) ** 2)) < 0.1


def test_one_kernel_maths_for_numpy_and_torch(rng):
    """The bank (numpy) and the GPyTorch kernel (torch) evaluate the same functions, so the
    learned kernel and the exported one agree to rounding."""
    X = rng.normal(size=(30, 3))
    grid = random_grid(rng)
    w = rng.uniform(size=grid.components)
    group = expand(grid)[0]
    for f in (envelope(X, X[:7], group.variance), features(X, group.directions, group.coef)):
        assert isinstance(f, np.ndarray)
    Xt = torch.as_tensor(X)
    np.testing.assert_allclose(
        envelope(Xt, Xt[:7], torch.as_tensor(group.variance)).numpy(),
        envelope(X, X[:7], group.variance),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        features(Xt, group.directions, group.coef).numpy(),
        features(X, group.directions, group.coef),
        rtol=1e-13,
        atol=1e-15,
    )
    bank_gram = SubKernelBank(X, grid).gram(w)
    kernel = GSMPKernel(grid, weights=w, dtype=torch.float64)
    np.testing.assert_allclose(kernel(Xt).to_dense().detach().numpy(), bank_gram, rtol=1e-10)


def test_more_levels_than_the_components_have_room_for_are_capped():
    """``--levels 1000`` with 200 components over 2 inputs: about 200 components (each level
    holds one envelope and a frequency per input), not 3000; 1-D caps at one per level."""
    assert data_grid(100, 2, components=200, levels=1000, slow=3).components == 201
    assert data_grid(100, 2, components=200, levels=4, slow=3).components == 199
    assert data_grid(100, 1, components=50, levels=1000, slow=3).components == 53
