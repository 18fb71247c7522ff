"""The sign family of the baselines: signSGD/Signum with majority vote, and EF-signSGD.

Signum (Bernstein et al. 2018, 2019), every worker i:
    m_i = momentum*m_i + (1-momentum)*g_i             (momentum 0: signSGD)
    send sign(m_i) (1 bit); the server replies sign(sum_i sign(m_i)) (1 bit)
    x = x - lr*(vote + wd*x)

EF-signSGD (Karimireddy et al. 2019), every worker i:
    p_i = momentum*p_i + g_i;  c_i = p_i + e_i         error feedback
    send (||c_i||_1 / d) * sign(c_i) (1 bit + one float32 scale);  e_i = c_i - sent
    the server averages the scaled signs; x = x - lr*(mean + wd*x)
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import (
    F32,
    SCHEDULE_DEFAULTS,
    Method,
    decode_f32,
    majority_reply,
    register,
    resolve_zeros,
    sign_codec,
)
from sim.methods.sgd import sgd_state, sgd_step
from sim.wire.codecs import SignCodec
from sim.wire.memory import compensate, feedback


# --- signSGD / Signum with majority vote -------------------------------------------------------

def _signum_init(x, n_workers, hp, shapes):
    return {"m": np.zeros((n_workers, x.size), dtype=x.dtype)}


def _signum_encode(state, grads, hp, rng):
    m = state["m"]  # Signum's momentum stays on the worker; momentum 0 is signSGD
    m *= hp["momentum"]
    m += (1 - hp["momentum"]) * grads
    signs = resolve_zeros(np.sign(m).astype(np.int8), hp["zero_sign"], rng)
    return sign_codec(hp["zero_sign"]).encode(signs), state


def _signum_apply(x, reply, state, hp, lr):
    vote = sign_codec(hp["tie"]).decode(reply, x.size, dtype=x.dtype)
    return sgd_step(x, vote, state, hp, lr, 0.0), state


# --- EF-signSGD: (||p||_1 / d) * sign(p) with error feedback ---------------------------------

def _scaled_sign_decode(payloads, d):
    """[float32 scale][packed signs, bit set = +1] messages -> scale * sign, float32 (n, d)."""
    p = np.atleast_2d(payloads)
    scale = F32.decode(p[:, :4], 1)
    return scale * SignCodec().decode(p[:, 4:], d)


def _scaled_sign_encode(c):
    """Rows of c (n, d) -> ([float32 ||c||_1/d][signs, sign(0) = +1] messages, what they carry)."""
    scale = np.mean(np.abs(c), axis=1, dtype=np.float64)[:, None]
    payloads = np.concatenate([F32.encode(scale), SignCodec.pack(c >= 0)], axis=1)
    return payloads, _scaled_sign_decode(payloads, c.shape[1])


def _efsign_init(x, n_workers, hp, shapes):
    zeros = np.zeros((n_workers, x.size), dtype=x.dtype)
    return {"memory": zeros, "m": zeros.copy(), **sgd_state(x)}


def _efsign_encode(state, grads, hp, rng):
    # the step size multiplies the update at apply time, so the memory is in gradient units
    # (equal to the paper's p = lr*g + e for a constant learning rate)
    m = state["m"]
    m *= hp["momentum"]
    m += grads
    c = compensate(state["memory"], m)
    payloads, sent = _scaled_sign_encode(c)
    state["memory"] = feedback(c, sent.astype(c.dtype))
    return payloads, state


def _efsign_aggregate(payloads, d, hp, rng):
    return F32.encode(_scaled_sign_decode(payloads, d).mean(axis=0, dtype=np.float32))


def _efsign_apply(x, reply, state, hp, lr):
    return sgd_step(x, decode_f32(reply, x.dtype), state, hp, lr, 0.0), state


register(Method("signum", "signSGD/Signum with majority vote (Bernstein et al. 2018/2019); "
                "momentum 0 is signSGD", "1 bit up, 1 bit down",
                {"lr": 1e-4, "momentum": 0.9, "weight_decay": 0.0, "zero_sign": "plus",
                 "tie": "plus", **SCHEDULE_DEFAULTS},
                _signum_init, _signum_encode, majority_reply, _signum_apply,
                collectives=("ps", "allgather")))
register(Method("efsignsgd", "EF-signSGD (Karimireddy et al. 2019): (|p|_1/d)*sign(p) with "
                "error feedback",
                "1 + 32/d bits up; all-gather of the N messages (or 32 from a server)",
                {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, **SCHEDULE_DEFAULTS},
                _efsign_init, _efsign_encode, _efsign_aggregate, _efsign_apply,
                collectives=("allgather", "ps")))
