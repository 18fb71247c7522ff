"""``collective = "auto"``: the fastest collective a method supports on the network, chosen at
the first step from the real sizes of its messages, as NCCL's tuner picks an algorithm per
message size from its own cost model.

Each candidate's time is its alpha-beta estimate on the network as built (``sim.net.
pipelined.estimate``: per phase, the latency plus the per-message overhead, the volume over the
route's bottleneck rate, and the pipeline's fill), plus the aggregation it needs: the server's
whole, each shard owner's 1/N, every worker's local one after an all-gather. The estimate
leaves out TCP's slow start and other traffic, as NCCL's does. Units: seconds.
"""
from __future__ import annotations

import numpy as np

from sim import peers
from sim.peers import WITHOUT_A_RANK
from sim.net import pipelined
from sim.net.pipelined import Phase


def choose(cluster, rounds, n_params: int) -> dict:
    """{"collective": the fastest candidate, "estimates_s": {candidate: seconds}} for one
    step's ``rounds`` (scaled bits) on ``cluster``; ties go to the earlier candidate."""
    estimates = {c: estimate(cluster, c, rounds, n_params) for c in applicable(cluster, rounds)}
    if not estimates:
        raise ValueError("network.collective = 'auto': none of the method's collectives "
                         f"({', '.join(cluster.candidates)}) applies here")
    best = min(estimates, key=lambda c: (estimates[c], list(estimates).index(c)))
    return {"collective": best, "estimates_s": estimates}


#: What ``auto`` chooses among for a method whose messages an all-reduce sums: NCCL's own
#: algorithms (the server, the all-to-all and halving-doubling stay choices a spec can name)
NCCL_ALLREDUCE = ("ring", "tree", "hierarchical")


def applicable(cluster, rounds) -> list[str]:
    """The candidates that can run these rounds on this cluster."""
    n, topo = cluster.n, cluster.net.topo
    candidates = cluster.candidates
    if "ring" in candidates and not cluster.uneven:
        candidates = [c for c in candidates if c in NCCL_ALLREDUCE]
    out = []
    for c in candidates:
        if c == "none":
            continue
        if cluster.uneven and c not in WITHOUT_A_RANK and not cluster.retransmits_only:
            continue
        if c in ("ps", "alltoall") and any(len(r) > 2 for r in rounds):
            continue  # rounds that name their own peer collectives
        if c == "halving_doubling" and n & (n - 1):
            continue
        if c == "hierarchical" and (topo.gpus_per_node == 1 or
                                    (cluster.vote and (cluster.wire_bits is None
                                                        or len(rounds) != 1))):
            continue
        if c == "alltoall" and cluster.wire_bits is None:
            continue
        out.append(c)
    return out


def estimate(cluster, collective: str, rounds, n_params: int) -> float:
    """Seconds one step's communication and aggregation take by ``collective``."""
    net, pipe, n = cluster.net, cluster.pipeline, cluster.n
    server = cluster.compute.server_time
    if collective == "ps":
        total = 0.0
        for up, down, *_ in rounds:
            reply = down if down is not None else _reply_bits(cluster, n_params, int(up.max()))
            total += (_ps_phase(net, int(up.max()), upward=True, pipe=pipe)
                      + server(int(up.sum()) // 8, n, n_params)
                      + _ps_phase(net, reply, upward=False, pipe=pipe))
        return total
    if collective == "alltoall":
        owners = n
        total = 0.0
        for index, (up, down, *_) in enumerate(rounds):
            last = index == len(rounds) - 1
            piece = cluster.shard_bits(n_params, 0) if last else int(up.max())
            total += pipelined.estimate(net, pipelined.all_to_all_phase(net, piece), pipe)
            total += server(piece * owners // 8, n, n_params // owners)
        reply = cluster.shard_bits(n_params, 2) + cluster.bitmap_bits
        return total + pipelined.estimate(net, pipelined.all_to_all_phase(net, reply), pipe)
    if collective == "hierarchical" and cluster.vote:
        topo = net.topo
        shard = -(-n_params // topo.n_nodes)
        header = cluster.header_bits
        gather, back = peers.vote_phases(
            net, int(rounds[0][0].max()), int(cluster.wire_bits(shard, topo.gpus_per_node)[1])
            + header, int(cluster.wire_bits(shard, n)[2]) + header,
            int(cluster.wire_bits(n_params, n)[2]) + header)
        return pipelined.estimate(net, gather, pipe) + pipelined.estimate(net, back, pipe)
    total = sum(peers.estimate_round(net, how[0] if how else collective, up, pipe)
                for up, _, *how in rounds)
    if collective == "allgather":
        total += server(0, n - 1, n_params)
    return total


def _reply_bits(cluster, n_params: int, up: int) -> int:
    """The reply's bits before it exists: the method's own wire when it says, else a
    message's size (a mean is as long as what it averages)."""
    if cluster.wire_bits is None:
        return up
    return int(cluster.wire_bits(n_params, cluster.n)[2]) + cluster.header_bits


def _ps_phase(net, bits: int, upward: bool, pipe) -> float:
    """Alpha-beta seconds of every worker pushing ``bits`` to the server(s) (or the servers
    sending ``bits`` to every worker), split evenly over the servers."""
    workers, servers = np.arange(net.n_workers), np.asarray(net.servers)
    src, dst = np.repeat(workers, servers.size), np.tile(servers, workers.size)
    if not upward:
        src, dst = dst, src
    routes, latency = net.symmetric_route(src, dst)
    piece = -(-bits // servers.size)
    return pipelined.estimate(net, [Phase(routes, latency, piece, 1, piece, None)], pipe)
