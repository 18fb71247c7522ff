"""Global SGD with momentum on the mean gradient, and the SGD step the compression baselines
use as their base optimizer (PyTorch's convention).

    g = g + wd*x                      coupled L2, added to the gradient
    buf = mu*buf + g                  heavy-ball buffer
    x = x - lr*(g + mu*buf)           Nesterov, or x - lr*buf without

Differences from the reference (torch.optim.SGD):
- gsgd: none (zero dampening).
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import (
    ALLREDUCE,
    dense_wire,
    SCHEDULE_DEFAULTS,
    Method,
    decode_f32,
    differences,
    mean_encode,
    register,
)
from sim.methods import robust

#: the base optimizer of the gradient-compression methods: momentum SGD on the decoded mean
SGD_DEFAULTS = {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
                **SCHEDULE_DEFAULTS}


def sgd_state(x) -> dict:
    """The momentum buffer of ``sgd_step``, shaped like x."""
    return {"buf": np.zeros(x.size, dtype=x.dtype)}


def sgd_step(x, g, state, hp, lr, momentum, lookahead=None):
    """x - lr * update, update = g + wd*x through heavy-ball (or Nesterov) momentum.

    ``momentum`` 0 for methods whose momentum lives on the workers, before compression (there
    the rule is x - lr*(g + wd*x)). The Nesterov update is g + lookahead*buf with ``lookahead``
    = momentum (PyTorch's) unless given (PowerSGD's paper code uses 1).
    """
    g = g + hp["weight_decay"] * x
    if momentum:
        buf = state["buf"]
        buf *= momentum
        buf += g
        g = g + (momentum if lookahead is None else lookahead) * buf if hp.get("nesterov") else buf
    return x - x.dtype.type(lr) * g


def _init(x, n_workers, hp, shapes):
    return sgd_state(x)


def _apply(x, reply, state, hp, lr):
    return sgd_step(x, decode_f32(reply, x.dtype), state, hp, lr, hp["momentum"]), state


register(Method("gsgd", "Global SGD with momentum (optionally Nesterov) on the mean gradient",
                "32 bits up, 32 bits down", {**SGD_DEFAULTS, **robust.DEFAULTS},
                _init, mean_encode, robust.robust_aggregate, _apply, collectives=ALLREDUCE,
                wire_bits=dense_wire, overlaps=True, stale=True,
                rules={"aggregate": robust.AGGREGATE_RULE},
                notes=differences(__doc__, "gsgd")), robust.RULES)
