"""The sparse codec: k (float32 value, index) pairs of a d-vector, for top-k style messages."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.wire.codecs import ceil_log2
from sim.wire.packing import concat, entry_layout, field_bits, field_values, ragged

INDEX_BITS = ("int32", "int64", "log2d")


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
        owner, pos = entry_layout(counts)
        flat = np.zeros(int(sizes.sum()), dtype=np.uint8)
        value_bytes = np.asarray(values, dtype="<f4").view(np.uint8).reshape(-1, 4)
        flat[(offsets[owner] + 4 * pos)[:, None] + np.arange(4)] = value_bytes
        # indices are written as one bit stream whose per-message sections start on a byte
        bits = np.zeros(8 * flat.size, dtype=np.uint8)
        start = 8 * (offsets[owner] + 4 * counts[owner]) + pos * self.width
        bits[start[:, None] + np.arange(self.width)] = field_bits(indices, self.width)
        flat |= np.packbits(bits)
        return ragged(flat, sizes)

    def unpack(self, payloads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Messages -> (message of each entry, index, float32 value), grouped by message."""
        flat, sizes = concat(payloads)
        counts = (8 * sizes) // (32 + self.width)
        if np.any(self.size_bytes(counts) != sizes):
            bad = sizes[self.size_bytes(counts) != sizes][0]
            raise ValueError(f"SparseCodec.unpack: a payload of {bad} bytes is not 4k + "
                             f"ceil(k*{self.width}/8) bytes for any k")
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        owner, pos = entry_layout(counts)
        values = flat[(offsets[owner] + 4 * pos)[:, None] + np.arange(4)]
        values = np.ascontiguousarray(values).view("<f4").reshape(-1)
        start = 8 * (offsets[owner] + 4 * counts[owner]) + pos * self.width
        bits = np.unpackbits(flat)[start[:, None] + np.arange(self.width)]
        indices = field_values(bits).astype(np.int64)
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
