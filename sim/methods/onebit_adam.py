"""1-bit Adam (Tang et al. 2021) as DeepSpeed runs it: Adam until the variance settles, then
1-bit momentum through a compressed all-reduce.

Warm-up, the first ``freeze_step`` steps: Adam on the mean of the fp32 gradients (the step
collective's all-reduce):  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2.
At the freeze v stops. A coordinate whose v is exactly 0 (every warm-up gradient was 0: a weight
into a dead ReLU unit) is masked: its momentum is zeroed after every exchange, as DeepSpeed's
``exp_avg_mask`` does; the 1-bit wire cannot carry a 0, and m/(sqrt(0) + eps) would blow up.
Compressed phase, per tensor t padded to D_t (a multiple of N*lcm(N, 8)), in chunks of D_t/N:
    c_i = b1*m + (1-b1)*g_i + e_i;  sent_i = s_i*sign(c_i), s_i = ||c_i||_2 / sqrt(D_t),
    sign(0) = +1;  e_i = c_i - sent_i                            worker i's error feedback
  round 1, all-to-all: worker i sends chunk j of sent_i (signs, and s_i) to worker j, the
  server of chunk j:  z_j = mean_i sent_i[chunk j] + e_j;  sends s_j*sign(z_j),
    s_j = ||z_j||_2 / sqrt(D_t/N);  e_j = z_j - that            server j's error feedback
  round 2, all-gather of the servers' chunks; every worker sets m to them (times the mask).
Both phases step  x = x - lr*(m_hat/(sqrt(v_hat) + eps) + wd*x)  with m_hat = m/(1-b1^t) and
v_hat = v/(1-b2^T), T = min(t, freeze_step), when ``bias_correction`` (the default, as G-AdamW);
m and v themselves otherwise.

Wire per worker per step in the compressed phase: up D + 32*N*T bits (N-1 chunks and N-1 copies
of its scale to the chunk servers, then its server chunk and scale once), down
2(N-1)*(D/N + 32*T) (the other workers' chunks, then the other servers' chunks): about 1 bit
up and 2(N-1)/N bits down per parameter. Each worker's link carries 2(N-1)/N bits each way
(the all-gather forwards), as a ring all-reduce of a 1-bit vector would.

Differences from DeepSpeed (deepspeed/runtime/fp16/onebit/adam.py, runtime/comm/nccl.py):
- DeepSpeed accepts ``bias_correction`` but never applies it: ``bias_correction = false``
  reproduces its numerics; the default corrects, so that with compression never engaged this
  method is G-AdamW (at equal weight decay) and a difference in the trade-off comes from what
  it sends;
- ``exp_avg_mask`` is the user's in DeepSpeed; here it is derived at the freeze from v == 0;
- DeepSpeed's first step only allocates buffers (no update); here every step updates;
- the scales ride with the signs (DeepSpeed all-gathers each in a call of its own: the same
  bytes, two fewer latency-bound collectives per step).
"""
from __future__ import annotations

import math

import numpy as np

from sim.methods.base import (
    F32,
    SCHEDULE_DEFAULTS,
    Method,
    decoupled_step,
    differences,
    ema_,
    message_bits,
    register,
)
from sim.wire.codecs import SignCodec
from sim.wire.tensors import Segments

RULES = {
    "freeze_step": {"type": "int", "min": 1,
                    "doc": "1-bit Adam: steps of full-precision Adam before v is frozen"},
    "bias_correction": {"type": "bool",
                        "doc": "1-bit Adam: divide m and v by 1-b^t as Adam does (DeepSpeed: "
                               "off in effect)"},
}


def _layout(d, n, shapes):
    """Where the parameters sit in the padded vector, and the chunks each worker serves.

    Returns (padded: Segments of the padded tensors; position (d,): each parameter's index in
    the padded vector; chunks (n, C): the padded indices served by worker j, tensor by tensor;
    served: Segments of one server's chunks)."""
    tensors = Segments.of(d, shapes)
    unit = n * math.lcm(n, 8)  # DeepSpeed's padding: N chunks of whole bytes per tensor
    sizes = -(-tensors.sizes // unit) * unit
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.repeat(starts - tensors.starts, tensors.sizes) + np.arange(d)
    chunk = sizes // n
    chunks = np.concatenate([s + np.arange(n)[:, None] * c + np.arange(c)[None, :]
                             for s, c in zip(starts, chunk)], axis=1)
    served = Segments(np.concatenate([[0], np.cumsum(chunk)[:-1]]), chunk)
    return Segments(starts, sizes), position, chunks, served


def _init(x, n_workers, hp, shapes):
    padded, position, chunks, served = _layout(x.size, n_workers, shapes)
    return {"m": np.zeros(x.size, dtype=x.dtype), "v": np.zeros(x.size, dtype=x.dtype),
            "step": 0, "n": n_workers, "padded": padded, "position": position,
            "chunks": chunks, "served": served, "mask": None,
            "worker_error": np.zeros((n_workers, int(padded.sizes.sum())), dtype=x.dtype),
            "server_error": np.zeros(chunks.shape, dtype=x.dtype)}


def _compress(z, seg):
    """Rows of z -> ([float32 ||z_t||_2 / sqrt(D_t) per tensor][signs, sign(0) = +1] messages,
    the scaled signs they carry)."""
    scales = np.sqrt(seg.sum(z.astype(np.float64) ** 2) / seg.sizes)
    payloads = np.concatenate([F32.encode(scales), SignCodec.pack(z >= 0)], axis=1)
    return payloads, _decompress(payloads, seg)


def _decompress(payloads, seg):
    """[T float32 scales][packed signs] messages (n, bytes) -> scale * sign per tensor (n, D)."""
    t = seg.sizes.size
    signs = SignCodec().decode(payloads[:, 4 * t:], int(seg.sizes.sum()))
    return seg.expand(F32.decode(payloads[:, :4 * t], t)) * signs


def _encode(state, grads, hp, rng, flipped=None):
    n, d = grads.shape
    state["compressed"] = state["step"] >= hp["freeze_step"]
    state["step"] += 1
    if not state["compressed"]:  # warm-up: full-precision all-reduce of the gradients
        return F32.encode(grads if flipped is None else
                          np.where(flipped[:, None], -grads, grads)), state
    if state["mask"] is None:
        state["mask"] = state["v"] != 0  # frozen now: v == 0 would divide the momentum by eps
    b1 = hp["betas"][0]
    local = b1 * state["m"] + (1 - b1) * grads
    if n == 1:  # one worker: nothing to reduce, the momentum stays exact (as DeepSpeed)
        state["m"] = local[0] * state["mask"]
        return np.zeros((1, 0), dtype=np.uint8), state
    padded, chunks, served = state["padded"], state["chunks"], state["served"]
    c = state["worker_error"]
    c[:, state["position"]] += local
    worker, sent = _compress(c, padded)
    state["worker_error"] = c - sent.astype(c.dtype)
    if flipped is not None:  # the shared momentum is in c: negate the message, not the input
        worker[flipped, 4 * padded.sizes.size:] = SignCodec.pack(c[flipped] < 0)
        sent = np.where(flipped[:, None], -sent, sent)
    # round 1 (all-to-all): worker j, the server of its chunks, averages them over the workers
    z = state["server_error"] + sent.mean(axis=0, dtype=np.float32)[chunks].astype(c.dtype)
    server, server_sent = _compress(z, served)
    state["server_error"] = z - server_sent.astype(z.dtype)
    if flipped is not None:  # an adversary serving a chunk sends its negation too
        server[flipped, 4 * served.sizes.size:] = SignCodec.pack(z[flipped] < 0)
    state["sizes"] = (worker.shape[1], server.shape[1])
    # worker i's message: its compressed momentum (round 1), then what it serves (round 2)
    return np.concatenate([worker, server], axis=1), state


def _relay(payloads, d, hp, rng):
    """No server: after the exchanges every worker holds what it needs of every message (the
    warm-up's gradients to average, or the servers' chunks), read out by ``_apply``."""
    return np.asarray(payloads).reshape(-1)


def _rounds(state, payloads, reply):
    n = state["n"]
    if not state["compressed"]:  # the fp32 gradients, all-reduced by the step collective
        return [(message_bits(payloads), 8 * payloads.shape[1])]
    if n == 1:
        return [(np.zeros(1, dtype=np.int64), 0, "alltoall")]
    t = state["padded"].sizes.size
    # round 1: a chunk of signs and the worker's scales to each of the other N-1 workers
    piece = 4 * t + state["chunks"].shape[1] // 8
    exchange = 8 * (n - 1) * piece
    gather = 8 * state["sizes"][1]  # round 2: a server's scales and signs, to every worker
    return [(np.full(n, exchange), exchange, "alltoall"),
            (np.full(n, gather), (n - 1) * gather, "allgather")]


def _apply(x, reply, state, hp, lr):
    b1, b2 = hp["betas"]
    n, m, v = state["n"], state["m"], state["v"]
    if not state["compressed"]:
        g = F32.decode(reply.reshape(n, -1), x.size).mean(axis=0, dtype=np.float32)
        ema_(m, g.astype(x.dtype, copy=False), b1)
        ema_(v, (g * g).astype(x.dtype, copy=False), b2)
    elif n > 1:
        worker_bytes = state["sizes"][0]
        server = reply.reshape(n, -1)[:, worker_bytes:]
        momentum = np.zeros(state["worker_error"].shape[1], dtype=x.dtype)
        momentum[state["chunks"]] = _decompress(server, state["served"])
        m[:] = momentum[state["position"]] * state["mask"]  # the variance stays frozen
    t = state["step"]
    if hp["bias_correction"]:
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2 ** min(t, hp["freeze_step"]))
    else:
        m_hat, v_hat = m, v
    # decoupled: DeepSpeed adds wd*x to the Adam direction, then steps by lr
    return decoupled_step(x, m_hat / (np.sqrt(v_hat) + hp["eps"]), lr, hp["weight_decay"]), state


register(Method("onebit_adam", "1-bit Adam (Tang et al. 2021): Adam warm-up, then frozen "
                "variance and 1-bit momentum with worker and server error feedback "
                "(DeepSpeed's compressed all-reduce: all-to-all, then all-gather)",
                "warm-up 32 up, 32 down (all-reduce); then D + 32N per tensor up, "
                "2(N-1)(D/N + 32 per tensor) down, D = d padded (about 1 and 2(N-1)/N)",
                {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "freeze_step": 100, "bias_correction": True, **SCHEDULE_DEFAULTS},
                _init, _encode, _relay, _apply, collectives=("auto", "ring", "tree", "halving_doubling"),
                rounds=_rounds, steady_from=lambda hp: hp["freeze_step"], flips=True,
                notes=differences(__doc__)), RULES)
