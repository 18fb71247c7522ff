"""Metric curves: against step, simulated time and cumulative bits sent; mean over seeds.

Runs that differ only in ``run.seed`` form one line: the mean over seeds with a Student-t
confidence band. On the time and bits axes the seeds' x values differ, so each seed's curve is
interpolated (linearly in log x, as drawn) onto the x values common to all of them.
"""
from __future__ import annotations

import numpy as np

from plots.data import PlotError, group_runs, load_runs, metric_column, spec_of, t_interval
from plots.figure import plt, save
from plots.style import color_for, describe, metric_label, run_label

X_AXES = {
    "step": ("step", "step"),
    "time": ("time_s", "simulated wall-clock time (s)"),
    "bits": (None, "bits sent per worker (up + down, cumulative)"),
}

DASHES = ("-", "--", ":", "-.")

#: Most x values kept per line on the time and bits axes (beyond that, a log-spaced grid).
MAX_GRID = 1000


def x_values(history: dict, axis: str) -> np.ndarray:
    """The x values of ``axis`` ('step', 'time' [s] or 'bits' [bits per worker]) per step."""
    if axis == "bits":
        return history["bits_up"] + history["bits_down"]
    return history[X_AXES[axis][0]]


def mean_curve(runs, column: str, axis: str, confidence: float = 0.95):
    """(x, mean, half-width) of ``column`` over the runs (seeds) on a common x grid.

    Step axis: the steps where every run has a value. Time and bits axes: the x values of all
    runs inside the range they share (x > 0, for the log axis), each run interpolated linearly
    in log x. One run gives its own points and a zero half-width.
    """
    curves = []
    for run in runs:
        x, y = x_values(run.history, axis), run.history[column]
        keep = np.isfinite(x) & np.isfinite(y)
        if axis != "step":
            keep &= x > 0  # log axes; the first point at 0 bits or 0 s has no place there
        curves.append((x[keep], y[keep]))
    if len(curves) == 1:
        x, y = curves[0]
        return x, y, np.zeros_like(y)
    if axis == "step":
        grid = curves[0][0]
        for x, _ in curves[1:]:
            grid = np.intersect1d(grid, x)
        ys = [y[np.searchsorted(x, grid)] for x, y in curves]
    else:
        low = max(x.min() for x, _ in curves if x.size)
        high = min(x.max() for x, _ in curves if x.size)
        grid = np.unique(np.concatenate([x for x, _ in curves]))
        grid = grid[(grid >= low) & (grid <= high)]
        if grid.size > MAX_GRID:
            grid = np.geomspace(low, high, MAX_GRID)
        ys = [np.interp(np.log(grid), np.log(x), y) for x, y in curves]
    if grid.size == 0:
        return grid, grid, grid
    mean, half = t_interval(np.array(ys), confidence)
    return grid, mean, half


def plot_curves(results, out_file=None, metric: str = "train_loss",
                axes: tuple = ("step", "time", "bits"), title: str | None = None,
                confidence: float = 0.95):
    """One panel per x-axis in ``axes``, one line per run group; returns the matplotlib Figure.

    ``results``: Result objects or run/sweep directories. ``metric``: a history column
    (``train_loss``, or an ``eval_*`` column, drawn at its evaluation steps; ``loss`` means
    ``eval_loss``). Runs differing only in their seed are drawn as their mean with a
    ``confidence`` t-interval band. Writes PNG or SVG to ``out_file`` when given.
    """
    runs = load_runs(results)
    for axis in axes:
        if axis not in X_AXES:
            raise PlotError(f"x axis {axis!r} is unknown; available: {', '.join(X_AXES)}")
    column = metric_column(runs[0].history, metric)
    groups = group_runs(runs)
    specs = [g.spec for g in groups]
    seeds = max(len(g.runs) for g in groups)
    fig, panels = plt.subplots(1, len(axes), figsize=(4.6 * len(axes), 3.8), squeeze=False)
    # lines of the same method (other workers, batch size, ...) differ in their dash pattern
    styles, seen = [], {}
    for group in groups:
        styles.append(DASHES[seen.get(group.key, 0) % len(DASHES)])
        seen[group.key] = seen.get(group.key, 0) + 1
    for ax, axis in zip(panels[0], axes):
        for group, style in zip(groups, styles):
            x, mean, half = mean_curve(group.runs, column, axis, confidence)
            color = color_for(group.spec)
            ax.plot(x, mean, color=color, ls=style, label=run_label(group.spec, specs), lw=1.6)
            if len(group.runs) > 1:
                ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.2, lw=0)
        ax.set_xlabel(X_AXES[axis][1])
        ax.set_ylabel(metric_label(column))
        if axis != "step":
            ax.set_xscale("log")
        ax.set_yscale("log" if _spans_decades(runs, column) else "linear")
        ax.grid(True, which="major", alpha=0.3)
    heading = title or f"{metric_label(column).capitalize()}, {describe([spec_of(r) for r in runs])}"
    if seeds > 1:
        heading += f"\nmean over seeds (up to {seeds}) with a {confidence:.0%} t-interval band"
    fig.suptitle(heading, fontsize=11)
    if len(groups) <= 6:
        panels[0][0].legend(fontsize=8, frameon=False)
        fig.tight_layout()
    else:  # too many lines to share a panel with: a legend of its own below the panels
        columns = 3 if len(axes) > 1 else 1
        rows = -(-len(groups) // columns)
        fig.set_figheight(fig.get_figheight() + 0.17 * rows)
        fig.legend(*panels[0][0].get_legend_handles_labels(), loc="lower center", ncol=columns,
                   fontsize=7.5, frameon=False)
        fig.tight_layout(rect=(0, 0.17 * rows / fig.get_figheight() + 0.01, 1, 1))
    return save(fig, out_file)


def _spans_decades(runs, column) -> bool:
    """Whether the values are positive and span more than a factor 20 (then a log y axis)."""
    values = np.concatenate([r.history[column] for r in runs])
    values = values[np.isfinite(values)]
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > 20
