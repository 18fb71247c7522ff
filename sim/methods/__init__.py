"""Optimizer numerics: what each worker sends and what the server replies, one file per family.

``base`` holds the contract (see its docstring), the registry and the pieces several families
share; each family module registers its methods when imported, in the order listed here (the
order of ``dlion-sim list methods``). To add a method, write a module beside these that calls
``register`` and add it to the list (docs/contributing.md has a worked example).
"""
from sim.methods.base import (  # noqa: F401  (the public names of the registry)
    HYPERPARAMETERS,
    METHODS,
    Method,
    get,
    message_bits,
    message_rounds,
    register,
)
from sim.methods import (  # noqa: F401,E402  (each registers its methods)
    lion,
    adamw,
    sgd,
    terngrad,
    dgc,
    sparsifiers,
    signsgd,
    qsgd,
    powersgd,
    onebit_adam,
    diloco,
)
