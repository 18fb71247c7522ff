"""Steps that send nothing: the inner steps of a local-update method (DiLoCo), timed as compute
only.

There is no barrier on such a step: each worker begins it when it holds the previous step's
result (the last reply, or the end of its own previous local step) and ends it when it has
computed; the next step that communicates starts from there. Its record has no message and no
aggregation (those phases are NaN, its bits 0, nobody's message aggregated).

On a server (``ps``, ``alltoall``, or ``auto`` before it has chosen) the previous reply may
still be on its way, so the step's times are known only once it lands: the reply's arrivals
are then moved on by each worker's compute (``Shifted``), which the next pushes wait for.
A local step needs every worker in every step: server policies other than ``all``, crashes
and message loss are refused before a run (the method's ``check``).

A peer collective may run behind the next k local steps (``run_behind``; Streaming DiLoCo's
overlap): the sending step then ends, for its workers, when their compute does (its record's
``arrived`` is the collective's end, its aggregation NaN), the k steps follow from there, and the
k-th ends no earlier than the collective: any wait shows as its exposed communication (a run
that ends before the k-th step does not wait for it).
"""
from __future__ import annotations

import numpy as np

from sim.net.collectives import Arrivals
from sim.peers import WITHOUT_A_RANK
from sim.record import StepRecord


class Shifted:
    """A server's reply arrivals (``base``, an ``Arrivals``) moved on by ``offset`` (N,)
    seconds of local compute: what a push of the next communicating step waits for."""

    def __init__(self, env, base: Arrivals, offset: np.ndarray):
        self.env, self.base, self.offset = env, base, offset

    @property
    def times(self) -> np.ndarray:
        return self.base.times + self.offset

    def listen(self, fn) -> None:
        def later(workers, t):
            for w in workers:
                delay = float(self.offset[w])
                self.env.timeout(delay).callbacks.append(
                    lambda _, w=w, when=t + delay: fn([w], when))
        self.base.listen(later)


def _known(env, times: np.ndarray) -> Arrivals:
    """Arrivals that have all happened, at ``times``."""
    arrivals = Arrivals(env, times.size, 1)
    arrivals._arrived(list(range(times.size)), 0.0)
    arrivals.times = times.astype(np.float64)
    return arrivals


def local_step(cluster, compute: np.ndarray) -> StepRecord:
    """Record (and append to ``cluster.records``) a step of ``compute`` (N,) seconds per worker
    and no message (see the module docstring)."""
    if cluster.partial:
        raise ValueError("a step without messages needs every worker (server policy 'all', "
                         "no crashes or message loss)")
    n, nan = cluster.n, np.full(cluster.n, np.nan)
    record = StepRecord(nan.copy(), nan.copy(), nan.copy(), np.nan, np.nan, None,
                        np.zeros(n, dtype=np.int64), 0, aggregated=np.zeros(n, dtype=bool))
    if cluster.collective is not None and cluster.collective not in WITHOUT_A_RANK:
        # peers: the previous step ended at a barrier (or locally), at known times
        start = cluster.records[-1].done.copy() if cluster.records else np.zeros(n)
        record.start, record.ready, record.done = start, start + compute, start + compute
        if cluster.in_flight is not None and cluster.in_flight[0] == len(cluster.records):
            record.done = np.maximum(record.done, cluster.in_flight[1])  # it lands now
            cluster.in_flight = None
    else:
        replies = cluster._replies
        if replies is None:  # nothing replied yet: the workers start at the opening
            replies = _known(cluster.env, np.full(n, cluster._opening))
        base, offset = ((replies.base, replies.offset) if isinstance(replies, Shifted)
                        else (replies, np.zeros(n)))

        def fill(times):
            record.start = times + offset
            record.ready = record.start + compute
            record.done = record.ready.copy()

        if np.isfinite(base.times).all():  # every reply has landed
            fill(base.times)
        else:
            base.done.callbacks.append(lambda _: fill(base.times))
        cluster._replies = Shifted(cluster.env, base, offset + compute)
    cluster.records.append(record)
    return record


def run_behind(cluster, record: StepRecord, steps: int) -> None:
    """Let the collective of ``record`` (the step just gathered, on a peer collective) run
    behind the next ``steps`` local steps (see the module docstring)."""
    if cluster.collective in WITHOUT_A_RANK:
        raise ValueError(f"network.collective = {cluster.collective!r}: only a peer collective "
                         "runs behind local steps")
    cluster.in_flight = (len(cluster.records) - 1 + steps, record.done.copy())
    record.done = record.ready.copy()
    record.agg_start = record.agg_end = np.nan
