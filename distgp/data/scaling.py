"""Standardisation from per-shard summaries: no raw data leaves a shard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distgp.data.checks import OUTPUT_RELATIVE_TINY, RELATIVE_TINY, real_spread
from distgp.exceptions import InputDataError


@dataclass(frozen=True)
class ShardSummary:
    """Aggregate statistics of one shard: all an agent reveals about its data before learning.

    Only counts, means and sums of squared deviations (merged with Chan et al.'s parallel
    formulas, stable for data far from zero): no data point, not even an extreme one, can be read
    off a summary.

    Attributes:
        n: number of points.
        distinct: number of distinct input rows (copies of an input counted once).
        x_mean, x_m2: per-input-dimension means and sums of squared deviations (P).
        y_mean, y_m2: mean and sum of squared deviations of the outputs.
    """

    n: int
    distinct: int
    x_mean: np.ndarray
    x_m2: np.ndarray
    y_mean: float
    y_m2: float

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray) -> ShardSummary:
        x_mean = X.mean(0)
        y_mean = float(y.mean())
        return cls(
            n=int(X.shape[0]),
            distinct=int(np.unique(X, axis=0).shape[0]),
            x_mean=x_mean,
            x_m2=((X - x_mean) ** 2).sum(0),
            y_mean=y_mean,
            y_m2=float(((y - y_mean) ** 2).sum()),
        )

    @property
    def dims(self) -> int:
        return int(self.x_mean.shape[0])

    def to_wire(self) -> dict:
        return {
            "n": self.n,
            "distinct": self.distinct,
            "x_mean": self.x_mean,
            "x_m2": self.x_m2,
            "y_mean": self.y_mean,
            "y_m2": self.y_m2,
        }

    @classmethod
    def from_wire(cls, fields: dict) -> ShardSummary:
        return cls(
            int(fields["n"]),
            int(fields["distinct"]),
            np.asarray(fields["x_mean"], float),
            np.asarray(fields["x_m2"], float),
            float(fields["y_mean"]),
            float(fields["y_m2"]),
        )

    @classmethod
    def merge(cls, parts: list[ShardSummary]) -> ShardSummary:
        total = parts[0]
        for part in parts[1:]:
            n = total.n + part.n
            dx = part.x_mean - total.x_mean
            dy = part.y_mean - total.y_mean
            total = cls(
                n=n,
                distinct=total.distinct + part.distinct,  # an upper bound: shards may share rows
                x_mean=total.x_mean + dx * part.n / n,
                x_m2=total.x_m2 + part.x_m2 + dx**2 * total.n * part.n / n,
                y_mean=total.y_mean + dy * part.n / n,
                y_m2=total.y_m2 + part.y_m2 + dy**2 * total.n * part.n / n,
            )
        return total


def varying_columns(s: ShardSummary) -> np.ndarray:
    """``P`` booleans: whether each input column varies beyond rounding (a constant column
    carries no signal)."""
    return real_spread(np.sqrt(np.asarray(s.x_m2, float) / s.n), np.asarray(s.x_mean, float))


def refuse_flat_data(
    parts: list[ShardSummary],
    inputs: str = "training inputs X",
    outputs: str = "training outputs y",
) -> None:
    """Refuse data that vary in no input column, or whose outputs do not vary, over every
    shard together (``parts``: each shard's summary): one shard whose inputs or outputs are
    constant is fine beside others that vary. ``inputs``, ``outputs``: how errors name them."""
    merged = ShardSummary.merge(parts)
    if not varying_columns(merged).any():
        # every shard constant: a spread of a few ulps is the summaries' own rounding (of the
        # means), and "vary only at rounding level" would be the wrong story
        exact = all(
            np.all(_rounding(np.sqrt(np.asarray(p.x_m2, float) / p.n), p.x_mean)) for p in parts
        )
        refuse_flat_inputs(merged, inputs, exact)
    std, mean = float(np.sqrt(merged.y_m2 / merged.n)), float(merged.y_mean)
    if _rounding(std, mean) and all(_rounding(np.sqrt(p.y_m2 / p.n), p.y_mean) for p in parts):
        raise InputDataError(
            f"{outputs} take a single value ({mean:.6g}); there is nothing to learn from them: "
            "give data whose outputs vary"
        )
    refuse_flat_outputs(std, mean, outputs)


SUMMARY_ROUNDING = 8 * float(np.finfo(np.float64).eps)
"""Spreads up to this fraction of ``|mean|`` (a few ulps) are what computing a constant's mean
and squared deviations leaves: the values were one."""


def _rounding(std, mean):
    """Whether spreads ``std`` around ``mean`` are at most a summary's own rounding."""
    return np.asarray(std, float) <= SUMMARY_ROUNDING * np.abs(np.asarray(mean, float))


def refuse_flat_inputs(
    s: ShardSummary, inputs: str = "training inputs X", exact: bool = False
) -> None:
    """Refuse ``inputs`` of summary ``s`` (the merge of every shard's) that vary in no column
    beyond rounding (:func:`varying_columns`): a kernel of constant inputs is constant, and the
    model could only learn the mean. ``exact``: every shard's inputs are constant (the merge's
    spread, if any, is rounding of the merge itself)."""
    if varying_columns(s).any():
        return
    if not exact and np.any(np.asarray(s.x_m2, float) > 0):
        raise InputDataError(
            f"{inputs} vary only at rounding level in every column (a spread below "
            f"{RELATIVE_TINY:g} of their values); subtract an offset, such as their first "
            "value, from them"
        )
    raise InputDataError(
        f"{inputs} take a single value in every column; there is nothing to learn from them: "
        "add an input that varies"
    )


def refuse_flat_outputs(std: float, mean: float, outputs: str) -> None:
    """Refuse ``outputs`` of standard deviation ``std`` and ``mean`` whose spread does not
    exceed rounding (:data:`~distgp.data.checks.OUTPUT_RELATIVE_TINY` of ``|mean|``, 100
    float64 eps): nothing can be learned from them."""
    if bool(real_spread(std, mean, OUTPUT_RELATIVE_TINY)):
        return
    if std > 0:  # a spread, lost against the offset |mean|: rescaling would not recover it
        raise InputDataError(
            f"{outputs} vary too little (std {std:.3g}) against their mean ({mean:.3g}) to be "
            f"told from float64 rounding (a std below {OUTPUT_RELATIVE_TINY:.2g} |mean|); subtract "
            "an offset (e.g. their mean) first"
        )
    raise InputDataError(
        f"{outputs} have (numerically) zero variance: constant (nothing to learn), or so small "
        f"(mean {mean:.3g}) that their squares underflow float64; rescale them (e.g. multiply "
        "by a power of 10)"
    )


@dataclass(frozen=True)
class Scaler:
    """Affine maps between raw and standardised units: ``x_std = (x - x_mean) / x_scale``."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def from_summary(
        cls, s: ShardSummary, standardize_inputs: bool = True, outputs: str = "training outputs y"
    ) -> Scaler:
        """The scaler of summary ``s``; ``outputs`` names its outputs in errors (the
        transformed outputs, under a transform)."""
        x_mean = np.asarray(s.x_mean, float)
        # A column that does not vary beyond rounding keeps unit scale (it carries no signal).
        x_scale = np.where(varying_columns(s), np.sqrt(np.asarray(s.x_m2, float) / s.n), 1.0)
        if not standardize_inputs:
            x_mean, x_scale = np.zeros_like(x_mean), np.ones_like(x_scale)
        y_scale = float(np.sqrt(s.y_m2 / s.n))
        refuse_flat_outputs(y_scale, float(s.y_mean), outputs)
        return cls(x_mean, x_scale, float(s.y_mean), y_scale)

    def x(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_mean) / self.x_scale

    def y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_mean) / self.y_scale

    def y_back(self, y_std: np.ndarray) -> np.ndarray:
        return y_std * self.y_scale + self.y_mean

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "x_mean": self.x_mean,
            "x_scale": self.x_scale,
            "y_mean": np.asarray(self.y_mean),
            "y_scale": np.asarray(self.y_scale),
        }

    @classmethod
    def from_dict(cls, d) -> Scaler:
        return cls(
            np.asarray(d["x_mean"], float),
            np.asarray(d["x_scale"], float),
            float(d["y_mean"]),
            float(d["y_scale"]),
        )
