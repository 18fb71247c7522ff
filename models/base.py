"""The Objective protocol every model implements, and the registry behind ``models.make``."""
from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Objective(Protocol):
    """A differentiable training objective whose data is sharded across workers.

    ``dim`` is the number of parameters. ``grads`` takes ``params`` shaped ``(dim,)`` (every
    worker holds the same x) or ``(n_workers, dim)`` and returns the per-worker minibatch
    losses ``(n_workers,)`` and gradients ``(n_workers, dim)``; worker i samples only from its
    own shard. ``evaluate`` returns at least ``{"loss": ...}`` on held-out or full data.
    """

    dim: int

    def init(self, rng: np.random.Generator) -> np.ndarray: ...

    def grads(self, params: np.ndarray, n_workers: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...

    def evaluate(self, params: np.ndarray) -> dict[str, float]: ...


#: name -> (factory, one-line description). Factories take keyword parameters only.
REGISTRY: dict[str, tuple[Callable[..., Objective], str]] = {}


def register(name: str, description: str):
    """Class/function decorator adding a built-in objective under ``name``."""
    def wrap(factory):
        REGISTRY[name] = (factory, description)
        return factory
    return wrap


def make(name: str, **params) -> Objective:
    """Build the built-in objective ``name`` with keyword ``params``.

    Raises ``ValueError`` naming the unknown objective and the valid ones.
    """
    if name not in REGISTRY:
        raise ValueError(f"objective.name = {name!r} is not a built-in objective; "
                         f"choose one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name][0](**params)
