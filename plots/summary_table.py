"""The answer on the terminal: one row per setting and method of a sweep (or run) directory.

Each row: the swept keys other than the method (the setting), the method, its time to target
(simulated s) and steps to it, its final metric, its bits per parameter per step (after the
method's warm-up; and its peak, the largest step's after the warm-up, where some run's peak
is more than ``PEAK_SHOWN`` times its average: local-update methods, or a versioned server's
reply that catches up on missed updates), the collective it used and its speed-up over a
baseline method in the same setting (``plots.speedup``). Read from the runs' summary.json files alone, never their
histories, so it takes a fraction of a second on a whole study.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from experiments.results import _write_atomic
from plots.data import PlotError, find_runs
from plots.speedup import BASELINE, Answer, seconds_text, speedup, times_text
from plots.style import (METHOD_SETTINGS, color_for, format_value, method_key, method_label,
                         method_rank, pretty)


@dataclass(frozen=True)
class Row:
    """One run of the table; ``setting``: dotted key -> value, for the table's setting keys."""

    setting: dict
    method: str            # the method's label: 'D-Lion (MaVo)', plus hyperparameters that vary
    answer: Answer
    target_step: int | None
    final: float | None
    bits: float | None     # bits per parameter per step after the warm-up, up + down
    peak: float | None     # the largest step's bits per parameter, up + down
    collective: str | None
    speedup: tuple[float, bool] | None  # (ratio, only a lower bound) over the baseline


@dataclass(frozen=True)
class Table:
    keys: list[str]        # the setting's dotted keys
    metric: str            # the final metric's name in the summaries ('loss', 'accuracy', ...)
    target: str | None     # 'loss <= 0.6', or None when the runs have no run.target
    baseline: str | None   # the baseline's method key
    rows: list[Row]

    @property
    def shows_peak(self) -> bool:
        """Whether the terminal table has a peak column: some run's largest step carries
        more than PEAK_SHOWN times its average (a burst the network must absorb)."""
        return any(r.peak and r.bits is not None and r.peak > PEAK_SHOWN * r.bits
                   for r in self.rows)


#: a peak this many times the average bits per step earns the terminal table a column
PEAK_SHOWN = 1.5


def read_summaries(directory, tuned: str = "best") -> list[dict]:
    """The summary.json of every finished run at or below ``directory``; in a sweep with a
    [tune] table only the runs of each setting and method's best value (``tuned='all'``: every
    value tried), their tuned keys marked (``plots.data.Tuned``)."""
    from experiments.results import tune_marks, tuned_keys_of
    from plots.data import mark_tuned

    if tuned not in ("best", "all"):
        raise PlotError(f"tuned={tuned!r}: allowed: 'best' or 'all'")
    path = Path(directory)
    if not path.exists():
        raise PlotError(f"{path}: no such directory")
    out, marks = [], {}
    single = (path / "summary.json").exists()
    for run in find_runs(path):
        if run.parent not in marks:
            marks[run.parent] = (tune_marks(run.parent), tuned_keys_of(run.parent))
        mark, keys = marks[run.parent]
        mark = None if single else mark.get(run.name)
        if mark == "tried" and tuned == "best":
            continue
        file = run / "summary.json"
        try:
            summary = json.loads(file.read_text())
            if not isinstance(summary.get("spec"), dict):
                raise ValueError("no resolved spec in it")
        except (OSError, ValueError, AttributeError) as err:
            raise PlotError(f"{file} is damaged or unreadable ({err}); run it again") from None
        if mark == "best":
            mark_tuned(summary["spec"], keys)
        out.append(summary)
    return out


def setting_keys(specs: list[dict], axes: list[str] | None = None) -> list[str]:
    """The dotted keys outside [method] whose values differ among ``specs`` (a key that follows
    the method, like network.collective, only where it differs among one method's runs);
    with ``axes`` (sweep.json's: dotted keys or section names) only the swept ones."""
    keys = []
    for section in dict.fromkeys(s for spec in specs for s in spec):
        if section == "method":
            continue
        for name in dict.fromkeys(n for spec in specs for n in spec.get(section, {})):
            dotted = f"{section}.{name}"
            if axes is not None and dotted not in axes and section not in axes:
                continue
            groups = [[s for s in specs if method_key(s) == k]
                      for k in {method_key(s) for s in specs}] \
                if (section, name) in METHOD_SETTINGS else [specs]
            if any(len({repr(s.get(section, {}).get(name)) for s in g}) > 1 for g in groups):
                keys.append(dotted)
    return keys


def _axes(directory) -> list[str] | None:
    """The swept keys recorded in the directory's sweep.json (None: no sweep recorded)."""
    try:
        axes = json.loads((Path(directory) / "sweep.json").read_text())["study"]["axes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return axes if isinstance(axes, list) else None


def _baseline_key(wanted: str | None, keys: set[str]) -> str | None:
    """The baseline's method key: ``wanted`` (a key or a display name, any case), or G-AdamW
    when it ran; PlotError naming the methods when ``wanted`` did not run."""
    if wanted is None:
        return BASELINE if BASELINE in keys else None
    for key in keys:
        if wanted.lower() in (key.lower(), pretty(key).lower()):
            return key
    names = ", ".join(f"{k} ({pretty(k)})" if pretty(k) != k else k
                      for k in sorted(keys, key=method_rank))
    raise PlotError(f"--baseline {wanted}: no run of that method here; the methods: {names}")


def _order(value):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, float(value), "") if number else (1, 0.0, repr(value))


def summary_table(directory, baseline: str | None = None, tuned: str = "best") -> Table:
    """The table of the runs at or below ``directory``; ``baseline``: a method key or name
    (default: G-AdamW when it ran, else no speed-up). ``tuned``: in a sweep with a [tune]
    table, 'best' shows each setting and method at its best value (labelled '(tuned)'),
    'all' every value tried."""
    from experiments.results import tuned_keys_of

    summaries = read_summaries(directory, tuned)
    specs = [s["spec"] for s in summaries]
    keys = [k for k in setting_keys(specs, _axes(directory))  # best: a tuned key is in the
            if tuned == "all" or k not in tuned_keys_of(directory)]  # method's label
    base = _baseline_key(baseline, {method_key(s) for s in specs})
    target = next((s["target"] for s in summaries if s.get("target")), None)
    metric = target["metric"] if target else ("loss" if "loss" in summaries[0]["final"]
                                               else "train_loss")
    drafts = []
    for summary, spec in zip(summaries, specs):
        reached = (summary.get("target") or {}).get("time_s")
        steady = summary.get("steady_bits_per_param_per_step", {}).get("total")
        bits = steady if steady is not None else summary["bits_per_param_per_step"]["total"]
        answer = Answer(method_key(spec), reached, int(summary["steps"]),
                        float(summary["sim_time_s"]), bits, color_for(spec))
        setting = {k: spec.get(k.partition(".")[0], {}).get(k.partition(".")[2]) for k in keys}
        drafts.append((setting, spec, summary, answer))
    rows = []
    for setting, spec, summary, answer in drafts:
        baselines = [a for s, _, _, a in drafts if s == setting and a.key == base]
        found = [speedup(answer, b) for b in baselines]
        found = [f for f in found if f is not None]
        # several baseline variants (e.g. learning rates): against the strongest of them
        rows.append(Row(setting, method_label(spec, specs), answer,
                        (summary.get("target") or {}).get("step"),
                        summary["final"].get(metric), answer.bits,
                        (summary.get("peak_bits_per_param") or {}).get("total"),
                        summary.get("collective"), min(found) if found else None))
    rows.sort(key=lambda r: ([_order(r.setting[k]) for k in keys], method_rank(r.answer.key),
                             r.method))
    return Table(keys, metric, None if target is None else
                 f"{_metric_name(target['metric'])} {'≥' if 'acc' in target['metric'] else '≤'} "
                 f"{target['value']:g}", base, rows)


def _metric_name(metric: str) -> str:
    return metric.replace("_", " ") if metric.startswith("train") else \
        f"eval {metric.replace('_', ' ')}"


def _headers(table: Table) -> list[str]:
    names = [k.partition(".")[2] for k in table.keys]
    setting = [n if names.count(n) == 1 else k for n, k in zip(names, table.keys)]
    return [*setting, "method", "time to target", "steps", f"final {_metric_name(table.metric)}",
            "bits/param/step", *(["peak bits/param"] if table.shows_peak else []), "collective",
            *([f"speed-up over {pretty(table.baseline)}"] if table.baseline else [])]


def _cells(table: Table, row: Row) -> list[str]:
    a = row.answer
    if table.target is None:
        time, steps = "no target", ""
    elif a.time_s is None:
        time, steps = f"not reached (> {seconds_text(a.sim_time_s)})", ""
    else:
        time, steps = seconds_text(a.time_s), str(row.target_step)
    cells = [*(format_value(*k.split(".", 1), row.setting[k]) for k in table.keys), row.method,
             time, steps, "" if row.final is None else f"{row.final:.4g}",
             "" if row.bits is None else f"{row.bits:.3g}",
             *([("" if row.peak is None else f"{row.peak:.3g}")] if table.shows_peak else []),
             row.collective or ""]
    if table.baseline:
        cells.append("" if row.speedup is None else
                     (">" if row.speedup[1] else "") + times_text(row.speedup[0]))
    return cells


#: columns aligned to the right (numbers) among those after the setting and the method
_RIGHT = {"time to target", "steps", "bits/param/step", "peak bits/param"}


def format_table(table: Table) -> str:
    """The table as aligned text, with a line saying what the target and speed-up are."""
    headers = _headers(table)
    body = [_cells(table, r) for r in table.rows]
    widths = [max(len(c) for c in column) for column in zip(headers, *body)]
    right = [h in _RIGHT or h.startswith(("final ", "speed-up")) for h in headers]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths]), *map(line, body)]
    notes = []
    if table.target:
        notes.append(f"target: {table.target} (simulated time)")
    if table.baseline:
        name = pretty(table.baseline)
        notes.append(f"speed-up: {name}'s time to target / the method's, in the same setting"
                     + (f" (>: {name} did not reach the target; its simulated time is the "
                        "bound)" if any(r.speedup and r.speedup[1] for r in table.rows) else ""))
    return "\n".join(lines + notes)


def csv_text(table: Table) -> str:
    """The same table as CSV, numbers at full precision (setting columns by their dotted key)."""
    from experiments.spec import toml_value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    metric = f"final_{table.metric}"
    writer.writerow([*table.keys, "method", "method_key", "time_to_target_s", "steps_to_target",
                     "steps", "sim_time_s", metric, "bits_per_param_per_step",
                     "peak_bits_per_param", "collective",
                     "speedup", "speedup_is_bound"])
    for r in table.rows:
        a = r.answer
        writer.writerow([*(v if isinstance(v, (int, float, str)) and not isinstance(v, bool)
                           else toml_value(v)
                           for v in r.setting.values()), r.method, a.key,
                         _full(a.time_s), _full(r.target_step), a.steps, _full(a.sim_time_s),
                         _full(r.final), _full(r.bits), _full(r.peak), r.collective or "",
                         "" if r.speedup is None else _full(r.speedup[0]),
                         "" if r.speedup is None else str(r.speedup[1]).lower()])
    return out.getvalue()


def _full(value) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_csv(table: Table, file) -> Path:
    """Write ``csv_text(table)`` to ``file`` atomically; returns its path."""
    path = Path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, csv_text(table))
    return path
