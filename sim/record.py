"""What one simulated step did, and when: the record the history, the summary and the timeline
are read from. Times are absolute simulated seconds; arrays are per worker (NaN for a worker
that did not take part in a phase).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PHASES = ("compute_s", "comm_up_s", "aggregate_s", "comm_down_s", "idle_s", "exposed_comm_s",
          "overlapped_s")


@dataclass
class StepRecord:
    """When each phase of one step happened (absolute simulated seconds; arrays per worker,
    NaN for a worker that did not take part in that phase) and who took part."""

    start: np.ndarray       # the worker held the previous reply and began computing
    ready: np.ndarray       # its message was encoded and began to travel
    arrived: np.ndarray     # all of its message had reached the server (or the collective ended)
    agg_start: float        # the server closed the step
    agg_end: float          # the reply began to travel
    done: np.ndarray | None  # the worker held the reply (None until the simulation got there)
    up: np.ndarray          # bits each worker sent
    down: int               # bits of the reply to each worker
    aggregated: np.ndarray | None = None  # bool (N,): messages aggregated (None: all)
    participants: np.ndarray | None = None  # bool (N,): made the first round (None: all)
    computed: np.ndarray | None = None    # bool (N,): finished computing (None: all)
    receivers: np.ndarray | None = None  # bool (N,): workers the reply goes to (None: all)
    late: int = 0           # messages that arrived after the close (discarded)
    lost: int = 0           # messages lost on the way (each attempt counts)
    down_workers: int = 0   # workers down during the step
    opening: float = 0.0    # the server sent the previous reply
    deadline: float | None = None  # the policy's deadline (absolute s), if any
    events: list = field(default_factory=list)  # extra timeline rows: lost, late, abandoned
    rounds: list = field(default_factory=list)  # the step's (up, down, [collective]) bits
    # the gradient buckets' messages while the backward pass went on: (B, N) begin and end
    # (s) and bits of each bucket on each worker (None: the message went whole after compute)
    buckets: tuple | None = None

    def phases(self) -> dict[str, float]:
        """End of the step (last reply, s) and the mean seconds per phase over the workers
        that took part in each phase."""
        reached = self.done[~np.isnan(self.done)]
        return {
            # the last reply's arrival; a reply that reached no worker ends when it is sent
            "time_s": float(reached.max()) if reached.size else self.agg_end,
            "compute_s": _mean(self.ready - self.start),
            "comm_up_s": _mean(self.arrived - self.ready),
            "aggregate_s": self.agg_end - self.agg_start,
            "comm_down_s": _mean(self.done - self.agg_end),
            "idle_s": _mean(self.agg_start - self.arrived),
            # from a worker's last gradient to holding the update: what overlap cannot hide
            "exposed_comm_s": _mean(self.done - self.ready),
            "overlapped_s": _mean(self.overlapped()),
        }

    def overlapped(self) -> np.ndarray:
        """(N,) seconds each worker computed and communicated at once: the union of its
        buckets' transfers within its compute (zeros without buckets)."""
        if self.buckets is None:
            return np.where(np.isnan(self.ready), np.nan, 0.0)
        begin, end, _ = self.buckets
        start = np.minimum(np.maximum(begin, self.start), self.ready)
        stop = np.minimum(end, self.ready)
        # the buckets begin in order; an interval counts only past the ends before it
        reach = np.maximum.accumulate(np.vstack([start[:1], stop[:-1]]), axis=0)
        return np.maximum(0.0, stop - np.maximum(start, reach)).sum(axis=0)

    @property
    def n_aggregated(self) -> int:
        return self.up.size if self.aggregated is None else int(self.aggregated.sum())

    @property
    def abandoned(self) -> int:
        """Computations given up because the step closed first."""
        return sum(1 for row in self.events if row[1] == "abandoned")


def _mean(values: np.ndarray) -> float:
    taking_part = values[~np.isnan(values)]
    return float(taking_part.mean()) if taking_part.size else math.nan


def message_bits(record: StepRecord, collective: str, n: int, vote: bool) -> tuple[float, float]:
    """Bits one worker sent and received in a step of ``collective`` (means over the n
    workers, virtual size, headers included).

    Message-level accounting, as in the paper's bits per parameter: an all-reduce (ring, tree,
    hierarchical) contributes the vector and returns the reduced one; an all-gather returns the
    other N-1 messages; an all-to-all (a round's, or the shard owners') sends the worker's
    pieces and returns the others' pieces; a server (or a vote over GPU nodes) takes the
    message and sends the reply.
    """
    if collective == "none":
        return 0.0, 0.0
    if collective == "hierarchical" and vote:
        return float(record.up.mean()), float(record.down)
    if collective in ("ps", "alltoall"):
        up = float(record.up.mean())
        if record.receivers is None:
            return up, float(record.down)
        return up, float(record.down * record.receivers.mean())
    up = down = 0.0
    for u, d, *how in record.rounds:
        how = how[0] if how else collective
        sent = float(u.mean())
        up += sent
        if how == "alltoall":  # what the other workers send it
            down += float(d)
        elif how == "allgather":
            down += sent * (n - 1)
        else:
            down += sent
    return up, down


def trace_rows(records: list[StepRecord], n: int, collective: str) -> list[tuple]:
    """Timeline events (node, phase, start_s, end_s, bytes, step) of ``records``, step by step
    (steps 1-based). Phases: compute, send, idle, receive and the server's aggregate; with
    policies and faults also abandoned (a computation given up at the close), late (a message
    that arrived after it), lost (an attempt lost on the way), down, and the server's deadline
    (an instant); with overlap, bucket (a gradient bucket's message while the backward pass went
on)."""
    nodes = [f"worker{i}" for i in range(n)]
    rows = []
    for step, r in enumerate(records, start=1):
        phases = [("compute", r.start, r.ready, 0), ("send", r.ready, r.arrived, r.up // 8),
                  ("idle", r.arrived, np.full(n, r.agg_start), 0),
                  ("receive", np.full(n, r.agg_end), r.done, r.down // 8)]
        for phase, begin, end, size in phases:
            size = np.broadcast_to(size, (n,))
            keep = ~(np.isnan(begin) | np.isnan(end))
            rows.extend((nodes[i], phase, float(begin[i]), float(end[i]), int(size[i]), step)
                        for i in np.flatnonzero(keep))
        rows.extend((nodes[w], phase, float(b), float(e), int(size), step)
                    for w, phase, b, e, size in r.events)
        if r.buckets is not None:
            begin, end, bits = r.buckets
            rows.extend((nodes[w], "bucket", float(begin[k, w]), float(end[k, w]),
                         int(bits[k, w]) // 8, step)
                        for k, w in zip(*np.nonzero(~np.isnan(begin) & ~np.isnan(end))))
        aggregator = "server" if collective == "ps" else "workers"  # the owners, or the ranks
        if collective != "none" and not math.isnan(r.agg_start):  # NaN: a local step
            rows.append((aggregator, "aggregate", r.agg_start, r.agg_end,
                         int(r.up.sum()) // 8, step))
        if r.deadline is not None:  # the deadline of whoever closes the step
            rows.append((aggregator, "deadline", r.deadline, r.deadline, 0, step))
    return rows
