"""Unbiased stochastic quantisation of weight vectors and the bits it costs (slimkl.md 4.3).

Two modes:

* ``delta``: the reference's uniform grid ``{0, D, 2D, ...}`` with no fixed range.
* ``bits``: ``B`` bits per entry: zero plus ``2^B - 1`` log-uniform levels over a range both sides
  know (``value_range``, standardised units). Sparse GSMP weights span many orders of magnitude,
  so log-uniform levels keep the relative error of every weight bounded.

Both round stochastically between the two neighbouring levels with the probabilities that make
``E[Q(x)] = x`` for ``x`` inside the range; zeros stay exactly zero. Values above the range are
clipped to its top (and counted).

Bits are counted as an efficient encoder would spend them: the cheapest of a dense code, a bitmap
of non-zeros plus their codes, or a list of (index, code) pairs, with whole bits per field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distgp.exceptions import ConfigError

FLOAT_BITS = 64
DEFAULT_RANGE = (1e-6, 10.0)
_WIDTH_HEADER_BITS = 6  # the code width of a delta-mode message (1..63)
_COUNT_HEADER_BITS = 32  # the number of entries of a sparse index list


@dataclass
class Quantizer:
    """Stochastic quantiser for non-negative vectors.

    Args:
        delta: step of the uniform grid (``delta`` mode).
        bits: bits per entry (``bits`` mode, 1..32).
        value_range: ``(low, high)`` of the log-uniform levels in ``bits`` mode.
    """

    delta: float | None = None
    bits: int | None = None
    value_range: tuple[float, float] = DEFAULT_RANGE

    def __post_init__(self) -> None:
        if (self.delta is None) == (self.bits is None):
            raise ConfigError("give exactly one of bits (1..32) or delta (> 0) to the quantizer")
        if self.delta is not None and not (self.delta > 0 and math.isfinite(self.delta)):
            raise ConfigError(f"quantization step delta must be positive, got {self.delta}")
        if self.bits is not None:
            if not 1 <= int(self.bits) <= 32 or int(self.bits) != self.bits:
                raise ConfigError(f"bits must be an integer in 1..32, got {self.bits}")
            low, high = self.value_range
            if not 0 < low < high:
                raise ConfigError(
                    f"value_range must satisfy 0 < low < high, got {self.value_range}"
                )
            count = 2 ** int(self.bits) - 1
            self._levels = np.concatenate(
                ([0.0], np.geomspace(low, high, count) if count > 1 else [high])
            )
        self.clipped = 0

    @property
    def levels(self) -> np.ndarray | None:
        """All representable values in ``bits`` mode (``2^B``, ascending), else ``None``."""
        return self._levels if self.bits is not None else None

    def quantize(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the integer codes of ``Q(x)`` for a non-negative vector ``x``."""
        x = np.maximum(np.asarray(x, float), 0.0)
        u = rng.random(x.shape)
        if self.delta is not None:
            scaled = x / self.delta
            low = np.floor(scaled)
            return (low + (u < scaled - low)).astype(np.int64)
        levels = self._levels
        over = x > levels[-1]
        self.clipped += int(over.sum())
        x = np.minimum(x, levels[-1])
        upper = np.clip(np.searchsorted(levels, x, side="left"), 1, len(levels) - 1)
        lo, hi = levels[upper - 1], levels[upper]
        p_up = (x - lo) / (hi - lo)
        codes = np.where(u < p_up, upper, upper - 1)
        return np.where(x == 0, 0, codes).astype(np.int64)

    def resolution(self, x: np.ndarray) -> np.ndarray:
        """Half the gap between the levels around each entry of ``x`` (0 for exact zeros): the
        size of quantisation error to expect, used to set stopping tolerances."""
        x = np.maximum(np.asarray(x, float), 0.0)
        if self.delta is not None:
            return np.where(x > 0, 0.5 * self.delta, 0.0)
        levels = self._levels
        upper = np.clip(
            np.searchsorted(levels, np.minimum(x, levels[-1]), side="left"), 1, len(levels) - 1
        )
        return np.where(x > 0, 0.5 * (levels[upper] - levels[upper - 1]), 0.0)

    def values(self, codes: np.ndarray) -> np.ndarray:
        """Decode integer codes to values."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.delta is not None:
            return codes * self.delta
        return self._levels[codes]

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """``(Q(x), bits)``: quantised values and the cost of sending them."""
        codes = self.quantize(x, rng)
        return self.values(codes), self.message_bits(codes)

    def message_bits(self, codes: np.ndarray) -> int:
        """Bits of the cheapest of three encodings of a code vector (see module docstring)."""
        codes = np.asarray(codes)
        size = codes.size
        nonzero = int(np.count_nonzero(codes))
        top = int(codes.max(initial=0))
        if self.bits is not None:
            header, dense_width, sparse_width = 0, int(self.bits), int(self.bits)
        else:
            header = _WIDTH_HEADER_BITS
            dense_width = max(1, math.ceil(math.log2(top + 1)))
            sparse_width = max(1, math.ceil(math.log2(top))) if top > 1 else 1
        dense = size * dense_width
        bitmap = size + nonzero * sparse_width
        index_bits = max(1, math.ceil(math.log2(size))) if size > 1 else 1
        listed = _COUNT_HEADER_BITS + nonzero * (index_bits + sparse_width)
        return header + min(dense, bitmap, listed)


def float_bits(size: int) -> int:
    """Bits of an uncompressed float64 message of ``size`` entries."""
    return FLOAT_BITS * int(size)
