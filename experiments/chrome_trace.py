"""A run's timeline rows as a Chrome trace (``trace.json``), which opens in Perfetto
(ui.perfetto.dev) and chrome://tracing.

The JSON object form of the Trace Event Format: one process (``pid`` 1) named after the run,
one track (``tid``) per node of the rows, labelled by ``thread_name`` metadata events: worker i
on tid i, then the server or the collective's ``workers`` row and any other node by name.
A row (node, phase, start_s, end_s, bytes, step) becomes one event named and categorised by its
phase, with its step and bytes as args: a complete event (``"ph": "X"``) with ``ts`` and
``dur`` in microseconds of simulated time, or an instant (``"ph": "i"``) when it has no length
(the server's deadline). Phases are not listed here except to colour the known ones. A
gradient bucket's message (phase ``bucket``, with overlap) travels while its worker computes, so
each worker's buckets have a track of their own, "workerI buckets", just below the worker's.
"""
from __future__ import annotations

PID = 1

#: Chrome's reserved colour names for the phases it knows (others get the viewer's colour).
COLORS = {"compute": "thread_state_running", "send": "rail_response", "receive": "rail_load",
          "idle": "thread_state_sleeping", "aggregate": "yellow", "late": "bad", "lost": "bad",
          "abandoned": "terrible", "down": "black", "deadline": "terrible", "bucket": "good"}
#: phases drawn on a track of their own beside their node's (they overlap its other phases)
OWN_TRACK = {"bucket": "buckets"}


def _is_worker(node: str) -> bool:
    return node.startswith("worker") and node[6:].isdigit()


def track_ids(nodes) -> dict[str, int]:
    """node -> tid: worker i is tid i, its "workerI buckets" track (if any) follows the other
    nodes; the other nodes follow the last worker, by name."""
    nodes = set(nodes)
    workers = {n: int(n[6:]) for n in nodes if _is_worker(n)}
    first = max(workers.values(), default=-1) + 1
    others = {n: first + k for k, n in enumerate(sorted(nodes - set(workers)))}
    return {**workers, **others}


def sort_index(node: str, tids: dict[str, int]) -> int:
    """Where ``node``'s track is drawn: each worker, then its own buckets' track, then the
    server or the collective's row."""
    base, _, own = node.partition(" ")
    if _is_worker(base):
        return 2 * int(base[6:]) + (1 if own else 0)
    return 2 * len(tids) + tids[node]


def _meta(kind: str, tid: int, **args) -> dict:
    """A metadata event (its ts is not read, but every event of the file has one)."""
    return {"ph": "M", "name": kind, "pid": PID, "tid": tid, "ts": 0, "args": args}


def chrome_trace(rows, name: str) -> dict:
    """The Chrome trace (a JSON-ready dict) of timeline ``rows`` (node, phase, start_s, end_s,
    bytes, step), in one process called ``name``; events in the order of the rows."""
    def track(node: str, phase: str) -> str:
        return f"{node} {OWN_TRACK[phase]}" if phase in OWN_TRACK else node

    tids = track_ids(track(row[0], row[1]) for row in rows)
    events = [_meta("process_name", 0, name=name)]
    for node, tid in sorted(tids.items(), key=lambda item: item[1]):
        events += [_meta("thread_name", tid, name=node),
                   _meta("thread_sort_index", tid, sort_index=sort_index(node, tids))]
    for node, phase, start, end, size, step in rows:
        ts = float(start) * 1e6
        event = {"name": phase, "cat": phase, "ph": "X", "pid": PID,
                 "tid": tids[track(node, phase)], "ts": ts,
                 "args": {"step": int(step), "bytes": int(size)}}
        if end == start:
            event["ph"], event["s"] = "i", "t"  # an instant on its own track
        else:
            event["dur"] = float(end) * 1e6 - ts  # ts + dur is the end in microseconds
        if phase in COLORS:
            event["cname"] = COLORS[phase]
        events.append(event)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"source": "dlion-sim", "run": name, "clock": "simulated time"}}
