"""Reading results for figures: runs from directories, groups over seeds, t-intervals, targets.

Everything here reads finished runs; nothing runs a simulation.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.results import DamagedRunError, Result, is_complete, load
from plots.style import method_key, method_rank, metric_label


class PlotError(ValueError):
    """A figure cannot be drawn from these results; the message names what is missing."""


def find_runs(directory) -> list[Path]:
    """The finished run directories at or anywhere below ``directory`` (sorted by path)."""
    path = Path(directory)
    if is_complete(path):
        return [path]
    runs = sorted(p.parent for p in path.rglob("summary.json")) if path.is_dir() else []
    if not runs:
        raise PlotError(f"{path} holds no finished runs (no summary.json at or below it)")
    return runs


class Tuned(dict):
    """A spec section whose ``tuned`` keys a [tune] table chose (the best value of a sweep's
    setting and method); equal to, and read as, the plain section."""

    tuned: tuple = ()


def tuned_names(spec: dict, section: str = "method") -> tuple:
    """The keys of ``spec[section]`` a [tune] table chose (() when none)."""
    return getattr(spec.get(section), "tuned", ())


def mark_tuned(spec: dict, keys: list[str]) -> dict:
    """Mark the dotted ``keys`` of ``spec`` (in place) as chosen by a [tune] table."""
    for section in {k.partition(".")[0] for k in keys}:
        table = Tuned(spec.get(section, {}))
        table.tuned = tuple(k.partition(".")[2] for k in keys if k.startswith(f"{section}."))
        spec[section] = table
    return spec


def _mark_tuned(run: Result, keys: list[str]) -> Result:
    mark_tuned(run.summary["spec"], keys)
    return run


def load_runs(results, tuned: str = "best") -> list[Result]:
    """Result objects from a Result, a run or sweep directory, or a list of those.

    In a sweep directory with a [tune] table (its tune.json), ``tuned='best'`` keeps only the
    runs of each setting and method's best value, their tuned keys marked (``tuned_names``);
    ``tuned='all'`` keeps every value tried.
    """
    from experiments.results import tune_marks, tuned_keys_of

    if tuned not in ("best", "all"):
        raise PlotError(f"tuned={tuned!r}: allowed: 'best' (each setting and method at its "
                        "tuned value) or 'all' (every value tried)")
    runs, marks = [], {}
    for item in results if isinstance(results, (list, tuple)) else [results]:
        if isinstance(item, (str, Path)):
            single = is_complete(item)
            for path in find_runs(item):
                if path.parent not in marks:
                    marks[path.parent] = (tune_marks(path.parent),
                                          tuned_keys_of(path.parent))
                mark, keys = marks[path.parent]
                mark = None if single else mark.get(path.name)
                if mark == "tried" and tuned == "best":
                    continue
                try:
                    run = load(path)
                except DamagedRunError as err:
                    raise PlotError(str(err)) from None
                runs.append(_mark_tuned(run, keys) if mark == "best" else run)
        else:
            runs.append(item)
    if not runs:
        raise PlotError("no runs to plot")
    return runs


def spec_of(run: Result) -> dict:
    """The resolved spec a run was made from."""
    return run.summary["spec"]


def without(spec: dict, keys) -> dict:
    """A copy of ``spec`` without the dotted ``keys`` (e.g. 'run.seed')."""
    out = copy.deepcopy(spec)
    for dotted in keys:
        section, name = dotted.split(".", 1)
        out.get(section, {}).pop(name, None)
    return out


def without_section(spec: dict, section: str) -> dict:
    """A copy of ``spec`` without one whole section (e.g. 'method')."""
    return {k: copy.deepcopy(v) for k, v in spec.items() if k != section}


def value_at(spec: dict, dotted: str):
    """The value of a dotted spec key ('network.bandwidth'); PlotError naming it if absent."""
    section, _, name = dotted.partition(".")
    if section not in spec or name not in spec[section]:
        raise PlotError(f"{dotted!r} is not a spec key of these runs; give section.key, e.g. "
                        "cluster.workers, cluster.batch_size, network.bandwidth, method.tie")
    return spec[section][name]


@dataclass
class Group:
    """Runs whose specs are equal apart from the ignored keys (by default only run.seed)."""

    spec: dict          # the first run's spec with the ignored keys removed
    runs: list[Result]

    @property
    def key(self) -> str:
        """The method key ('dlion/mavo', 'gadamw', ...)."""
        return method_key(self.spec)


def group_runs(runs: list[Result], ignore=("run.seed",)) -> list[Group]:
    """Group runs that differ only in ``ignore``; groups in legend order (method, then spec)."""
    groups: dict[str, Group] = {}
    for run in runs:
        spec = without(spec_of(run), ignore)
        ident = json.dumps(spec, sort_keys=True, default=list)
        groups.setdefault(ident, Group(spec, [])).runs.append(run)
    return sorted(groups.values(), key=lambda g: (method_rank(g.key), _natural(g.spec)))


def _natural(spec: dict) -> list:
    """A sort key over all spec values in which numbers sort by value (4 before 16)."""
    key = []
    for section in sorted(spec):
        for name in sorted(spec[section]):
            value = spec[section][name]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            key.append((0, float(value), "") if number else (1, 0.0, repr(value)))
    return key


def t_interval(samples, confidence: float = 0.95, axis: int = 0):
    """Mean and half-width of the Student-t confidence interval over ``axis``.

    The half-width is 0 with one sample (no spread to estimate) and wherever the samples agree.
    """
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[axis]
    mean = samples.mean(axis=axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    from scipy import stats  # here, not at the top: scipy takes longer to import than the rest

    sem = samples.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, stats.t.ppf(0.5 + confidence / 2, df=n - 1) * sem


def maximise(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (accuracy-like), as run.target_metric."""
    return "acc" in metric


def metric_column(history: dict, metric: str) -> str:
    """The history column for ``metric``: the column itself, or eval_<metric> ('loss')."""
    if metric in history:
        return metric
    if f"eval_{metric}" in history:
        return f"eval_{metric}"
    available = ", ".join(k for k in history if k not in ("step", "time_s", "lr"))
    raise PlotError(f"metric {metric!r} is not in the runs' history; available: {available}")


def final_value(run: Result, metric: str) -> float:
    """The last finite value of ``metric`` in the run's history (NaN if it has none)."""
    column = run.history[metric_column(run.history, metric)]
    finite = column[np.isfinite(column)]
    return float(finite[-1]) if finite.size else math.nan


def time_to_target(run: Result, metric: str | None = None, value: float | None = None) -> float:
    """Simulated seconds until ``metric`` first reached ``value`` (NaN if it never did).

    Without ``value``: the run's own target (run.target), as recorded in its summary. With a
    value, the time is read from the history at the first step whose metric reached it
    (eval_* metrics exist only at evaluation steps, so this is the first such step).
    """
    if value is None:
        target = run.summary.get("target")
        if target is None:
            raise PlotError(f"run {_name(run)} has no run.target, so no time-to-target; "
                            "pass a target value (--target V, with --metric M)")
        return math.nan if target["time_s"] is None else float(target["time_s"])
    metric = metric or "loss"
    column = run.history[metric_column(run.history, metric)]
    with np.errstate(invalid="ignore"):
        hit = column >= value if maximise(metric) else column <= value
    steps = np.flatnonzero(hit)
    return float(run.history["time_s"][steps[0]]) if steps.size else math.nan


def target_description(runs: list[Result], metric: str | None, value: float | None) -> str:
    """'evaluation loss <= 0.5': the target the runs are timed to, for titles and labels."""
    if value is None:
        target = runs[0].summary.get("target") or {}
        metric, value = target.get("metric"), target.get("value")
        if value is None:
            return "target"
    metric = metric or "loss"
    label = metric_label(metric_column(runs[0].history, metric))
    return f"{label} {'≥' if maximise(metric) else '≤'} {value:g}"


def _name(run: Result) -> str:
    return method_key(spec_of(run)) + f" (seed {spec_of(run)['run']['seed']})"


def sweep_progress(directory) -> tuple[int, int] | None:
    """(finished points, points in the grid) of a sweep directory; None when it is no sweep.

    The grid is the one recorded in the directory's sweep.json.
    """
    path = Path(directory) if isinstance(directory, (str, Path)) else None
    manifest = path / "sweep.json" if path is not None else None
    if manifest is None or not manifest.is_file():
        return None
    try:
        points = json.loads(manifest.read_text())["points"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sum(is_complete(path / str(p)) for p in points), len(points)
