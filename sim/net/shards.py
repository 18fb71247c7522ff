"""The sharded aggregation (``collective = "alltoall"``): every worker owns 1/N of the
coordinates; an all-to-all sends each worker's piece of every shard to its owner, the owners
aggregate their shards (a vote, a sum, a mean), and an all-gather brings every shard's result
back to every worker. Bandwidth-optimal: about (N-1)/N of a message each way per worker.

The same four calls as the parameter server's (``sim.net.collectives``), so the server's
policies and faults apply unchanged: ``push`` / ``push_batch`` send every worker's pieces
(one flow per worker, over its link and each owner's: it carries N-1 pieces at once), ``pull`` /
``pull_batch`` the all-gather of the owners' results (one flow: every owner to every receiver).
The owners are the workers the step opened for; a worker's message has arrived when its last
piece has. Units: bits, seconds.
"""
from __future__ import annotations

import math

import numpy as np
import simpy

from sim.net.collectives import Arrivals
from sim.net.network import Flow, Network
from sim.net.routes import Routes


class ShardOwners:
    """Push and pull for the shard owners ``owners`` (bool (N,)): ``piece`` bits from every
    worker to each other owner, ``reply`` bits from each owner to every other receiver."""

    def __init__(self, net: Network, owners: np.ndarray):
        self.net = net
        self.owners = owners.copy()
        self.n_owners = int(owners.sum())

    def _route(self, senders: np.ndarray, receivers: np.ndarray) -> tuple[Routes, float]:
        links, weights, latency = self.net.topo.all_pairs(senders, receivers)
        return Routes.of_one_flow(links, weights), latency

    def send(self, w: int, piece: int, delay: float, guard=None) -> simpy.Event:
        """Worker ``w``'s pieces, ``piece`` bits to each other owner, ``delay`` s from now."""
        senders = np.zeros(self.net.n_workers, dtype=bool)
        senders[w] = True
        routes, latency = self._route(senders, self.owners)
        if not routes.link.size:  # the only owner: nothing leaves the worker
            done = self.net.env.event()
            self.net.env.timeout(delay).callbacks.append(lambda _: done.succeed(self.net.env.now))
            return done
        return self.net.transfer_flow(Flow(routes, key=("alltoall", w)), piece, latency,
                                      delay=delay, guard=guard)

    def push(self, pieces, delays, after=None, send=None) -> list:
        """One event per worker (value: when its last piece arrived), worker w sending
        ``pieces[w]`` bits to each other owner ``delays[w]`` s after ``after[w]`` fires (now
        when ``after`` is None). ``send(w, None, bits, delay)`` replaces the plain send (a
        sender that can give up or lose it)."""
        env = self.net.env
        arrived = [env.event() for _ in range(self.net.n_workers)]
        pieces = np.broadcast_to(np.asarray(pieces, dtype=np.int64), (self.net.n_workers,))

        def launch(w, delay):
            piece = int(pieces[w])
            event = (self.send(w, piece, delay) if send is None
                     else send(w, None, piece, delay))
            event.callbacks.append(lambda e: arrived[w].succeed(e.value))

        for w in range(self.net.n_workers):
            if after is None:
                launch(w, float(delays[w]))
            elif after[w].processed:
                launch(w, max(0.0, after[w].value + float(delays[w]) - env.now))
            else:
                after[w].callbacks.append(lambda e, w=w: launch(w, float(delays[w])))
        return arrived

    def push_batch(self, pieces, delays, after: Arrivals | None = None) -> Arrivals:
        """``push`` reporting to one ``Arrivals`` (no event per worker to wait on)."""
        arrivals = Arrivals(self.net.env, self.net.n_workers, 1)
        events = self.push(pieces, delays, after=None if after is None else
                           _events_of(self.net.env, after))
        for w, event in enumerate(events):
            event.callbacks.append(lambda e, w=w: arrivals._arrived([w], e.value))
        return arrivals

    def pull(self, reply: int, delay: float = 0.0, to=None, behind=None) -> list:
        """The owners' results, ``reply`` bits from each to every other worker of ``to`` (bool
        (N,); default all), ``delay`` s from now; one event per worker (value: when it holds
        every shard), never firing for a worker left out. ``behind``: per worker, an earlier
        reply it queues behind (the all-gather starts once every one of those has landed)."""
        env = self.net.env
        to = np.ones(self.net.n_workers, dtype=bool) if to is None else to
        routes, latency = self._route(self.owners, to)
        waits = [ev for ev in (behind or []) if ev is not None and not ev.processed]
        done = env.event()

        def start(_=None):
            if not routes.link.size or reply == 0:
                env.timeout(delay).callbacks.append(lambda _: done.succeed(env.now))
                return
            event = self.net.transfer_flow(Flow(routes, key=("allgather",)), reply, latency,
                                           delay=delay)
            event.callbacks.append(lambda e: done.succeed(e.value))

        if waits:
            env.all_of(waits).callbacks.append(start)
        else:
            start()
        return [done if t else env.event() for t in to.tolist()]

    def pull_batch(self, reply: int, delay: float = 0.0) -> Arrivals:
        """``pull`` to every worker, reporting to one ``Arrivals``."""
        arrivals = Arrivals(self.net.env, self.net.n_workers, 1)
        event = self.pull(reply, delay)[0]
        event.callbacks.append(lambda e: arrivals._arrived(list(range(self.net.n_workers)),
                                                           e.value))
        return arrivals


def _events_of(env, arrivals: Arrivals) -> list:
    """One event per worker that fires when its part of ``arrivals`` has arrived."""
    events = [env.event() for _ in range(arrivals.times.size)]
    for w in np.flatnonzero(~np.isnan(arrivals.times)).tolist():
        events[w].succeed(float(arrivals.times[w]))

    def landed(workers, t):
        for w in workers:
            if not events[w].triggered:
                events[w].succeed(t)

    arrivals.listen(landed)
    return events


def shard_length(n_params: int, owners: int) -> int:
    """Coordinates in one shard (the last may hold fewer; every piece is charged this many)."""
    return math.ceil(n_params / max(owners, 1))
