"""Collective communication patterns as SimPy processes over a :class:`sim.net.network.Network`.

Run each with ``env.process(collective(net, ...))``; the process returns a float64 array of
per-rank completion times in seconds. A rank is complete when it holds the whole result (and,
for a push, when all of its pieces have reached the servers). Ranks are the network's workers.
Sizes are integer bits; start times are absolute simulated seconds, not earlier than now.

Steps depend on data, not on global barriers: a rank sends its next message as soon as the
message it depends on has arrived and its own start time has passed, so a slow rank delays only
the ranks that wait for its data.

Uneven splits: a message of b bits cut into k pieces gives the first b % k pieces one bit more
than the others (b // k), so pieces sum to b and the largest is ceil(b / k).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from sim.net.network import Network

COLLECTIVES: dict[str, str] = {
    "ps": "parameter server: every worker pushes to the server(s), which send the result back",
    "ring": "ring all-reduce: reduce-scatter then all-gather, 2(p-1) steps of bits/p",
    "halving_doubling": "all-reduce by recursive-halving reduce-scatter then recursive-doubling all-gather (p a power of two)",
    "allgather": "ring all-gather: p-1 steps, each forwarding one rank's contribution",
    "alltoall": "personalised all-to-all: every rank sends a distinct piece to each other rank at once",
    "tree": "binomial-tree broadcast from a root worker, ceil(lg p) rounds",
}


def _starts(net: Network, start_times) -> np.ndarray:
    starts = np.asarray(start_times, dtype=np.float64)
    n = net.n_workers
    if starts.shape != (n,):
        raise ValueError(f"start_times has shape {starts.shape}: must be ({n},), one time per worker")
    if not np.isfinite(starts).all() or (starts < net.env.now).any():
        raise ValueError(f"start_times={starts.min()!r}..{starts.max()!r}: must be finite and >= now ({net.env.now})")
    return starts


def _start(net: Network, start_time) -> float:
    if isinstance(start_time, bool) or not isinstance(start_time, Real) or not net.env.now <= start_time < math.inf:
        raise ValueError(f"start_time={start_time!r}: must be a finite time >= now ({net.env.now})")
    return float(start_time)


def _bits(bits, n: int) -> np.ndarray:
    """An integer or one integer per rank -> int64 array of shape (n,)."""
    arr = np.asarray(bits)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,) or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == object):
        raise ValueError(f"bits={bits!r}: must be an integer >= 0 or {n} integers, one per worker")
    if arr.dtype == object and not all(isinstance(b, Integral) and not isinstance(b, bool) for b in arr):
        raise ValueError(f"bits={bits!r}: must be an integer >= 0 or {n} integers, one per worker")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ValueError(f"bits={bits!r}: sizes must be >= 0")
    return arr


def _one_size(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, Integral) or bits < 0:
        raise ValueError(f"bits={bits!r}: must be an integer >= 0 (the same vector on every rank)")
    return int(bits)


def _split(bits: np.ndarray, k: int) -> np.ndarray:
    """(n,) sizes -> (n, k) piece sizes; see the module docstring."""
    return bits[:, None] // k + (np.arange(k)[None, :] < bits[:, None] % k)


def when_all(env, events):
    """An event that fires when every one of ``events`` has; its value is that time (s)."""
    if len(events) == 1:
        return events[0]
    done = env.event()
    env.all_of(events).callbacks.append(lambda _: done.succeed(env.now))
    return done


def push(net: Network, bits, delays, after=None, send=None) -> list:
    """Worker i sends bits[i] to the server(s), split in one piece per server, starting
    delays[i] seconds after ``after[i]`` fires (or after now when ``after`` is None).

    Returns one event per worker that fires, with that time as its value, when all of the
    worker's pieces have arrived. Chaining on ``after`` lets a worker start its next step the
    moment it holds the previous reply, while slower workers are still receiving theirs.
    ``send(worker, server, bits, delay) -> event`` replaces ``net.transfer`` for each piece (a
    sender that can give a message up or lose it).
    """
    env = net.env
    sizes = _bits(bits, net.n_workers)
    pieces = _split(sizes, len(net.servers))
    arrived = [env.event() for _ in net.workers]

    def launch(w, delay):
        if send is None:
            sent = [net.transfer(w, s, int(pieces[w, j]), delay=delay)
                    for j, s in enumerate(net.servers)]
        else:
            sent = [send(w, s, int(pieces[w, j]), delay) for j, s in enumerate(net.servers)]
        when_all(env, sent).callbacks.append(lambda e: arrived[w].succeed(e.value))

    for w in net.workers:
        if after is None:
            launch(w, float(delays[w]))
        elif after[w].processed:
            launch(w, max(0.0, after[w].value + float(delays[w]) - env.now))
        else:
            after[w].callbacks.append(lambda e, w=w: launch(w, float(delays[w])))
    return arrived


def pull(net: Network, bits, delay: float = 0.0, to=None, behind=None) -> list:
    """The server(s) send bits (int or (n,)) to every worker ``delay`` seconds from now, unicast
    and concurrently, one piece per server. Returns one event per worker (value: arrival, s).

    ``to``: bool (n,), the workers to send to; the others' events never fire (default: all).
    ``behind``: per worker, an earlier reply's event (or None) that this one queues behind.
    """
    env = net.env
    pieces = _split(_bits(bits, net.n_workers), len(net.servers))
    behind = [None] * net.n_workers if behind is None else behind
    return [when_all(env, [net.transfer(s, w, int(pieces[w, j]), delay=delay, behind=behind[w])
                           for j, s in enumerate(net.servers)]) if to is None or to[w]
            else env.event() for w in net.workers]


class Arrivals:
    """When each worker's part of a ``push_batch`` or ``pull_batch`` arrived, kept in one array
    rather than an event per worker.

    ``times``: float64 (n,) seconds, NaN until all of that worker's pieces have arrived.
    ``done``: an event that fires, with ``times`` as its value, once every worker's have.
    ``listen(fn)``: ``fn(workers, t)`` is called at time t with the workers (a list, in the
    order their last pieces arrived) that have just got everything.
    """

    def __init__(self, env, n: int, pieces: int):
        self.times = np.full(n, np.nan)
        self.done = env.event()
        self._pieces = pieces
        self._missing = np.full(n, pieces) if pieces > 1 else None
        self._waiting = n
        self._listeners: list = []

    def listen(self, fn) -> None:
        self._listeners.append(fn)

    def _arrived(self, workers: list, t: float) -> None:
        if self._missing is not None:  # a worker is complete with its last piece
            complete = []
            for w in workers:
                self._missing[w] -= 1
                if self._missing[w] == 0:
                    complete.append(w)
            if not complete:
                return
            workers = complete
        self.times[workers] = t
        self._waiting -= len(workers)
        for fn in self._listeners:
            fn(workers, t)
        if self._waiting == 0:
            self.done.succeed(self.times)


def _send_batch(net: Network, workers: np.ndarray, pieces: np.ndarray, delays, arrivals,
                upward: bool) -> None:
    """Worker ``workers[i]`` sends (upward) or receives its pieces to or from every server,
    ``delays[i]`` seconds from now, in one ``transfer_many`` that reports to ``arrivals``."""
    k = len(net.servers)
    ranks = np.repeat(workers, k)
    servers = np.tile(np.asarray(net.servers), workers.size)
    src, dst = (ranks, servers) if upward else (servers, ranks)
    owner = ranks.tolist()
    net.transfer_many(src, dst, pieces[workers].reshape(-1), np.repeat(delays, k),
                      lambda indices, t: arrivals._arrived([owner[i] for i in indices], t))


def push_batch(net: Network, bits, delays, after: Arrivals | None = None) -> Arrivals:
    """``push`` without an event per worker: worker i sends bits[i] to the server(s) delays[i]
    seconds after its part of ``after`` arrived (or after now when ``after`` is None)."""
    sizes = _bits(bits, net.n_workers)
    pieces = _split(sizes, len(net.servers))
    delays = np.asarray(delays, dtype=np.float64)
    arrivals = Arrivals(net.env, net.n_workers, len(net.servers))
    workers = np.arange(net.n_workers)
    if after is None:
        _send_batch(net, workers, pieces, delays, arrivals, upward=True)
        return arrivals
    known = ~np.isnan(after.times)
    if known.any():
        late = np.maximum(0.0, after.times[known] + delays[known] - net.env.now)
        _send_batch(net, workers[known], pieces, late, arrivals, upward=True)
    after.listen(lambda ws, t: _send_batch(net, np.array(ws), pieces, delays[ws], arrivals,
                                           upward=True))
    return arrivals


def pull_batch(net: Network, bits, delay: float = 0.0) -> Arrivals:
    """``pull`` to every worker without an event per worker."""
    pieces = _split(_bits(bits, net.n_workers), len(net.servers))
    arrivals = Arrivals(net.env, net.n_workers, len(net.servers))
    _send_batch(net, np.arange(net.n_workers), pieces, np.full(net.n_workers, delay), arrivals,
                upward=False)
    return arrivals


def ps_push(net: Network, start_times, bits):
    """Worker i sends bits[i] (int or (n,)) to the server(s) from start_times[i] on; with k
    servers each gets one piece. Returns when each worker's last piece arrived (s)."""
    starts = _starts(net, start_times)
    arrived = push_batch(net, bits, starts - net.env.now)
    yield arrived.done
    return arrived.times.copy()


def ps_pull(net: Network, start_time, bits):
    """The server(s) send bits (int or (n,)) to every worker at start_time, unicast and
    concurrently; with k servers each sends its piece. Returns when each worker has all (s)."""
    received = pull_batch(net, bits, _start(net, start_time) - net.env.now)
    yield received.done
    return received.times.copy()


def _chained(net: Network, starts: np.ndarray, dst: np.ndarray, size: np.ndarray):
    """Run a schedule in which every rank receives exactly one message per step.

    dst, size: (p, S) int arrays; rank r's step-s message goes to dst[r, s] with size[r, s]
    bits. Rank r sends step s once its own start time has passed, the messages of all earlier
    steps addressed to it have arrived, and its own step s-1 message has been delivered: a rank
    sends its messages one after another, in step order, so the message its neighbour needs
    next never shares the uplink with later ones. Returns when each rank holds the result (s).
    """
    env = net.env
    p, n_steps = dst.shape
    finish = starts.copy()
    if n_steps == 0:
        yield env.timeout(starts.max() - env.now)
        return finish
    done = env.event()
    received = np.zeros((p, n_steps + 1), dtype=bool)
    prefix = [0] * p      # steps received in order, so far, per rank
    next_send = [0] * p   # the step each rank sends next
    busy = [False] * p    # a rank's previous message is still on its way
    waiting = [p]

    def try_send(r):
        s = next_send[r]
        if busy[r] or s == n_steps or prefix[r] < s:
            return
        next_send[r], busy[r] = s + 1, True
        to = int(dst[r, s])
        ev = net.transfer(r, to, int(size[r, s]), delay=max(0.0, starts[r] - env.now))
        ev.callbacks.append(lambda e: sent(r, to, s))

    def sent(r, to, s):
        busy[r] = False
        arrived(to, s)
        try_send(r)

    def arrived(r, s):
        received[r, s] = True
        while received[r, prefix[r]]:
            prefix[r] += 1
        if prefix[r] == n_steps:
            finish[r] = max(finish[r], env.now)
            waiting[0] -= 1
            if waiting[0] == 0:
                done.succeed()
        try_send(r)

    for r in range(p):
        try_send(r)
    yield done
    return finish


def ring_allreduce(net: Network, start_times, bits):
    """Ring all-reduce of a bits-long vector over the workers: 2(p-1) steps; in step k rank r
    sends one of p chunks to r+1. Returns when each rank holds the reduced vector (s)."""
    starts, n = _starts(net, start_times), _one_size(bits)
    p = net.n_workers
    chunk = _split(np.array([n]), p)[0]
    ranks = np.arange(p)[:, None]
    k = np.arange(2 * (p - 1))[None, :]
    # Reduce-scatter step k forwards chunk r-k; all-gather step k forwards chunk r+1-(k-(p-1)).
    index = np.where(k < p - 1, ranks - k, ranks + 1 - (k - (p - 1))) % p
    dst = np.broadcast_to((ranks + 1) % p, index.shape)
    return (yield from _chained(net, starts, dst, chunk[index]))


def _power_of_two(p: int) -> None:
    if p & (p - 1):
        low = 1 << (p.bit_length() - 1)
        raise ValueError(f"n_workers={p}: halving_doubling needs a power of two (1, 2, 4, 8, ...; nearest {low} or {2 * low})")


def halving_doubling_allreduce(net: Network, start_times, bits):
    """Rabenseifner all-reduce of a bits-long vector over p = 2^m workers: m recursive-halving
    reduce-scatter steps (partner r xor p/2, ..., r xor 1) then m recursive-doubling all-gather
    steps in reverse. Returns when each rank holds the reduced vector (s)."""
    starts, n = _starts(net, start_times), _one_size(bits)
    p = net.n_workers
    _power_of_two(p)
    ranks = np.arange(p)
    lo, hi = np.zeros(p, dtype=np.int64), np.full(p, n, dtype=np.int64)
    dists, sizes, history = [], [], []
    for d in (p >> (j + 1) for j in range(p.bit_length() - 1)):
        # Both partners hold [lo, hi); the one without bit d keeps the lower half.
        mid = (lo + hi) // 2
        lower = (ranks & d) == 0
        history.append((lo, hi))
        dists.append(d)
        sizes.append(np.where(lower, hi - mid, mid - lo))
        lo, hi = np.where(lower, lo, mid), np.where(lower, mid, hi)
    for d in reversed(dists):
        sizes.append(hi - lo)  # send the segment owned, receive the partner's sibling
        lo, hi = history.pop()
    dsts = [ranks ^ d for d in dists + dists[::-1]]
    dst = np.stack(dsts, axis=1) if dsts else np.zeros((p, 0), dtype=np.int64)
    size = np.stack(sizes, axis=1) if sizes else np.zeros((p, 0), dtype=np.int64)
    return (yield from _chained(net, starts, dst, size))


def ring_allgather(net: Network, start_times, bits):
    """Ring all-gather: rank r contributes bits[r] (int or (p,)); in step k it forwards the
    contribution of rank r-k to r+1. Returns when each rank holds all contributions (s)."""
    starts = _starts(net, start_times)
    p = net.n_workers
    sizes = _bits(bits, p)
    ranks = np.arange(p)[:, None]
    origin = (ranks - np.arange(p - 1)[None, :]) % p
    dst = np.broadcast_to((ranks + 1) % p, origin.shape)
    return (yield from _chained(net, starts, dst, sizes[origin]))


def alltoall(net: Network, start_times, bits):
    """Personalised all-to-all: rank r splits bits[r] (int or (p,)) into p-1 pieces and sends
    piece j to rank r+1+j (mod p), all at once from start_times[r], as NCCL posts grouped sends;
    the pieces share the links max-min fairly. Returns when each rank holds the p-1 pieces
    addressed to it (s)."""
    env = net.env
    starts = _starts(net, start_times)
    p = net.n_workers
    sizes = _bits(bits, p)
    if p == 1:
        yield env.timeout(starts.max() - env.now)
        return starts.copy()
    pieces = _split(sizes, p - 1)
    incoming = [[] for _ in range(p)]
    for r in range(p):
        for j in range(p - 1):
            to = (r + 1 + j) % p
            incoming[to].append(net.transfer(r, to, int(pieces[r, j]),
                                             delay=starts[r] - env.now))
    yield env.all_of([ev for events in incoming for ev in events])
    return np.array([max(ev.value for ev in events) for events in incoming])


def tree_broadcast(net: Network, root: int, start_time, bits):
    """Binomial-tree broadcast of bits from worker root at start_time. Relative rank v receives
    from v - 2^h (2^h its highest bit), then sends to v + 2^j for j = h+1, h+2, ... one after
    another. Returns when each rank holds the data (s); the root holds it at start_time."""
    env = net.env
    p = net.n_workers
    if isinstance(root, bool) or not isinstance(root, Integral) or not 0 <= root < p:
        raise ValueError(f"root={root!r}: must be a worker id in [0, {p - 1}]")
    start, n = _start(net, start_time), _one_size(bits)
    finish = np.full(p, start)
    if p == 1:
        yield env.timeout(start - env.now)
        return finish
    done = env.event()
    waiting = [p - 1]

    def send(v, j):
        child = v + (1 << j)
        if child >= p:
            return
        ev = net.transfer((v + root) % p, (child + root) % p, n, delay=max(0.0, start - env.now))
        ev.callbacks.append(lambda e: delivered(v, j, child, e.value))

    def delivered(v, j, child, t):
        finish[(child + root) % p] = t
        waiting[0] -= 1
        if waiting[0] == 0:
            done.succeed()
        send(child, j + 1)  # the child's first child is at child + 2^(h+1)
        send(v, j + 1)

    send(0, 0)
    yield done
    return finish


class Servers:
    """The parameter server(s)' push and pull (the functions above) as one object, called as
    the shard owners' are (``sim.net.shards``)."""

    n_owners = 1

    def __init__(self, net: Network):
        self.net = net

    def push(self, bits, delays, after=None, send=None):
        return push(self.net, bits, delays, after=after, send=send)

    def push_batch(self, bits, delays, after=None):
        return push_batch(self.net, bits, delays, after=after)

    def pull(self, bits, delay=0.0, to=None, behind=None):
        return pull(self.net, bits, delay=delay, to=to, behind=behind)

    def pull_batch(self, bits, delay=0.0):
        return pull_batch(self.net, bits, delay=delay)
