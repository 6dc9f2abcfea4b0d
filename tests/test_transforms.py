"""Output transforms: moments and density on the original scale, fits, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgp.config import FitConfig
from distgp.driver import fit
from distgp.exceptions import ConfigError, InputDataError
from distgp.gp import GSMPModel, regression_metrics
from distgp.transforms import OutputTransform, central_quantile, parse_transform


@pytest.mark.parametrize("transform", [OutputTransform("log"), OutputTransform("boxcox", 0.3)])
def test_moments_match_monte_carlo(transform):
    rng = np.random.default_rng(0)
    mean, std = np.array([1.0, 2.5]), np.array([0.2, 0.4])
    mc = transform.inverse(mean + std * rng.normal(size=(400_000, 2)))
    m, s = transform.moments(mean, std)
    np.testing.assert_allclose(m, mc.mean(0), rtol=3e-3)
    np.testing.assert_allclose(s, mc.std(0), rtol=1e-2)


def test_log_nlpd_is_the_log_normal_density_and_mse_uses_the_mean():
    y = np.array([2.0, 3.5, 0.7])
    mu, s = np.array([0.6, 1.2, -0.3]), np.array([0.3, 0.5, 0.2])
    scores = regression_metrics(y, mu, s, OutputTransform("log"))
    density = np.exp(-((np.log(y) - mu) ** 2) / (2 * s**2)) / (y * s * math.sqrt(2 * math.pi))
    assert scores["nlpd"] == pytest.approx(float(np.mean(-np.log(density))))
    assert scores["mse"] == pytest.approx(float(np.mean((y - np.exp(mu + s**2 / 2)) ** 2)))
    assert scores["coverage95"] == pytest.approx(1.0)


@pytest.mark.parametrize("transform", [OutputTransform("log"), OutputTransform("boxcox", 0.3)])
def test_interval_holds_its_probability_and_is_not_symmetric_under_a_transform(transform):
    """``g^-1(mu -+ z s)`` holds ``level`` of ``g^-1(w)``'s mass (Monte Carlo), puts more room
    above the mean than below it for these concave ``g``, and is what the coverage counts."""
    rng = np.random.default_rng(1)
    mean, std = np.array([1.0, 2.5]), np.array([0.2, 0.4])
    draws = transform.inverse(mean + std * rng.normal(size=(400_000, 2)))
    for level in (0.5, 0.95):
        lower, upper = transform.interval(mean, std, level)
        inside = np.mean((draws >= lower) & (draws <= upper), axis=0)
        np.testing.assert_allclose(inside, level, atol=3e-3)
    m, _ = transform.moments(mean, std)
    assert np.all(upper - m > m - lower)
    y = np.concatenate([lower * 0.999, upper * 1.001, (lower + upper) / 2])
    mu, s = np.tile(mean, 3), np.tile(std, 3)
    assert regression_metrics(y, mu, s, transform)["coverage95"] == pytest.approx(2 / 6)
    assert central_quantile(0.95) == pytest.approx(1.959963984540054)
    assert central_quantile(np.float32(0.5)) == pytest.approx(0.6744897501960817)
    assert central_quantile(np.array(0.5)) == pytest.approx(0.6744897501960817)  # was refused
    with pytest.raises(ConfigError, match="between 0 and 1"):
        transform.interval(mean, std, 1.0)


@pytest.mark.parametrize(
    "level", ["0.9", None, True, math.nan, 0, 1.0, [0.9], np.array([0.9]), np.array(True)]
)
def test_an_interval_level_that_is_not_a_number_in_0_1_is_named(level):
    """A string or None gave a raw TypeError ('<' not supported between 'float' and 'str')."""
    with pytest.raises(ConfigError, match=r"level must be a number strictly between 0 and 1"):
        central_quantile(level)


@pytest.mark.parametrize("lam", [-5.0, -1.0, -0.5])
def test_a_negative_boxcox_lambda_predicts_the_median_and_a_quantile_spread(lam):
    """Below 0, ``g^-1`` has a pole at ``w = -1 / lam``: the mean of ``y`` does not exist, so
    the point prediction is the median and nothing is infinite until ``mu + s`` passes it."""
    t = OutputTransform("boxcox", lam)
    y = np.array([0.5, 1.0, 1.2])
    mu, s = t.forward(y), np.array([1e-3, 1e-3, 1e-3])
    m, spread = t.moments(mu, s)
    np.testing.assert_allclose(m, y)  # the median g^-1(mu)
    np.testing.assert_allclose(spread, (t.inverse(mu + s) - t.inverse(mu - s)) / 2)
    assert np.all(np.isfinite(spread)) and np.all(spread > 0)
    pole = -1.0 / lam
    assert t.inverse(np.array([pole, pole + 1.0])).tolist() == [math.inf, math.inf]
    assert math.isinf(t.moments(np.array([pole - 0.1]), np.array([1.0]))[1][0])
    # both ends past the pole: the spread is infinite too, not inf - inf
    assert t.moments(np.array([pole + 1.0]), np.array([0.1]))[1].tolist() == [math.inf]
    scores = regression_metrics(y, mu, s, t)
    assert scores["mse"] == pytest.approx(0.0, abs=1e-20) and math.isfinite(scores["nlpd"])


def test_an_output_the_transform_cannot_reach_has_zero_density_not_nan_scores():
    """A test output <= 0 under log: infinite NLPD (zero density), outside the interval, and
    the other points scored as they are."""
    mu, s = np.log(np.array([2.0, 3.0, 4.0])), np.full(3, 0.1)
    scores = regression_metrics(np.array([2.0, 3.0, 0.0]), mu, s, OutputTransform("log"))
    assert math.isinf(scores["nlpd"])
    assert scores["coverage95"] == pytest.approx(2 / 3)
    assert math.isfinite(scores["mse"])


def test_boxcox_with_lambda_one_is_a_shift():
    y = np.array([5.5, 6.0, 8.0])
    t = OutputTransform("boxcox", 1.0)
    np.testing.assert_allclose(t.forward(y), y - 1)
    identity = regression_metrics(y, np.array([5.0, 6.0, 7.0]), np.array([0.5, 0.5, 0.5]))
    shifted = regression_metrics(y, np.array([4.0, 5.0, 6.0]), np.array([0.5, 0.5, 0.5]), t)
    assert shifted["nlpd"] == pytest.approx(identity["nlpd"])
    assert shifted["mse"] == pytest.approx(identity["mse"])


def test_log_fit_of_multiplicative_series_round_trips(tmp_path):
    x = np.arange(1.0, 97.0)
    y = np.exp(0.02 * x) * (1 + 0.3 * np.sin(2 * np.pi * x / 12))
    config = FitConfig()
    config.kernel.components = 60
    config.kernel.trend = "linear"
    config.kernel.transform = "log"
    config.learn.max_iterations = 150
    result = fit(x[:84, None], y[:84], config)
    model = result.model
    assert model.transform.kind == "log"
    mean, std = model.predict(x[84:, None], return_std=True)
    assert np.all(mean > 0) and np.all(std > 0)
    model.mark_series(x[:84, None])  # as distgp fit does for a series of a named input
    model.input_names = ("month",)
    loaded = GSMPModel.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_allclose(loaded.predict(x[84:, None]), mean)
    assert loaded.input_names == ("month",)  # distgp predict --ahead names its column so
    np.testing.assert_array_equal(loaded.ahead(12)[:, 0], x[84:])
    X_raw, y_raw = loaded.training_data()  # back on y's scale, through the transform
    np.testing.assert_allclose(X_raw[:, 0], x[:84])
    np.testing.assert_allclose(y_raw, y[:84])
    scores = model.score(x[84:, None], y[84:])
    assert scores["mse"] < 0.05 * np.var(y)
    # the transform's scale c is in version 2 files, which a reader of version 1 (that
    # would ignore c) refuses; a version 1 file is read with c = 1
    with np.load(tmp_path / "m.npz") as saved:
        arrays = dict(saved)
    assert int(arrays["version"]) == 2 and float(arrays["transform_scale"]) != 1.0
    del arrays["transform_scale"]
    np.savez(tmp_path / "v1.npz", **(arrays | {"version": np.asarray(1)}))
    assert GSMPModel.load(tmp_path / "v1.npz").transform.scale == 1.0


def test_boxcox_estimates_lambda_and_refuses_non_positive_data():
    rng = np.random.default_rng(1)
    y = np.exp(rng.normal(size=200))
    assert abs(OutputTransform.fitted("boxcox", None, y).lam) < 0.3
    with pytest.raises(InputDataError, match="positive"):
        OutputTransform.fitted("log", None, np.array([1.0, 0.0, 2.0]))
    with pytest.raises(ConfigError):
        parse_transform("sqrt")
    assert parse_transform("boxcox:0.5") == ("boxcox", 0.5)


def test_metrics_json_writes_an_infinite_nlpd_as_null(tmp_path):
    """JSON has no infinity: ``write_json`` writes non-finite numbers as ``null`` (valid JSON)."""
    import json

    from distgp.io import write_json

    path = write_json(tmp_path / "m.json", {"nlpd": math.inf, "x": [1.0, np.float64("nan")]})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "nlpd": None,
        "x": [1.0, None],
    }


@pytest.mark.parametrize("spec", [("log", 0.0), ("boxcox", 0.5), ("boxcox", -0.5)])
def test_predictions_past_float64_are_infinite_not_capped_or_nan(spec):
    transform = OutputTransform(*spec)
    mean, std = np.array([1e200, 1.0]), np.array([1.0, 0.1])  # g^-1(1e200) > 1e308
    with np.errstate(all="raise"):  # no warning reaches the user either
        m, s = transform.moments(mean, std)
        _, upper = transform.interval(mean, std)
    assert not np.isnan(m).any() and not np.isnan(s).any()
    assert np.isinf(upper[0]) and np.isfinite(m[1]) and np.isfinite(s[1])
    if spec[1] >= 0:  # a mean exists: past float64 it is inf
        assert np.isinf(m[0]) and np.isinf(s[0])


def test_predictions_a_box_cox_cannot_give_back_are_named():
    """lam < 0 maps every y below -1/lam (a median past it is inf); lam > 0 above -1/lam (an
    interval wholly below it is [0, 0]). Log and other predictions need no note."""
    t = OutputTransform("boxcox", -1.0)
    mean, std = np.array([0.5, 1.0, 2.0]), np.array([0.1, 0.1, 0.1])
    assert np.isinf(t.moments(mean, std)[0][1:]).all() and np.isfinite(t.moments(mean, std)[0][0])
    note = t.unmappable(mean, std)
    assert note.startswith("2 of the 3 predictions fall where Box-Cox lambda -1 has no y")
    assert "their point forecasts are inf" in note
    t = OutputTransform("boxcox", 2.0)  # g(y) > -0.5
    lower, upper = t.interval(np.array([-1.0, 0.0]), np.array([0.1, 0.1]))
    assert lower[0] == upper[0] == 0.0 and upper[1] > 0
    note = t.unmappable(np.array([-1.0, 0.0]), np.array([0.1, 0.1]))
    assert note.startswith("1 of the 2 predictions") and "central 95% intervals are [0, 0]" in note
    assert OutputTransform("log").unmappable(np.array([50.0]), np.array([1.0])) is None
    assert OutputTransform("boxcox", 0.5).unmappable(np.array([1.0]), np.array([0.1])) is None


def _quad_moment(t: OutputTransform, k: int, mu: float, sd: float) -> float:
    """``E[g^-1(w)^k]`` for ``w ~ N(mu, sd^2)`` by adaptive quadrature from the edge up."""
    from scipy import integrate

    def f(w):
        return t.inverse(w) ** k * np.exp(-0.5 * ((w - mu) / sd) ** 2)

    lo, hi = -1.0 / t.lam, mu + 12 * sd
    value = integrate.quad(f, lo, hi, limit=200, epsabs=0, epsrel=1e-13)[0]
    return value / (sd * math.sqrt(2 * math.pi))


@pytest.mark.parametrize(
    ("lam", "mus", "sd"),
    [(2.0, [-0.5, -0.4, -0.2, 0.0, 3.0], 0.3), (1.5, [-0.7, 0.0], 0.2), (0.5, [-2.2, -1.0], 0.4)],
)
def test_boxcox_moments_near_the_edge_match_adaptive_quadrature(lam, mus, sd):
    """g^-1 has a kink at w = -1/lam, where y reaches 0: the mean and std there (Gauss-Hermite
    was off by up to 2% at lam = 2) match quad's, from the kink up, to 1e-10."""
    t = OutputTransform("boxcox", lam)
    m, s = t.moments(np.array(mus), np.full(len(mus), sd))
    for mu, mean, std in zip(mus, m, s, strict=True):
        e1, e2 = _quad_moment(t, 1, mu, sd), _quad_moment(t, 2, mu, sd)
        assert mean == pytest.approx(e1, rel=1e-10)
        assert std == pytest.approx(math.sqrt(e2 - e1**2), rel=1e-10)


@pytest.mark.parametrize("offset, factor", [(1e6, 1.0), (0.0, 1e-100)])
def test_an_estimated_boxcox_keeps_outputs_far_from_one_apart(offset, factor):
    """(y^lam - 1) / lam of 1e6 + a signal (lam estimated -2) or of 1e-100 times one (y^lam
    ~ 1e-38) was a constant in float64, and the fit was refused as y of zero variance; on
    y / c (c the geometric mean) g(y) follows log y, and g^-1 gives y back."""
    rng = np.random.default_rng(3)
    y = offset + factor * np.exp(np.sin(np.arange(60.0) / 3) + 0.1 * rng.normal(size=60))
    t = OutputTransform.fitted("boxcox", None, y)
    w = t.forward(y)
    assert np.corrcoef(w, np.log(y))[0, 1] > 0.999
    np.testing.assert_allclose(t.inverse(w), y, rtol=1e-12)
    assert OutputTransform.from_dict(t.to_dict()) == t


def test_box_cox_moments_stay_finite_for_a_lambda_near_zero():
    """The closed form near the edge takes Gamma(2 / lam + 1), which overflows below lam ~
    0.012: lam 0.01 gave a std of inf and lam 0.005 a mean of inf and a NaN std where the
    moments are finite."""
    for lam, mean, std in ((0.01, 0.0, 20.0), (0.005, 0.0, 30.0)):
        m, s = OutputTransform("boxcox", lam).moments(np.array([mean]), np.array([std]))
        assert np.isfinite(m).all() and np.isfinite(s).all() and m[0] > 0 and s[0] > 0
