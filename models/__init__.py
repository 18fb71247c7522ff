"""Objectives: synthetic and real training problems behind one protocol (``Objective``)."""
from models.base import REGISTRY, Objective, make, register
from models import synthetic  # noqa: F401  (registers the built-in synthetic objectives)

__all__ = ["Objective", "REGISTRY", "make", "register"]
