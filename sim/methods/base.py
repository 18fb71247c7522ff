"""The method contract, the registry, and the small pieces several methods share.

A method is a few small pure functions over arrays (optax-style), bundled in a ``Method``:

``init(x, n_workers, hp, shapes) -> state``
    per-worker state arrays are shaped (n_workers, d); global state is shaped (d,). ``shapes``
    is the objective's list of (name, tensor shape) covering x in order, or None.
``encode(state, grads, hp, rng) -> (payloads, state)``
    worker side: grads (n_workers, d) -> the packed uint8 messages: an array (n_workers, nbytes)
    when all have one size, else a list of n_workers 1-D uint8 arrays.
``aggregate(payloads, d, hp, rng) -> reply``
    server side: the received messages -> one packed uint8 reply (nbytes,) for every worker.
``apply(x, reply, state, hp, lr) -> (x, state)``
    every worker applies the same reply, so x stays identical across workers and is kept once.
``rounds(state, payloads, reply) -> [(up bits (N,), down bits), ...]`` (optional)
    the step's messages split into exchanges that travel one after the other (TernGrad's
    scales before its ternaries, PowerSGD's P before its Q); None: one round, the whole message.
    It is called once before the server aggregates, with ``reply = None``: the last round's
    down bits are then None (the reply is not known yet).

    In a peer step a round may name its own collective as a third element ("alltoall",
    "allgather", ...; ``sim.cluster.ROUND_COLLECTIVES``): 1-bit Adam's all-to-all then
    all-gather.
``steady_from(hp) -> int`` (optional)
    the first step (0-based) after the method's own warm-up (DGC's sparsity warm-up, 1-bit
    Adam's full-precision phase), from which the summary's steady-state bits are counted.

Per-worker state arrays have the worker on their first axis, (n_workers, ...): when a worker
does not finish a step (it was down, or still computing when the step closed) the simulator
puts its rows back as they were, and a worker that rejoins after a crash gets ``init``'s rows.

When a server policy or faults can leave messages out (``sim.step``), ``aggregate`` receives
only the messages that arrived, in worker order, and two optional parts of a method say how it
handles the rest:

``arrivals``: the functions that take a keyword ``arrived``, bool (N,)
    ``"apply"``: the workers whose messages the reply aggregates (an average divides by their
    count). ``"encode"``: a multi-round method's encode runs its earlier rounds' reductions
    (TernGrad's shared scale, PowerSGD's P); it is run again with ``arrived`` set to the
    workers that made it into the first round, when some did not.
``discard(state, rows) -> state``
    called after ``apply``: ``rows`` (bool (N,)) computed and sent a message that was not
    aggregated (late, dropped); an error-feedback method gives those workers back all they
    tried to send (``keep_unsent``).

Byzantine workers (``sim.adversaries``) that ``flip`` send exactly the negation of their honest
message. A method whose message is an odd function of its own worker's input and state alone
(negate both, and the message is negated) gets there by being fed the negated gradient; one whose
message also carries shared state (the decay of x, an aggregate, a shared momentum) negates its
adversaries' messages itself:

``flips``: whether ``encode`` takes a keyword ``flipped``, bool (N,)
    those workers send the negation of their honest message and keep their honest state.

A method whose aggregate works coordinate by coordinate can also be aggregated in shards
(``collective = "alltoall"``: each worker owns 1/N of the coordinates) or summed inside a GPU
node first (``"hierarchical"``); it says what its wire costs for a piece of the vector:

``wire_bits(length, n, hp) -> (message, sum, reply)``
    bits of one worker's message for ``length`` coordinates, of the sum of n such messages,
    and of the reply that aggregates n of them (the codecs' own sizes, padding included).

A local-update method (DiLoCo) keeps one parameter row per worker and communicates only on
some steps:

``local_params(state) -> (N, d)``
    the parameters each worker computes its gradient at (the objective's ``grads`` takes an
    (N, d) array); such a method's ``encode`` takes a keyword ``lr`` (its workers' own steps),
    and a step on which ``rounds`` returns [] sends nothing: the cluster times it as compute
    only and ``apply`` is called with ``reply = None``.
``check(hp, settings) -> str | None`` (optional)
    a one-line reason the method refuses the run's ``settings`` (``policy``, ``crashes``,
    ``loss`` (the fault model's loss probability), ``collective``), or None.
``candidates(hp) -> tuple`` (optional)
    the collectives ``auto`` may choose among for these hyperparameters (default
    ``collectives``).
``behind(hp) -> int`` (optional)
    how many of the following steps (which send nothing) a step's collective runs behind
    (Streaming DiLoCo's overlap): they start when its compute ends, and the last of them ends
    no earlier than the collective (``sim.local``; peer collectives only). 0: none.
``stale``: a versioned server (``sim.versioned``: server policies async, ssp, fedbuff) may
    aggregate any number of its messages, from 1 on, and apply them to parameters they were not
    computed at: its worker side keeps per-worker state only (encoded one worker at a time, on
    that worker's rows) and its server side one aggregate and one apply, in a single round.

Messages only ever travel as codec payloads (``sim.wire``), so the bits the network charges are
the bytes really produced. ``hp`` is the resolved hyperparameter dict; every hyperparameter has
a validation rule in ``HYPERPARAMETERS``, which the spec layer uses. Each method family lives in
a module of its own that calls ``register``; ``sim.methods`` imports them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sim.schedules import SCHEDULES
from sim.wire import bitslice
from sim.wire.codecs import DenseCodec, LevelCodec, SignCodec, TernaryCodec, rows

SIGN_RULES = ("random", "plus", "minus", "zero")

#: Validation rules for every hyperparameter any method accepts (used by the spec layer);
#: method modules add their own through ``register``.
HYPERPARAMETERS: dict[str, dict] = {
    "lr": {"type": "float", "min": 0.0, "min_open": True, "doc": "learning rate"},
    "betas": {"type": "pair", "min": 0.0, "max": 1.0, "max_open": True,
              "doc": "momentum interpolation b1 and momentum/second-moment decay b2"},
    "weight_decay": {"type": "float", "min": 0.0, "doc": "decoupled weight decay (times lr)"},
    "momentum": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True,
                 "doc": "heavy-ball momentum"},
    "nesterov": {"type": "bool", "doc": "Nesterov momentum"},
    "eps": {"type": "float", "min": 0.0, "min_open": True, "doc": "AdamW denominator epsilon"},
    "schedule": {"type": "choice", "choices": tuple(SCHEDULES), "doc": "learning-rate schedule"},
    "warmup_steps": {"type": "int", "min": 0, "doc": "linear warm-up length in steps"},
    "min_lr_ratio": {"type": "float", "min": 0.0, "max": 1.0,
                     "doc": "final lr of the cosine schedule, as a fraction of lr"},
    "zero_sign": {"type": "choice", "choices": SIGN_RULES,
                  "doc": "what a worker sends for sign(0): random ±1, +1, -1 or 0 (ternary wire)"},
    "tie": {"type": "choice", "choices": SIGN_RULES,
            "doc": "MaVo reply on a tied vote: random ±1, +1, -1 or 0 (ternary wire)"},
    "error_feedback": {"type": "bool",
                       "doc": "keep what was not sent and add it to the next step's input"},
}

SCHEDULE_DEFAULTS = {"schedule": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0}
#: collectives of a method whose messages can be summed in flight (dense or shared-index);
#: "auto" (the default) chooses among the others
ALLREDUCE = ("auto", "ps", "ring", "tree", "halving_doubling", "alltoall", "hierarchical")
#: collectives of a method whose aggregate (a vote, a sum of levels) is coordinate-wise but no
#: all-reduce can compute it
SHARDED = ("auto", "ps", "alltoall", "allgather", "hierarchical")


@dataclass(frozen=True)
class Method:
    """One optimizer: its numerics, its hyperparameters and how its messages travel."""

    name: str
    description: str
    wire: str                      # wire cost per parameter per step, for `dlion-sim list`
    defaults: dict                 # hyperparameter -> default value
    init: Callable
    encode: Callable
    aggregate: Callable
    apply: Callable
    collectives: tuple = ("ps",)   # collectives it can use; the first is the default
    max_workers: int | None = None
    rounds: Callable | None = None  # see the module docstring
    steady_from: Callable | None = None  # see the module docstring
    notes: str = ""                # deliberate differences from the reference, and why
    arrivals: tuple = ()            # "encode", "apply": take ``arrived`` (module docstring)
    discard: Callable | None = None
    flips: bool = False             # encode takes ``flipped`` (module docstring)
    # element-wise: a gradient bucket's message can be encoded and aggregated alone, with
    # the same numbers as the whole vector's, so it may travel while the backward pass goes on
    overlaps: bool = False
    wire_bits: Callable | None = None  # the wire of a piece of the vector (module docstring)
    rules: dict = field(default_factory=dict)  # its own validation rules, over HYPERPARAMETERS
    local_params: Callable | None = None  # per-worker parameters (module docstring)
    check: Callable | None = None  # refusals of a run's settings (module docstring)
    candidates: Callable | None = None  # auto's collectives for hp (module docstring)
    behind: Callable | None = None  # steps its collective runs behind (module docstring)
    stale: bool = False  # a versioned server may apply its messages one by one (docstring)


METHODS: dict[str, Method] = {}


def register(method: Method, hyperparameters: dict | None = None) -> Method:
    """Add ``method`` (and validation rules for its new hyperparameters) to the registry."""
    for key, rule in (hyperparameters or {}).items():
        if key in HYPERPARAMETERS and HYPERPARAMETERS[key] != rule:
            raise ValueError(f"hyperparameter {key!r} already has a different rule")
        HYPERPARAMETERS[key] = rule
    missing = set(method.defaults) - set(HYPERPARAMETERS) - set(method.rules)
    if missing:
        raise ValueError(f"method {method.name!r}: no validation rule for {sorted(missing)}")
    METHODS[method.name] = method
    return method


def rule_for(method: Method, key: str) -> dict:
    """The validation rule of hyperparameter ``key`` for ``method``: its own, or the shared one
    (D-Lion's ``aggregate`` names mavo and avg, the global methods' mean, median, ...)."""
    return method.rules.get(key) or HYPERPARAMETERS[key]


def get(name: str) -> Method:
    """The registered method ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in METHODS:
        raise ValueError(f"method.name = {name!r} is not a method; choose one of "
                         f"{', '.join(METHODS)}")
    return METHODS[name]


def differences(doc: str, name: str | None = None) -> str:
    """The bullets of the "Differences from ..." section that ends a method module's docstring,
    one per line (``Method.notes``, printed by ``dlion-sim list methods --verbose``): all of
    them, or only those that start "name:" (without it) when the module holds several methods."""
    _, found, section = doc.partition("\nDifferences from")
    bullets = [" ".join(b.split()).rstrip(";.") + "." for b in section.split("\n- ")[1:]] \
        if found else []
    if name is None:
        return "\n".join(bullets)
    return "\n".join(b[len(name) + 2:] for b in bullets if b.startswith(f"{name}: "))


def message_bits(payloads) -> np.ndarray:
    """Bits of each worker's message: int64 (n_workers,), from the bytes really produced."""
    if isinstance(payloads, np.ndarray):
        return np.full(payloads.shape[0], 8 * payloads.shape[-1], dtype=np.int64)
    return np.array([8 * p.size for p in payloads], dtype=np.int64)


def message_rounds(method: Method, state, payloads, reply) -> list[tuple[np.ndarray, int]]:
    """The step's messages as rounds of (up bits per worker, down bits), from the real bytes."""
    if method.rounds is not None:
        return method.rounds(state, payloads, reply)
    return [(message_bits(payloads), None if reply is None else 8 * reply.shape[-1])]


def two_rounds(first_bytes: int, payloads, reply) -> list[tuple[np.ndarray, int | None]]:
    """Round 1 carries the first ``first_bytes`` of every message and of the reply, round 2 the
    rest: [(up bits (N,), down bits), ...] for the cluster (the last down None without a
    reply)."""
    n, up = payloads.shape[0], payloads.shape[-1]
    last = None if reply is None else 8 * (reply.shape[-1] - first_bytes)
    return [(np.full(n, 8 * first_bytes), 8 * first_bytes),
            (np.full(n, 8 * (up - first_bytes)), last)]


def keep_unsent(key: str):
    """A ``discard`` for error feedback in ``state[key]``: a worker whose message was not
    aggregated keeps the whole compensated input (``state["compensated"]``, which ``encode``
    leaves there) as its memory, as if it had sent nothing."""
    def discard(state, rows):
        state[key][rows] = state["compensated"][rows]
        return state
    return discard


def worker_arrays(state: dict, n_workers: int) -> list[str]:
    """The keys of ``state`` that hold per-worker arrays (the worker on the first axis)."""
    return [k for k, v in state.items()
            if isinstance(v, np.ndarray) and v.ndim >= 2 and v.shape[0] == n_workers]


def snapshot_rows(state: dict, n_workers: int) -> dict:
    """Copies of the per-worker arrays of ``state`` (to put rows back with ``restore_rows``)."""
    return {k: state[k].copy() for k in worker_arrays(state, n_workers)}


def restore_rows(state: dict, saved: dict, rows: np.ndarray) -> None:
    """Put the ``rows`` (bool (N,)) of every saved per-worker array back, in place."""
    if rows.any():
        for key, values in saved.items():
            if key in state:
                state[key][rows] = values[rows]


# --- dense float32 messages: the global methods and the baselines' replies --------------------

F32 = DenseCodec("float32")


def dense_wire(length, n, hp):
    """``wire_bits`` of float32 messages: a message, a sum and a mean of length values."""
    return (F32.size_bits(length),) * 3


def mean_encode(state, grads, hp, rng):
    """Worker side of the global methods: the fp32 gradient itself."""
    return F32.encode(grads), state


def mean_aggregate(payloads, d, hp, rng):
    """The server's float32 mean of float32 messages, as the float32 reply (as many values as
    each message carries, which may be fewer than d)."""
    p = np.asarray(payloads)
    return F32.encode(F32.decode(p, p.shape[1] // 4).mean(axis=0, dtype=np.float32))


def decode_f32(reply, dtype) -> np.ndarray:
    """A float32 reply -> its values in the parameters' ``dtype``."""
    return F32.decode(reply, reply.size // 4).astype(dtype, copy=False)


# --- updates ---------------------------------------------------------------------------------

def ema_(m, g, b):
    """m <- b*m + (1-b)*g in place (an exponential moving average)."""
    m *= b
    m += np.multiply(g, 1 - b, dtype=m.dtype)


def decoupled_step(x, direction, lr, wd):
    """x - lr*(direction + wd*x): decoupled weight decay on the old x, scaled by lr."""
    step = np.multiply(x, wd, dtype=x.dtype)
    step += direction
    step *= x.dtype.type(lr)
    return x - step


# --- signs: zero and tie rules, the vote ------------------------------------------------------

def coin_flips(count, rng) -> np.ndarray:
    """``count`` fair coin flips, True for +1: one draw per zero sign or tied vote, in index
    order, from the run's seeded generator (unbiased and reproducible)."""
    return rng.random(count) < 0.5


def resolve_zeros(signs, rule, rng):
    """Replace the zeros of an int8 sign array in place by the ``rule`` (random/plus/minus)."""
    zeros = signs == 0
    count = np.count_nonzero(zeros)
    if count == 0 or rule == "zero":
        return signs
    if rule == "random":
        signs[zeros] = np.where(coin_flips(count, rng), 1, -1)
    else:
        signs[zeros] = 1 if rule == "plus" else -1
    return signs


def sign_wire(length, n, hp):
    """``wire_bits`` of sign messages: a sign vector (ternary with zero_sign = "zero"), the
    sum of n of them (n + 1 or 2n + 1 levels), and the reply: that sum (aggregate = "avg") or
    the vote's signs (ternary with tie = "zero")."""
    message = sign_codec(hp["zero_sign"]).size_bits(length)
    total = LevelCodec(n + 1 if hp["zero_sign"] != "zero" else 2 * n + 1).size_bits(length)
    reply = total if hp.get("aggregate") == "avg" else sign_codec(hp["tie"]).size_bits(length)
    return message, total, reply


def sign_codec(rule):
    """The wire of a sign vector under a zero/tie ``rule``: ternary when zeros are sent."""
    return TernaryCodec() if rule == "zero" else SignCodec()


def vote_counts(payloads, d, hp) -> tuple[np.ndarray, int]:
    """The received sign messages -> (bit-sliced counts (``sim.wire.bitslice``), n messages).
    On the 1-bit wire the count is of the +1 signs, (S + n) / 2 for the vote sum S; on the
    ternary wire a +1 counts twice and a 0 once, S + n."""
    if hp["zero_sign"] != "zero":
        p = rows(payloads, SignCodec(), d)
        return bitslice.count_planes(p, d), p.shape[0]
    p = rows(payloads, TernaryCodec(), d)
    nb = p.shape[1] // 2
    zero, plus = p[:, :nb], p[:, nb:]  # the planes of the level sign + 1: bit 0 and bit 1
    if np.bitwise_and(zero, plus).any():
        raise ValueError(f"{TernaryCodec()!r}.decode: payload holds level 3; allowed: levels in "
                         "[0, 3)")
    n = p.shape[0]
    return bitslice.count_planes(np.concatenate([plus, plus, zero]), d, (2 * n).bit_length()), n


def sum_reply(payloads, d, hp):
    """The sum S of the received signs on its wire (``SumCodec`` or ``TernarySumCodec``: the
    level (S + n) / 2 or S + n as bit-planes), which is the bit-sliced count itself."""
    planes, _ = vote_counts(payloads, d, hp)
    return planes.reshape(-1)


def settle(packed, marked, d, rule, rng) -> None:
    """Resolve, in place, the signs of ``packed`` (..., ceil(d/8)) that ``marked`` flags (zeros
    of a worker's input, tied votes), sent as -1 so far, by ``rule``: plus sets them, minus
    leaves them, random flips a fair coin for each, in index order."""
    if rule == "plus":
        packed |= marked
    elif rule == "random":
        count = bitslice.popcount(marked)
        if count:
            bitslice.fill(packed, marked, d, coin_flips(count, rng))


def majority_reply(payloads, d, hp, rng):
    """sign(S) of the received sign messages, ties resolved by ``hp['tie']``, as its wire."""
    planes, n = vote_counts(payloads, d, hp)
    if hp["zero_sign"] != "zero":  # S = 2 * ones - n: S > 0 above n // 2 ones, a tie at n / 2
        greater, equal = bitslice.compare(planes, n // 2, d)
        if n % 2:
            equal[:] = 0
    else:  # V = S + n
        greater, equal = bitslice.compare(planes, n, d)
    if hp["tie"] == "zero":  # the ternary levels sign + 1: bit 0 on a tie, bit 1 on a win
        return np.concatenate([equal, greater])
    settle(greater, equal, d, hp["tie"], rng)
    return greater
