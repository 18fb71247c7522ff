"""The timing of synchronous data-parallel steps, as SimPy processes over the network.

A step is simulated in two calls. ``gather`` runs the simulation until the server closes the
step: each worker computes, its message travels by the method's collective, and the server's
policy (``sim.server``) decides at a simulated time which messages count. The numerics then
aggregate exactly those messages, and ``reply`` sends the result back. With faults
(``sim.faults``) workers crash and recover and messages are lost; a worker still computing (or
still receiving the previous reply) when its step closes gives that step up (it sends nothing
and keeps its old optimizer state) and starts the next step from the reply. Replies to one
worker travel one after the other.

Simulated time runs on continuously: a worker starts its next step the moment it holds the
reply, while slower workers may still be receiving theirs. So a step's end (its last reply) is
known only once the simulation has moved on; ``StepRecord.done`` is filled in then, and
``finish`` runs the last replies home.
"""
from __future__ import annotations

import math
import numpy as np
import simpy

from sim.compute import ComputeModel
from sim.faults import FaultModel, WorkerFaults, sender
from sim.net import collectives
from sim.net.network import Network
from sim.record import PHASES, StepRecord, trace_rows  # noqa: F401  (PHASES: public)
from sim.server import Policy, StepClose

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


class AllWorkersDown(RuntimeError):
    """No worker is up and none will come back: the run cannot go on."""


class Cluster:
    """N workers (and the server) on a network; ``gather`` and ``reply`` time one step.

    ``network`` holds the keyword arguments of ``sim.net.network.Network``; ``bits_scale``
    multiplies every payload size (a virtual model larger than the numerics' objective), and
    ``header_bits`` is added to every message after that scaling. ``policy`` is the server's
    (``sim.server.Policy``), ``faults`` a ``sim.faults.FaultModel`` drawn from ``fault_rng``.
    """

    def __init__(self, n_workers: int, network: dict, compute: ComputeModel,
                 collective: str = "ps", bits_scale: float = 1.0, header_bits: int = 0,
                 policy: Policy | None = None, faults: FaultModel | None = None,
                 fault_rng: np.random.Generator | None = None):
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
        self.policy = policy or Policy()
        self.faults = None
        if faults is not None and faults.active:
            self.faults = WorkerFaults(faults, n_workers, fault_rng or np.random.default_rng())
        # Whether a step may aggregate fewer than all N messages. Then the reply also carries
        # the N-bit map of whose messages it aggregates, so each worker knows (an Avg divides
        # by their count; an error-feedback worker whose message was discarded keeps it all).
        self.partial = self.policy.kind != "all" or self.faults is not None
        if self.partial and collective != "ps":
            raise ValueError(f"network.collective = {collective!r}: server policies and faults "
                             "need the parameter server ('ps')")
        self.bitmap_bits = 8 * -(-n_workers // 8) if self.partial else 0
        self.records: list[StepRecord] = []
        self._replies = None  # the previous step's reply: Arrivals, or one event per worker (partial)
        self._opening = 0.0
        self._targets = np.ones(n_workers, dtype=bool)  # who gets the next reply
        self._rejoined = np.zeros(n_workers, dtype=bool)
        self._pending = None  # the step gathered but not yet replied to
        self._opened = -1  # the number of records when the last step was opened (``open``)

    # ------------------------------------------------------------------ public API

    def scaled(self, payload_bits) -> np.ndarray:
        """Message sizes on the wire (int bits): payloads scaled to the virtual model size,
        plus the per-message header."""
        scaled = np.rint(np.asarray(payload_bits, dtype=np.float64) * self.bits_scale)
        return scaled.astype(np.int64) + self.header_bits

    @property
    def rejoining(self) -> np.ndarray:
        """bool (N,): workers that come back from a crash in the step being opened (cold
        state); final once ``open`` has been called for it."""
        return self._rejoined

    def open(self, step: int = 0) -> None:
        """Settle the opening of step ``step`` (0-based) before its workers compute: who gets
        the reply, who rejoins. When every worker is down it waits for the first to come back
        (``AllWorkersDown`` if none will), so the workers back then are in ``rejoining``.
        ``gather`` calls it too; a second call for the same step does nothing."""
        if self.collective != "ps" or self._opened == len(self.records):
            return
        self._opened = len(self.records)
        if self._replies is None:
            self._next_opening(0.0)
        if self.faults is not None and not self._targets.any():
            self._wait_for_a_worker(step)

    def step(self, rounds, batch_size: int, n_params: int,
             rng: np.random.Generator) -> StepRecord:
        """Simulate one whole step whose messages travel in ``rounds`` (``gather`` then
        ``reply``): a list of (up payload bits per worker (N,), down payload bits)."""
        last_up, last_down, *how = rounds[-1]
        record = self.gather([*rounds[:-1], (last_up, None, *how)], batch_size, n_params, rng)
        self.reply(last_down)
        return record

    def gather(self, rounds, batch_size: int, n_params: int, rng: np.random.Generator,
               step: int = 0) -> StepRecord:
        """Simulate one step up to the server's close of its last round.

        ``rounds``: a list of (up payload bits per worker (N,), down payload bits) exchanged
        one after the other (most methods have one round; PowerSGD sends P, then Q); the last
        round's down bits are the reply, not known yet (None). In a peer step a round may add a
        third element naming its own collective (``ROUND_COLLECTIVES``); "alltoall": each
        worker sends its up bits in N-1 equal pieces, one to each other worker, and receives
        the down bits. ``n_params`` is the (virtual) model size the codec and server costs are
        charged for; ``step`` is 0-based.
        """
        compute = self.compute.worker_times(self.n, batch_size, n_params, rng, step)
        scaled = [(self.scaled(up), None if down is None else int(self.scaled(down)), *how)
                  for up, down, *how in rounds]
        if self.collective == "none":
            start = self.records[-1].done if self.records else np.zeros(self.n)
            ready = start + compute
            last = float(ready.max())
            record = StepRecord(start, ready, ready, last, last, ready, np.zeros(self.n, int), 0)
        elif self.collective == "ps":
            record = self._ps_gather(compute, scaled, n_params, step)
        else:
            record = self._peer_step(compute, scaled, n_params)
        record.rounds = scaled
        self.records.append(record)
        return record

    def reply(self, down_bits: int) -> None:
        """Send the last round's reply (payload bits, before scaling) to the workers."""
        if self._pending is None:
            return
        record, server_s, n_params = self._pending
        self._pending = None
        down = int(self.scaled(down_bits)) + self.bitmap_bits
        record.down += down
        self._next_opening(record.agg_end)
        if not self.partial:  # every worker gets the reply: no event per worker
            replies = collectives.pull_batch(self.net, down, delay=server_s)
            replies.done.callbacks.append(lambda _: setattr(record, "done", replies.times.copy()))
            self._replies = replies
            return
        targets = self._targets.copy()
        # a reply queues behind the previous one to the same worker while that one is still in
        # flight (a slow link): a server writes its replies to a worker into one connection, in
        # order, and the worker needs both (each is an update)
        behind = None if self._replies is None else [
            ev if sent else None for ev, sent in zip(self._replies, self.records[-2].receivers)]
        replies = collectives.pull(self.net, down, delay=server_s, to=targets, behind=behind)
        record.receivers = targets

        def landed(_):
            record.done = np.array([ev.value if t else math.nan
                                    for ev, t in zip(replies, targets)])

        self.env.all_of([ev for ev, t in zip(replies, targets) if t]).callbacks.append(landed)
        self._replies = replies

    def message_bits(self, record: StepRecord) -> tuple[float, float]:
        """Bits one worker sent and received in a step (means over the N workers, virtual
        size, headers included).

        Message-level accounting, as in the paper's bits per parameter: an all-reduce
        contributes the vector and returns the reduced one; an all-gather returns the other
        N-1 messages; an all-to-all sends the worker's pieces and returns the others' pieces.
        """
        if self.collective == "none":
            return 0.0, 0.0
        if self.collective == "ps":
            up = float(record.up.mean())
            if record.receivers is None:
                return up, float(record.down)
            return up, float(record.down * record.receivers.mean())
        up = down = 0.0
        for u, d, *how in record.rounds:
            how = how[0] if how else self.collective
            sent = float(u.mean())
            up += sent
            if how == "alltoall":  # what the other workers send it
                down += float(d)
            elif how == "allgather":
                down += sent * (self.n - 1)
            else:
                down += sent
        return up, down

    def finish(self) -> None:
        """Run the simulation until the last step's replies have arrived."""
        self.env.run()

    # ------------------------------------------------------------------ parameter server

    def _next_opening(self, opening: float) -> None:
        """The server sends the next reply at ``opening``: who gets it, who rejoins then."""
        self._opening = opening
        if self.faults is None:
            return
        step = len(self.records) + 1
        self._rejoined = self.faults.open_step(step, opening)
        self._targets = ~self.faults.detected(opening)

    def _ps_gather(self, compute, rounds, n_params, step) -> StepRecord:
        env, net, n = self.env, self.net, self.n
        if any(len(r) > 2 for r in rounds):
            raise ValueError("network.collective = 'ps': this method's rounds travel by peer "
                             "collectives; choose one of its other collectives")
        self.open(step)
        opening = self._opening
        after = self._replies
        if after is not None and self.partial:
            after = [ev if t else env.event() for ev, t in zip(after, self._targets)]
        elif after is None and not self._targets.all():
            after = [_fired(env) if t else env.event() for t in self._targets]
        delays = compute
        record = StepRecord(np.full(n, math.nan), np.full(n, math.nan), np.full(n, math.nan),
                            0.0, 0.0, None, np.zeros(n, dtype=np.int64), 0, opening=opening)
        if self.partial and self.policy.kind == "deadline":
            record.deadline = opening + self.policy.deadline
        expected = self._targets.copy()
        closed_at = None
        for index, (up, down) in enumerate(rounds):
            first = index == 0
            closer = (StepClose(env, self.policy if first else Policy(), expected, opening)
                      if self.partial else None)
            if self.partial:
                arrived = collectives.push(net, up, delays, after=after,
                                           send=self._sender(record, closer, first))
                for w, ev in enumerate(arrived):
                    ev.callbacks.append(lambda e, w=w: self._arrival(record, closer, w, e.value))
                if self.faults is not None:
                    closer.watch(np.where(expected, self.faults.detection_times(), math.inf))
                env.run(until=closer.closed)
                expected = closer.arrived.copy()
                if first:
                    record.participants = expected.copy()
                record.aggregated = closer.arrived
            else:
                arrived = collectives.push_batch(net, up, delays, after=after)
                env.run(until=arrived.done)
            if first:
                closed_at = env.now
                record.start = self._starts(compute)
                record.arrived = (arrived.times.copy() if not self.partial else
                                  np.array([ev.value if ev.triggered else math.nan
                                            for ev in arrived]))
                record.ready = record.start + compute
                senders = self._senders(record.ready, closed_at) if self.partial else True
                record.up += np.where(senders, up, 0)
            else:
                record.up += np.where(expected, up, 0)
            agg_start = env.now
            sent = int(up[expected].sum()) if self.partial else int(up.sum())
            server_s = self.compute.server_time(sent // 8, int(expected.sum()), n_params)
            if down is not None:  # an intermediate round's reply, to the participants only
                record.down += down
                after = (collectives.pull(net, down, delay=server_s, to=expected)
                         if self.partial else collectives.pull_batch(net, down, delay=server_s))
                delays = np.zeros(n)
        record.agg_start, record.agg_end = agg_start, agg_start + server_s
        if self.partial:
            self._account(record, closed_at)
        self._pending = (record, server_s, n_params)
        return record

    def _senders(self, ready: np.ndarray, closed_at: float) -> np.ndarray:
        """bool (N,): the workers that finished computing before the close, still up."""
        sent = ~np.isnan(ready) & (ready <= closed_at)
        if self.faults is not None:
            sent &= self.faults.crash_at > np.where(sent, ready, 0.0)
        return sent

    def _account(self, record: StepRecord, closed_at: float) -> None:
        """Who computed, who gave up, who was down: masks, counts and timeline rows."""
        record.computed = self._senders(record.ready, closed_at)
        record.arrived[~record.aggregated] = math.nan
        # every worker the step opened for that had not finished computing, including one
        # still receiving the previous reply (it had not begun: an instant at the close)
        abandoned = self._targets & ~record.computed
        if self.faults is not None:
            abandoned &= self.faults.crash_at > closed_at
            down = self.faults.down(record.agg_start)
            record.down_workers = int(down.sum())
            for w in np.flatnonzero(self.faults.crash_at <= record.agg_start):
                begin = max(record.opening, self.faults.crash_at[w])
                end = min(self.faults.recover_at[w], record.agg_end)
                if begin < end:
                    record.events.append((w, "down", begin, end, 0))
                if record.start[w] < self.faults.crash_at[w] < record.ready[w]:
                    # computing when it crashed: that computation is lost
                    record.events.append((w, "compute", record.start[w],
                                          self.faults.crash_at[w], 0))
        began = np.where(np.isnan(record.start), closed_at, record.start)
        for w in np.flatnonzero(abandoned):
            record.events.append((w, "abandoned", began[w], closed_at, 0))
        record.ready[~record.computed] = math.nan

    def _starts(self, compute) -> np.ndarray:
        """When each worker began this step: when it held the previous reply (NaN: it did not
        take part)."""
        if self._replies is None:
            return np.where(self._targets, self._opening, math.nan)
        if not self.partial:
            return self._replies.times.copy()
        return np.array([ev.value if ev.processed and t else math.nan
                         for ev, t in zip(self._replies, self._targets)])

    def _wait_for_a_worker(self, step) -> None:
        """Nobody is up at the opening: wait for the first recovery, or give up."""
        while not self._targets.any():
            back = self.faults.next_recovery(self._opening)
            if not math.isfinite(back):
                raise AllWorkersDown(f"every worker is down at step {step + 1} "
                                     f"(t = {self._opening:.6g} s) and none comes back")
            self.env.run(until=back)
            self._next_opening(back)
            self._replies = None  # the rejoining workers start from the current parameters

    def _sender(self, record: StepRecord, closer: StepClose, first: bool):
        """How a worker sends a piece of its message this round (see ``sim.faults.sender``);
        later rounds of a multi-round method are always retransmitted, never dropped."""
        def lost(w, begin, end, bits):
            record.lost += 1
            record.events.append((w, "lost", begin, end, bits // 8))

        return sender(self.net, self.faults, closer, lost, drop=first)

    def _arrival(self, record: StepRecord, closer: StepClose, w: int, t: float) -> None:
        if closer.is_closed:
            record.late += 1
            record.events.append((w, "late", record.ready[w], t, 0))
        else:
            closer.arrival(w)

    # ------------------------------------------------------------------ peer collectives

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
        local = (self.compute.server_time(0, self.n - 1, n_params)
                 if self.collective == "allgather" else 0.0)
        last = float(finished.max())
        # every rank holds the result when the last one does (the barrier between steps)
        return StepRecord(start, ready, finished, last, last + local,
                          np.full(self.n, last + local), sum(r[0] for r in rounds), 0)

    # ------------------------------------------------------------------ timeline

    def trace_rows(self) -> list[tuple]:
        """Timeline events (node, phase, start_s, end_s, bytes), step by step."""
        return trace_rows(self.records, self.n, self.collective)


def _fired(env: simpy.Environment) -> simpy.Event:
    """An event that has fired at the current time (a worker that may start now)."""
    event = env.event()
    event.succeed(env.now)
    return event
