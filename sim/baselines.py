"""The compressed-communication baselines, as ``sim.methods.Method``s registered at import.

TernGrad, DGC, GradDrop, signSGD/Signum majority vote, EF-signSGD, QSGD, top-k, random-k,
PowerSGD and 1-bit Adam, with their real wire formats (``sim.compression``, ``sim.codecs``).
Workers decode the server's reply from its bytes and the server decodes the workers' messages
from theirs; nothing but codec bytes crosses between the two sides.

Protocols with a round before the main message (TernGrad's max-reduce of the scales, PowerSGD's
all-reduce of P) run that round inside ``encode``, through the same codecs, and carry its bytes
at the front of the worker's message and of the reply; their ``rounds`` tell the cluster to time
that front part as an exchange of its own, before the rest. 1-bit Adam's all-to-all and
all-gather are the parameter server's push and pull.
"""
from __future__ import annotations

import math

import numpy as np

from sim import methods
from sim.codecs import DenseCodec, LevelCodec, SignCodec, TernaryCodec
from sim.compression import (
    CODINGS,
    INDEX_BITS,
    QuantCodec,
    Segments,
    SparseCodec,
    compensate,
    feedback,
    keep_count,
    sampled_mask,
    stochastic_round,
    topk_mask,
)
from sim.methods import Method

_F32 = DenseCodec("float32")
_SCHEDULE = {"schedule": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0}
#: the base optimizer of the gradient-compression methods: momentum SGD on the decoded mean
_SGD = {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, **_SCHEDULE}
_ALLREDUCE = ("ps", "ring", "halving_doubling")

HYPERPARAMETERS = {
    "clip_factor": {"type": "float", "min": 0.0,
                    "doc": "TernGrad: clip |g| at clip_factor * std(g) per tensor (0 = off)"},
    "density": {"type": "float", "min": 0.0, "max": 1.0, "min_open": True,
                "doc": "fraction of the entries a sparsifier sends (DGC: after warm-up)"},
    "drop_ratio": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True,
                   "doc": "GradDrop: fraction R of the entries (smallest |g|) dropped"},
    "error_feedback": {"type": "bool",
                       "doc": "keep what was not sent and add it to the next step's input"},
    "index_bits": {"type": "choice", "choices": INDEX_BITS,
                   "doc": "sparse index width: 32 or 64 bits, or ceil(log2 d) (log2d)"},
    "selection": {"type": "choice", "choices": ("sampled", "exact"),
                  "doc": "top-k by a threshold from a random sample, or exact"},
    "sample_ratio": {"type": "float", "min": 0.0, "max": 1.0, "min_open": True,
                     "doc": "fraction of entries sampled to estimate the top-k threshold"},
    "sparsity_warmup": {"type": "int", "min": 0,
                        "doc": "DGC: steps over which the density falls 0.25, 0.25^2, ... to "
                               "density (4 stages)"},
    "clip_norm": {"type": "float", "min": 0.0,
                  "doc": "DGC local clipping: each worker's gradient L2 norm is clipped at "
                         "clip_norm / sqrt(N) (0 = off)"},
    "momentum_masking": {"type": "bool",
                         "doc": "DGC: zero the momentum where entries were sent"},
    "levels": {"type": "int", "min": 1, "max": 1 << 15,
               "doc": "QSGD: quantization levels s per sign"},
    "bucket_size": {"type": "int", "min": 1, "doc": "QSGD: entries sharing one norm"},
    "coding": {"type": "choice", "choices": CODINGS,
               "doc": "QSGD wire: Elias-gamma coded non-zeros, or fixed-width bit-planes"},
    "rank": {"type": "int", "min": 1, "doc": "PowerSGD: rank r of the approximation"},
    "warm_start": {"type": "bool", "doc": "PowerSGD: reuse the last Q (else a fresh random Q)"},
    "freeze_step": {"type": "int", "min": 0,
                    "doc": "1-bit Adam: steps of full-precision Adam before v is frozen"},
}


# --- shared pieces ---------------------------------------------------------------------------

def _sgd_state(x):
    return {"buf": np.zeros(x.size, dtype=x.dtype)}


def _sgd_step(x, g, state, hp, lr, momentum):
    """x - lr * update, update = g + wd*x through heavy-ball (or Nesterov) momentum: the G-SGD
    rule, shared by every method here. ``momentum`` 0 for methods whose momentum lives on the
    workers, before compression (there the rule is x - lr*(g + wd*x))."""
    g = g + hp["weight_decay"] * x
    if momentum:
        buf = state["buf"]
        buf *= momentum
        buf += g
        g = g + momentum * buf if hp.get("nesterov") else buf
    return x - x.dtype.type(lr) * g


def _dense_mean(payloads, d):
    """The server's float32 mean of float32 messages, as the float32 reply (L values each)."""
    return _F32.encode(_F32.decode(np.asarray(payloads), d).mean(axis=0, dtype=np.float32))


def _mean_aggregate(payloads, d, hp, rng):
    return _dense_mean(payloads, np.asarray(payloads).shape[1] // 4)


def _decode_f32(reply, dtype):
    return _F32.decode(reply, reply.size // 4).astype(dtype, copy=False)


def _apply_mean(x, reply, state, hp, lr):
    """x <- SGD step on the dense float32 mean the server replied."""
    return _sgd_step(x, _decode_f32(reply, x.dtype), state, hp, lr, hp["momentum"]), state


# --- sparsifiers: top-k, GradDrop, DGC (values + indices, the union of supports back) --------

def _sparse_codec(hp, d):
    return SparseCodec(d, hp["index_bits"])


def _sparse_send(state, key, compensated, mask, hp):
    """Encode ``compensated`` on ``mask``; the error-feedback memory ``state[key]`` keeps what
    the wire did not carry (decoded from the bytes, so float32 rounding is fed back too)."""
    n, d = compensated.shape
    payloads = _sparse_codec(hp, d).encode(compensated, mask)
    if key is not None:
        state[key] = feedback(compensated, _sparse_codec(hp, d).decode(payloads, n))
    return payloads


def _sparse_aggregate(payloads, d, hp, rng):
    """Mean of the sparse messages, sent back on the union of their supports."""
    codec = _sparse_codec(hp, d)
    owner, index, values = codec.unpack(payloads)
    dense = np.zeros((len(payloads), d), dtype=np.float32)
    dense[owner, index] = values
    support = np.zeros((1, d), dtype=bool)
    support[0, index] = True
    return codec.encode(dense.mean(axis=0, dtype=np.float32)[None], support)[0]


def _sparse_mean(reply, d, hp, dtype):
    return _sparse_codec(hp, d).decode(reply)[0].astype(dtype, copy=False)


def _memory_init(x, n_workers, hp, shapes):
    return {"memory": np.zeros((n_workers, x.size), dtype=x.dtype), **_sgd_state(x)}


def _sparsify(state, grads, hp, mask_of):
    ef = hp.get("error_feedback", True)
    c = compensate(state["memory"], grads) if ef else grads
    return _sparse_send(state, "memory" if ef else None, c, mask_of(c), hp), state


def _topk_encode(state, grads, hp, rng):
    return _sparsify(state, grads, hp, lambda c: topk_mask(c, keep_count(hp["density"], c.shape[1])))


def _graddrop_encode(state, grads, hp, rng):
    keep = 1.0 - hp["drop_ratio"]
    if hp["selection"] == "exact":
        return _sparsify(state, grads, hp, lambda c: topk_mask(c, keep_count(keep, c.shape[1])))
    return _sparsify(state, grads, hp, lambda c: sampled_mask(c, keep, hp["sample_ratio"], rng))


def _sparse_apply(x, reply, state, hp, lr):
    return _sgd_step(x, _sparse_mean(reply, x.size, hp, x.dtype), state, hp, lr,
                     hp["momentum"]), state


def _dgc_density(step, hp):
    """DGC's exponential sparsity warm-up: density 0.25, 0.25^2, 0.25^3, 0.25^4 over four equal
    stages of ``sparsity_warmup`` steps (75% ... 99.6% sparse), then ``density``."""
    warmup = hp["sparsity_warmup"]
    if step >= warmup:
        return hp["density"]
    return max(hp["density"], 0.25 ** (1 + 4 * step // warmup))


def _dgc_init(x, n_workers, hp, shapes):
    zeros = np.zeros((n_workers, x.size), dtype=x.dtype)
    return {"u": zeros, "v": zeros.copy(), "step": 0}


def _dgc_encode(state, grads, hp, rng):
    n, d = grads.shape
    g = grads
    if hp["clip_norm"] > 0:
        # local clipping: the threshold shrinks by sqrt(N) because N workers' gradients add up
        norm = np.sqrt(np.einsum("ij,ij->i", g, g))[:, None]
        limit = hp["clip_norm"] / math.sqrt(n)
        g = g * np.minimum(1.0, limit / np.maximum(norm, np.finfo(g.dtype).tiny)).astype(g.dtype)
    u, v = state["u"], state["v"]
    u *= hp["momentum"]  # momentum correction: the velocity is accumulated, not the gradient
    u += g
    v += u
    density = _dgc_density(state["step"], hp)
    if hp["selection"] == "exact":
        mask = topk_mask(v, keep_count(density, d))
    else:
        mask = sampled_mask(v, density, hp["sample_ratio"], rng)
    payloads = _sparse_send(state, "v", v, mask, hp)
    if hp["momentum_masking"]:
        state["u"][mask] = 0  # stale momentum would keep pushing an entry already applied
    state["step"] += 1
    return payloads, state


def _dgc_apply(x, reply, state, hp, lr):
    # the momentum was applied on the workers (momentum correction): plain SGD here
    return _sgd_step(x, _sparse_mean(reply, x.size, hp, x.dtype), state, hp, lr, 0.0), state


# --- random-k: shared-seed indices, so values alone travel and they add up -----------------

def _randomk_encode(state, grads, hp, rng):
    n, d = grads.shape
    ef = hp["error_feedback"]
    c = compensate(state["memory"], grads) if ef else grads
    # one draw from the run's generator: the seed every worker and the server share
    index = np.sort(rng.choice(d, keep_count(hp["density"], d), replace=False))
    payloads = _F32.encode(c[:, index])
    if ef:
        sent = np.zeros_like(c)
        sent[:, index] = _F32.decode(payloads, index.size)
        state["memory"] = feedback(c, sent)
    state["index"] = index
    return payloads, state


def _randomk_apply(x, reply, state, hp, lr):
    g = np.zeros_like(x)
    g[state["index"]] = _decode_f32(reply, x.dtype)
    return _sgd_step(x, g, state, hp, lr, hp["momentum"]), state


# --- TernGrad: ternary with a shared per-tensor scale; the reply is the integer sum ---------

def _terngrad_init(x, n_workers, hp, shapes):
    return {"segments": Segments.of(x.size, shapes), "n": n_workers, **_sgd_state(x)}


def _terngrad_encode(state, grads, hp, rng):
    seg = state["segments"]
    n, d = grads.shape
    g = grads
    if hp["clip_factor"] > 0:
        mean = seg.sum(g) / seg.sizes
        std = np.sqrt(np.maximum(seg.sum(g * g) / seg.sizes - mean * mean, 0.0))
        limit = seg.expand(hp["clip_factor"] * std).astype(g.dtype)
        g = np.clip(g, -limit, limit)
    local = _F32.encode(seg.max(np.abs(g)))  # round 1: every worker's scales (n, 4T)
    shared = _F32.decode(local, seg.sizes.size).max(axis=0)  # ... max-reduced: one per tensor
    s = seg.expand(shared[None].astype(np.float64))
    prob = np.divide(np.abs(g), s, out=np.zeros(g.shape), where=s > 0)
    ternary = np.sign(g).astype(np.int8) * (rng.random(g.shape) < prob)
    return np.concatenate([local, TernaryCodec().encode(ternary)], axis=1), state


def _terngrad_aggregate(payloads, d, hp, rng):
    n = payloads.shape[0]
    ternary_bytes = TernaryCodec().size_bits(d) // 8
    scales = payloads[:, :payloads.shape[1] - ternary_bytes]
    shared = _F32.decode(scales, scales.shape[1] // 4).max(axis=0)
    total = TernaryCodec().decode(payloads[:, -ternary_bytes:], d, dtype="float64").sum(axis=0)
    # the sum of N ternaries takes 2N+1 values: ceil(log2(2N+1)) bits each
    levels = LevelCodec(2 * n + 1).encode((total + n).astype(np.int64))
    return np.concatenate([_F32.encode(shared), levels])


def _two_rounds(first_bytes: int, payloads, reply):
    """Round 1 carries the first ``first_bytes`` of every message and of the reply, round 2 the
    rest: [(up bits (N,), down bits), ...] for the cluster."""
    n, up, down = payloads.shape[0], payloads.shape[-1], reply.shape[-1]
    return [(np.full(n, 8 * first_bytes), 8 * first_bytes),
            (np.full(n, 8 * (up - first_bytes)), 8 * (down - first_bytes))]


def _terngrad_rounds(state, payloads, reply):
    # the scales are max-reduced first: every worker needs the shared scale to ternarise
    return _two_rounds(4 * state["segments"].sizes.size, payloads, reply)


def _terngrad_apply(x, reply, state, hp, lr):
    n, seg = state["n"], state["segments"]
    t = seg.sizes.size
    shared = _F32.decode(reply[:4 * t], t).astype(np.float64)
    total = LevelCodec(2 * n + 1).decode(reply[4 * t:], x.size) - n
    mean = (seg.expand(shared[None])[0] * total / n).astype(x.dtype)
    return _sgd_step(x, mean, state, hp, lr, hp["momentum"]), state


# --- QSGD: stochastic levels of |g| / ||bucket||, Elias-coded or fixed-width -----------------

def _qsgd_codec(hp, d):
    return QuantCodec(d, hp["levels"], min(hp["bucket_size"], d), hp["coding"])


def _qsgd_encode(state, grads, hp, rng):
    codec = _qsgd_codec(hp, grads.shape[1])
    seg = codec.segments
    norms = np.sqrt(seg.sum(grads.astype(np.float64) ** 2)).astype(np.float32)
    # quantize against the float32 norm the wire carries, so the decoded value stays unbiased
    wide = seg.expand(norms.astype(np.float64))
    s = hp["levels"]
    u = np.divide(s * np.abs(grads), wide, out=np.zeros(grads.shape), where=wide > 0)
    level = np.minimum(stochastic_round(u, rng), s)
    return codec.encode(norms, np.where(grads < 0, -level, level)), state


def _qsgd_aggregate(payloads, d, hp, rng):
    codec = _qsgd_codec(hp, d)
    norms, q = codec.decode(payloads)
    values = codec.segments.expand(norms.astype(np.float64)) * q / hp["levels"]
    return _F32.encode(values.astype(np.float32).mean(axis=0, dtype=np.float32))


# --- signSGD / Signum with majority vote -------------------------------------------------------

def _signum_init(x, n_workers, hp, shapes):
    return {"m": np.zeros((n_workers, x.size), dtype=x.dtype)}


def _signum_encode(state, grads, hp, rng):
    m = state["m"]  # Signum's momentum stays on the worker; momentum 0 is signSGD
    m *= hp["momentum"]
    m += (1 - hp["momentum"]) * grads
    signs = methods._resolve_zeros(np.sign(m).astype(np.int8), hp["zero_sign"], rng)
    return methods._sign_codec(hp["zero_sign"]).encode(signs), state


def _signum_aggregate(payloads, d, hp, rng):
    vote = np.sign(methods._vote_sum(payloads, d, hp)).astype(np.int8)
    methods._resolve_zeros(vote, hp["tie"], rng)
    return methods._sign_codec(hp["tie"]).encode(vote)


def _signum_apply(x, reply, state, hp, lr):
    vote = methods._sign_codec(hp["tie"]).decode(reply, x.size, dtype=x.dtype)
    return _sgd_step(x, vote, state, hp, lr, 0.0), state


# --- EF-signSGD: (||p||_1 / d) * sign(p) with error feedback ---------------------------------

def _scaled_sign_decode(payloads, d):
    """[float32 scale][packed signs, bit set = +1] messages -> scale * sign, float32 (n, d)."""
    p = np.atleast_2d(payloads)
    scale = _F32.decode(p[:, :4], 1)
    return scale * SignCodec().decode(p[:, 4:], d)


def _scaled_sign_encode(c):
    """Rows of c (n, d) -> ([float32 ||c||_1/d][signs, sign(0) = +1] messages, what they carry)."""
    scale = np.mean(np.abs(c), axis=1, dtype=np.float64)[:, None]
    payloads = np.concatenate([_F32.encode(scale), SignCodec.pack(c >= 0)], axis=1)
    return payloads, _scaled_sign_decode(payloads, c.shape[1])


def _efsign_init(x, n_workers, hp, shapes):
    state = _memory_init(x, n_workers, hp, shapes)
    state["m"] = np.zeros((n_workers, x.size), dtype=x.dtype)
    return state


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
    return _F32.encode(_scaled_sign_decode(payloads, d).mean(axis=0, dtype=np.float32))


def _efsign_apply(x, reply, state, hp, lr):
    return _sgd_step(x, _decode_f32(reply, x.dtype), state, hp, lr, 0.0), state


# --- PowerSGD: rank-r P Q^T with warm start and error feedback, two all-reduces -------------

def _powersgd_layout(d, shapes):
    """Matrices (start, size, a, b) to compress and the indices sent densely. Tensors of two or
    more dimensions are (shape[0], rest); without shapes the whole vector is one square-ish
    a x b matrix, zero-padded to a*b."""
    if shapes is None:
        a = math.isqrt(d - 1) + 1
        return [(0, d, a, -(-d // a))], np.zeros(0, dtype=np.int64)
    seg = Segments.of(d, shapes)
    mats, dense = [], []
    for (_, shape), start, size in zip(shapes, seg.starts, seg.sizes):
        if len(shape) >= 2:
            mats.append((int(start), int(size), int(shape[0]), int(size) // int(shape[0])))
        else:
            dense.append(np.arange(start, start + size))
    return mats, np.concatenate(dense) if dense else np.zeros(0, dtype=np.int64)


def _matrices(m, mats):
    """Per-worker matrices (n, a, b) of the flat rows of m (n, d)."""
    out = []
    for start, size, a, b in mats:
        block = m[:, start:start + size]
        if a * b > size:
            block = np.pad(block, ((0, 0), (0, a * b - size)))
        out.append(block.reshape(m.shape[0], a, b))
    return out


def _orthonormal(p):
    return np.linalg.qr(p)[0]  # Householder QR: orthonormal columns even when p is rank deficient


def _powersgd_init(x, n_workers, hp, shapes):
    mats, dense = _powersgd_layout(x.size, shapes)
    seed = np.random.default_rng(0)  # the seed every worker shares for the first Q
    qs = [seed.standard_normal((b, min(hp["rank"], a, b))).astype(x.dtype) for _, _, a, b in mats]
    return {"mats": mats, "dense": dense, "q": qs,
            "memory": np.zeros((n_workers, x.size), dtype=x.dtype), **_sgd_state(x)}


def _split(flat, sizes):
    return np.split(flat, np.cumsum(sizes)[:-1], axis=-1)


def _powersgd_encode(state, grads, hp, rng):
    n = grads.shape[0]
    m = compensate(state["memory"], grads) if hp["error_feedback"] else grads
    state["compensated"] = m
    if not hp["warm_start"]:
        state["q"] = [rng.standard_normal(q.shape).astype(q.dtype) for q in state["q"]]
    ms = _matrices(m, state["mats"])
    ps = [mi @ q for mi, q in zip(ms, state["q"])]
    # round 1: all-reduce P (the mean: orthonormalising ignores the 1/N)
    p_bytes = _F32.encode(np.concatenate([p.reshape(n, -1) for p in ps], axis=1))
    p_mean = _F32.decode(p_bytes, p_bytes.shape[1] // 4).mean(axis=0, dtype=np.float32)
    p_hat = [_orthonormal(p.reshape(p0.shape[1:]))
             for p, p0 in zip(_split(p_mean, [p0[0].size for p0 in ps]), ps)]
    qs = [np.swapaxes(mi, 1, 2) @ ph for mi, ph in zip(ms, p_hat)]
    # [dense entries | P | Q] per worker, float32; _powersgd_rounds times P and Q one after
    # the other
    parts = [p_bytes, _F32.encode(np.concatenate([q.reshape(n, -1) for q in qs], axis=1))]
    if state["dense"].size:
        parts.insert(0, _F32.encode(m[:, state["dense"]]))
    return np.concatenate(parts, axis=1), state


def _powersgd_rounds(state, payloads, reply):
    # P (with the dense tensors) is all-reduced first: Q = M^T P_hat needs the reduced P
    p_values = state["dense"].size + sum(a * q.shape[1] for (_, _, a, _), q in
                                         zip(state["mats"], state["q"]))
    return _two_rounds(4 * p_values, payloads, reply)


def _powersgd_apply(x, reply, state, hp, lr):
    mats, dense, qs = state["mats"], state["dense"], state["q"]
    sizes = [dense.size] + [a * q.shape[1] for (_, _, a, _), q in zip(mats, qs)] + [q.size for q in qs]
    parts = _split(_F32.decode(reply, reply.size // 4), sizes)
    g = np.zeros(x.size, dtype=np.float32)
    g[dense] = parts[0]
    new_q = []
    for (start, size, a, b), p, q, old in zip(mats, parts[1:1 + len(mats)],
                                               parts[1 + len(mats):], qs):
        q_hat = q.reshape(b, -1)
        g[start:start + size] = (_orthonormal(p.reshape(a, -1)) @ q_hat.T).reshape(-1)[:size]
        new_q.append(q_hat.astype(old.dtype))
    g = g.astype(x.dtype)
    if hp["error_feedback"]:
        memory = feedback(state["compensated"], g)
        memory[:, dense] = 0  # dense tensors travel exactly: nothing to remember
        state["memory"] = memory
    if hp["warm_start"]:
        state["q"] = new_q
    return _sgd_step(x, g, state, hp, lr, hp["momentum"]), state


# --- 1-bit Adam: Adam warm-up, then frozen v and 1-bit momentum, EF on workers and servers ---

def _onebit_sizes(d, n):
    """Padded length D (a multiple of 8N: byte-aligned chunks) and the chunk length D/N."""
    padded = -(-d // (8 * n)) * 8 * n
    # keep the compressed message a different length from the warm-up one (tiny d only)
    while 8 + padded // 8 + padded // (8 * n) == 4 * d:
        padded += 8 * n
    return padded, padded // n


def _onebit_init(x, n_workers, hp, shapes):
    padded, _ = _onebit_sizes(x.size, n_workers)
    return {"m": np.zeros(x.size, dtype=x.dtype), "v": np.zeros(x.size, dtype=x.dtype),
            "worker_error": np.zeros((n_workers, padded), dtype=x.dtype),
            "server_error": np.zeros(padded, dtype=x.dtype), "step": 0}


def _onebit_encode(state, grads, hp, rng):
    n, d = grads.shape
    state["compressed"] = state["step"] >= hp["freeze_step"]
    state["step"] += 1
    if not state["compressed"]:
        return _F32.encode(grads), state  # warm-up: full-precision all-reduce of the gradients
    b1 = hp["betas"][0]
    padded, chunk = _onebit_sizes(d, n)
    local = np.zeros((n, padded), dtype=grads.dtype)
    local[:, :d] = b1 * state["m"] + (1 - b1) * grads
    c = compensate(state["worker_error"], local)
    # worker: scale ||c||_2 / sqrt(D), signs with sign(0) = +1
    scale = np.sqrt(np.einsum("ij,ij->i", c, c, dtype=np.float64) / padded)[:, None]
    worker = np.concatenate([_F32.encode(scale), SignCodec.pack(c >= 0)], axis=1)
    sent = _scaled_chunks(worker, padded)
    state["worker_error"] = feedback(c, sent.astype(c.dtype))
    # all-to-all: rank j, the server of chunk j, averages chunk j of every worker's message
    s = compensate(state["server_error"], sent.mean(axis=0)).reshape(n, chunk)
    s_scale = np.sqrt(np.einsum("ij,ij->i", s, s, dtype=np.float64) / chunk)[:, None]
    server = np.concatenate([_F32.encode(s_scale), SignCodec.pack(s >= 0)], axis=1)
    state["server_error"] = feedback(s, _scaled_chunks(server, chunk)).reshape(-1)
    return np.concatenate([worker, server], axis=1), state


def _scaled_chunks(messages, length):
    """[float32 scale][packed signs] messages (n, 4 + length/8) -> scale * sign (n, length)."""
    return _F32.decode(messages[:, :4], 1) * SignCodec().decode(messages[:, 4:], length)


def _onebit_aggregate(payloads, d, hp, rng):
    n, size = payloads.shape
    if size == 4 * d:
        return _dense_mean(payloads, d)
    padded, chunk = _onebit_sizes(d, n)
    server = payloads[:, 4 + padded // 8:]  # the servers' chunks: all-gathered
    return np.concatenate([_F32.encode(_F32.decode(server[:, :4], 1)[:, 0]),
                           server[:, 4:].reshape(-1)])


def _onebit_apply(x, reply, state, hp, lr):
    b1, b2 = hp["betas"]
    m, v = state["m"], state["v"]
    if state["compressed"]:
        n = state["worker_error"].shape[0]
        padded, chunk = _onebit_sizes(x.size, n)
        scales = _F32.decode(reply[:4 * n], n)
        signs = SignCodec().decode(reply[4 * n:], padded).reshape(n, chunk)
        m[:] = (scales[:, None] * signs).reshape(-1)[:x.size]  # the variance stays frozen
    else:
        g = _decode_f32(reply, x.dtype)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
    # no bias correction, weight decay added to the update (as in the reference optimizer)
    update = m / (np.sqrt(v) + x.dtype.type(hp["eps"]))
    return _sgd_step(x, update, state, hp, lr, 0.0), state


# --- the registry --------------------------------------------------------------------------

_SPARSE = {"index_bits": "int32"}

BASELINES = [
    Method("terngrad", "TernGrad (Wen et al. 2017): stochastic ternary gradients with a shared "
           "per-tensor scale, clipped at clip_factor*std",
           "2 bits (log2 3 ideal) + 32 per tensor up; ceil(log2(2N+1)) + 32 per tensor down",
           {**_SGD, "clip_factor": 2.5},
           _terngrad_init, _terngrad_encode, _terngrad_aggregate, _terngrad_apply,
           collectives=("ps", "allgather"), rounds=_terngrad_rounds),
    Method("dgc", "Deep Gradient Compression (Lin et al. 2018): momentum correction, local "
           "clipping, momentum masking, sparsity warm-up, sampled top-k",
           "density*(32 + index bits) up; all-gather or the union of supports down",
           {**_SGD, **_SPARSE, "density": 0.001, "sparsity_warmup": 100, "clip_norm": 0.0,
            "momentum_masking": True, "selection": "sampled", "sample_ratio": 0.01},
           _dgc_init, _dgc_encode, _sparse_aggregate, _dgc_apply,
           collectives=("allgather", "ps")),
    Method("graddrop", "GradDrop (Aji & Heafield 2017): drop the fraction drop_ratio of smallest "
           "|g|, accumulate the dropped residual",
           "(1-drop_ratio)*(32 + index bits) up; the union of supports down",
           {**_SGD, **_SPARSE, "drop_ratio": 0.99, "selection": "sampled",
            "sample_ratio": 0.001},
           _memory_init, _graddrop_encode, _sparse_aggregate, _sparse_apply,
           collectives=("ps", "allgather")),
    Method("signum", "signSGD/Signum with majority vote (Bernstein et al. 2018/2019); "
           "momentum 0 is signSGD",
           "1 bit up, 1 bit down",
           {"lr": 1e-4, "momentum": 0.9, "weight_decay": 0.0, "zero_sign": "plus",
            "tie": "plus", **_SCHEDULE},
           _signum_init, _signum_encode, _signum_aggregate, _signum_apply,
           collectives=("ps", "allgather")),
    Method("efsignsgd", "EF-signSGD (Karimireddy et al. 2019): (|p|_1/d)*sign(p) with error "
           "feedback",
           "1 + 32/d bits up; all-gather of the N messages (or 32 from a server)",
           {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, **_SCHEDULE},
           _efsign_init, _efsign_encode, _efsign_aggregate, _efsign_apply,
           collectives=("allgather", "ps")),
    Method("qsgd", "QSGD (Alistarh et al. 2017): s stochastic levels per bucket norm, "
           "Elias-coded or fixed-width",
           "about 2.8 bits at s = sqrt(d) (Elias), 1 + ceil(log2(s+1)) + 32/bucket (fixed) up; "
           "32 down",
           {**_SGD, "levels": 16, "bucket_size": 512, "coding": "elias"},
           lambda x, n, hp, shapes: _sgd_state(x), _qsgd_encode, _qsgd_aggregate, _apply_mean,
           collectives=("ps", "allgather")),
    Method("topk", "Top-k sparsification (exact) with optional error feedback",
           "density*(32 + index bits) up; all-gather or the union of supports down",
           {**_SGD, **_SPARSE, "density": 0.01, "error_feedback": True},
           _memory_init, _topk_encode, _sparse_aggregate, _sparse_apply,
           collectives=("allgather", "ps")),
    Method("randomk", "Random-k sparsification with shared-seed indices (summable), optional "
           "error feedback",
           "32*density up, 32*density down",
           {**_SGD, "density": 0.01, "error_feedback": True},
           _memory_init, _randomk_encode, _mean_aggregate, _randomk_apply,
           collectives=_ALLREDUCE),
    Method("powersgd", "PowerSGD (Vogels et al. 2019): rank-r P Q^T with warm start and error "
           "feedback, two all-reduces",
           "32 r (a+b)/(ab) per a x b matrix (32 for 1-D tensors) up and down",
           {**_SGD, "rank": 2, "warm_start": True, "error_feedback": True},
           _powersgd_init, _powersgd_encode, _mean_aggregate, _powersgd_apply,
           collectives=("ring", "halving_doubling", "ps"), rounds=_powersgd_rounds),
    Method("onebit_adam", "1-bit Adam (Tang et al. 2021): Adam warm-up, then frozen variance and "
           "1-bit momentum with worker and server error feedback",
           "warm-up 32/32; then about 1 + 1/N bits up, 1 bit + 32 per chunk down",
           {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
            "freeze_step": 100, **_SCHEDULE},
           _onebit_init, _onebit_encode, _onebit_aggregate, _onebit_apply,
           collectives=("ps",)),
]

for _method in BASELINES:
    methods.register(_method, {k: HYPERPARAMETERS[k] for k in _method.defaults
                               if k in HYPERPARAMETERS})
