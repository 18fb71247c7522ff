"""D-Lion's speed-up over G-AdamW across link bandwidth and number of workers.

A cell holds baseline time / method time to the same target (> 1: D-Lion is faster): the runs'
own run.target, or a target given with ``target``. Without one there is no fair time to compare
(runs of different lengths, or one that has long converged), so the figure is refused, as the
bandwidth figure does.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from plots.bandwidth import BANDWIDTH
from plots.data import (PlotError, group_runs, load_runs, spec_of, target_description,
                        time_to_target, value_at)
from plots.figure import bandwidth_text, plt, save, wrap
from plots.style import describe, method_key, pretty, setting_differences

WORKERS = "cluster.workers"

#: ColorBrewer's purple-orange: diverging and safe for the common colour-vision deficiencies.
CMAP = "PuOr"


def speedup_table(results, method: str | None = None, baseline: str = "gadamw",
                  metric: str | None = None, target: float | None = None):
    """(bandwidths [bits/s], workers, ratio [len(workers) x len(bandwidths)], the target).

    ratio = mean baseline time / mean method time to the target over seeds; NaN where a cell
    lacks one of the two, or where some seed never reached the target. ``method`` defaults to
    dlion/mavo (or dlion/avg when only that variant ran).
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
    if target is None:
        for run in runs:
            time_to_target(run)  # PlotError naming the run without a run.target
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
            ours = _mean_time(cell[method], metric, target)
            theirs = _mean_time(cell[baseline], metric, target)
            ratio[workers.index(n), bandwidths.index(b)] = theirs / ours
    what = target_description(runs, metric, target)
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
                        f"{baseline} that reached the target")
    finite = ratio[np.isfinite(ratio)]
    # symmetric in log around 1, so "no speed-up" is the neutral middle colour
    span = max(float(np.max(np.abs(np.log10(finite)))), math.log10(1.5))
    width = max(1.3 * len(bandwidths) + 3.2, 6.4)  # room for the title however few columns
    fig, ax = plt.subplots(figsize=(width, 0.75 * len(workers) + 2.4))
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
    ax.set_xticks(range(len(bandwidths)), [bandwidth_text(b) for b in bandwidths])
    ax.set_yticks(range(len(workers)), [str(int(n)) for n in workers])
    ax.set_xlabel("link bandwidth (each worker's, per direction)")
    ax.set_ylabel("workers (count)")
    bar = fig.colorbar(image, ax=ax)
    bar.ax.yaxis.set_major_locator(FixedLocator(colorbar_ticks(span)))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    bar.set_label(f"speed-up: {pretty(baseline)} time / {pretty(method)} time")
    heading = title or (f"Speed-up of {pretty(method)} over {pretty(baseline)} in time to "
                        f"{what}\n{describe([spec_of(r) for r in runs])}")
    fig.suptitle(wrap(heading, int(width * 11)), fontsize=10)
    fig.tight_layout()
    return save(fig, out_file, results)


def colorbar_ticks(span: float) -> list[float]:
    """Round speed-ups (0.5, 1, 2, 5, 10, ...) inside [10^-span, 10^span], always with 1."""
    ticks = [m * 10.0 ** e for e in range(-4, 5) for m in (1, 2, 5)]
    inside = [t for t in ticks if 10 ** -span <= t * (1 + 1e-9) and t <= 10 ** span * (1 + 1e-9)]
    if len(inside) > 9:  # a wide range: the powers of ten are enough
        inside = [t for t in inside if math.log10(t).is_integer()]
    return inside


def _mean_time(runs, metric, target) -> float:
    """Mean over seeds of the seconds to the target (NaN when some seed missed it)."""
    return float(np.mean([time_to_target(r, metric, target) for r in runs]))
