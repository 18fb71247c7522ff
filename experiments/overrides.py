"""Overrides of a raw spec: ``--set KEY=VALUE`` and ``--unset KEY`` on the command line, the
keyword arguments of ``simulate``; switching a named section drops the keys the new one does
not take."""
from __future__ import annotations

import tomllib

import models
from experiments.keys import SECTIONS, SpecError
from experiments.named import SET_ELSEWHERE, method_fields, objective_fields
from experiments.values import check_value, suggest
from sim import methods

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
        raise SpecError(f"--set {text!r}: unknown section {section!r}{suggest(section, SECTIONS)}")
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
                        f"{suggest(section, SECTIONS)}")
    return section, key


def _accepted(section: str, name) -> set | None:
    """The keys [objective] or [method] named ``name`` takes (None for an unknown name)."""
    if section == "method" and isinstance(name, str) and name in methods.METHODS:
        return {"name", *method_fields(name)}
    if section == "objective" and isinstance(name, str) and name in models.REGISTRY:
        return {"name", *objective_fields(name), *SET_ELSEWHERE}
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
