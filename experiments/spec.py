"""Experiment specs: read TOML or keywords, validate every key, fill defaults, write back.

A resolved spec is a plain nested dict ``{section: {key: value}}`` with every default filled
in and every quantity in base units (bit/s, seconds, bytes). Errors are ``SpecError``: one line
naming the key, the bad value, what is allowed and, for a misspelt key, the closest valid one.
"""
from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import models
from sim import methods, units
from sim.methods.base import rule_for
from sim.cluster import STEP_COLLECTIVES
from sim.adversaries import ATTACKS, FULL_PRECISION, SCALE_DEFAULT
from sim.methods.robust import KRUM_F_DEFAULT
from sim.compute import DISTRIBUTIONS, read_trace
from sim.faults import LOSS_HANDLING
from sim.net import presets, transport
from sim.server import POLICIES

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
        "topology": _f("choice", "star", "network shape",
                       choices=("star", "sharded", "racks")),
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
        "collective": _f("choice", None, "how messages travel (default: the method's first)",
                         choices=tuple(STEP_COLLECTIVES)),
        "header": _f("size", 0.0, "per-message header, bytes", min=0.0),
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
    },
    "server": {
        "policy": _f("choice", "all", "when the server closes a step: every message, a "
                     "deadline, or the first k", choices=POLICIES),
        "deadline": _f("time", None, "policy 'deadline': seconds after the step opens (the "
                       "previous reply is sent)", min=0.0, min_open=True),
        "k": _f("portion", None, "policy 'first_k': messages to wait for, a count or a "
                "fraction of the workers", min=0.0, min_open=True),
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
        "trace": _f("bool", False, "write trace.csv of timeline events"),
    },
}


def _suggest(key, valid) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} Allowed: {', '.join(valid)}"


def _shown(key) -> str:
    """A key as the user wrote it, quoted when it holds anything but a plain name."""
    text = str(key)
    return text if text.replace("_", "").replace("-", "").isalnum() else repr(text)


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def check_value(where: str, field: Field, value):
    """Return ``value`` converted to base units, or raise SpecError naming ``where``."""
    if value is None:
        return None
    if field.per_worker and isinstance(value, (list, tuple)):
        if not value:
            raise SpecError(f"{where} = []: a per-worker list needs one value per worker")
        return [check_value(f"{where}[{i}]", Field(**{**field.__dict__, "per_worker": False}), v)
                for i, v in enumerate(value)]
    kind = field.kind
    if kind in ("bandwidth", "time", "size"):
        try:
            out = units.parse(value, kind)
        except ValueError as err:
            raise SpecError(f"{where} = {value!r}: {err}") from None
    elif kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{where} = {value!r}: expected true or false, got {_type_name(value)}")
        return value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where} = {value!r}: expected an integer, got {_type_name(value)}")
        out = value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where} = {value!r}: expected a number, got {_type_name(value)}")
        out = float(value)
    elif kind in ("str", "choice"):
        if not isinstance(value, str):
            raise SpecError(f"{where} = {value!r}: expected a string, got {_type_name(value)}")
        if kind == "choice" and value not in field.choices:
            raise SpecError(f"{where} = {value!r} is not allowed{_suggest(value, field.choices)}")
        return value
    elif kind == "portion":
        return _count_or_fraction(where, value, zero_allowed=False)
    elif kind == "workers":
        if isinstance(value, (list, tuple)):
            return check_value(where, Field("ids"), value)
        return _count_or_fraction(where, value, zero_allowed=True)
    elif kind == "ids":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise SpecError(f"{where} = {value!r}: expected a list of worker ids (integers "
                            ">= 0), e.g. [0, 3]")
        if len(set(value)) != len(value):
            raise SpecError(f"{where} = {value!r}: a worker is listed twice")
        return sorted(value)
    elif kind == "pair":
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise SpecError(f"{where} = {value!r}: expected a pair of numbers like [0.9, 0.99]")
        item = Field("float", min=field.min, max=field.max, min_open=field.min_open,
                     max_open=field.max_open)
        return [check_value(f"{where}[{i}]", item, v) for i, v in enumerate(value)]
    else:
        raise AssertionError(kind)
    if isinstance(out, float) and not math.isfinite(out):
        raise SpecError(f"{where} = {value!r}: expected a finite number")
    low, low_open, high, high_open = bounds(field)
    low_bad = low is not None and (out <= low if low_open else out < low)
    high_bad = high is not None and (out >= high if high_open else out > high)
    if low_bad or high_bad:
        raise SpecError(f"{where} = {value!r} is out of range; allowed: {describe_range(field)}")
    return out



def _count_or_fraction(where: str, value, zero_allowed: bool):
    """A number of workers given as a count (int) or a fraction of them (float): counts from 1
    and fractions in (0, 1], or, when ``zero_allowed`` (nobody is a valid answer, and a list of
    ids is the alternative), counts from 0 and fractions in [0, 1)."""
    if zero_allowed:
        allowed = "a count >= 0, a fraction in [0, 1) or a list of worker ids"
    else:
        allowed = "a count >= 1 or a fraction in (0, 1]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where} = {value!r}: expected {allowed}, got {_type_name(value)}")
    if isinstance(value, int):
        if value < (0 if zero_allowed else 1):
            raise SpecError(f"{where} = {value!r} is out of range; allowed: {allowed}")
        return value
    if not (0 <= value < 1 if zero_allowed else 0 < value <= 1):
        raise SpecError(f"{where} = {value!r} is out of range; allowed: {allowed}")
    return float(value)

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


def _check_section(section: str, table, fields: dict[str, Field], skip=()) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"[{section}] must be a table of keys, got {_type_name(table)}")
    for key, value in table.items():
        if key not in fields and key not in skip:
            raise SpecError(f"[{section}] {_shown(key)}: unknown key{_suggest(key, list(fields))}")
        if value is None and key in fields and fields[key].default is not None:
            raise SpecError(f"{section}.{key} = None: give a value (default "
                            f"{fields[key].default!r}) or leave the key out")
    return {key: check_value(f"{section}.{key}", field, table.get(key, field.default))
            for key, field in fields.items()}


# --- objectives and methods are checked against what they accept ----------------------------

def objective_fields(name: str) -> dict[str, Field]:
    """The keyword parameters of the built-in objective ``name``, as Fields typed by their default."""
    factory = models.REGISTRY[name][0]
    fields = {}
    for pname, param in inspect.signature(factory).parameters.items():
        if param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        default = None if param.default is param.empty else param.default
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(default), "any")
        if isinstance(default, (list, tuple)):
            kind = "list"
        fields[pname] = Field(kind, default)
    return fields


# objective parameters that the spec sets from other sections, so a run has one truth
_SET_ELSEWHERE = {"partition": "cluster.partition", "alpha": "cluster.alpha",
                  "classes_per_worker": "cluster.classes_per_worker", "dtype": "run.dtype"}


def _check_objective(table, cluster: dict, dtype: str) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"[objective] must be a table of keys, got {_type_name(table)}")
    name = table.get("name", "logistic")
    if not isinstance(name, str) or name not in models.REGISTRY:
        raise SpecError(f"objective.name = {name!r} is not a built-in objective"
                        f"{_suggest(name, sorted(models.REGISTRY))}")
    fields = objective_fields(name)
    out = {"name": name}
    for key, value in table.items():
        if key == "name":
            continue
        if key in _SET_ELSEWHERE and key in fields:
            source = dtype if key == "dtype" else cluster[key]
            if value != source:  # a resolved spec repeats the value; a different one is a clash
                raise SpecError(f"objective.{key} = {value!r}: set {_SET_ELSEWHERE[key]} "
                                f"instead (now {source!r}); it applies to every objective")
            continue
        if key not in fields:
            raise SpecError(f"[objective] {_shown(key)}: {name!r} has no such parameter"
                            f"{_suggest(key, list(fields))}")
        kind = fields[key].kind
        if kind == "list":
            if not isinstance(value, (list, tuple)):
                raise SpecError(f"objective.{key} = {value!r}: expected a list")
            value = list(value)
        elif kind != "any":
            value = check_value(f"objective.{key}", fields[key], value)
        out[key] = value
    # the cluster's partition and the run's dtype reach the objective when it has such a knob
    for key in ("partition", "alpha", "classes_per_worker"):
        if key in fields and key not in out:
            out[key] = cluster[key]
    if cluster["partition"] != "iid" and "partition" not in fields:
        raise SpecError(f"cluster.partition = {cluster['partition']!r}: objective {name!r} has "
                        "no data to partition; allowed: 'iid'")
    if "dtype" in fields:
        out["dtype"] = dtype
    return out


def method_fields(name: str) -> dict[str, Field]:
    """The hyperparameters of method ``name`` as Fields, defaults from the method."""
    method = methods.get(name)
    fields = {}
    for key, default in method.defaults.items():
        rule = dict(rule_for(method, key))
        kind = rule.pop("type")
        rule.pop("doc", None)
        if "choices" in rule:
            rule["choices"] = tuple(rule["choices"])
        fields[key] = Field(kind, list(default) if isinstance(default, tuple) else default, **rule)
    return fields


def method_keys() -> dict[str, Field]:
    """Every [method] hyperparameter as a Field: the default when all methods that take it
    agree (else None), and the doc naming which methods take it when not all do."""
    out = {}
    everyone = set(methods.METHODS)
    for key in methods.HYPERPARAMETERS:
        takers = [m for m in methods.METHODS.values() if key in m.defaults]
        if not takers:
            continue
        fields = [method_fields(m.name)[key] for m in takers]
        defaults = {repr(f.default) for f in fields}
        docs = list(dict.fromkeys(rule_for(m, key).get("doc", "") for m in takers))
        doc = "; ".join(docs)
        if {m.name for m in takers} != everyone:
            doc += f" ({', '.join(m.name for m in takers)})"
        choices = tuple(dict.fromkeys(c for f in fields for c in f.choices))
        out[key] = Field(**{**fields[0].__dict__, "doc": doc, "choices": choices,
                            "default": fields[0].default if len(defaults) == 1 else None})
    return out


def _check_method(table, workers: int) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"[method] must be a table of keys, got {_type_name(table)}")
    name = table.get("name", "dlion")
    if not isinstance(name, str) or name not in methods.METHODS:
        raise SpecError(f"method.name = {name!r} is not a method"
                        f"{_suggest(name, list(methods.METHODS))}")
    method = methods.METHODS[name]
    if method.max_workers is not None and workers > method.max_workers:
        raise SpecError(f"cluster.workers = {workers}: method {name!r} runs on at most "
                        f"{method.max_workers} worker(s); use 'dlion' or 'glion' for more")
    hp = _check_section("method", table, method_fields(name), skip=("name",))
    if hp.get("nesterov") and hp.get("momentum") == 0:  # it would change nothing (torch refuses)
        raise SpecError("method.nesterov = true needs method.momentum > 0 (momentum = 0); set "
                        "nesterov = false for plain SGD")
    return {"name": name, **hp}


# --- whole specs ------------------------------------------------------------------------------

def resolve(raw: dict, custom_objective=None) -> dict:
    """Validate a raw spec dict (TOML-shaped, without [sweep]) and fill every default.

    ``custom_objective``: a user's Objective object, which then stands for [objective].
    """
    if not isinstance(raw, dict):
        raise SpecError(f"a spec must be a table of sections, got {_type_name(raw)}")
    for section in raw:
        if section not in SECTIONS:
            raise SpecError(f"[{_shown(section)}]: unknown section{_suggest(section, SECTIONS)}")
    raw = _apply_presets(raw)
    spec = {s: _check_section(s, raw.get(s, {}), SCHEMA[s]) for s in ("cluster", "run")}
    spec["network"] = _check_section("network", raw.get("network", {}), SCHEMA["network"])
    spec["compute"] = _check_section("compute", raw.get("compute", {}), SCHEMA["compute"])
    if custom_objective is None:
        spec["objective"] = _check_objective(raw.get("objective", {}), spec["cluster"],
                                             spec["run"]["dtype"])
    else:
        if spec["cluster"]["partition"] != "iid":
            raise SpecError(f"cluster.partition = {spec['cluster']['partition']!r}: a custom "
                            "objective splits its own data; allowed: 'iid'")
        spec["objective"] = {"name": f"custom:{type(custom_objective).__name__}",
                             "dim": int(custom_objective.dim)}
    spec["server"] = _check_section("server", raw.get("server", {}), SCHEMA["server"])
    spec["faults"] = _check_section("faults", raw.get("faults", {}), SCHEMA["faults"])
    spec["method"] = _check_method(raw.get("method", {}), spec["cluster"]["workers"])
    _check_consistency(spec)
    _check_time_and_faults(spec)
    return {s: spec[s] for s in SECTIONS}


#: keys that belong to one setting of another key: (section, key) -> (key it needs, values)
_BELONGS_TO = {
    ("compute", "tail"): ("distribution", ("shifted_exponential",)),
    ("compute", "pareto_shape"): ("distribution", ("pareto",)),
    ("compute", "trace_file"): ("distribution", ("trace",)),
    ("server", "deadline"): ("policy", ("deadline",)),
    ("server", "k"): ("policy", ("first_k",)),
    ("faults", "scale_factor"): ("attack", ("scale",)),
    ("method", "trim"): ("aggregate", ("trimmed_mean",)),
    ("method", "krum_f"): ("aggregate", ("krum",)),
    ("method", "krum_m"): ("aggregate", ("krum",)),
    ("faults", "crash_time"): ("crash_workers", None),
    ("faults", "crash_step"): ("crash_workers", None),
}
#: what a setting needs: (section, key, value) -> the key that must be given
_NEEDS = {
    ("compute", "distribution", "shifted_exponential"): "tail",
    ("compute", "distribution", "pareto"): "pareto_shape",
    ("compute", "distribution", "trace"): "trace_file",
    ("server", "policy", "deadline"): "deadline",
    ("server", "policy", "first_k"): "k",
}


def _check_time_and_faults(spec: dict) -> None:
    """The compute distribution, the server policy and the faults: keys that go together, and
    what the collective and the workers allow."""
    for (section, key), (owner, values) in _BELONGS_TO.items():
        given, setting = spec[section].get(key), spec[section].get(owner)
        if given not in (None, []) and (not setting if values is None else setting not in values):
            wanted = f"{section}.{owner}" + ("" if values is None else f" = {values[0]!r}")
            raise SpecError(f"{section}.{key} = {given!r} needs {wanted} (now {setting!r})")
    for (section, key, value), needed in _NEEDS.items():
        if spec[section][key] == value and spec[section][needed] is None:
            raise SpecError(f"{section}.{key} = {value!r} needs {section}.{needed}")
    n = spec["cluster"]["workers"]
    server, faults, compute = spec["server"], spec["faults"], spec["compute"]
    if isinstance(server["k"], int) and server["k"] > n:
        raise SpecError(f"server.k = {server['k']} is more than cluster.workers = {n}; allowed: "
                        f"1 to {n}, or a fraction in (0, 1]")
    bad = [w for w in faults["crash_workers"] if w >= n]
    if bad:
        raise SpecError(f"faults.crash_workers = {faults['crash_workers']}: worker {bad[0]} "
                        f"does not exist; allowed: ids 0 to {n - 1}")
    if faults["crash_workers"] and faults["crash_time"] is None and faults["crash_step"] is None:
        raise SpecError("faults.crash_workers needs faults.crash_time or faults.crash_step "
                        "(when they crash)")
    if faults["crash_time"] is not None and faults["crash_step"] is not None:
        raise SpecError("faults.crash_time and faults.crash_step both say when the listed "
                        "workers crash; give one of them")
    crashes = bool(faults["crash_workers"]) or faults["crash_rate"] > 0
    if (crashes or faults["loss"] > 0 or server["policy"] != "all"):
        method = methods.METHODS[spec["method"]["name"]]
        collective = spec["network"]["collective"] or method.collectives[0]
        if collective != "ps":
            what = (f"server.policy = {server['policy']!r}" if server["policy"] != "all"
                    else "faults")
            raise SpecError(f"{what} needs network.collective = 'ps' (now {collective!r}): a "
                            "ring all-reduce cannot skip a rank, and over an all-gather each "
                            "worker would aggregate a different set of messages, while the "
                            "workers here share one x")
    if server["policy"] != "deadline" and faults["loss"] > 0 and faults["on_loss"] == "drop":
        raise SpecError(f"faults.on_loss = 'drop' with server.policy = {server['policy']!r}: "
                        "the server could wait for ever for dropped messages; use "
                        "server.policy = 'deadline', or on_loss = 'retransmit'")
    if compute["distribution"] == "trace":
        try:
            read_trace(compute["trace_file"], n)
        except ValueError as err:
            raise SpecError(f"compute.trace_file: {err}") from None
    _check_adversaries(spec)


def _check_adversaries(spec: dict) -> None:
    """Byzantine workers and robust aggregation: counts that fit N, attacks the method can
    send, aggregation rules the collective can compute."""
    n = spec["cluster"]["workers"]
    method, faults = spec["method"], spec["faults"]
    collective = spec["network"]["collective"] or methods.METHODS[method["name"]].collectives[0]
    rule = method.get("aggregate")
    if rule in ("median", "trimmed_mean", "krum") and collective != "ps":
        raise SpecError(f"method.aggregate = {rule!r} needs network.collective = 'ps' (now "
                        f"{collective!r}): an all-reduce can only sum the gradients")
    if rule == "krum":
        f = KRUM_F_DEFAULT if method["krum_f"] is None else method["krum_f"]
        if n <= 2 * f + 2:
            raise SpecError(f"method.krum_f = {f}: Multi-Krum needs more than 2f + 2 = "
                            f"{2 * f + 2} workers (cluster.workers = {n}); allowed: krum_f <= "
                            f"{max(0, (n - 3) // 2)}")
        if method["krum_m"] is not None and method["krum_m"] > n:
            raise SpecError(f"method.krum_m = {method['krum_m']} is more than cluster.workers "
                            f"= {n}")
    byzantine = faults["byzantine"]
    listed = isinstance(byzantine, list)
    count = len(byzantine) if listed else (
        byzantine if isinstance(byzantine, int) else units.count_of(byzantine, n))
    if listed and any(w >= n for w in byzantine):
        bad = next(w for w in byzantine if w >= n)
        raise SpecError(f"faults.byzantine = {byzantine}: worker {bad} does not exist; allowed: "
                        f"ids 0 to {n - 1}")
    if count >= n:
        raise SpecError(f"faults.byzantine = {byzantine!r} makes {count} of the {n} workers "
                        f"adversarial; at least one must be honest (allowed: fewer than {n})")
    if count and faults["attack"] == "scale" and method["name"] not in FULL_PRECISION:
        raise SpecError(f"faults.attack = 'scale' with method {method['name']!r}: only a "
                        f"full-precision gradient can be scaled (methods "
                        f"{', '.join(FULL_PRECISION)}); use 'flip' or 'random'")
    if faults["collude"] and not count:
        raise SpecError("faults.collude = true needs adversaries (faults.byzantine)")


def _apply_presets(raw: dict) -> dict:
    """Fill the keys a preset stands for, unless the spec gives them itself."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    network, cluster = out.get("network", {}), out.get("cluster", {})
    if not isinstance(network, dict) or not isinstance(cluster, dict):
        return out  # the section check reports the bad type
    if isinstance(network.get("tcp_window"), bool):  # switched on or off without a size
        network["tcp_window"] = TCP_WINDOW_DEFAULT if network["tcp_window"] else None
    if network.get("preset") is not None:
        name = check_value("network.preset", SCHEMA["network"]["preset"], network["preset"])
        for key in ("bandwidth", "latency", "transport"):
            network.setdefault(key, presets.link(name)[key])
    if network.get("links") is not None:
        name = check_value("network.links", SCHEMA["network"]["links"], network["links"])
        workers = check_value("cluster.workers", SCHEMA["cluster"]["workers"],
                              cluster.get("workers", SCHEMA["cluster"]["workers"].default))
        seed = check_value("run.seed", SCHEMA["run"]["seed"],
                           out.get("run", {}).get("seed", SCHEMA["run"]["seed"].default))
        rng = np.random.default_rng([seed, 7])  # a stream of its own
        drawn = dict(zip(("bandwidth", "latency"),
                         (v.tolist() for v in presets.draw_links(name, workers, rng))))
        for key, values in drawn.items():
            if network.setdefault(key, values) != values:
                raise SpecError(f"network.{key} and network.links = {name!r} both set the "
                                "links; give one of them")
    if cluster.get("model") is not None:
        name = check_value("cluster.model", SCHEMA["cluster"]["model"], cluster["model"])
        cluster.setdefault("model_params", presets.model(name)["params"])
        out.setdefault("compute", {})
        if isinstance(out["compute"], dict):
            out["compute"].setdefault("step_time", presets.model(name)["step_time"])
    return out


def _check_consistency(spec: dict) -> None:
    """Checks that involve more than one key."""
    n = spec["cluster"]["workers"]
    for key in ("bandwidth", "latency"):
        value = spec["network"][key]
        if isinstance(value, list) and len(value) != n:
            raise SpecError(f"network.{key} has {len(value)} values but cluster.workers = {n}; "
                            "give one value or one per worker")
    _check_transport(spec["network"])
    compute = spec["compute"]
    if compute["flops_per_sample"] > 0 and compute["device_flops"] == 0:
        raise SpecError("compute.flops_per_sample is set but compute.device_flops = 0; give the "
                        "device's FLOP/s too")
    day = KIND_BOUNDS["time"][1]
    if compute["flops_per_sample"] > day * compute["device_flops"]:
        raise SpecError(f"compute.flops_per_sample = {compute['flops_per_sample']:g} at "
                        f"compute.device_flops = {compute['device_flops']:g} takes more than a "
                        f"day per sample; allowed: flops_per_sample / device_flops <= {day:g} s")
    method = methods.METHODS[spec["method"]["name"]]
    collective = spec["network"]["collective"]
    if collective is not None and collective not in method.collectives:
        raise SpecError(f"network.collective = {collective!r} is not available for method "
                        f"{method.name!r}; allowed: {', '.join(method.collectives)}")
    if (collective or method.collectives[0]) == "halving_doubling" and n & (n - 1):
        raise SpecError(f"cluster.workers = {n}: network.collective = 'halving_doubling' needs "
                        "a power of two; allowed: 1, 2, 4, 8, ...")


def bundled_names() -> list[str]:
    """Names of the specs shipped with the package (``experiments/NAME.toml``), sorted."""
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("experiments").iterdir()
                  if p.name.endswith(".toml"))


def bundled_spec(text) -> Path:
    """The spec file ``text`` names: a path, or the name of a bundled spec ('quickstart').

    SpecError listing the bundled specs when it is neither.
    """
    from importlib import resources

    path = Path(text)
    if path.exists():
        return path
    if path.suffix in ("", ".toml") and path.parent == Path("."):
        candidate = resources.files("experiments").joinpath(f"{path.stem}.toml")
        if candidate.is_file():
            return Path(str(candidate))
    raise SpecError(f"spec file {str(text)!r} does not exist (bundled specs: "
                    f"{', '.join(bundled_names())})")


# the transports each option applies to
_TRANSPORT_OPTIONS = {"mtu": ("tcp", "rdma"), "initial_window": ("tcp",), "rto": ("tcp",),
                      "tcp_window": ("tcp", "fluid")}


def _check_transport(network: dict) -> None:
    """Options of another transport are errors; the transport's own defaults are filled in."""
    name = network["transport"]
    for key, owners in _TRANSPORT_OPTIONS.items():
        value = network[key]
        if value is not None and name not in owners:
            value = int(value) if isinstance(value, float) and value.is_integer() else value
            raise SpecError(f"network.{key} = {value!r} applies to transport "
                            f"{' or '.join(map(repr, owners))}, not network.transport = {name!r}; "
                            "remove it or change the transport")
    mtu = network["mtu"]
    if name == "rdma" and mtu is not None and mtu not in transport.IB_MTUS:
        raise SpecError(f"network.mtu = {mtu!r} is not an InfiniBand MTU; allowed with transport "
                        f"'rdma': {', '.join(map(str, transport.IB_MTUS))}")
    low, high = transport.MTU_RANGE
    if name == "tcp" and mtu is not None and not low <= mtu <= high:
        raise SpecError(f"network.mtu = {mtu!r} is out of range; allowed with transport 'tcp': "
                        f"{low} <= value <= {high}")
    if name == "tcp":
        network["mtu"] = transport.DEFAULT_MTU["tcp"] if mtu is None else mtu
        for key, default in (("initial_window", transport.INITIAL_WINDOW),
                             ("rto", transport.RTO_MIN)):
            if network[key] is None:
                network[key] = default
        segment = transport.framing("tcp", network["mtu"]).payload
        window = network["tcp_window"]
        if window is not None and window < segment:
            raise SpecError(f"network.tcp_window = {window:g} bytes is smaller than one segment; "
                            f"allowed: >= {segment} (the MSS at mtu {network['mtu']})")
    elif name == "rdma" and mtu is None:
        network["mtu"] = transport.DEFAULT_MTU["rdma"]


def load_toml(path) -> dict:
    """Read a TOML spec file into a raw dict (SpecError for a missing or malformed file)."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"spec {str(path)!r} is a directory; give a TOML file")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(f"spec file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (a TOML spec is UTF-8 text)") from None
    except OSError as err:
        raise SpecError(f"spec file {str(path)!r}: cannot read it ({err.strerror or err})") \
            from None
    # files a spec names are found next to it, wherever it is run from
    compute = raw.get("compute")
    if isinstance(compute, dict) and isinstance(compute.get("trace_file"), str):
        trace = Path(compute["trace_file"])
        if not trace.is_absolute():
            compute["trace_file"] = str(path.parent.resolve() / trace)
    return raw


_NAMED = {"objective": "logistic", "method": "dlion"}  # sections chosen by a name, and defaults


def parse_assignment(text: str) -> tuple[str, str, object]:
    """``'network.bandwidth=10Gbps'`` -> ('network', 'bandwidth', '10Gbps'); values are TOML.

    A whole section may be given as a TOML inline table (key ''):
    ``'method={name="gadamw", lr=1e-3}'`` -> ('method', '', {...}); for [objective] and
    [method] a bare name stands for ``{name = ...}``.
    """
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected section.key=value, e.g. network.bandwidth=10Gbps")
    dotted, raw_value = text.split("=", 1)
    section, _, key = dotted.strip().partition(".")
    if section not in SECTIONS:
        raise SpecError(f"--set {text!r}: unknown section {section!r}{_suggest(section, SECTIONS)}")
    try:
        value = tomllib.loads(f"v = {raw_value}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value.strip()  # a bare word such as dlion or 10Gbps is meant as a string
    if not key:
        if isinstance(value, str) and section in _NAMED:
            value = {"name": value}
        if not isinstance(value, dict):
            raise SpecError(f"--set {text!r}: a whole section takes a table, e.g. "
                            f"{section}={{name = \"...\"}}; or set one key: {section}.KEY=VALUE")
    return section, key.strip(), value


def parse_unset(text: str) -> tuple[str, str]:
    """``'method.aggregate'`` -> ('method', 'aggregate'); ``'compute'`` -> ('compute', '')."""
    section, _, key = text.strip().partition(".")
    if section not in SECTIONS:
        raise SpecError(f"--unset {text!r}: unknown section {section!r}"
                        f"{_suggest(section, SECTIONS)}")
    return section, key


def _accepted(section: str, name) -> set | None:
    """The keys [objective] or [method] named ``name`` takes (None for an unknown name)."""
    if section == "method" and isinstance(name, str) and name in methods.METHODS:
        return {"name", *method_fields(name)}
    if section == "objective" and isinstance(name, str) and name in models.REGISTRY:
        return {"name", *objective_fields(name), *_SET_ELSEWHERE}
    return None


def _fits(section: str, name: str, key: str, value) -> bool:
    """Whether the new [method] ``name`` takes ``value`` for ``key`` (D-Lion's aggregate =
    'mavo' does not fit G-AdamW's aggregate); objective keys are checked when resolved."""
    if section != "method" or key == "name":
        return True
    try:
        check_value(f"method.{key}", method_fields(name)[key], value)
    except SpecError:
        return False
    return True


def override(raw: dict, items, unset=(), notes: list | None = None) -> dict:
    """A copy of ``raw`` with keys removed (``unset``), then set (``items``).

    ``items``: (section, key, value); key '' replaces the whole section with the table
    ``value``. ``unset``: (section, key); key '' removes the whole section. When an item
    switches ``objective.name`` or ``method.name``, the keys of that section the new one does
    not take, or takes with other values, are dropped too (a D-Lion spec's ``aggregate =
    'mavo'`` when switching to G-AdamW), each named in ``notes``.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key in unset:
        table = out.get(section)
        if not key:
            if section not in out:
                raise SpecError(f"--unset {section}: the spec has no [{section}] section")
            del out[section]
        elif not isinstance(table, dict) or key not in table:
            present = ", ".join(f"{section}.{k}" for k in (table or {})) or "none"
            raise SpecError(f"--unset {section}.{key}: the spec does not set it; keys set in "
                            f"[{section}]: {present}")
        else:
            del table[key]
    replaced, given = set(), set()
    for section, key, value in items:
        if not key:
            out[section] = dict(value)
            replaced.add(section)
            continue
        table = out.get(section)
        if not isinstance(table, dict):
            table = out[section] = {}
        table[key] = value
        given.add((section, key))
    for section, default in _NAMED.items():
        if (section, "name") not in given or section in replaced:
            continue
        before = raw.get(section, {}).get("name", default) if isinstance(raw.get(section),
                                                                         dict) else default
        table = out[section]
        keep = _accepted(section, table["name"])
        if table["name"] == before or keep is None:
            continue
        dropped = [k for k in table if (section, k) not in given
                   and (k not in keep or not _fits(section, table["name"], k, table[k]))]
        for k in dropped:
            del table[k]
        if dropped and notes is not None:
            notes.append(f"{section}.name = {table['name']!r} does not take "
                         f"{', '.join(f'{section}.{k}' for k in dropped)}: dropped")
    return out


def overridden(items, unset=()) -> set[str]:
    """The dotted keys (or section names, for whole sections) that overrides set or remove."""
    return {f"{s}.{k}" if k else s for s, k, _ in items} | {f"{s}.{k}" if k else s
                                                              for s, k in unset}


def with_assignments(raw: dict, assignments, unset=(), notes: list | None = None) -> dict:
    """A copy of ``raw`` with command-line ``--unset KEY`` and ``--set KEY=VALUE`` applied."""
    return override(raw, [parse_assignment(t) for t in assignments],
                    [parse_unset(t) for t in unset], notes)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(spec: dict) -> str:
    """TOML text of a (resolved or raw) spec; None values are left out (they mean 'default')."""
    lines = []
    for section, table in spec.items():
        lines.append(f"[{section}]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None)
        lines.append("")
    return "\n".join(lines)


def spec_hash(spec: dict) -> str:
    """Short content hash of a resolved spec (names a run directory in a sweep)."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
