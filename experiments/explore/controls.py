"""The explorer's controls: one row per widget, each setting one spec key, and the spec they
make together.

``CONTROLS`` is the table the page builds its widgets from: a row names the spec key, the kind
of widget, its range or choices, its default and its unit. ``METHODS`` lists the methods the
page can compare, each with the [method] table it runs. ``spec`` turns the widgets' values
into a raw spec (TOML-shaped, one [sweep.zip] point per compared method), which the page
validates with ``experiments.spec.resolve`` and runs; ``toml`` is the same spec as text, so
``dlion-sim sweep`` (or ``run``, for one method) reproduces the view.

Adding a control for a new spec key is one row here (docs/explore.md says how).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from experiments.grid import expand
from experiments.spec import SECTIONS, SpecError, resolve, to_toml, toml_value
from plots.style import pretty
from sim import methods, units
from sim.net import presets

#: The objective every view trains: small enough that a redraw takes about a second.
OBJECTIVE = {"name": "logistic", "samples": 8192, "features": 63}
#: Run keys no widget sets: evaluate often enough to time the target, trace for the timeline.
RUN = {"eval_every": 10, "seed": 0, "trace": True}


@dataclass(frozen=True)
class Control:
    """One widget and the spec key it sets.

    kind: "int" or "number" (a slider from ``low`` to ``high`` by ``step``), "ladder" (a log
    scale: the 1-2-5 stops from ``low`` to ``high`` in base units of ``unit``, 'bandwidth',
    'time' or 'count'; ``first`` is an extra stop before them) or "choice" (``choices``:
    (spec value, label) pairs). A value of None leaves the key out, so its default applies.
    ``applies_when`` (key, value): the control counts, and is shown, only while that other
    control has that value. ``per_method``: a function of the method's name giving its choices
    (the first is its default): one widget per compared method, its values zipped with the
    methods in [sweep.zip].
    """

    key: str
    label: str
    kind: str
    default: object
    group: str
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    unit: str = ""
    choices: tuple = ()
    first: tuple | None = None
    applies_when: tuple | None = None
    per_method: Callable[[str], tuple] | None = None


def _collectives(method: str) -> tuple:
    """How a method's messages may travel, its default (auto) first, in the method registry's
    order; the hierarchical ones only on GPU nodes, where auto takes them when they are
    fastest, so they are left to auto here."""
    return tuple(c for c in methods.METHODS[method].collectives if c != "hierarchical")


def _model_choices() -> tuple:
    described = tuple((name, f"{name}: {units.format_count(p['params'])} parameters, "
                       f"{units.format_time(p['step_time'])} per step")
                      for name, p in presets.MODELS.items())
    return described + ((None, "custom size (below)"),)


CONTROLS: tuple[Control, ...] = (
    Control("cluster.workers", "Workers", "int", 8, "Cluster", low=2, high=64),
    Control("cluster.model", "Model (sets the size of every message)", "choice", "resnet50",
            "Cluster", choices=_model_choices()),
    Control("cluster.model_params", "Model size (parameters)", "ladder", 100_000_000,
            "Cluster", low=1e4, high=1e11, unit="count",
            first=(None, f"the objective's own ({OBJECTIVE['features'] + 1})"),
            applies_when=("cluster.model", None)),
    Control("compute.step_time", "Compute time per step", "ladder", None, "Cluster",
            low=1e-3, high=10.0, unit="time", first=(None, "the model preset's (custom: 0 s)")),
    Control("network.topology", "Workers on", "choice", "star", "Network",
            choices=(("star", "one switch, a NIC each"),
                     ("nodes", "nodes of GPUs sharing a NIC"))),
    Control("network.gpus_per_node", "GPUs per node", "choice", 8, "Network",
            choices=((2, "2"), (4, "4"), (8, "8")), applies_when=("network.topology", "nodes")),
    Control("network.intra", "Link between a node's GPUs", "choice", "nvlink4", "Network",
            choices=tuple((name, f"{name}: {units.format_bandwidth(p['bandwidth'])}")
                          for name, p in presets.INTRA.items()),
            applies_when=("network.topology", "nodes")),
    Control("network.bandwidth", "NIC bandwidth (per worker, or per node)", "ladder", "1Gbps",
            "Network", low=1e7, high=2e11, unit="bandwidth"),
    Control("network.latency", "Latency, one way", "ladder", "50us", "Network", low=1e-6,
            high=0.1, unit="time"),
    Control("compute.overlap", "Overlap with the backward pass", "choice", None, "Cluster",
            choices=((None, "on, bucket by bucket, where the method allows it"),
                     (False, "off: send after the whole gradient"))),
    Control("compute.jitter", "Compute jitter (lognormal sigma)", "number", 0.0, "Stragglers",
            low=0.0, high=1.0, step=0.05),
    Control("compute.straggler_prob", "Straggler probability per worker and step", "number",
            0.0, "Stragglers", low=0.0, high=0.5, step=0.05),
    Control("compute.straggler_slowdown", "A straggler's slowdown (x)", "number", 3.0,
            "Stragglers", low=1.0, high=10.0, step=0.5),
    Control("faults.loss", "Message loss (sent again after 200 ms)", "number", 0.0, "Faults",
            low=0.0, high=0.3, step=0.01),
    Control("run.steps", "Steps at most", "int", 300, "Run", low=50, high=2000, step=50),
    Control("run.target", "Target (evaluation loss)", "number", 0.35, "Run", low=0.30,
            high=0.60, step=0.01),
    Control("network.collective", "collective", "choice", None, "Methods",
            per_method=_collectives),  # beside each method's tick
)


@dataclass(frozen=True)
class Variant:
    """A method the page can compare: its [method] table, and whether it is ticked at first."""

    key: str       # 'dlion/mavo': the figures' name for it (plots.style)
    method: dict
    on: bool = False

    @property
    def label(self) -> str:
        return pretty(self.key)


#: Step sizes: the quickstart's for D-Lion, G-Lion and G-AdamW, the baselines study's for the
#: others (each reaches the default target on this objective).
METHODS: tuple[Variant, ...] = (
    Variant("dlion/mavo", {"name": "dlion", "aggregate": "mavo", "lr": 0.003}, on=True),
    Variant("dlion/avg", {"name": "dlion", "aggregate": "avg", "lr": 0.003}, on=True),
    Variant("glion", {"name": "glion", "lr": 0.003}, on=True),
    Variant("gadamw", {"name": "gadamw", "lr": 0.01}, on=True),
    Variant("gsgd", {"name": "gsgd", "lr": 0.1}),
    Variant("terngrad", {"name": "terngrad", "lr": 0.01}),
    Variant("dgc", {"name": "dgc", "lr": 0.01}),
    Variant("graddrop", {"name": "graddrop", "lr": 0.01}),
    Variant("signum", {"name": "signum", "lr": 0.003}),
    Variant("efsignsgd", {"name": "efsignsgd", "lr": 0.1}),
    Variant("qsgd", {"name": "qsgd", "lr": 0.03}),
    Variant("topk", {"name": "topk", "lr": 0.01}),
    Variant("randomk", {"name": "randomk", "lr": 0.01}),
    Variant("powersgd", {"name": "powersgd", "batched": True, "lr": 0.03}),
    Variant("onebit_adam", {"name": "onebit_adam", "lr": 0.003}),
    # DiLoCo: 10 inner AdamW steps per round, the outer Nesterov step of the paper
    Variant("diloco", {"name": "diloco", "lr": 0.01, "h": 10}),
)
VARIANTS = {v.key: v for v in METHODS}


def ladder(control: Control) -> list[tuple[object, str]]:
    """The stops of a "ladder" control: (spec value, label), ``first`` then 1, 2, 5 times each
    power of ten from ``low`` to ``high``. Spec values are exact strings with units ('2Gbps',
    '50us') or whole counts, so the TOML reads as the label does."""
    stops = [control.first] if control.first else []
    for exponent in range(math.floor(math.log10(control.low)),
                          math.ceil(math.log10(control.high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0 ** exponent
            if control.low * (1 - 1e-9) <= value <= control.high * (1 + 1e-9):
                stops.append(_stop(mantissa, exponent, control.unit))
    return stops


#: (power of ten, suffix) of the spec strings, largest first
_SUFFIXES = {"bandwidth": ((12, "Tbps"), (9, "Gbps"), (6, "Mbps"), (3, "kbps"), (0, "bps")),
             "time": ((0, "s"), (-3, "ms"), (-6, "us"), (-9, "ns"))}
_LABELS = {"bandwidth": units.format_bandwidth, "time": units.format_time}


def _stop(mantissa: int, exponent: int, unit: str) -> tuple[object, str]:
    if unit == "count":
        count = mantissa * 10 ** exponent
        return count, units.format_count(count)
    power, suffix = next((p, s) for p, s in _SUFFIXES[unit] if p <= exponent)
    text = f"{mantissa * 10 ** (exponent - power)}{suffix}"
    return text, _LABELS[unit](units.parse(text, unit))


def options(control: Control, method: str | None = None) -> list[tuple[object, str]]:
    """(spec value, label) of every value a "ladder" or "choice" control offers (for a
    per-method control, those of ``method``)."""
    if control.per_method is not None:
        return [(c, c) for c in control.per_method(method)]
    return ladder(control) if control.kind == "ladder" else list(control.choices)


def defaults() -> dict[str, object]:
    """Every global control's default value, by spec key."""
    return {c.key: c.default for c in CONTROLS if c.per_method is None}


def method_defaults(variant: str) -> dict[str, object]:
    """The default of every per-method control for the method ``variant`` (a VARIANTS key)."""
    name = VARIANTS[variant].method["name"]
    return {c.key: c.per_method(name)[0] for c in CONTROLS if c.per_method is not None}


def applies(control: Control, values: dict) -> bool:
    """Whether ``control`` counts under ``values`` (see ``applies_when``)."""
    if control.applies_when is None:
        return True
    key, value = control.applies_when
    return values.get(key) == value


def _put(raw: dict, dotted: str, value) -> None:
    section, _, key = dotted.partition(".")
    raw.setdefault(section, {})[key] = value


def spec(values: dict, compared: list[tuple[str, dict]]) -> dict:
    """The raw spec of the widgets' ``values`` (spec key -> value) comparing the methods
    ``compared``: (VARIANTS key, its per-method values), in the page's order.

    One method: a plain spec for ``dlion-sim run``. Several: each is a point of [sweep.zip],
    with its per-method values zipped alongside.
    """
    if not compared:
        raise SpecError("no method is ticked; tick at least one to compare")
    raw: dict = {"objective": dict(OBJECTIVE)}
    for control in CONTROLS:
        value = values.get(control.key, control.default)
        if control.per_method is None and value is not None and applies(control, values):
            _put(raw, control.key, value)
    for key, value in RUN.items():
        _put(raw, f"run.{key}", value)
    per_method = [c.key for c in CONTROLS if c.per_method is not None]
    tables = [dict(VARIANTS[key].method) for key, _ in compared]
    settings = [{**method_defaults(key), **own} for key, own in compared]
    if len(compared) == 1:
        raw["method"] = tables[0]
        for key in per_method:
            _put(raw, key, settings[0][key])
    else:
        raw["sweep"] = {"zip": {"method": tables,
                                **{key: [s[key] for s in settings] for key in per_method}}}
    return {section: raw[section] for section in (*SECTIONS, "sweep") if section in raw}


def points(raw: dict) -> list[dict]:
    """The resolved spec of every compared method, in order; SpecError (one line) for the
    first that the project's validation refuses."""
    return [resolve(point) for point in expand(raw)]


def toml(raw: dict) -> str:
    """``raw`` as TOML text with the command that runs it."""
    sweep = raw.get("sweep")
    command = ("dlion-sim sweep explore.toml -o DIR   # each method is a point of [sweep.zip]"
               if sweep else "dlion-sim run explore.toml -o DIR")
    text = (f"# The explorer's view as a spec; save it as explore.toml and run\n#   {command}\n"
            + to_toml({k: v for k, v in raw.items() if k != "sweep"}))
    if sweep:
        zipped = sweep["zip"]
        rows = "".join(f"  {toml_value(table)},\n" for table in zipped["method"])
        text += f"\n[sweep.zip]\nmethod = [\n{rows}]\n" + "".join(
            f'"{key}" = {toml_value(values)}\n' for key, values in zipped.items()
            if key != "method")
    return text
