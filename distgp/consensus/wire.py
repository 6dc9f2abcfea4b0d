"""The bytes that cross between the driver and the agents.

Every message is encoded here, and backends move only these bytes, so ``bits_sent`` is
``8 x`` the length of what actually crossed. The format is a small tagged binary encoding (no
pickle, nothing executable): scalars, strings, lists, string-keyed maps, numpy arrays with their
dtype and shape, and :class:`Packed` changes of a vector both ends hold. A call is
``encode([method, args])``; a reply ``encode(value)``.

``Packed`` carries a change to a weight-sized vector (``D = M + 1``) relative to a copy both ends
keep: the indices entering and leaving its support (``ceil(log2 D)`` bits each), then one field
per entry of the new support, a ``width``-bit code for quantised messages or a 64-bit float.
GSMP weights are sparse and their support changes little from round to round, so this is cheap
for both. :func:`float64_size` prices a message with every field sent as a float64 value in the
same support coding (the fair comparator of a quantised message), :func:`dense_float64_size`
with dense float64 vectors.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

_NONE, _TRUE, _FALSE, _INT, _FLOAT, _STR, _LIST, _MAP, _ARRAY, _PACKED = range(10)
_DTYPES = ("<f8", "<i8", "|b1", "<f4", "<i4", "|u1")


class WireError(ValueError):
    """A message that cannot be encoded or decoded."""


@dataclass(frozen=True)
class Packed:
    """A change to a length-``D`` vector that both ends hold a copy of (the reference).

    The receiver knows the reference's support ``S`` (its non-zero entries). The message lists the
    indices that enter the support (``enter``) and those set exactly to zero (``leave``), then one
    field for each index of the new support ``(S | enter) - leave`` in ascending order.

    Attributes:
        enter, leave: index arrays (ascending).
        codes: integer codes of the fields (``width`` bits each), or ``None`` when the fields
            travel as float64 ``values``.
        width: bits per field (1..32); 64 for float64 values.
        values: float64 fields (when ``codes`` is None).
        scale: one float32 header value the receiver needs to decode the codes (a step).
        size: ``D``.
    """

    enter: np.ndarray
    leave: np.ndarray
    codes: np.ndarray | None
    width: int
    size: int
    values: np.ndarray | None = None
    scale: float = 0.0

    @property
    def fields(self) -> int:
        return len(self.codes if self.codes is not None else self.values)


# --- sizes -------------------------------------------------------------------------------------


def _index_bits(size: int) -> int:
    return max(1, math.ceil(math.log2(size))) if size > 1 else 1


# --- encoding ----------------------------------------------------------------------------------


def encode(obj: Any) -> bytes:
    """Encode ``obj`` (see the module docstring for what it may hold)."""
    out = bytearray()
    _put(out, obj)
    return bytes(out)


def _put(out: bytearray, obj: Any) -> None:
    if obj is None:
        out.append(_NONE)
    elif obj is True or obj is False or isinstance(obj, np.bool_):
        out.append(_TRUE if obj else _FALSE)
    elif isinstance(obj, (int, np.integer)):
        out.append(_INT)
        out += struct.pack("<q", int(obj))
    elif isinstance(obj, (float, np.floating)):
        out.append(_FLOAT)
        out += struct.pack("<d", float(obj))
    elif isinstance(obj, str):
        data = obj.encode()
        out.append(_STR)
        _put_length(out, len(data))
        out += data
    elif isinstance(obj, (list, tuple)):
        out.append(_LIST)
        _put_length(out, len(obj))
        for item in obj:
            _put(out, item)
    elif isinstance(obj, dict):
        out.append(_MAP)
        _put_length(out, len(obj))
        for key, value in obj.items():
            if not isinstance(key, str):
                raise WireError(f"map keys must be strings, got {type(key).__name__}")
            _put(out, key)
            _put(out, value)
    elif isinstance(obj, np.ndarray):
        array = np.asarray(obj, order="C")
        dtype = array.dtype.str
        if dtype not in _DTYPES:
            array = array.astype(np.float64)
            dtype = "<f8"
        out.append(_ARRAY)
        out.append(_DTYPES.index(dtype))
        out.append(array.ndim)
        for extent in array.shape:
            _put_length(out, extent)
        out += array.tobytes()
    elif isinstance(obj, Packed):
        out.append(_PACKED)
        _put_packed(out, obj)
    else:
        raise WireError(f"cannot send a {type(obj).__name__} over the wire")


def _put_length(out: bytearray, n: int) -> None:
    """Unsigned LEB128 length (1 byte below 128)."""
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return


def _put_packed(out: bytearray, p: Packed) -> None:
    out.append(p.width)
    _put_length(out, p.size)
    _put_length(out, len(p.enter))
    _put_length(out, len(p.leave))
    _put_length(out, p.fields)
    if p.codes is not None:
        out += struct.pack("<f", p.scale)
    bits = _BitWriter()
    index_bits = _index_bits(p.size)
    bits.write(np.asarray(p.enter, dtype=np.uint64), index_bits)
    bits.write(np.asarray(p.leave, dtype=np.uint64), index_bits)
    if p.codes is None:
        bits.write(np.asarray(p.values, dtype=np.float64).view(np.uint64), 64)
    else:
        bits.write(np.asarray(p.codes, dtype=np.uint64), p.width)
    out += bits.tobytes()


class _BitWriter:
    """Concatenates fixed-width unsigned fields, most significant bit first."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []

    def write(self, values: np.ndarray, width: int) -> None:
        if len(values) == 0:
            return
        shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
        self._parts.append(((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8).ravel())

    def tobytes(self) -> bytes:
        if not self._parts:
            return b""
        return np.packbits(np.concatenate(self._parts)).tobytes()


# --- decoding ----------------------------------------------------------------------------------


def decode(data: bytes) -> Any:
    """Decode what :func:`encode` wrote; a malformed message is a :class:`WireError`."""
    try:
        obj, end = _get(memoryview(data), 0)
    except (IndexError, struct.error, ValueError) as exc:
        raise WireError(f"malformed message ({exc})") from None
    if end != len(data):
        raise WireError(f"malformed message ({len(data) - end} trailing bytes)")
    return obj


def _get(buf: memoryview, i: int) -> tuple[Any, int]:
    tag = buf[i]
    i += 1
    if tag == _NONE:
        return None, i
    if tag in (_TRUE, _FALSE):
        return tag == _TRUE, i
    if tag == _INT:
        return struct.unpack_from("<q", buf, i)[0], i + 8
    if tag == _FLOAT:
        return struct.unpack_from("<d", buf, i)[0], i + 8
    if tag == _STR:
        n, i = _get_length(buf, i)
        return bytes(buf[i : i + n]).decode(), i + n
    if tag == _LIST:
        n, i = _get_length(buf, i)
        items = []
        for _ in range(n):
            item, i = _get(buf, i)
            items.append(item)
        return items, i
    if tag == _MAP:
        n, i = _get_length(buf, i)
        mapping = {}
        for _ in range(n):
            key, i = _get(buf, i)
            mapping[key], i = _get(buf, i)
        return mapping, i
    if tag == _ARRAY:
        dtype = np.dtype(_DTYPES[buf[i]])
        ndim = buf[i + 1]
        i += 2
        shape = []
        for _ in range(ndim):
            extent, i = _get_length(buf, i)
            shape.append(extent)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        if i + nbytes > len(buf):
            raise ValueError("array runs past the end")
        array = np.frombuffer(bytes(buf[i : i + nbytes]), dtype=dtype).reshape(tuple(shape)).copy()
        return array, i + nbytes
    if tag == _PACKED:
        return _get_packed(buf, i)
    raise ValueError(f"unknown tag {tag}")


def _get_length(buf: memoryview, i: int) -> tuple[int, int]:
    n, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, i


def _get_packed(buf: memoryview, i: int, support: int | None = None) -> tuple[Packed, int]:
    width = buf[i]
    i += 1
    size, i = _get_length(buf, i)
    entering, i = _get_length(buf, i)
    leaving, i = _get_length(buf, i)
    fields, i = _get_length(buf, i)
    scale = 0.0
    if width != 64:
        scale = struct.unpack_from("<f", buf, i)[0]
        i += 4
    reader = _BitReader(buf, i)
    index_bits = _index_bits(size)
    enter = reader.read(entering, index_bits).astype(np.int64)
    leave = reader.read(leaving, index_bits).astype(np.int64)
    raw = reader.read(fields, width)
    end = reader.end()
    if width == 64:
        return Packed(enter, leave, None, 64, size, raw.view(np.float64).copy()), end
    return Packed(enter, leave, raw.astype(np.int64), width, size, scale=scale), end


class _BitReader:
    def __init__(self, buf: memoryview, start: int) -> None:
        self._bits = np.unpackbits(np.frombuffer(bytes(buf[start:]), dtype=np.uint8))
        self._start = start
        self._pos = 0

    def read(self, count: int, width: int) -> np.ndarray:
        n = count * width
        if self._pos + n > len(self._bits):
            raise ValueError("packed vector runs past the end")
        chunk = self._bits[self._pos : self._pos + n].reshape(count, width).astype(np.uint64)
        self._pos += n
        shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
        return (chunk << shifts).sum(axis=1, dtype=np.uint64) if count else np.zeros(0, np.uint64)

    def end(self) -> int:
        return self._start + math.ceil(self._pos / 8)


# --- comparators -------------------------------------------------------------------------------


def float64_size(obj: Any) -> int:
    """Bytes of ``obj`` with the fields of every :class:`Packed` change sent as float64 values
    (same support coding): the fair float64 comparator of a quantised message."""
    return len(encode(_as_floats(obj, dense=False)))


def dense_float64_size(obj: Any) -> int:
    """Bytes of ``obj`` with every :class:`Packed` change sent as a dense float64 vector."""
    return len(encode(_as_floats(obj, dense=True)))


def _as_floats(obj: Any, dense: bool) -> Any:
    if isinstance(obj, Packed):
        if dense:
            return np.zeros(obj.size)
        return Packed(obj.enter, obj.leave, None, 64, obj.size, np.zeros(obj.fields))
    if isinstance(obj, (list, tuple)):
        return [_as_floats(item, dense) for item in obj]
    if isinstance(obj, dict):
        return {key: _as_floats(value, dense) for key, value in obj.items()}
    return obj
