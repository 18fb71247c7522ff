"""Compiled kernels for the hot loops (numba, the optional ``fast`` extra).

Each kernel here has a numpy twin that stays the reference (the D-Lion worker side in
``sim.methods.lion``, the bit-sliced count in ``sim.wire.bitslice``); the compiled one does the
same float operations in the same order (no fast-math: no fused multiply-add, no reordering),
so both give bit-identical results, which tests/test_kernels.py checks.

``compiled()`` returns the kernels, compiling them on first use (cached on disk by numba), or
None when numba is not installed or the environment sets ``DLION_SIM_NUMBA=0``. numba is
imported only then, so a run that never needs a kernel pays nothing for it.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np

_UNSET = object()
_FLAG_BLOCK = 4096  # coordinates per block of the D-Lion kernel: its flag bytes stay in L1
# Eight 0/1 flag bytes read as one little-endian uint64 and multiplied by this constant hold,
# in their top byte, the flags packed first-byte-most-significant (np.packbits' bit order).
_MSB_FIRST = np.uint64(0x8040201008040201)
_TOP_BYTE = np.uint64(56)
_kernels = _UNSET


def compiled():
    """The compiled kernels (a namespace of numba functions), or None without numba or with
    ``DLION_SIM_NUMBA=0`` (or on a big-endian machine, which the bit packing does not handle)."""
    global _kernels
    if _kernels is _UNSET:
        _kernels = None
        if os.environ.get("DLION_SIM_NUMBA", "1") != "0" and sys.byteorder == "little":
            try:
                import numba
            except ImportError:
                pass
            else:
                _kernels = _build(numba)
    return _kernels


@contextmanager
def numpy_only():
    """Within the block ``compiled()`` returns None, so the numpy reference code runs (for
    benchmarks that time both)."""
    global _kernels
    saved, _kernels = compiled(), None
    try:
        yield
    finally:
        _kernels = saved


def _build(numba):
    njit = numba.njit(cache=True, fastmath=False, nogil=True)

    @njit
    def dlion_worker(m, g, b1, f1, b2, f2, plus, zero):
        """For every row i and column j: c = m*b1 + g*f1, then m <- m*b2 + g*f2 (in place);
        bit j of row i of ``plus`` is c > 0 and of ``zero`` is c == 0 (np.packbits layout).
        ``zero`` must come zeroed: only blocks holding a zero are written. The scalars have m's
        dtype (f1 = 1 - b1 rounded to it, as numpy's weak Python-float scalars are). Returns the
        number of column blocks that hold a zero."""
        n, d = m.shape
        # One flag byte per coordinate in a block kept in L1, so the arithmetic loop has no
        # bit twiddling and vectorises; each 8 flag bytes are then packed with one multiply.
        pos = np.zeros(_FLAG_BLOCK, dtype=np.uint8)
        nil = np.zeros(_FLAG_BLOCK, dtype=np.uint8)
        pos_words, nil_words = pos.view(np.uint64), nil.view(np.uint64)
        found = 0
        for i in range(n):
            mi, gi, pi, zi = m[i], g[i], plus[i], zero[i]
            for j0 in range(0, d, _FLAG_BLOCK):
                w = min(_FLAG_BLOCK, d - j0)
                mj, gj = mi[j0:j0 + w], gi[j0:j0 + w]
                for t in range(w):
                    mv, gv = mj[t], gj[t]
                    c = mv * b1 + gv * f1
                    mj[t] = mv * b2 + gv * f2
                    pos[t] = c > 0
                    nil[t] = c == 0
                nbytes = (w + 7) // 8
                for t in range(w, 8 * nbytes):  # a last partial byte: its tail bits are 0
                    pos[t] = 0
                    nil[t] = 0
                out = pi[j0 // 8:j0 // 8 + nbytes]
                any_zero = np.uint64(0)
                for k in range(nbytes):
                    any_zero |= nil_words[k]
                    out[k] = (pos_words[k] * _MSB_FIRST) >> _TOP_BYTE
                if any_zero:  # rare: a zero is resolved by the caller's rule
                    found += 1
                    out = zi[j0 // 8:j0 // 8 + nbytes]
                    for k in range(nbytes):
                        out[k] = (nil_words[k] * _MSB_FIRST) >> _TOP_BYTE
        return found

    @njit
    def count_planes(words, levels, planes, carry):
        """Bit-sliced per-position counts of the set bits of ``words`` (n, W) uint64 into
        ``planes`` (levels, W), zeroed, plane k holding bit k of every count. Rows are added two
        at a time: a full adder into plane 0, then the carry rippled up; ``carry`` is a
        scratch row whose length is the column block kept in L1 cache."""
        n, width = words.shape
        block = carry.size
        for j0 in range(0, width, block):
            w = min(block, width - j0)
            p0 = planes[0, j0:j0 + w]
            for i in range(0, n, 2):
                a = words[i, j0:j0 + w]
                if i + 1 < n:
                    b = words[i + 1, j0:j0 + w]
                    for t in range(w):
                        x, y, p = a[t], b[t], p0[t]
                        s = x ^ y
                        p0[t] = s ^ p
                        carry[t] = (x & y) | (s & p)
                    total = i + 2
                else:
                    for t in range(w):
                        x, p = a[t], p0[t]
                        p0[t] = x ^ p
                        carry[t] = x & p
                    total = i + 1
                depth = 0  # bit length of the count so far: the planes the carry can reach
                while total:
                    depth += 1
                    total >>= 1
                for k in range(1, min(depth, levels)):
                    pk = planes[k, j0:j0 + w]
                    for t in range(w):
                        c, p = carry[t], pk[t]
                        pk[t] = p ^ c
                        carry[t] = p & c
        return planes

    @njit
    def fill(packed, marked, values):
        """Set the bits of ``packed`` that ``marked`` flags (both 1-D uint8) and whose value is
        True, taking ``values`` (one more than the flags: the last is never used) in order,
        most significant bit of each byte first. Branch-free within a byte: ties and coin flips
        are random, so branches on them would be mispredicted half the time."""
        used = 0
        for k in range(marked.size):
            flags = marked[k]
            if flags:
                byte = 0
                for s in range(7, -1, -1):
                    flag = (flags >> s) & 1
                    byte |= (values[used] & flag) << s
                    used += flag
                packed[k] |= byte
        return used

    return SimpleNamespace(dlion_worker=dlion_worker, count_planes=count_planes, fill=fill)
