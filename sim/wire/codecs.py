"""Wire codecs: the values one message carries <-> the real packed bytes that travel.

Every codec is vectorised over workers. ``encode(x)`` takes ``x`` shaped (n, d) (n messages of
d values; a 1-D ``x`` is one message) and returns the packed payload as uint8 (n, nbytes), or
(nbytes,) for 1-D input. ``decode(payload, d)`` inverts it. ``size_bits(d)`` is the exact
payload size of one message in bits (always a whole number of bytes, because that is what is
produced and sent); ``ideal_bits(d)`` is the information content where it is smaller.

Bit layout: a 1-bit vector is ``np.packbits`` along the message (first value in the most
significant bit, tail bits of the last byte zero). A b-bit level vector is b such bit-planes,
least significant plane first, concatenated: b * ceil(d/8) bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Fixed-width levels above 2**16 would cost more than a float16 per value; use DenseCodec.
_MAX_LEVELS = 1 << 16
_FLOAT_OUT = ("float16", "float32", "float64")
_DENSE = {"float32": "<f4", "float16": "<f2"}


class Codec(Protocol):
    """What every wire codec offers (see the module docstring for shapes)."""

    name: str
    bits_per_value: float

    def encode(self, x: np.ndarray) -> np.ndarray: ...
    def decode(self, payload: np.ndarray, d: int) -> np.ndarray: ...
    def size_bits(self, d: int) -> int: ...
    def ideal_bits(self, d: int) -> int: ...


def ceil_log2(n: int) -> int:
    """Smallest b with 2**b >= n, for an integer n >= 1 (exact integer arithmetic)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"ceil_log2: n={n!r} is not allowed; n must be an integer >= 1")
    return (int(n) - 1).bit_length()


def _check_d(d: int) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d={d!r} is not allowed; d (values per message) must be an integer >= 1")
    return int(d)


def _messages(x, codec: str) -> tuple[np.ndarray, bool]:
    """x as a 2-D (n, d) real array, and whether the caller gave one 1-D message."""
    a = np.asarray(x)
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(
            f"{codec}.encode: x has shape {a.shape}; allowed: (d,) or (n, d) with n, d >= 1"
        )
    if a.dtype.kind not in "iuf":
        raise ValueError(
            f"{codec}.encode: x has dtype {a.dtype}; allowed: a real integer or float dtype"
        )
    return (a[None, :] if a.ndim == 1 else a), a.ndim == 1


def _payload(payload, nbytes: int, codec: str) -> tuple[np.ndarray, bool]:
    """payload as a 2-D (n, nbytes) uint8 array, and whether it was one 1-D message."""
    p = np.asarray(payload)
    if p.dtype != np.uint8 or p.ndim not in (1, 2) or p.shape[-1] != nbytes or p.size == 0:
        raise ValueError(
            f"{codec}.decode: payload has dtype {p.dtype} and shape {p.shape}; allowed: uint8 "
            f"shaped ({nbytes},) or (n, {nbytes}) with n >= 1 for this d"
        )
    return (p[None, :] if p.ndim == 1 else p), p.ndim == 1


def _first_bad(a: np.ndarray, bad: np.ndarray, one: bool) -> str:
    """'value v at index (i, j)' for the first True of ``bad`` (index (j,) when the caller gave
    one 1-D message), for error messages."""
    i, j = np.unravel_index(int(np.argmax(bad)), bad.shape)
    where = f"({j},)" if one else f"({i}, {j})"
    return f"value {a[i, j].item()!r} at index {where}"


def _float_dtype(dtype, codec: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in _FLOAT_OUT:
        raise ValueError(f"{codec}.decode: dtype={dtype!r} is not allowed; allowed: {_FLOAT_OUT}")
    return dt


def _pack_planes(levels: np.ndarray, b: int) -> np.ndarray:
    """Unsigned (n, d) levels < 2**b -> uint8 (n, b * ceil(d/8)), plane 0 first."""
    planes = [np.packbits(np.bitwise_and(levels, 1 << k), axis=-1) for k in range(b)]
    return planes[0] if b == 1 else np.concatenate(planes, axis=-1)


def _unpack_planes(payload: np.ndarray, d: int, b: int) -> np.ndarray:
    """uint8 (n, b * ceil(d/8)) -> levels (n, d), in uint8 (b <= 8) or uint16."""
    work = np.uint8 if b <= 8 else np.uint16
    nb = (d + 7) // 8
    out = np.unpackbits(payload[:, :nb], axis=-1, count=d).astype(work, copy=False)
    for k in range(1, b):
        plane = np.unpackbits(payload[:, k * nb:(k + 1) * nb], axis=-1, count=d)
        plane = plane.astype(work, copy=False)
        np.left_shift(plane, k, out=plane)
        np.bitwise_or(out, plane, out=out)
    return out


@dataclass(frozen=True)
class SignCodec:
    """Values in {-1, +1} at 1 bit each (bit set = +1)."""

    name = "sign"
    bits_per_value = 1.0

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) or (d,) of ±1 -> uint8 (n, ceil(d/8)) or (ceil(d/8),)."""
        a, one = _messages(x, repr(self))
        plus = a == 1
        minus = a == -1
        # One pass per comparison plus a count beats |x| != 1, which allocates a float temporary.
        if np.count_nonzero(plus) + np.count_nonzero(minus) != a.size:
            bad = ~(plus | minus)
            raise ValueError(
                f"{self!r}.encode: x has {_first_bad(a, bad, one)}; the sign codec carries only "
                "-1 and +1 (the method maps zeros to a sign first)"
            )
        p = self.pack(plus)
        return p[0] if one else p

    @staticmethod
    def pack(plus: np.ndarray) -> np.ndarray:
        """Boolean array (..., d), True meaning +1 -> the packed payload (..., ceil(d/8)).

        The fast path for callers that already hold the signs as a mask (no value checks)."""
        return np.packbits(plus, axis=-1)

    def sum(self, payloads: np.ndarray, d: int) -> np.ndarray:
        """Sum of n sign messages (n, nbytes) -> int32 (d,) in [-n, n], without decoding to floats."""
        d = _check_d(d)
        p, _ = _payload(payloads, self.size_bits(d) // 8, repr(self))
        n = p.shape[0]
        plus = np.empty(d, dtype=np.int32)
        count_dtype = np.uint8 if n < 256 else np.int32
        # column blocks keep the unpacked bits in cache: one pass over the packed input
        block = max(8, (1 << 16) // n // 8 * 8)
        for j in range(0, d, block):
            w = min(block, d - j)
            bits = np.unpackbits(p[:, j // 8:(j + w + 7) // 8], axis=-1, count=w)
            plus[j:j + w] = bits.sum(axis=0, dtype=count_dtype)
        plus *= 2
        plus -= n
        return plus

    def decode(self, payload: np.ndarray, d: int, dtype="float32") -> np.ndarray:
        """uint8 payload -> ±1 values (n, d) or (d,) in ``dtype`` (float16/32/64)."""
        d = _check_d(d)
        dt = _float_dtype(dtype, repr(self))
        p, one = _payload(payload, self.size_bits(d) // 8, repr(self))
        u = np.unpackbits(p, axis=-1, count=d)
        # 2u - 1 in place on the fresh uint8 buffer (wraps 0 -> 255 = int8 -1), then one cast:
        # the only pass that touches the wide output.
        np.add(u, u, out=u)
        np.subtract(u, 1, out=u)
        out = u.view(np.int8).astype(dt)
        return out[0] if one else out

    def size_bits(self, d: int) -> int:
        """Payload bits of one message of d signs: 8 * ceil(d/8)."""
        return 8 * ((_check_d(d) + 7) // 8)

    def ideal_bits(self, d: int) -> int:
        """Information content of d signs: d bits."""
        return _check_d(d)


@dataclass(frozen=True)
class LevelCodec:
    """Integers in [0, levels) at b = ceil(log2(levels)) bits each, as b packed bit-planes."""

    levels: int

    def __post_init__(self):
        lv = self.levels
        is_int = isinstance(lv, (int, np.integer)) and not isinstance(lv, bool)
        if not is_int or not 2 <= lv <= _MAX_LEVELS:
            raise ValueError(
                f"LevelCodec: levels={lv!r} is not allowed; levels must be an integer in "
                f"[2, {_MAX_LEVELS}]"
            )

    @property
    def name(self) -> str:
        return f"level{self.levels}"

    @property
    def bits(self) -> int:
        """Packed bits per value: ceil(log2(levels))."""
        return ceil_log2(self.levels)

    @property
    def bits_per_value(self) -> float:
        return float(self.bits)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Integer array (n, d) or (d,) with values in [0, levels) -> uint8 payload."""
        a, one = _messages(x, repr(self))
        if a.dtype.kind not in "iu":
            raise ValueError(f"{self!r}.encode: x has dtype {a.dtype}; allowed: an integer dtype")
        lo, hi = a.min(), a.max()
        if lo < 0 or hi >= self.levels:
            bad = (a < 0) | (a >= self.levels)
            raise ValueError(
                f"{self!r}.encode: x has {_first_bad(a, bad, one)}; allowed: integers in "
                f"[0, {self.levels})"
            )
        p = self._encode_unsigned(a.astype(np.uint8 if self.bits <= 8 else np.uint16, copy=False))
        return p[0] if one else p

    def decode(self, payload: np.ndarray, d: int) -> np.ndarray:
        """uint8 payload -> int64 levels (n, d) or (d,)."""
        out, one = self._decode_unsigned(payload, d, repr(self))
        out = out.astype(np.int64)
        return out[0] if one else out

    def size_bits(self, d: int) -> int:
        """Payload bits of one message: 8 * b * ceil(d/8)."""
        return 8 * self.bits * ((_check_d(d) + 7) // 8)

    def ideal_bits(self, d: int) -> int:
        """Information content of d values: ceil(d * log2(levels)) bits (exact for powers of 2)."""
        d = _check_d(d)
        if self.levels & (self.levels - 1) == 0:
            return d * self.bits
        # d*log2(levels) is irrational here, and its distance to the nearest integer stays far
        # above the float64 rounding error (about d * 1e-16) for any realistic d.
        return math.ceil(d * math.log2(self.levels))

    def _encode_unsigned(self, levels: np.ndarray) -> np.ndarray:
        """Checked unsigned 2-D levels -> 2-D payload (for the codecs built on this one)."""
        return _pack_planes(levels, self.bits)

    def _decode_unsigned(self, payload: np.ndarray, d: int, who: str) -> tuple[np.ndarray, bool]:
        """Payload -> unsigned 2-D levels in a narrow dtype, checked against ``levels``; errors
        name the codec ``who``."""
        d = _check_d(d)
        p, one = _payload(payload, self.size_bits(d) // 8, who)
        out = _unpack_planes(p, d, self.bits)
        # b bits can spell more than `levels` codes; a payload using them is corrupt.
        if self.levels != 1 << self.bits and out.max() >= self.levels:
            raise ValueError(
                f"{who}.decode: payload holds level {int(out.max())}; allowed: levels in "
                f"[0, {self.levels})"
            )
        return out, one


@dataclass(frozen=True)
class SumCodec:
    """A sum S of n_workers signs (the Distributed-Lion Avg reply) sent as the level (S + N) / 2."""

    n_workers: int

    def __post_init__(self):
        n = self.n_workers
        is_int = isinstance(n, (int, np.integer)) and not isinstance(n, bool)
        if not is_int or not 1 <= n < _MAX_LEVELS:
            raise ValueError(
                f"SumCodec: n_workers={n!r} is not allowed; n_workers must be an integer in "
                f"[1, {_MAX_LEVELS - 1}]"
            )

    @property
    def _levels(self) -> LevelCodec:
        return LevelCodec(int(self.n_workers) + 1)

    @property
    def name(self) -> str:
        return f"sum{self.n_workers}"

    @property
    def bits_per_value(self) -> float:
        """ceil(log2(N + 1)) bits per value."""
        return self._levels.bits_per_value

    def encode(self, s: np.ndarray) -> np.ndarray:
        """Sums (n, d) or (d,) in {-N, -N+2, ..., N}, integer or integral float -> uint8 payload."""
        a, one = _messages(s, repr(self))
        n = int(self.n_workers)
        allowed = f"integers in [-{n}, {n}] with the parity of {n} (sums of {n} signs)"
        lo, hi = a.min(), a.max()
        # `not (lo >= -n)` also catches a NaN minimum.
        if not (lo >= -n and hi <= n):
            bad = ~((a >= -n) & (a <= n))
            raise ValueError(
                f"{self!r}.encode: s has {_first_bad(a, bad, one)}; allowed: {allowed}"
            )
        # In range, so the cast cannot overflow; a float that changes under it was fractional.
        si = a.astype(np.int32)
        if a.dtype.kind == "f" and not np.array_equal(si, a):
            raise ValueError(
                f"{self!r}.encode: s has {_first_bad(a, si != a, one)}; allowed: {allowed}"
            )
        si += n
        if np.any(si & 1):
            raise ValueError(
                f"{self!r}.encode: s has {_first_bad(a, (si & 1) != 0, one)}; allowed: {allowed}"
            )
        si >>= 1
        work = np.uint8 if self._levels.bits <= 8 else np.uint16
        p = self._levels._encode_unsigned(si.astype(work))
        return p[0] if one else p

    def decode(self, payload: np.ndarray, d: int) -> np.ndarray:
        """uint8 payload -> int64 sums S = 2 * level - N, shaped (n, d) or (d,)."""
        k, one = self._levels._decode_unsigned(payload, d, repr(self))
        s = k.astype(np.int64)
        s *= 2
        s -= int(self.n_workers)
        return s[0] if one else s

    def size_bits(self, d: int) -> int:
        """Payload bits of one message: 8 * ceil(log2(N + 1)) * ceil(d/8)."""
        return self._levels.size_bits(d)

    def ideal_bits(self, d: int) -> int:
        """Information content: ceil(d * log2(N + 1)) bits."""
        return self._levels.ideal_bits(d)


@dataclass(frozen=True)
class TernaryCodec:
    """Values in {-1, 0, +1} at 2 bits each (the level x + 1 of a LevelCodec(3))."""

    name = "ternary"
    bits_per_value = 2.0

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) or (d,) of {-1, 0, +1} (any real dtype) -> uint8 (n, 2 * ceil(d/8))."""
        a, one = _messages(x, repr(self))
        lo, hi = a.min(), a.max()
        t = None
        if lo >= -1 and hi <= 1:
            t = a.astype(np.int8)
            if a.dtype.kind == "f" and not np.array_equal(t, a):
                t = None
        if t is None:
            bad = (a != -1) & (a != 0) & (a != 1)
            raise ValueError(
                f"{self!r}.encode: x has {_first_bad(a, bad, one)}; allowed: -1, 0 and +1"
            )
        t += 1
        p = LevelCodec(3)._encode_unsigned(t.view(np.uint8))
        return p[0] if one else p

    def decode(self, payload: np.ndarray, d: int, dtype="float32") -> np.ndarray:
        """uint8 payload -> values in {-1, 0, +1}, (n, d) or (d,), in ``dtype`` (float16/32/64)."""
        dt = _float_dtype(dtype, repr(self))
        k, one = LevelCodec(3)._decode_unsigned(payload, d, repr(self))
        np.subtract(k, 1, out=k)  # uint8 wrap: 0 -> 255, which is int8 -1
        out = k.view(np.int8).astype(dt)
        return out[0] if one else out

    def size_bits(self, d: int) -> int:
        """Payload bits of one message: 16 * ceil(d/8)."""
        return LevelCodec(3).size_bits(d)

    def ideal_bits(self, d: int) -> int:
        """Information content of d ternary values: ceil(d * log2(3)) bits."""
        return LevelCodec(3).ideal_bits(d)


@dataclass(frozen=True)
class TernarySumCodec:
    """A sum S of N values in {-1, 0, +1} (D-Lion Avg over a ternary wire, TernGrad's server),
    sent as the level S + N at ceil(log2(2N+1)) bits."""

    n_workers: int

    def encode(self, total: np.ndarray) -> np.ndarray:
        """Integer sums (n, d) or (d,) in [-N, N] -> uint8 payload."""
        return LevelCodec(2 * self.n_workers + 1).encode(np.asarray(total, dtype=np.int64)
                                                         + self.n_workers)

    def decode(self, payload: np.ndarray, d: int) -> np.ndarray:
        """uint8 payload -> int64 sums, (n, d) or (d,)."""
        return LevelCodec(2 * self.n_workers + 1).decode(payload, d) - self.n_workers


@dataclass(frozen=True)
class DenseCodec:
    """Raw little-endian floats: dtype "float32" (32 bits per value) or "float16" (16 bits)."""

    dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.dtype, str) or self.dtype not in _DENSE:
            raise ValueError(
                f"DenseCodec: dtype={self.dtype!r} is not allowed; allowed: {tuple(_DENSE)}"
            )

    @property
    def name(self) -> str:
        return self.dtype

    @property
    def bits_per_value(self) -> float:
        return 8.0 * np.dtype(_DENSE[self.dtype]).itemsize

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Real values (n, d) or (d,) -> their ``dtype`` bytes (round to nearest; a float16
        overflow becomes inf, as on a real fp16 wire)."""
        a, one = _messages(x, repr(self))
        # A fresh C-ordered copy, so the payload never aliases the caller's array.
        p = np.array(a, dtype=_DENSE[self.dtype], order="C", copy=True).view(np.uint8)
        return p[0] if one else p

    def decode(self, payload: np.ndarray, d: int) -> np.ndarray:
        """uint8 payload -> values (n, d) or (d,) in ``dtype``."""
        d = _check_d(d)
        p, one = _payload(payload, self.size_bits(d) // 8, repr(self))
        out = np.ascontiguousarray(p).view(_DENSE[self.dtype]).astype(self.dtype)
        return out[0] if one else out

    def size_bits(self, d: int) -> int:
        """Payload bits of one message: 32 d (float32) or 16 d (float16)."""
        return int(self.bits_per_value) * _check_d(d)

    def ideal_bits(self, d: int) -> int:
        """Same as size_bits: every bit pattern is a distinct value."""
        return self.size_bits(d)
