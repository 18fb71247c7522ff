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

Streaming DiLoCo (Douillard et al. 2025; torchft's ``DiLoCo``): with ``fragments`` = P > 1 the
parameters are split into P contiguous slices of the flat vector, as equal as possible (lengths
differ by at most one), and only one fragment communicates at a time. Fragment p's grid steps are
the steps t = (p + 1 + jP) h/P, j = 0, 1, ...: the fragments take turns every h/P steps, each
once per h steps (its first outer gradient covers (p + 1) h/P inner steps). With
``overlap_steps`` = tau, fragment p's outer gradient delta_{i,p} = theta_p - theta_{i,p} is taken
and all-reduced tau steps before its grid step, and lands on it, after that step's inner step:

    theta_p = outer(theta_p, mean_i delta_{i,p})    its own slice of the outer state (Nesterov v)
    theta_{i,p} = a*theta_{i,p} + (1-a)*theta_p      a = ``mixing``; a = 0 replaces, as DiLoCo

where theta_{i,p} on the right is worker i's fragment at landing (tau inner steps after it sent).
``mixing`` defaults to 0.5 with tau > 0 (the paper's choice) and to 0 without (torchft merges
with any alpha, tau or not; so does this). Only the fragment travels, at outer_bits: a sync step
sends d/P values each way, so the bits per parameter per step stay outer_bits/h while the peak
message (the summary's ``peak_bits_per_param``) is 1/P of DiLoCo's; outer = "dlion" votes
fragment by fragment the same way. The all-reduce runs behind the next tau inner steps
(``sim.local``): they start when the sending step's compute ends, and the landing step ends no
earlier than the all-reduce. P = 1 with tau = 0 is DiLoCo exactly; P = 1 with tau > 0 runs the
outer all-reduce behind the last tau inner steps of each round, so its outer gradient is taken
tau steps before the round ends and lands mixed (``mixing``): other numbers than DiLoCo's.

``outer = "dlion"``, this project's own variant: the outer step is Distributed Lion on the
outer gradients. Worker i keeps a Lion momentum m_i of its own delta_i and sends
sign(b1*m_i + (1-b1)*delta_i) (1 bit per parameter per round; ``sim.methods.lion``'s wire and
zero rule), then m_i = b2*m_i + (1-b2)*delta_i with (b1, b2) = outer_betas; the server votes
(aggregate = "mavo") or averages the signs ("avg") as dlion does, and
theta = theta - outer_lr*(direction + outer_weight_decay*theta).

Differences from the references (Douillard et al. 2023 and 2025; PyTorch SGD; DiLoCo's code;
torchft's local_sgd):
- diloco: the inner AdamW defaults are gadamw's (lr 1e-3, betas (0.9, 0.999), weight decay
  0.01), and h defaults to 50 rather than the paper's 500, which suits its 88k-step runs;
- diloco: outer_bits 8 and 4 are per-chunk min-max uniform quantisation (round to nearest,
  float32 lo and scale per outer_chunk values), not INTELLECT-1's int8 or Streaming DiLoCo's
  E3M0 formats; the reply, the mean, is quantised again in the same format;
- diloco: outer = "dlion" is not in the references (see above);
- diloco: every worker takes part in every step: server policies other than 'all', crashes and
  message loss are refused;
- diloco: Streaming DiLoCo's fragments are contiguous equal slices of the flat vector, not the
  paper's strided blocks of layers; when fragments does not divide d, every fragment travels
  padded to ceil(d/fragments) values (a repeat of its last value, dropped on arrival);
- diloco: a fragment's outer gradient leaves overlap_steps before its grid step and lands on it,
  as torchft's fragment_sync_delay does (sending on the grid and landing later, as MaxText does,
  is the same schedule shifted by overlap_steps); the mixing default 0.5 with overlap follows
  the paper, where torchft's fragment_update_alpha and MaxText default to 0 (replace);
- diloco: a fragment's all-reduce must land before the next fragment's leaves (overlap_steps <
  h/fragments, torchft's rule too), and overlap needs a peer all-reduce: a server's
  (ps, alltoall) cannot run behind the inner steps here; fragments are refused on the
  collectives whose shards are sized for the whole model (alltoall; hierarchical with dlion), and
  a server's decode cost (compute.codec_per_param) is charged for the whole model.
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
    "fragments": {"type": "int", "min": 1,
                  "doc": "Streaming DiLoCo: slices of the parameters synchronised in turn, one "
                         "every h/fragments steps (1: DiLoCo)"},
    "overlap_steps": {"type": "int", "min": 0,
                      "doc": "Streaming DiLoCo: inner steps a fragment's outer all-reduce runs "
                             "behind (tau)"},
    "mixing": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True,
               "doc": "Streaming DiLoCo: share of a worker's own fragment kept when the global "
                      "one lands (alpha < 1; default 0.5 with overlap_steps, else 0: replace)"},
}
DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01,
            "momentum": 0.0, **SCHEDULE_DEFAULTS, "h": 50, "inner": "adamw",
            "outer": "nesterov", "outer_lr": 0.7, "outer_momentum": None, "outer_bits": 32,
            "outer_chunk": 4096, "outer_betas": (0.9, 0.99), "outer_weight_decay": 0.0,
            "fragments": 1, "overlap_steps": 0, "mixing": None,
            "aggregate": "mavo", "zero_sign": "random", "tie": "random"}
#: collectives of a vote (outer dlion): no all-reduce computes it
VOTE_COLLECTIVES = ("auto", "ps", "alltoall", "hierarchical")
#: the peer all-reduces, which can run behind inner steps (overlap_steps > 0)
BEHIND = ("auto", "ring", "tree", "halving_doubling", "hierarchical")


def _codec(hp):
    bits = hp["outer_bits"]
    return F32 if bits == 32 else BF16 if bits == 16 else MinMaxCodec(bits, hp["outer_chunk"])


def _momentum(hp) -> float:
    mu = hp["outer_momentum"]
    return (0.9 if hp["outer"] == "nesterov" else 0.0) if mu is None else mu


def _mixing(hp) -> float:
    alpha = hp["mixing"]
    return (0.5 if hp["overlap_steps"] else 0.0) if alpha is None else alpha


def _fragment(d: int, hp, f: int) -> slice:
    """Fragment ``f`` of the flat vector: contiguous, lengths floor or ceil of d/fragments."""
    p = hp["fragments"]
    return slice(f * d // p, (f + 1) * d // p)


def _length(d: int, hp) -> int:
    """Values a fragment's message carries: the longest fragment's, ceil(d/fragments)."""
    return -(-d // hp["fragments"])


def _due(step: int, hp, ahead: int):
    """The fragment whose grid step is ``step + ahead`` (1-based steps), or None."""
    period, t = hp["h"] // hp["fragments"], step + ahead
    return None if t % period else (t // period - 1) % hp["fragments"]


def _padded(a: np.ndarray, length: int) -> np.ndarray:
    """(N, L) -> C-contiguous (N, length): a short fragment repeats its last value, which moves
    no min, max, mean or vote of the rest."""
    if a.shape[1] < length:
        return np.concatenate([a, np.repeat(a[:, -1:], length - a.shape[1], axis=1)], axis=1)
    return np.ascontiguousarray(a)


def _init(x, n_workers, hp, shapes):
    if x.size < hp["fragments"]:
        raise ValueError(f"method.fragments = {hp['fragments']} with {x.size} parameters; "
                         f"allowed: 1 to {x.size}")
    rows = np.zeros((n_workers, x.size), dtype=x.dtype)
    state = {"params": np.repeat(x[None], n_workers, axis=0), "anchor": x.copy(), "step": 0,
             "fragment": 0, "landing": None}
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
    n, d = grads.shape
    f = _due(state["step"], hp, hp["overlap_steps"])
    if f is None:
        return np.zeros((n, 0), dtype=np.uint8), state  # an inner step: nothing is sent
    state["fragment"], part, length = f, _fragment(d, hp, f), _length(d, hp)
    delta = _padded(state["anchor"][part][None] - state["params"][:, part], length)
    if hp["outer"] == "dlion":
        b1, b2 = hp["outer_betas"]
        m = _padded(state["outer_m"][:, part], length)  # the kernel updates it in place
        signs = dlion_signs(m, delta, b1, b2, hp["zero_sign"], rng)
        state["outer_m"][:, part] = m[:, :part.stop - part.start]
        return signs, state
    return _codec(hp).encode(delta), state


def _aggregate(payloads, d, hp, rng):
    length = _length(d, hp)
    if hp["outer"] == "dlion":
        return dlion_aggregate(payloads, length, hp, rng)
    codec = _codec(hp)
    mean = codec.decode(np.asarray(payloads), length).mean(axis=0, dtype=np.float32)
    return codec.encode(mean[None])[0]


def _apply(x, reply, state, hp, lr):
    if reply is not None and hp["overlap_steps"]:  # it lands overlap_steps inner steps later
        state["landing"] = (state["fragment"], reply)
        return x, state
    if reply is not None:
        return _land(x, state["fragment"], reply, state, hp)
    if state["landing"] is not None and _due(state["step"], hp, 0) is not None:
        (f, reply), state["landing"] = state["landing"], None
        return _land(x, f, reply, state, hp)
    return x, state  # an inner step: the global theta waits for its fragment's turn


def _land(x, f, reply, state, hp):
    """The outer step on fragment ``f`` from its reply, then every worker's merge."""
    n, part, length = state["params"].shape[0], _fragment(x.size, hp, f), _length(x.size, hp)
    size, anchor = part.stop - part.start, state["anchor"]
    if hp["outer"] == "dlion":
        direction = vote_direction(reply, n, length, x.dtype, hp)[:size]
        new = decoupled_step(anchor[part], direction, hp["outer_lr"], hp["outer_weight_decay"])
    else:
        delta = _codec(hp).decode(reply[None], length)[0][:size].astype(x.dtype)
        mu = x.dtype.type(_momentum(hp))
        update = delta
        if mu:
            buf = state["outer_buf"][part]  # a view: the fragment's own outer momentum
            buf *= mu
            buf += delta
            update = delta + mu * buf if hp["outer"] == "nesterov" else buf
        new = anchor[part] - x.dtype.type(hp["outer_lr"]) * update
    anchor[part] = new
    alpha = x.dtype.type(_mixing(hp))
    local = state["params"][:, part]
    if alpha:
        local *= alpha
        local += (1 - alpha) * new
    else:
        local[:] = new
    return anchor.copy(), state


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
    return _check_streaming(hp, settings["collective"])


def _check_streaming(hp, collective):
    """The refusals of Streaming DiLoCo's keys (see the module docstring), or None."""
    p, tau, h = hp["fragments"], hp["overlap_steps"], hp["h"]
    if p > h or h % p:
        return (f"method.fragments = {p} with h = {h}: a fragment syncs every h/fragments "
                "steps; allowed: a divisor of h")
    if tau >= h // p:
        return (f"method.overlap_steps = {tau} with h = {h}, fragments = {p}: a fragment's "
                f"all-reduce must land before the next one leaves; allowed: 0 to {h // p - 1}")
    if tau and hp["outer"] == "dlion":
        return (f"method.overlap_steps = {tau} with outer = 'dlion': a vote travels by a server "
                "or shard owners, which cannot run behind the inner steps; allowed: 0")
    if tau and collective not in (None, *BEHIND):
        return (f"network.collective = {collective!r} with method.overlap_steps = {tau}: only "
                f"a peer all-reduce runs behind the inner steps; allowed: {', '.join(BEHIND)}")
    if p > 1 and collective in _whole_model(hp):
        return (f"network.collective = {collective!r} with method.fragments = {p}: its shards "
                f"are sized for the whole model; allowed: {', '.join(_candidates(hp))}")
    return None


def _whole_model(hp) -> tuple:
    """Collectives whose wire is sized from the whole model, not from the message."""
    return ("alltoall", "hierarchical") if hp["outer"] == "dlion" else ("alltoall",)


def _candidates(hp) -> tuple:
    if hp["overlap_steps"]:
        return BEHIND
    both = VOTE_COLLECTIVES if hp["outer"] == "dlion" else ALLREDUCE
    return both if hp["fragments"] == 1 else tuple(c for c in both if c not in _whole_model(hp))


register(Method("diloco", "DiLoCo / Local SGD: h inner steps (adamw, sgd, lion) on each "
                "worker's own parameters, then an outer step (nesterov, sgd, dlion) on the mean "
                "parameter change; Streaming DiLoCo with fragments and overlap_steps",
                "32/h bits up and down (outer_bits/h; 1/h with dlion), in fragments of d/P",
                DEFAULTS, _init, _encode, _aggregate, _apply, collectives=ALLREDUCE,
                rounds=_rounds, wire_bits=_wire_bits, notes=differences(__doc__, "diloco"),
                local_params=lambda state: state["params"], check=_check,
                candidates=_candidates, behind=lambda hp: hp["overlap_steps"]),
         {**RULES, **LION_RULES})
