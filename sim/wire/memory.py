"""Error-feedback memory: what a compressor failed to send is added to its next input.

``compensate`` before compressing, ``feedback`` after, as GRACE's ``Memory`` role. Arrays are
(n, d): one row per worker.
"""
from __future__ import annotations

import numpy as np


def compensate(memory: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The input the compressor sees: x plus what earlier steps failed to send (new array)."""
    return memory + x


def feedback(compensated: np.ndarray, transmitted: np.ndarray) -> np.ndarray:
    """The new memory: what the compensated input had that the wire did not carry."""
    return compensated - transmitted
