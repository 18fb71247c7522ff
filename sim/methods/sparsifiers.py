"""Sparsifiers: top-k, GradDrop and random-k, with error feedback.

Top-k and GradDrop send (value, index) pairs of the error-compensated gradient and get back the
mean on the union of the workers' supports (``sparse_send`` / ``sparse_aggregate``, shared with
DGC). Random-k draws its indices from a seed all workers share, so only values travel and they
can be summed in flight (an all-reduce):

    c = g + e                      error feedback (the memory e of what was not sent)
    sent = c on the chosen entries
    e = c - sent

and every worker steps momentum SGD on the mean (``sim.methods.sgd.sgd_step``).

Differences from the references:
- topk: keeps floor(density * d) entries of the whole vector (GRACE's count; GRACE selects
  within each tensor, here one global top-k as in the error-feedback analyses of top-k);
- graddrop: keeps ceil((1 - drop_ratio) * d) entries of the whole vector: one global threshold
  (the paper: layer normalisation makes one threshold work) from a sample of ``sample_ratio``
  of the entries (the paper's 0.1%), with DGC's sample floor of 2/density entries and DGC's
  count bounds (at most k entries, whatever the input): the paper gives neither;
- randomk: no rescaling by d/k (GRACE and epfml do not either: biased, hence error feedback).
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import (
    ALLREDUCE,
    F32,
    Method,
    decode_f32,
    differences,
    keep_unsent,
    mean_aggregate,
    register,
)
from sim.methods.sgd import SGD_DEFAULTS, sgd_state, sgd_step
from sim.wire.compressors import keep_count, sampled_mask, topk_mask
from sim.wire.memory import compensate, feedback
from sim.wire.sparse import INDEX_BITS, SparseCodec

#: rules shared by every sparsifier (DGC too)
RULES = {
    "density": {"type": "float", "min": 0.0, "max": 1.0, "min_open": True,
                "doc": "fraction of the entries a sparsifier sends (DGC: after warm-up)"},
    "drop_ratio": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True,
                   "doc": "GradDrop: fraction R of the entries (smallest |g|) dropped"},
    "index_bits": {"type": "choice", "choices": INDEX_BITS,
                   "doc": "sparse index width: 32 or 64 bits, or ceil(log2 d) (log2d)"},
    "selection": {"type": "choice", "choices": ("sampled", "exact"),
                  "doc": "top-k by a threshold from a random sample, or exact"},
    "sample_ratio": {"type": "float", "min": 0.0, "max": 1.0, "min_open": True,
                     "doc": "fraction of entries sampled to estimate the top-k threshold"},
}
SPARSE_DEFAULTS = {"index_bits": "int32"}


# --- shared with DGC: values + indices up, the mean on the union of supports down ------------

def sparse_send(state, key, compensated, mask, hp):
    """Encode ``compensated`` on ``mask``; the error-feedback memory ``state[key]`` keeps what
    the wire did not carry (decoded from the bytes, so float32 rounding is fed back too)."""
    n, d = compensated.shape
    codec = SparseCodec(d, hp["index_bits"])
    payloads = codec.encode(compensated, mask)
    if key is not None:
        state[key] = feedback(compensated, codec.decode(payloads, n))
        state["compensated"] = compensated  # for a message the server discards
    return payloads


def sparse_aggregate(payloads, d, hp, rng):
    """Mean of the sparse messages, sent back on the union of their supports."""
    codec = SparseCodec(d, hp["index_bits"])
    owner, index, values = codec.unpack(payloads)
    dense = np.zeros((len(payloads), d), dtype=np.float32)
    dense[owner, index] = values
    support = np.zeros((1, d), dtype=bool)
    support[0, index] = True
    return codec.encode(dense.mean(axis=0, dtype=np.float32)[None], support)[0]


def sparse_mean(reply, d, hp, dtype):
    """The dense mean (d,) in ``dtype`` from a sparse reply."""
    return SparseCodec(d, hp["index_bits"]).decode(reply)[0].astype(dtype, copy=False)


# --- top-k and GradDrop ------------------------------------------------------------------------

def _memory_init(x, n_workers, hp, shapes):
    return {"memory": np.zeros((n_workers, x.size), dtype=x.dtype), **sgd_state(x)}


def _sparsify(state, grads, hp, mask_of):
    ef = hp.get("error_feedback", True)
    c = compensate(state["memory"], grads) if ef else grads
    return sparse_send(state, "memory" if ef else None, c, mask_of(c), hp), state


def _topk_encode(state, grads, hp, rng):
    return _sparsify(state, grads, hp,
                     lambda c: topk_mask(c, keep_count(hp["density"], c.shape[1])))


def _graddrop_encode(state, grads, hp, rng):
    keep = 1.0 - hp["drop_ratio"]
    if hp["selection"] == "exact":
        k = keep_count(keep, grads.shape[1], round_up=True)
        return _sparsify(state, grads, hp, lambda c: topk_mask(c, k))
    return _sparsify(state, grads, hp, lambda c: sampled_mask(c, keep, hp["sample_ratio"], rng))


def _sparse_apply(x, reply, state, hp, lr):
    return sgd_step(x, sparse_mean(reply, x.size, hp, x.dtype), state, hp, lr,
                    hp["momentum"]), state


# --- random-k: shared-seed indices, so values alone travel and they add up -------------------

def _randomk_encode(state, grads, hp, rng):
    n, d = grads.shape
    ef = hp["error_feedback"]
    c = compensate(state["memory"], grads) if ef else grads
    # one draw from the run's generator: the seed every worker and the server share
    index = np.sort(rng.choice(d, keep_count(hp["density"], d), replace=False))
    payloads = F32.encode(c[:, index])
    if ef:
        sent = np.zeros_like(c)
        sent[:, index] = F32.decode(payloads, index.size)
        state["memory"] = feedback(c, sent)
        state["compensated"] = c  # for a message the server discards
    state["index"] = index
    return payloads, state


def _randomk_apply(x, reply, state, hp, lr):
    g = np.zeros_like(x)
    g[state["index"]] = decode_f32(reply, x.dtype)
    return sgd_step(x, g, state, hp, lr, hp["momentum"]), state


def _randomk_wire(length, n, hp):
    """``wire_bits`` of random-k: the float32 values of the shared indices that fall in the
    piece (density x length of them, on average), summed and averaged as they are."""
    return (32 * keep_count(hp["density"], length),) * 3


def _rules(defaults):
    return {k: RULES[k] for k in defaults if k in RULES}


_GRADDROP = {**SGD_DEFAULTS, **SPARSE_DEFAULTS, "drop_ratio": 0.99, "selection": "sampled",
             "sample_ratio": 0.001}
_TOPK = {**SGD_DEFAULTS, **SPARSE_DEFAULTS, "density": 0.01, "error_feedback": True}
_RANDOMK = {**SGD_DEFAULTS, "density": 0.01, "error_feedback": True}

register(Method("graddrop", "GradDrop (Aji & Heafield 2017): drop the fraction drop_ratio of "
                "smallest |g|, accumulate the dropped residual",
                "(1-drop_ratio)*(32 + index bits) up; the union of supports down", _GRADDROP,
                _memory_init, _graddrop_encode, sparse_aggregate, _sparse_apply,
                collectives=("auto", "ps", "allgather"), discard=keep_unsent("memory"),
                stale=True, notes=differences(__doc__, "graddrop")),
         _rules(_GRADDROP))
register(Method("topk", "Top-k sparsification (exact) with optional error feedback",
                "density*(32 + index bits) up; all-gather or the union of supports down", _TOPK,
                _memory_init, _topk_encode, sparse_aggregate, _sparse_apply,
                collectives=("auto", "allgather", "ps"), discard=keep_unsent("memory"),
                stale=True, notes=differences(__doc__, "topk")),
         _rules(_TOPK))
register(Method("randomk", "Random-k sparsification with shared-seed indices (summable), "
                "optional error feedback", "32*density up, 32*density down", _RANDOMK,
                _memory_init, _randomk_encode, mean_aggregate, _randomk_apply,
                collectives=ALLREDUCE, discard=keep_unsent("memory"), wire_bits=_randomk_wire,
                notes=differences(__doc__, "randomk")),
         _rules(_RANDOMK))
