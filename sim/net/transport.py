"""Transports: how a message's bytes become a flow, and what caps the flow's rate.

Three transports share the flow model of ``sim.net.network``:

- ``fluid``: ideal links; a flow may be capped by a fixed window bound, ``8 * tcp_window / RTT``
  with ``RTT = 2 * path latency`` (SimGrid's CM02 bound).
- ``rdma``: InfiniBand framing of the fabric's MTU, no slow start (the NIC paces at link rate).
- ``tcp``: TCP/IPv4 over Ethernet framing of ``mtu``, and per (sender, receiver) connections
  whose congestion window starts at ``initial_window`` segments, doubles every round trip while
  it caps the flow (slow start), and is halved once per retransmission timeout of idle time
  before the next message, down to the initial window (Linux's ``tcp_cwnd_restart``).

A transport object keeps the per-flow caps of the active flows (``cap``, bits/s, in the
network's flow order) and tells the network when a cap next changes; the max-min solver of
``sim.net.sharing`` applies them. Units: seconds, bits, bits/s; windows in segments.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

TRANSPORTS = ("tcp", "rdma", "fluid")

MTU_RANGE = (576, 9216)  # bytes of IP packet: IPv4's minimum datagram to the usual jumbo frame
TCP_IP_HEADER = 52       # bytes per segment: IPv4 20 + TCP 20 + timestamps option 12
ETHERNET_OVERHEAD = 38   # bytes per frame on the wire: header 14, FCS 4, preamble 8, gap 12
# InfiniBand, one subnet: local route header 8, base transport header 12, invariant CRC 4,
# variant CRC 2 (InfiniBand Architecture Specification vol. 1, release 1.3, chapters 7 and 9;
# the same sizes as IB_LRH_BYTES, IB_BTH_BYTES and IB_ICRC_BYTES in Linux's rdma/ib_pack.h).
IB_OVERHEAD = 26
IB_MTUS = (256, 512, 1024, 2048, 4096)  # the path MTUs InfiniBand allows (payload bytes)
DEFAULT_MTU = {"tcp": 1500, "rdma": 4096}
INITIAL_WINDOW = 10      # segments (RFC 6928, Linux's default)
RTO_MIN = 0.2            # seconds (Linux's tcp_rto_min)
# Linux's cubic leaves slow start (HyStart) once queueing has added clamp(RTT / 8, 4 ms, 16 ms)
# to the round trip (HYSTART_DELAY_MIN/MAX in net/ipv4/tcp_cubic.c; RFC 9406 uses the same).
HYSTART_MIN, HYSTART_MAX = 4e-3, 16e-3

# A flow whose rate is below its cap by more than this fraction is limited by the network.
_SLACK = 1e-9


@dataclass(frozen=True)
class Framing:
    """Bytes per packet: ``payload`` carried, ``wire`` on the link (headers, CRCs, gaps)."""

    payload: int
    wire: int

    @property
    def goodput(self) -> float:
        """The fraction of a link's rate that carries payload."""
        return self.payload / self.wire


def framing(transport: str, mtu: int | None = None) -> Framing | None:
    """The framing of ``transport`` at ``mtu`` bytes (its default when None); None for fluid."""
    if transport == "fluid":
        return None
    mtu = DEFAULT_MTU[transport] if mtu is None else mtu
    if transport == "tcp":
        return Framing(mtu - TCP_IP_HEADER, mtu + ETHERNET_OVERHEAD)
    return Framing(mtu, mtu + IB_OVERHEAD)


def build(name: str, mtu=None, initial_window=None, rto=None, tcp_window=None):
    """(framing, keeper of the per-flow caps) of transport ``name``; ValueError for a bad value
    or an option the transport does not have. tcp_window in bytes, rto in seconds."""
    if name not in TRANSPORTS:
        raise ValueError(f"transport={name!r}: must be one of {', '.join(TRANSPORTS)}")
    given = {"mtu": mtu, "initial_window": initial_window, "rto": rto, "tcp_window": tcp_window}
    allowed = {"tcp": tuple(given), "rdma": ("mtu",), "fluid": ("tcp_window",)}[name]
    for key, value in given.items():
        if value is not None and key not in allowed:
            raise ValueError(f"{key}={value!r}: not an option of transport {name!r}")
    if name == "rdma" and mtu is not None and mtu not in IB_MTUS:
        raise ValueError(f"mtu={mtu!r}: InfiniBand allows {', '.join(map(str, IB_MTUS))}")
    low, high = MTU_RANGE
    if name == "tcp" and mtu is not None and not (_is_count(mtu) and low <= mtu <= high):
        raise ValueError(f"mtu={mtu!r}: must be an integer in [{low}, {high}]")
    frames = framing(name, mtu)
    window_bits = None if tcp_window is None else 8 * tcp_window
    if name != "tcp":
        return frames, FixedCaps(window_bits)
    if tcp_window is not None and tcp_window < frames.payload:
        raise ValueError(f"tcp_window={tcp_window!r}: must be at least one segment "
                         f"({frames.payload} bytes at mtu {frames.payload + TCP_IP_HEADER})")
    initial_window = INITIAL_WINDOW if initial_window is None else initial_window
    if not (_is_count(initial_window) and initial_window >= 1):
        raise ValueError(f"initial_window={initial_window!r}: must be an integer >= 1")
    rto = RTO_MIN if rto is None else rto
    if isinstance(rto, bool) or not isinstance(rto, Real) or not 0 < rto < math.inf:
        raise ValueError(f"rto={rto!r}: must be a positive finite number of seconds")
    return frames, TcpConnections(frames.payload, int(initial_window), float(rto), tcp_window)


def _is_count(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


class FixedCaps:
    """Fluid and RDMA flows: each flow's cap is fixed when it starts (the fluid window bound:
    ``window_bits / (2 * latency)``, none without a window or a latency)."""

    def __init__(self, window_bits: float | None):
        self.window_bits = window_bits
        self.cap = np.zeros(0)

    def hold(self, messages, keys, now):
        """Every message may start at once (no mask, no connections)."""
        return None, None

    def open(self, connections, latency: np.ndarray, min_rate: np.ndarray, limit: np.ndarray,
             now: float, bits: np.ndarray) -> None:
        """Caps of new flows: the window bound, and each flow's own ``limit`` (bits in flight
        per round trip; inf: none), over RTT = 2 x latency."""
        window = np.inf if self.window_bits is None else self.window_bits
        with np.errstate(divide="ignore", invalid="ignore"):
            cap = np.where(latency > 0, np.minimum(window, limit) / (2 * latency), np.inf)
        self.cap = np.concatenate([self.cap, cap])

    def close(self, finished: np.ndarray, size: np.ndarray, now: float) -> list:
        self.cap = self.cap[~finished]
        return []

    def advance(self, now: float, left: np.ndarray) -> bool:
        return False

    def settle(self, rate: np.ndarray, left: np.ndarray, now: float) -> None:
        pass

    def next_change(self) -> float:
        return math.inf


class TcpConnections:
    """TCP connections, one per (sender, receiver) pair, and the windows of their flows.

    mss: payload bytes per segment; initial_window: segments; rto_min: seconds, the floor of the
    retransmission timeout (which is RTT + rto_min, as Linux computes it for a steady RTT);
    window_bytes: the send/receive window that caps every flow (None: no cap).

    A connection carries one message at a time: a message that finds its connection busy waits
    and starts flowing the instant the one before it ends (a socket delivers bytes in order).
    A flow's RTT is twice its path latency plus the serialization of one full segment on the
    slowest link of its route: the first segment's ACK comes back after both.
    """

    def __init__(self, mss: int, initial_window: int, rto_min: float, window_bytes: float | None):
        self.mss_bits = 8 * mss
        self.initial_window = float(initial_window)
        self.rto_min = rto_min
        self.window_bits = math.inf if window_bytes is None else 8 * window_bytes
        self.max_window = self.window_bits / self.mss_bits  # segments
        # connections: the id of each (src, dst) pair; then per connection id
        self._ids: dict[tuple[int, int], int] = {}
        self._cwnd = np.zeros(0)                 # segments kept after its last flow
        self._last_end = np.zeros(0)             # when its last flow ended (s)
        self._busy = np.zeros(0, dtype=bool)     # a flow is on it
        self._waiting: dict[int, deque] = {}     # messages queued behind that flow
        self.cap = np.zeros(0)
        # per active flow, in the network's order
        self._conn = np.zeros(0, dtype=np.int64)
        self._rtt = np.zeros(0)
        self._start = np.zeros(0)       # window the flow started with (segments)
        self._window = np.zeros(0)      # window of its current round (segments)
        self._round_end = np.zeros(0)   # when the window next doubles (inf: no longer grows)
        self._exit = np.zeros(0)        # window kept after leaving slow start (inf: still in it)
        self._peak = np.zeros(0)        # most segments it has had in flight
        self._sending = np.zeros(0, dtype=bool)  # has had a rate > 0 (FIFO queues flows)
        self._limit = np.zeros(0)       # bits it may have in flight per RTT beside the window
        self._segment_time = np.zeros(0)  # seconds one segment takes on its slowest link
        self._train_exit = np.zeros(0)  # window HyStart's ACK train leaves slow start at (inf)

    def __len__(self) -> int:
        """Number of connections opened so far."""
        return len(self._ids)

    def window(self, src, dst=None) -> float:
        """The congestion window (segments) the (src, dst) connection (or the connection
        named ``src``, a key) kept after its last flow (the initial window for one that has
        not sent yet)."""
        conn = self._ids.get(src if dst is None else (src, dst))
        return self.initial_window if conn is None else float(self._cwnd[conn])

    def _lookup(self, keys: list) -> tuple[np.ndarray, bool]:
        """Connection ids of ``keys`` (a (src, dst) pair, or a collective's own key), opening
        the missing ones, and whether some key comes more than once. A key None: a flow
        outside any connection (inside a node), id -1."""
        ids = self._ids
        old = len(ids)
        conns = [-1 if key is None else ids.setdefault(key, len(ids)) for key in keys]
        if len(ids) > old:
            new = len(ids) - old
            self._cwnd = np.concatenate([self._cwnd, np.full(new, self.initial_window)])
            self._last_end = np.concatenate([self._last_end, np.full(new, -np.inf)])
            self._busy = np.concatenate([self._busy, np.zeros(new, dtype=bool)])
        conns = np.array(conns, dtype=np.int64)
        real = conns[conns >= 0]
        return conns, np.unique(real).size < real.size

    def hold(self, messages, keys: list, now: float):
        """Of ``messages`` (in arrival order, on the connections ``keys``), those whose
        connection is free start now: returns their mask and connection ids. The others wait,
        in order."""
        conns, repeated = self._lookup(keys)
        owned = conns >= 0
        go = ~owned  # a flow inside a node has no connection to wait for
        go[owned] = ~self._busy[conns[owned]]
        if repeated:  # only the first message on each connection may start
            first = ~owned
            first[np.flatnonzero(owned)[np.unique(conns[owned], return_index=True)[1]]] = True
            go &= first
        self._busy[conns[go & owned]] = True
        for i in np.flatnonzero(~go).tolist():
            self._waiting.setdefault(int(conns[i]), deque()).append(messages[i])
        return go, conns[go]

    def open(self, conns, latency: np.ndarray, min_rate: np.ndarray, limit: np.ndarray,
             now: float, bits: np.ndarray) -> None:
        """Start flows of ``bits`` bits on connections ``conns`` (-1: none, an uncapped flow
        inside a node); latency: one way (s); min_rate: payload bits/s of the slowest link on
        each route; limit: bits each flow may have in flight per round trip beside the window
        (inf: none)."""
        free = conns < 0
        rtt = 2 * latency + self.mss_bits / min_rate
        index = np.where(free, 0, conns)
        cwnd = np.where(free, self.max_window, self._cwnd[index] if self._cwnd.size else 0.0)
        idle = np.where(free, 0.0, now - self._last_end[index] if self._cwnd.size else 0.0)
        # Linux halves the window once for every full RTO of idle time, down to the initial
        # window (never raising a smaller one): restart = max(cwnd >> k, min(IW, cwnd)).
        halvings = np.where(idle > rtt + self.rto_min, np.ceil(idle / (rtt + self.rto_min)) - 1, 0)
        halved = np.floor(cwnd / 2.0 ** np.minimum(halvings, 64))
        start = np.minimum(np.maximum(halved, np.minimum(self.initial_window, cwnd)),
                           self.max_window)
        growing = start < self.max_window
        self._conn = np.concatenate([self._conn, conns])
        self._rtt = np.concatenate([self._rtt, rtt])
        self._start = np.concatenate([self._start, start])
        self._window = np.concatenate([self._window, start])
        self._round_end = np.concatenate([self._round_end, np.full(conns.size, np.inf)])
        self._exit = np.concatenate([self._exit, np.where(growing, np.inf, start)])
        self._peak = np.concatenate([self._peak, np.zeros(conns.size)])
        self._sending = np.concatenate([self._sending, np.zeros(conns.size, dtype=bool)])
        self._segment_time = np.concatenate([self._segment_time, self.mss_bits / min_rate])
        self._train_exit = np.concatenate([self._train_exit, np.full(conns.size, np.inf)])
        limit = np.where(free & ~np.isfinite(limit), np.inf, limit)
        self._limit = np.concatenate([self._limit, limit])
        cap = self._caps(start, rtt, limit, bits)
        self.cap = np.concatenate([self.cap, np.where(free, limit / rtt, cap)])
        new = np.arange(self.cap.size - conns.size, self.cap.size)
        if free.any():  # no window: never in slow start (a finite exit), nothing kept
            self._round_end[new[free]] = np.inf
            self._exit[new[free]] = 0.0
        self._ack_train(new[growing & ~free], bits[growing & ~free])

    def _caps(self, window, rtt, limit, left):
        """Rate caps (bits/s): what the window lets out per round trip; none when all that is
        left fits in it (Linux sends that flight at once, at the link's rate)."""
        allowed = np.minimum(np.minimum(window * self.mss_bits, self.window_bits), limit)
        return np.where(left <= allowed, np.inf, allowed / rtt)

    def advance(self, now: float, left: np.ndarray) -> bool:
        """Double the windows whose round ended by ``now`` (``left``: bits each flow still has
        to send); True when a cap changed."""
        due = self._round_end <= now + _SLACK * self._rtt
        if not due.any():
            return False
        train = self._train_exit[due]
        window = np.where(np.isfinite(train), train,
                          np.minimum(2 * self._window[due], self.max_window))
        self._window[due] = window
        self._round_end[due] += self._rtt[due]
        full = (window >= self.max_window) | np.isfinite(train)
        idx = np.flatnonzero(due)
        self._round_end[idx[full]] = np.inf
        self._exit[idx[full]] = window[full]
        self.cap[due] = self._caps(window, self._rtt[due], self._limit[due], left[due])
        growing = idx[~full]
        self._ack_train(growing, left[growing])
        return True

    def _ack_train(self, flows: np.ndarray, left: np.ndarray) -> None:
        """HyStart's ACK-train test at the start of a slow-start round of ``flows`` (``left``
        bits to send): when the round's segments, back to back on the slowest link, take longer
        than half the round trip, their ACKs come back as a train that long and Linux's cubic
        leaves slow start once it passes RTT / 2 (hystart_update's HYSTART_ACK_TRAIN, without
        pacing), keeping the window it has then: this round's, plus one segment per ACK so
        far. The round goes on as it is; the next one has that window (no more doubling),
        and the connection keeps it."""
        if not flows.size:
            return
        window, rtt, step = self._window[flows], self._rtt[flows], self._segment_time[flows]
        sent = np.minimum(window, np.ceil(left / self.mss_bits))
        hit = sent * step > rtt / 2
        if not hit.any():
            return
        flows, window, rtt, step = flows[hit], window[hit], rtt[hit], step[hit]
        self._train_exit[flows] = np.minimum(window + np.floor(rtt / 2 / step), self.max_window)

    def settle(self, rate: np.ndarray, left: np.ndarray, now: float) -> None:
        """After a rate recomputation (``left``: bits each flow has still to send): start the
        round clock of flows that began to send; a flow in slow start whose rate is below its
        cap is network-limited and leaves slow start."""
        starting = ~self._sending & (rate > 0)
        if starting.any():
            self._sending |= starting
            clock = starting & np.isinf(self._exit)
            self._round_end[clock] = now + self._rtt[clock]
        # the most a flow has in flight before its rate next changes: this round's window
        # (or what is left), and in slow start, as that round's ACKs come back, one more segment
        # per ACK while data remains to send (each ACK lets two go out: Linux's
        # max_packets_out, which bounds the window's growth; ``close``)
        window = rate * self._rtt / self.mss_bits
        segments = left / self.mss_bits
        growing = np.isinf(self._exit)
        in_flight = np.minimum(window, segments) + np.where(
            growing, np.minimum(window, np.maximum(segments - window, 0.0) / 2), 0.0)
        np.maximum(self._peak, in_flight, out=self._peak)
        # (a flow whose last flight is out at once is not limited by the network: it has no cap)
        leaving = (self._sending & np.isinf(self._exit) & np.isfinite(self.cap)
                   & (rate < self.cap * (1 - _SLACK)))
        if leaving.any():
            rtt = self._rtt[leaving]
            queue = np.minimum(np.maximum(rtt / 8, HYSTART_MIN), HYSTART_MAX)
            # the window it holds once HyStart ends slow start: its share's bandwidth-delay
            # product plus the queueing that HyStart tolerates
            self._exit[leaving] = np.minimum(rate[leaving] * (rtt + queue) / self.mss_bits,
                                             self.max_window)
            self._round_end[leaving] = np.inf
            self.cap[leaving] = np.minimum(self.window_bits, self._limit[leaving]) / rtt

    def close(self, finished: np.ndarray, size: np.ndarray, now: float) -> list:
        """Flows ``finished`` (mask over active flows, ``size`` their bits) have ended: keep each
        connection's window and return the messages now free to start.

        In slow start Linux adds one segment to the window per segment acknowledged, but only
        while the window is below twice what the connection had in flight
        (``tcp_is_cwnd_limited``), and it stops at the window it left slow start with; a
        window never shrinks while it is in use."""
        owned = self._conn[finished] >= 0
        conns = self._conn[finished][owned]
        start = self._start[finished][owned]
        segments = np.ceil(size[owned] / self.mss_bits)
        grown = np.minimum(np.minimum(start + segments, 2 * self._peak[finished][owned]),
                           np.minimum(self._exit[finished], self._train_exit[finished])[owned])
        kept = np.maximum(start, grown)
        kept = np.floor(np.minimum(kept, self.max_window))
        self._cwnd[conns] = kept
        self._last_end[conns] = now
        self._busy[conns] = False
        released = []
        for conn in conns.tolist() if self._waiting else ():
            queue = self._waiting.get(conn)
            if queue:
                released.append(queue.popleft())
                if not queue:
                    del self._waiting[conn]
        keep = ~finished
        for name in ("_conn", "_rtt", "_start", "_window", "_round_end", "_exit", "_peak",
                     "_sending", "_limit", "_segment_time", "_train_exit", "cap"):
            setattr(self, name, getattr(self, name)[keep])
        return released

    def next_change(self) -> float:
        """When a cap next changes (s; inf when no flow is in slow start)."""
        return float(self._round_end.min()) if self._round_end.size else math.inf
