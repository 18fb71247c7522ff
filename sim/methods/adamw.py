"""Global AdamW (Loshchilov & Hutter 2019) on the mean of the workers' fp32 gradients.

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  t = t + 1
    x = x - lr*( (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + wd*x )

Differences from the reference (torch.optim.AdamW):
- gadamw: none (the decay multiplies the old x; eps outside the square root).
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import (
    ALLREDUCE,
    dense_wire,
    SCHEDULE_DEFAULTS,
    Method,
    decode_f32,
    decoupled_step,
    differences,
    ema_,
    mean_encode,
    register,
)
from sim.methods import robust


def _init(x, n_workers, hp, shapes):
    return {"m": np.zeros(x.size, dtype=x.dtype), "v": np.zeros(x.size, dtype=x.dtype), "t": 0}


def adamw_step(x, g, state, hp, lr):
    """One AdamW step of x (d,) or of every worker's row (N, d) on g, with the moments m, v
    and the step count t in ``state`` (updated in place)."""
    b1, b2 = hp["betas"]
    state["t"] += 1
    t = state["t"]
    ema_(state["m"], g, b1)
    ema_(state["v"], g * g, b2)
    m_hat = state["m"] / (1 - b1**t)
    v_hat = state["v"] / (1 - b2**t)
    return decoupled_step(x, m_hat / (np.sqrt(v_hat) + hp["eps"]), lr, hp["weight_decay"])


def _apply(x, reply, state, hp, lr):
    return adamw_step(x, decode_f32(reply, x.dtype), state, hp, lr), state


register(Method("gadamw", "Global AdamW (bias-corrected, decoupled weight decay) on the mean "
                "gradient", "32 bits up, 32 bits down",
                {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.01, "eps": 1e-8,
                 **SCHEDULE_DEFAULTS, **robust.DEFAULTS},
                _init, mean_encode, robust.robust_aggregate, _apply, collectives=ALLREDUCE,
                wire_bits=dense_wire, overlaps=True, stale=True,
                rules={"aggregate": robust.AGGREGATE_RULE},
                notes=differences(__doc__, "gadamw")), robust.RULES)
