"""QSGD (Alistarh et al. 2017): s stochastic levels of |g| relative to each bucket's norm.

Every worker, per bucket of ``bucket_size`` entries:
    q = sign(g) * round_stochastic(s * |g| / ||g_bucket||)     unbiased, levels in [0, s]
and sends the bucket norms plus the levels (Elias-gamma coded non-zeros, or fixed width);
the server decodes norm * q / s, averages, and replies the dense float32 mean.

Differences from the paper:
- buckets are ``bucket_size`` consecutive entries of the flat parameter vector, so one may
  straddle two tensors;
- the Elias stream starts with a 32-bit count of the non-zero levels and is padded to a byte;
- the reply is the dense float32 mean (or the workers all-gather the quantised messages, as
  the paper's all-to-all broadcast).
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import F32, Method, decode_f32, differences, register
from sim.methods.sgd import SGD_DEFAULTS, sgd_state, sgd_step
from sim.wire.compressors import stochastic_round
from sim.wire.quant import CODINGS, QuantCodec

RULES = {
    "levels": {"type": "int", "min": 1, "max": 1 << 15,
               "doc": "QSGD: quantization levels s per sign"},
    "bucket_size": {"type": "int", "min": 1, "doc": "QSGD: entries sharing one norm"},
    "coding": {"type": "choice", "choices": CODINGS,
               "doc": "QSGD wire: Elias-gamma coded non-zeros, or fixed-width bit-planes"},
}


def _codec(hp, d):
    return QuantCodec(d, hp["levels"], min(hp["bucket_size"], d), hp["coding"])


def _init(x, n_workers, hp, shapes):
    return sgd_state(x)


def _encode(state, grads, hp, rng):
    codec = _codec(hp, grads.shape[1])
    seg = codec.segments
    norms = np.sqrt(seg.sum(grads.astype(np.float64) ** 2)).astype(np.float32)
    # quantize against the float32 norm the wire carries, so the decoded value stays unbiased
    wide = seg.expand(norms.astype(np.float64))
    s = hp["levels"]
    u = np.divide(s * np.abs(grads), wide, out=np.zeros(grads.shape), where=wide > 0)
    level = np.minimum(stochastic_round(u, rng), s)
    return codec.encode(norms, np.where(grads < 0, -level, level)), state


def _aggregate(payloads, d, hp, rng):
    codec = _codec(hp, d)
    norms, q = codec.decode(payloads)
    values = codec.segments.expand(norms.astype(np.float64)) * q / hp["levels"]
    return F32.encode(values.astype(np.float32).mean(axis=0, dtype=np.float32))


def _apply(x, reply, state, hp, lr):
    return sgd_step(x, decode_f32(reply, x.dtype), state, hp, lr, hp["momentum"]), state


_DEFAULTS = {**SGD_DEFAULTS, "levels": 16, "bucket_size": 512, "coding": "elias"}

register(Method("qsgd", "QSGD (Alistarh et al. 2017): s stochastic levels per bucket norm, "
                "Elias-coded or fixed-width",
                "about 2.8 bits at s = sqrt(d) (Elias), 1 + ceil(log2(s+1)) + 32/bucket (fixed) "
                "up; 32 down", _DEFAULTS, _init, _encode, _aggregate, _apply,
                collectives=("auto", "ps", "allgather"), stale=True,
                notes=differences(__doc__)), RULES)
