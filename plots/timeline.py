"""A Gantt chart of a few steps: what every worker (and the server) did when, from trace.csv.

The teaching picture of synchronous data parallelism: fast workers idle while stragglers
compute, messages queue at the server's link (incast), and nobody starts the next step until
the reply has arrived. Under a server policy or faults it also shows computations given up when
a step closed (hatched), messages that arrived late or were lost, workers that were down, and
each step's deadline (dashed).
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from plots.data import PlotError, group_runs, load_runs, spec_of
from plots.figure import plt, save, wrap
from plots.style import PHASE_COLORS, describe, run_label

#: Phases in drawing and legend order; the last five appear only under policies and faults,
#: "bucket" only with overlap (drawn as a band inside the compute bar it overlaps)
PHASES = ("compute", "send", "idle", "aggregate", "receive", "abandoned", "late", "lost", "down",
          "bucket")
#: How the exceptional phases look: (colour of the phase they interrupt, hatch)
_EXCEPTIONS = {"abandoned": ("compute", "////"), "late": ("send", "xxxx"),
               "lost": ("lost", "xxxx"), "down": ("down", "")}
_LEGEND = {"abandoned": "given up (step closed)", "late": "late (discarded)",
           "lost": "lost", "down": "down"}

#: A step label needs this fraction of the time axis before the next labelled step begins.
STEP_LABEL_ROOM = 0.07
#: Steps drawn when none are asked for (the demo traces six).
DEFAULT_STEPS = 6

#: (seconds per unit, unit) for the time axis, chosen by the length of the window.
_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def trace_events(run) -> list[dict]:
    """The run's trace rows: node, phase, step (1-based), start, end [s], bytes."""
    if run.trace is None:
        raise PlotError("this run has no trace (run it with --set run.trace=true)")
    return [{"node": node, "phase": phase, "step": step, "start": start, "end": end,
             "bytes": size} for node, phase, start, end, size, step in run.trace]


def window_events(events: list[dict], steps: tuple[int, int]) -> dict[str, list[dict]]:
    """Events of steps ``steps`` (first, last; inclusive) per node, in time order.

    A worker's idle bar is stretched to its next event: the trace's idle ends when the server
    starts aggregating, and the worker keeps waiting until the reply starts to arrive.
    """
    first, last = steps
    by_node: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        if first <= e["step"] <= last:
            by_node[e["node"]].append(dict(e))
    for node, rows in by_node.items():
        rows.sort(key=lambda e: (e["start"], _order(e["phase"])))
        for row, after in zip(rows, rows[1:]):
            if row["phase"] == "idle" and after["start"] > row["end"]:
                row["end"] = after["start"]
    return dict(by_node)


def plot_timeline(results, out_file=None, steps: tuple[int, int] | None = None,
                  title: str | None = None):
    """Gantt chart of steps ``steps`` (first, last; 1-based, inclusive; default the first 6).

    One panel per traced run in ``results``, one row per worker and one for the server (or the
    collective); bars coloured by phase. Each panel has its own time axis, so the steps of a
    fast method are as legible as a slow one's; its title gives the window's length and how
    many times shorter it is than the longest panel's. Returns the Figure; writes PNG/SVG/PDF
    to ``out_file`` when given.
    """
    runs = load_runs(results)
    traced = [r for g in group_runs(runs) for r in g.runs if r.trace is not None]
    if not traced:
        raise PlotError(f"none of the {len(runs)} runs has a trace.csv; re-run with "
                        "--set run.trace=true")
    total = min(int(r.summary["steps"]) for r in traced)
    first, last = steps if steps is not None else (1, min(DEFAULT_STEPS, total))
    if not 1 <= first <= last <= total:
        raise PlotError(f"steps {first}-{last} are not in the trace; it holds steps 1-{total}")
    heights = [len({e["node"] for e in trace_events(r)}) for r in traced]
    inches = 1.2 + sum(0.32 * h + 1.3 for h in heights)
    fig, axes = plt.subplots(len(traced), 1, figsize=(10, inches),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    specs = [spec_of(r) for r in traced]
    windows = [window_events(trace_events(r), (first, last)) for r in traced]
    lengths = [_span(w)[1] - _span(w)[0] for w in windows]
    shown = f"step {first}" if first == last else f"steps {first}-{last}"
    for ax, run, window, length in zip(axes[:, 0], traced, windows, lengths):
        scale, unit = next((s, u) for s, u in _UNITS if length >= s or s == 1e-9)
        _draw_run(ax, window, (first, last), scale, length / scale)
        ratio = max(lengths) / length
        shorter = f", {ratio:.0f}x shorter than the longest panel" if ratio >= 1.5 else ""
        ax.set_title(f"{run_label(spec_of(run), specs)}: {shown} in "
                     f"{length / scale:.3g} {unit}{shorter}", fontsize=9, loc="left", pad=16)
        ax.set_xlim(0, length / scale)
        ax.set_xlabel(f"simulated time since step {first} began ({unit})", fontsize=8.5)
    seen = {e["phase"] for w in windows for rows in w.values() for e in rows}
    shown_phases = [p for p in PHASES if p in PHASES[:5] or p in seen]
    handles = [_patch(p) for p in shown_phases]
    labels = [_LEGEND.get(p, p) for p in shown_phases]
    if "deadline" in seen:
        handles.append(plt.Line2D([], [], color="black", ls="--", lw=1))
        labels.append("deadline")
    # the title on the first lines, the legend of phases on its own line below it
    heading = wrap(title or f"Timeline of {shown}, {describe(specs)}", 120)
    lines = heading.count("\n") + 1
    fig.suptitle(heading, fontsize=11, x=0.01, ha="left", y=1 - 0.06 / inches, va="top")
    fig.legend(handles, labels, loc="upper right", ncol=min(len(labels), 7), fontsize=8,
               frameon=False, bbox_to_anchor=(0.99, 1 - (0.1 + 0.2 * lines) / inches))
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.3 + 0.2 * lines) / inches))
    return save(fig, out_file, results)


def _span(by_node: dict[str, list[dict]]) -> tuple[float, float]:
    """(first start, last end) [s] of a window's events."""
    events = [e for rows in by_node.values() for e in rows]
    return min(e["start"] for e in events), max(e["end"] for e in events)


def is_worker(node: str) -> bool:
    """Whether ``node`` is one worker's row ("worker3"); "workers" is the row of a collective."""
    return node.startswith("worker") and node[6:].isdigit()


def row_order(nodes) -> list[str]:
    """The timeline's rows from top to bottom: the workers by number, then the server or the
    collective's row and any others by name."""
    workers = sorted((n for n in nodes if is_worker(n)), key=lambda n: int(n[6:]))
    return workers + sorted(n for n in nodes if not is_worker(n))


def _draw_run(ax, by_node: dict[str, list[dict]], steps: tuple[int, int], scale: float,
              width: float) -> None:
    """One run's rows: bars per phase and step boundaries, time in units of ``scale`` s on an
    axis ``width`` units wide (step labels only where they have room)."""
    rows = row_order(by_node)
    begin, end = _span(by_node)
    bars: dict[str, list[tuple]] = defaultdict(list)
    deadlines = []
    for y, node in enumerate(rows):
        node_events = [e for e in by_node[node] if e["phase"] != "deadline"]
        deadlines += [e["start"] for e in by_node[node] if e["phase"] == "deadline"]
        for e in node_events:
            bars[e["phase"]].append((y, e["start"], e["end"]))
        if not is_worker(node):  # the server idles whenever it is not aggregating
            edge = begin
            for e in node_events:
                bars["idle"].append((y, edge, e["start"]))
                edge = e["end"]
            bars["idle"].append((y, edge, end))
    for phase in PHASES:
        if not bars[phase]:
            continue
        y, start, stop = (np.array(v, dtype=np.float64) for v in zip(*bars[phase]))
        colour, hatch = _EXCEPTIONS.get(phase, (phase, ""))
        # a bucket's message travels while the worker still computes: a band in the lower
        # part of the row, so the compute bar stays visible above it
        low, height = (y + 0.12, 0.24) if phase == "bucket" else (y, 0.72)
        ax.barh(low, (stop - start) / scale, left=(start - begin) / scale, height=height,
                color=PHASE_COLORS[colour], label=phase, hatch=hatch,
                edgecolor="white" if not hatch else "black", linewidth=0.3)
        if phase == "aggregate":  # an instantaneous aggregation is still worth seeing
            instant = stop == start
            ax.vlines((start[instant] - begin) / scale, y[instant] - 0.36, y[instant] + 0.36,
                      color=PHASE_COLORS[phase], lw=2)
    for at in deadlines:
        ax.axvline((at - begin) / scale, color="black", lw=1, ls="--")
    numbers = range(steps[0], steps[1] + 1)
    ats = [(min(e["start"] for node in rows for e in by_node[node]
                if e["step"] == step and e["phase"] != "deadline") - begin) / scale
           for step in numbers]
    for at in ats:
        ax.axvline(at, color="black", lw=0.6, ls=":")
    # step numbers above the panel, at the dotted boundaries, skipping those without room
    labelled, last_at = [], -math.inf
    for step, at in zip(numbers, ats):
        if at - last_at >= STEP_LABEL_ROOM * width:
            labelled.append((step, at))
            last_at = at
    top = ax.secondary_xaxis("top")
    top.set_xticks([at for _, at in labelled], [f"step {step}" for step, _ in labelled],
                   fontsize=7.5, ha="left")
    top.tick_params(length=0, pad=2)
    ax.set_yticks(range(len(rows)), [_row_name(n) for n in rows], fontsize=7.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_ylabel("node")


def _order(phase: str) -> int:
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def _patch(phase: str):
    colour, hatch = _EXCEPTIONS.get(phase, (phase, ""))
    return plt.Rectangle((0, 0), 1, 1, facecolor=PHASE_COLORS[colour], hatch=hatch,
                         edgecolor="black" if hatch else PHASE_COLORS[colour], linewidth=0.3)


def _row_name(node: str) -> str:
    return "all workers (collective)" if node == "workers" else node
