"""1-bit Adam (Tang et al. 2021): Adam while the variance settles, then 1-bit momentum.

Warm-up (the first ``freeze_step`` steps): Adam on the all-reduced fp32 gradient.
Compressed phase (v frozen), every worker i, on its momentum padded to D entries:
    c_i = b1*m + (1-b1)*g_i + e_i;  send scale_i*sign(c_i), scale_i = ||c_i||_2 / sqrt(D);
    e_i = c_i - sent                                             worker error feedback
    server j owns chunk j: s_j = mean_i(sent_i)[chunk j] + e_j;  send scale_j*sign(s_j);
    e_j = s_j - sent                                             server error feedback
every worker sets m to the gathered chunks and steps x = x - lr*(m/(sqrt(v)+eps) + wd*x).
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import F32, SCHEDULE_DEFAULTS, Method, decode_f32, mean_aggregate, register
from sim.methods.sgd import sgd_step
from sim.wire.codecs import SignCodec
from sim.wire.memory import compensate, feedback

RULES = {
    "freeze_step": {"type": "int", "min": 0,
                    "doc": "1-bit Adam: steps of full-precision Adam before v is frozen"},
}


def _sizes(d, n):
    """Padded length D (a multiple of 8N: byte-aligned chunks) and the chunk length D/N."""
    padded = -(-d // (8 * n)) * 8 * n
    # keep the compressed message a different length from the warm-up one (tiny d only)
    while 8 + padded // 8 + padded // (8 * n) == 4 * d:
        padded += 8 * n
    return padded, padded // n


def _init(x, n_workers, hp, shapes):
    padded, _ = _sizes(x.size, n_workers)
    return {"m": np.zeros(x.size, dtype=x.dtype), "v": np.zeros(x.size, dtype=x.dtype),
            "worker_error": np.zeros((n_workers, padded), dtype=x.dtype),
            "server_error": np.zeros(padded, dtype=x.dtype), "step": 0}


def _scaled_chunks(messages, length):
    """[float32 scale][packed signs] messages (n, 4 + length/8) -> scale * sign (n, length)."""
    return F32.decode(messages[:, :4], 1) * SignCodec().decode(messages[:, 4:], length)


def _encode(state, grads, hp, rng):
    n, d = grads.shape
    state["compressed"] = state["step"] >= hp["freeze_step"]
    state["step"] += 1
    if not state["compressed"]:
        return F32.encode(grads), state  # warm-up: full-precision all-reduce of the gradients
    b1 = hp["betas"][0]
    padded, chunk = _sizes(d, n)
    local = np.zeros((n, padded), dtype=grads.dtype)
    local[:, :d] = b1 * state["m"] + (1 - b1) * grads
    c = compensate(state["worker_error"], local)
    # worker: scale ||c||_2 / sqrt(D), signs with sign(0) = +1
    scale = np.sqrt(np.einsum("ij,ij->i", c, c, dtype=np.float64) / padded)[:, None]
    worker = np.concatenate([F32.encode(scale), SignCodec.pack(c >= 0)], axis=1)
    sent = _scaled_chunks(worker, padded)
    state["worker_error"] = feedback(c, sent.astype(c.dtype))
    # all-to-all: rank j, the server of chunk j, averages chunk j of every worker's message
    s = compensate(state["server_error"], sent.mean(axis=0)).reshape(n, chunk)
    s_scale = np.sqrt(np.einsum("ij,ij->i", s, s, dtype=np.float64) / chunk)[:, None]
    server = np.concatenate([F32.encode(s_scale), SignCodec.pack(s >= 0)], axis=1)
    state["server_error"] = feedback(s, _scaled_chunks(server, chunk)).reshape(-1)
    return np.concatenate([worker, server], axis=1), state


def _aggregate(payloads, d, hp, rng):
    n, size = payloads.shape
    if size == 4 * d:
        return mean_aggregate(payloads, d, hp, rng)
    padded, chunk = _sizes(d, n)
    server = payloads[:, 4 + padded // 8:]  # the servers' chunks: all-gathered
    return np.concatenate([F32.encode(F32.decode(server[:, :4], 1)[:, 0]),
                           server[:, 4:].reshape(-1)])


def _apply(x, reply, state, hp, lr):
    b1, b2 = hp["betas"]
    m, v = state["m"], state["v"]
    if state["compressed"]:
        n = state["worker_error"].shape[0]
        padded, chunk = _sizes(x.size, n)
        scales = F32.decode(reply[:4 * n], n)
        signs = SignCodec().decode(reply[4 * n:], padded).reshape(n, chunk)
        m[:] = (scales[:, None] * signs).reshape(-1)[:x.size]  # the variance stays frozen
    else:
        g = decode_f32(reply, x.dtype)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
    # no bias correction, weight decay added to the update (as in the reference optimizer)
    update = m / (np.sqrt(v) + x.dtype.type(hp["eps"]))
    return sgd_step(x, update, state, hp, lr, 0.0), state


register(Method("onebit_adam", "1-bit Adam (Tang et al. 2021): Adam warm-up, then frozen "
                "variance and 1-bit momentum with worker and server error feedback",
                "warm-up 32/32; then about 1 + 1/N bits up, 1 bit + 32 per chunk down",
                {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "freeze_step": 100, **SCHEDULE_DEFAULTS},
                _init, _encode, _aggregate, _apply, collectives=("ps",)), RULES)
