"""The tensors of a flat parameter vector, for methods that scale or select per tensor."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
