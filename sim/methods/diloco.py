"""DiLoCo (Douillard et al. 2023, Algorithm 1) and Local SGD: H inner steps on every worker's own
parameters, then one outer step on the mean parameter change.

Each worker i keeps its own parameters theta_i (an (N, d) row each) and its inner optimizer's
state, across rounds, as DiLoCo does. At every step t = 1, 2, ... (in this order):

    g_i = grad f_i(theta_i)                       on worker i's own data
    theta_i = inner(theta_i, g_i, lr_t)           adamw (bias-corrected, decoupled decay), sgd
                                                  (PyTorch: coupled decay, heavy-ball momentum)
                                                  or lion (sign(b1*m+(1-b1)g), then m updated)
    when t mod h == 0 (the last inner step of a round), and only then, it communicates:
    delta_i = theta - theta_i                     the outer gradient, theta the round's start
    sent: Q(delta_i) at outer_bits (32: float32; 16: bfloat16; 8, 4: per-chunk min-max
          uniform, ``sim.wire.lowbits``), all-reduced; the reply is Q(mean_i Q(delta_i))
    outer step on delta = that mean (PyTorch's SGD convention, momentum mu = outer_momentum):
        nesterov: v = mu*v + delta;  theta = theta - outer_lr*(delta + mu*v)
        sgd:      v = mu*v + delta;  theta = theta - outer_lr*v  (mu = 0: theta - outer_lr*delta)
    theta_i = theta for every worker              the next round starts from the global theta

The steps in between send nothing: the cluster times them as compute only (``sim.local``), and
their bits count 0, so the bits per parameter per step are 32/h each way in float32. Local SGD
is inner = "sgd", outer = "sgd", outer_lr = 1 (outer_momentum defaults to 0.9 for nesterov, 0
for sgd). The evaluated parameters are the global theta.

``outer = "dlion"``, this project's own variant: the outer step is Distributed Lion on the
outer gradients. Worker i keeps a Lion momentum m_i of its own delta_i and sends
sign(b1*m_i + (1-b1)*delta_i) (1 bit per parameter per round; ``sim.methods.lion``'s wire and
zero rule), then m_i = b2*m_i + (1-b2)*delta_i with (b1, b2) = outer_betas; the server votes
(aggregate = "mavo") or averages the signs ("avg") as dlion does, and
theta = theta - outer_lr*(direction + outer_weight_decay*theta).

Differences from the references (Douillard et al. 2023; PyTorch SGD; DiLoCo's code):
- diloco: the inner AdamW defaults are gadamw's (lr 1e-3, betas (0.9, 0.999), weight decay
  0.01), and h defaults to 50 rather than the paper's 500, which suits its 88k-step runs;
- diloco: outer_bits 8 and 4 are per-chunk min-max uniform quantisation (round to nearest,
  float32 lo and scale per outer_chunk values), not INTELLECT-1's int8 or Streaming DiLoCo's
  E3M0 formats; the reply, the mean, is quantised again in the same format;
- diloco: outer = "dlion" is not in the references (see above);
- diloco: every worker takes part in every step: server policies other than 'all', crashes and
  message loss are refused; Streaming DiLoCo's fragments and overlap are not modelled.
"""
from __future__ import annotations

import numpy as np

from sim.methods.adamw import adamw_step
from sim.methods.base import (
    ALLREDUCE,
    F32,
    SCHEDULE_DEFAULTS,
    Method,
    decoupled_step,
    differences,
    ema_,
    message_bits,
    register,
    sign_wire,
)
from sim.methods.lion import RULES as LION_RULES
from sim.methods.lion import dlion_aggregate, dlion_signs, lion_direction, vote_direction
from sim.methods.sgd import sgd_step
from sim.wire.lowbits import BF16, MinMaxCodec

RULES = {
    "h": {"type": "int", "min": 1, "doc": "DiLoCo: inner steps per round (one outer step)"},
    "inner": {"type": "choice", "choices": ("adamw", "sgd", "lion"),
              "doc": "DiLoCo: the workers' inner optimizer"},
    "outer": {"type": "choice", "choices": ("nesterov", "sgd", "dlion"),
              "doc": "DiLoCo: the outer optimizer on the mean outer gradient"},
    "outer_lr": {"type": "float", "min": 0.0, "min_open": True, "doc": "DiLoCo: outer step size"},
    "outer_momentum": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True,
                       "doc": "DiLoCo: outer momentum (default 0.9 nesterov, 0 sgd)"},
    "outer_bits": {"type": "int", "choices": (32, 16, 8, 4),
                   "doc": "DiLoCo: bits per value of the outer gradient on the wire"},
    "outer_chunk": {"type": "int", "min": 1,
                    "doc": "DiLoCo: values per quantisation chunk (outer_bits 8 and 4)"},
    "outer_betas": {"type": "pair", "min": 0.0, "max": 1.0, "max_open": True,
                    "doc": "DiLoCo outer dlion: the Lion momentum's b1 and b2"},
    "outer_weight_decay": {"type": "float", "min": 0.0,
                           "doc": "DiLoCo outer dlion: decoupled decay (times outer_lr)"},
}
DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01,
            "momentum": 0.0, **SCHEDULE_DEFAULTS, "h": 50, "inner": "adamw",
            "outer": "nesterov", "outer_lr": 0.7, "outer_momentum": None, "outer_bits": 32,
            "outer_chunk": 4096, "outer_betas": (0.9, 0.99), "outer_weight_decay": 0.0,
            "aggregate": "mavo", "zero_sign": "random", "tie": "random"}
#: collectives of a vote (outer dlion): no all-reduce computes it
VOTE_COLLECTIVES = ("auto", "ps", "alltoall", "hierarchical")


def _codec(hp):
    bits = hp["outer_bits"]
    return F32 if bits == 32 else BF16 if bits == 16 else MinMaxCodec(bits, hp["outer_chunk"])


def _momentum(hp) -> float:
    mu = hp["outer_momentum"]
    return (0.9 if hp["outer"] == "nesterov" else 0.0) if mu is None else mu


def _init(x, n_workers, hp, shapes):
    rows = np.zeros((n_workers, x.size), dtype=x.dtype)
    state = {"params": np.repeat(x[None], n_workers, axis=0), "anchor": x.copy(), "step": 0}
    if hp["inner"] == "adamw":
        state.update(m=rows.copy(), v=rows.copy(), t=0)
    elif hp["inner"] == "lion":
        state["m"] = rows.copy()
    elif hp["momentum"]:
        state["buf"] = rows.copy()
    if hp["outer"] == "dlion":
        state["outer_m"] = rows.copy()
    elif _momentum(hp):
        state["outer_buf"] = np.zeros(x.size, dtype=x.dtype)
    return state


def _inner(state, grads, hp, lr):
    """Every worker's inner step on its own row of ``state["params"]``."""
    p = state["params"]
    if hp["inner"] == "adamw":
        return adamw_step(p, grads, state, hp, lr)
    if hp["inner"] == "lion":
        c = lion_direction(state["m"], grads, hp["betas"][0])
        ema_(state["m"], grads, hp["betas"][1])
        return decoupled_step(p, np.sign(c), lr, hp["weight_decay"])
    return sgd_step(p, grads, state, hp, lr, hp["momentum"])


def _encode(state, grads, hp, rng, lr):
    state["params"] = _inner(state, np.asarray(grads, dtype=state["params"].dtype), hp, lr)
    state["step"] += 1
    n = grads.shape[0]
    if state["step"] % hp["h"]:
        return np.zeros((n, 0), dtype=np.uint8), state  # an inner step: nothing is sent
    delta = state["anchor"][None] - state["params"]
    if hp["outer"] == "dlion":
        b1, b2 = hp["outer_betas"]
        return dlion_signs(state["outer_m"], delta, b1, b2, hp["zero_sign"], rng), state
    return _codec(hp).encode(delta), state


def _aggregate(payloads, d, hp, rng):
    if hp["outer"] == "dlion":
        return dlion_aggregate(payloads, d, hp, rng)
    codec = _codec(hp)
    mean = codec.decode(np.asarray(payloads), d).mean(axis=0, dtype=np.float32)
    return codec.encode(mean[None])[0]


def _apply(x, reply, state, hp, lr):
    if reply is None:  # an inner step: the global theta waits for the round's end
        return x, state
    n = state["params"].shape[0]
    if hp["outer"] == "dlion":
        direction = vote_direction(reply, n, x.size, x.dtype, hp)
        x = decoupled_step(x, direction, hp["outer_lr"], hp["outer_weight_decay"])
    else:
        delta = _codec(hp).decode(reply[None], x.size)[0].astype(x.dtype)
        mu = x.dtype.type(_momentum(hp))
        update = delta
        if mu:
            buf = state["outer_buf"]
            buf *= mu
            buf += delta
            update = delta + mu * buf if hp["outer"] == "nesterov" else buf
        x = x - x.dtype.type(hp["outer_lr"]) * update
    state["anchor"] = x.copy()
    state["params"][:] = x
    return x, state


def _rounds(state, payloads, reply):
    if payloads.shape[-1] == 0:
        return []
    return [(message_bits(payloads), None if reply is None else 8 * reply.shape[-1])]


def _wire_bits(length, n, hp):
    if hp["outer"] == "dlion":
        return sign_wire(length, n, hp)
    return (_codec(hp).size_bits(length),) * 3


def _check(hp, settings):
    """One line refusing what DiLoCo cannot run (see the module docstring), or None."""
    if settings["policy"] != "all":
        return (f"server.policy = {settings['policy']!r} with method 'diloco': its inner steps "
                "need every worker; allowed: 'all'")
    if settings["crashes"]:
        return ("faults.crash_workers / crash_rate with method 'diloco': its inner steps need "
                "every worker; allowed: no crashes")
    if settings["loss"] > 0:  # on a server a lost message makes steps uneven (sim.local)
        return (f"faults.loss = {settings['loss']} with method 'diloco': its compute-only steps "
                "need every message of every step; allowed: 0")
    if hp["outer"] == "dlion":
        if hp["outer_bits"] != 32:
            return (f"method.outer_bits = {hp['outer_bits']} with outer = 'dlion': it sends "
                    "1-bit signs; allowed: 32 (the default, unused)")
        if settings["collective"] not in (None, *VOTE_COLLECTIVES):
            return (f"network.collective = {settings['collective']!r} with outer = 'dlion': no "
                    f"all-reduce computes a vote; allowed: {', '.join(VOTE_COLLECTIVES)}")
    if hp["outer"] == "nesterov" and hp["outer_momentum"] == 0:
        return ("method.outer_momentum = 0 with outer = 'nesterov' changes nothing; allowed: "
                "> 0, or outer = 'sgd'")
    return None


register(Method("diloco", "DiLoCo / Local SGD: h inner steps (adamw, sgd, lion) on each "
                "worker's own parameters, then an outer step (nesterov, sgd, dlion) on the mean "
                "parameter change", "32/h bits up and down (outer_bits/h; 1/h with dlion)",
                DEFAULTS, _init, _encode, _aggregate, _apply, collectives=ALLREDUCE,
                rounds=_rounds, wire_bits=_wire_bits, notes=differences(__doc__, "diloco"),
                local_params=lambda state: state["params"], check=_check,
                candidates=lambda hp: VOTE_COLLECTIVES if hp["outer"] == "dlion" else ALLREDUCE),
         {**RULES, **LION_RULES})
