"""Compressors: which entries a sparsifier sends, and unbiased stochastic rounding.

Vectorised over workers: ``x`` is (n, d), one row per worker; masks are boolean (n, d).
"""
from __future__ import annotations

import math

import numpy as np

from sim.units import count_of

#: DGC's threshold adaptation (synxlin/deep-gradient-compression, DGCCompressor defaults): a count
#: above UPPER * k falls back to exact top-k, one below LOWER * k lowers the threshold by LOWER,
#: at most ADAPT_ROUNDS times
UPPER, LOWER, ADAPT_ROUNDS = 1.3, 0.8, 10


def keep_count(density: float, d: int, round_up: bool = False) -> int:
    """Entries a sparsifier at ``density`` keeps of d: floor(density * d) (GRACE's top-k), or
    ceil(density * d) with ``round_up`` (DGC's reference); at least 1. A product within 1e-9
    of a whole number counts as that number (1 - 0.99 is not exactly 0.01)."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density={density!r} is not allowed; density must be in (0, 1]")
    return max(1, count_of(density, d, round_up))


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
    """Boolean (n, d): DGC's sampled top-k, 1 to k = ceil(density * d) entries per row whatever
    x holds.

    Per row: s = max(ceil(sample_ratio * d), ceil(2 / density)) entries drawn uniformly (with
    replacement); the threshold is the ceil(s * density)-th largest |x| among them, and the row
    keeps |x| >= threshold. A row keeping more than 1.3k falls back to exact top-k; one keeping
    fewer than 0.8k lowers its threshold by 0.8 and counts again (up to 10 times); a row then
    keeping more than k keeps its first k by position, as the reference does. When s >= d the
    selection is exact top-k. Exact zeros cannot inflate the count: a zero threshold selects
    every entry, so that row falls back to exact top-k.
    """
    n, d = x.shape
    k = keep_count(density, d, round_up=True)
    if k >= d:
        return np.ones((n, d), dtype=bool)
    size = max(math.ceil(sample_ratio * d), math.ceil(2 / density - 1e-9))
    if size >= d:
        return topk_mask(x, k)
    mag = np.abs(x)
    sample = np.take_along_axis(mag, rng.integers(0, d, size=(n, size)), axis=1)
    rank = keep_count(density, size, round_up=True)
    threshold = np.partition(sample, size - rank, axis=1)[:, size - rank]
    count = np.count_nonzero(mag >= threshold[:, None], axis=1)
    settled = np.zeros(n, dtype=bool)
    exact = np.zeros(n, dtype=bool)
    for _ in range(ADAPT_ROUNDS):
        over = ~settled & (count > k)
        exact |= over & (count > UPPER * k)
        low = ~settled & ~over & (count < LOWER * k)
        settled |= ~low
        if not low.any():
            break
        threshold[low] *= LOWER
        count[low] = np.count_nonzero(mag[low] >= threshold[low, None], axis=1)
    mask = mag >= threshold[:, None]
    if exact.any():
        mask[exact] = topk_mask(x[exact], k)
    mask &= np.cumsum(mask, axis=1) <= k
    return mask


def stochastic_round(u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Non-negative reals -> int64 floor(u) or floor(u) + 1, unbiased: E[result] = u."""
    low = np.floor(u)
    return (low + (rng.random(u.shape) < (u - low))).astype(np.int64)
