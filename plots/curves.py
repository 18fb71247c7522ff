"""Metric curves: against step, simulated time and cumulative bits sent; mean over seeds.

Runs that differ only in ``run.seed`` form one line: the mean over seeds with a Student-t
confidence band (only where seeds vary, and never beyond the values the metric can take). On
the time and bits axes the seeds' x values differ, so each seed's curve is interpolated
(linearly in log x, as drawn) onto the x values common to all of them.

By default the figure shows the evaluation loss where the runs evaluated, else the training
loss smoothed by a trailing moving average (a minibatch loss is too noisy to read raw).
"""
from __future__ import annotations

import numpy as np

from plots.data import PlotError, group_runs, load_runs, metric_column, spec_of, t_interval
from plots.figure import plt, save, wrap
from plots.style import color_for, describe, metric_label, run_label

X_AXES = {
    "step": ("step", "step"),
    "time": ("time_s", "simulated wall-clock time (s)"),
    "bits": (None, "bits sent per worker (up + down, cumulative)"),
}

DASHES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (9, 3)))

#: Most x values kept per line on the time and bits axes (beyond that, a log-spaced grid).
MAX_GRID = 1000

#: The default training-loss curve averages this fraction of the run's steps (trailing).
SMOOTH_FRACTION = 0.02


def default_column(runs) -> str:
    """'eval_loss' when every run evaluated its loss at least twice, else 'train_loss'."""
    def evaluated(run):
        column = run.history.get("eval_loss")
        return column is not None and np.count_nonzero(np.isfinite(column)) >= 2

    return "eval_loss" if all(evaluated(r) for r in runs) else "train_loss"


def smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` steps (fewer at the start); NaNs are skipped."""
    if window <= 1:
        return values
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)

    def lagged(a):  # a shifted ``window`` steps later, zeros before the start
        return np.concatenate([np.zeros(window), a])[:a.size]

    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sums - lagged(sums)) / (counts - lagged(counts))
    return np.where(finite, out, np.nan)


def x_values(history: dict, axis: str) -> np.ndarray:
    """The x values of ``axis`` ('step', 'time' [s] or 'bits' [bits per worker]) per step."""
    if axis == "bits":
        return history["bits_up"] + history["bits_down"]
    return history[X_AXES[axis][0]]


def mean_curve(runs, column: str, axis: str, confidence: float = 0.95, window: int = 1):
    """(x, mean, half-width) of ``column`` over the runs (seeds) on a common x grid.

    Step axis: the steps where every run has a value. Time and bits axes: the x values of all
    runs inside the range they share (x > 0, for the log axis), each run interpolated linearly
    in log x. One run gives its own points and a zero half-width. ``window`` > 1 smooths each
    run's values first (``smoothed``).
    """
    curves = []
    for run in runs:
        x, y = x_values(run.history, axis), smoothed(run.history[column], window)
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


def plot_curves(results, out_file=None, metric: str | None = None,
                axes: tuple = ("step", "time", "bits"), title: str | None = None,
                confidence: float = 0.95):
    """One panel per x-axis in ``axes``, one line per run group; returns the matplotlib Figure.

    ``results``: Result objects or run/sweep directories. ``metric``: a history column
    (``train_loss``, or an ``eval_*`` column, drawn at its evaluation steps; ``loss`` means
    ``eval_loss``); default: the evaluation loss, else the smoothed training loss (see the
    module docstring). Runs differing only in their seed are drawn as their mean with a
    ``confidence`` t-interval band. Writes PNG or SVG to ``out_file`` when given.
    """
    runs = load_runs(results)
    for axis in axes:
        if axis not in X_AXES:
            raise PlotError(f"x axis {axis!r} is unknown; available: {', '.join(X_AXES)}")
    column = default_column(runs) if metric is None else metric_column(runs[0].history, metric)
    window = 1
    if metric is None and column == "train_loss":
        window = max(1, round(SMOOTH_FRACTION * min(len(r.history["step"]) for r in runs)))
    label = (f"training loss (moving average of {window} steps)" if window > 1
             else metric_label(column))
    groups = group_runs(runs)
    specs = [g.spec for g in groups]
    seeds = max(len(g.runs) for g in groups)
    low, high = _value_range(runs, column)
    log_y = _spans_decades(runs, column)
    fig, panels = plt.subplots(1, len(axes), figsize=(4.6 * len(axes), 3.8), squeeze=False)
    # lines of the same method (other workers, batch size, ...) differ in their dash pattern
    styles, seen = [], {}
    for group in groups:
        styles.append(DASHES[seen.get(group.key, 0) % len(DASHES)])
        seen[group.key] = seen.get(group.key, 0) + 1
    for ax, axis in zip(panels[0], axes):
        for group, style in zip(groups, styles):
            x, mean, half = mean_curve(group.runs, column, axis, confidence, window)
            color = color_for(group.spec)
            ax.plot(x, mean, color=color, ls=style, label=run_label(group.spec, specs), lw=1.6)
            if len(group.runs) > 1 and np.any(half > 0):
                ax.fill_between(x, np.clip(mean - half, low, high), np.clip(mean + half, low, high),
                                color=color, alpha=0.2, lw=0)
        ax.set_xlabel(X_AXES[axis][1])
        ax.set_ylabel(label)
        if axis != "step":
            ax.set_xscale("log")
        ax.set_yscale("log" if log_y else "linear")
        ax.grid(True, which="major", alpha=0.3)
    heading = title or f"{metric_label(column).capitalize()}, {describe([spec_of(r) for r in runs])}"
    if seeds > 1:
        heading += f"\nmean over seeds (up to {seeds}) with a {confidence:.0%} t-interval band"
    fig.suptitle(wrap(heading, int(fig.get_figwidth() * 10)), fontsize=11)
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
    return save(fig, out_file, results)


def _value_range(runs, column) -> tuple[float, float]:
    """Where a band may reach: not below 0 for a metric never negative (a loss), not above 1
    for a fraction (an accuracy); on a log axis, not below the smallest value drawn."""
    values = np.concatenate([r.history[column] for r in runs])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return -np.inf, np.inf
    low = -np.inf
    if values.min() >= 0:
        low = values.min() if _spans_decades(runs, column) else 0.0
    high = 1.0 if "acc" in column and values.max() <= 1 else np.inf
    return low, high


def _spans_decades(runs, column) -> bool:
    """Whether the values are positive and span more than a factor 20 (then a log y axis)."""
    values = np.concatenate([r.history[column] for r in runs])
    values = values[np.isfinite(values)]
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > 20
