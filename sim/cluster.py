"""The timing of synchronous data-parallel steps, as SimPy processes over the network.

The numerics of a step are computed first (they do not depend on timing: every message of a
synchronous step arrives); the cluster then charges the step its time: each worker computes,
its message travels by the method's collective, the server aggregates, the reply travels back.
Simulated time carries over from step to step: a worker starts its next step the moment it
holds the reply, so a slow link or a straggler delays everyone through the barrier.
"""
from __future__ import annotations

import numpy as np
import simpy

from sim import collectives
from sim.compute import ComputeModel
from sim.network import Network

PHASES = ("compute_s", "comm_up_s", "aggregate_s", "comm_down_s", "idle_s")

#: Collectives a step can use, and which family each belongs to.
STEP_COLLECTIVES = {
    "none": "no communication (one worker)",
    "ps": "parameter server: push to the server, aggregate, pull the reply",
    "ring": "ring all-reduce of the messages (no server)",
    "halving_doubling": "recursive halving-doubling all-reduce (no server; power-of-two workers)",
    "allgather": "ring all-gather of the messages; every worker aggregates locally",
}


class Cluster:
    """N workers (and the server) on a network; ``step`` charges one synchronous step its time.

    ``network`` holds the keyword arguments of ``sim.network.Network``; ``bits_scale``
    multiplies every message size (a virtual model larger than the numerics' objective).
    """

    def __init__(self, n_workers: int, network: dict, compute: ComputeModel,
                 collective: str = "ps", bits_scale: float = 1.0, trace: bool = False):
        if collective not in STEP_COLLECTIVES:
            raise ValueError(f"network.collective = {collective!r}; choose one of "
                             f"{', '.join(STEP_COLLECTIVES)}")
        self.n = n_workers
        self.env = simpy.Environment()
        self.net = Network(self.env, n_workers, **network) if collective != "none" else None
        self.compute = compute
        self.collective = collective
        self.bits_scale = bits_scale
        self.holds_reply = np.zeros(n_workers)  # s: when each worker got the last reply
        self.trace: list[tuple] | None = [] if trace else None

    def scaled(self, bits: np.ndarray) -> np.ndarray:
        """Message sizes on the wire (int bits) for the virtual model size."""
        return np.rint(np.asarray(bits, dtype=np.float64) * self.bits_scale).astype(np.int64)

    def step(self, up_bits: np.ndarray, down_bits: int, batch_size: int, n_params: int,
             rng: np.random.Generator) -> dict[str, float]:
        """Simulate one step whose messages are ``up_bits`` (per worker) and ``down_bits``.

        Returns the time the step ends (``time_s``, when the last worker holds the reply) and
        the per-phase means over workers (``PHASES``, seconds).
        """
        start = self.holds_reply.copy()
        compute = self.compute.worker_times(self.n, batch_size, n_params, rng)
        ready = start + compute
        up = self.scaled(up_bits)
        down = int(self.scaled(down_bits))
        if self.collective == "none":
            done, arrived, agg_start, agg_end = ready, ready, ready.max(), ready.max()
        elif self.collective == "ps":
            server_s = self.compute.server_time(int(up.sum()) // 8, self.n, n_params)
            arrived, agg_start, agg_end, done = self._run(
                self._ps_round(ready, up, down, server_s))
        else:
            arrived, agg_start, agg_end, done = self._run(self._peer_round(ready, up, n_params))
        self.holds_reply = done
        phases = {
            "compute_s": compute.mean(),
            "comm_up_s": (arrived - ready).mean(),
            "aggregate_s": agg_end - agg_start,
            "comm_down_s": (done - agg_end).mean() if self.collective == "ps" else 0.0,
            "idle_s": (agg_start - arrived).mean(),
        }
        if self.trace is not None:
            self.trace.append((start, ready, arrived, agg_start, agg_end, done, up, down))
        return {"time_s": float(done.max()), **{k: float(v) for k, v in phases.items()}}

    def _run(self, process):
        return self.env.run(until=self.env.process(process))

    def _ps_round(self, ready, up, down, server_s):
        arrived = yield self.env.process(collectives.ps_push(self.net, ready, up))
        agg_start = float(arrived.max())
        agg_end = agg_start + server_s
        yield self.env.timeout(agg_end - self.env.now)
        done = yield self.env.process(collectives.ps_pull(self.net, agg_end, down))
        return arrived, agg_start, agg_end, done

    def _peer_round(self, ready, up, n_params):
        # Peers exchange the messages themselves; the (local) aggregation follows the exchange.
        bits = int(up.max())
        if self.collective == "ring":
            finished = yield self.env.process(collectives.ring_allreduce(self.net, ready, bits))
        elif self.collective == "halving_doubling":
            finished = yield self.env.process(
                collectives.halving_doubling_allreduce(self.net, ready, bits))
        else:
            finished = yield self.env.process(collectives.ring_allgather(self.net, ready, bits))
        local = self.compute.server_time(0, self.n - 1, n_params) if self.collective == "allgather" else 0.0
        done = finished + local
        yield self.env.timeout(float(done.max()) - self.env.now)
        last = float(finished.max())
        return finished, last, last + local, done

    def trace_rows(self) -> list[tuple]:
        """Timeline events (node, phase, start_s, end_s, bytes), step by step."""
        nodes = [f"worker{i}" for i in range(self.n)]
        zeros = np.zeros(self.n, dtype=np.int64)
        rows = []
        for start, ready, arrived, agg_start, agg_end, done, up, down in self.trace or []:
            phases = [("compute", start, ready, zeros), ("send", ready, arrived, up // 8),
                      ("idle", arrived, np.full(self.n, agg_start), zeros)]
            if self.collective == "ps":
                phases.append(("receive", np.full(self.n, agg_end), done, zeros + down // 8))
            for phase, begin, end, size in phases:
                rows.extend(zip(nodes, [phase] * self.n, begin.tolist(), end.tolist(), size.tolist()))
            if self.collective == "ps":
                rows.append(("server", "aggregate", agg_start, agg_end, int(up.sum()) // 8))
        return rows
