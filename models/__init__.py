"""Objectives: synthetic and real training problems behind one protocol (``Objective``)."""
from models.base import REGISTRY, Objective, make, register
# importing the modules registers the built-ins
from models import synthetic, mlp, softmax, charlm, gpt, vit  # noqa: F401,E402

__all__ = ["Objective", "REGISTRY", "make", "register"]
