"""QSGD's quantized-vector codec: bucket norms, signs and levels, Elias-coded or fixed-width."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.wire.codecs import LevelCodec
from sim.wire.elias import gamma_end, gamma_length, gamma_read, gamma_write, next_one, walk
from sim.wire.packing import concat, entry_layout, ragged
from sim.wire.tensors import Segments

CODINGS = ("elias", "fixed")


@dataclass(frozen=True)
class QuantCodec:
    """A d-vector quantized as norm[bucket] * sign * level / s, with levels in [0, s].

    Every message starts with one float32 norm (little-endian) per bucket of ``bucket`` entries.
    ``coding = "fixed"``: then a sign bit-plane (bit set = negative) and ceil(log2(s+1))
    level bit-planes (``sim.wire.codecs`` plane layout): a fixed size.
    ``coding = "elias"`` (QSGD's variable-length code): then the count of non-zero levels
    (uint32, big-endian) and, for each non-zero entry in order, Elias-gamma(gap to the previous
    non-zero, the first counted from -1), Elias-gamma(level) and a sign bit, padded to a byte.
    """

    d: int
    levels: int
    bucket: int
    coding: str = "elias"

    def __post_init__(self):
        for name in ("d", "levels", "bucket"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"QuantCodec: {name}={v!r} is not allowed; it must be an "
                                 "integer >= 1")
        if self.coding not in CODINGS:
            raise ValueError(f"QuantCodec: coding={self.coding!r} is not allowed; allowed: "
                             f"{', '.join(CODINGS)}")

    @property
    def segments(self) -> Segments:
        """The buckets as segments of the d entries (the last one may be shorter)."""
        starts = np.arange(0, self.d, self.bucket, dtype=np.int64)
        return Segments(starts, np.diff(np.append(starts, self.d)))

    def encode(self, norms: np.ndarray, q: np.ndarray):
        """Norms (n, buckets) and signed levels q (n, d) in [-s, s] -> n messages (an
        (n, nbytes) array for fixed coding, a list of 1-D uint8 arrays for Elias coding)."""
        n = q.shape[0]
        head = np.asarray(norms, dtype="<f4").view(np.uint8).reshape(n, -1)
        mag = np.abs(q)
        if self.coding == "fixed":
            return np.concatenate([head, np.packbits(q < 0, axis=1),
                                   LevelCodec(self.levels + 1).encode(mag)], axis=1)
        rows, cols = np.nonzero(mag)
        counts = np.bincount(rows, minlength=n)
        owner, pos = entry_layout(counts)
        prev = np.where(pos == 0, -1, np.roll(cols, 1))
        gaps, lv = cols - prev, mag[rows, cols]
        lengths = gamma_length(gaps) + gamma_length(lv) + 1
        stream = np.bincount(owner, weights=lengths, minlength=n).astype(np.int64)
        sizes = head.shape[1] + 4 + (stream + 7) // 8
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        bits = np.zeros(8 * int(sizes.sum()), dtype=np.uint8)
        header = np.concatenate([head, counts.astype(">u4").view(np.uint8).reshape(n, 4)], axis=1)
        bits[(8 * offsets)[:, None] + np.arange(8 * header.shape[1])] = np.unpackbits(header, axis=1)
        record_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        stream_start = np.concatenate([[0], np.cumsum(stream)[:-1]])
        at = 8 * (offsets + header.shape[1])[owner] + record_start - stream_start[owner]
        gamma_write(bits, at, gaps)
        at = at + gamma_length(gaps)
        gamma_write(bits, at, lv)
        bits[at + gamma_length(lv)] = q[rows, cols] < 0
        return ragged(np.packbits(bits), sizes)

    def decode(self, payloads) -> tuple[np.ndarray, np.ndarray]:
        """Messages -> (float32 norms (n, buckets), int64 signed levels (n, d))."""
        nb = self.segments.starts.size
        if self.coding == "fixed":
            p = np.asarray(payloads)
            sign_bytes = (self.d + 7) // 8
            norms = np.ascontiguousarray(p[:, :4 * nb]).view("<f4")
            negative = np.unpackbits(p[:, 4 * nb:4 * nb + sign_bytes], axis=1, count=self.d)
            mag = LevelCodec(self.levels + 1).decode(p[:, 4 * nb + sign_bytes:], self.d)
            return norms.astype(np.float32), np.where(negative == 1, -mag, mag)
        flat, sizes = concat(payloads)
        n = sizes.size
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        norms = np.ascontiguousarray(flat[offsets[:, None] + np.arange(4 * nb)]).view("<f4")
        counts = np.ascontiguousarray(flat[(offsets + 4 * nb)[:, None] + np.arange(4)])
        counts = counts.view(">u4").reshape(n).astype(np.int64)
        bits = np.unpackbits(flat)
        ones = next_one(bits)
        after_level = gamma_end(ones, gamma_end(ones, np.arange(bits.size + 1)))
        jump = np.minimum(after_level + 1, bits.size)  # one record on: two codes and a sign bit
        starts = 8 * (offsets + 4 * nb + 4)
        at = walk(jump, starts, int(counts.max(initial=0)))
        valid = np.arange(at.shape[1]) < counts[:, None]
        gaps, end = gamma_read(bits, ones, at, valid)
        lv, end = gamma_read(bits, ones, end, valid)
        negative = bits[np.minimum(end, bits.size - 1)] == 1
        cols = np.cumsum(np.where(valid, gaps.astype(np.int64), 0), axis=1) - 1
        if np.any(cols[valid] >= self.d):
            raise ValueError(f"QuantCodec.decode: a payload places an entry beyond d = {self.d}")
        q = np.zeros((n, self.d), dtype=np.int64)
        rows = np.broadcast_to(np.arange(n)[:, None], valid.shape)
        q[rows[valid], cols[valid]] = np.where(negative, -1, 1)[valid] * lv[valid].astype(np.int64)
        return norms.astype(np.float32), q
