"""Deadlines against heavy-tailed stragglers: loss against simulated time, and time to target.

Reads the runs of the ``deadline`` study (``dlion-sim sweep deadline -o DIR``): D-Lion MaVo and
G-AdamW, each waiting for all 16 workers, closing each step at a deadline, or after the first
12 messages. Draws, per method, the evaluation loss against simulated time for every policy
(mean over seeds), and the time to the target as bars with 95% t-intervals; prints the numbers
as a Markdown table and draws the figure.
Drawn by ``dlion-sim plot DIR --kind deadline`` (make figures runs it); ``plot_policies``
draws the same figure for another study of server policies (``plots/asynchrony.py``).
"""
from __future__ import annotations

from collections import defaultdict

from plots.figure import plt, save
import numpy as np

from plots.curves import mean_curve
from plots.data import load_runs, spec_of, t_interval, time_to_target
from plots.style import color_for, method_key, method_rank, policy_text, pretty

STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (12, 3)))
#: the policies in the figures' order: waiting for all, closing steps early, then the
#: versioned servers from the most synchronous
POLICY_ORDER = ("all", "deadline", "first_k", "ssp", "fedbuff", "async")


def groups(directory) -> dict[str, dict[str, list]]:
    """method key -> policy text -> its runs (one per seed): waiting for all first, then the
    deadlines from the shortest, first-K, ssp by its bound, fedbuff by k, async."""
    def order(run):
        server = spec_of(run)["server"]
        kind = POLICY_ORDER.index(server["policy"])
        return kind, server["deadline"] or 0.0, server["k"] or 0, server.get("staleness") or 0

    out: dict[str, dict[str, list]] = defaultdict(dict)
    for run in sorted(load_runs(directory), key=order):
        spec = spec_of(run)
        out[method_key(spec)].setdefault(policy_text(spec["server"]), []).append(run)
    return dict(sorted(out.items(), key=lambda item: method_rank(item[0])))


def _aggregated(runs) -> str:
    """The share of the messages a policy's steps aggregated (mean over its runs)."""
    share = np.mean([r.summary["participation"]["aggregated"]
                     / (r.summary["steps"] * spec_of(r)["cluster"]["workers"]) for r in runs])
    return f"{share:.0%}"


def plot_deadline(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines
    of a Markdown table."""
    return plot_policies(directory, out_file, "16 workers with Pareto step times (shape 1.5), "
                         "100 Gb/s, ResNet-50-sized messages: closing each step early against "
                         "waiting for every worker", ("steps", "messages aggregated", _aggregated))


def plot_policies(directory, out_file, title: str, columns: tuple,
                  handlelength: float = 2.0) -> list[str]:
    """The figure of a study that compares server policies, per method: evaluation loss
    against simulated time and the time to target; ``columns`` = (what a row counts to the
    target, the last column's header, its text from a policy's runs); ``handlelength``: the
    legend's lines, in font sizes (long enough to tell six dash patterns apart). Returns the
    table."""
    counted, header, last = columns
    lines = []
    by_method = groups(directory)
    target = spec_of(next(iter(next(iter(by_method.values())).values()))[0])["run"]["target"]

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3),
                             gridspec_kw={"width_ratios": [1, 1, 1.15]})
    bars = []
    lines.append(f"| method | policy | time to target (s) | {counted} to target | {header} |")
    lines.append("|---|---|---|---|---|")
    for ax, (key, policies) in zip(axes[:2], by_method.items()):
        for style, (policy, runs) in zip(STYLES, policies.items()):
            x, mean, _ = mean_curve(runs, "eval_loss", "time")
            ax.plot(x, mean, ls=style, color=color_for(spec_of(runs[0])), label=policy, lw=1.6)
            times = [time_to_target(r) for r in runs]
            steps = [r.summary["target"]["step"] for r in runs
                     if r.summary["target"]["step"] is not None]
            mean_t, half = t_interval(times)
            bars.append((f"{pretty(key)}, {policy}", mean_t, half, color_for(spec_of(runs[0]))))
            missed = len(runs) - len(steps)  # runs that never reached the target
            reached = (f"{mean_t:.1f} ± {half:.1f} | {np.mean(steps):.0f}" if not missed else
                       f"not reached by {missed} of {len(runs)} | -")
            lines.append(f"| {pretty(key)} | {policy} | {reached} | {last(runs)} |")
        ax.axhline(target, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", title=pretty(key), xlabel="simulated time (s, log scale)",
               ylabel="evaluation loss")
        ax.legend(fontsize=8, frameon=False, title="server policy", title_fontsize=8,
                  handlelength=handlelength)
        ax.grid(True, which="major", alpha=0.3)
    names, means, halves, colors = zip(*bars)
    y = np.arange(len(bars))[::-1]
    axes[2].barh(y, means, xerr=halves, color=colors, alpha=0.85, capsize=3)
    axes[2].set_yticks(y, names, fontsize=8)
    axes[2].set(xlabel=f"simulated time to eval loss {target:g} (s)",
                title="time to target\n(mean over seeds, 95% t-interval)")
    axes[2].grid(True, axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save(fig, out_file, directory)
    return lines

