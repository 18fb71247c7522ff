"""What lost messages and crashes cost: time to the target against the fault rate.

Reads the runs of the ``faults`` study (``dlion-sim sweep faults -o DIR``): D-Lion MaVo and
G-AdamW; each message lost with probability 0 to 10% (retransmitted while the server waits,
or dropped under a deadline), or workers crashing at random. Draws the time to the target
(mean over seeds) against the loss probability and against the expected share of workers down,
one line per method and loss handling; prints the numbers as a Markdown table and draws the
figure.
Drawn by ``dlion-sim plot DIR --kind faults`` (make figures runs it).
"""
from __future__ import annotations

from collections import defaultdict

from plots.figure import plt, save
import matplotlib.ticker
import numpy as np

from plots.data import load_runs, spec_of, time_to_target
from plots.style import color_for, method_key, method_rank, pretty

HANDLING = {"retransmit": ("-", "o", "retransmitted, server waits for all"),
            "drop": ("--", "s", "dropped, server closes at a deadline")}


def down_share(faults: dict) -> float:
    """Expected share of workers down: crash rate x recovery time / (1 + the same)."""
    busy = faults["crash_rate"] * (faults["recover_after"] or 0.0)
    return busy / (1 + busy)


def table(runs) -> dict[tuple[str, str], dict[tuple[float, float], list[float]]]:
    """(method key, on_loss) -> (loss, crash rate) -> time to target of each seed (s)."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        spec = spec_of(run)
        faults = spec["faults"]
        out[method_key(spec), faults["on_loss"]][faults["loss"], faults["crash_rate"]].append(
            time_to_target(run))
    return dict(sorted(out.items(), key=lambda item: (method_rank(item[0][0]), item[0][1])))


def plot_faults(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines
    of a Markdown table."""
    runs = load_runs(directory)
    by_key = table(runs)
    spec_for = {method_key(spec_of(r)): spec_of(r) for r in runs}
    some = spec_of(runs[0])
    recover = some["faults"]["recover_after"]

    lines = ["| method | lost messages | loss | crash rate (/s) | time to target (s) | "
             "x fault-free |", "|---|---|---|---|---|---|"]
    fig, (by_loss, by_crash) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (key, handling), points in by_key.items():
        style, marker, words = HANDLING[handling]
        clean = np.mean(points[0.0, 0.0])
        for (loss, rate), times in sorted(points.items()):
            lines.append(f"| {pretty(key)} | {handling} | {loss:.0%} | {rate:g} | "
                         f"{np.mean(times):.1f} | {np.mean(times) / clean:.2f} |")
        color = color_for(spec_for[key])
        loss = sorted((p, np.mean(t)) for (p, rate), t in points.items() if rate == 0)
        by_loss.plot([100 * p for p, _ in loss], [t for _, t in loss], ls=style, marker=marker,
                     color=color, label=f"{pretty(key)}, {words}")
        if handling == "retransmit":  # crashes do not depend on how losses are handled
            crash = sorted((down_share({"crash_rate": rate, "recover_after": recover}),
                            np.mean(t)) for (p, rate), t in points.items() if p == 0)
            by_crash.plot([100 * s for s, _ in crash], [t for _, t in crash], ls="-", marker="^",
                          color=color, label=pretty(key))
    target = some["run"]["target"]
    by_loss.set(yscale="log", xlabel="probability that a message is lost (%)",
                ylabel=f"simulated time to eval loss {target:g} (s, log scale)",
                title="lost messages")
    by_crash.set(xlabel=f"expected share of workers down (%; crashes at random, back after "
                        f"{recover:g} s)", title="crashed workers")
    by_loss.legend(fontsize=8, frameon=False)
    by_crash.legend(fontsize=8, frameon=False)
    ticks = [20, 30, 50, 100, 200, 300]
    by_loss.set_yticks(ticks, [str(t) for t in ticks])
    by_loss.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for ax in (by_loss, by_crash):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("16 workers, 10 Gb/s, ResNet-50-sized messages, mean over seeds", fontsize=11)
    fig.tight_layout()
    save(fig, out_file, directory)
    return lines

