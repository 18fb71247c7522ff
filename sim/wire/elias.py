"""Elias-gamma bit coder, vectorised: the variable-length integer code of QSGD's wire.

Codes are written into and read from arrays of bits (uint8 0/1), one bit per element; every
function handles many codes at once.
"""
from __future__ import annotations

import numpy as np

from sim.wire.packing import entry_layout


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
    owner, j = entry_layout(top + 1)
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
