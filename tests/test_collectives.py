"""Collectives against the Hockney alpha-beta formulas (MPICH / Thakur-Rabenseifner-Gropp).

On a star network with equal links and simultaneous starts, every step of these schedules puts
at most one flow on each directed link, so a step costs tau = alpha + chunk/B exactly, with
alpha = path latency + overhead (s) and B the link rate (bits/s). The formulas are those of the
ideal fluid model, so every network here pins transport "fluid".
"""

import numpy as np
import pytest
import simpy

from sim.net.collectives import (COLLECTIVES, alltoall, halving_doubling_allreduce, ps_pull,
                                 ps_push, ring_allgather, ring_allreduce, tree_broadcast)
from sim.net.network import Network

RTOL = 1e-9
LAT, OVH, B = 3e-6, 2e-6, 10e9
ALPHA = 2 * LAT + OVH


def _net(p, **kw):
    env = simpy.Environment()
    params = dict(bandwidth=B, latency=LAT, server_latency=LAT, overhead=OVH, transport="fluid")
    params.update(kw)
    return Network(env, p, **params)


def _run(net, gen):
    proc = net.env.process(gen)
    net.env.run()
    return proc.value


@pytest.mark.parametrize("p", [2, 4, 8, 64])
def test_ring_allreduce(p):
    # 2(p-1) steps, each moving one chunk of n/p bits on every rank's link:
    # T = 2(p-1) alpha + 2(p-1)/p * n/B. All ranks start at t0.
    n, t0 = 64 * 12_345, 0.5
    net = _net(p)
    finish = _run(net, ring_allreduce(net, np.full(p, t0), n))
    np.testing.assert_allclose(finish, t0 + 2 * (p - 1) * ALPHA + 2 * (p - 1) / p * n / B, rtol=RTOL)
    assert net.sent_bits == net.delivered_bits == 2 * (p - 1) * n


@pytest.mark.parametrize("p", [2, 4, 8, 64])
def test_halving_doubling_allreduce(p):
    # Reduce-scatter: lg p steps of n/2, n/4, ..., n/p bits; all-gather mirrors it:
    # T = 2 lg(p) alpha + 2 (p-1)/p * n/B.
    n, t0 = 64 * 12_345, 0.25
    net = _net(p)
    finish = _run(net, halving_doubling_allreduce(net, np.full(p, t0), n))
    lg = p.bit_length() - 1
    np.testing.assert_allclose(finish, t0 + 2 * lg * ALPHA + 2 * (p - 1) / p * n / B, rtol=RTOL)
    assert net.sent_bits == net.delivered_bits == 2 * (p - 1) * n


@pytest.mark.parametrize("p", [2, 4, 8, 64])
def test_ring_allgather(p):
    # p-1 steps, each forwarding one n-bit contribution: T = (p-1)(alpha + n/B).
    n = 777_777
    net = _net(p)
    finish = _run(net, ring_allgather(net, np.zeros(p), n))
    np.testing.assert_allclose(finish, (p - 1) * (ALPHA + n / B), rtol=RTOL)


@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_alltoall(p):
    # every rank sends p-1 pieces of n/(p-1) bits at once: each up link and each down link
    # carries p-1 flows at B/(p-1), so every piece lands at alpha + n/B
    n, t0 = (p - 1) * 40_000, 0.125
    net = _net(p)
    finish = _run(net, alltoall(net, np.full(p, t0), n))
    np.testing.assert_allclose(finish, t0 + ALPHA + n / B, rtol=RTOL)
    assert net.sent_bits == net.delivered_bits == p * n
    # one rank: nothing moves
    net = _net(1)
    assert _run(net, alltoall(net, [t0], n)).tolist() == [t0]
    assert net.sent_bits == 0


def test_alltoall_waits_for_the_last_sender():
    # rank 0 starts D late; its p-1 pieces share its up link, so the others hold theirs at
    # D + alpha + (p-1) piece/B (their other pieces arrived long before); rank 0 receives p-1
    # pieces sharing its down link from t = 0
    p, piece, d = 4, 10**6, 1.0
    starts = np.array([d, 0.0, 0.0, 0.0])
    net = _net(p)
    finish = _run(net, alltoall(net, starts, (p - 1) * piece))
    np.testing.assert_allclose(finish[1:], d + ALPHA + (p - 1) * piece / B, rtol=RTOL)
    np.testing.assert_allclose(finish[0], ALPHA + (p - 1) * piece / B, rtol=RTOL)


def test_uneven_sizes_still_move_every_bit_once_per_step():
    # Ring: each step forwards a permutation of the p chunks, so n bits per step. Halving-
    # doubling at distance d: groups of 2d ranks share a segment and d pairs exchange all of it,
    # so d*n bits per step and (p-1)n per phase. All-gather: every contribution p-1 times.
    n, p = 1_000_003, 8
    for collective, expected in ((ring_allreduce, 2 * (p - 1) * n),
                                 (halving_doubling_allreduce, 2 * (p - 1) * n)):
        net = _net(p)
        _run(net, collective(net, np.zeros(p), n))
        assert net.sent_bits == net.delivered_bits == expected
    sizes = np.arange(1, p + 1) * 1001
    net = _net(p)
    _run(net, ring_allgather(net, np.zeros(p), sizes))
    assert net.sent_bits == net.delivered_bits == (p - 1) * sizes.sum()


def test_ring_waits_for_data_not_barriers():
    # p = 2, rank 1 starts at D. Rank 0's step-0 chunk c reaches rank 1 at alpha + c/B < D. At D
    # rank 1 sends its own chunk (step 0), which reaches rank 0 at D + alpha + c/B; only then
    # does it send its step-1 chunk (a rank's messages go one after another), and rank 0, now
    # holding step 0, sends its step-1 chunk at the same moment on the other direction of the
    # links: both reach their peer at D + 2 alpha + 2c/B.
    n, d = 2 * 10**6, 1.0
    c = n // 2
    net = _net(2)
    finish = _run(net, ring_allreduce(net, np.array([0.0, d]), n))
    np.testing.assert_allclose(finish, [d + 2 * ALPHA + 2 * c / B] * 2, rtol=RTOL)


def test_a_late_rank_costs_the_ring_its_delay_not_more():
    # 8 ranks, rank 3 starts D late. The ring's 2(p-1) steps each take alpha + c/B once data
    # flows; the late rank can hold everyone back by at most D: the result is no later than
    # D + 2(p-1)(alpha + c/B) (sending its backlog in order, never in parallel).
    p, n, d = 8, 8 * 10**6, 0.5
    c = n / p
    starts = np.zeros(p)
    starts[3] = d
    net = _net(p)
    finish = _run(net, ring_allreduce(net, starts, n))
    assert finish.max() <= d + 2 * (p - 1) * (ALPHA + c / B) * (1 + 1e-9)
    assert finish.min() >= d + ALPHA + c / B  # everyone needs at least one hop of its data


def test_late_rank_delays_every_allreduce_result():
    # Every rank's result contains the late rank's data, which needs at least one hop after D.
    p, n, d = 8, 8 * 10**5, 0.3
    starts = np.zeros(p)
    starts[5] = d
    for collective in (ring_allreduce, halving_doubling_allreduce):
        net = _net(p)
        finish = _run(net, collective(net, starts, n))
        others = np.arange(p) != 5
        assert (finish[others] >= d + ALPHA + (n / p) / B).all()
        assert finish[5] >= d


@pytest.mark.parametrize("p, root", [(8, 0), (8, 3), (6, 4), (1, 0)])
def test_tree_broadcast(p, root):
    # Binomial tree: relative rank v gets the data in round bit_length(v), each round one
    # full message (alpha + n/B); ceil(lg p) rounds in all.
    n, t0 = 10**6, 0.125
    net = _net(p)
    finish = _run(net, tree_broadcast(net, root, t0, n))
    rel = (np.arange(p) - root) % p
    rounds = np.array([int(v).bit_length() for v in rel])
    np.testing.assert_allclose(finish, t0 + rounds * (ALPHA + n / B), rtol=RTOL)


@pytest.mark.parametrize("k", [1, 3])
def test_ps_push_pull_sharded(k):
    # Each worker sends M/k to each of k servers: worker link carries M, each server link N*M/k:
    # T = alpha + max(M/B_w, N*M/(k*B_s)). Pull is the mirror image.
    n, m, b_s = 7, 3 * 10**6, 2 * B
    net = _net(n, server_bandwidth=b_s, topology="sharded", servers=k)
    oracle = ALPHA + max(m / B, n * m / (k * b_s))
    np.testing.assert_allclose(_run(net, ps_push(net, np.zeros(n), m)), oracle, rtol=RTOL)
    t1 = net.env.now
    np.testing.assert_allclose(_run(net, ps_pull(net, t1, m)), t1 + oracle, rtol=RTOL)


def test_ps_push_staggered_starts_and_uneven_split():
    # The server links are fast enough that only each worker's own uplink limits it.
    n = 5
    starts = np.array([0.0, 0.1, 0.05, 0.3, 0.2])
    bits = np.array([10**6, 2 * 10**6 + 1, 7, 0, 123_457])
    net = _net(n, server_bandwidth=2 * n * B, topology="sharded", servers=2)
    arrival = _run(net, ps_push(net, starts, bits))
    # Both pieces leave through the worker's own uplink, sharing it: the last bit of the two
    # leaves after bits/B whatever the split (the smaller piece ends first, then the larger
    # gets the whole link).
    np.testing.assert_allclose(arrival, starts + ALPHA + bits / B, rtol=RTOL)
    assert net.delivered_bits == net.sent_bits == bits.sum()


def test_ps_pull_per_worker_sizes():
    n = 4
    bits = np.array([10**6, 2 * 10**6, 3 * 10**6, 4 * 10**6])
    net = _net(n, server_bandwidth=n * B)
    np.testing.assert_allclose(_run(net, ps_pull(net, 0.0, bits)), ALPHA + bits / B, rtol=RTOL)


def test_halving_doubling_rejects_other_sizes():
    net = _net(6)
    with pytest.raises(ValueError, match=r"n_workers=6.*power of two.*4 or 8"):
        _run(net, halving_doubling_allreduce(net, np.zeros(6), 100))


@pytest.mark.parametrize("call, word", [
    (lambda net: ring_allreduce(net, np.zeros(3), 10), "start_times"),
    (lambda net: ring_allreduce(net, np.full(4, -1.0), 10), "start_times"),
    (lambda net: ring_allreduce(net, np.zeros(4), 1.5), "bits"),
    (lambda net: ps_push(net, np.zeros(4), [1, 2]), "bits"),
    (lambda net: ps_push(net, np.zeros(4), -3), "bits"),
    (lambda net: ps_pull(net, -0.5, 10), "start_time"),
    (lambda net: tree_broadcast(net, 4, 0.0, 10), "root"),
])
def test_bad_arguments(call, word):
    net = _net(4)
    with pytest.raises(ValueError, match=word):
        _run(net, call(net))


def test_collective_names():
    assert set(COLLECTIVES) == {"ps", "ring", "halving_doubling", "allgather", "alltoall",
                                "tree"}
    assert all(isinstance(v, str) and v for v in COLLECTIVES.values())
