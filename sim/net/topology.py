"""The shape of the network: its nodes, its directed links and their capacities, and the route
and latency of a message between two nodes.

Nodes 0..n_workers-1 are workers, the next ``servers`` ids are servers. Every worker and
server has a NIC with an up and a down link (full duplex), except in topology ``nodes``, where
``gpus_per_node`` workers share their node's NIC and talk to each other over an intra-node
link (NVLink or PCIe) of their own. Routes:

- ``star`` / ``sharded``: ``[src up, dst down]`` through one switch;
- ``racks``: also the source rack's uplink (up direction) and the destination rack's uplink
  (down direction) when a message leaves or enters a rack; servers hang off the core switch;
- ``nodes``: ``[src intra up, dst intra down]`` inside a node, ``[src node's NIC up, dst node's
  NIC down]`` between nodes and to the servers.

Units: bits/s for capacities, seconds one way for latencies. A message pays the latency of
every hop on its route: both access links, and each rack uplink it crosses.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

TOPOLOGIES = ("star", "sharded", "racks", "nodes")


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not (0 < value < math.inf):
        raise ValueError(f"{name}={value!r}: must be a positive finite number")
    return float(value)


def _nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not (0 <= value < math.inf):
        raise ValueError(f"{name}={value!r}: must be a finite number >= 0")
    return float(value)


def per_node(name, value, n, check, what="n_workers"):
    """A scalar or one value per node -> float64 array of shape (n,)."""
    if isinstance(value, (str, bytes)) or not np.iterable(value):
        return np.full(n, check(name, value))
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values: must be one number or {what}={n} "
                         "numbers")
    return np.array([check(f"{name}[{i}]", v) for i, v in enumerate(values)], dtype=np.float64)


def count(name, value, low, high=None):
    """``value`` checked to be an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low or (
            high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name}={value!r}: must be {allowed}")
    return int(value)


class Topology:
    """Links (ids 0..n_links-1 plus a padding id of infinite capacity), their capacities, and
    routes and latencies between nodes; see the module docstring for the arguments' meaning.

    ``capacity``: (n_links + 1,) bits/s before the transport's framing (``nic`` marks the NIC
    links, whose payload rate the framing reduces; intra-node links carry NCCL's own protocol).
    """

    def __init__(self, n_workers: int, *, bandwidth, latency=0.0, server_bandwidth=None,
                 server_latency=0.0, topology="star", servers=1, rack_size=None,
                 oversubscription=1.0, rack_bandwidth=None, rack_latency=0.0,
                 gpus_per_node=None, intra_bandwidth=None, intra_latency=0.0):
        n = count("n_workers", n_workers, 1)
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology={topology!r}: must be one of {', '.join(TOPOLOGIES)}")
        k = count("servers", servers, 1)
        if k > 1 and topology in ("star", "nodes"):
            raise ValueError(f"servers={k}: topology {topology!r} has 1 server; use 'sharded' or "
                             "'racks' for more")
        self.kind, self.n_workers, self.n_servers = topology, n, k
        for name, value in (("rack_size", rack_size), ("rack_bandwidth", rack_bandwidth)):
            if value is not None and topology != "racks":
                raise ValueError(f"{name}={value!r}: only allowed with topology 'racks', not "
                                 f"{topology!r}")
        for name, value in (("gpus_per_node", gpus_per_node), ("intra_bandwidth", intra_bandwidth)):
            if value is not None and topology != "nodes":
                raise ValueError(f"{name}={value!r}: only allowed with topology 'nodes', not "
                                 f"{topology!r}")
        if topology == "nodes":
            if gpus_per_node is None or intra_bandwidth is None:
                raise ValueError("topology 'nodes' needs gpus_per_node and intra_bandwidth")
            g = count("gpus_per_node", gpus_per_node, 1, n)
            if n % g:
                raise ValueError(f"gpus_per_node={g}: must divide n_workers={n} (every node "
                                 "full)")
        else:
            g = 1
        self.gpus_per_node = g
        self.n_nodes = n // g  # hosts with a NIC of their own, servers apart
        hosts = self.n_nodes + k
        nic_bw = per_node("bandwidth", bandwidth, self.n_nodes, _positive,
                          "nodes" if g > 1 else "n_workers")
        nic_lat = per_node("latency", latency, self.n_nodes, _nonnegative,
                           "nodes" if g > 1 else "n_workers")
        server_bw = (nic_bw.max() if server_bandwidth is None
                     else _positive("server_bandwidth", server_bandwidth))
        self.rack_latency = _nonnegative("rack_latency", rack_latency)
        oversubscription = _positive("oversubscription", oversubscription)
        # the host (NIC) of every node id: node of a worker, then the servers
        self.host = np.concatenate([np.arange(n) // g, self.n_nodes + np.arange(k)])
        if topology == "racks":
            if rack_size is None:
                raise ValueError("rack_size=None: topology 'racks' needs an integer rack_size "
                                 ">= 1")
            size = count("rack_size", rack_size, 1, n)
            rack_of_worker = np.arange(n) // size
            n_racks = int(rack_of_worker[-1]) + 1
            rack_bw = (np.bincount(rack_of_worker, weights=nic_bw) / oversubscription
                       if rack_bandwidth is None
                       else np.full(n_racks, _positive("rack_bandwidth", rack_bandwidth)))
            # servers sit outside every rack (-1): any message to or from them crosses an uplink
            self.rack = np.concatenate([rack_of_worker, np.full(k, -1)])
        else:
            n_racks, rack_bw = 0, np.zeros(0)
            self.rack = np.full(n + k, -1)
        self.n_racks = n_racks
        intra = n if topology == "nodes" else 0
        intra_bw = (np.full(intra, _positive("intra_bandwidth", intra_bandwidth)) if intra
                    else np.zeros(0))
        self.intra_latency = _nonnegative("intra_latency", intra_latency or 0.0)
        host_bw = np.concatenate([nic_bw, np.full(k, server_bw)])
        # link ids: host up, host down, rack uplinks up, rack uplinks down, intra up, intra down
        self.up0, self.down0 = 0, hosts
        self.rack_up0, self.rack_down0 = 2 * hosts, 2 * hosts + n_racks
        self.intra_up0 = 2 * hosts + 2 * n_racks
        self.intra_down0 = self.intra_up0 + intra
        self.pad = self.intra_down0 + intra
        self.n_links = self.pad
        self.capacity = np.concatenate([host_bw, host_bw, rack_bw, rack_bw, intra_bw, intra_bw,
                                        [np.inf]])
        self.nic = np.arange(self.n_links + 1) < self.intra_up0
        self.width = 4 if n_racks else 2
        self.host_latency = np.concatenate([nic_lat, [_nonnegative("server_latency",
                                                                    server_latency)] * k])

    def rows(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """(F, width) link ids of the routes from ``src[i]`` to ``dst[i]`` (padded)."""
        hs, hd = self.host[src], self.host[dst]
        rows = np.empty((src.size, self.width), dtype=np.int64)
        rows[:, 0], rows[:, -1] = self.up0 + hs, self.down0 + hd
        if self.n_racks:
            rs, rd = self.rack[src], self.rack[dst]
            crossing = rs != rd
            rows[:, 1] = np.where((rs >= 0) & crossing, self.rack_up0 + rs, self.pad)
            rows[:, 2] = np.where((rd >= 0) & crossing, self.rack_down0 + rd, self.pad)
        if self.gpus_per_node > 1:
            inside = hs == hd  # two GPUs of one node: over the intra-node link
            rows[inside, 0] = self.intra_up0 + src[inside]
            rows[inside, -1] = self.intra_down0 + dst[inside]
        return rows

    def latency(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """One-way latency (s) of every hop from ``src[i]`` to ``dst[i]``: both NICs' links
        (or the intra-node link inside a node), and each rack uplink crossed."""
        hs, hd = self.host[src], self.host[dst]
        out = self.host_latency[hs] + self.host_latency[hd]
        if self.n_racks:
            rs, rd = self.rack[src], self.rack[dst]
            crossing = rs != rd
            out = out + self.rack_latency * (((rs >= 0) & crossing).astype(np.int64)
                                             + ((rd >= 0) & crossing))
        if self.gpus_per_node > 1:
            out = np.where(hs == hd, self.intra_latency, out)
        return out

    def crosses_nic(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """bool: the message leaves its node (over a NIC, where the transport applies)."""
        return self.host[src] != self.host[dst]

    def all_pairs(self, senders: np.ndarray, receivers: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray, float]:
        """(links, weights, longest one-way latency) of one message from every sender to every
        other receiver at once (bool masks over the workers): a link carries as many of them as
        cross it. Counted by host and rack, not message by message."""
        workers = np.arange(self.n_workers)
        s_host = np.bincount(self.host[workers[senders]], minlength=self.n_nodes)
        r_host = np.bincount(self.host[workers[receivers]], minlength=self.n_nodes)
        both = senders & receivers
        links, weights = [], []
        # messages leaving a host: to every receiver on another host
        links.append(self.up0 + np.arange(self.n_nodes))
        weights.append(s_host * (r_host.sum() - r_host))
        links.append(self.down0 + np.arange(self.n_nodes))
        weights.append(r_host * (s_host.sum() - s_host))
        latency = 2 * float(self.host_latency[:self.n_nodes][(s_host + r_host) > 0].max())
        if self.n_racks:
            rack = self.rack[workers]
            s_rack = np.bincount(rack[senders], minlength=self.n_racks)
            r_rack = np.bincount(rack[receivers], minlength=self.n_racks)
            links += [self.rack_up0 + np.arange(self.n_racks),
                      self.rack_down0 + np.arange(self.n_racks)]
            weights += [s_rack * (r_rack.sum() - r_rack), r_rack * (s_rack.sum() - s_rack)]
            if ((s_rack > 0).sum() + (r_rack > 0).sum()) > 2 or self.n_racks > 1:
                latency += 2 * self.rack_latency
        if self.gpus_per_node > 1:  # inside a node, over the GPUs' own links
            same_r = r_host[self.host[workers]] - both
            same_s = s_host[self.host[workers]] - both
            links += [self.intra_up0 + workers, self.intra_down0 + workers]
            weights += [np.where(senders, same_r, 0), np.where(receivers, same_s, 0)]
            if s_host.max() == s_host.sum():  # everyone inside one node
                latency = self.intra_latency
        links, weights = np.concatenate(links), np.concatenate(weights).astype(np.float64)
        used = weights > 0
        return links[used], weights[used], latency
