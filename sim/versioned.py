"""A versioned parameter server: updates applied as the messages arrive, in the order the
simulated clock decides (server policies ``async``, ``ssp`` and ``fedbuff``; ``sim.server``).

The server holds the parameters x and a version count, the updates applied so far. A worker
reads (x, version) when the server's reply leaves for it (all workers read the initial x at
time 0), computes its gradient at that x once the reply has landed, and sends its message; the
server buffers the arrivals and applies them as one update of the method (its own aggregate,
then its apply, on the server) when the policy says:

- ``async``: each message at once; its worker's reply leaves when the update is applied;
- ``fedbuff``: once ``k`` messages are buffered; a reply leaves at once, with what is new;
- ``ssp``: once all N messages of a clock are there (a worker's c-th message is of clock c); the
  reply to a worker that has sent c messages leaves once c - ``staleness`` clocks have been
  applied, so nobody runs more than ``staleness`` clocks ahead of the slowest (0: synchronous).

The server does one update at a time (its aggregation cost, ``ComputeModel.server_time``). The
staleness of a message is the number of updates applied between its read and the update it
enters. An update's learning rate (``run.steps`` counts updates) is scaled by the staleness
weight (``Policy.weights``), its mean over the update's messages: FedBuff weights each message
inside a sum, but a vote or a median has no per-message weight, so the step is scaled instead.

A reply carries what its worker has not seen: the replies of the updates applied since its last
read, or the fp32 parameters when those are fewer bits (for a dense method, whose reply to one
update is as large as the parameters, from two updates missed on).

The numerics read exactly what the synchronous loop reads where the order allows: every worker's
gradient at one version comes from one ``objective.grads`` call, of which each worker takes its
row once (a second read of the same version draws a new batch), and a worker's compute time for
its c-th message is its entry of the c-th draw of the compute model. So ``ssp`` with
staleness 0 is the synchronous run on the parameter server: its parameters, and its times
where no reply is larger than the parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from sim.compute import ComputeModel
from sim.methods import Method
from sim.methods.base import F32, worker_arrays
from sim.net.collectives import when_all
from sim.net.network import Network
from sim.server import Policy


@dataclass(eq=False)
class Message:
    """One worker's message: what it read, when each phase happened (absolute s), its bits."""

    worker: int
    clock: int              # the worker's messages before this one
    version: int            # the server's version it read
    loss: float             # its minibatch loss at the x it read
    payload: np.ndarray | None  # None once applied
    up: int                 # bits on the wire
    start: float = math.nan     # it held x and began computing
    ready: float = math.nan     # its message began to travel
    arrived: float = math.nan   # all of it had reached the server
    update: int = -1            # the update (0-based) it entered (-1: none)
    staleness: int = -1
    reply_at: float = math.nan  # the server's next reply to its worker left
    reply_done: float = math.nan
    down: int = 0               # bits of that reply


@dataclass(eq=False)
class Update:
    """One server update: its messages, the one that completed it, the server's work (s)."""

    messages: list
    trigger: Message
    agg_start: float
    agg_end: float


class Numerics:
    """The method's numbers on a versioned server: a worker's read, the server's update.

    ``objective`` gives per-worker gradients (``models.Objective``); ``lrs`` the learning rate of
    each update. ``x`` and ``state`` are the current parameters and the method's state.
    """

    def __init__(self, method: Method, objective, x, state, hp, lrs, policy: Policy,
                 n_workers: int, batch_size: int, dtype, method_rng, data_rng):
        self.method, self.objective, self.x, self.state = method, objective, x, state
        self.hp, self.lrs, self.policy = hp, lrs, policy
        self.n, self.batch, self.dtype = n_workers, batch_size, dtype
        self.method_rng, self.data_rng = method_rng, data_rng
        self.version = 0
        self.rows = worker_arrays(state, n_workers)
        self._batch = None  # (version, losses, grads) of the last grads call
        self._taken = np.zeros(n_workers, dtype=bool)

    def read(self, w: int) -> tuple[float, np.ndarray]:
        """Worker ``w``'s minibatch loss and encoded message (a 1-D uint8 array) at x now."""
        if self._batch is None or self._batch[0] != self.version or self._taken[w]:
            losses, grads = self.objective.grads(self.x, self.n, self.batch, self.data_rng)
            self._batch = (self.version, np.asarray(losses), np.asarray(grads, dtype=self.dtype))
            self._taken[:] = False
        self._taken[w] = True
        _, losses, grads = self._batch
        # the worker's own rows of the state (views: its encode updates them in place)
        mine = {**self.state, **{k: self.state[k][w:w + 1] for k in self.rows}}
        payloads, mine = self.method.encode(mine, grads[w:w + 1], self.hp, self.method_rng)
        for k in self.rows:
            self.state[k][w:w + 1] = mine[k]
        return float(losses[w]), payloads[0]

    def update(self, payloads: list, staleness: list) -> int:
        """Apply one update of the messages ``payloads`` (their staleness in versions); returns
        the reply's payload bits."""
        # one array when the messages have one size, as the synchronous loop hands them over
        same = len({p.size for p in payloads}) == 1
        reply = self.method.aggregate(np.stack(payloads) if same else payloads, self.x.size,
                                      self.hp, self.method_rng)
        lr = self.lrs[self.version] * float(np.mean(self.policy.weights(staleness)))
        if "apply" in self.method.arrivals:  # D-Lion's Avg divides by the signs it counts
            self.x, self.state = self.method.apply(self.x, reply, self.state, self.hp, lr,
                                                   arrived=np.ones(len(payloads), dtype=bool))
        else:
            self.x, self.state = self.method.apply(self.x, reply, self.state, self.hp, lr)
        self.version += 1
        return 8 * reply.size


class VersionedServer:
    """N workers and a versioned server on a network (module docstring).

    ``network``: keyword arguments of ``sim.net.network.Network``; ``bits_scale`` multiplies
    every payload (a virtual model larger than the objective), ``header_bits`` is added to every
    message; ``n_params`` is the (virtual) model size compute and server costs are charged for.
    """

    def __init__(self, n_workers: int, network: dict, compute: ComputeModel, policy: Policy,
                 numerics: Numerics, *, batch_size: int, n_params: int, compute_rng,
                 bits_scale: float = 1.0, header_bits: int = 0):
        self.n, self.policy, self.numerics = n_workers, policy, numerics
        self.env = simpy.Environment()
        self.net = Network(self.env, n_workers, **network)
        self.compute, self.compute_rng = compute, compute_rng
        self.batch, self.n_params = batch_size, n_params
        self.bits_scale, self.header_bits = bits_scale, int(header_bits)
        self.dense = self._scaled(F32.size_bits(numerics.x.size))  # the parameters themselves
        self.updates: list[Update] = []
        self.messages: list[Message] = []
        self.reply_bits: list[int] = []   # scaled payload bits of each update's reply
        self._times: list[np.ndarray] = []  # the compute model's draws, one per clock
        self._clock = np.zeros(n_workers, dtype=np.int64)
        self._seen = np.zeros(n_workers, dtype=np.int64)  # the version each worker holds
        self._last: list[Message | None] = [None] * n_workers
        self._buffer: list[Message] = []
        self._waiting: list[int] = []     # workers whose reply waits (ssp: for the slowest)
        self._busy = 0.0                  # the server is busy until then (s)
        self._scheduled = 0               # updates queued or applied
        self._limit = 0
        self._after = None
        self.stopped = False

    def run(self, updates: int, after_update=None) -> None:
        """Simulate until ``updates`` updates are applied or ``after_update(update_index)``
        returns True after one; then let the replies in flight land."""
        self._limit, self._after = updates, after_update
        for w in range(self.n):
            self._read(w, None)
        self.env.run()

    # ------------------------------------------------------------------ workers

    def _read(self, w: int, reply: simpy.Event | None) -> None:
        """Worker ``w`` reads x now (its reply leaves, or time 0) and computes once it lands."""
        loss, payload = self.numerics.read(w)
        msg = Message(w, int(self._clock[w]), self.numerics.version, loss, payload,
                      self._scaled(8 * payload.size) + self.header_bits)
        self.messages.append(msg)
        self._clock[w] += 1
        if reply is None:
            self._compute(msg, self.env.now)
        else:
            reply.callbacks.append(lambda e: self._compute(msg, e.value))

    def _compute(self, msg: Message, t: float) -> None:
        """The worker holds x at ``t`` (s): it computes, then its message travels."""
        if self.stopped:
            return
        while len(self._times) <= msg.clock:  # clock c's times are the c-th draw, in order
            self._times.append(self.compute.worker_times(self.n, self.batch, self.n_params,
                                                         self.compute_rng, len(self._times)))
        seconds = float(self._times[msg.clock][msg.worker])
        msg.start, msg.ready = t, t + seconds
        sent = self._transfer(msg.worker, msg.up, seconds, upward=True)
        sent.callbacks.append(lambda e: self._arrive(msg, e.value))

    def _transfer(self, w: int, bits: int, delay: float, upward: bool) -> simpy.Event:
        """``bits`` between worker ``w`` and the server(s), one piece per server, ``delay`` s
        from now; the event fires with the time its last piece arrived."""
        servers = self.net.servers
        pieces = bits // len(servers) + (np.arange(len(servers)) < bits % len(servers))
        return when_all(self.env, [
            self.net.transfer(w, s, int(p), delay=delay) if upward else
            self.net.transfer(s, w, int(p), delay=delay) for s, p in zip(servers, pieces)])

    # ------------------------------------------------------------------ server

    def _arrive(self, msg: Message, t: float) -> None:
        """``msg`` has reached the server at ``t`` (now): buffer it, and update or reply as the
        policy says."""
        msg.arrived = t
        self._last[msg.worker] = msg
        if self.stopped:
            return
        kind = self.policy.kind
        self._buffer.append(msg)
        if kind == "ssp":  # clocks complete in order: a worker sends c + 1 after its reply to c
            # in worker order, as the synchronous loop aggregates (the same float sums)
            taken = sorted((m for m in self._buffer if m.clock == self._scheduled),
                           key=lambda m: m.worker)
            due = len(taken) == self.n
        else:
            taken = self._buffer
            due = len(taken) >= (self.policy.k if kind == "fedbuff" else 1)
        if due:
            self._buffer = [m for m in self._buffer if m not in taken]
            self._schedule(taken, msg)
        if kind == "fedbuff" or (kind == "ssp" and not due):
            self._waiting.append(msg.worker)
            self._release()

    def _schedule(self, messages: list, trigger: Message) -> None:
        """Queue an update of ``messages`` (``trigger`` completed it): the server starts it
        once it is free."""
        self._scheduled += 1
        seconds = self.compute.server_time(sum(m.up for m in messages) // 8, len(messages),
                                           self.n_params)
        start = max(self.env.now, self._busy)
        self._busy = start + seconds
        if self._busy == self.env.now:
            self._apply(messages, trigger, start)
        else:
            self.env.timeout(self._busy - self.env.now).callbacks.append(
                lambda _: self._apply(messages, trigger, start))

    def _apply(self, messages: list, trigger: Message, start: float) -> None:
        """The server's work on an update (begun at ``start``) is done: apply it, then reply."""
        if self.stopped:
            return
        index = len(self.updates)
        for m in messages:
            m.update, m.staleness = index, self.numerics.version - m.version
        bits = self.numerics.update([m.payload for m in messages],
                                    [m.staleness for m in messages])
        for m in messages:  # applied: only its record is kept
            m.payload = None
        self.reply_bits.append(self._scaled(bits))
        self.updates.append(Update(messages, trigger, start, self.env.now))
        ended = self._after is not None and self._after(index)
        self.stopped = bool(ended) or len(self.updates) >= self._limit
        if self.policy.kind != "fedbuff":
            self._waiting.append(trigger.worker)
        self._release()

    def _release(self) -> None:
        """Send the replies whose workers may go on (ssp: those at most ``staleness`` clocks
        ahead of what has been applied)."""
        bound = self.policy.staleness if self.policy.kind == "ssp" else math.inf
        go = [w for w in self._waiting if self._clock[w] - self.numerics.version <= bound]
        self._waiting = [w for w in self._waiting if w not in go]
        # in worker order: workers that read one version together draw their random numbers
        # (stochastic rounding, sign coins) in the synchronous loop's order
        for w in sorted(go):
            self._reply(w)

    def _reply(self, w: int) -> None:
        """The updates worker ``w`` has not seen leave for it now; it reads x as they leave."""
        version = self.numerics.version
        missed = sum(self.reply_bits[self._seen[w]:version])
        down = int(min(missed, self.dense)) + self.header_bits
        self._seen[w] = version
        reply = self._transfer(w, down, 0.0, upward=False)
        last = self._last[w]
        last.reply_at, last.down = self.env.now, down
        reply.callbacks.append(lambda e: setattr(last, "reply_done", e.value))
        if not self.stopped:
            self._read(w, reply)

    def _scaled(self, bits) -> int:
        """Payload bits on the wire: scaled to the virtual model, before the header."""
        return int(np.rint(float(bits) * self.bits_scale))
