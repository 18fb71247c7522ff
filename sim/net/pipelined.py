"""Collectives as NCCL runs them: pipelined in chunks, over several channels and sockets, each
symmetric step one flow at one common rate (``sim.net.routes``), not one flow per message.

A ring all-reduce of n bits over p ranks moves 2(p-1) segments of s = n/p bits over every link
of the ring. NCCL cuts each segment into chunks of c bits (``Pipeline.chunk``; its 4 MiB buffer
in 8 slots: 512 KiB) and streams them, so a hop's latency alpha overlaps the transfer of other
chunks. With H steps, k = ceil(s/c) chunks per segment and tau = c/B the time of one chunk on a
link of payload rate B, the last chunk is done at

    T = max(alpha + H s/B,  H (alpha + tau) + (k - 1) tau)

the link-bound term (all H s bits through one link, after one latency) or the latency-bound
one (the last chunk's H hops, behind the k - 1 chunks before it). Here the H segments of every
link are one flow that shares the links max-min fairly with all other traffic (its rate B is
what the network gives it, slow start included); when it has ended, the collective waits the
difference to the latency-bound term, (H - 1) max(0, alpha - (k - 1) tau). ``chunk = 0`` is the
textbook ring: one piece per step, k = 1, T = H (alpha + s/B). A tree's links carry its data
once (not once per hop), so it always waits for its last chunk's 2 x depth hops (``fill``).

The data is split over ``channels`` (NCCL's parallel rings, each with its buffers) and each
channel's over ``sockets`` TCP connections per peer (NCCL_SOCKET_NTHREADS x
NCCL_NSOCKS_PERTHREAD); every (channel, socket) is a flow with a connection of its own, whose
window the transport keeps between steps. Units: bits, seconds, bits/s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.net.network import Flow, Network
from sim.net.routes import Routes

#: NCCL's defaults: NCCL_BUFFSIZE 4 MiB in NCCL_STEPS = 8 slots (a 512 KiB chunk), two
#: channels over one NIC, one socket per channel (NCCL_SOCKET_NTHREADS = NCCL_NSOCKS_PERTHREAD
#: = 1 outside the clouds it tunes for)
CHUNK_BITS = 8 * 512 * 1024
CHANNELS = 2
SOCKETS = 1


@dataclass(frozen=True)
class Pipeline:
    """How a collective streams: ``chunk`` bits per piece (0: the textbook, one piece per
    step), ``channels`` parallel rings, ``sockets`` connections per peer and channel."""

    chunk: int = CHUNK_BITS
    channels: int = CHANNELS
    sockets: int = SOCKETS

    @property
    def flows(self) -> int:
        return self.channels * self.sockets


def fill(alpha: float, hops: int, segment: float, chunk: int, rate: float,
         volume: float) -> float:
    """Seconds a pipelined phase takes beyond its link-bound time alpha + volume / rate: the
    last chunk's path, hops (alpha + tau) + (k - 1) tau with k = ceil(segment / chunk) and
    tau = chunk / rate, where it is longer (see the module docstring). Per channel: segment
    (the bits streamed through the chain), chunk and volume (the bits over each link) in bits,
    rate in bits/s. A ring's links carry every hop's segment (volume = hops x segment), so it
    waits (hops - 1) max(0, alpha - (k - 1) tau); a tree's carry one, so it always waits."""
    if hops <= 1 or segment <= 0:
        return 0.0
    piece = segment if chunk <= 0 else min(chunk, segment)
    k = math.ceil(segment / piece)
    tau = piece / rate
    return max(0.0, hops * (alpha + tau) + (k - 1) * tau - alpha - volume / rate)


@dataclass(frozen=True)
class Phase:
    """One symmetric step sequence of a collective: ``volume`` bits over every link of
    ``routes`` (one flow; a link of weight k carries k times its rate) after ``latency`` s one
    way, pipelined over ``hops`` hops of ``segment`` bits (``fill``); ``key`` names its
    connections (with the channel and the socket)."""

    routes: Routes
    latency: float
    volume: int
    hops: int
    segment: float
    key: str


def stream(net: Network, phase: Phase, pipeline: Pipeline, start: float):
    """SimPy process: ``phase`` as ``pipeline.flows`` flows from ``start`` (absolute s), each on
    its own connection, then the pipeline's fill. Returns when it is all done (s)."""
    env = net.env
    flows, bits = pipeline.flows, phase.volume
    share = [bits // flows + (i < bits % flows) for i in range(flows)]
    delay = max(0.0, start - env.now)
    keys = [None if phase.key is None else (phase.key, i // pipeline.sockets, i % pipeline.sockets)
            for i in range(flows)]
    events = [net.transfer_flow(Flow(phase.routes, key=keys[i]),
                                b, phase.latency, delay=delay)
              for i, b in enumerate(share) if b]
    if not events:
        yield env.timeout(delay)
        return env.now
    yield env.all_of(events)
    alpha = phase.latency + net.overhead
    busy = env.now - start - alpha
    if busy > 0:
        # the last chunk crosses the hops at the rate the flows had at their end (slow start
        # is over by then, and its ramp is in their time already)
        ended = [ev.rate for ev in events if np.isfinite(ev.rate) and ev.rate > 0]
        rate = (float(np.mean(ended)) * pipeline.sockets if ended
                else bits / pipeline.channels / busy)
        extra = fill(alpha, phase.hops, phase.segment / pipeline.channels, pipeline.chunk,
                     rate, busy * rate)
        if extra > 0:
            yield env.timeout(extra)
    return env.now


def run(net: Network, phases: list[Phase], start_times, pipeline: Pipeline):
    """SimPy process: ``phases`` one after the other, from the latest of ``start_times`` (every
    rank must have joined). Returns each rank's completion time (s), all equal."""
    env = net.env
    end = max(float(np.max(start_times)), env.now)
    for phase in phases:
        end = yield from stream(net, phase, pipeline, end)
    if not phases:
        yield env.timeout(max(0.0, end - env.now))
    return np.full(net.n_workers, end)


def estimate(net: Network, phases: list[Phase], pipeline: Pipeline) -> float:
    """Seconds ``phases`` take alone on the network, without slow start: the alpha-beta form
    of ``run`` (alpha the phase's latency plus the per-message overhead, beta from the route's
    bottleneck), the estimate by which ``auto`` chooses a collective."""
    total = 0.0
    for phase in phases:
        if phase.volume == 0:
            continue
        rate = float(phase.routes.bottleneck(net.capacity, 1)[0])
        alpha = phase.latency + net.overhead
        total += alpha + phase.volume / rate + fill(alpha, phase.hops,
                                                    phase.segment / pipeline.channels,
                                                    pipeline.chunk, rate / pipeline.channels,
                                                    phase.volume / pipeline.channels)
    return total


def ring_order(net: Network, members=None) -> np.ndarray:
    """The ring's ranks: the workers (or ``members``, a bool mask) in id order, so the GPUs
    of a node are neighbours and the ring crosses each NIC once each way."""
    workers = np.arange(net.n_workers)
    return workers if members is None else workers[members]


RING_STEPS = {"allreduce": lambda p: 2 * (p - 1), "reduce_scatter": lambda p: p - 1,
              "allgather": lambda p: p - 1}


def ring_phases(net: Network, bits: int, kind: str = "allreduce", ranks=None,
                key: str | None = "ring") -> list[Phase]:
    """A pipelined ring ``kind`` over ``ranks`` (default the workers; an array of rings, one
    per row, run at once): all-reduce or reduce-scatter of a vector of ``bits`` bits, or
    all-gather of ``bits`` bits from every rank."""
    ranks = ring_order(net)[None, :] if ranks is None else np.atleast_2d(ranks)
    p = ranks.shape[1]
    if p == 1 or bits == 0:
        return []
    routes, latency = net.symmetric_route(ranks.reshape(-1), np.roll(ranks, -1, axis=1).reshape(-1))
    hops = RING_STEPS[kind](p)
    segment = bits if kind == "allgather" else -(-bits // p)
    return [Phase(routes, latency, hops * segment, hops, segment, key)]


def binary_trees(p: int) -> list[np.ndarray]:
    """NCCL's double binary tree over ranks 0..p-1: two trees, each an array of parents (-1 at
    the root). The first is the in-order tree of positions i = rank + 1, where a position's
    height is its lowest set bit, so the odd positions are the leaves; the second is mirrored
    (even p) or shifted by one (odd p), so that its leaves are the first tree's inner ranks and
    the reverse. Depths are about log2 p."""
    positions = np.arange(1, p + 1)
    up = np.zeros(p, dtype=np.int64)
    for k, i in enumerate(positions.tolist()):
        node, bit = i, i & -i
        while True:  # climb until the ancestor is a real rank (or there is none)
            left = node - bit
            node = left if left > 0 and (left & -left) == 2 * bit else node + bit
            bit *= 2
            if node <= p or bit > 2 * p:
                break
        up[k] = node - 1 if node <= p and bit <= 2 * p else -1
    first = up
    other = np.arange(p)[::-1] if p % 2 == 0 else (np.arange(p) + 1) % p
    second = np.full(p, -1)
    has = first >= 0
    second[other[has]] = other[first[has]]
    return [first, second]


def tree_depth(parent: np.ndarray) -> int:
    """The longest path from a rank to the root of the tree ``parent`` (edges)."""
    depth = np.zeros(parent.size, dtype=np.int64)
    for _ in range(parent.size):
        up = np.where(parent >= 0, depth[np.maximum(parent, 0)] + 1, 0)
        if (up == depth).all():
            break
        depth = up
    return int(depth.max())


def tree_phases(net: Network, bits: int) -> list[Phase]:
    """NCCL's double binary tree all-reduce of a ``bits``-bit vector: each tree reduces half
    of it to its root and broadcasts it back, both directions streaming chunks at once, so
    every edge carries the half once each way and the last chunk crosses 2 x depth hops. The
    two trees run at once: one phase per tree (``run_concurrently``)."""
    p = net.n_workers
    if p == 1 or bits == 0:
        return []
    phases = []
    for index, (parent, half) in enumerate(zip(binary_trees(p), (bits - bits // 2, bits // 2))):
        child = np.flatnonzero(parent >= 0)
        routes, latency = net.symmetric_route(np.concatenate([child, parent[child]]),
                                              np.concatenate([parent[child], child]))
        phases.append(Phase(routes, latency, half, 2 * tree_depth(parent), half, f"tree{index}"))
    return phases


def all_to_all_phase(net: Network, piece: int, senders=None, receivers=None,
                     key: str | None = "alltoall") -> list[Phase]:
    """Every sender sends ``piece`` bits to every other receiver at once (NCCL's grouped
    sends; bool masks over the workers, default all of them): one phase of one hop."""
    p = net.n_workers
    senders = np.ones(p, dtype=bool) if senders is None else senders
    receivers = np.ones(p, dtype=bool) if receivers is None else receivers
    links, weights, latency = net.topo.all_pairs(senders, receivers)
    if piece == 0 or links.size == 0:
        return []
    return [Phase(Routes.of_one_flow(links, weights), latency, piece, 1, piece, key)]


def run_concurrently(net: Network, phases: list[Phase], start_times, pipeline: Pipeline):
    """SimPy process: every phase at once (the two trees of a tree all-reduce), from the
    latest of ``start_times``. Returns each rank's completion time (s), all equal."""
    env = net.env
    start = max(float(np.max(start_times)), env.now)
    processes = [env.process(stream(net, phase, pipeline, start)) for phase in phases]
    if not processes:
        yield env.timeout(max(0.0, start - env.now))
        return np.full(net.n_workers, start)
    yield env.all_of(processes)
    return np.full(net.n_workers, max(pr.value for pr in processes))


def estimate_concurrent(net: Network, phases: list[Phase], pipeline: Pipeline) -> float:
    """``estimate`` of phases that run at once: each at the rate it gets where they all share
    its busiest link (capacity over the links' total weight), the slowest of them."""
    if not phases:
        return 0.0
    combined = Routes()
    for i, phase in enumerate(phases):
        combined.extend(phase.routes, i)
    load = np.bincount(combined.link, weights=combined.weight, minlength=net.capacity.size)
    times = []
    for phase in phases:
        rate = float(np.min(net.capacity[phase.routes.link] / load[phase.routes.link]))
        alpha = phase.latency + net.overhead
        times.append(alpha + phase.volume / rate + fill(alpha, phase.hops,
                                                        phase.segment / pipeline.channels,
                                                        pipeline.chunk, rate / pipeline.channels,
                                                        phase.volume / pipeline.channels))
    return max(times)
