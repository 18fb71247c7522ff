"""The sign family of the baselines: signSGD/Signum with majority vote, and EF-signSGD.

Signum (Bernstein et al. 2018, 2019), every worker i:
    m_i = momentum*m_i + (1-momentum)*g_i             (momentum 0: signSGD)
    send sign(m_i) (1 bit); the server replies sign(sum_i sign(m_i)) (1 bit)
    x = x - lr*(vote + wd*x)                          (decay after the vote, as the reference)
A zero m_i and a tied vote are resolved by ``zero_sign`` and ``tie``; both default to
``random`` (an unbiased +-1 on the 1-bit wire, as D-Lion's).

EF-signSGD (Karimireddy et al. 2019), every worker i, per tensor t of size d_t:
    p_i = momentum*p_i + g_i + wd*x;  c_i = p_i + e_i  L2 decay in the gradient; error feedback
    send (||c_it||_1 / d_t) * sign(c_it) (1 bit + one float32 scale per tensor);  e_i = c_i - sent
    every worker averages the N scaled signs (all-gathered, or forwarded by a server);
    x = x - lr*mean

Differences from the references:
- signum: the majority-vote code (jiaweizzhao/signSGD-with-Majority-Vote) packs torch.sign's
  0 as the +1 bit, so a zero and a tie both become +1 there: ``zero_sign = tie = "plus"``. That
  rule is biased (on the baselines study, 16 workers, it ends at 0.306 nats against 0.299 for
  ``random``, means of 3 seeds), so the defaults are ``random``;
- efsignsgd: sign(0) is +1 on the 1-bit wire (GRACE's rule; the reference's torch.sign would
  send 0, which one bit cannot carry); error feedback takes that +1 back on the next step, so
  it adds no bias. The memory is in gradient units and the step size multiplies the update
  (the reference compresses lr*g + e: the same for a constant step size). The paper is for one
  worker; here the workers all-gather the N messages (GRACE's communicator), or a server
  forwards all N of them (1 + 32 per tensor bits each): a server cannot average them without
  the tensor boundaries, and forwarding beats a float32 mean below 32 workers.
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import (
    F32,
    SCHEDULE_DEFAULTS,
    SHARDED,
    Method,
    differences,
    keep_unsent,
    majority_reply,
    register,
    resolve_zeros,
    sign_codec,
    sign_wire,
)
from sim.methods.sgd import sgd_step
from sim.wire.codecs import SignCodec
from sim.wire.memory import compensate, feedback
from sim.wire.tensors import Segments


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


# --- EF-signSGD: (||p_t||_1 / d_t) * sign(p_t) per tensor, with error feedback ----------------

def _scaled_sign_decode(payloads, seg):
    """[T float32 scales][packed signs, bit set = +1] messages (n, bytes) -> scale * sign per
    tensor, float32 (n, d)."""
    t = seg.sizes.size
    scales = F32.decode(payloads[:, :4 * t], t)
    return seg.expand(scales) * SignCodec().decode(payloads[:, 4 * t:], int(seg.sizes.sum()))


def _scaled_sign_encode(c, seg):
    """Rows of c (n, d) -> ([float32 ||c_t||_1/d_t per tensor][signs, sign(0) = +1] messages,
    what they carry)."""
    scales = seg.sum(np.abs(c).astype(np.float64)) / seg.sizes
    payloads = np.concatenate([F32.encode(scales), SignCodec.pack(c >= 0)], axis=1)
    return payloads, _scaled_sign_decode(payloads, seg)


def _efsign_init(x, n_workers, hp, shapes):
    zeros = np.zeros((n_workers, x.size), dtype=x.dtype)
    return {"memory": zeros, "m": zeros.copy(), "segments": Segments.of(x.size, shapes), "x": x}


def _efsign_encode(state, grads, hp, rng, flipped=None):
    # the step size multiplies the update at apply time, so the memory is in gradient units
    # (equal to the paper's p = lr*g + e for a constant learning rate); the decay is L2, in the
    # gradient before the momentum, as the reference optimizer does
    m = state["m"]
    m *= hp["momentum"]
    m += grads
    if hp["weight_decay"]:
        m += hp["weight_decay"] * state["x"]
    c = compensate(state["memory"], m)
    payloads, sent = _scaled_sign_encode(c, state["segments"])
    state["memory"] = feedback(c, sent.astype(c.dtype))
    state["compensated"] = c  # for a message the server discards
    if flipped is not None:  # the decay of x is in c: adversaries negate their messages
        signs = 4 * state["segments"].sizes.size  # after the scales, which stay
        payloads[flipped, signs:] = SignCodec.pack(c[flipped] < 0)
    return payloads, state


def _relay(payloads, d, hp, rng):
    """The N scaled-sign messages, forwarded whole: their scales are per tensor, so each worker
    averages them itself (an all-gather delivers the same)."""
    return np.asarray(payloads).reshape(-1)


def _efsign_apply(x, reply, state, hp, lr, arrived=None):
    n = state["m"].shape[0] if arrived is None else int(arrived.sum())  # messages relayed
    mean = _scaled_sign_decode(reply.reshape(n, -1), state["segments"]).mean(axis=0,
                                                                             dtype=np.float32)
    x = x - x.dtype.type(lr) * mean.astype(x.dtype, copy=False)
    state["x"] = x
    return x, state


register(Method("signum", "signSGD/Signum with majority vote (Bernstein et al. 2018/2019); "
                "momentum 0 is signSGD", "1 bit up, 1 bit down",
                {"lr": 1e-4, "momentum": 0.9, "weight_decay": 0.0, "zero_sign": "random",
                 "tie": "random", **SCHEDULE_DEFAULTS},
                _signum_init, _signum_encode, majority_reply, _signum_apply,
                collectives=SHARDED, wire_bits=sign_wire, overlaps=True, stale=True,
                notes=differences(__doc__, "signum")))
register(Method("efsignsgd", "EF-signSGD (Karimireddy et al. 2019): (|p_t|_1/d_t)*sign(p_t) "
                "per tensor with error feedback",
                "1 + 32 per tensor up; the other N-1 messages down (all-gather, or forwarded "
                "by a server)",
                {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, **SCHEDULE_DEFAULTS},
                _efsign_init, _efsign_encode, _relay, _efsign_apply,
                collectives=("auto", "allgather", "ps"), arrivals=("apply",),
                discard=keep_unsent("memory"), flips=True,
                notes=differences(__doc__, "efsignsgd")))
