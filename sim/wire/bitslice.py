"""Bit-sliced counting: how many of n packed bit vectors have each bit set, without unpacking.

n messages of d bits, packed as ``np.packbits`` packs them (first bit in the most significant
bit, tail bits of the last byte zero), give for each of the d positions a count in [0, n].
The counts are kept bit-sliced: b = n.bit_length() packed bit-planes, plane k holding bit k of
every count, least significant plane first. That is the payload layout of a ``LevelCodec``, so
a D-Lion Avg reply is the planes themselves, and a majority vote compares the planes with a
constant plane by plane.

Rows are added 64 positions at a time as uint64 words by carry-save adders (Harley-Seal: one
pending row and one full adder per level, the carry moving up a level), so a count costs a few
word operations per input word and never one byte per bit. The compiled kernel of
``sim.kernels`` (numba) does the same additions when it is installed.
"""
from __future__ import annotations

import numpy as np

from sim.kernels import compiled

_WORDS = 1 << 12  # uint64 words per column block: its rows, planes and scratch stay in L2
_KERNEL_BLOCK = 256  # words per block of the compiled kernel: its carry row stays in L1


def count_planes(rows: np.ndarray, d: int, levels: int | None = None) -> np.ndarray:
    """Packed bit vectors uint8 (n, ceil(d/8)) -> their per-position counts of set bits as
    uint8 bit-planes (levels, ceil(d/8)), least significant first; bits past d are 0.

    ``levels`` defaults to n.bit_length(); fewer are allowed when the caller knows every count
    is below 2**levels (a row given twice to count double). Bits past d in the input (a corrupt
    tail) are not counted."""
    n, nbytes = rows.shape
    levels = n.bit_length() if levels is None else levels
    width = -(-nbytes // 8)
    if nbytes % 8 == 0 and rows.flags.c_contiguous:
        words = rows.view(np.uint64)
    else:  # pad each row to whole words (the padding counts zero)
        padded = np.zeros((n, 8 * width), dtype=np.uint8)
        padded[:, :nbytes] = rows
        words = padded.view(np.uint64)
    kernels = compiled()
    if kernels is not None:
        planes = np.zeros((levels, width), dtype=np.uint64)
        kernels.count_planes(words, levels, planes, np.empty(_KERNEL_BLOCK, dtype=np.uint64))
    else:
        planes = np.empty((levels, width), dtype=np.uint64)
        for j in range(0, width, _WORDS):
            planes[:, j:j + _WORDS] = _harley_seal(words[:, j:j + _WORDS], levels)
    out = np.ascontiguousarray(planes.view(np.uint8)[:, :nbytes])
    out[:, -1] &= _tail_mask(d)
    return out


def _harley_seal(words: np.ndarray, levels: int) -> np.ndarray:
    """Counts of the rows of ``words`` (n, w) uint64 as ``levels`` planes (levels, w) uint64."""
    w = words.shape[1]
    planes = np.zeros((levels, w), dtype=np.uint64)
    fresh = [True] * levels  # the plane is still zero: a half adder is enough
    pending: list = [None] * levels  # (row, owned): a row of weight 2**level waiting for another
    pool: list = []  # scratch rows; an owned row goes back here once it has been read

    def scratch():
        return pool.pop() if pool else np.empty(w, dtype=np.uint64)

    def release(row, owned):
        if owned:
            pool.append(row)

    def add(level, x, owned):
        while level < levels:
            if pending[level] is None:
                pending[level] = (x, owned)
                return
            (y, y_owned), pending[level] = pending[level], None
            plane, carry = planes[level], scratch()
            np.bitwise_and(x, y, out=carry)
            if fresh[level]:
                np.bitwise_xor(x, y, out=plane)
                fresh[level] = False
            else:  # a full adder: plane + x + y = new plane + 2 * carry
                t, u = scratch(), scratch()
                np.bitwise_xor(x, y, out=t)
                np.bitwise_and(t, plane, out=u)
                np.bitwise_xor(t, plane, out=plane)
                np.bitwise_or(carry, u, out=carry)
                pool.extend((t, u))
            release(x, owned)
            release(y, y_owned)
            x, owned, level = carry, True, level + 1
        release(x, owned)  # a carry out of the top plane is all zeros: every count < 2**levels

    for row in words:
        add(0, row, False)
    for level in range(levels):  # the rows left waiting: add each into its plane
        if pending[level] is not None:
            (x, owned), pending[level] = pending[level], None
            plane = planes[level]
            if fresh[level]:
                np.copyto(plane, x)
            else:
                carry = scratch()
                np.bitwise_and(plane, x, out=carry)
                np.bitwise_xor(plane, x, out=plane)
                add(level + 1, carry, True)
            release(x, owned)
    return planes


def _tail_mask(d: int) -> int:
    """The valid bits of the last byte of a d-bit packed vector."""
    return (0xFF << (-d % 8)) & 0xFF


def compare(planes: np.ndarray, k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit-sliced counts (b, ceil(d/8)) against the constant k: the packed masks (ceil(d/8),)
    of count > k and of count == k, tail bits zero. Planes are read from the top: a count is
    greater at the first bit where it has a 1 and k a 0, the bits above being equal."""
    greater = np.zeros(planes.shape[1], dtype=np.uint8)
    equal = np.full(planes.shape[1], 0xFF, dtype=np.uint8)
    if k >> planes.shape[0]:  # k beyond every count
        equal[:] = 0
        return greater, equal
    for bit in range(planes.shape[0] - 1, -1, -1):
        plane = planes[bit]
        if (k >> bit) & 1:
            equal &= plane
        else:
            greater |= equal & plane
            equal &= ~plane
    equal[-1] &= _tail_mask(d)
    greater[-1] &= _tail_mask(d)
    return greater, equal


def counts(planes: np.ndarray, d: int) -> np.ndarray:
    """Bit-sliced counts (b, ceil(d/8)) -> the counts themselves, (d,) in the smallest unsigned
    dtype that holds them (unpacking b planes, not the n rows they count)."""
    dtype = np.uint8 if planes.shape[0] <= 8 else np.uint32
    out = np.unpackbits(planes[0], count=d).astype(dtype, copy=False)
    for bit in range(1, planes.shape[0]):
        plane = np.unpackbits(planes[bit], count=d).astype(dtype, copy=False)
        np.left_shift(plane, bit, out=plane)
        out |= plane
    return out


def popcount(packed: np.ndarray) -> int:
    """Number of set bits of a packed array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return int(np.bitwise_count(packed).sum(dtype=np.int64))
    return int(np.count_nonzero(np.unpackbits(packed)))


def fill(packed: np.ndarray, marked: np.ndarray, d: int, values: np.ndarray) -> None:
    """Set, in place, the bits of ``packed`` (..., ceil(d/8)) that ``marked`` (same shape, tail
    bits 0) flags and whose value is True, taking ``values`` (bool, one per marked bit) in index
    order, row after row."""
    kernels = compiled()
    if kernels is not None and packed.flags.c_contiguous and marked.flags.c_contiguous:
        kernels.fill(packed.reshape(-1), marked.reshape(-1), np.append(values, False))
        return
    rows_p, rows_m = packed.reshape(-1, packed.shape[-1]), marked.reshape(-1, packed.shape[-1])
    step = max(1, _WORDS * 64 // d)  # rows at a time: the unpacked flags stay small
    used = 0
    for r in range(0, rows_m.shape[0], step):
        flags = np.unpackbits(rows_m[r:r + step], axis=-1, count=d).view(bool)
        index = np.flatnonzero(flags)
        flags[...] = False
        flags.reshape(-1)[index[values[used:used + index.size]]] = True
        used += index.size
        rows_p[r:r + step] |= np.packbits(flags, axis=-1)
