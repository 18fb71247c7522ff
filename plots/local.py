"""The local study: time to the target against bandwidth for D-Lion, G-AdamW and DiLoCo's
variants (H inner steps per round, float32 or 4-bit outer gradients, Streaming DiLoCo's
fragments), one panel per one-way latency (inside a data centre, across data centres).

Reads the runs of the ``local`` study (``dlion-sim sweep local -o DIR``), each method at its
tuned step size. Returns the numbers as the lines of a Markdown table. Drawn by
``dlion-sim plot DIR --kind local`` (make figures runs it).
"""
from __future__ import annotations

from collections import defaultdict

import matplotlib.ticker

from plots.data import PlotError, load_runs, spec_of
from plots.figure import plt, save, unit_ticks

#: line colour per DiLoCo round length H (Okabe-Ito); D-Lion and G-AdamW have their own
H_COLORS = {10: "#E69F00", 50: "#009E73", 250: "#CC79A7"}
FIXED = {"D-Lion (MaVo)": ("#0072B2", "-", "o"), "G-AdamW": ("#D55E00", "-", "s")}
#: labelled times on the y axis (s)
SECONDS_TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]


def variant(method: dict) -> str:
    """'D-Lion (MaVo)', 'G-AdamW', 'DiLoCo, H = 50', 'DiLoCo, H = 50, 4-bit',
    'Streaming DiLoCo, H = 50, 5 fragments, 4-bit', ...: what a line of the figure is."""
    name = method["name"]
    if name == "dlion":
        return "D-Lion (MaVo)" if method.get("aggregate", "mavo") == "mavo" else "D-Lion (Avg)"
    if name == "gadamw":
        return "G-AdamW"
    if name != "diloco":
        return name
    fragments = method.get("fragments", 1) or 1
    words = ["Streaming DiLoCo" if fragments > 1 else "DiLoCo", f"H = {method['h']}"]
    if fragments > 1:
        words.append(f"{fragments} fragments")
    if method.get("outer_bits", 32) != 32:
        words.append(f"{method['outer_bits']}-bit")
    if method.get("overlap_steps"):
        words.append(f"behind {method['overlap_steps']} steps")
    if method.get("mixing") is not None:
        words.append(f"mixing {method['mixing']:g}")
    for key, usual in (("inner", "adamw"), ("outer", "nesterov")):
        if method.get(key, usual) != usual:
            words.append(f"{key} {method[key]}")
    return ", ".join(words)


def _style(method: dict) -> tuple[str, str, str]:
    label = variant(method)
    if label in FIXED:
        return FIXED[label]
    color = H_COLORS.get(method.get("h"), "0.4")
    dashed = method.get("outer_bits", 32) != 32
    streaming = (method.get("fragments", 1) or 1) > 1
    return color, ":" if streaming else "--" if dashed else "-", "^" if streaming else "D" \
        if dashed else "v"


def _time(run) -> float | None:
    return (run.summary.get("target") or {}).get("time_s")


def _order(label: str) -> tuple:
    """D-Lion, G-AdamW, then DiLoCo by H, float32 before 4-bit, streaming last."""
    return (label not in FIXED, list(FIXED).index(label) if label in FIXED else 0,
            label.startswith("Streaming"), int(label.split("H = ")[1].split(",")[0])
            if "H = " in label else 0, label)


def collect(directory) -> dict:
    """latency s -> variant -> {bandwidth b/s: run}, the tuned winners only; PlotError when
    two runs would be one point (they differ in something the figure does not show)."""
    found: dict = defaultdict(lambda: defaultdict(dict))
    for run in load_runs(directory):
        spec = spec_of(run)
        net = spec["network"]
        label = variant(spec["method"])
        points = found[float(net["latency"])][label]
        bandwidth = float(net["bandwidth"])
        if bandwidth in points:
            raise PlotError(f"{directory}: two runs are both {label!r} at "
                            f"{bandwidth / 1e9:g} Gb/s and {_latency(float(net['latency']))} "
                            "(they differ in a key this figure does not show); --kind local "
                            "draws one run per variant and network: plot them with --kind sweep")
        points[bandwidth] = run
    return found


def plot_local(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines of a
    Markdown table (simulated seconds to the target, and the winner of each setting)."""
    found = collect(directory)
    if not any(_time(r) for by in found.values() for runs in by.values() for r in runs.values()):
        raise PlotError(f"{directory}: no run of the local study reached its target; allow "
                        "more steps (run.steps) or set a higher run.target")
    latencies = sorted(found)
    labels = sorted({v for by in found.values() for v in by}, key=_order)
    lines = ["| one-way latency | bandwidth | " + " | ".join(labels) + " | first |",
             "|---|---|" + "---|" * (len(labels) + 1)]
    fig, axes = plt.subplots(1, len(latencies), figsize=(5.6 * len(latencies) + 3.2, 5.0),
                             sharey=True, squeeze=False)
    for ax, latency in zip(axes[0], latencies):
        by_variant = found[latency]
        for label in labels:
            runs = by_variant.get(label, {})
            points = sorted((b, _time(r)) for b, r in runs.items() if _time(r))
            if not points:
                continue
            color, style, marker = _style(spec_of(next(iter(runs.values())))["method"])
            ax.plot(*zip(*points), ls=style, marker=marker, ms=4.5, lw=1.6, color=color,
                    label=label)
        for b in sorted({b for runs in by_variant.values() for b in runs}):
            runs = {label: by_variant[label][b] for label in labels
                    if b in by_variant.get(label, {})}
            reached = {k: _time(r) for k, r in runs.items() if _time(r)}
            first = min(reached, key=reached.get) if reached else "none"
            lines.append(f"| {_latency(latency)} | {b / 1e9:g} Gb/s | " + " | ".join(
                _cell(runs.get(label)) for label in labels) + f" | {first} |")
        ax.set(xscale="log", yscale="log", xlabel="bandwidth per worker (log scale)",
               title=f"one-way latency {_latency(latency)}"
                     + (" (across data centres)" if latency >= 1e-3 else " (one data centre)"))
        unit_ticks(ax.xaxis, "bandwidth")
        ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(SECONDS_TICKS))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f} s"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("simulated time to the target (log scale)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                       title="lower is better", title_fontsize=8)
    fig.tight_layout()
    save(fig, out_file, directory)
    return lines


def _latency(seconds: float) -> str:
    return f"{seconds * 1e3:g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:g} µs"


def _cell(run) -> str:
    """'' for a variant not run in this setting, else its time to the target."""
    if run is None:
        return ""
    value = _time(run)
    if value is None:
        return "not reached"
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"
