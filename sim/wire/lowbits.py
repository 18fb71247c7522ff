"""Dense vectors at fewer than 32 bits per value: bfloat16 and per-chunk min-max uniform
quantisation (DiLoCo's outer gradients at ``outer_bits`` 16, 8 and 4).

``BF16``: the float32 value rounded to nearest-even at 7 mantissa bits, keeping its sign and
all 8 exponent bits (the top 16 bits of the float32 pattern), as torch's ``bfloat16`` does.

``MinMaxCodec(bits, chunk)``: per chunk of ``chunk`` consecutive values (the last may be
shorter), with lo = min, hi = max over the chunk (float32) and s = (hi - lo) / (2^bits - 1):

    q = clip(rint((v - lo) / s), 0, 2^bits - 1)      (q = 0 when s = 0)
    v' = lo + q * s

round to nearest, so the error is at most s / 2 per value; lo and s travel as float32 per
chunk, then the levels as ``bits`` bit-planes. This is asymmetric min-max ("affine") uniform
quantisation, the project's choice among the schemes of the references (INTELLECT-1 sends int8
pseudo-gradients, Streaming DiLoCo 4-bit floats, E3M0); it is not a copy of either.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.wire.codecs import LevelCodec


class _BF16:
    """bfloat16 on the wire: 16 bits per value (see the module docstring)."""

    name = "bfloat16"

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Real values (n, d) -> uint8 (n, 2d): each value's bfloat16 bits, little-endian."""
        u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
        top = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        return np.ascontiguousarray(top).view(np.uint8)

    def decode(self, payload: np.ndarray, d: int) -> np.ndarray:
        """uint8 (n, 2d) -> float32 (n, d)."""
        top = np.ascontiguousarray(payload).view(np.uint16)[..., :d].astype(np.uint32)
        return (top << 16).view(np.float32)

    def size_bits(self, d: int) -> int:
        return 16 * d


BF16 = _BF16()


@dataclass(frozen=True)
class MinMaxCodec:
    """Per-chunk min-max uniform quantisation at ``bits`` bits (see the module docstring)."""

    bits: int
    chunk: int

    def _chunks(self, d: int) -> int:
        return -(-d // self.chunk)

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, chunks, chunk), padded with each row's last value (changes no min or
        max)."""
        n, d = x.shape
        pad = self._chunks(d) * self.chunk - d
        if pad:
            x = np.concatenate([x, np.repeat(x[:, -1:], pad, axis=1)], axis=1)
        return x.reshape(n, -1, self.chunk)

    def quantise(self, x: np.ndarray):
        """(lo (n, c) float32, s (n, c) float32, levels (n, d) int64) of real values (n, d)."""
        n, d = x.shape
        v = self._padded(np.asarray(x, dtype=np.float32))
        lo, hi = v.min(axis=-1), v.max(axis=-1)
        top = (1 << self.bits) - 1
        s = ((hi - lo) / np.float32(top)).astype(np.float32)
        safe = np.where(s > 0, s, np.float32(1))[..., None]
        q = np.clip(np.rint((v - lo[..., None]) / safe), 0, top)
        q = np.where(s[..., None] > 0, q, 0).reshape(n, -1)[:, :d].astype(np.int64)
        return lo, s, q

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Real values (n, d) -> uint8 (n, 8c + bits*ceil(d/8)): lo, s, the level planes."""
        lo, s, q = self.quantise(x)
        planes = LevelCodec(1 << self.bits).encode(q)
        return np.concatenate([lo.view(np.uint8), s.view(np.uint8), planes], axis=1)

    def decode(self, payload: np.ndarray, d: int) -> np.ndarray:
        """uint8 payload (n, bytes) -> float32 (n, d) values lo + q * s."""
        c = self._chunks(d)
        p = np.ascontiguousarray(payload)
        lo, s = p[:, :4 * c].view(np.float32), p[:, 4 * c:8 * c].view(np.float32)
        q = LevelCodec(1 << self.bits).decode(p[:, 8 * c:], d)
        wide = np.repeat(np.arange(c), self.chunk)[:d]
        return (lo[:, wide] + q.astype(np.float32) * s[:, wide]).astype(np.float32)

    def size_bits(self, d: int) -> int:
        return 64 * self._chunks(d) + LevelCodec(1 << self.bits).size_bits(d)
