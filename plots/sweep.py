"""A final metric (or time-to-target) against any swept spec key, one line per series.

For the studies whose question is "how does it change with X": the number of workers, the
per-worker batch size, the tie rule. Runs that differ only in their seed are one point: the mean,
with t-interval error bars (none when every point has a single seed).

The x axis (``key``) and the series may be one spec key ('network.bandwidth'), a whole section
swept as tables ('method': each method variant; 'network': the keys its tables set), or keys a
``[sweep.zip]`` varies together, joined by commas ('faults.loss,faults.crash_rate'): one
scenario per combination, labelled with its values.
"""
from __future__ import annotations

import json
import math
import textwrap

from matplotlib.ticker import NullFormatter

from plots.data import (PlotError, final_value, group_runs, load_runs, metric_column, spec_of,
                        t_interval, target_description, time_to_target, value_at)
from plots.figure import plt, save, wrap
from plots.style import (METHOD_COLORS, OKABE_ITO, color_for, describe, format_value,
                         marker_for, method_key, method_label, method_rank, metric_label, pretty,
                         setting_differences, tuned_suffix)


def sweep_points(results, key: str, metric: str = "loss", series: str | None = None,
                 target: float | None = None, confidence: float = 0.95) -> dict:
    """{series label: [(x, mean, half-width, seeds), ...] sorted by x} for the swept ``key``.

    ``key`` and ``series`` (default: the method) are axes as in the module's docstring; x is a
    number for one numeric key, else the scenario's label. y is the final ``metric``, or with
    ``target`` the simulated seconds until the metric reached it.
    """
    runs = load_runs(results)
    specs = [spec_of(r) for r in runs]
    groups: dict[tuple, list] = {}
    for group in group_runs(runs):  # runs that differ only in their seed
        spec = spec_of(group.runs[0])
        point = (_series_label(spec, series, specs), x_value(spec, key, specs))
        if point in groups:
            other = spec_of(groups[point][0])
            differing = setting_differences(spec, [spec, other])
            hint = _zip_hint(key, spec, other)
            raise PlotError(f"runs with {key} = {point[1]!r} differ in more than their seed "
                            f"({', '.join(differing) or 'method settings'}); plot one setting "
                            "at a time, or name the varying key with --series" + hint)
        groups[point] = group.runs
    lines: dict[str, list] = {}
    for (label, x), members in groups.items():
        ys = [final_value(r, metric) if target is None else time_to_target(r, metric, target)
              for r in members]
        mean, half = t_interval(ys, confidence) if all(map(math.isfinite, ys)) else (math.nan, 0)
        lines.setdefault(label, []).append((x, float(mean), float(half), len(members)))
    order = _x_order(specs, key)
    return {label: sorted(lines[label], key=lambda p: order(p[0]))
            for label in sorted(lines, key=lambda label: (_rank(label, series), label))}


def _rank(label: str, series: str | None) -> int:
    """Legend position: methods in their fixed order; other series alphabetically."""
    if series not in (None, "method"):
        return 0
    names = sorted(METHOD_COLORS, key=lambda k: -len(pretty(k)))  # 'D-Lion (MaVo) lr=0.003'
    return method_rank(next((k for k in names if label == pretty(k)
                             or label.startswith(pretty(k) + " ")), label))


def plot_sweep(results, out_file=None, key: str = "cluster.workers", metric: str = "loss",
               series: str | None = None, target: float | None = None, title: str | None = None,
               confidence: float = 0.95):
    """Draw ``sweep_points``: x = the swept key (or scenario), one line (with error bars) per
    series."""
    runs = load_runs(results)
    specs = [spec_of(r) for r in runs]
    column = metric_column(runs[0].history, metric)
    lines = sweep_points(runs, key, metric, series, target, confidence)
    xs = [p[0] for points in lines.values() for p in points]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    categories = [] if numeric else sorted(set(xs), key=_x_order(specs, key))
    seeds = max(p[3] for points in lines.values() for p in points)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    spec_by_label = {_series_label(spec, series, specs): spec for spec in specs}
    by_method = series in (None, "method")
    for i, (label, points) in enumerate(lines.items()):
        spec = spec_by_label[label]
        style = dict(color=color_for(spec) if by_method else OKABE_ITO[i % len(OKABE_ITO)],
                     marker=marker_for(spec) if by_method else "o", lw=1.6, label=label)
        x = [p[0] if numeric else categories.index(p[0]) for p in points]
        if seeds > 1:
            ax.errorbar(x, [p[1] for p in points], yerr=[p[2] for p in points], capsize=3,
                        **style)
        else:
            ax.plot(x, [p[1] for p in points], **style)
    section, _, name = key.partition(".")
    if numeric:
        values = sorted(set(xs))
        if min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log", base=2 if all(_power_of_two(x) for x in xs) else 10)
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(values, [format_value(section, name, x) for x in values])
    else:
        _category_ticks(ax, categories)
    ax.set_xlabel(_key_label(key))
    if target is None:
        ax.set_ylabel(f"final {metric_label(column)}")
    else:
        ax.set_ylabel(f"simulated time to {target_description(runs, metric, target)} (s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False,
              title=None if series is None else _key_label(series), title_fontsize=8)
    what = metric_label(column).capitalize() if target is None else "Time to target"
    heading = title or f"{what} against {_key_label(key)}\n{describe(specs)}"
    if seeds > 1:
        heading += f"\nmean over {seeds} seeds, {confidence:.0%} t-interval error bars"
    ax.set_title(wrap(heading, 80), fontsize=10)
    fig.tight_layout()
    return save(fig, out_file, results)


def _category_ticks(ax, categories: list[str]) -> None:
    """Scenario labels under their positions: wrapped to a few words a line, turned when many
    would not fit side by side."""
    width = max(10, 60 // max(1, len(categories)))
    labels = [textwrap.fill(c, width, break_on_hyphens=False, break_long_words=False)
              for c in categories]
    ax.set_xticks(range(len(categories)), labels, fontsize=8 if len(categories) > 4 else 9)
    ax.set_xlim(-0.5, len(categories) - 0.5)
    if len(categories) > 6:
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")


_KEY_LABELS = {"cluster.workers": "workers N", "cluster.batch_size": "batch size per worker",
               "network.bandwidth": "link bandwidth", "method.tie": "MaVo tie rule",
               "method.zero_sign": "sign(0) rule", "method.lr": "learning rate",
               "method.name": "method", "method": "method", "faults.loss": "message loss",
               "faults.crash_rate": "crash rate"}


def axis_parts(axis: str) -> list[str]:
    """'faults.loss, faults.crash_rate' -> ['faults.loss', 'faults.crash_rate']."""
    parts = [part.strip() for part in axis.split(",")]
    if not all(parts):
        raise PlotError(f"{axis!r}: give a spec key (section.key), a section swept as tables "
                        "(e.g. method) or zipped keys joined by commas")
    return parts


def _section(spec: dict, section: str) -> dict:
    if section not in spec:
        raise PlotError(f"{section!r} is not a spec key or section of these runs; give "
                        "section.key, e.g. cluster.workers, network.bandwidth, method.tie, or a "
                        "section swept as tables, e.g. method")
    return spec[section]


def _part_value(spec: dict, part: str):
    if "." in part:
        return _hashable(value_at(spec, part))
    return json.dumps(_section(spec, part), sort_keys=True, default=str)


def _part_text(spec: dict, part: str, specs: list[dict], named: bool) -> str:
    """One part of an axis as a reader wants it ('10 Gb/s', 'D-Lion (MaVo)', 'latency=1 ms')."""
    if "." in part:
        section, _, name = part.partition(".")
        text = format_value(section, name, value_at(spec, part))
        if part == "method.name":
            text = pretty(text)
        # no-break spaces: a wrapped tick label breaks between the parts, not inside '10 Gb/s'
        return f"{_short(part)}={text}".replace(" ", "\u00a0") if named else text
    if part == "method":
        return method_label(spec, specs)
    table = _section(spec, part)
    differing = [k for k in table if len({repr(s.get(part, {}).get(k)) for s in specs}) > 1]
    return ", ".join(f"{k}={format_value(part, k, table[k])}".replace(" ", "\u00a0")
                     for k in differing) or part


def _short(dotted: str) -> str:
    return dotted.partition(".")[2]


def x_value(spec: dict, axis: str, specs: list[dict]):
    """Where a run sits on the axis: its value for one numeric key, else its label."""
    parts = axis_parts(axis)
    if len(parts) == 1 and "." in parts[0]:
        value = _part_value(spec, parts[0])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return ", ".join(_part_text(spec, p, specs, named=len(parts) > 1) for p in parts)


def _x_order(specs: list[dict], axis: str):
    """Sort key of x values: numbers by value; a scenario label by its runs' values (methods
    in their fixed order, numbers by value)."""
    rank = {}
    for spec in specs:
        label = x_value(spec, axis, specs)
        if isinstance(label, str):
            rank.setdefault(label, tuple(
                (method_rank(method_key(spec)), 0.0, _part_value(spec, p)) if p == "method"
                else _order(_part_value(spec, p))
                for p in axis_parts(axis)))
    return lambda x: (0, ((0, float(x), ""),)) if not isinstance(x, str) else (1, rank.get(x, ()))


def _zip_hint(axis: str, spec: dict, other: dict) -> str:
    """'; or give the keys varied together as one --key, e.g. --key a.b,c.d' for two runs at
    the same x that differ in swept keys besides it."""
    parts = axis_parts(axis)
    more = [f"{section}.{name}" for section in spec if section not in ("method", *parts)
            for name in spec[section] if name != "seed" and f"{section}.{name}" not in parts
            and repr(spec[section][name]) != repr(other.get(section, {}).get(name))]
    if not more:
        return ""
    return f"; or give keys varied together as one --key, e.g. --key {','.join(parts + more)}"


def _key_label(key: str) -> str:
    return " / ".join(_KEY_LABELS.get(p, p) for p in axis_parts(key))


def _series_label(spec: dict, series: str | None, specs: list[dict]) -> str:
    if series is None:
        return pretty(method_key(spec)) + tuned_suffix(spec)
    label = x_value(spec, series, specs)
    if isinstance(label, str):
        return label
    section, _, name = series.partition(".")
    return format_value(section, name, label)


def _hashable(x):
    return tuple(x) if isinstance(x, list) else x


def _order(x):
    return (0, float(x), "") if isinstance(x, (int, float)) and not isinstance(x, bool) \
        else (1, 0.0, str(x))


def _power_of_two(x) -> bool:
    return float(x).is_integer() and x > 0 and (int(x) & (int(x) - 1)) == 0
