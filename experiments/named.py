"""The keys of the sections chosen by a name: the objective's parameters (from its factory's
signature) and the method's hyperparameters (from the method registry)."""
from __future__ import annotations

import inspect

import models
from experiments.keys import Field, SpecError
from experiments.values import check_section, check_value, suggest, shown, type_name
from sim import methods
from sim.methods.base import rule_for

def objective_fields(name: str) -> dict[str, Field]:
    """The keyword parameters of the built-in objective ``name``, as Fields typed by their default."""
    factory = models.REGISTRY[name][0]
    choices = getattr(factory, "CHOICES", {})
    fields = {}
    for pname, param in inspect.signature(factory).parameters.items():
        if param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        default = None if param.default is param.empty else param.default
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(default), "any")
        if isinstance(default, (list, tuple)):
            kind = "list"
        if pname in choices:
            fields[pname] = Field("choice", default, choices=tuple(choices[pname]))
        else:
            fields[pname] = Field(kind, default)
    return fields


# objective parameters that the spec sets from other sections, so a run has one truth
SET_ELSEWHERE = {"partition": "cluster.partition", "alpha": "cluster.alpha",
                  "classes_per_worker": "cluster.classes_per_worker", "dtype": "run.dtype"}


def check_objective(table, cluster: dict, dtype: str) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"[objective] must be a table of keys, got {type_name(table)}")
    name = table.get("name", "logistic")
    if not isinstance(name, str) or name not in models.REGISTRY:
        raise SpecError(f"objective.name = {name!r} is not a built-in objective"
                        f"{suggest(name, sorted(models.REGISTRY))}")
    fields = objective_fields(name)
    out = {"name": name}
    for key, value in table.items():
        if key == "name":
            continue
        if key in SET_ELSEWHERE and key in fields:
            source = dtype if key == "dtype" else cluster[key]
            if value != source:  # a resolved spec repeats the value; a different one is a clash
                raise SpecError(f"objective.{key} = {value!r}: set {SET_ELSEWHERE[key]} "
                                f"instead (now {source!r}); it applies to every objective")
            continue
        if key not in fields:
            raise SpecError(f"[objective] {shown(key)}: {name!r} has no such parameter"
                            f"{suggest(key, list(fields))}")
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


def check_method(table, workers: int, spec: dict | None = None) -> dict:
    """The [method] table checked and completed; ``spec``: the resolved other sections, which
    the method's own ``check`` may refuse settings of."""
    if not isinstance(table, dict):
        raise SpecError(f"[method] must be a table of keys, got {type_name(table)}")
    name = table.get("name", "dlion")
    if not isinstance(name, str) or name not in methods.METHODS:
        raise SpecError(f"method.name = {name!r} is not a method"
                        f"{suggest(name, list(methods.METHODS))}")
    method = methods.METHODS[name]
    if method.max_workers is not None and workers > method.max_workers:
        raise SpecError(f"cluster.workers = {workers}: method {name!r} runs on at most "
                        f"{method.max_workers} worker(s); use 'dlion' or 'glion' for more")
    hp = check_section("method", table, method_fields(name), skip=("name",))
    if hp.get("nesterov") and hp.get("momentum") == 0:  # it would change nothing (torch refuses)
        raise SpecError("method.nesterov = true needs method.momentum > 0 (momentum = 0); set "
                        "nesterov = false for plain SGD")
    if method.check is not None and spec is not None:
        faults = spec["faults"]
        why = method.check(hp, {
            "policy": spec["server"]["policy"], "collective": spec["network"]["collective"],
            "crashes": bool(faults["crash_workers"]) or faults["crash_rate"] > 0,
            "loss": faults["loss"]})
        if why:
            raise SpecError(why)
    return {"name": name, **hp}
