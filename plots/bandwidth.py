"""Time-to-target against link bandwidth, one line per method, with the crossovers marked.

Where two methods' lines cross is where the cheaper wire stops paying (or starts to): below
the crossover bandwidth one method reaches the target first, above it the other. Lines are
straight between measured bandwidths on the log-log axes, so a crossover is where those
segments intersect.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from plots.data import (PlotError, group_runs, load_runs, spec_of, t_interval,
                        target_description, time_to_target, value_at, without_section)
from plots.figure import bandwidth_text, plt, save, unit_ticks, wrap
from plots.style import color_for, describe, marker_for, run_label, setting_differences

BANDWIDTH = "network.bandwidth"


@dataclass
class Series:
    """One method's time-to-target over bandwidth: mean and t-interval half-width over seeds."""

    label: str
    spec: dict               # a run's spec without bandwidth and seed
    bandwidth: np.ndarray    # bits/s, increasing
    time: np.ndarray         # simulated s; NaN where some seed never reached the target
    half: np.ndarray         # s


def bandwidth_series(results, metric: str | None = None, target: float | None = None,
                     confidence: float = 0.95) -> list[Series]:
    """Time-to-target per bandwidth for each group of runs that differ only in bandwidth/seed.

    The time is the run's own target time (run.target) or, with ``target``, the first simulated
    time at which ``metric`` reached it.
    """
    runs = load_runs(results)
    for run in runs:
        if isinstance(value_at(spec_of(run), BANDWIDTH), list):
            raise PlotError("network.bandwidth is a per-worker list in some runs; the bandwidth "
                            "figure needs one link bandwidth per run")
    lines = group_runs(runs, ignore=("run.seed", BANDWIDTH))
    series = []
    for line in lines:
        points = group_runs(line.runs, ignore=("run.seed",))
        bandwidth = np.array([value_at(spec_of(p.runs[0]), BANDWIDTH) for p in points])
        stats = []
        for p in points:
            times = [time_to_target(r, metric, target) for r in p.runs]
            stats.append(t_interval(times, confidence) if all(map(math.isfinite, times))
                         else (math.nan, math.nan))
        order = np.argsort(bandwidth)
        mean, half = np.array(stats, dtype=np.float64).reshape(-1, 2)[order].T
        series.append(Series("", line.spec, bandwidth[order], mean, half))
    for s in series:  # labels name what differs from the other lines of the same setting
        s.label = run_label(s.spec, [o.spec for o in series if _setting(o) == _setting(s)])
    return series


def _setting(s: Series) -> str:
    """Everything but the method: series with the same setting share a panel."""
    return json.dumps(without_section(s.spec, "method"), sort_keys=True, default=list)


def crossovers(a: Series, b: Series) -> list[tuple[float, float]]:
    """(bandwidth [bits/s], time [s]) where the log-log lines of ``a`` and ``b`` cross.

    Both lines are evaluated on the union of their bandwidths inside the range both cover
    (linear in log-log coordinates, as drawn); a crossover is where their difference changes
    sign. A touch without a change of sign is not a crossover.
    """
    def usable(s):
        keep = np.isfinite(s.time) & (s.time > 0)
        return np.log(s.bandwidth[keep]), np.log(s.time[keep])

    (ua, ya), (ub, yb) = usable(a), usable(b)
    if ua.size < 1 or ub.size < 1:
        return []
    low, high = max(ua.min(), ub.min()), min(ua.max(), ub.max())
    grid = np.union1d(ua, ub)
    grid = grid[(grid >= low) & (grid <= high)]
    if grid.size < 2:
        return []
    la, lb = np.interp(grid, ua, ya), np.interp(grid, ub, yb)
    diff = la - lb
    found = []
    last = None  # index of the last grid point where the lines differ
    for i, d in enumerate(diff):
        if d == 0:
            continue
        if last is not None and np.sign(d) != np.sign(diff[last]):
            if i == last + 1:
                f = diff[last] / (diff[last] - d)
                u = grid[last] + f * (grid[i] - grid[last])
                y = la[last] + f * (la[i] - la[last])
            else:  # the lines meet on the grid points between and part afterwards
                u, y = grid[last + 1], la[last + 1]
            found.append((float(np.exp(u)), float(np.exp(y))))
        last = i
    return found


def plot_bandwidth(results, out_file=None, metric: str | None = None,
                   target: float | None = None, title: str | None = None,
                   confidence: float = 0.95):
    """Time-to-target against link bandwidth (log-log), one line per method, crossovers marked.

    Runs that differ in more than method, bandwidth and seed (e.g. the number of workers) are
    drawn in one panel per setting, and crossovers are sought only within a panel. Returns the
    Figure; writes PNG/SVG/PDF to ``out_file`` when given.
    """
    runs = load_runs(results)
    series = bandwidth_series(runs, metric, target, confidence)
    if not any(np.isfinite(s.time).any() for s in series):
        raise PlotError(f"no run reached the target ({target_description(runs, metric, target)});"
                        " pass an easier --target")
    panels: dict[str, list[Series]] = {}
    for s in series:
        panels.setdefault(_setting(s), []).append(s)
    settings = [p[0].spec for p in panels.values()]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 4.6 * rows), squeeze=False,
                             sharey=True)
    seeds = max(len(p.runs) for p in group_runs(runs))
    for ax, lines in zip(axes.flat, panels.values()):
        _draw_panel(ax, lines, runs, metric, target, error_bars=seeds > 1)
        if len(panels) > 1:
            ax.set_title(", ".join(setting_differences(lines[0].spec, settings)), fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    heading = title or (f"Time to target against bandwidth\n"
                        f"{describe([spec_of(r) for r in runs])}")
    if seeds > 1:
        heading += f"\nmean over seeds (up to {seeds}), {confidence:.0%} t-interval error bars"
    fig.suptitle(wrap(heading, int(fig.get_figwidth() * 11)), fontsize=10)
    fig.tight_layout()
    return save(fig, out_file, results)


def _draw_panel(ax, lines: list[Series], runs, metric, target, error_bars: bool) -> None:
    """The lines of one setting, their crossovers numbered, and a legend of both.

    Error bars only when seeds vary: with one seed there is no spread to show.
    """
    for s in lines:
        style = dict(color=color_for(s.spec), marker=marker_for(s.spec), ms=6, lw=1.6,
                     label=s.label)
        if error_bars:
            ax.errorbar(s.bandwidth, s.time, yerr=np.where(s.half > 0, s.half, np.nan),
                        capsize=3, **style)
        else:
            ax.plot(s.bandwidth, s.time, **style)
    number = 0
    for i, a in enumerate(lines):
        for b in lines[i + 1:]:
            for bw, t in crossovers(a, b):
                number += 1
                ax.plot([bw], [t], marker="o", ms=13, mfc="none", mec="black", mew=1.5,
                        linestyle="none", gid="crossover",
                        label=f"{number}: {a.label} = {b.label} at {bandwidth_text(bw)}")
                ax.annotate(str(number), (bw, t), textcoords="offset points", xytext=(7, 7),
                            fontsize=9, fontweight="bold")
    ax.set_xscale("log")
    ax.set_yscale("log")
    unit_ticks(ax.xaxis, "bandwidth")
    ax.set_xlabel("link bandwidth (each worker's, per direction)")
    ax.set_ylabel(f"simulated time to {target_description(runs, metric, target)} (s)")
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    names = {s.label for s in lines}  # methods first, then the numbered crossovers
    order = sorted(range(len(labels)), key=lambda i: (labels[i] not in names, i))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7.5,
              frameon=False)
