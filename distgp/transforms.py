"""Output transforms for positive data: the GP models ``w = g(y)`` and scores on ``y``'s scale.

* ``none``: ``g(y) = y``.
* ``log``: ``g(y) = log(y / c)``; multiplicative seasonality and growth become additive.
* ``boxcox``: ``g(y) = ((y / c)^lam - 1) / lam`` (``log(y / c)`` at ``lam = 0``). ``lam`` is
  given, or estimated from ``y / c`` by maximum likelihood (scipy's ``boxcox_normmax``; the
  estimate does not depend on ``c``).

``c`` is the training outputs' geometric mean (Box and Cox's normalised transform): an affine
change of ``log y`` and ``(y^lam - 1) / lam``, which the standardisation of ``g(y)`` undoes, so
the model is the same, but ``g(y)`` keeps the outputs' relative precision: ``log y`` of
``1e11`` plus a signal of 1 varies by ``1e-13`` of its mean, rounding to the scaler, and
``y^lam`` of outputs far from 1 (``1e-100``, or ``1e6`` plus a small signal) is ``1`` or ``0`` to
float64, ``g(y)`` a constant. Outputs that vary only at rounding level (as under ``none``) are
refused before they are transformed.

With a Gaussian predictive ``N(mu, s^2)`` for ``w`` (noise included), the predictions on the
original scale are (documented choice: the **mean**, which minimises the expected squared error,
not the median ``g^-1(mu)``):

* log: mean ``exp(mu + s^2 / 2)`` and standard deviation ``mean sqrt(exp(s^2) - 1)``
  (log-normal moments);
* Box-Cox with ``lam > 0``: the mean and standard deviation of ``g^-1(w)``, which is 0 below
  the edge ``w = -1 / lam`` (where ``y`` reaches 0) and has a kink there. Within
  :data:`CLOSED_FORM_REACH` standard deviations of the edge they are computed in closed form
  (the power moments of a normal truncated at the edge, through parabolic cylinder
  functions); further, where the kink carries no weight, by Gauss-Hermite quadrature;
* Box-Cox with ``lam < 0``: ``y`` grows without bound as ``w`` nears ``-1 / lam`` (no ``y``
  lies beyond), so under a Gaussian ``w`` the mean of ``y`` does not exist; the point prediction
  is then the **median** ``g^-1(mu)`` and the spread half the central 68% interval,
  ``(g^-1(mu + s) - g^-1(mu - s)) / 2`` (infinite when ``mu + s`` passes the pole).

* the central predictive interval: ``g^-1(mu -+ z s)`` (``z = 1.96`` at 95%), exact because
  ``g`` is monotone, and not symmetric about the mean under log or Box-Cox.

Far from the data a prediction on the original scale can pass float64's range (``exp(710)``):
it is then ``inf``, never a capped number presented as a mean.

The density of ``y`` is that of ``w`` times ``g'(y)``, so the NLPD on the original scale is
``-log N(g(y); mu, s^2) - log g'(y)`` with ``log g'(y) = (lam - 1) log y - lam log c``
(``-log y`` for log).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from statistics import NormalDist

import numpy as np

from distgp.data.scaling import refuse_flat_outputs
from distgp.exceptions import ConfigError, InputDataError

TRANSFORMS = ("none", "log", "boxcox")
_HERMITE_POINTS = 40
CLOSED_FORM_GAMMA = 170.0
"""The closed form's ``Gamma(2 / lam + 1)`` overflows float64 past this argument (``lam`` below
about 0.012, nearly the log): there Gauss-Hermite's moments stand (finite, if less accurate near
the edge, which such a ``lam`` puts hundreds of units of ``g`` below the data)."""
CLOSED_FORM_REACH = 10.0
"""Box-Cox with ``lam > 0``: a predictive mean fewer than this many standard deviations above
the edge ``w = -1 / lam`` has its moments in closed form; further out Gauss-Hermite's error is
below ``1e-12`` (near the edge it was up to 2%, the kink lying between its nodes)."""


@dataclass(frozen=True)
class OutputTransform:
    """A monotone output transform ``g`` (see module docstring).

    Attributes:
        kind: ``none``, ``log`` or ``boxcox``.
        lam: the Box-Cox exponent (0 for log, unused for none).
        scale: ``c``, the outputs are transformed as ``y / c`` (1 for none).
    """

    kind: str = "none"
    lam: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORMS:
            raise ConfigError(
                f"unknown output transform {self.kind!r}; choose one of: {', '.join(TRANSFORMS)}"
            )
        if not math.isfinite(self.lam) or abs(self.lam) > 5:
            raise ConfigError(f"Box-Cox lambda must be in [-5, 5], got {self.lam}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"the transform's scale must be positive, got {self.scale}")

    @property
    def identity(self) -> bool:
        return self.kind == "none"

    @property
    def outputs_named(self) -> str:
        """The outputs the GP models, as errors name them: the transformed outputs, not y."""
        if self.identity:
            return "training outputs y"
        if self.kind == "log" or self.lam == 0.0:
            return "training outputs transformed to log(y / c) (c their geometric mean)"
        return (
            f"training outputs transformed by Box-Cox lambda {self.lam:.4g} to ((y / c)^lambda "
            "- 1) / lambda (c their geometric mean)"
        )

    @classmethod
    def fitted(cls, kind: str, lam: float | None, y: np.ndarray) -> OutputTransform:
        """The transform ``kind`` for training outputs ``y``; Box-Cox estimates ``lam`` when
        it is not given. Raises :class:`InputDataError` when ``y`` is not positive."""
        transform = cls(kind, 0.0 if lam is None else float(lam))
        transform.check(y, "training outputs y")
        if transform.identity:
            return transform
        y = np.asarray(y, float)
        refuse_flat_outputs(float(np.std(y)), float(np.mean(y)), "training outputs y")
        scale = float(np.exp(np.mean(np.log(y))))
        if kind == "boxcox" and lam is None:
            import scipy.stats

            estimate = float(scipy.stats.boxcox_normmax(y / scale, method="mle"))
            lam = float(np.clip(estimate, -2.0, 2.0))
        return cls(kind, transform.lam if lam is None else lam, scale)

    def check(self, y: np.ndarray, what: str) -> None:
        """Refuse non-positive values for the log and Box-Cox transforms."""
        if self.identity:
            return
        bad = int(np.count_nonzero(~(np.asarray(y, float) > 0)))
        if bad:
            raise InputDataError(
                f"the {self.kind} output transform needs positive outputs, but {what} hold {bad} "
                "value(s) <= 0; set the transform to none or shift the data"
            )

    def forward(self, y: np.ndarray) -> np.ndarray:
        """``w = g(y)``."""
        y = np.asarray(y, float)
        if self.identity:
            return y
        if self.kind == "log" or self.lam == 0.0:
            return np.log(y / self.scale)
        return ((y / self.scale) ** self.lam - 1.0) / self.lam

    def inverse(self, w: np.ndarray) -> np.ndarray:
        """``y = g^-1(w)`` (clipped to the transform's range)."""
        w = np.asarray(w, float)
        if self.identity:
            return w
        with np.errstate(divide="ignore", over="ignore"):  # beyond float64: inf, not a cap
            if self.kind == "log" or self.lam == 0.0:
                return np.exp(w + math.log(self.scale))
            base = np.maximum(self.lam * w + 1.0, 0.0)
            if self.lam < 0:  # y -> inf at the pole w = -1 / lam, and beyond it
                return np.where(base > 0, self.scale * base ** (1.0 / self.lam), np.inf)
            return self.scale * base ** (1.0 / self.lam)

    def log_derivative(self, y: np.ndarray) -> np.ndarray:
        """``log g'(y)``: ``(lam - 1) log y - lam log c`` (``-log y`` for log, 0 for none)."""
        y = np.asarray(y, float)
        if self.identity:
            return np.zeros_like(y)
        lam = 0.0 if self.kind == "log" else self.lam
        return (lam - 1.0) * np.log(y) - lam * math.log(self.scale)

    def moments(self, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of ``g^-1(w)`` for ``w ~ N(mean, std^2)``."""
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        if self.identity:
            return mean, std
        if self.kind == "log" or self.lam == 0.0:  # in logs: inf only past float64's range
            s2 = std**2
            with np.errstate(divide="ignore", over="ignore"):
                log_expm1 = s2 + np.log(-np.expm1(-s2))  # log(exp(s2) - 1); -inf at s2 = 0
                log_mean = mean + math.log(self.scale) + 0.5 * s2
                return np.exp(log_mean), np.exp(log_mean + 0.5 * log_expm1)
        if self.lam < 0:  # no mean (module docstring): the median and a quantile spread
            upper, lower = self.inverse(mean + std), self.inverse(mean - std)
            with np.errstate(invalid="ignore"):  # both past the pole: inf - inf
                spread = np.where(np.isinf(upper), np.inf, 0.5 * (upper - lower))
            return self.inverse(mean), spread
        nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_POINTS)
        weights = weights / weights.sum()
        values = self.inverse(mean[:, None] + std[:, None] * nodes[None, :])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            m = values @ weights  # inf where a node lies past float64's range
            top = np.max(values, axis=1, keepdims=True)  # scaled: squares of 1e200 are finite
            unit = np.divide(values, top, out=np.zeros_like(values), where=top > 0)
            spread = np.maximum((unit**2) @ weights - (unit @ weights) ** 2, 0.0)
            std_out = np.where(np.isfinite(m), top[:, 0] * np.sqrt(spread), np.inf)
            reach = (mean + 1.0 / self.lam) / std
        # below -40 deviations y > 0 has probability under e^-800: both moments are 0, as
        # Gauss-Hermite gives them (and the cylinder function is NaN far out)
        near = (reach > -40.0) & (reach < CLOSED_FORM_REACH)
        if np.any(near) and 2.0 / self.lam + 1.0 < CLOSED_FORM_GAMMA:
            m[near], std_out[near] = self._moments_near_edge(reach[near], std[near])
        return m, std_out

    def _moments_near_edge(
        self, reach: np.ndarray, std: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Box-Cox (``lam > 0``) mean and std of ``y`` for ``w ~ N(mean, std^2)``, the mean
        ``reach`` standard deviations above the edge ``-1 / lam``: with ``t = (w + 1/lam) / std
        ~ N(reach, 1)``, ``y = c (lam std t)^(1/lam)`` above the edge and 0 below, so
        ``E[y^k] = (c (lam std)^(1/lam))^k E[max(t, 0)^(k/lam)]``, and for ``t ~ N(d, 1)``
        ``E[max(t, 0)^q] = Gamma(q + 1) exp(-d^2 / 4) D_{-q-1}(-d) / sqrt(2 pi)`` (``D`` the
        parabolic cylinder function)."""
        from scipy.special import gamma, pbdv

        def power_moment(q: float) -> np.ndarray:
            cylinder = pbdv(-q - 1.0, -reach)[0]
            return gamma(q + 1.0) * np.exp(-0.25 * reach**2) * cylinder / math.sqrt(2 * math.pi)

        p = 1.0 / self.lam
        first, second = power_moment(p), power_moment(2 * p)
        unit = self.scale * (self.lam * std) ** p
        return unit * first, unit * np.sqrt(np.maximum(second - first**2, 0.0))

    def unmappable(self, mean: np.ndarray, std: np.ndarray, level: float = 0.95) -> str | None:
        """A note on predictions ``w ~ N(mean, std^2)`` that a Box-Cox transform cannot give
        back on ``y``'s scale, or ``None``: with ``lam < 0``, ``g(y) < -1/lam`` for every ``y``
        and a median at or past that pole is infinite; with ``lam > 0``, ``g(y) > -1/lam``, and
        a central interval wholly below it is ``[0, 0]``."""
        if self.kind != "boxcox" or self.lam == 0.0:
            return None
        edge = -1.0 / self.lam
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        if self.lam < 0:
            count, bound = int(np.sum(mean >= edge)), f"below {edge:.4g}"
            effect = "their point forecasts are inf"
        else:
            upper = mean + central_quantile(level) * std
            count, bound = int(np.sum(upper <= edge)), f"above {edge:.4g}"
            effect = f"their central {level:.0%} intervals are [0, 0]"
        if not count:
            return None
        return (
            f"{count} of the {len(mean)} predictions fall where Box-Cox lambda {self.lam:.4g} "
            f"has no y (it maps y to g(y) {bound}): {effect}; a lambda nearer 1, or log, leaves "
            "the forecast room"
        )

    def interval(
        self, mean: np.ndarray, std: np.ndarray, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of the central ``level`` interval of ``g^-1(w)`` for
        ``w ~ N(mean, std^2)``: ``g^-1(mean -+ z std)``, ``z`` the standard normal quantile."""
        z = central_quantile(level)
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        return self.inverse(mean - z * std), self.inverse(mean + z * std)

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "transform_kind": np.asarray(self.kind),
            "transform_lam": np.asarray(self.lam),
            "transform_scale": np.asarray(self.scale),
        }

    @classmethod
    def from_dict(cls, d) -> OutputTransform:
        """The transform saved by :meth:`to_dict`; files without one have none, and files
        without a scale (written before it) the scale 1."""
        if "transform_kind" not in d:
            return cls()
        scale = float(d["transform_scale"]) if "transform_scale" in d else 1.0
        return cls(str(d["transform_kind"]), float(d["transform_lam"]), scale)


def central_quantile(level: float) -> float:
    """``z`` with ``P(|N(0, 1)| <= z) = level``: 1.96 at 0.95. Raises :class:`ConfigError`
    unless ``level`` is a number (a 0-d array too) with ``0 < level < 1``."""
    if isinstance(level, np.ndarray) and level.ndim == 0:
        level = level[()]  # the numpy scalar
    if isinstance(level, bool) or not isinstance(level, Real) or not 0.0 < level < 1.0:
        raise ConfigError(
            f"interval level must be a number strictly between 0 and 1 (0.95 for a 95% "
            f"interval), got {level!r}"
        )
    return NormalDist().inv_cdf(0.5 + 0.5 * float(level))


def parse_transform(text: str) -> tuple[str, float | None]:
    """``none``, ``log``, ``boxcox`` or ``boxcox:LAMBDA`` -> ``(kind, lam or None)``."""
    kind, _, value = text.partition(":")
    if kind not in TRANSFORMS or (value and kind != "boxcox"):
        raise ConfigError(
            f"unknown output transform {text!r}; use none, log, boxcox or boxcox:LAMBDA"
        )
    if not value:
        return kind, None
    try:
        return kind, float(value)
    except ValueError:
        raise ConfigError(f"Box-Cox lambda must be a number, got {value!r}") from None
