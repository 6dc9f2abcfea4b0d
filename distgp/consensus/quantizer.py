"""Differential quantisation: send the change of a vector both ends keep a copy of.

Each ADMM message is a vector ``v`` (an agent's ``x_j + u_j``, or the consensus ``z``) that the
receiver already knows approximately: both ends keep a copy ``v_hat`` (the reference) and update
it identically from each message. A message sends ``Q(v - v_hat)`` (innovation coding with error
feedback, as in Q-GADMM and CHOCO-style compressed consensus: see ``docs/admm.md``), so the
quantisation error is carried into the next message rather than lost, and it shrinks as the
iterates settle. Unlike quantising ``v`` itself, the run can then meet an unwidened stopping rule.

Modes:

* ``bits = B``: the step is ``R / K`` with ``R = max |v - v_hat|`` (sent as a float32 header) and
  ``K = 2^(B-1) - 1`` levels each side of zero; stochastic rounding between neighbouring levels
  makes ``E[Q(d)] = d``; codes are zig-zag (0 means no change), ``B`` bits each.
* ``delta = D``: a fixed step ``D`` (the SLIM-KL reference's uniform grid, applied to the change);
  its error does not decay below ``D`` (stochastic rounding keeps it unbiased), so a coarse step
  can meet the stopping rule early with the weights only ``D``-accurate (300 sine points over 3
  agents: ``D = 0.01`` stopped after 5 rounds, ``0.5`` after 6 with one weight left, 7.2 from
  stationary). Codes are ``change / D`` as integers and must fit 64 bits: ``D >= 1e-12``.
* neither: float64 fields (the exact comparator).

Entries that become exactly zero (pruned weights) leave the support explicitly, and new non-zero
entries enter it; see :class:`~distgp.consensus.wire.Packed` for the encoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distgp.consensus.wire import Packed
from distgp.exceptions import ConfigError, NumericalError

MAX_BITS = 32
# Largest |change / step| a fixed-step code may carry: its zig-zag code (2 |level| + 1) then stays
# below 2^63, so it fits the signed 64 bits it is computed in and at most 63 bits on the wire
# (width 64 marks float64 fields there). Beyond it the cast to int64 would wrap or saturate.
MAX_LEVEL = float(2**61)


@dataclass(frozen=True)
class DeltaCoder:
    """Encoder and decoder of changes to a shared vector.

    Args:
        bits: bits per changed entry (2..32), or ``None``.
        delta: fixed quantisation step (> 0), or ``None``. Neither: float64 messages.
    """

    bits: int | None = None
    delta: float | None = None

    def __post_init__(self) -> None:
        if self.bits is not None and self.delta is not None:
            raise ConfigError("give at most one of bits and delta to the quantizer")
        if self.bits is not None and (
            int(self.bits) != self.bits or not 2 <= int(self.bits) <= MAX_BITS
        ):
            raise ConfigError(f"bits must be an integer in 2..{MAX_BITS}, got {self.bits}")
        if self.delta is not None and not (self.delta > 0 and math.isfinite(self.delta)):
            raise ConfigError(f"quantization step delta must be positive, got {self.delta}")

    @property
    def exact(self) -> bool:
        """Whether messages carry float64 values (no quantisation)."""
        return self.bits is None and self.delta is None

    # --- sender --------------------------------------------------------------------------------

    def encode(self, target: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Packed:
        """The message that moves ``reference`` towards ``target`` (both ``D``)."""
        target = np.asarray(target, float)
        reference = np.asarray(reference, float)
        old = reference != 0
        new = target != 0
        enter = np.flatnonzero(new & ~old)
        leave = np.flatnonzero(old & ~new)
        keep = np.flatnonzero(new)
        change = target[keep] - reference[keep]
        if self.exact:
            return Packed(enter, leave, None, 64, target.size, target[keep].copy())
        if not np.all(np.isfinite(change)):  # a cast to integer codes would make it garbage
            raise NumericalError(
                "a quantised consensus message holds a non-finite weight (inf or NaN), which "
                "no code can carry; rerun with --no-quantize to see where the weights diverge"
            )
        if self.delta is not None:
            step = float(np.float32(self.delta))  # the header travels as float32
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                ratio = change / step if step > 0 else np.full(len(change), np.inf)
            levels_needed = float(np.abs(ratio).max(initial=0.0))
            if not levels_needed <= MAX_LEVEL:  # also catches NaN
                raise NumericalError(
                    f"a weight change of {float(np.abs(change).max()):.3g} is "
                    f"{levels_needed:.3g} quantisation steps of {self.delta:g}, more than the "
                    f"64-bit codes hold ({MAX_LEVEL:.3g}); use a larger consensus.delta (--delta), "
                    "--bits or --no-quantize"
                )
            levels = _stochastic_round(ratio, rng)
            codes = _zigzag(levels)
            width = max(1, int(codes.max(initial=0)).bit_length())
            return Packed(enter, leave, codes, width, target.size, scale=step)
        half = 2 ** (int(self.bits) - 1) - 1
        span = float(np.abs(change).max(initial=0.0))
        step = float(np.float32(span / half)) if span > 0 else 0.0
        if step > 0 and step * half < span:  # float32 rounding must not cut the range
            step = float(np.nextafter(np.float32(step), np.float32(np.inf)))
        levels = (
            np.clip(_stochastic_round(change / step, rng), -half, half)
            if step > 0
            else np.zeros(len(keep), dtype=np.int64)
        )
        return Packed(enter, leave, _zigzag(levels), int(self.bits), target.size, scale=step)

    # --- both ends -----------------------------------------------------------------------------

    @staticmethod
    def apply(message: Packed, reference: np.ndarray) -> np.ndarray:
        """The new copy: ``reference`` updated by ``message`` (the same on both ends)."""
        reference = np.asarray(reference, float)
        if len(reference) != message.size:
            raise ConfigError(
                f"message for a vector of {message.size} entries, reference has {len(reference)}"
            )
        out = reference.copy()
        out[message.leave] = 0.0
        support = np.union1d(np.flatnonzero(reference != 0), message.enter)
        support = np.setdiff1d(support, message.leave, assume_unique=True)
        if len(support) != message.fields:
            raise ConfigError("message does not match the receiver's copy (out of sync)")
        if message.codes is None:
            out[support] = message.values
        else:
            out[support] = reference[support] + message.scale * _unzigzag(message.codes)
        return out


def _stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unbiased rounding to integers: ``floor(x) + Bernoulli(x - floor(x))``."""
    low = np.floor(x)
    return (low + (rng.random(x.shape) < x - low)).astype(np.int64)


def _zigzag(levels: np.ndarray) -> np.ndarray:
    """Signed integers to codes ``0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ...``."""
    levels = np.asarray(levels, dtype=np.int64)
    return np.where(levels < 0, -2 * levels - 1, 2 * levels)


def _unzigzag(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    return np.where(codes % 2 == 1, -(codes + 1) // 2, codes // 2).astype(float)
