"""Accuracy per bit: a final metric (or time-to-target) against bits per parameter per step.

One point per method (runs differing only in their seed are one point: the mean, with t-interval
error bars where seeds vary), on a log x axis, each point labelled beside it (``plots.labels``:
labels never overlap or leave the axes; points at one place share a label): the style of
Figure 4 of the D-Lion paper. The bits are the whole run's average (``bits = "total"``) or the
steady state's, after each method's own warm-up (``"steady"``: DGC's sparsity warm-up, 1-bit
Adam's full-precision phase).
"""
from __future__ import annotations

import math

import numpy as np

from plots.data import (PlotError, final_value, group_runs, load_runs, metric_column, spec_of,
                        t_interval, target_description, time_to_target)
from plots.figure import plt, save, wrap
from plots.labels import place
from plots.style import color_for, describe, marker_for, metric_label, run_label


BITS = {"total": "whole run", "steady": "steady state, after each method's warm-up"}


def bits_per_param(run, bits: str = "total") -> float:
    """Bits per parameter per step, up + down, per worker (from the run's summary), over the
    whole run or the steady state (NaN when the run ended inside its warm-up)."""
    if bits not in BITS:
        raise PlotError(f"bits = {bits!r}: choose one of {', '.join(BITS)}")
    key = "bits_per_param_per_step" if bits == "total" else "steady_bits_per_param_per_step"
    if key not in run.summary:
        raise PlotError(f"a run's summary has no {key} (made before it was recorded): re-run it")
    value = run.summary[key]["total"]
    return math.nan if value is None else float(value)


def tradeoff_points(results, metric: str = "loss", target: float | None = None,
                    confidence: float = 0.95, bits: str = "total") -> list[dict]:
    """One dict per run group: label, spec, bits (mean, half-width) and y (mean, half-width).

    y is the final value of ``metric``, or with ``target`` the simulated seconds until the
    metric reached it (NaN for a group in which any seed never reached it).
    """
    runs = load_runs(results)
    groups = group_runs(runs)
    specs = [g.spec for g in groups]
    points = []
    for group in groups:
        if target is None:
            ys = [final_value(r, metric) for r in group.runs]
        else:
            ys = [time_to_target(r, metric, target) for r in group.runs]
        xs = [bits_per_param(r, bits) for r in group.runs]
        x = t_interval(xs, confidence) if all(math.isfinite(v) for v in xs) else (math.nan, 0.0)
        y = t_interval(ys, confidence) if all(math.isfinite(v) for v in ys) else (math.nan, 0.0)
        points.append({"label": run_label(group.spec, specs), "spec": group.spec,
                       "bits": tuple(map(float, x)), "y": tuple(map(float, y)),
                       "seeds": len(group.runs)})
    return points


def plot_tradeoff(results, out_file=None, metric: str = "loss", target: float | None = None,
                  title: str | None = None, confidence: float = 0.95, bits: str = "total"):
    """The final ``metric`` (or, with ``target``, time to reach it) against bits/param/step.

    ``metric``: a history column or evaluation metric (``loss`` = ``eval_loss``); ``bits``:
    "total" (the whole run's average) or "steady" (after each method's warm-up). Returns the
    Figure; writes PNG/SVG/PDF to ``out_file`` when given.
    """
    runs = load_runs(results)
    column = metric_column(runs[0].history, metric)
    points = tradeoff_points(runs, metric, target, confidence, bits)
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    missed, unsteady, drawn = [], [], []
    for p in points:
        if not math.isfinite(p["bits"][0]):
            unsteady.append(p["label"])
            continue
        if not math.isfinite(p["y"][0]):
            missed.append(p["label"])
            continue
        ax.errorbar(p["bits"][0], p["y"][0], yerr=p["y"][1] or None, xerr=p["bits"][1] or None,
                    marker=marker_for(p["spec"]), linestyle="none", color=color_for(p["spec"]),
                    ms=8, capsize=3,
                    label=p["label"])
        drawn.append(p)
    ax.set_xscale("log")
    ax.set_xlabel("communication (bits per parameter per step, up + down, per worker;\n"
                  f"{BITS[bits]})")
    seeds = max(p["seeds"] for p in points)
    if target is None:
        ax.set_ylabel(f"final {metric_label(column)}")
        what = f"Final {metric_label(column)}"
    else:
        ax.set_ylabel(f"simulated time to {target_description(runs, metric, target)} (s)")
        what = "Time to target"
    notes = [f"{why}: {', '.join(names)}" for why, names in
             (("never reached the target", missed), ("ended inside its warm-up", unsteady))
             if names]
    if notes:
        ax.text(0.01, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=8, va="bottom")
    _pad(ax, [p["bits"][0] for p in drawn], [p["y"][0] for p in drawn])
    ax.grid(True, which="both", alpha=0.25)
    heading = title or f"{what} against communication\n{describe([spec_of(r) for r in runs])}"
    if seeds > 1:
        heading += f"\nmean over seeds (up to {seeds}), {confidence:.0%} t-interval error bars"
    ax.set_title(wrap(heading, 90), fontsize=10)
    fig.tight_layout()
    if drawn:
        place(ax, [(p["bits"][0], p["y"][0]) for p in drawn], [p["label"] for p in drawn],
              [color_for(p["spec"]) for p in drawn])
    return save(fig, out_file, results)


def _pad(ax, xs, ys) -> None:
    """Room for the labels: to the right on the log x axis, and a margin above and below."""
    xs = np.asarray([x for x in xs if x > 0])
    if xs.size:
        ax.set_xlim(xs.min() / 2, xs.max() * 8)
    if len(ys):
        low, high = ax.get_ylim()
        margin = 0.06 * (high - low)
        ax.set_ylim(low - margin, high + margin)
