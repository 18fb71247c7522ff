"""Variable-length messages: ragged payload lists, per-entry layouts and big-endian bit fields.

A batch of messages is an (n, nbytes) uint8 array when all have one size, else a list of n 1-D
uint8 arrays. Bit fields are written most significant bit first.
"""
from __future__ import annotations

import numpy as np


def field_bits(values: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers (m,) -> their ``width`` bits (m, width), most significant first."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)


def field_values(bits: np.ndarray) -> np.ndarray:
    """Bits (m, width), most significant first -> uint64 (m,)."""
    out = np.zeros(bits.shape[0], dtype=np.uint64)
    for k in range(bits.shape[1]):
        out = (out << np.uint64(1)) | bits[:, k].astype(np.uint64)
    return out


def ragged(flat: np.ndarray, sizes: np.ndarray):
    """Concatenated messages -> (n, size) when all have one size, else a list of n arrays."""
    if np.all(sizes == sizes[0]):
        return flat.reshape(sizes.size, int(sizes[0]))
    return np.split(flat, np.cumsum(sizes)[:-1])


def concat(payloads) -> tuple[np.ndarray, np.ndarray]:
    """Messages (an (n, nbytes) array or a list of 1-D uint8 arrays) -> (flat bytes, sizes)."""
    if isinstance(payloads, np.ndarray) and payloads.ndim == 2:
        return payloads.reshape(-1), np.full(payloads.shape[0], payloads.shape[1], np.int64)
    if isinstance(payloads, np.ndarray) and payloads.ndim == 1:
        return payloads, np.array([payloads.size], np.int64)
    flat = np.concatenate(payloads) if len(payloads) else np.zeros(0, np.uint8)
    return flat, np.array([p.size for p in payloads], np.int64)


def entry_layout(counts: np.ndarray):
    """For entries grouped by message: each entry's message and its position in the message."""
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return owner, np.arange(int(counts.sum())) - first[owner]
