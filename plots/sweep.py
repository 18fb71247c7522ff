"""A final metric (or time-to-target) against any swept spec key, one line per series.

For the studies whose question is "how does it change with X": the number of workers, the
per-worker batch size, the tie rule. Runs that differ only in their seed are one point: the mean,
with t-interval error bars (none when every point has a single seed).
"""
from __future__ import annotations

import math

from matplotlib.ticker import NullFormatter

from plots.data import (PlotError, final_value, group_runs, load_runs, metric_column, spec_of,
                        t_interval, target_description, time_to_target, value_at)
from plots.figure import plt, save, wrap
from plots.style import (METHOD_COLORS, OKABE_ITO, color_for, describe, format_value, marker_for, method_key,
                         method_rank, metric_label, pretty, setting_differences)


def sweep_points(results, key: str, metric: str = "loss", series: str | None = None,
                 target: float | None = None, confidence: float = 0.95) -> dict:
    """{series label: [(x, mean, half-width, seeds), ...] sorted by x} for the swept ``key``.

    ``series``: a dotted spec key whose value names a line (default: the method). y is the final
    ``metric``, or with ``target`` the simulated seconds until the metric reached it.
    """
    runs = load_runs(results)
    groups: dict[tuple, list] = {}
    for group in group_runs(runs):  # runs that differ only in their seed
        spec = spec_of(group.runs[0])
        point = (_series_label(spec, series), _hashable(value_at(spec, key)))
        if point in groups:
            differing = setting_differences(spec, [spec, spec_of(groups[point][0])])
            raise PlotError(f"runs with {key} = {point[1]!r} differ in more than their seed "
                            f"({', '.join(differing) or 'method settings'}); plot one setting "
                            "at a time, or name the varying key with --series")
        groups[point] = group.runs
    lines: dict[str, list] = {}
    for (label, x), members in groups.items():
        ys = [final_value(r, metric) if target is None else time_to_target(r, metric, target)
              for r in members]
        mean, half = t_interval(ys, confidence) if all(map(math.isfinite, ys)) else (math.nan, 0)
        lines.setdefault(label, []).append((x, float(mean), float(half), len(members)))
    return {label: sorted(lines[label], key=lambda p: _order(p[0]))
            for label in sorted(lines, key=lambda label: (_rank(label, series), label))}


def _rank(label: str, series: str | None) -> int:
    """Legend position: methods in their fixed order; other series alphabetically."""
    if series is not None:
        return 0
    keys = {pretty(k): k for k in METHOD_COLORS}
    return method_rank(keys.get(label, label))


def plot_sweep(results, out_file=None, key: str = "cluster.workers", metric: str = "loss",
               series: str | None = None, target: float | None = None, title: str | None = None,
               confidence: float = 0.95):
    """Draw ``sweep_points``: x = the swept key, one line (with error bars) per series."""
    runs = load_runs(results)
    column = metric_column(runs[0].history, metric)
    lines = sweep_points(runs, key, metric, series, target, confidence)
    xs = [p[0] for points in lines.values() for p in points]
    numeric = all(isinstance(x, (int, float)) for x in xs)
    seeds = max(p[3] for points in lines.values() for p in points)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    spec_by_label = {_series_label(spec_of(r), series): spec_of(r) for r in runs}
    section, _, name = key.partition(".")
    for i, (label, points) in enumerate(lines.items()):
        spec = spec_by_label[label]
        style = dict(color=color_for(spec) if series is None else OKABE_ITO[i % len(OKABE_ITO)],
                     marker=marker_for(spec) if series is None else "o", lw=1.6, label=label)
        x = [p[0] for p in points] if numeric else [format_value(section, name, p[0])
                                                    for p in points]
        if seeds > 1:
            ax.errorbar(x, [p[1] for p in points], yerr=[p[2] for p in points], capsize=3,
                        **style)
        else:
            ax.plot(x, [p[1] for p in points], **style)
    if numeric:
        values = sorted(set(xs))
        if min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log", base=2 if all(_power_of_two(x) for x in xs) else 10)
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(values, [format_value(section, name, x) for x in values])
    ax.set_xlabel(_key_label(key))
    if target is None:
        ax.set_ylabel(f"final {metric_label(column)}")
    else:
        ax.set_ylabel(f"simulated time to {target_description(runs, metric, target)} (s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False,
              title=None if series is None else _key_label(series), title_fontsize=8)
    heading = title or f"{metric_label(column).capitalize()} against {_key_label(key)}\n" \
                       f"{describe([spec_of(r) for r in runs])}"
    if seeds > 1:
        heading += f"\nmean over {seeds} seeds, {confidence:.0%} t-interval error bars"
    ax.set_title(wrap(heading, 80), fontsize=10)
    fig.tight_layout()
    return save(fig, out_file, results)


_KEY_LABELS = {"cluster.workers": "workers N", "cluster.batch_size": "batch size per worker",
               "network.bandwidth": "link bandwidth", "method.tie": "MaVo tie rule",
               "method.zero_sign": "sign(0) rule", "method.lr": "learning rate"}


def _key_label(key: str) -> str:
    return _KEY_LABELS.get(key, key)


def _series_label(spec: dict, series: str | None) -> str:
    if series is None:
        return pretty(method_key(spec))
    section, _, name = series.partition(".")
    return format_value(section, name, value_at(spec, series))


def _hashable(x):
    return tuple(x) if isinstance(x, list) else x


def _order(x):
    return (0, float(x), "") if isinstance(x, (int, float)) else (1, 0.0, str(x))


def _power_of_two(x) -> bool:
    return float(x).is_integer() and x > 0 and (int(x) & (int(x) - 1)) == 0

