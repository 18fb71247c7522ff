"""Collectives as NCCL runs them (sim/net/pipelined.py, sim/peers.py, sim/tuner.py) against
alpha-beta formulas written here from first principles, and the sharded vote against the
parameter server it must equal."""
import math

import numpy as np
import pytest
import simpy

import experiments
from sim.net import pipelined
from sim.net.network import Network

CHUNK = 8 * 512 * 1024  # NCCL's slot, bits
CHANNELS = 2


def ring_formula(p, bits, alpha, rate, chunk=CHUNK, channels=CHANNELS):
    """Pipelined ring all-reduce: 2(p-1) steps of s = bits/p over every link; per channel
    chunks of c bits at rate/channels. The larger of the link-bound time (one latency, then
    2(p-1) s bits) and the last chunk's path (2(p-1) hops of latency and a chunk, behind the
    k - 1 chunks before it)."""
    hops, s = 2 * (p - 1), math.ceil(bits / p)
    per_channel = s / channels
    c = min(chunk, per_channel) if chunk else per_channel
    k = math.ceil(per_channel / c)
    tau = c / (rate / channels)
    return max(alpha + hops * s / rate, hops * (alpha + tau) + (k - 1) * tau)


def tree_formula(p, bits, alpha, rate, chunk=CHUNK, channels=CHANNELS):
    """Double binary tree: each tree half the vector, every edge once each way; the busiest
    link carries 4 halves (an inner node's parent and two children in one tree, a leaf's
    parent in the other), so each tree moves at rate/4; the last chunk crosses 2 x depth hops,
    depth = floor(log2 p)."""
    half = bits / 2
    per_tree = rate / 4
    hops = 2 * int(math.floor(math.log2(p)))
    per_channel = half / channels
    c = min(chunk, per_channel)
    k = math.ceil(per_channel / c)
    tau = c / (per_tree / channels)
    return max(alpha + half / per_tree, hops * (alpha + tau) + (k - 1) * tau)


def _step_seconds(method, n, bits, latency, bandwidth, transport="fluid", **network):
    """Seconds of one step's communication (the third step, compute excluded) and the
    collective the run used."""
    r = experiments.simulate(objective={"name": "quadratic", "dim": 64}, method=method,
                             workers=n, steps=3, eval_every=0, progress=False,
                             cluster={"model_params": bits // 32},
                             network={"bandwidth": bandwidth, "latency": latency,
                                      "transport": transport, **network},
                             compute={"step_time": 0.5})
    t = r.history["time_s"]
    return t[2] - t[1] - 0.5, r.summary["collective"], r


@pytest.mark.parametrize("p", [4, 8, 16, 64])
@pytest.mark.parametrize("mib, latency", [(1, 1e-6), (1, 1e-3), (128, 1e-6), (128, 1e-3),
                                          (128, 10e-3), (256, 5e-3)])
def test_the_pipelined_ring_and_tree_are_their_formulas_on_the_fluid_model(p, mib, latency):
    env = simpy.Environment()
    net = Network(env, p, bandwidth=1e9, latency=latency, transport="fluid")
    bits = 8 * mib * 2**20
    alpha = 2 * latency  # worker to worker: two access links
    ring = env.process(pipelined.run(net, pipelined.ring_phases(net, bits), np.zeros(p),
                                     pipelined.Pipeline()))
    env.run(ring)
    assert ring.value[0] == pytest.approx(ring_formula(p, bits, alpha, 1e9), rel=1e-9)
    env2 = simpy.Environment()
    net2 = Network(env2, p, bandwidth=1e9, latency=latency, transport="fluid")
    tree = env2.process(pipelined.run_concurrently(net2, pipelined.tree_phases(net2, bits),
                                                   np.zeros(p), pipelined.Pipeline()))
    env2.run(tree)
    assert tree.value[0] == pytest.approx(tree_formula(p, bits, alpha, 1e9), rel=1e-9)


def test_the_textbook_ring_pays_every_latency_the_pipelined_one_overlaps():
    # 8 ranks, 256 MiB, 10 ms a link: 32 MiB segments in 64 chunks per channel, so the
    # pipelined ring is link-bound, alpha + 14 s/B, where the textbook pays 14 (alpha + s/B)
    p, bits, latency = 8, 8 * 256 * 2**20, 10e-3
    alpha, s = 2 * latency, bits / p
    textbook, _, _ = _step_seconds("gadamw", p, bits, latency, 1e9, collective="ring", chunk=0)
    assert textbook == pytest.approx(2 * (p - 1) * (alpha + s / 1e9), rel=1e-9)
    pipelined_ring, _, _ = _step_seconds("gadamw", p, bits, latency, 1e9, collective="ring")
    assert pipelined_ring == pytest.approx(alpha + 2 * (p - 1) * s / 1e9, rel=1e-9)
    assert textbook - pipelined_ring == pytest.approx((2 * (p - 1) - 1) * alpha, rel=1e-6)


@pytest.mark.parametrize("transport", ["fluid", "tcp"])
@pytest.mark.parametrize("p, mib, latency, bandwidth", [
    (4, 128, 1e-3, 1e9), (16, 256, 1e-3, 5e9), (32, 128, 5e-3, 1e9), (8, 1, 5e-3, 1e10),
    (64, 16, 1e-4, 1e10), (32, 256, 1e-2, 5e9), (8, 0.25, 1e-6, 1e9)])
def test_the_dense_default_all_reduce_is_within_the_formulas(transport, p, mib, latency,
                                                              bandwidth):
    """G-AdamW's default (auto) all-reduce within 10% of the faster of the ring and tree
    formulas where their latency and bandwidth terms differ by 10x, 15% in between (the payload
    rate after TCP's framing on tcp)."""
    bits = int(8 * mib * 2**20)
    seconds, chose, _ = _step_seconds("gadamw", p, bits, latency, bandwidth, transport)
    assert chose in ("ring", "tree")
    rate = bandwidth * (1448 / 1538 if transport == "tcp" else 1.0)
    alpha = 2 * latency
    best = min(ring_formula(p, bits, alpha, rate), tree_formula(p, bits, alpha, rate))
    latency_term, bandwidth_term = 2 * (p - 1) * alpha, 2 * (p - 1) / p * bits / rate
    apart = max(latency_term, bandwidth_term) >= 10 * min(latency_term, bandwidth_term)
    assert seconds == pytest.approx(best, rel=0.10 if apart else 0.15), (chose, seconds, best)


def test_dlion_sharded_sends_a_share_of_its_signs_and_takes_the_bandwidth_optimal_time():
    """64 workers at 1 Gb/s, a 10M-parameter model: every worker sends (N-1)/N of its 1-bit
    message (one shard to each other owner) and the step moves 2(N-1)/N M/B, the
    parameters those of the server's vote."""
    n, params, bw = 64, 10_000_000, 1e9
    common = dict(objective={"name": "logistic", "features": 63}, method={"name": "dlion"},
                  workers=n, steps=2, eval_every=0, progress=False,
                  cluster={"model_params": params}, compute={"step_time": 0.1})
    sharded = experiments.simulate(
        **common, network={"bandwidth": bw, "latency": 0.0, "transport": "fluid",
                           "collective": "alltoall"})
    server = experiments.simulate(
        **common, network={"bandwidth": bw, "latency": 0.0, "transport": "fluid",
                           "collective": "ps"})
    np.testing.assert_array_equal(sharded.params, server.params)
    shard_bits = 8 * math.ceil(math.ceil(params / n) / 8)  # one packed shard, padded to bytes
    up = sharded.summary["bits_per_param_per_step"]["up"]
    assert up == pytest.approx((n - 1) * shard_bits / params, rel=1e-9)
    assert up == pytest.approx((n - 1) / n, rel=1e-3)
    t = sharded.history["time_s"]
    assert t[1] - t[0] - 0.1 == pytest.approx(2 * (n - 1) / n * params / bw, rel=0.10)


@pytest.mark.parametrize("method", ["dlion", "gadamw", "signum", "powersgd", "terngrad"])
@pytest.mark.parametrize("bandwidth, latency", [(1e8, 1e-4), (1e10, 1e-3), (1e11, 2e-2)])
def test_auto_is_never_slower_than_any_collective_it_could_have_chosen(method, bandwidth,
                                                                       latency):
    n, bits = 16, 8 * 32 * 2**20
    auto, chose, run = _step_seconds(method, n, bits, latency, bandwidth)
    for candidate in run.summary["collective_choice"]["estimates_s"]:
        other, used, _ = _step_seconds(method, n, bits, latency, bandwidth,
                                       collective=candidate)
        assert used == candidate
        assert auto <= other * (1 + 1e-9), (chose, candidate, auto, other)


def test_two_nodes_of_four_all_reduce_in_the_nic_bound_time():
    """Two nodes of four GPUs, NVLink inside: the hierarchical all-reduce crosses each NIC with
    2(m-1)/m of the vector (here once the vector), so the step takes the NIC-bound time n/B;
    a flat ring across the 8 GPUs would carry 2(N-1)/N = 1.75 vectors through each NIC."""
    bits, nic = 8 * 256 * 2**20, 1e10
    seconds, chose, _ = _step_seconds("gadamw", 8, bits, 0.0, nic, topology="nodes",
                                      gpus_per_node=4, intra="nvlink4")
    assert chose == "hierarchical"
    assert seconds == pytest.approx(bits / nic, rel=0.05)
    flat, _, _ = _step_seconds("gadamw", 8, bits, 0.0, nic, topology="nodes",
                               gpus_per_node=4, intra="nvlink4", collective="ring")
    assert flat == pytest.approx(1.75 * bits / nic, rel=0.05)


def test_a_vote_over_gpu_nodes_sends_one_sum_per_node_through_each_nic():
    """D-Lion over 4 nodes of 8 GPUs: each node's first GPU sums its GPUs' signs (4 bits per
    coordinate for 8 signs) and the leaders share the shards; its parameters are the server's."""
    n, params, nic = 32, 8_000_000, 1e9
    common = dict(objective={"name": "logistic", "features": 63}, method={"name": "dlion"},
                  workers=n, steps=2, eval_every=0, progress=False,
                  cluster={"model_params": params}, compute={"step_time": 0.1})
    nodes = dict(bandwidth=nic, latency=0.0, transport="fluid", topology="nodes",
                 gpus_per_node=8, intra="nvlink4")
    hierarchical = experiments.simulate(**common, network={**nodes, "collective": "hierarchical"})
    server = experiments.simulate(**common, network={**nodes, "collective": "ps"})
    np.testing.assert_array_equal(hierarchical.params, server.params)
    # a leader sends 3 of its 4 shards of 4-bit sums and gets 3 one-bit shards back
    m = 4
    expected = (m - 1) / m * params * (4 + 1) / nic
    t = hierarchical.history["time_s"]
    assert t[1] - t[0] - 0.1 == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("method", ["dlion", "gadamw"])
def test_hierarchical_collectives_run_over_tcp_when_the_first_flows_stay_inside_a_node(method):
    """On TCP a hierarchical step starts with flows inside the nodes, which have no TCP
    connection: before any NIC connection exists the transport has nothing to look up. The run
    must go on and give the parameters of the same method over the server."""
    common = dict(objective={"name": "logistic", "features": 15}, method={"name": method},
                  workers=16, steps=3, eval_every=0, progress=False,
                  cluster={"model_params": 1_000_000}, compute={"step_time": 0.01})
    nodes = dict(bandwidth=1e9, latency=5e-6, transport="tcp", topology="nodes",
                 gpus_per_node=8, intra="nvlink4")
    hierarchical = experiments.simulate(**common, network={**nodes, "collective": "hierarchical"})
    server = experiments.simulate(**common, network={**nodes, "collective": "ps"})
    np.testing.assert_allclose(hierarchical.params, server.params, rtol=1e-12)
    assert np.all(np.diff(hierarchical.history["time_s"]) > 0.01)
