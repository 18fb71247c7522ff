"""D-Lion's speed-up over G-AdamW against the round trip, with and without slow start.

Reads the runs of the ``rtt`` study (``dlion-sim sweep rtt -o DIR``): the speed-up at one
setting is G-AdamW's simulated time to the target over D-Lion MaVo's. Draws one line per
bandwidth and transport against RTT = 2 x one-way latency, prints the numbers as a Markdown
table, and draws the figure.
Drawn by ``dlion-sim plot DIR --kind rtt`` (make figures runs it).
"""
from __future__ import annotations

from plots.figure import plt, save

from plots.data import load_runs, spec_of, time_to_target

TRANSPORTS = {"tcp": ("-", "s", "tcp: slow start, restart after idle, framing"),
              "fluid": ("--", "o", "fluid: no slow start, no framing")}
BANDWIDTH_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")


def speedups(directory) -> dict[tuple[float, str], list[tuple[float, float, float, float]]]:
    """(bandwidth bit/s, transport) -> [(RTT s, speed-up, G-AdamW s, D-Lion s)] sorted by RTT."""
    times: dict[tuple, float] = {}
    for run in load_runs(directory):
        spec = spec_of(run)
        net, method = spec["network"], spec["method"]
        name = "dlion" if method["name"] == "dlion" else method["name"]
        times[(net["bandwidth"], net["transport"], 2 * net["latency"], name)] = time_to_target(run)
    lines: dict[tuple, list] = {}
    for (bandwidth, transport, rtt, name), t in sorted(times.items()):
        if name == "dlion":
            slow = times[(bandwidth, transport, rtt, "gadamw")]
            lines.setdefault((bandwidth, transport), []).append((rtt, slow / t, slow, t))
    return lines


def plot_rtt(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines
    of a Markdown table."""
    curves = speedups(directory)
    lines = ["| bandwidth | RTT (ms) | transport | G-AdamW (s) | D-Lion MaVo (s) | speed-up |",
             "|---|---|---|---|---|---|"]
    for (bandwidth, transport), points in sorted(curves.items()):
        for rtt, ratio, slow, fast in points:
            lines.append(f"| {bandwidth / 1e9:g} Gb/s | {rtt * 1e3:g} | {transport} | "
                         f"{slow:,.0f} | {fast:,.0f} | {ratio:.1f}x |")

    fig, ax = plt.subplots(figsize=(8.6, 4.4))
    bandwidths = sorted({b for b, _ in curves})
    for (bandwidth, transport), points in sorted(curves.items()):
        style, marker, _ = TRANSPORTS[transport]
        color = BANDWIDTH_COLORS[bandwidths.index(bandwidth)]
        rtt, ratio = zip(*[(p[0] * 1e3, p[1]) for p in points])
        ax.plot(rtt, ratio, style, marker=marker, color=color,
                label=f"{bandwidth / 1e9:g} Gb/s, {transport}")
    for bandwidth in bandwidths:  # how much the fluid model overstates at the longest RTT
        rtt, fluid = curves[(bandwidth, "fluid")][-1][:2]
        tcp = curves[(bandwidth, "tcp")][-1][1]
        ax.annotate(f"fluid {fluid / tcp - 1:+.1%}", (rtt * 1e3, (fluid + tcp) / 2),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=8,
                    color=BANDWIDTH_COLORS[bandwidths.index(bandwidth)])
    for name, rtt in (("same region", 1), ("cross-region", 40), ("intercontinental", 80)):
        ax.axvline(rtt, color="grey", lw=0.8, ls=":")
        ax.annotate(name, (rtt, 0.99), xycoords=ax.get_xaxis_transform(), xytext=(-5, 0),
                    textcoords="offset points", rotation=90, va="top", ha="right", fontsize=8,
                    color="grey")
    ax.set(xscale="log", xlabel="round trip time, 2 x one-way latency (ms, log scale)",
           ylabel="D-Lion MaVo speed-up over G-AdamW\n(time to eval loss 0.35, x)",
           title="16 workers, GPT-2 small messages, 0.576 s compute per step")
    top = max(p[1] for points in curves.values() for p in points)
    ax.set_ylim(0, 1.3 * top)  # a band above the lines for the region labels
    ax.set_xlim(right=300)  # room for the labels at the longest RTT
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              title="link, transport", title_fontsize=8)
    fig.tight_layout()
    save(fig, out_file, directory)
    return lines

