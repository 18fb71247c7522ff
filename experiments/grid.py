"""The [sweep] table of a spec: its axes, the grid of specs it stands for, and pinning axes.

Keys are ``"section.key" = [values]`` (one axis each) or ``section = [tables]`` (each table
merged over the base section); ``zip`` sub-tables hold lists of equal length that vary
together as one axis. ``expand`` turns a spec into the raw specs of its grid points; ``pin``
lets command-line overrides take precedence over the axes they set.
"""
from __future__ import annotations

import itertools

from experiments.spec import SECTIONS, SpecError, suggest


def _axis(where: str, dotted: str, values) -> tuple[str, str, list]:
    """Check one sweep entry; returns (section, key, values), key '' for a whole-section axis."""
    section, _, key = dotted.partition(".")
    if section not in SECTIONS:
        raise SpecError(f"{where} key {dotted!r}: unknown section {section!r}"
                        f"{suggest(section, SECTIONS)}")
    if not isinstance(values, list) or not values:
        raise SpecError(f"{where}.{dotted!r} = {values!r}: expected a non-empty list of values")
    if not key and not all(isinstance(v, dict) for v in values):
        raise SpecError(f"{where}.{section} = {values!r}: a whole-section axis takes a list of "
                        "tables, e.g. [{name = 'dlion'}, {name = 'glion'}]")
    return section, key, values


def _zip_group(where: str, table) -> list[list[tuple]]:
    """One ``[sweep.zip]`` table -> one axis whose settings set every zipped key together."""
    if not isinstance(table, dict) or not table:
        raise SpecError(f"{where} = {table!r}: expected a table of 'section.key' = [values] "
                        "lists of equal length, e.g. {'method.name' = ['dlion', 'glion'], "
                        "'method.lr' = [0.001, 0.0003]}")
    entries = [_axis(where, dotted, values) for dotted, values in table.items()]
    names = list(table)
    for name, (_, _, values) in zip(names[1:], entries[1:]):
        if len(values) != len(entries[0][2]):
            raise SpecError(f"{where}: {name!r} has {len(values)} values but {names[0]!r} has "
                            f"{len(entries[0][2])}; zipped lists vary together and need equal "
                            "lengths")
    return [[(section, key, values[i]) for section, key, values in entries]
            for i in range(len(entries[0][2]))]


def _check_overlap(axes: list[list[list[tuple]]]) -> None:
    """A key set by two axes would make the grid order decide its value: refuse it."""
    owner: dict[str, int] = {}
    for index, axis in enumerate(axes):
        keys = set()
        for setting in axis:
            for section, key, value in setting:
                keys.update([f"{section}.{key}"] if key else (f"{section}.{k}" for k in value))
        for dotted in keys:
            if owner.setdefault(dotted, index) != index:
                raise SpecError(f"sweep: {dotted!r} is set by two sweep axes (a grid key, a zip "
                                "list or a whole-section table); give each key in one axis only")


def expand(raw: dict) -> list[dict]:
    """The raw specs of every grid point of ``raw['sweep']`` (the base spec when it has none).

    Keys are ``"section.key" = [values]`` (one axis each) or ``section = [tables]`` (each table
    merged over the base section, e.g. method variants with their own hyperparameters). A
    ``zip`` sub-table (or a list of them) holds lists of equal length that vary together as one
    axis. The first axis varies slowest. The keys of a [tune] table (``experiments.tune``)
    come last, as axes of their own.
    """
    from experiments.tune import tune_axes

    sweep = raw.get("sweep", {})
    base = {k: v for k, v in raw.items() if k not in ("sweep", "tune")}
    if not isinstance(sweep, dict):
        raise SpecError("[sweep] must be a table of 'section.key' = [values]")
    axes = []
    for dotted, values in sweep.items():
        if dotted == "zip":
            groups = values if isinstance(values, list) else [values]
            if not groups:
                raise SpecError("sweep.zip = []: expected a table of equal-length lists")
            axes.extend(_zip_group("sweep.zip", group) for group in groups)
        else:
            section, key, values = _axis("sweep", dotted, values)
            axes.append([[(section, key, v)] for v in values])
    _check_overlap(axes)
    axes.extend(tune_axes(raw))  # tuned keys vary fastest: a group's values are neighbours
    points = []
    for combination in itertools.product(*axes):
        point = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
        for setting in combination:
            for section, key, value in setting:
                table = point.setdefault(section, {})
                if key:
                    table[key] = value
                else:
                    table.update(value)
        points.append(point)
    return points


def pin(raw: dict, keys) -> dict:
    """``raw`` with overrides taking precedence over its [sweep] table.

    ``keys``: dotted keys (or section names) that overrides set (see ``spec.overridden``). An
    overridden key stops being an axis; a whole-section axis goes when its section is replaced
    or its ``name`` switched, and otherwise loses the overridden keys from each of its tables.
    Zipped lists go one by one. A sweep left without axes is removed; so are overridden keys
    of a [tune] table, and the table when none is left.
    """
    keys = set(keys)
    if keys and isinstance(raw.get("tune"), dict):  # an override pins a tuned key too
        tune = {d: v for d, v in raw["tune"].items()
                if d == "objective" or (d not in keys and d.partition(".")[0] not in keys)}
        raw = {k: v for k, v in raw.items() if k != "tune"}
        if set(tune) - {"objective"}:
            raw["tune"] = tune
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict) or not keys:
        return raw

    def keep(dotted, values):
        """The entry as it stays (None: pinned away)."""
        section, _, key = dotted.partition(".")
        if section in keys or dotted in keys or (not key and f"{section}.name" in keys):
            return None
        if not key and isinstance(values, list):
            return [{k: v for k, v in t.items() if f"{section}.{k}" not in keys}
                    if isinstance(t, dict) else t for t in values]
        return values

    out = {}
    for dotted, values in sweep.items():
        if dotted != "zip":
            if (kept := keep(dotted, values)) is not None:
                out[dotted] = kept
            continue
        groups = []
        for group in values if isinstance(values, list) else [values]:
            if not isinstance(group, dict):
                groups.append(group)  # expand() reports the bad type
                continue
            group = {d: kept for d, v in group.items() if (kept := keep(d, v)) is not None}
            if group:
                groups.append(group)
        if groups:
            out["zip"] = groups
    pinned = {k: v for k, v in raw.items() if k != "sweep"}
    if out:
        pinned["sweep"] = out
    return pinned


def axis_keys(raw: dict) -> list[str]:
    """The keys a sweep varies: dotted keys, or section names for whole-section axes."""
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict):
        return []
    keys = []
    for dotted, values in sweep.items():
        if dotted != "zip":
            keys.append(dotted)
            continue
        for group in values if isinstance(values, list) else [values]:
            keys.extend(group if isinstance(group, dict) else [])
    return keys


def point_settings(point: dict, axes: list[str]) -> list[tuple[str, str]]:
    """(axis, its value in ``point`` as TOML text) for each key or whole section of ``axes``:
    what sets a grid point apart from the others."""
    from experiments.spec import toml_value

    out = []
    for axis in axes:
        section, _, key = axis.partition(".")
        table = point.get(section, {})
        value = table.get(key) if key else {k: v for k, v in table.items()}
        out.append((axis, toml_value(value)))
    return out
