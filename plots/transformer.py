"""The transformer studies: held-out bits/char (gpt) or test accuracy (vit) against steps,
simulated time and bits sent.

Reads the runs of the ``gpt`` or ``vit`` study (``dlion-sim sweep gpt -o DIR``). Three panels:
the evaluation metric against the step, the simulated wall-clock time and the bits each worker
sent (messages sized as the model preset of the study), one line per method, with the issue's
target as a grey line. Prints, per method, the final metric, the simulated time, the bits per
parameter per step and the real (wall) seconds and steps per second of the run, as a Markdown
table, and draws the figure.
Drawn by ``dlion-sim plot DIR --kind transformer`` (make figures runs it).
"""
from __future__ import annotations

import matplotlib.ticker
import numpy as np

from plots.figure import plt, save
from plots.curves import X_AXES, mean_curve
from plots.data import group_runs, load_runs, spec_of
from plots.style import color_for, marker_for, method_key, method_rank, pretty

#: objective -> (history column, axis label, scale for display, the issue's target, its words)
METRICS = {
    "gpt": ("eval_bits_per_char", "held-out bits per character", 1.0, 2.0, "target 2.0"),
    "vit": ("eval_accuracy", "test accuracy (%)", 100.0, 85.0, "target 85%"),
}
TITLES = {
    "gpt": "Character-level GPT on the King James Bible",
    "vit": "Vision transformer on Fashion-MNIST",
}
MODEL_NAMES = {"gpt2-small": "GPT-2 small", "vit-b16": "ViT-B/16"}


def final(run, column: str) -> float:
    values = run.history[column]
    return float(values[np.isfinite(values)][-1])


def plot_transformer(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines of a
    Markdown table."""
    lines = []
    runs = load_runs(directory)
    spec = spec_of(runs[0])
    objective = spec["objective"]["name"]
    column, label, scale, target, target_words = METRICS[objective]
    groups = sorted(group_runs(runs), key=lambda g: method_rank(g.key))

    lines.append(f"| method | {label} | steps | simulated time (s) | bits/param/step (up + down) "
          f"| wall (s) | steps/s |")
    lines.append("|---|---|---|---|---|---|---|")
    for group in groups:
        run = group.runs[0]
        bits = run.summary["bits_per_param_per_step"]
        lines.append(f"| {pretty(group.key)} | {scale * final(run, column):.{1 if scale > 1 else 3}f} | "
              f"{run.summary['steps']} | {run.summary['sim_time_s']:.0f} | "
              f"{bits['up'] + bits['down']:.3g} | {run.summary['wall_s']:.0f} | "
              f"{run.summary['steps'] / run.summary['wall_s']:.1f} |")

    fig, panels = plt.subplots(1, 3, figsize=(13.5, 4.6), sharey=True)
    for ax, axis in zip(panels, ("step", "time", "bits")):
        for group in groups:
            x, mean, _ = mean_curve(group.runs, column, axis)
            ax.plot(x, scale * mean, color=color_for(group.spec), marker=marker_for(group.spec),
                    ms=3.5, lw=1.6, label=pretty(method_key(group.spec)))
        ax.axhline(target, color="grey", lw=0.9, ls=":", label=target_words)
        ax.set_xlabel(X_AXES[axis][1])
        if axis != "step":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
    panels[0].set_ylabel(label)
    finals = [scale * final(g.runs[0], column) for g in groups]
    if objective == "gpt":  # the first evaluations are far above the range that matters
        panels[0].set_ylim(min(finals + [target]) - 0.1, max(finals) + 0.9)
    else:
        panels[0].set_ylim(max(finals) - 15, max(finals + [target]) + 2)
    fig.legend(*panels[0].get_legend_handles_labels(), loc="lower center", ncol=7, fontsize=9,
               frameon=False)
    name = spec["cluster"]["model"]
    n = spec["cluster"]["workers"]
    virtual = runs[0].summary["model_params"]
    fig.suptitle(f"{TITLES[objective]}: {runs[0].summary['n_params'] / 1e3:.0f}k parameters, "
                 f"{n} workers, {spec['network']['bandwidth'] / 1e9:g} Gb/s; messages and "
                 f"compute sized as {MODEL_NAMES.get(name, name)} ({virtual / 1e6:.0f}M "
                 "parameters)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save(fig, out_file, directory)
    return lines

