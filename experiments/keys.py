"""The spec's keys: every section's fields with their kinds, defaults, units and bounds, and
the error a spec the simulator cannot run raises.

``SCHEMA`` is the table the validator, ``dlion-sim list keys`` and the docs read; the
objective's and the method's keys come from the objective or method named
(``experiments.named``).
"""
from __future__ import annotations

from dataclasses import dataclass

from sim.adversaries import ATTACKS, SCALE_DEFAULT
from sim.peers import STEP_COLLECTIVES
from sim.compute import DISTRIBUTIONS
from sim.faults import LOSS_HANDLING
from sim.net import presets, transport
from sim.server import POLICIES, WEIGHTS

SECTIONS = ("objective", "method", "cluster", "network", "compute", "server", "faults", "run")


FLAT_KEYS = {"workers": "cluster", "batch_size": "cluster", "steps": "run", "seed": "run",
             "eval_every": "run", "target": "run", "dtype": "run"}


TCP_WINDOW_DEFAULT = 4 * 2**20  # bytes: a common Linux maximum receive window

#: Bounds every field of a kind gets unless it declares its own, so an absurd but finite value
#: (a latency of 1e308 s) is refused up front, also for keys added later. (min, max) in base
#: units: bit/s, s, bytes; plain numbers; whole numbers (what an int64 holds).
KIND_BOUNDS = {
    "bandwidth": (1.0, 1e15),      # 1 bit/s to 1 Pb/s
    "time": (None, 86400.0),       # a day
    "size": (None, 1e15),          # a petabyte
    "float": (-1e18, 1e18),
    "int": (-(2**63), 2**63 - 1),
}


class SpecError(ValueError):
    """A spec the simulator cannot run; the message is one line meant for the user."""


@dataclass(frozen=True)
class Field:
    """How one spec key is checked: its type, default, bounds or choices."""

    kind: str                      # int | float | bool | str | choice | pair | bandwidth | time |
                                   # size | portion (a count >= 1 or a fraction in (0, 1]) |
                                   # ids (a list of worker ids) | workers (a count, a
                                   # fraction in [0, 1) or ids)
    default: object = None
    doc: str = ""
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple = ()
    per_worker: bool = False       # also accepts a list with one value per worker


def _f(kind, default=None, doc="", **kw):
    return Field(kind, default, doc, **kw)


def bounds(field: Field) -> tuple:
    """(min, min_open, max, max_open) a value of ``field`` is checked against: its own bounds,
    tightened by the bounds of its kind (``KIND_BOUNDS``)."""
    low, high = KIND_BOUNDS.get(field.kind, (None, None))
    lo, lo_open = field.min, field.min_open
    if low is not None and (lo is None or lo < low):
        lo, lo_open = low, False
    hi, hi_open = field.max, field.max_open
    if high is not None and (hi is None or hi > high):
        hi, hi_open = high, False
    return lo, lo_open, hi, hi_open


SCHEMA: dict[str, dict[str, Field]] = {
    "cluster": {
        "workers": _f("int", 8, "number of workers N", min=1, max=65535),
        "batch_size": _f("int", 32, "minibatch size per worker", min=1),
        "partition": _f("choice", "iid", "how the data is split across workers",
                        choices=("iid", "dirichlet", "by_label", "contiguous")),
        "alpha": _f("float", 1.0, "Dirichlet concentration of the label skew", min=0.0,
                    min_open=True, max=1e6),
        "classes_per_worker": _f("int", 2, "classes per worker for partition = 'by_label'", min=1),
        "model_params": _f("int", 0, "virtual model size: messages are sized as for this many "
                           "parameters (0 = the objective's own)", min=0, max=10**15),
        "model": _f("choice", None, "model preset: fills model_params and compute.step_time",
                    choices=tuple(presets.MODELS)),
        "layers": _f("int", 1, "equal layers of a model given by model_params only (a preset "
                     "brings its own layers, an objective its tensors): what buckets group",
                     min=1, max=100_000),
    },
    "network": {
        "bandwidth": _f("bandwidth", 1e9, "each worker's link, bit/s", min=0.0, min_open=True,
                        per_worker=True),
        "latency": _f("time", 50e-6, "one-way latency of a worker's link, s", min=0.0,
                      per_worker=True),
        "server_bandwidth": _f("bandwidth", None, "the server's link, bit/s (default: the "
                               "fastest worker link)", min=0.0, min_open=True),
        "preset": _f("choice", None, "link preset: fills bandwidth and latency",
                     choices=tuple(presets.LINKS)),
        "links": _f("choice", None, "draw per-worker bandwidth and latency from a named "
                    "distribution (seeded by run.seed)", choices=tuple(presets.DISTRIBUTIONS)),
        "server_latency": _f("time", 0.0, "the server link's latency, s", min=0.0),
        "overhead": _f("time", 0.0, "per-message software overhead, s", min=0.0),
        "topology": _f("choice", "star", "network shape: one switch (star), server shards, "
                       "racks with uplinks, or nodes of GPUs sharing a NIC",
                       choices=("star", "sharded", "racks", "nodes")),
        "gpus_per_node": _f("int", None, "workers (GPUs) per node sharing its NIC (topology "
                            "'nodes'); bandwidth and latency are then the NIC's", min=1,
                            max=65535),
        "intra": _f("choice", None, "intra-node link preset (topology 'nodes'): fills "
                    "intra_bandwidth and intra_latency", choices=tuple(presets.INTRA)),
        "intra_bandwidth": _f("bandwidth", None, "link between the GPUs of a node, bit/s per GPU "
                              "and direction (topology 'nodes')", min=0.0, min_open=True),
        "intra_latency": _f("time", None, "one-way latency GPU to GPU inside a node, s "
                            "(topology 'nodes'; default 1us)", min=0.0),
        "servers": _f("int", 1, "server shards (topology 'sharded')", min=1, max=65535),
        "rack_size": _f("int", None, "workers per rack (topology 'racks')", min=1, max=65535),
        "oversubscription": _f("float", 1.0, "rack uplink oversubscription ratio", min=1.0,
                               max=1e6),
        "rack_bandwidth": _f("bandwidth", None, "rack uplink, bit/s (overrides oversubscription)",
                             min=0.0, min_open=True),
        "sharing": _f("choice", "fair", "how flows share a link", choices=("fair", "fifo")),
        "transport": _f("choice", "tcp", "how bytes travel: tcp (slow start, Ethernet "
                        "framing), rdma (InfiniBand framing) or fluid (ideal links); a link "
                        "preset sets its own", choices=transport.TRANSPORTS),
        "mtu": _f("int", None, "bytes per packet (tcp: 576-9216, default 1500; rdma: an "
                  "InfiniBand MTU, default 4096)"),
        "initial_window": _f("int", None, "TCP initial congestion window, segments (default "
                             f"{transport.INITIAL_WINDOW})", min=1),
        "rto": _f("time", None, "TCP minimum retransmission timeout, s: a connection idle for "
                  "longer halves its window (default 200ms)", min=0.0, min_open=True),
        "tcp_window": _f("size", None, "TCP window, bytes (rate <= window/RTT); true = 4MiB",
                         min=0.0, min_open=True),
        "goodput": _f("float", None, "fraction of link rate that carries payload (default: "
                      "the transport's framing)", min=0.0, max=1.0, min_open=True),
        "collective": _f("choice", None, "how messages travel (default: the method's first, "
                         "auto for every method that has a choice)",
                         choices=tuple(STEP_COLLECTIVES)),
        "chunk": _f("size", 512 * 1024, "bytes per piece a pipelined collective streams "
                    "(NCCL: its 4 MiB buffer in 8 slots); 0 = the textbook collectives, step "
                    "by step", min=0.0),
        "channels": _f("int", 2, "parallel rings of a collective (NCCL's channels over one "
                       "NIC)", min=1, max=64),
        "sockets": _f("int", 1, "TCP connections per peer and channel (NCCL_SOCKET_NTHREADS x "
                      "NCCL_NSOCKS_PERTHREAD; 1 x 1 outside the clouds NCCL tunes for)",
                      min=1, max=64),
        "header": _f("size", 0.0, "per-message header, bytes", min=0.0),
        "bucket": _f("size", 25 * 2**20, "bytes of gradient per bucket (DDP's bucket_cap_mb: "
                     "25 MiB)", min=0.0, min_open=True),
        "first_bucket": _f("size", 2**20, "bytes of gradient in the first bucket (DDP: 1 MiB, "
                           "so that communication starts early)", min=0.0, min_open=True),
    },
    "compute": {
        "step_time": _f("time", 0.0, "compute time per step, s", min=0.0),
        "per_sample": _f("time", 0.0, "compute time per sample, s", min=0.0),
        "flops_per_sample": _f("float", 0.0, "FLOPs per sample", min=0.0),
        "device_flops": _f("float", 0.0, "device speed, FLOP/s", min=0.0),
        "distribution": _f("choice", "lognormal", "law of the per-step compute-time factor "
                           "(stragglers)", choices=DISTRIBUTIONS),
        "jitter": _f("float", 0.0, "lognormal sigma of per-step compute time", min=0.0,
                     max=10.0),
        "tail": _f("float", None, "shifted_exponential: mean of the exponential part, as a "
                   "fraction of the base time", min=0.0, min_open=True),
        "pareto_shape": _f("float", None, "pareto: shape of the factor (heavy tail; mean "
                           "shape/(shape-1))", min=0.0, min_open=True),
        "trace_file": _f("str", None, "distribution 'trace': CSV of per-worker step times in "
                         "s, one column per worker, one row per step (a relative path is "
                         "relative to the spec file)"),
        "straggler_prob": _f("float", 0.0, "probability a worker straggles on a step",
                             min=0.0, max=1.0),
        "straggler_slowdown": _f("float", 1.0, "a straggler's compute-time factor", min=1.0,
                                 max=1e6),
        "aggregate_per_byte": _f("time", 0.0, "server time per byte received, s", min=0.0),
        "codec_per_param": _f("time", 0.0, "encode/decode time per parameter, s", min=0.0),
        "overlap": _f("bool", None, "send each gradient bucket while the backward pass goes on "
                      "(default: where the method, the server policy and the faults allow it)"),
        "backward_fraction": _f("float", 2 / 3, "share of the step's compute that is the "
                                "backward pass (2/3: 4N of the 6N FLOPs per token, Kaplan et "
                                "al. 2020)", min=0.0, min_open=True, max=1.0),
    },
    "server": {
        "policy": _f("choice", "all", "when the server closes a step: every message, a "
                     "deadline, or the first k; or no steps: apply each message (async), a "
                     "clock's with bounded staleness (ssp), or every k (fedbuff)",
                     choices=POLICIES),
        "deadline": _f("time", None, "policy 'deadline': seconds after the step opens (the "
                       "previous reply is sent)", min=0.0, min_open=True),
        "k": _f("portion", None, "policy 'first_k': messages to wait for; 'fedbuff': messages "
                "per update; a count or a fraction of the workers", min=0.0, min_open=True),
        "staleness": _f("int", None, "policy 'ssp': clocks a worker may run ahead of the "
                        "slowest (0: synchronous)", min=0, max=10**6),
        "staleness_weight": _f("choice", None, "async, ssp, fedbuff: the update's step times "
                               "constant 1, 1/sqrt(1+tau) (FedBuff), (1+tau)^-a or a hinge "
                               "(FedAsync) of its staleness tau (default constant)",
                               choices=WEIGHTS),
        "staleness_exponent": _f("float", None, "staleness_weight 'polynomial': a in "
                                 "(1+tau)^-a (default 0.5)", min=0.0, min_open=True, max=100.0),
        "staleness_threshold": _f("int", None, "staleness_weight 'hinge': b, the staleness "
                                  "still weighted 1 (default 4)", min=0, max=10**6),
        "staleness_slope": _f("float", None, "staleness_weight 'hinge': a in "
                              "1/(a(tau-b)+1) above b (default 10)", min=0.0, min_open=True,
                              max=1e6),
    },
    "faults": {
        "crash_workers": _f("ids", [], "workers that crash (at crash_time or crash_step)"),
        "crash_time": _f("time", None, "when the listed workers crash, s", min=0.0),
        "crash_step": _f("int", None, "or: the step from which the listed workers are down",
                         min=1),
        "crash_rate": _f("float", 0.0, "random crashes per worker per simulated second",
                         min=0.0),
        "recover_after": _f("time", None, "a crashed worker is back after this long, s "
                            "(default: never)", min=0.0, min_open=True),
        "detect_after": _f("time", 1.0, "the server notices a crash after this long (heartbeat "
                           "timeout), s", min=0.0),
        "loss": _f("float", 0.0, "probability that a worker's message is lost", min=0.0,
                   max=1.0, max_open=True),
        "on_loss": _f("choice", "retransmit", "a lost message is sent again after rto, or "
                      "dropped", choices=LOSS_HANDLING),
        "rto": _f("time", 0.2, "retransmission timeout, s", min=0.0, min_open=True),
        "byzantine": _f("workers", 0, "adversarial workers: a count, a fraction of the workers "
                        "in [0, 1), or a list of ids (others drawn from run.seed)"),
        "attack": _f("choice", "flip", "what adversaries send: the negation, random noise, or "
                     "-scale_factor x the gradient (full-precision methods)", choices=ATTACKS),
        "scale_factor": _f("float", None, f"attack 'scale': lambda (default {SCALE_DEFAULT:g})",
                           min=0.0, min_open=True, max=1e12),
        "collude": _f("bool", False, "adversaries all send one vector, against the honest "
                      "workers' mean"),
    },
    "run": {
        "steps": _f("int", 100, "number of steps", min=1),
        "seed": _f("int", 0, "seed of the run's random streams", min=0),
        "eval_every": _f("int", 10, "evaluate every k steps (0: only at the end)", min=0),
        "target": _f("float", None, "stop once the target metric reaches this value"),
        "target_metric": _f("str", "loss", "evaluation metric the target applies to"),
        "dtype": _f("choice", "float32", "floating point of the numerics",
                    choices=("float32", "float64")),
        "trace": _f("bool", False, "write trace.csv and trace.json (Chrome trace) of timeline events"),
    },
}


def describe_range(field: Field, technical: bool = True) -> str:
    """'0 < value <= 1e+15 bit/s': the range a field allows, in its base unit.

    ``technical=False`` leaves out the bounds plain numbers get only to stay finite
    (``KIND_BOUNDS`` of 'int' and 'float'), which say nothing about the key.
    """
    if technical or field.kind not in ("int", "float"):
        low, low_open, high, high_open = bounds(field)
    else:
        low, low_open, high, high_open = field.min, field.min_open, field.max, field.max_open
    if low is None and high is None:
        return "any"
    unit = {"bandwidth": " bit/s", "time": " s", "size": " bytes"}.get(field.kind, "")
    lo = "" if low is None else f"{low:g} {'<' if low_open else '<='} "
    hi = "" if high is None else f" {'<' if high_open else '<='} {high:g}"
    return f"{lo}value{hi}{unit}"
