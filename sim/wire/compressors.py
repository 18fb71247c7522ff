"""Compressors: which entries a sparsifier sends, and unbiased stochastic rounding.

Vectorised over workers: ``x`` is (n, d), one row per worker; masks are boolean (n, d).
"""
from __future__ import annotations

import math

import numpy as np


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
