"""What the compressed-communication baselines share, cut the way GRACE cuts a method.

- compressors (what is sent): top-k and sampled-threshold selection, stochastic rounding;
- memory (error feedback): ``compensate`` before compressing, ``feedback`` after;
- codecs (how it is written): ``SparseCodec`` (float32 values + fixed-width indices) and the
  Elias-gamma bit coder (``gamma_write`` / ``gamma_read``) that QSGD's variable-length wire uses;
- tensors: ``Segments``, the per-tensor slices of the flat parameter vector, for per-tensor scales.

Everything is vectorised over workers: arrays are (n, d), messages are the rows.
Bit fields are written most significant bit first (network byte order for 32/64-bit fields).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.codecs import LevelCodec, ceil_log2

INDEX_BITS = ("int32", "int64", "log2d")


# --- tensors -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Segments:
    """The tensors of a flat vector of ``d`` parameters: ``starts`` (T,) and ``sizes`` (T,)."""

    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, d: int, shapes=None) -> "Segments":
        """Segments from an objective's [(name, shape), ...] covering d, or one segment (None)."""
        if shapes is None:
            return cls(np.zeros(1, np.int64), np.array([d], np.int64))
        sizes = np.array([math.prod(shape) for _, shape in shapes], dtype=np.int64)
        if sizes.size == 0 or np.any(sizes < 1) or sizes.sum() != d:
            raise ValueError(f"shapes={shapes!r} is not allowed; the tensor shapes must be "
                             f"non-empty and cover the d={d} parameters exactly")
        return cls(np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Per-tensor sums of x (n, d) -> (n, T)."""
        return np.add.reduceat(x, self.starts, axis=1)

    def max(self, x: np.ndarray) -> np.ndarray:
        """Per-tensor maxima of x (n, d) -> (n, T)."""
        return np.maximum.reduceat(x, self.starts, axis=1)

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Per-tensor values (n, T) -> (n, d), each repeated over its tensor."""
        return np.repeat(values, self.sizes, axis=-1)


# --- error feedback memory -----------------------------------------------------------------

def compensate(memory: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The input the compressor sees: x plus what earlier steps failed to send (new array)."""
    return memory + x


def feedback(compensated: np.ndarray, transmitted: np.ndarray) -> np.ndarray:
    """The new memory: what the compensated input had that the wire did not carry."""
    return compensated - transmitted


# --- compressors: which entries a sparsifier sends -----------------------------------------

def keep_count(density: float, d: int) -> int:
    """Entries a sparsifier at ``density`` keeps of d: floor(density * d), at least 1."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density={density!r} is not allowed; density must be in (0, 1]")
    return max(1, int(density * d))


def topk_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean (n, d): the k entries of largest |x| in each row (exact, ties broken arbitrarily)."""
    n, d = x.shape
    if k >= d:
        return np.ones((n, d), dtype=bool)
    cols = np.argpartition(np.abs(x), d - k, axis=1)[:, d - k:]
    mask = np.zeros((n, d), dtype=bool)
    np.put_along_axis(mask, cols, True, axis=1)
    return mask


def sampled_mask(x: np.ndarray, density: float, sample_ratio: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, d): |x| >= a per-row threshold estimated from a random sample (DGC, GradDrop).

    The threshold is the ceil(density * s)-th largest |x| among s entries drawn uniformly, so a
    row keeps about density * d entries (a variable count). The sample holds at least 100/density
    entries (about 10% spread in the count); when that is the whole row the selection is exact.
    """
    n, d = x.shape
    size = max(math.ceil(sample_ratio * d), math.ceil(100 / density))
    if size >= d:
        return topk_mask(x, keep_count(density, d))
    mag = np.abs(x)
    sample = np.take_along_axis(mag, rng.integers(0, d, size=(n, size)), axis=1)
    rank = math.ceil(density * size)
    threshold = np.partition(sample, size - rank, axis=1)[:, size - rank]
    return mag >= threshold[:, None]


def stochastic_round(u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Non-negative reals -> int64 floor(u) or floor(u) + 1, unbiased: E[result] = u."""
    low = np.floor(u)
    return (low + (rng.random(u.shape) < (u - low))).astype(np.int64)


# --- bit fields ----------------------------------------------------------------------------

def _field_bits(values: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers (m,) -> their ``width`` bits (m, width), most significant first."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)


def _field_values(bits: np.ndarray) -> np.ndarray:
    """Bits (m, width), most significant first -> uint64 (m,)."""
    out = np.zeros(bits.shape[0], dtype=np.uint64)
    for k in range(bits.shape[1]):
        out = (out << np.uint64(1)) | bits[:, k].astype(np.uint64)
    return out


def _ragged(flat: np.ndarray, sizes: np.ndarray):
    """Concatenated messages -> (n, size) when all have one size, else a list of n arrays."""
    if np.all(sizes == sizes[0]):
        return flat.reshape(sizes.size, int(sizes[0]))
    return np.split(flat, np.cumsum(sizes)[:-1])


def _concat(payloads) -> tuple[np.ndarray, np.ndarray]:
    """Messages (an (n, nbytes) array or a list of 1-D uint8 arrays) -> (flat bytes, sizes)."""
    if isinstance(payloads, np.ndarray) and payloads.ndim == 2:
        return payloads.reshape(-1), np.full(payloads.shape[0], payloads.shape[1], np.int64)
    if isinstance(payloads, np.ndarray) and payloads.ndim == 1:
        return payloads, np.array([payloads.size], np.int64)
    flat = np.concatenate(payloads) if len(payloads) else np.zeros(0, np.uint8)
    return flat, np.array([p.size for p in payloads], np.int64)


def _entry_layout(counts: np.ndarray):
    """For entries grouped by message: each entry's message and its position in the message."""
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return owner, np.arange(int(counts.sum())) - first[owner]


# --- sparse codec ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SparseCodec:
    """k (value, index) pairs of a d-vector: k float32 values (little-endian), then k indices of
    ``index_bits`` each ("int32", "int64", or "log2d" = ceil(log2 d) bits), packed MSB first and
    padded to a whole byte. A message is 4k + ceil(k * width / 8) bytes, so k follows from its
    length and needs no header."""

    d: int
    index_bits: str = "int32"

    def __post_init__(self):
        if isinstance(self.d, bool) or not isinstance(self.d, (int, np.integer)) or self.d < 1:
            raise ValueError(f"SparseCodec: d={self.d!r} is not allowed; d must be an integer >= 1")
        if self.index_bits not in INDEX_BITS:
            raise ValueError(f"SparseCodec: index_bits={self.index_bits!r} is not allowed; "
                             f"allowed: {', '.join(INDEX_BITS)}")
        if self.index_bits == "int32" and self.d > 1 << 32:
            raise ValueError(f"SparseCodec: d={self.d} does not fit int32 indices; use int64")

    @property
    def width(self) -> int:
        """Bits per index."""
        return {"int32": 32, "int64": 64}.get(self.index_bits) or max(1, ceil_log2(int(self.d)))

    def size_bytes(self, k):
        """Bytes of a message of k entries: 4k + ceil(k * width / 8) (k int or int array)."""
        return 4 * k + (k * self.width + 7) // 8

    def encode(self, x: np.ndarray, mask: np.ndarray):
        """Rows of x (n, d) restricted to ``mask`` (n, d) -> n messages: an (n, nbytes) uint8
        array when every row keeps the same count, else a list of n 1-D uint8 arrays."""
        rows, cols = np.nonzero(mask)
        counts = np.bincount(rows, minlength=mask.shape[0])
        return self.pack(cols, x[rows, cols], counts)

    def pack(self, indices: np.ndarray, values: np.ndarray, counts: np.ndarray):
        """Entries grouped by message (``counts`` (n,) per message) -> n messages (see encode)."""
        counts = np.asarray(counts, dtype=np.int64)
        sizes = self.size_bytes(counts)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        owner, pos = _entry_layout(counts)
        flat = np.zeros(int(sizes.sum()), dtype=np.uint8)
        value_bytes = np.asarray(values, dtype="<f4").view(np.uint8).reshape(-1, 4)
        flat[(offsets[owner] + 4 * pos)[:, None] + np.arange(4)] = value_bytes
        # indices are written as one bit stream whose per-message sections start on a byte
        bits = np.zeros(8 * flat.size, dtype=np.uint8)
        start = 8 * (offsets[owner] + 4 * counts[owner]) + pos * self.width
        bits[start[:, None] + np.arange(self.width)] = _field_bits(indices, self.width)
        flat |= np.packbits(bits)
        return _ragged(flat, sizes)

    def unpack(self, payloads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Messages -> (message of each entry, index, float32 value), grouped by message."""
        flat, sizes = _concat(payloads)
        counts = (8 * sizes) // (32 + self.width)
        if np.any(self.size_bytes(counts) != sizes):
            bad = sizes[self.size_bytes(counts) != sizes][0]
            raise ValueError(f"SparseCodec.unpack: a payload of {bad} bytes is not 4k + "
                             f"ceil(k*{self.width}/8) bytes for any k")
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        owner, pos = _entry_layout(counts)
        values = flat[(offsets[owner] + 4 * pos)[:, None] + np.arange(4)]
        values = np.ascontiguousarray(values).view("<f4").reshape(-1)
        start = 8 * (offsets[owner] + 4 * counts[owner]) + pos * self.width
        bits = np.unpackbits(flat)[start[:, None] + np.arange(self.width)]
        indices = _field_values(bits).astype(np.int64)
        if indices.size and indices.max() >= self.d:
            raise ValueError(f"SparseCodec.unpack: index {int(indices.max())} is not allowed; "
                             f"indices must be < d = {self.d}")
        return owner, indices, values.astype(np.float32)

    def decode(self, payloads, n: int | None = None) -> np.ndarray:
        """Messages -> dense float32 (n, d), zero off each message's support (a 1-D payload is
        one message)."""
        owner, indices, values = self.unpack(payloads)
        n = len(payloads) if n is None and not isinstance(payloads, np.ndarray) else n
        if n is None:
            n = 1 if payloads.ndim == 1 else payloads.shape[0]
        out = np.zeros((n, self.d), dtype=np.float32)
        out[owner, indices] = values
        return out


# --- Elias-gamma coder ------------------------------------------------------------------------

def gamma_length(values: np.ndarray) -> np.ndarray:
    """Bits of the Elias-gamma code of each integer >= 1: 2 * floor(log2 v) + 1 (int64)."""
    v = np.asarray(values)
    if v.size and v.min() < 1:
        raise ValueError(f"gamma_length: value {int(v.min())} is not allowed; Elias-gamma codes "
                         "integers >= 1")
    return 2 * _floor_log2(v) + 1


def _floor_log2(v: np.ndarray) -> np.ndarray:
    # frexp is exact for integers below 2**53, far beyond any level, gap or count coded here
    return np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1


def gamma_write(bits: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
    """Write the Elias-gamma code of each value (>= 1) into the zeroed bit array ``bits`` at
    ``pos``: floor(log2 v) zeros, then v in floor(log2 v) + 1 bits, most significant first."""
    values = np.asarray(values, dtype=np.uint64)
    gamma_length(values)
    top = _floor_log2(values)
    owner, j = _entry_layout(top + 1)
    bits[np.repeat(pos + top, top + 1) + j] = (
        (values[owner] >> (top[owner] - j).astype(np.uint64)) & np.uint64(1)).astype(np.uint8)


def next_one(bits: np.ndarray) -> np.ndarray:
    """For each position p of ``bits`` and one past the end: the first q >= p with a 1 there
    (len(bits) when none): the table ``gamma_read`` parses with."""
    t = bits.size
    where = np.where(bits.astype(bool), np.arange(t), t)
    return np.append(np.minimum.accumulate(where[::-1])[::-1], t)


def gamma_end(ones: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Where the Elias-gamma codes starting at ``pos`` end (one past their last bit), from the
    ``next_one`` table alone: a code with z leading zeros is 2z + 1 bits long."""
    t = ones.size - 1
    pos = np.minimum(pos, t)
    return np.minimum(2 * ones[pos] - pos + 1, t)


def gamma_read(bits: np.ndarray, ones: np.ndarray, pos: np.ndarray,
               valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode the Elias-gamma codes starting at ``pos`` (any shape): (values uint64, end
    positions). ``ones`` is ``next_one(bits)``; entries not ``valid`` are read as garbage (their
    positions may point past the stream) and must be masked by the caller."""
    t = bits.size
    pos = np.minimum(pos, t)
    first = ones[pos]
    zeros = first - pos
    if valid is not None:
        zeros = np.where(valid, zeros, 0)
    values = np.zeros(pos.shape, dtype=np.uint64)
    for j in range(int(zeros.max(initial=0)) + 1):
        bit = bits[np.minimum(first + j, t - 1)].astype(np.uint64) if t else 0
        values = np.where(j <= zeros, (values << np.uint64(1)) | bit, values)
    return values, np.minimum(first + zeros + 1, t)


def walk(jump: np.ndarray, starts: np.ndarray, count: int) -> np.ndarray:
    """Positions of the first ``count`` records of each stream: (n, count), where record i+1
    starts at jump[start of record i]. Pointer doubling: log2(count) vectorised rounds."""
    out = np.empty((starts.size, count), dtype=np.int64)
    if count == 0:
        return out
    out[:, 0] = starts
    filled = 1
    while filled < count:
        step = min(filled, count - filled)
        out[:, filled:filled + step] = jump[out[:, :step]]
        filled += step
        if filled < count:
            jump = jump[jump]  # now jumps 2**k records
    return out


# --- quantized-vector codec (QSGD) -------------------------------------------------------------

CODINGS = ("elias", "fixed")


@dataclass(frozen=True)
class QuantCodec:
    """A d-vector quantized as norm[bucket] * sign * level / s, with levels in [0, s].

    Every message starts with one float32 norm (little-endian) per bucket of ``bucket`` entries.
    ``coding = "fixed"``: then a sign bit-plane (bit set = negative) and ceil(log2(s+1))
    level bit-planes (``sim.codecs`` plane layout): a fixed size.
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
        owner, pos = _entry_layout(counts)
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
        return _ragged(np.packbits(bits), sizes)

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
        flat, sizes = _concat(payloads)
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
