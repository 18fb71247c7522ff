"""D-Lion's speed-up over G-AdamW across link bandwidth and number of workers.

A cell holds baseline time / method time (> 1: D-Lion is faster). The time is the time to a
target when there is one, else the simulated time of the run (then both runs must have taken
the same number of steps, or the ratio would compare different amounts of training).
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter

from plots.bandwidth import BANDWIDTH
from plots.data import (PlotError, group_runs, load_runs, spec_of, target_description,
                        time_to_target, value_at)
from plots.figure import gbps, plt, save
from plots.style import describe, method_key, pretty, setting_differences

WORKERS = "cluster.workers"

#: ColorBrewer's purple-orange: diverging and safe for the common colour-vision deficiencies.
CMAP = "PuOr"


def speedup_table(results, method: str | None = None, baseline: str = "gadamw",
                  metric: str | None = None, target: float | None = None):
    """(bandwidths [bits/s], workers, ratio [len(workers) x len(bandwidths)], what was timed).

    ratio = mean baseline time / mean method time over seeds; NaN where a cell lacks one of the
    two, or where some seed never reached the target. ``method`` defaults to dlion/mavo (or
    dlion/avg when only that variant ran).
    """
    runs = load_runs(results)
    by_method: dict[str, list] = {}
    for run in runs:
        by_method.setdefault(method_key(spec_of(run)), []).append(run)
    if method is None:
        method = "dlion/mavo" if "dlion/mavo" in by_method else "dlion/avg"
    for key in (method, baseline):
        if key not in by_method:
            raise PlotError(f"no runs of method {key!r}; methods in these runs: "
                            f"{', '.join(sorted(by_method))}")
    settings = group_runs(by_method[method] + by_method[baseline],
                          ignore=("run.seed", BANDWIDTH, WORKERS))
    if len(settings) > 2:
        raise PlotError("the runs differ in more than method, bandwidth, workers and seed ("
                        + "; ".join(", ".join(setting_differences(g.spec, [s.spec for s in settings]))
                                    for g in settings) + "); pass one setting's runs")
    timed = _timing(runs, metric, target)
    cells: dict[tuple, dict[str, list[float]]] = {}
    for key in (method, baseline):
        for run in by_method[key]:
            spec = spec_of(run)
            cell = cells.setdefault((value_at(spec, BANDWIDTH), value_at(spec, WORKERS)), {})
            cell.setdefault(key, []).append(run)
    bandwidths = sorted({b for b, _ in cells})
    workers = sorted({n for _, n in cells})
    ratio = np.full((len(workers), len(bandwidths)), np.nan)
    for (b, n), cell in cells.items():
        if method in cell and baseline in cell:
            if timed == "simulated time":
                _same_steps(cell[method] + cell[baseline], b, n)
            ours = _mean_time(cell[method], metric, target, timed)
            theirs = _mean_time(cell[baseline], metric, target, timed)
            ratio[workers.index(n), bandwidths.index(b)] = theirs / ours
    what = target_description(runs, metric, target) if timed != "simulated time" else timed
    return np.array(bandwidths), np.array(workers), ratio, (method, baseline, what)


def plot_heatmap(results, out_file=None, method: str | None = None, baseline: str = "gadamw",
                 metric: str | None = None, target: float | None = None,
                 title: str | None = None):
    """Speed-up of ``method`` over ``baseline`` per (bandwidth, workers) cell, annotated.

    Returns the Figure; writes PNG/SVG/PDF to ``out_file`` when given.
    """
    runs = load_runs(results)
    bandwidths, workers, ratio, (method, baseline, what) = speedup_table(
        runs, method, baseline, metric, target)
    if not np.isfinite(ratio).any():
        raise PlotError(f"no (bandwidth, workers) cell has finished runs of both {method} and "
                        f"{baseline}" + (" that reached the target" if what != "simulated time"
                                         else ""))
    finite = ratio[np.isfinite(ratio)]
    # symmetric in log around 1, so "no speed-up" is the neutral middle colour
    span = max(float(np.max(np.abs(np.log10(finite)))), math.log10(1.5))
    fig, ax = plt.subplots(figsize=(1.3 * len(bandwidths) + 3.2, 0.75 * len(workers) + 2.2))
    image = ax.imshow(np.ma.masked_invalid(ratio), cmap=CMAP, origin="lower", aspect="auto",
                      norm=LogNorm(10 ** -span, 10 ** span))
    for i in range(len(workers)):
        for j in range(len(bandwidths)):
            value = ratio[i, j]
            if math.isfinite(value):
                strong = abs(math.log10(value)) > 0.6 * span  # dark cells get white text
                text, color = f"{value:.3g}×", "white" if strong else "black"
            else:
                text, color = "n/a", "dimgray"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(len(bandwidths)), [gbps(b) for b in bandwidths])
    ax.set_yticks(range(len(workers)), [str(int(n)) for n in workers])
    ax.set_xlabel("link bandwidth (Gb/s)")
    ax.set_ylabel("workers (count)")
    bar = fig.colorbar(image, ax=ax)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    bar.set_label(f"speed-up (×): {pretty(baseline)} time / {pretty(method)} time")
    heading = title or (f"Speed-up of {pretty(method)} over {pretty(baseline)} "
                        f"({'time to ' + what if what != 'simulated time' else what})\n"
                        f"{describe([spec_of(r) for r in runs])}")
    ax.set_title(heading, fontsize=10)
    fig.tight_layout()
    return save(fig, out_file)


def _timing(runs, metric, target) -> str:
    """What the cells time: a given target, the runs' own targets, or the simulated time."""
    if target is not None:
        return "given target"
    if all(r.summary.get("target") for r in runs):
        return "run target"
    return "simulated time"


def _mean_time(runs, metric, target, timed) -> float:
    """Mean over seeds of the timed seconds (NaN when some seed missed the target)."""
    if timed == "simulated time":
        return float(np.mean([r.summary["sim_time_s"] for r in runs]))
    return float(np.mean([time_to_target(r, metric, target) for r in runs]))


def _same_steps(runs, bandwidth, workers) -> None:
    steps = {r.summary["steps"] for r in runs}
    if len(steps) > 1:
        raise PlotError(f"the runs at {gbps(bandwidth)} Gb/s, {workers} workers took different "
                        f"numbers of steps ({sorted(steps)}), so their simulated times are not "
                        "comparable; give a target (--target V) or runs of equal length")
