"""The [tune] table of a spec: hyperparameters tuned per setting and method of a sweep.

``"section.key" = [values]`` entries (the product when there are several) are tried at every
point of the [sweep] grid, and each setting and method keeps its best value by ``objective``:

- ``"time_to_target"`` (the default): the smallest simulated time to run.target; a value that
  never reaches the target loses to any that does; ties, and values none of which reach it,
  fall back to the final metric;
- ``"final"``: the final evaluation metric (run.target_metric; accuracy-like metrics, those
  with "acc" in their name, higher is better, others lower).

Over several seeds the objective is taken over all of a value's seeds: fewer seeds that miss
the target first, then the mean time, then the mean final metric.

After a sweep, ``tune.json`` at the sweep's root records, per group (setting and method): the
tuned keys, the values tried, each run's objective values, the winner, and the keys whose best
value lies at the edge of its grid. ``runs.csv`` then has a ``tuned`` column ("best" for the
winners' runs, "tried" for the others), and figures and ``dlion-sim summary`` use only the
winners unless told otherwise.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from experiments.results import TUNE, read_tune as read, tune_marks as marks  # noqa: F401
from experiments.results import tuned_keys_of  # noqa: F401
from experiments.spec import SCHEMA, SECTIONS, SpecError, shown, suggest

OBJECTIVES = ("time_to_target", "final")
#: what a group is apart from its tuned keys: seeds are samples of one group, not groups
_NOT_A_SETTING = ("run.seed",)


def _known_keys(section: str) -> set[str]:
    """The keys [section] can take (for method and objective: those of any of them)."""
    if section == "method":
        from experiments.named import method_keys

        return {"name", *method_keys()}
    if section == "objective":
        import models
        from experiments.named import objective_fields

        return {"name", *(k for name in models.REGISTRY for k in objective_fields(name))}
    return set(SCHEMA[section])


def tune_table(raw: dict) -> dict | None:
    """The checked [tune] table of ``raw``: {"keys": {dotted: values}, "objective": name};
    None when the spec has none. SpecError (one line) for bad input."""
    table = raw.get("tune")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SpecError(f"[tune] = {table!r}: expected a table of 'section.key' = [values] and "
                        "optionally objective = 'time_to_target' | 'final'")
    objective = table.get("objective", "time_to_target")
    if objective not in OBJECTIVES:
        raise SpecError(f"tune.objective = {shown(objective)!r}: unknown objective; allowed: "
                        f"{', '.join(map(repr, OBJECTIVES))}")
    keys = {}
    for dotted, values in table.items():
        if dotted == "objective":
            continue
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise SpecError(f"tune key {dotted!r}: expected 'section.key' with a section of "
                            f"{', '.join(SECTIONS)}, e.g. 'method.lr'"
                            + (suggest(section, SECTIONS) if section not in SECTIONS else ""))
        known = _known_keys(section)
        if key not in known:
            raise SpecError(f"tune key {dotted!r}: [{section}] has no key {key!r}"
                            f"{suggest(key, sorted(known))}")
        if not isinstance(values, list) or not values:
            raise SpecError(f"tune.{dotted!r} = {values!r}: expected a non-empty list of values "
                            f"to try, e.g. \"{dotted}\" = [1e-4, 1e-3, 1e-2]")
        keys[dotted] = values
    if not keys:
        raise SpecError("[tune] names no key to tune; give 'section.key' = [values], e.g. "
                        "\"method.lr\" = [1e-4, 1e-3, 1e-2]")
    _check_not_swept(raw, keys)
    return {"keys": keys, "objective": objective}


def _check_not_swept(raw: dict, keys: dict) -> None:
    """A key both swept and tuned would have two values at once: refuse it."""
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict):
        return
    entries = []
    for dotted, values in sweep.items():
        groups = (values if isinstance(values, list) else [values]) if dotted == "zip" else \
            [{dotted: values}]
        entries.extend(e for g in groups if isinstance(g, dict) for e in g.items())
    for dotted, values in entries:
        section, _, key = dotted.partition(".")
        swept = {dotted} if key else {f"{section}.{k}" for t in values or [] if isinstance(t, dict)
                                      for k in t}
        for tuned in keys:
            if tuned in swept:
                raise SpecError(f"tune key {tuned!r} is also swept in [sweep] ({dotted!r}); a "
                                "key is either swept (every value kept) or tuned (the best "
                                "kept): remove it from one of them")


def tune_axes(raw: dict) -> list[list[list[tuple]]]:
    """The tuned keys as grid axes (``experiments.grid`` form), one per key."""
    table = tune_table(raw)
    if table is None:
        return []
    axes = []
    for dotted, values in table["keys"].items():
        section, _, key = dotted.partition(".")
        axes.append([[(section, key, v)] for v in values])
    return axes


def tune_keys(raw: dict) -> list[str]:
    table = tune_table(raw)
    return [] if table is None else list(table["keys"])


def _group_id(spec: dict, keys: list[str]) -> str:
    drop = set(keys) | set(_NOT_A_SETTING)
    reduced = {s: {k: v for k, v in t.items() if f"{s}.{k}" not in drop}
               for s, t in spec.items()}
    return json.dumps(reduced, sort_keys=True, default=str)


def _setting(spec: dict, axes: list[str]) -> dict:
    """The swept keys' values of a point (a whole-section axis: its table), as JSON values;
    without the method's name, which a group names by itself."""
    out = {}
    for axis in axes:
        section, _, key = axis.partition(".")
        if axis != "method.name":
            out[axis] = _canonical(spec[section].get(key) if key else spec[section])
    return out


def _without(spec: dict, keys: list[str]) -> dict:
    return {s: {k: v for k, v in t.items() if f"{s}.{k}" not in keys} for s, t in spec.items()}


def _canonical(value):
    return json.loads(json.dumps(value, default=str))


def definition(raw: dict, grid: dict[str, dict], swept: list[str]) -> dict:
    """tune.json without results: the groups of the points of ``grid`` (hash -> resolved spec,
    in grid order) and the values each tried; ``swept``: the [sweep]'s keys (grid.axis_keys)."""
    table = tune_table(raw)
    keys = list(table["keys"])
    axes = [a for a in swept if a not in _NOT_A_SETTING]
    groups: dict[str, dict] = {}
    for digest, spec in grid.items():
        group = groups.setdefault(_group_id(spec, keys), {
            "setting": _setting(_without(spec, keys), axes), "method": spec["method"]["name"],
            "candidates": []})
        values = {k: _canonical(spec[k.partition(".")[0]][k.partition(".")[2]]) for k in keys}
        for candidate in group["candidates"]:
            if candidate["values"] == values:
                candidate["dirs"].append(digest)
                break
        else:
            group["candidates"].append({"values": values, "dirs": [digest]})
    return {"keys": keys, "objective": table["objective"],
            "metric": next(iter(grid.values()))["run"]["target_metric"],
            "groups": list(groups.values())}


def check(raw: dict, grid: dict[str, dict]) -> None:
    """SpecError when the objective cannot rank the runs of ``grid``: time to target without
    run.target."""
    table = tune_table(raw)
    if table is None or table["objective"] != "time_to_target":
        return
    if any(spec["run"]["target"] is None for spec in grid.values()):
        raise SpecError("tune.objective = 'time_to_target' needs run.target (the value of "
                        "run.target_metric to reach); set run.target, or use "
                        "objective = 'final'")


def _summary(directory: Path, digest: str) -> dict | None:
    try:
        return json.loads((directory / digest / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _score(runs: list[dict | None], objective: str, metric: str) -> tuple:
    """Sort key of one candidate (smaller is better) from its runs' summaries."""
    sign = -1.0 if "acc" in metric else 1.0
    finals = []
    for s in runs:
        value = None if s is None else s.get("final", {}).get(metric)
        finals.append(sign * value if isinstance(value, (int, float)) and math.isfinite(value)
                      else math.inf)
    final = sum(finals) / len(finals) if finals else math.inf
    if any(s is None for s in runs):
        return (1, math.inf, math.inf, math.inf)
    if objective == "final":
        return (0, 0, 0.0, final)
    times = [((s.get("target") or {}).get("time_s")) for s in runs]
    missed = sum(t is None for t in times)
    mean = sum(t for t in times if t is not None) / len(runs) if not missed else 0.0
    return (0, missed, mean, final)


def evaluate(directory, tune: dict) -> dict:
    """``tune`` (a definition) with each candidate's results, each group's best and the keys
    whose best value lies at the edge of its grid."""
    path = Path(directory)
    metric = tune["metric"]
    for group in tune["groups"]:
        best, best_score = None, None
        for candidate in group["candidates"]:
            summaries = [_summary(path, d) for d in candidate["dirs"]]
            score = _score(summaries, tune["objective"], metric)
            candidate["finished"] = sum(s is not None for s in summaries)
            candidate["time_to_target_s"] = [None if s is None else
                                             (s.get("target") or {}).get("time_s")
                                             for s in summaries]
            candidate[f"final_{metric}"] = [None if s is None else s.get("final", {}).get(metric)
                                            for s in summaries]
            if score[0] == 0 and (best_score is None or score < best_score):
                best, best_score = candidate, score
        group["tried"] = {k: _unique([c["values"][k] for c in group["candidates"]])
                          for k in tune["keys"]}
        group["best"] = None if best is None else best["values"]
        group["best_dirs"] = [] if best is None else best["dirs"]
        group["edge"] = [] if best is None else [
            k for k in tune["keys"] if _at_edge(best["values"][k], group["tried"][k])]
    return tune


def _unique(values: list) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _at_edge(value, tried: list) -> bool:
    """Whether ``value`` is the smallest or largest of ``tried`` (numbers; 2 values or more)."""
    numbers = [v for v in tried if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(tried) < 2 or len(numbers) != len(tried) or isinstance(value, bool):
        return False
    return value in (min(numbers), max(numbers))


def write(directory, tune: dict) -> Path:
    """Evaluate ``tune`` against the runs in ``directory`` and write its tune.json."""
    from experiments.results import _write_atomic

    path = Path(directory) / TUNE
    _write_atomic(path, json.dumps(evaluate(directory, tune), indent=1) + "\n")
    return path


def describe_group(group: dict) -> str:
    setting = ", ".join(f"{k} = {v}" for k, v in group["setting"].items())
    return f"{group['method']}" + (f" at {setting}" if setting else "")


def edge_warnings(directory) -> list[str]:
    """One line per group whose best value is at the edge of its grid."""
    tune = read(directory) or {}
    lines = []
    for group in tune.get("groups", []):
        for key in group.get("edge", []):
            value, tried = group["best"][key], group["tried"][key]
            side = "smallest" if value == min(tried) else "largest"
            lines.append(f"tuned {key} of {describe_group(group)}: the best value {value!r} "
                         f"is the {side} tried ({', '.join(map(repr, tried))}); the optimum may "
                         "lie beyond the grid, extend it")
    return lines


def merge_definitions(directories) -> dict | None:
    """The first tune.json definition among ``directories`` (None: none has one)."""
    for d in directories:
        tune = read(d)
        if tune is not None:
            return tune
    return None
