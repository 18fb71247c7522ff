"""The fair study: D-Lion's speed-up over G-AdamW in time to the target, against the NIC's
bandwidth, once G-AdamW runs NCCL's all-reduce overlapped with the backward pass.

Reads the runs of the ``fair`` study (``dlion-sim sweep fair -o DIR``). One panel per model
preset, one line per number of workers and D-Lion collective; above the dotted line at 1 the
1-bit method reaches the target first. Returns the numbers as the lines of a Markdown table.
Drawn by ``dlion-sim plot DIR --kind fair`` (make figures runs it).
"""
from __future__ import annotations

from collections import defaultdict

import matplotlib.ticker
import numpy as np

from plots.data import PlotError, load_runs, spec_of
from plots.figure import plt, save, unit_ticks

#: how each of D-Lion's collectives is drawn
STYLES = {"auto": ("-", "o", "auto"), "alltoall": ("--", "D", "sharded all-to-all"),
          "ps": (":", "s", "parameter server")}
#: line colour per number of workers (Okabe-Ito)
WORKER_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00")


def times(directory) -> dict:
    """(model, workers, bandwidth b/s) -> {"gadamw": run, ("dlion", collective): run}."""
    out: dict = defaultdict(dict)
    for run in load_runs(directory):
        spec = spec_of(run)
        key = (spec["cluster"]["model"], spec["cluster"]["workers"],
               float(spec["network"]["bandwidth"]))
        name = spec["method"]["name"]
        out[key][name if name == "gadamw" else (name, spec["network"]["collective"])] = run
    return dict(out)


def _time(run) -> float | None:
    target = run.summary.get("target") or {}
    return target.get("time_s")


def _speedup(dlion, gadamw) -> float:
    a, b = _time(dlion), _time(gadamw)
    return b / a if a and b else np.nan


def plot_fair(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines of a
    Markdown table."""
    found = times(directory)
    if not any(_time(run) for runs in found.values() for run in runs.values()):
        raise PlotError(f"{directory}: no run of the fair study reached its target; allow more "
                        "steps (run.steps) or set a higher run.target")
    models = sorted({k[0] for k in found}, key=lambda m: found_params(found, m))
    workers = sorted({k[1] for k in found})
    bandwidths = sorted({k[2] for k in found})
    collectives = sorted({c for runs in found.values() for c in runs if isinstance(c, tuple)},
                         key=lambda c: list(STYLES).index(c[1]))
    lines = ["| model | workers | NIC | G-AdamW | " +
             " | ".join(f"D-Lion, {STYLES[c][2]}" for _, c in collectives) + " |",
             "|---|---|---|---|" + "---|" * len(collectives)]
    fig, axes = plt.subplots(1, len(models), figsize=(6.2 * len(models), 4.9), sharey=True,
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        for w_index, n in enumerate(workers):
            for dl in collectives:
                style, marker, words = STYLES[dl[1]]
                x, y = [], []
                for b in bandwidths:
                    runs = found.get((model, n, b), {})
                    if dl in runs and "gadamw" in runs:
                        x.append(b)
                        y.append(_speedup(runs[dl], runs["gadamw"]))
                ax.plot(x, y, ls=style, marker=marker, ms=4.5, lw=1.6,
                        color=WORKER_COLORS[w_index % len(WORKER_COLORS)],
                        label=f"{n} workers, D-Lion {words}")
            for b in bandwidths:
                runs = found.get((model, n, b), {})
                if "gadamw" not in runs:
                    continue
                cells = [_cell(runs.get(dl), runs["gadamw"]) for dl in collectives]
                lines.append(f"| {model} | {n} | {b / 1e9:g} Gb/s | "
                             f"{_seconds(_time(runs['gadamw']))} "
                             f"({runs['gadamw'].summary['collective']}) | " + " | ".join(cells)
                             + " |")
        ax.axhline(1.0, color="0.3", lw=1, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="NIC bandwidth per node of 8 GPUs (log scale)",
               title=f"{model}: {_params(found, model)} parameters")
        unit_ticks(ax.xaxis, "bandwidth")
        ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(
            [0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100]))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.text(0.02, 0.97, "above 1x: D-Lion reaches the target first", transform=ax.transAxes,
                fontsize=8, va="top", color="0.3")
    axes[0][0].set_ylabel("D-Lion's speed-up over G-AdamW\n(time to target, log scale)")
    axes[0][-1].legend(fontsize=8, loc="upper right", frameon=False)
    fig.tight_layout()
    save(fig, out_file, directory)
    return lines


def found_params(found: dict, model: str) -> int:
    """The model's parameter count, from one of its runs."""
    for (m, _, _), runs in found.items():
        if m == model:
            return int(spec_of(next(iter(runs.values())))["cluster"]["model_params"])
    return 0


def _params(found: dict, model: str) -> str:
    count = found_params(found, model)
    return f"{count / 1e9:.2g}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def _seconds(value) -> str:
    return "not reached" if value is None else f"{value:.4g} s"


def _cell(dlion, gadamw) -> str:
    if dlion is None:
        return ""
    return (f"{_seconds(_time(dlion))} ({dlion.summary['collective']}), "
            f"{_speedup(dlion, gadamw):.2g}x")
