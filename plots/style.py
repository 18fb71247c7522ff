"""One look for every figure: a colour-blind-safe palette with a fixed colour per method."""
from __future__ import annotations

# Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
             "#000000")

#: A fixed colour per method variant, so a method looks the same in every figure. The first
#: six are Okabe-Ito; the baselines add Paul Tol's colour-blind-safe "muted" scheme. Sixteen
#: colours cannot all stay distinct under every colour-vision deficiency, so every method
#: also has its own marker (METHOD_MARKERS) and figures draw both.
METHOD_COLORS = {
    "dlion/mavo": "#0072B2",
    "dlion/avg": "#56B4E9",
    "glion": "#009E73",
    "gadamw": "#D55E00",
    "gsgd": "#CC79A7",
    "lion": "#000000",
    "terngrad": "#E69F00",
    "dgc": "#882255",
    "graddrop": "#999933",
    "signum": "#332288",
    "efsignsgd": "#44AA99",
    "qsgd": "#AA4499",
    "topk": "#CC6677",
    "randomk": "#88CCEE",
    "powersgd": "#117733",
    "onebit_adam": "#DDAA33",
    "diloco": "#4477AA",
}

#: A fixed marker per method variant (the second cue besides colour).
METHOD_MARKERS = {
    "dlion/mavo": "o", "dlion/avg": "s", "glion": "^", "gadamw": "D", "gsgd": "v", "lion": "*",
    "terngrad": "P", "dgc": "X", "graddrop": "<", "signum": ">", "efsignsgd": "h",
    "qsgd": "p", "topk": "d", "randomk": "H", "powersgd": "8", "onebit_adam": "$1$",
    "diloco": "$L$",
}

#: Colours of the timeline phases (Okabe-Ito; idle is a neutral grey).
PHASE_COLORS = {
    "compute": "#0072B2",
    "send": "#E69F00",
    "idle": "#C8C8C8",
    "aggregate": "#009E73",
    "receive": "#CC79A7",
    "lost": "#D55E00",
    "down": "#4D4D4D",
    "bucket": "#F0E442",
}

_PRETTY = {"dlion/mavo": "D-Lion (MaVo)", "dlion/avg": "D-Lion (Avg)", "glion": "G-Lion",
           "gadamw": "G-AdamW", "gsgd": "G-SGD", "lion": "Lion", "terngrad": "TernGrad",
           "dgc": "DGC", "graddrop": "GradDrop", "signum": "Signum (MaVo)",
           "efsignsgd": "EF-signSGD", "qsgd": "QSGD", "topk": "Top-k", "randomk": "Random-k",
           "powersgd": "PowerSGD", "onebit_adam": "1-bit Adam", "diloco": "DiLoCo"}


def method_key(spec: dict) -> str:
    """'dlion/mavo', 'dlion/avg' or the method name."""
    method = spec["method"]
    if method["name"] == "dlion" and "aggregate" in method:
        return f"dlion/{method['aggregate']}"
    return method["name"]


def method_rank(key: str) -> int:
    """Position of a method key in the fixed legend order (unknown methods last)."""
    order = list(METHOD_COLORS)
    return order.index(key) if key in order else len(order)


def pretty(key: str) -> str:
    """The method's display name ('D-Lion (MaVo)'), or the key itself."""
    return _PRETTY.get(key, key)


def color_for(spec: dict) -> str:
    """The method's colour (methods without a fixed one get a stable palette colour)."""
    key = method_key(spec)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return OKABE_ITO[sum(map(ord, key)) % len(OKABE_ITO)]


def marker_for(spec: dict) -> str:
    """The method's marker ('o' for methods without a fixed one)."""
    return METHOD_MARKERS.get(method_key(spec), "o")


def run_label(spec: dict, all_specs: list[dict]) -> str:
    """Legend label: the method, plus the other keys that differ between the plotted runs.

    Method hyperparameters count only against runs of the same method (G-AdamW's lr differing
    from D-Lion's is not worth a label).
    """
    key = method_key(spec)
    same_method = [s for s in all_specs if method_key(s) == key]
    extras = [f"{name}={format_value('method', name, value)}"
              for name, value in spec["method"].items() if name not in ("name", "aggregate")
              and len({repr(s["method"].get(name)) for s in same_method}) > 1]
    extras += setting_differences(spec, all_specs)
    return pretty(key) + (f" ({', '.join(extras)})" if extras else "")


def method_label(spec: dict, all_specs: list[dict]) -> str:
    """'D-Lion (MaVo)', with the hyperparameters that differ among that method's runs in
    ``all_specs`` ('D-Lion (MaVo) lr=0.003') and those a [tune] table chose
    ('D-Lion (MaVo) lr=0.003 (tuned)')."""
    key = method_key(spec)
    same = [s for s in all_specs if method_key(s) == key]
    tuned = getattr(spec["method"], "tuned", ())  # chosen by a [tune] table (plots.data.Tuned)
    extras = [f"{name}={format_value('method', name, value)}"
              + (" (tuned)" if name in tuned else "")
              for name, value in spec["method"].items() if name not in ("name", "aggregate")
              and (name in tuned or len({repr(s["method"].get(name)) for s in same}) > 1)]
    extras += [f"{name}={format_value(section, name, table[name])} (tuned)"
               for section, table in spec.items() if section != "method"
               for name in getattr(table, "tuned", ())]
    return pretty(key) + (f" {', '.join(extras)}" if extras else "")


def tuned_suffix(spec: dict) -> str:
    """' (lr tuned)' for a run whose method keys a [tune] table chose, else ''."""
    tuned = getattr(spec.get("method"), "tuned", ())
    return f" ({', '.join(tuned)} tuned)" if tuned else ""


#: Settings whose default follows from the method (each method's own collective): like its
#: hyperparameters they count only against runs of the same method.
METHOD_SETTINGS = {("network", "collective")}


def setting_differences(spec: dict, all_specs: list[dict]) -> list[str]:
    """'key=value' for every non-method spec key (except the seed) that differs among specs;
    a setting of ``METHOD_SETTINGS`` only where it differs among the runs of spec's method."""
    extras = []
    same_method = [s for s in all_specs if method_key(s) == method_key(spec)]
    if len({repr(s.get("server")) for s in all_specs}) > 1:
        extras.append(policy_text(spec.get("server") or {}))
    for section in ("cluster", "network", "compute", "faults", "run", "objective"):
        for name, value in spec.get(section, {}).items():
            among = same_method if (section, name) in METHOD_SETTINGS else all_specs
            differs = len({repr(s.get(section, {}).get(name)) for s in among}) > 1
            if name != "seed" and differs:
                extras.append(f"{name}={format_value(section, name, value)}")
    return extras


def policy_text(server: dict) -> str:
    """The server policy in a few words: 'wait for all', 'deadline 175 ms', 'first 12',
    'async', 'ssp s=4', 'fedbuff k=8', with a staleness weight other than constant after a
    comma ('async, inverse_sqrt')."""
    from sim.units import format_quantity

    policy = server.get("policy", "all")
    k = server.get("k")
    count = None if k is None else f"{k:.0%}" if isinstance(k, float) else f"{k}"
    if policy == "deadline":
        return f"deadline {format_quantity(server['deadline'], 'time')}"
    if policy == "first_k":
        return f"first {count}"
    if policy in ("async", "ssp", "fedbuff"):
        text = {"async": "async", "ssp": f"ssp s={server.get('staleness')}",
                "fedbuff": f"fedbuff k={count}"}[policy]
        weight = server.get("staleness_weight")
        return text if weight in (None, "constant") else f"{text}, {weight}"
    return "wait for all"


def format_value(section: str, name: str, value) -> str:
    """A spec value as a reader wants it: '10 Gb/s', '50 µs', '4 MiB', '25.6M', '0.003'.

    The unit comes from the key's kind in the spec schema; large whole numbers are counts.
    """
    from experiments.spec import SCHEMA
    from sim.units import format_count, format_quantity

    field = SCHEMA.get(section, {}).get(name)
    if field is not None and field.kind in ("bandwidth", "time", "size"):
        return format_quantity(value, field.kind)
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int) and abs(value) >= 10_000:
        return format_count(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(section, name, v) for v in value) + "]"
    return str(value)


def describe(specs: list[dict]) -> str:
    """The setting shared by all ``specs`` ('logistic: 8 workers, 1 Gb/s, star'), for titles."""
    from sim.units import format_bandwidth, format_count

    def common(section, name):
        values = {repr(s[section].get(name)) for s in specs}
        return specs[0][section].get(name) if len(values) == 1 else None

    parts = []
    if common("cluster", "workers") is not None:
        parts.append(f"{common('cluster', 'workers')} workers")
    bandwidth = common("network", "bandwidth")
    if bandwidth is not None:
        parts.append(format_bandwidth(bandwidth) if not isinstance(bandwidth, list)
                     else "mixed links")
    if common("network", "topology") is not None:
        parts.append(common("network", "topology"))
    model_params = common("cluster", "model_params")
    if model_params:
        model = common("cluster", "model")
        parts.append(f"messages sized for {format_count(model_params)} parameters"
                     + (f" ({model})" if model else ""))
    parts.extend(_time_and_faults(common))
    objective = common("objective", "name") or "several objectives"
    return f"{objective}: {', '.join(parts)}" if parts else objective


def _time_and_faults(common) -> list[str]:
    """Title parts for a shared server policy and shared faults (none when the defaults)."""
    parts = []
    server = {key: common("server", key)
              for key in ("policy", "deadline", "k", "staleness", "staleness_weight")}
    needed = {"deadline": "deadline", "first_k": "k", "ssp": "staleness", "fedbuff": "k",
              "async": "policy"}.get(server["policy"])
    if needed and server[needed] is not None:
        parts.append(policy_text(server))
    if common("compute", "distribution") not in (None, "lognormal"):
        parts.append(f"{common('compute', 'distribution').replace('_', ' ')} step times")
    if common("faults", "loss"):
        parts.append(f"{common('faults', 'loss'):.0%} loss")
    if common("faults", "crash_workers") or common("faults", "crash_rate"):
        parts.append("crashes")
    return parts


def metric_label(column: str) -> str:
    """Axis label of a history column ('eval_loss' -> 'evaluation loss')."""
    if column == "train_loss":
        return "training loss (minibatch mean)"
    if column.startswith("eval_"):
        name = column[5:].replace("_", " ")
        return f"evaluation {name}" + (" (fraction)" if "acc" in column else "")
    return column.replace("_", " ")
