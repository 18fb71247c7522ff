"""Byzantine workers: final test accuracy against the number of adversaries, per attack and N.

Reads the runs of the ``byzantine`` study (``dlion-sim sweep byzantine -o DIR``). One panel per
attack (columns) and number of workers (rows); one line per method and server rule, the mean
over seeds with a 95% t-interval band. Prints the numbers as a Markdown table and draws the
figure.
Drawn by ``dlion-sim plot DIR --kind byzantine`` (make figures runs it).
"""
from __future__ import annotations

from collections import defaultdict

from plots.figure import plt, save
import numpy as np

from plots.data import load_runs, spec_of, t_interval
from plots.style import color_for, method_key, method_rank, pretty

ATTACKS = {"flip": "flip: the negated message", "random": "random: noise in the wire format",
           "scale": "scale: -10x the gradient"}
RULE_STYLES = {"mean": "-", "median": "--", "krum": ":"}


def label(spec: dict) -> str:
    """'D-Lion (MaVo)', 'G-SGD, median', ..."""
    rule = spec["method"].get("aggregate")
    text = pretty(method_key(spec))
    return f"{text}, {'Multi-Krum' if rule == 'krum' else rule}" if rule in RULE_STYLES else text


def curves(directory):
    """(attack, workers) -> line label -> adversaries -> (final accuracies of the seeds), and a
    spec per label for its colour."""
    out = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    specs = {}
    for run in load_runs(directory):
        spec = spec_of(run)
        faults = spec["faults"]
        name = label(spec)
        specs[name] = spec
        accuracy = run.summary["final"].get("accuracy", np.nan)
        out[faults["attack"], spec["cluster"]["workers"]][name][faults["byzantine"]].append(
            accuracy if np.isfinite(accuracy) else 0.0)
    return out, specs


def plot_byzantine(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines
    of a Markdown table."""
    lines = []
    panels, specs = curves(directory)
    sizes = sorted({n for _, n in panels})
    order = sorted(specs, key=lambda name: (method_rank(method_key(specs[name])), name))
    fig, axes = plt.subplots(len(sizes), len(ATTACKS), figsize=(13, 3.6 * len(sizes)),
                             sharey=True, squeeze=False)
    lines.append("| attack | N | method | accuracy with 0, 1, ... adversaries |")
    lines.append("|---|---|---|---|")
    for row, n in enumerate(sizes):
        for col, attack in enumerate(ATTACKS):
            ax = axes[row, col]
            panel = panels.get((attack, n), {})
            for name in order:
                if name not in panel:
                    continue
                points = sorted(panel[name].items())
                count = [b for b, _ in points]
                mean, half = (np.array(v) for v in zip(*(t_interval(a) for _, a in points)))
                spec = specs[name]
                style = RULE_STYLES.get(spec["method"].get("aggregate"), "-")
                ax.plot(count, mean, ls=style, marker="o", ms=3.5, color=color_for(spec),
                        label=name)
                ax.fill_between(count, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1),
                                color=color_for(spec), alpha=0.15, lw=0)
                lines.append(f"| {attack} | {n} | {name} | "
                             f"{', '.join(f'{m:.3f}' for m in mean)} |")
            ax.axvline((n - 1) / 2, color="grey", lw=0.8, ls=":")
            ax.set(title=f"{ATTACKS[attack]}, N = {n}", xlabel="adversarial workers")
            ax.set_xticks(range(0, (n - 1) // 2 + 1))
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.set_ylabel("final test accuracy")
    handles = {}
    for ax in axes.flat:
        for h, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=6, fontsize=8.5,
               frameon=False)
    fig.suptitle("Logistic regression with adversarial workers (mean over 3 seeds, 95% "
                 "t-interval bands; dotted line: half of the workers)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save(fig, out_file, directory, dpi=120)
    return lines

