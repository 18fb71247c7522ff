"""Experiment specs: read TOML or keywords, validate every key, fill defaults, write back.

A resolved spec is a plain nested dict ``{section: {key: value}}`` with every default filled
in and every quantity in base units (bit/s, seconds, bytes). Errors are ``SpecError``: one line
naming the key, the bad value, what is allowed and, for a misspelt key, the closest valid one.

The parts: ``experiments.keys`` (the key table), ``experiments.values`` (one value against its
key), ``experiments.named`` (the objective's and method's keys), ``experiments.overrides``
(``--set``, ``--unset`` and keywords); here, whole specs: ``resolve``, the checks that involve
more than one key, presets, and the spec's text forms (TOML, hash, the bundled specs).
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path

import numpy as np

from experiments.keys import (FLAT_KEYS, KIND_BOUNDS, SCHEMA, SECTIONS, TCP_WINDOW_DEFAULT,  # noqa: F401
                              Field, SpecError, bounds, describe_range)
from experiments.named import (check_method, check_objective, method_fields,  # noqa: F401
                               method_keys, objective_fields)
from experiments.overrides import (override, overridden, parse_assignment,  # noqa: F401
                                   parse_unset, with_assignments)
from experiments.versioned import check_versioned
from experiments.values import check_section, check_value, shown, suggest, type_name  # noqa: F401
from sim import methods, units
from sim.adversaries import FULL_PRECISION
from sim.compute import read_trace
from sim.methods.robust import KRUM_F_DEFAULT
from sim.net import presets, transport
from sim.peers import WITHOUT_A_RANK
from sim.server import VERSIONED

def resolve(raw: dict, custom_objective=None) -> dict:
    """Validate a raw spec dict (TOML-shaped, without [sweep]) and fill every default.

    ``custom_objective``: a user's Objective object, which then stands for [objective].
    """
    if not isinstance(raw, dict):
        raise SpecError(f"a spec must be a table of sections, got {type_name(raw)}")
    for section in raw:
        if section in ("sweep", "tune"):
            raise SpecError(f"[{section}] varies keys over several runs: run the spec with "
                            "`dlion-sim sweep` (experiments.sweep.run_sweep)")
        if section not in SECTIONS:
            raise SpecError(f"[{shown(section)}]: unknown section{suggest(section, SECTIONS)}")
    raw = _apply_presets(raw)
    spec = {s: check_section(s, raw.get(s, {}), SCHEMA[s]) for s in ("cluster", "run")}
    spec["network"] = check_section("network", raw.get("network", {}), SCHEMA["network"])
    spec["compute"] = check_section("compute", raw.get("compute", {}), SCHEMA["compute"])
    if custom_objective is None:
        spec["objective"] = check_objective(raw.get("objective", {}), spec["cluster"],
                                             spec["run"]["dtype"])
    else:
        if spec["cluster"]["partition"] != "iid":
            raise SpecError(f"cluster.partition = {spec['cluster']['partition']!r}: a custom "
                            "objective splits its own data; allowed: 'iid'")
        spec["objective"] = {"name": f"custom:{type(custom_objective).__name__}",
                             "dim": int(custom_objective.dim)}
    spec["server"] = check_section("server", raw.get("server", {}), SCHEMA["server"])
    spec["faults"] = check_section("faults", raw.get("faults", {}), SCHEMA["faults"])
    spec["method"] = check_method(raw.get("method", {}), spec["cluster"]["workers"], spec)
    _check_consistency(spec)
    # the resolved spec names the collective the run uses, also when it is the method's own
    spec["network"]["collective"] = (spec["network"]["collective"]
                                     or methods.METHODS[spec["method"]["name"]].collectives[0])
    _check_time_and_faults(spec)
    return {s: spec[s] for s in SECTIONS}


#: keys that belong to one setting of another key: (section, key) -> (key it needs, values)
_BELONGS_TO = {
    ("compute", "tail"): ("distribution", ("shifted_exponential",)),
    ("compute", "pareto_shape"): ("distribution", ("pareto",)),
    ("compute", "trace_file"): ("distribution", ("trace",)),
    ("server", "deadline"): ("policy", ("deadline",)),
    ("server", "k"): ("policy", ("first_k", "fedbuff")),
    ("server", "staleness"): ("policy", ("ssp",)),
    ("server", "staleness_weight"): ("policy", VERSIONED),
    ("server", "staleness_exponent"): ("staleness_weight", ("polynomial",)),
    ("server", "staleness_threshold"): ("staleness_weight", ("hinge",)),
    ("server", "staleness_slope"): ("staleness_weight", ("hinge",)),
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
    ("server", "policy", "ssp"): "staleness",
    ("server", "policy", "fedbuff"): "k",
}


def _check_time_and_faults(spec: dict) -> None:
    """The compute distribution, the server policy and the faults: keys that go together, and
    what the collective and the workers allow."""
    for (section, key), (owner, values) in _BELONGS_TO.items():
        given, setting = spec[section].get(key), spec[section].get(owner)
        if given not in (None, []) and (not setting if values is None else setting not in values):
            wanted = f"{section}.{owner}" + ("" if values is None else
                                             " = " + " or ".join(repr(v) for v in values))
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
    dropped = faults["loss"] > 0 and faults["on_loss"] == "drop"
    collective = spec["network"]["collective"]
    if (crashes or dropped or server["policy"] != "all") and collective not in (
            *WITHOUT_A_RANK, "auto"):
        what = (f"server.policy = {server['policy']!r}" if server["policy"] != "all" else
                "faults.crash_workers / crash_rate" if crashes else "faults.on_loss = 'drop'")
        raise SpecError(f"{what} needs a collective that goes on without a rank (now "
                        f"network.collective = {collective!r}): allowed: "
                        f"{', '.join(map(repr, WITHOUT_A_RANK))} (or 'auto'); a ring or tree "
                        "cannot skip a rank, and over an all-gather each worker would "
                        "aggregate a different set of messages, while the workers share one x")
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
    _settle_overlap(spec)
    check_versioned(spec)


def _settle_overlap(spec: dict) -> None:
    """compute.overlap = true where it cannot work is refused, saying why."""
    why = _no_overlap(spec)
    if spec["compute"]["overlap"] and why is not None:
        raise SpecError(f"compute.overlap = true: {why}; allowed: false (or leave it out)")


def overlaps(spec: dict) -> bool:
    """Whether a run of the resolved ``spec`` overlaps its messages with the backward pass:
    compute.overlap, by default on where the method's messages can go bucket by bucket and
    every message counts (a server policy or crashes decide per whole message)."""
    given = spec["compute"]["overlap"]
    return _no_overlap(spec) is None if given is None else given


def _no_overlap(spec: dict) -> str | None:
    """Why the resolved ``spec`` cannot overlap (None: it can)."""
    method, faults = methods.METHODS[spec["method"]["name"]], spec["faults"]
    if not method.overlaps:
        return (f"method.name = {method.name!r} needs the whole gradient before it can encode "
                "or aggregate")
    if spec["server"]["policy"] != "all":
        return f"server.policy = {spec['server']['policy']!r} decides per whole message"
    if (faults["crash_workers"] or faults["crash_rate"] > 0
            or (faults["loss"] > 0 and faults["on_loss"] == "drop")):
        return "crashes and dropped messages decide per whole message"
    return None


def _check_adversaries(spec: dict) -> None:
    """Byzantine workers and robust aggregation: counts that fit N, attacks the method can
    send, aggregation rules the collective can compute."""
    n = spec["cluster"]["workers"]
    method, faults = spec["method"], spec["faults"]
    collective = spec["network"]["collective"]
    rule = method.get("aggregate")
    if rule in ("median", "trimmed_mean", "krum") and collective not in ("ps", "auto"):
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
    if network.get("intra") is not None:
        name = check_value("network.intra", SCHEMA["network"]["intra"], network["intra"])
        network.setdefault("intra_bandwidth", presets.intra(name)["bandwidth"])
        network.setdefault("intra_latency", presets.intra(name)["latency"])
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
        if isinstance(value, list) and len(value) != n and spec["network"]["topology"] != "nodes":
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
    _check_nodes(spec["network"], n, collective or method.collectives[0])


_NODE_KEYS = ("gpus_per_node", "intra", "intra_bandwidth", "intra_latency")


def _check_nodes(network: dict, n: int, collective: str) -> None:
    """GPU nodes: the keys that go with topology 'nodes', and what they must be."""
    if network["topology"] != "nodes":
        given = [k for k in _NODE_KEYS if network[k] is not None]
        if given:
            raise SpecError(f"network.{given[0]} = {network[given[0]]!r} applies to "
                            f"network.topology = 'nodes', not {network['topology']!r}")
        if collective == "hierarchical":
            raise SpecError("network.collective = 'hierarchical' needs network.topology = "
                            "'nodes' (with gpus_per_node); allowed on a "
                            f"{network['topology']!r} network: the others")
        return
    g = network["gpus_per_node"]
    if g is None or network["intra_bandwidth"] is None:
        missing = "network.gpus_per_node" if g is None else "network.intra (a preset) or " \
                  "network.intra_bandwidth"
        raise SpecError(f"network.topology = 'nodes' needs {missing}")
    if n % g:
        raise SpecError(f"cluster.workers = {n} is not a whole number of nodes of "
                        f"network.gpus_per_node = {g}; allowed: a multiple of {g}")
    for key in ("bandwidth", "latency"):
        value = network[key]
        if isinstance(value, list) and len(value) != n // g:
            raise SpecError(f"network.{key} has {len(value)} values: with topology 'nodes' give "
                            f"one, or one per node ({n // g})")
    if network["intra_latency"] is None:
        network["intra_latency"] = 1e-6


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
    if path.is_file():
        return path
    if path.suffix in ("", ".toml") and path.parent == Path("."):
        candidate = resources.files("experiments").joinpath(f"{path.stem}.toml")
        if candidate.is_file():  # also when a folder here has that name (a study's output)
            return Path(str(candidate))
    if path.exists():
        return path  # a folder: load_toml says a spec is a file
    raise SpecError(f"spec file {str(text)!r} does not exist (bundled specs: "
                    f"{', '.join(bundled_names())})")


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


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(spec: dict) -> str:
    """TOML text of a (resolved or raw) spec; None values are left out (they mean 'default')."""
    lines = []
    for section, table in spec.items():
        lines.append(f"[{section}]")
        lines.extend(f"{_toml_key(k)} = {toml_value(v)}" for k, v in table.items() if v is not None)
        lines.append("")
    return "\n".join(lines)


def spec_hash(spec: dict) -> str:
    """Short content hash of a resolved spec (names a run directory in a sweep)."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
