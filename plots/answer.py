"""The explorer's answer in words and numbers: time to target per method, the speed-up over
G-AdamW in one sentence, and the rows of one step's timeline, from Results alone."""
from __future__ import annotations

import html
import math

import numpy as np

from plots.curves import x_values
from plots.data import target_description, time_to_target
from plots.speedup import BASELINE, Answer, seconds_text, speedup, times_text
from plots.style import PHASE_COLORS, color_for, method_key
from plots.timeline import PHASES, row_order, trace_events, window_events


def answers(results) -> list[Answer]:
    """The Answer of each Result, in order (every run needs a run.target)."""
    out = []
    for run in results:
        spec = run.summary["spec"]
        reached = time_to_target(run)
        out.append(Answer(method_key(spec), None if math.isnan(reached) else reached,
                          int(run.summary["steps"]), float(run.summary["sim_time_s"]),
                          float(run.summary["bits_per_param_per_step"]["total"]),
                          color_for(spec)))
    return out


def sentence(found: list[Answer], target: str) -> str:
    """Who reaches ``target`` (e.g. 'evaluation loss ≤ 0.35') first, and how much sooner than
    G-AdamW, in one sentence."""
    reached = [a for a in found if a.time_s is not None]
    if not reached:
        steps = max(a.steps for a in found)
        return (f"No method reaches {target} within {steps} steps: allow more steps or set a "
                "higher target.")
    best = min(reached, key=lambda a: a.time_s)
    opening = f"{best.label} reaches {target} first, in {seconds_text(best.time_s)} simulated"
    baseline = next((a for a in found if a.key == BASELINE), None)
    if baseline is None:
        return f"{opening}; tick G-AdamW to see the speed-up over it."
    if best is baseline:
        others = sorted((a for a in reached if a is not best), key=lambda a: a.time_s)
        if not others:
            return f"{opening}, and it alone reaches it."
        return (f"{opening}; the next, {others[0].label}, takes "
                f"{times_text(others[0].time_s / best.time_s)} as long.")
    ratio, bound = speedup(best, baseline)
    if bound:
        return (f"{opening}; G-AdamW does not reach it in its {baseline.steps} steps "
                f"({seconds_text(baseline.sim_time_s)}), so {best.label} is more than "
                f"{times_text(ratio)} faster.")
    return (f"{opening}: {times_text(ratio)} faster than G-AdamW "
            f"({seconds_text(baseline.time_s)}).")


def table_html(found: list[Answer]) -> str:
    """The time-to-target table; each row carries the exact numbers in data attributes
    (data-method, data-time-s: seconds, or 'none'), so a test can read what is shown."""
    baseline = next((a for a in found if a.key == BASELINE), None)
    head = ("<tr><th>method</th><th>time to target (simulated)</th><th>steps</th>"
            "<th>speed-up over G-AdamW</th><th>bits/param/step</th></tr>")
    rows = []
    for a in found:
        if a.time_s is None:
            time_cell = f"not reached (&gt; {seconds_text(a.sim_time_s)})"
        else:
            time_cell = seconds_text(a.time_s)
        found_speedup = speedup(a, baseline)
        speed_cell = "" if found_speedup is None else (
            ("&gt; " if found_speedup[1] else "") + times_text(found_speedup[0]))
        exact = "none" if a.time_s is None else repr(a.time_s)
        rows.append(
            f'<tr class="answer" data-method="{html.escape(a.key)}" data-time-s="{exact}">'
            f'<td><span style="color:{a.color}">&#9632;</span> {html.escape(a.label)}</td>'
            f'<td class="time">{time_cell}</td><td>{a.steps}</td><td>{speed_cell}</td>'
            f"<td>{a.bits:.3g}</td></tr>")
    return ('<table class="answers" style="border-collapse:collapse;font-size:13px" '
            'cellpadding="4">' + head + "".join(rows) + "</table>")


def target_text(results) -> str:
    """'evaluation loss ≤ 0.35': the target the results are timed to."""
    return target_description(list(results), None, None)


def curve(run, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, evaluation loss) at the run's evaluation steps; ``axis``: 'step', 'time' [s] or
    'bits' [bits per worker, up + down]."""
    loss = run.history["eval_loss"]
    taken = np.isfinite(loss)
    return x_values(run.history, axis)[taken], loss[taken]


#: (seconds per unit, unit) of the timeline's axis, chosen by the step's length
_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
#: exceptional phases are drawn in the colour of the phase they interrupt
_DRAWN_AS = {"abandoned": "compute", "late": "send"}


def step_bars(run, step: int) -> tuple[dict[str, list], list[str], str]:
    """One step of a traced run as bars: (columns node, phase, start, end [in the unit],
    colour, height [rows]; the nodes from top to bottom; the unit). Times count from the step's start."""
    window = window_events(trace_events(run), (step, step))
    events = [e for rows in window.values() for e in rows if e["phase"] != "deadline"]
    begin = min(e["start"] for e in events)
    length = max(e["end"] for e in events) - begin
    scale, unit = next((s, u) for s, u in _UNITS if length >= s or s == _UNITS[-1][0])
    nodes = row_order(window)
    events.sort(key=lambda e: (nodes.index(e["node"]), PHASES.index(e["phase"])))
    columns = {
        "node": [e["node"] for e in events],
        "phase": [e["phase"] for e in events],
        "start": [(e["start"] - begin) / scale for e in events],
        "end": [(e["end"] - begin) / scale for e in events],
        "color": [PHASE_COLORS[_DRAWN_AS.get(e["phase"], e["phase"])] for e in events],
        # a bucket sent during the compute is a thin band over the compute bar
        "height": [0.3 if e["phase"] == "bucket" else 0.72 for e in events],
    }
    return columns, nodes, unit
