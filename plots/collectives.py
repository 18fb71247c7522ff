"""The collectives study: one step's communication time against the number of workers, one
line per method and collective.

Reads the runs of the ``collectives`` study (``dlion-sim sweep collectives -o DIR``): each run
has a few steps with no compute; a step's time is the mean of the steps after the first (whose
TCP connections are still in slow start). Returns the numbers as the lines of a Markdown table.
Drawn by ``dlion-sim plot DIR --kind collectives`` (make figures runs it).
"""
from __future__ import annotations

from collections import defaultdict

import matplotlib.ticker
import numpy as np

from plots.data import load_runs, spec_of
from plots.figure import plt, save, unit_ticks
from plots.style import color_for, method_key, method_rank, pretty

#: how each collective is drawn and named
STYLES = {"ps": ("-", "s", "parameter server"), "alltoall": ("-", "D", "sharded (all-to-all)"),
          "allgather": ("--", "v", "all-gather"), "ring": ("-", "o", "ring, pipelined"),
          "ring-textbook": (":", "o", "ring, textbook (chunk 0)"),
          "tree": ("--", "^", "double binary tree"),
          "halving_doubling": ("-.", "x", "halving-doubling"),
          "hierarchical": ("-", "P", "hierarchical (GPU nodes)")}


def _name(spec: dict) -> str:
    collective = spec["network"]["collective"]
    if collective == "ring" and spec["network"]["chunk"] == 0:
        return "ring-textbook"
    return collective


def step_times(directory) -> dict[tuple[str, str], dict[int, float]]:
    """(method key, collective) -> workers -> seconds of one step after the first."""
    out: dict = defaultdict(dict)
    for run in load_runs(directory):
        spec = spec_of(run)
        t = np.asarray(run.history["time_s"], dtype=np.float64)
        steady = np.diff(t) if t.size > 1 else t
        out[method_key(spec), _name(spec)][spec["cluster"]["workers"]] = float(steady.mean())
    return dict(sorted(out.items(), key=lambda item: (method_rank(item[0][0]),
                                                      list(STYLES).index(item[0][1]))))


def plot_collectives(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines of a
    Markdown table."""
    lines_of = step_times(directory)
    spec = spec_of(load_runs(directory)[0])
    sizes = sorted({n for points in lines_of.values() for n in points})
    lines = ["| method | collective | " + " | ".join(f"N = {n}" for n in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    fig, ax = plt.subplots(figsize=(9.5, 5.2))
    for (key, collective), points in lines_of.items():
        style, marker, words = STYLES[collective]
        n = sorted(points)
        run_spec = {"method": {"name": key.split("/")[0], "aggregate": key.split("/")[-1]}}
        ax.plot(n, [points[k] for k in n], ls=style, marker=marker, ms=4.5, lw=1.6,
                color=color_for(run_spec), label=f"{pretty(key)}, {words}")
        lines.append(f"| {pretty(key)} | {words} | " +
                     " | ".join(f"{points[k]:.3g}" if k in points else "" for k in sizes) + " |")
    ax.set(xscale="log", yscale="log", xlabel="workers (log scale)",
           ylabel="communication time per step (s, log scale)")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    unit_ticks(ax.yaxis, "time")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    net = spec["network"]
    ax.set_title(f"{spec['cluster']['model_params'] / 1e6:.0f}M parameters (1 bit or 32 bits "
                 f"each), {net['bandwidth'] / 1e9:g} Gb/s per worker, {net['transport']}, "
                 "no compute", fontsize=10)
    fig.tight_layout()
    save(fig, out_file, directory)
    return lines
