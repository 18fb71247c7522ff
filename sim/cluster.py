"""The timing of synchronous data-parallel steps, as SimPy processes over the network.

The numerics of a step are computed first (they do not depend on timing: every message of a
synchronous step arrives); the cluster then charges the step its time: each worker computes,
its message travels by the method's collective, the server aggregates, the reply travels back.

Simulated time runs on continuously: a worker starts its next step the moment it holds the
reply, while slower workers may still be receiving theirs. So a step's end (its last reply) is
known only once the simulation has moved on; ``StepRecord.done`` is filled in then, and
``finish`` runs the last replies home.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.compute import ComputeModel
from sim.net import collectives
from sim.net.network import Network

PHASES = ("compute_s", "comm_up_s", "aggregate_s", "comm_down_s", "idle_s")

#: Collectives a step can use.
STEP_COLLECTIVES = {
    "none": "no communication (one worker)",
    "ps": "parameter server: push to the server, aggregate, pull the reply",
    "ring": "ring all-reduce of the messages (no server)",
    "halving_doubling": "recursive halving-doubling all-reduce (no server; power-of-two workers)",
    "allgather": "ring all-gather of the messages; every worker aggregates locally",
}

#: How a round of a peer step may travel: the step's collective, or one the round names
#: (1-bit Adam's all-to-all then all-gather).
ROUND_COLLECTIVES = {"ring": collectives.ring_allreduce,
                     "halving_doubling": collectives.halving_doubling_allreduce,
                     "allgather": collectives.ring_allgather, "alltoall": collectives.alltoall}


@dataclass
class StepRecord:
    """When each phase of one step happened (absolute simulated seconds; arrays per worker)."""

    start: np.ndarray       # the worker held the previous reply and began computing
    ready: np.ndarray       # its message was encoded and began to travel
    arrived: np.ndarray     # all of its message had reached the server (or the collective ended)
    agg_start: float        # the server had every message
    agg_end: float          # the reply began to travel
    done: np.ndarray | None  # the worker held the reply (None until the simulation got there)
    up: np.ndarray          # bits each worker sent
    down: int               # bits of the reply to each worker

    def phases(self) -> dict[str, float]:
        """End of the step (last reply, s) and the mean seconds per phase over workers."""
        return {
            "time_s": float(self.done.max()),
            "compute_s": float((self.ready - self.start).mean()),
            "comm_up_s": float((self.arrived - self.ready).mean()),
            "aggregate_s": self.agg_end - self.agg_start,
            "comm_down_s": float((self.done - self.agg_end).mean()),
            "idle_s": float((self.agg_start - self.arrived).mean()),
        }


class Cluster:
    """N workers (and the server) on a network; ``step`` charges one synchronous step its time.

    ``network`` holds the keyword arguments of ``sim.net.network.Network``; ``bits_scale``
    multiplies every payload size (a virtual model larger than the numerics' objective), and
    ``header_bits`` is added to every message after that scaling.
    """

    def __init__(self, n_workers: int, network: dict, compute: ComputeModel,
                 collective: str = "ps", bits_scale: float = 1.0, header_bits: int = 0):
        if collective not in STEP_COLLECTIVES:
            raise ValueError(f"network.collective = {collective!r}; choose one of "
                             f"{', '.join(STEP_COLLECTIVES)}")
        self.n = n_workers
        self.env = simpy.Environment()
        self.net = Network(self.env, n_workers, **network) if collective != "none" else None
        self.compute = compute
        self.collective = collective
        self.bits_scale = bits_scale
        self.header_bits = 0 if collective == "none" else int(header_bits)
        self.records: list[StepRecord] = []
        self._replies = None  # per-worker events: the previous step's reply has arrived

    def scaled(self, payload_bits) -> np.ndarray:
        """Message sizes on the wire (int bits): payloads scaled to the virtual model size,
        plus the per-message header."""
        scaled = np.rint(np.asarray(payload_bits, dtype=np.float64) * self.bits_scale)
        return scaled.astype(np.int64) + self.header_bits

    def step(self, rounds, batch_size: int, n_params: int,
             rng: np.random.Generator) -> StepRecord:
        """Simulate one step whose messages travel in ``rounds``.

        ``rounds``: a list of (up payload bits per worker (N,), down payload bits) exchanged one
        after the other (most methods have one round; PowerSGD sends P, then Q). In a peer step a
        round may add a third element naming its own collective (``ROUND_COLLECTIVES``);
        "alltoall": each worker sends its up bits in N-1 equal pieces, one to each other worker,
        and receives the down bits. ``n_params`` is the (virtual) model size the codec and server
        costs are charged for.
        """
        compute = self.compute.worker_times(self.n, batch_size, n_params, rng)
        scaled = [(self.scaled(up), int(self.scaled(down)), *how) for up, down, *how in rounds]
        if self.collective == "none":
            start = self.records[-1].done if self.records else np.zeros(self.n)
            ready = start + compute
            last = float(ready.max())
            record = StepRecord(start, ready, ready, last, last, ready, np.zeros(self.n, int), 0)
        elif self.collective == "ps":
            record = self._ps_step(compute, scaled, n_params)
        else:
            record = self._peer_step(compute, scaled, n_params)
        self.records.append(record)
        return record

    def message_bits(self, rounds) -> tuple[float, float]:
        """Bits one worker sends and receives in a step (means over workers, virtual size,
        headers included), for the payload ``rounds`` of ``step``.

        Message-level accounting, as in the paper's bits per parameter: an all-reduce
        contributes the vector and returns the reduced one; an all-gather returns the other
        N-1 messages; an all-to-all sends the worker's pieces and returns the others' pieces.
        """
        if self.collective == "none":
            return 0.0, 0.0
        up = down = 0.0
        for u, d, *how in rounds:
            how = how[0] if how else self.collective
            sent = float(self.scaled(u).mean())
            up += sent
            if how in ("ps", "alltoall"):  # what the server or the other workers send it
                down += float(self.scaled(d))
            elif how == "allgather":
                down += sent * (self.n - 1)
            else:
                down += sent
        return up, down

    def finish(self) -> None:
        """Run the simulation until the last step's replies have arrived."""
        self.env.run()

    def _ps_step(self, compute, rounds, n_params) -> StepRecord:
        env, net = self.env, self.net
        if any(len(r) > 2 for r in rounds):
            raise ValueError("network.collective = 'ps': this method's rounds travel by peer "
                             "collectives; choose one of its other collectives")
        start = np.zeros(self.n) if self._replies is None else None
        after, delays = self._replies, compute
        for up, down in rounds:
            # a round's push starts when the worker holds the previous round's reply
            arrived = collectives.push(net, up, delays, after=after)
            env.run(until=env.all_of(arrived))
            if start is None:
                start = np.array([ev.value for ev in self._replies])
            agg_start = env.now
            server_s = self.compute.server_time(int(up.sum()) // 8, self.n, n_params)
            after, delays = collectives.pull(net, down, delay=server_s), np.zeros(self.n)
        replies = after
        record = StepRecord(start, start + compute, np.array([ev.value for ev in arrived]),
                            agg_start, agg_start + server_s, None,
                            sum(r[0] for r in rounds), sum(r[1] for r in rounds))

        def landed(_):
            record.done = np.array([ev.value for ev in replies])

        env.all_of(replies).callbacks.append(landed)
        self._replies = replies
        return record

    def _peer_step(self, compute, rounds, n_params) -> StepRecord:
        # Peers exchange the messages themselves. A collective starts once every rank's
        # previous collective has ended (a barrier between steps, as in synchronous all-reduce
        # training); the aggregation after an all-gather is local to each worker.
        start = self.records[-1].done if self.records else np.zeros(self.n)
        ready = np.maximum(start + compute, self.env.now)
        finished = ready
        for up, _, *how in rounds:
            how = how[0] if how else self.collective
            # an all-gather or all-to-all carries each rank's own message; an all-reduce one
            # common vector. A round starts when the previous one has ended everywhere
            # (simulated time has moved on to its last finisher).
            size = up if how in ("allgather", "alltoall") else int(up.max())
            starts = np.maximum(finished, self.env.now)
            run = ROUND_COLLECTIVES[how](self.net, starts, size)
            finished = self.env.run(until=self.env.process(run))
        local = self.compute.server_time(0, self.n - 1, n_params) if self.collective == "allgather" else 0.0
        last = float(finished.max())
        # every rank holds the result when the last one does (the barrier between steps)
        return StepRecord(start, ready, finished, last, last + local,
                          np.full(self.n, last + local), sum(r[0] for r in rounds), 0)

    def trace_rows(self) -> list[tuple]:
        """Timeline events (node, phase, start_s, end_s, bytes), step by step."""
        nodes = [f"worker{i}" for i in range(self.n)]
        zeros = np.zeros(self.n, dtype=np.int64)
        rows = []
        for r in self.records:
            phases = [("compute", r.start, r.ready, zeros), ("send", r.ready, r.arrived, r.up // 8),
                      ("idle", r.arrived, np.full(self.n, r.agg_start), zeros),
                      ("receive", np.full(self.n, r.agg_end), r.done, zeros + r.down // 8)]
            for phase, begin, end, size in phases:
                rows.extend(zip(nodes, [phase] * self.n, begin.tolist(), end.tolist(),
                                size.tolist()))
            if self.collective != "none":
                rows.append(("server" if self.collective == "ps" else "workers", "aggregate",
                             r.agg_start, r.agg_end, int(r.up.sum()) // 8))
        return rows
