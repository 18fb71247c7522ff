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

from sim import peers, tuner
from sim.buckets import Buckets, push_buckets
from sim.local import local_step
from sim.peers import STEP_COLLECTIVES, WITHOUT_A_RANK
from sim.compute import ComputeModel
from sim.faults import FaultModel, WorkerFaults, sender
from sim.net import collectives
from sim.net.network import Network
from sim.net.pipelined import Pipeline
from sim.net.shards import ShardOwners, shard_length
from sim.record import PHASES, StepRecord, message_bits, trace_rows  # noqa: F401  (PHASES: public)
from sim.server import Policy, StepClose


class AllWorkersDown(RuntimeError):
    """No worker is up and none will come back: the run cannot go on."""


class Cluster:
    """N workers (and the server) on a network; ``gather`` and ``reply`` time one step.

    ``network`` holds the keyword arguments of ``sim.net.network.Network``; ``bits_scale``
    multiplies every payload size (a virtual model larger than the numerics' objective), and
    ``header_bits`` is added to every message after that scaling. ``policy`` is the server's
    (``sim.server.Policy``), ``faults`` a ``sim.faults.FaultModel`` drawn from ``fault_rng``.
    ``buckets`` (``sim.buckets.Buckets``): overlap the step's message with the backward pass,
    bucket by bucket (None: the message travels whole once the worker has computed).
    """

    def __init__(self, n_workers: int, network: dict, compute: ComputeModel,
                 collective: str = "ps", bits_scale: float = 1.0, header_bits: int = 0,
                 policy: Policy | None = None, faults: FaultModel | None = None,
                 fault_rng: np.random.Generator | None = None,
                 pipeline: Pipeline | None = None, wire_bits=None, candidates=(),
                 buckets: Buckets | None = None):
        if collective not in STEP_COLLECTIVES:
            raise ValueError(f"network.collective = {collective!r}; choose one of "
                             f"{', '.join(STEP_COLLECTIVES)}")
        self.n = n_workers
        self.env = simpy.Environment()
        self.net = Network(self.env, n_workers, **network) if collective != "none" else None
        self.compute = compute
        # ``auto`` is decided at the first step, from its messages' real sizes (``tuner``)
        self.collective = None if collective == "auto" else collective
        self.candidates = tuple(c for c in candidates if c != "auto")
        self.choice: dict | None = None
        self.pipeline = pipeline or Pipeline()
        # (length, n) -> bits of a worker's message of ``length`` coordinates, of a sum of n
        # of them and of the reply to n of them: the shard owners' wire (alltoall, a vote over
        # GPU nodes)
        self.wire_bits = wire_bits
        self.bits_scale = bits_scale
        self.header_bits = 0 if collective == "none" else int(header_bits)
        self.policy = policy or Policy()
        self.buckets = buckets if buckets is not None and len(buckets) > 1 else None
        self.faults = None
        if faults is not None and faults.active:
            self.faults = WorkerFaults(faults, n_workers, fault_rng or np.random.default_rng())
        # On a collective that goes on without a rank, the server's policy or faults can
        # leave messages out; elsewhere only lost messages sent again are possible
        self.uneven = self.policy.kind != "all" or self.faults is not None
        if (self.uneven and collective not in (*WITHOUT_A_RANK, "auto")
                and not self.retransmits_only):
            raise ValueError(f"network.collective = {collective!r}: server policies, crashes "
                             "and dropped messages need a collective that goes on without a "
                             f"rank: {' or '.join(map(repr, WITHOUT_A_RANK))}")
        self._settle_partial()
        self.records: list[StepRecord] = []
        self._replies = None  # the previous step's reply: Arrivals, or one event per worker (partial)
        self._opening = 0.0
        self._targets = np.ones(n_workers, dtype=bool)  # who gets the next reply
        self._rejoined = np.zeros(n_workers, dtype=bool)
        self._pending = None  # the step gathered but not yet replied to
        self._owners = None  # the shard owners of the steps opened so far (alltoall)
        self._opened = -1  # the number of records when the last step was opened (``open``)
        self.in_flight = None  # (record index, end per rank): a collective behind (sim.local)

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
        if self.collective not in (*WITHOUT_A_RANK, None) or self._opened == len(self.records):
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
        one after the other (most methods have one round; PowerSGD sends P, then Q; none: a
        step of compute only, ``sim.local``); the last
        round's down bits are the reply, not known yet (None). In a peer step a round may add a
        third element naming its own collective (``ROUND_COLLECTIVES``); "alltoall": each
        worker sends its up bits in N-1 equal pieces, one to each other worker, and receives
        the down bits. ``n_params`` is the (virtual) model size the codec and server costs are
        charged for; ``step`` is 0-based.
        """
        compute = self.compute.worker_times(self.n, batch_size, n_params, rng, step)
        if not rounds:  # a step that sends nothing (local updates): compute only
            return local_step(self, compute)
        scaled = [(self.scaled(up), None if down is None else int(self.scaled(down)), *how)
                  for up, down, *how in rounds]
        if self.collective is None:
            self._choose(scaled, n_params)
        if self.collective == "none":
            start = self.records[-1].done if self.records else np.zeros(self.n)
            ready = start + compute
            last = float(ready.max())
            record = StepRecord(start, ready, ready, last, last, ready, np.zeros(self.n, int), 0)
        elif self.collective in WITHOUT_A_RANK:
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
        hub = self._hub()
        if self.collective == "alltoall":  # each owner's share of the reply, to the others
            down = self.shard_bits(n_params, 2) + self.bitmap_bits
            record.down += down * (hub.n_owners - 1)
        else:
            down = int(self.scaled(down_bits)) + self.bitmap_bits
            record.down += down
        self._next_opening(record.agg_end)
        if not self.partial:  # every worker gets the reply: no event per worker
            replies = hub.pull_batch(down, delay=server_s)
            replies.done.callbacks.append(lambda _: setattr(record, "done", replies.times.copy()))
            self._replies = replies
            return
        targets = self._targets.copy()
        # a reply queues behind the previous one to the same worker while that one is still in
        # flight (a slow link): a server writes its replies to a worker into one connection, in
        # order, and the worker needs both (each is an update)
        behind = None if self._replies is None else [
            ev if sent else None for ev, sent in zip(self._replies, self.records[-2].receivers)]
        replies = hub.pull(down, delay=server_s, to=targets, behind=behind)
        record.receivers = targets

        def landed(_):
            record.done = np.array([ev.value if t else math.nan
                                    for ev, t in zip(replies, targets)])

        self.env.all_of([ev for ev, t in zip(replies, targets) if t]).callbacks.append(landed)
        self._replies = replies

    def message_bits(self, record: StepRecord) -> tuple[float, float]:
        """Bits one worker sent and received in a step (``sim.record.message_bits``)."""
        return message_bits(record, self.collective, self.n, self.vote)

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
        env, n = self.env, self.n
        if any(len(r) > 2 for r in rounds):
            raise ValueError(f"network.collective = {self.collective!r}: this method's rounds "
                             "travel by peer collectives; choose one of its other collectives")
        self.open(step)
        hub = self._hub()
        sharded = self.collective == "alltoall"
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
            first, last = index == 0, index == len(rounds) - 1
            if sharded:  # the last round in shards; an earlier one whole, to every owner
                if last:
                    up = np.full(n, self.shard_bits(n_params, 0))
                sent_bits = up * (hub.n_owners - 1)
            else:
                sent_bits = up
            closer = (StepClose(env, self.policy if first else Policy(), expected, opening)
                      if self.partial else None)
            if self.partial:
                arrived = hub.push(up, delays, after=after,
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
            elif self.buckets is not None and len(rounds) == 1:
                arrived, offsets, bucket_bits = push_buckets(env, hub, self.buckets, up,
                                                             compute, after, self.header_bits)
                sent_bits = bucket_bits.sum(axis=0) * (hub.n_owners - 1 if sharded else 1)
            else:
                arrived = hub.push_batch(up, delays, after=after)
                env.run(until=arrived.done)
            if first:
                closed_at = env.now
                record.start = self._starts(compute)
                record.arrived = (arrived.times.copy() if not self.partial else
                                  np.array([ev.value if ev.triggered else math.nan
                                            for ev in arrived]))
                record.ready = record.start + compute
                if self.buckets is not None and not self.partial and len(rounds) == 1:
                    record.buckets = (record.start + offsets, arrived.bucket_times, bucket_bits)
                senders = self._senders(record.ready, closed_at) if self.partial else True
                record.up += np.where(senders, sent_bits, 0)
            else:
                record.up += np.where(expected, sent_bits, 0)
            agg_start = env.now
            sent = int(up[expected].sum()) if self.partial else int(up.sum())
            owners = hub.n_owners if sharded else 1  # the owners aggregate their shards at once
            server_s = self.compute.server_time(sent // 8 // owners, int(expected.sum()),
                                                n_params // owners)
            if down is not None and not sharded:  # an intermediate reply, to the participants
                record.down += down
                after = (hub.pull(down, delay=server_s, to=expected)
                         if self.partial else hub.pull_batch(down, delay=server_s))
                delays = np.zeros(n)
            elif down is not None:  # the owners hold every round-1 message: nothing comes back
                after = [_fired(env) if e else env.event() for e in expected] if self.partial \
                    else None
                delays = np.full(n, server_s)
        record.agg_start, record.agg_end = agg_start, agg_start + server_s
        if self.partial:
            self._account(record, closed_at)
        self._pending = (record, server_s, n_params)
        return record

    def _hub(self):
        """Who aggregates: the server(s), or the shard owners (the workers the step opened
        for), with the same push and pull."""
        if self.collective == "ps":
            return collectives.Servers(self.net)
        if self._owners is None or not np.array_equal(self._owners.owners, self._targets):
            self._owners = ShardOwners(self.net, self._targets)
        return self._owners

    def shard_bits(self, n_params: int, part: int) -> int:
        """Bits of a shard (the owners' share of ``n_params`` coordinates) on the wire: part 0
        a worker's piece, 1 a sum of the pieces, 2 the owner's reply; header included."""
        owners = self._hub().n_owners
        bits = self.wire_bits(shard_length(n_params, owners), owners)[part]
        return int(bits) + self.header_bits

    def _choose(self, rounds, n_params: int) -> None:
        """Settle ``auto``: the candidate the alpha-beta estimate finds fastest for this step's
        messages (``sim.tuner``)."""
        self.choice = tuner.choose(self, rounds, n_params)
        self.collective = self.choice["collective"]
        self._settle_partial()

    def _settle_partial(self) -> None:
        """Whether a step may aggregate fewer than all N messages (a policy or faults on a
        collective that goes on without a rank). Then the reply also carries the N-bit map of
        whose messages it aggregates, so each worker knows (an Avg divides by their count; an
        error-feedback worker whose message was discarded keeps it all)."""
        self.partial = self.uneven and self.collective in WITHOUT_A_RANK
        self.bitmap_bits = 8 * -(-self.n // 8) if self.partial else 0

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

        hub = self._hub()
        transfer = (None if self.collective == "ps" else
                    lambda w, server, bits, wait, guard: hub.send(w, bits, wait, guard))
        return sender(self.net, self.faults, closer, lost, drop=first, transfer=transfer)

    def _arrival(self, record: StepRecord, closer: StepClose, w: int, t: float) -> None:
        if closer.is_closed:
            record.late += 1
            record.events.append((w, "late", record.ready[w], t, 0))
        else:
            closer.arrival(w)

    # ------------------------------------------------------------------ peer collectives

    def _peer_step(self, compute, rounds, n_params) -> StepRecord:
        return peers.peer_step(self, compute, rounds, n_params)

    @property
    def retransmits_only(self) -> bool:
        """All the policy and faults can do is delay a lost message until it is sent again:
        any collective allows that."""
        model = self.faults.model if self.faults is not None else None
        return self.policy.kind == "all" and (model is None or (
            not model.crash_workers and model.crash_rate == 0 and model.on_loss == "retransmit"))

    @property
    def vote(self) -> bool:
        """The method's aggregate is not a sum an all-reduce computes (a vote): over GPU nodes
        it is summed at each node's first GPU, then shared out among those."""
        return "ring" not in self.candidates

    # ------------------------------------------------------------------ timeline

    def trace_rows(self) -> list[tuple]:
        """Timeline events (node, phase, start_s, end_s, bytes), step by step."""
        return trace_rows(self.records, self.n, self.collective)


def _fired(env: simpy.Environment) -> simpy.Event:
    """An event that has fired at the current time (a worker that may start now)."""
    event = env.event()
    event.succeed(env.now)
    return event
