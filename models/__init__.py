"""Objectives: synthetic and real training problems behind one protocol (``Objective``)."""
from models.base import REGISTRY, Objective, make, register
from models import synthetic, mlp, softmax, charlm  # noqa: F401,E402  (register the built-ins)

__all__ = ["Objective", "REGISTRY", "make", "register"]
