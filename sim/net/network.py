"""Flow-level network model: full-duplex NICs, latency paid first, max-min fair sharing.

A message from ``src`` to ``dst`` first waits its path latency plus a per-message software
overhead (alpha), then becomes a *flow* that crosses a fixed route of directed links. Active
flows share every link max-min fairly (progressive filling, as in SimGrid's fluid model), or,
with ``sharing="fifo"``, each link serves one flow at a time in arrival order. The transport
(``sim.net.transport``) sets the links' payload rate (framing) and caps each flow's rate (TCP
windows). Rates change only when a flow starts or ends or a cap changes (a slow-start round
ends); everything that happens at one instant is folded into a single recomputation.

Units: time in float64 seconds, sizes in integer bits, rates in bits/s, ``tcp_window`` and
``mtu`` in bytes.

Not modelled: packets, TCP incast collapse, PFC/ECMP effects, loss. FIFO mode is not
store-and-forward: a flow holds every link of its route for the whole time it transmits, so a
message crossing a switch is not charged twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import simpy

from sim.net import transport as tp
from sim.net.routes import Routes
from sim.net.sharing import SHARINGS, fifo_rates, max_min_rates
from sim.net.topology import TOPOLOGIES, Topology, _nonnegative, _positive  # noqa: F401

# SimPy pops same-time events by (priority, insertion order); URGENT = 0 and NORMAL = 1.
# Rate updates use a later priority so that every start and completion of an instant, even
# one triggered by a process resumed at that instant, is seen by one single recomputation.
_LATE = 2

# A flow is complete when what is left is within this fraction of its size (float residue of
# subtracting rate*dt), or when its finish time is indistinguishable from now.
_RTOL = 1e-12


@dataclass(frozen=True)
class Flow:
    """What a collective's flow carries besides its size: its own ``routes`` (one flow, see
    ``sim.net.routes``), the ``key`` of the connection whose window it uses (the transport
    keeps one per key, across messages; None: none, as inside a node), and ``limit``, the bits
    it may have in flight per round trip besides the window (NCCL's buffer; inf: no limit)."""

    routes: Routes
    key: object = None
    limit: float = math.inf


class FlowDone(simpy.Event):
    """The end of a collective's flow (``transfer_flow``); ``rate``: the bits/s it moved at
    last, once it has ended."""

    rate = math.nan


class _LateEvent(simpy.Event):
    """An already-triggered event processed after all ordinary events of its instant."""

    def __init__(self, env: simpy.Environment, delay: float, generation: int):
        super().__init__(env)
        # Same initialisation as simpy.Timeout, which is how SimPy itself pre-triggers events.
        self._ok = True
        self._value = generation
        env.schedule(self, _LATE, delay)


class _Delivery(simpy.Event):
    """An already-triggered ordinary event whose callback hands a run of arrivals over: it takes
    the place in the queue of the first of the per-message events it replaces."""

    def __init__(self, env: simpy.Environment, deliver, indices: list, now: float):
        super().__init__(env)
        self._ok = True
        self._value = now
        self.callbacks.append(lambda _: deliver(indices, now))
        env.schedule(self)


def _is_int(value) -> bool:
    # The exact-type test first: ABC checks are slow on the per-message path.
    return type(value) is int or (isinstance(value, Integral) and not isinstance(value, bool))


class Network:
    """Flow-level network: full-duplex NICs, latency paid first, max-min fair sharing.

    Nodes 0..n_workers-1 are workers, the next ``servers`` ids are servers; links and routes
    are those of ``sim.net.topology`` (star, sharded, racks, nodes of GPUs).

    bandwidth, latency: per worker (per node with topology "nodes"; scalar or sequence), bits/s
    and one-way seconds.
    server_bandwidth: bits/s of each server NIC (default: the largest worker bandwidth).
    overhead: seconds of software cost paid once per message, before the flow starts.
    rack_size / oversubscription / rack_bandwidth / rack_latency: topology "racks"; a rack
    uplink carries the sum of its workers' bandwidths / oversubscription unless rack_bandwidth
    is given, and crossing it adds rack_latency seconds.
    gpus_per_node / intra_bandwidth / intra_latency: topology "nodes"; workers of a node share
    its NIC and talk to each other over their intra-node links (bits/s per GPU and direction,
    one-way seconds), where no transport framing or slow start applies.
    transport: "tcp" (slow start, Ethernet framing), "rdma" (InfiniBand framing) or "fluid"
    (ideal links); see ``sim.net.transport``.
    mtu: bytes per packet (tcp: 576-9216, default 1500; rdma: an InfiniBand MTU, default 4096).
    initial_window: segments (tcp; default 10). rto: seconds, the minimum retransmission
    timeout that decides restart after idle (tcp; default 0.2).
    tcp_window: bytes; caps a flow at 8*window/RTT (tcp and fluid; no cap when None). With
    fluid, RTT = 2*path latency; with tcp, see ``TcpConnections``.
    goodput: fraction of every link's rate that carries payload (default: the transport's
    framing; 1 for fluid).
    """

    def __init__(self, env: simpy.Environment, n_workers: int, *, bandwidth, latency=0.0,
                 server_bandwidth=None, server_latency=0.0, overhead=0.0, topology="star",
                 servers=1, rack_size=None, oversubscription=1.0, rack_bandwidth=None,
                 rack_latency=0.0, gpus_per_node=None, intra_bandwidth=None, intra_latency=0.0,
                 sharing="fair", tcp_window=None, goodput=None, transport="tcp", mtu=None,
                 initial_window=None, rto=None):
        if not isinstance(env, simpy.Environment):
            raise ValueError(f"env={env!r}: must be a simpy.Environment")
        if sharing not in SHARINGS:
            raise ValueError(f"sharing={sharing!r}: must be one of {', '.join(SHARINGS)}")
        self.topo = Topology(n_workers, bandwidth=bandwidth, latency=latency,
                             server_bandwidth=server_bandwidth, server_latency=server_latency,
                             topology=topology, servers=servers, rack_size=rack_size,
                             oversubscription=oversubscription, rack_bandwidth=rack_bandwidth,
                             rack_latency=rack_latency, gpus_per_node=gpus_per_node,
                             intra_bandwidth=intra_bandwidth, intra_latency=intra_latency)
        self.overhead = _nonnegative("overhead", overhead)
        self.tcp_window = None if tcp_window is None else _positive("tcp_window", tcp_window)
        self.framing, self._transport = tp.build(transport, mtu, initial_window, rto, self.tcp_window)
        self.transport = transport
        if goodput is None:
            goodput = 1.0 if self.framing is None else self.framing.goodput
        if not (isinstance(goodput, Real) and not isinstance(goodput, bool) and 0 < goodput <= 1):
            raise ValueError(f"goodput={goodput!r}: must be a number in (0, 1]")

        self.env = env
        n, k = self.topo.n_workers, self.topo.n_servers
        self.n_workers = n
        self.topology = topology
        self.sharing = sharing
        self.goodput = float(goodput)
        self.workers = list(range(n))
        self.servers = list(range(n, n + k))
        self.server = self.servers[0]
        # the transport's framing takes its share of the NICs' links; NCCL's own protocol
        # runs on the intra-node links
        self.capacity = self.topo.capacity * np.where(self.topo.nic, self.goodput, 1.0)
        self._pad = self.topo.pad
        self._n_nodes = n + k

        self.sent_bits = 0
        self.delivered_bits = 0
        self.recomputations = 0

        # Active flows, kept in arrival order (FIFO relies on it).
        self._routes = Routes()
        self._left = np.zeros(0)
        self._size = np.zeros(0, dtype=np.int64)
        self._rate = np.zeros(0)
        # per active flow: its event, or (deliver, index) for a ``transfer_many`` message
        self._done: list = []
        # src, dst, bits, latency, done (as in self._done), and a ``Flow`` or None (a message)
        self._pending: list[tuple] = []
        self._last = 0.0
        self._generation = 0
        self._wake_time = None

    # ------------------------------------------------------------------ public API

    def path_latency(self, src: int, dst: int) -> float:
        """One-way latency in seconds: the two access links plus rack uplinks crossed."""
        self._check_pair(src, dst)
        return self._path_latency(src, dst)

    def transfer(self, src: int, dst: int, bits: int, *, delay: float = 0.0,
                 guard=None, behind=None) -> simpy.Event:
        """Start a message ``delay`` seconds from now (default: now); the event fires when its
        last bit arrives, with that time in seconds as its value.

        ``guard``: a callable asked when the latency has elapsed and the message would start to
        flow; if it returns False the message is never sent (its sender gave it up or went
        down) and the event never fires. ``behind``: an earlier message's event; this one
        queues behind it, flowing once that one has arrived (its latency is not paid again).
        """
        self._check_pair(src, dst)
        if not _is_int(bits) or bits < 0:
            raise ValueError(f"bits={bits!r}: must be an integer >= 0")
        if not isinstance(delay, Real) or not 0 <= delay < math.inf:
            raise ValueError(f"delay={delay!r}: must be a finite number of seconds >= 0")
        bits = int(bits)
        latency = self._path_latency(src, dst)
        done = self.env.event()
        start = self.env.timeout(delay + latency + self.overhead)
        start.callbacks.append(lambda _: self._join(src, dst, bits, latency, done, guard, behind))
        return done

    def transfer_many(self, src, dst, bits, delay, deliver) -> None:
        """Start message i from ``src[i]`` to ``dst[i]`` with ``bits[i]`` bits ``delay[i]``
        seconds from now (``delay``: one number or one per message), as many ``transfer`` calls
        in order would, with their inputs checked once for all.

        Instead of an event per message, messages that start at one instant share one event,
        and ``deliver(indices, t)`` is called with the indices (a list, in the order their
        flows ended) of the messages whose last bit arrived at time t, once per instant (or per
        run of them, when other messages end in between).
        """
        src, dst = np.asarray(src), np.asarray(dst)
        bits, n_nodes = np.asarray(bits), self._n_nodes
        delay = np.broadcast_to(np.asarray(delay, dtype=np.float64), src.shape)
        for name, nodes in (("src", src), ("dst", dst)):
            if nodes.dtype.kind not in "iu" or not ((nodes >= 0) & (nodes < n_nodes)).all():
                raise ValueError(f"{name}={nodes!r}: must be node ids in [0, {n_nodes - 1}]")
        if (src == dst).any():
            raise ValueError("dst: must differ from src (a node does not send to itself)")
        if bits.dtype.kind not in "iu" or (bits < 0).any():
            raise ValueError(f"bits={bits!r}: must be integers >= 0")
        if not (np.isfinite(delay) & (delay >= 0)).all():
            raise ValueError(f"delay={delay!r}: must be finite numbers of seconds >= 0")
        latency = self.topo.latency(src, dst)
        start = (delay + latency + self.overhead).tolist()
        # one start event per instant, in the order of its first message: the order in which
        # per-message events would have fired (the instant as SimPy computes it, now + delay)
        groups: dict[float, tuple[float, list]] = {}
        now = self.env.now
        for i, (a, b, size, lat, wait) in enumerate(zip(src.tolist(), dst.tolist(),
                                                        bits.tolist(), latency.tolist(), start)):
            groups.setdefault(now + wait, (wait, []))[1].append((a, b, size, lat, (deliver, i),
                                                                  None))
        for wait, batch in groups.values():
            event = self.env.timeout(wait)
            event.callbacks.append(lambda _, batch=batch: self._join_many(batch))

    def symmetric_route(self, src, dst) -> tuple[Routes, float]:
        """The route of one flow that stands for the messages src[i] -> dst[i] all moving at
        one common rate (a collective's symmetric step), and their longest one-way latency (s):
        a link crossed by k of them carries k times the flow's rate."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        entries = self.topo.rows(src, dst).reshape(-1)
        links, counts = np.unique(entries[entries != self._pad], return_counts=True)
        return Routes.of_one_flow(links, counts), float(self.topo.latency(src, dst).max())

    def transfer_flow(self, flow: Flow, bits: int, latency: float, *,
                      delay: float = 0.0, guard=None) -> simpy.Event:
        """Start a collective's ``flow`` of ``bits`` bits ``delay`` s from now, after its
        ``latency`` (s, plus the per-message overhead); the event fires at its end (value: that
        time, s). ``guard`` as for ``transfer``."""
        if not _is_int(bits) or bits < 0:
            raise ValueError(f"bits={bits!r}: must be an integer >= 0")
        done = FlowDone(self.env)
        start = self.env.timeout(delay + latency + self.overhead)

        def join(_):
            if guard is not None and not guard():
                return
            self.sent_bits += bits
            self._pending.append((-1, -1, int(bits), latency, done, flow))
            self._request_update()

        start.callbacks.append(join)
        return done

    @property
    def connections(self):
        """The TCP connections (``sim.net.transport.TcpConnections``); None for fluid and rdma."""
        return self._transport if self.transport == "tcp" else None

    @property
    def active_flows(self) -> int:
        """Number of flows currently sharing the links (latency already paid, not finished)."""
        return len(self._done)

    # ------------------------------------------------------------------ internals

    def _check_pair(self, src, dst):
        for name, node in (("src", src), ("dst", dst)):
            if not _is_int(node) or not 0 <= node < self._n_nodes:
                raise ValueError(f"{name}={node!r}: must be a node id in [0, {self._n_nodes - 1}]")
        if src == dst:
            raise ValueError(f"dst={dst!r}: must differ from src (a node does not send to itself)")

    def _path_latency(self, src, dst):
        return float(self.topo.latency(np.array([src]), np.array([dst]))[0])

    def _keys(self, src, dst, flows, plain: bool) -> list:
        """The connection of every message: its (src, dst) pair, a collective flow's own key,
        or None inside a node (no transport there)."""
        keys = list(zip(src.tolist(), dst.tolist()))
        if self.topo.gpus_per_node > 1:
            inside = (~self.topo.crosses_nic(src, dst)).tolist()
            keys = [None if i else k for k, i in zip(keys, inside)]
        if not plain:
            keys = [k if f is None else f.key for k, f in zip(keys, flows)]
        return keys

    def _routes_of(self, src, dst, flows, plain: bool) -> Routes:
        """The routes of new flows, in order: a message's path, or a collective flow's own."""
        if plain:
            return Routes.from_rows(self.topo.rows(src, dst), self._pad)
        own = np.array([f is not None for f in flows])
        routes = Routes.from_rows(self.topo.rows(src[~own], dst[~own]), self._pad)
        routes.flow = np.flatnonzero(~own)[routes.flow]
        for i in np.flatnonzero(own).tolist():
            routes.extend(flows[i].routes, i)
        return routes

    def _join(self, src, dst, bits, latency, done, guard, behind=None):
        if guard is not None and not guard():
            return
        if behind is not None and not behind.processed:
            behind.callbacks.append(lambda _: self._join(src, dst, bits, latency, done, None))
            return
        self.sent_bits += bits
        self._pending.append((src, dst, bits, latency, done, None))
        self._request_update()

    def _join_many(self, messages):
        self.sent_bits += sum(m[2] for m in messages)
        self._pending.extend(messages)
        self._request_update()

    def _request_update(self):
        now = self.env.now
        if self._wake_time == now:
            return  # an update is already due at this instant and will see this change
        self._schedule(now, 0.0)

    def _schedule(self, at, delay):
        self._generation += 1
        self._wake_time = at
        wake = _LateEvent(self.env, delay, self._generation)
        wake.callbacks.append(self._on_wake)

    def _on_wake(self, event):
        if event.value != self._generation:
            return  # stale: the flow set changed after this wake-up was planned
        self._wake_time = None
        self._update()

    def _update(self):
        # a flow held back by FIFO sharing has rate 0: its finish time is inf, not a warning
        with np.errstate(divide="ignore", invalid="ignore"):
            self._update_flows()

    def _update_flows(self):
        now = self.env.now
        if self._left.size:
            self._left -= self._rate * (now - self._last)
        self._last = now
        changed = self._complete(now)
        changed |= self._transport.advance(now, self._left)
        if self._pending:
            changed |= self._admit(now)
        if changed:
            cap = self._transport.cap
            if self.sharing == "fair":
                self._rate = max_min_rates(self._routes, self.capacity, cap)
            else:
                self._rate = fifo_rates(self._routes, self.capacity, cap)
            self.recomputations += 1
            self._transport.settle(self._rate, self._left, now)
        if self._left.size:
            finish = self._left / self._rate
            wait = min(float(finish.min()), self._transport.next_change() - now)
            self._schedule(now + wait, wait)

    def _complete(self, now):
        if not self._left.size:
            return False
        finished = (self._left <= _RTOL * self._size) | (now + self._left / self._rate <= now)
        if not finished.any():
            return False
        self.delivered_bits += int(self._size[finished].sum())
        keep = ~finished
        done = self._done
        self._done = [ev for ev, k in zip(done, keep.tolist()) if k]
        ended = [done[i] for i in np.flatnonzero(finished).tolist()]
        for entry, rate in zip(ended, self._rate[finished].tolist()):
            if type(entry) is FlowDone:
                entry.rate = rate
        self._finish(ended, now)
        # messages that waited for their connection go first, in the order they waited
        self._pending[:0] = self._transport.close(finished, self._size[finished], now)
        self._routes.keep(keep)
        self._left = self._left[keep]
        self._size, self._rate = self._size[keep], self._rate[keep]
        return True

    def _finish(self, done: list, now: float) -> None:
        """Messages that arrived now, in order: fire each one's event, or hand a run of
        ``transfer_many`` messages over to its ``deliver`` in one event."""
        run_deliver = None
        for entry in done:
            if type(entry) is tuple:
                deliver, index = entry
                if deliver is run_deliver:
                    run.append(index)
                    continue
                run_deliver, run = deliver, [index]
                _Delivery(self.env, deliver, run, now)
            else:
                run_deliver = None
                entry.succeed(now)

    def _admit(self, now):
        """Move messages whose latency has elapsed into the flow set; empty ones finish at once."""
        pending, self._pending = self._pending, []
        self._finish([m[4] for m in pending if m[2] == 0], now)
        messages = [m for m in pending if m[2]]
        if not messages:
            return False
        *columns, done = zip(*(m[:4] + m[5:] + m[4:5] for m in messages))
        src, dst, bits, latency = (np.array(column) for column in columns[:4])
        flows = columns[4]
        plain = all(f is None for f in flows)
        go, conns = self._transport.hold(messages, self._keys(src, dst, flows, plain), now)
        if go is not None:  # some messages wait behind their connection's current flow
            if not go.any():
                return False
            src, dst, bits, latency = src[go], dst[go], bits[go], latency[go]
            done = [event for event, starts in zip(done, go.tolist()) if starts]
            flows = [f for f, starts in zip(flows, go.tolist()) if starts]
        size = bits.astype(np.int64)
        routes = self._routes_of(src, dst, flows, plain)
        limit = np.array([np.inf if f is None else f.limit for f in flows], dtype=np.float64)
        self._transport.open(conns, latency, routes.bottleneck(self.capacity, size.size), limit,
                             now, size.astype(np.float64))
        self._routes.extend(routes, self._left.size)
        self._size = np.concatenate([self._size, size])
        self._left = np.concatenate([self._left, size.astype(np.float64)])
        self._rate = np.concatenate([self._rate, np.zeros(size.size)])
        self._done.extend(done)
        return True

