"""The timing of a step whose workers exchange their messages themselves: all-reduce (ring,
tree, halving-doubling, hierarchical over GPU nodes), all-gather, and the rounds that name
their own collective (1-bit Adam's all-to-all then all-gather).

A collective starts once every rank has finished the previous one and computed (a barrier, as
in synchronous all-reduce training) and every rank holds the result at its end. The pipelined
collectives are ``sim.net.pipelined``'s phases; with ``chunk = 0`` the ring, the all-gather and
the all-to-all are the textbook ones of ``sim.net.collectives``, step by step and message by
message. A lost message (``sim.faults``) stalls the collective: it is sent again a
retransmission timeout after the attempt, and the losses of different workers overlap.
Units: bits, seconds.
"""
from __future__ import annotations

import math

import numpy as np

from sim.net import collectives, pipelined
from sim.net.network import Network
from sim.net.pipelined import Phase, Pipeline
from sim.net.shards import shard_length
from sim.record import StepRecord

#: Collectives a step can use.
STEP_COLLECTIVES = {
    "auto": "the fastest of the method's collectives on this network by an alpha-beta "
            "estimate (as NCCL's tuner chooses); the summary names the choice",
    "none": "no communication (one worker)",
    "ps": "parameter server: push to the server, aggregate, pull the reply",
    "alltoall": "sharded: an all-to-all sends every worker's piece of each shard to its owner, "
                "the owners aggregate, an all-gather returns the result (no server)",
    "ring": "ring all-reduce, pipelined in chunks as NCCL does (chunk = 0: textbook, step by "
            "step)",
    "tree": "NCCL's double binary tree all-reduce, pipelined in chunks (latency ~ log N)",
    "halving_doubling": "recursive halving-doubling all-reduce (no server; power-of-two workers)",
    "allgather": "ring all-gather of the messages; every worker aggregates locally",
    "hierarchical": "GPU nodes (topology 'nodes'): inside each node first (a reduce-scatter, "
                    "or a sum at its first GPU), then across the nodes' NICs, then back inside",
}
#: Collectives where the aggregation goes on without a rank: server policies, crashes and
#: dropped messages need one of them (lost messages are retransmitted on any collective).
WITHOUT_A_RANK = ("ps", "alltoall")
#: peer collectives of a whole step (an all-reduce of every round, or an all-gather)
PEER_COLLECTIVES = ("ring", "tree", "halving_doubling", "allgather", "hierarchical")
#: collectives a single round may name (``sim.methods.base``: a round's third element)
ROUND_COLLECTIVES = ("ring", "tree", "halving_doubling", "allgather", "alltoall")


def allreduce_phases(net: Network, how: str, bits: int) -> tuple[list[Phase], bool]:
    """(phases, whether they run at once) of an all-reduce of a ``bits``-bit vector."""
    if how == "tree":
        return pipelined.tree_phases(net, bits), True
    if how == "hierarchical":
        return hierarchical_phases(net, bits), False
    return pipelined.ring_phases(net, bits), False


def node_ranks(net: Network) -> np.ndarray:
    """(nodes, GPUs per node) worker ids: row j is node j's GPUs."""
    g = net.topo.gpus_per_node
    return np.arange(net.n_workers).reshape(-1, g)


def hierarchical_phases(net: Network, bits: int) -> list[Phase]:
    """NCCL's all-reduce over nodes of G GPUs: a ring reduce-scatter inside every node, G
    rings across the nodes (one per local rank, all through the node's NIC) all-reducing the
    1/G each GPU holds, then a ring all-gather inside every node."""
    ranks = node_ranks(net)
    g = ranks.shape[1]
    part = -(-bits // g)
    return [*pipelined.ring_phases(net, bits, "reduce_scatter", ranks, key=None),
            *pipelined.ring_phases(net, part, "allreduce", ranks.T, key="inter"),
            *pipelined.ring_phases(net, part, "allgather", ranks, key=None)]


def vote_phases(net: Network, message: int, piece: int, reply_piece: int,
                reply: int) -> tuple[list[Phase], list[Phase]]:
    """(gather phases, reply phases) of a coordinate-wise aggregate over nodes of GPUs: every
    GPU sends its ``message`` to its node's first GPU (the leader), which sums them; the
    leaders all-to-all ``piece`` bits of their partial sums to the shard owners among them
    (the leaders) and, after the owners aggregated, all-gather their ``reply_piece`` results,
    which every leader sends whole (``reply`` bits) to the other GPUs of its node."""
    ranks = node_ranks(net)
    leaders = np.zeros(net.n_workers, dtype=bool)
    leaders[ranks[:, 0]] = True
    members = ranks[:, 1:].reshape(-1)
    heads = np.repeat(ranks[:, 0], ranks.shape[1] - 1)
    gather, back = [], []
    if members.size:
        routes, latency = net.symmetric_route(members, heads)
        gather.append(Phase(routes, latency, message, 1, message, None))
    gather += pipelined.all_to_all_phase(net, piece, leaders, leaders, key="inter")
    back += pipelined.all_to_all_phase(net, reply_piece, leaders, leaders, key="inter")
    if members.size:
        routes, latency = net.symmetric_route(heads, members)
        back.append(Phase(routes, latency, reply, 1, reply, None))
    return gather, back


def round_process(net: Network, how: str, starts: np.ndarray, up: np.ndarray,
                  pipeline: Pipeline):
    """A SimPy process for one round travelling by collective ``how``: its completion time
    per rank (s). ``up``: each rank's bits (an all-reduce reduces the largest)."""
    textbook = pipeline.chunk == 0
    if how == "halving_doubling":
        return collectives.halving_doubling_allreduce(net, starts, int(up.max()))
    if how == "allgather":
        if textbook:
            return collectives.ring_allgather(net, starts, up)
        return _allgather(net, starts, up, pipeline)
    if how == "alltoall":
        if textbook:
            return collectives.alltoall(net, starts, up)
        piece = -(-int(up.max()) // max(net.n_workers - 1, 1))
        return pipelined.run(net, pipelined.all_to_all_phase(net, piece), starts, pipeline)
    if how == "ring" and textbook:
        return collectives.ring_allreduce(net, starts, int(up.max()))
    phases, together = allreduce_phases(net, how, int(up.max()))
    if together:
        return pipelined.run_concurrently(net, phases, starts, pipeline)
    return pipelined.run(net, phases, starts, pipeline)


def _allgather(net: Network, starts, up: np.ndarray, pipeline: Pipeline):
    """Pipelined ring all-gather of each rank's ``up[r]`` bits: every link carries all the
    contributions but its receiver's, the busiest the largest total."""
    p = net.n_workers
    if p == 1:
        return pipelined.run(net, [], starts, pipeline)
    ranks = np.arange(p)
    routes, latency = net.symmetric_route(ranks, np.roll(ranks, -1))
    volume = int(up.sum() - up.min())
    phase = Phase(routes, latency, volume, p - 1, int(up.max()), "ring")
    return pipelined.run(net, [phase] if volume else [], starts, pipeline)


def loss_stall(faults, bits: np.ndarray, rate: float) -> tuple[float, int]:
    """(extra seconds, lost attempts) a collective waits for lost messages: each worker's
    message (``bits`` (N,)) is lost with the fault model's probability, again and again; each
    loss costs the retransmission timeout plus the message's transfer at ``rate`` bits/s, and
    the workers' losses overlap (the collective waits for the unluckiest)."""
    if faults is None or faults.model.loss <= 0:
        return 0.0, 0
    losses = np.array([_attempts(faults) for _ in range(bits.size)])
    stall = losses * (faults.model.rto + bits / rate)
    return float(stall.max()), int(losses.sum())


def _attempts(faults) -> int:
    """Lost attempts of one message before it gets through."""
    lost = 0
    while faults.lost():
        lost += 1
    return lost


def estimate_round(net: Network, how: str, up: np.ndarray, pipeline: Pipeline) -> float:
    """Alpha-beta seconds of one round by collective ``how`` (``auto``'s estimate)."""
    if how == "halving_doubling":
        p = net.n_workers
        n = int(up.max())
        alpha = 2 * float(net.topo.host_latency.max()) + net.overhead
        rate = float(net.capacity[:net.topo.n_links].min())
        steps = int(math.log2(p)) if p > 1 else 0
        return 2 * steps * alpha + 2 * (p - 1) / p * n / rate if p > 1 else 0.0
    if how == "allgather":
        p = net.n_workers
        ranks = np.arange(p)
        routes, latency = net.symmetric_route(ranks, np.roll(ranks, -1))
        phase = Phase(routes, latency, int(up.sum() - up.min()), p - 1, int(up.max()), "ring")
        return pipelined.estimate(net, [phase] if p > 1 else [], pipeline)
    phases, together = allreduce_phases(net, how, int(up.max()))
    if together:
        return pipelined.estimate_concurrent(net, phases, pipeline)
    return pipelined.estimate(net, phases, pipeline)


def peer_step(cluster, compute, rounds, n_params) -> StepRecord:
    """Simulate a peer step of ``cluster`` (``sim.cluster.Cluster``): every round by the
    step's collective, or by the one the round names (see the module docstring)."""
    env = cluster.env
    start = cluster.records[-1].done if cluster.records else np.zeros(cluster.n)
    ready = np.maximum(start + compute, env.now)
    finished = ready
    lost = down = 0
    up_bits = sum(r[0] for r in rounds)
    if cluster.collective == "hierarchical" and cluster.vote:
        finished, down = vote_over_nodes(cluster, ready, rounds, n_params)
        rounds = []
    spans = None
    if cluster.buckets is not None and len(rounds) == 1 and len(rounds[0]) == 2:
        finished, spans, lost = bucketed_round(cluster, start, compute, rounds[0][0])
        rounds = []
    for up, _, *how in rounds:
        how = how[0] if how else cluster.collective
        # a round starts when the previous one has ended everywhere (simulated time has
        # moved on to its last finisher)
        starts = np.maximum(finished, env.now)
        finished = env.run(until=env.process(round_process(cluster.net, how, starts, up,
                                                           cluster.pipeline)))
        stall, count = loss_stall(cluster.faults, up, slowest_link(cluster.net))
        if stall:
            env.run(until=env.now + stall)
            finished = np.full(cluster.n, env.now)
            lost += count
    # the aggregation after an all-gather is local to each worker
    local = (cluster.compute.server_time(0, cluster.n - 1, n_params)
             if cluster.collective == "allgather" else 0.0)
    last = float(finished.max())
    # every rank holds the result when the last one does (the barrier between steps)
    record = StepRecord(start, ready, finished, last, last + local,
                        np.full(cluster.n, last + local), up_bits, down)
    record.lost = lost
    record.buckets = spans
    if spans is not None:
        record.up = spans[2].sum(axis=0)
    return record


def bucketed_round(cluster, start: np.ndarray, compute: np.ndarray, up: np.ndarray):
    """A step's one round in gradient buckets (``sim.buckets``), as DDP runs them on one NCCL
    stream: a bucket's collective begins once its gradients exist on every rank and the
    previous bucket's collective has ended. Returns (completion per rank, the buckets'
    (begin, end, bits) each (B, N), lost attempts)."""
    env, net, buckets = cluster.env, cluster.net, cluster.buckets
    ready = buckets.ready(start, compute)
    bits = buckets.split(up, cluster.header_bits)
    begin, end = np.empty_like(ready), np.empty_like(ready)
    finished = np.full(cluster.n, -np.inf)
    lost = 0
    for k in range(len(buckets)):  # over buckets (tens), never workers or parameters
        begin[k] = np.maximum(np.maximum(ready[k], finished), env.now)
        finished = env.run(until=env.process(round_process(net, cluster.collective, begin[k],
                                                           bits[k], cluster.pipeline)))
        stall, count = loss_stall(cluster.faults, bits[k], slowest_link(net))
        if stall:
            env.run(until=env.now + stall)
            finished = np.full(cluster.n, env.now)
            lost += count
        end[k] = finished
    return finished, (begin, end, bits), lost


def slowest_link(net: Network) -> float:
    """Payload bits/s of the slowest link (the pace of a retransmitted piece)."""
    return float(net.capacity[:net.topo.n_links].min())


def vote_over_nodes(cluster, ready, rounds, n_params) -> tuple[np.ndarray, int]:
    """(completion per rank, reply bits) of a vote over GPU nodes (``vote_phases``), the nodes'
    first GPUs aggregating a shard each in between."""
    if len(rounds) != 1:
        raise ValueError("network.collective = 'hierarchical': a vote over nodes takes one "
                         "round of messages")
    net, env = cluster.net, cluster.env
    nodes, g = net.topo.n_nodes, net.topo.gpus_per_node
    shard = shard_length(n_params, nodes)
    header = cluster.header_bits
    piece = int(cluster.wire_bits(shard, g)[1]) + header
    reply_piece = int(cluster.wire_bits(shard, cluster.n)[2]) + header
    reply = int(cluster.wire_bits(n_params, cluster.n)[2]) + header
    gather, back = vote_phases(net, int(rounds[0][0].max()), piece, reply_piece, reply)
    done = env.run(until=env.process(pipelined.run(net, gather, ready, cluster.pipeline)))
    aggregate = cluster.compute.server_time(piece * nodes // 8 // nodes, cluster.n,
                                            n_params // nodes)
    done = env.run(until=env.process(pipelined.run(net, back, done + aggregate,
                                                   cluster.pipeline)))
    return done, reply
