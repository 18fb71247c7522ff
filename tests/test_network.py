"""Network model against exact oracles (DESIGN.md 7) and invariants of max-min sharing.

Notation: alpha = path latency + per-message overhead (s), B = bandwidth (bits/s), n or M = bits.
The oracles are those of the ideal fluid model, so every network here pins transport "fluid"
(the TCP transport has its own tests in test_transport.py).
"""

import numpy as np
import pytest
import simpy

from sim.net.network import Network
from sim.net.routes import Routes
from sim.net.sharing import fifo_rates, max_min_rates

RTOL = 1e-9


def _run(n_workers, messages, **kw):
    """messages: (src, dst, bits[, delay]); returns arrival times (s) and the network."""
    env = simpy.Environment()
    net = Network(env, n_workers, **{"transport": "fluid", **kw})
    events = [net.transfer(m[0], m[1], m[2], delay=m[3] if len(m) > 3 else 0.0) for m in messages]
    env.run()
    return np.array([e.value for e in events]), net


def test_point_to_point_is_alpha_plus_n_over_b():
    lat_w, lat_s, ovh, bw = 20e-6, 30e-6, 7e-6, 25e9
    for bits in (1, 12_345, 8 * 10**8):
        for src, dst in ((0, 1), (1, 0)):  # server 1, both directions
            t, net = _run(1, [(src, dst, bits)], bandwidth=bw, latency=lat_w,
                          server_latency=lat_s, overhead=ovh)
            alpha = lat_w + lat_s + ovh
            assert net.path_latency(src, dst) == pytest.approx(lat_w + lat_s, rel=1e-15)
            assert t[0] == pytest.approx(alpha + bits / bw, rel=RTOL)


def test_delayed_start_shifts_the_arrival():
    t, _ = _run(2, [(0, 1, 10**6, 0.25)], bandwidth=1e9, latency=1e-3)
    assert t[0] == pytest.approx(0.25 + 2e-3 + 10**6 / 1e9, rel=RTOL)


def test_a_message_behind_another_flows_once_that_one_has_arrived():
    # 10^6 bits each at 1 Gb/s over a 1 ms path: the first flows from 1 ms and lands at 2 ms.
    # The second, sent 0.5 ms later behind it, would flow from 1.5 ms: it waits for the first,
    # then has the link to itself and lands 1 ms later (its latency elapsed while it waited).
    # Sharing the link from 1.5 ms instead, the first would land at 2.5 ms.
    env = simpy.Environment()
    net = Network(env, 1, bandwidth=1e9, latency=1e-3, transport="fluid")
    first = net.transfer(1, 0, 10**6)
    second = net.transfer(1, 0, 10**6, delay=5e-4, behind=first)
    env.run()
    assert first.value == pytest.approx(2e-3, rel=RTOL)
    assert second.value == pytest.approx(3e-3, rel=RTOL)
    # behind one that has already arrived: no wait
    late = net.transfer(1, 0, 10**6, behind=first)
    env.run()
    assert late.value == pytest.approx(3e-3 + 2e-3, rel=RTOL)


def test_goodput_scales_link_rate():
    t, _ = _run(2, [(0, 1, 10**6)], bandwidth=1e9, goodput=0.8)
    assert t[0] == pytest.approx(10**6 / (0.8 * 1e9), rel=RTOL)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
@pytest.mark.parametrize("ratio_times_n", [0.25, 4.0])  # worker/server bandwidth vs 1/N
def test_ps_incast_and_broadcast(n, ratio_times_n):
    # Incast: every worker's uplink carries M at B_w while the server downlink carries N*M at
    # B_s; with equal flows started together the slower of the two decides:
    # alpha + M*max(1/B_w, N/B_s). Broadcast is the mirror image on the server uplink.
    b_server = 40e9
    b_worker = ratio_times_n / n * b_server
    m, lat, ovh = 3_000_000, 5e-6, 2e-6
    oracle = lat + lat + ovh + m * max(1 / b_worker, n / b_server)
    kw = dict(bandwidth=b_worker, server_bandwidth=b_server, latency=lat, server_latency=lat, overhead=ovh)
    up, _ = _run(n, [(i, n, m) for i in range(n)], **kw)
    down, _ = _run(n, [(n, i, m) for i in range(n)], **kw)
    np.testing.assert_allclose(up, oracle, rtol=RTOL)
    np.testing.assert_allclose(down, oracle, rtol=RTOL)


def test_heterogeneous_incast_redistributes_freed_bandwidth():
    # The 1 Gb/s worker is capped by its own link; the 7 fast ones split the remaining 9 Gb/s
    # (9/7 Gb/s each), finish at 7*8e8/9e9 s, and the slow flow keeps 1 Gb/s to 0.8 s.
    bw = [10e9] * 7 + [1e9]
    t, _ = _run(8, [(i, 8, 8 * 10**8) for i in range(8)], bandwidth=bw, server_bandwidth=10e9)
    np.testing.assert_allclose(t[:7], 7 * 8e8 / 9e9, rtol=RTOL)
    assert t[7] == pytest.approx(0.8, rel=RTOL)
    assert t[:7].max() == pytest.approx(0.6222, abs=1e-4)


def test_racks_oversubscribed_uplink_is_four_times_slower():
    # 2 racks of 4 workers, uplink = 4*B/4 = B: four cross-rack flows share it (B/4 each),
    # while within a rack each flow has its own access links at B.
    bw, m = 10e9, 10**8
    kw = dict(bandwidth=bw, topology="racks", rack_size=4, oversubscription=4.0)
    within, _ = _run(8, [(i, i ^ 1, m) for i in range(8)], **kw)
    across, _ = _run(8, [(i, (i + 4) % 8, m) for i in range(8)], **kw)
    np.testing.assert_allclose(within, m / bw, rtol=RTOL)
    np.testing.assert_allclose(across, 4 * m / bw, rtol=RTOL)


def test_racks_server_and_rack_latency():
    env = simpy.Environment()
    net = Network(env, 4, bandwidth=1e9, latency=1e-3, server_latency=2e-3, topology="racks",
                  rack_size=2, rack_bandwidth=5e8, rack_latency=4e-4, transport="fluid")
    assert net.path_latency(0, 1) == pytest.approx(2e-3)           # same rack
    assert net.path_latency(0, 2) == pytest.approx(2e-3 + 8e-4)    # two uplinks
    assert net.path_latency(0, net.server) == pytest.approx(3e-3 + 4e-4)
    done = net.transfer(net.server, 3, 10**6)
    env.run()
    assert done.value == pytest.approx(3.4e-3 + 10**6 / 5e8, rel=RTOL)  # rack uplink binds


# Five workers with distinct latencies, so a hop charged twice, skipped or taken from the
# wrong end shows; racks of two ({0, 1}, {2, 3}, {4}) whose uplinks run at half a worker's rate.
HOP_LATENCY = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]
SERVER_LATENCY, RACK_LATENCY, OVERHEAD, BW = 7e-3, 5e-4, 1e-4, 1e9
TOPOLOGY_KW = {
    "star": dict(topology="star"),
    "sharded": dict(topology="sharded", servers=2),
    "racks": dict(topology="racks", servers=2, rack_size=2, rack_bandwidth=BW / 2,
                  rack_latency=RACK_LATENCY),
}


def _hops(topology, src, dst):
    """(one-way latency, bottleneck bits/s) of an unloaded route, from the topology's
    definition: both ends' access links, and in racks every rack uplink the message crosses
    (servers sit outside every rack)."""
    latency = HOP_LATENCY + [SERVER_LATENCY] * 2
    rack = {w: w // 2 for w in range(5)} if topology == "racks" else {}
    crossed = 0
    if rack:
        src_rack, dst_rack = rack.get(src), rack.get(dst)
        crossed = (src_rack is not None and src_rack != dst_rack) + (
            dst_rack is not None and src_rack != dst_rack)
    return latency[src] + latency[dst] + crossed * RACK_LATENCY, BW / 2 if crossed else BW


@pytest.mark.parametrize("topology", TOPOLOGY_KW)
@pytest.mark.parametrize("bits", [0, 10**6])
def test_every_hop_pays_its_latency_in_both_directions(topology, bits):
    # every ordered pair of nodes (workers and servers both ways), one message at a time on an
    # idle network, by transfer and by transfer_many: latency + overhead + bits / bottleneck
    def make():
        return Network(simpy.Environment(), 5, bandwidth=BW, latency=HOP_LATENCY,
                       server_latency=SERVER_LATENCY, overhead=OVERHEAD, transport="fluid",
                       **TOPOLOGY_KW[topology])

    nodes = range(5 + len(make().servers))
    pairs = [(a, b) for a in nodes for b in nodes if a != b and not (a >= 5 and b >= 5)]
    for src, dst in pairs:
        latency, rate = _hops(topology, src, dst)
        expected = latency + OVERHEAD + bits / rate
        net = make()
        assert net.path_latency(src, dst) == pytest.approx(latency, rel=1e-12), (src, dst)
        single = net.transfer(src, dst, bits)
        net.env.run()
        net = make()
        seen = []
        net.transfer_many(np.array([src]), np.array([dst]), np.array([bits]), 0.0,
                          lambda indices, t: seen.append(t))
        net.env.run()
        assert [single.value, *seen] == pytest.approx([expected, expected], rel=1e-12), (
            topology, src, dst)


def test_a_rack_uplink_is_full_duplex():
    # Worker 0 pushes to the server while the server replies to worker 1, both through rack
    # 0's uplink (as fast as a worker link), in opposite directions: neither slows the other.
    # Across racks, 0 -> 2 and 3 -> 1 use each uplink once in each direction.
    m = 10**6
    kw = dict(bandwidth=BW, topology="racks", rack_size=2, rack_bandwidth=BW)
    t, net = _run(4, [(0, 4, m), (4, 1, m)], **kw)
    np.testing.assert_allclose(t, m / BW, rtol=RTOL)
    t, _ = _run(4, [(0, 2, m), (3, 1, m)], **kw)
    np.testing.assert_allclose(t, m / BW, rtol=RTOL)


def test_the_server_link_defaults_to_the_fastest_worker_link():
    # Network: "server_bandwidth: bits/s of each server NIC (default: the largest worker
    # bandwidth)". Alone, the 4 Gb/s worker's push and the server's reply to it run at 4 Gb/s;
    # together, the 1 Gb/s worker keeps its 1 Gb/s and the other gets the 3 Gb/s left.
    m = 12 * 10**6
    kw = dict(bandwidth=[1e9, 4e9])
    t, _ = _run(2, [(1, 2, m)], **kw)
    assert t[0] == pytest.approx(m / 4e9, rel=RTOL)
    t, _ = _run(2, [(2, 1, m)], **kw)
    assert t[0] == pytest.approx(m / 4e9, rel=RTOL)
    t, _ = _run(2, [(0, 2, m), (1, 2, m)], **kw)
    assert t[1] == pytest.approx(m / 3e9, rel=RTOL)


def test_sharded_servers_have_their_own_nics():
    # Each of 4 workers sends M to each of 2 servers: each server downlink carries 4M.
    m, b = 10**6, 1e9
    msgs = [(w, s, m) for w in range(4) for s in (4, 5)]
    t, net = _run(4, msgs, bandwidth=b, server_bandwidth=b, topology="sharded", servers=2)
    assert net.servers == [4, 5] and net.server == 4
    np.testing.assert_allclose(t, max(2 * m / b, 4 * m / b), rtol=RTOL)


def test_tcp_window_caps_a_flow():
    # RTT = 2 * (25 ms + 25 ms) = 100 ms; 4 MiB per RTT = 8*4*2**20/0.1 bits/s.
    bits = 10**9
    t, _ = _run(1, [(0, 1, bits)], bandwidth=100e9, latency=0.025, server_latency=0.025,
                tcp_window=4 * 2**20)
    rate = 8 * 4 * 2**20 / 0.1
    assert t[0] == pytest.approx(0.05 + bits / rate, rel=RTOL)


def test_fifo_serialises_and_matches_fair_makespan():
    # One bottleneck (server downlink at B, workers faster): FIFO delivers one flow at a time
    # at B, flow k at alpha + k*M/B; fair sharing delivers all at alpha + N*M/B.
    n, m, b, lat = 6, 10**7, 1e9, 1e-4
    kw = dict(bandwidth=4 * b, server_bandwidth=b, latency=lat, server_latency=lat)
    msgs = [(i, n, m) for i in range(n)]
    fifo, _ = _run(n, msgs, sharing="fifo", **kw)
    fair, _ = _run(n, msgs, **kw)
    np.testing.assert_allclose(fifo, 2 * lat + np.arange(1, n + 1) * m / b, rtol=RTOL)
    np.testing.assert_allclose(fair, 2 * lat + n * m / b, rtol=RTOL)
    assert fifo.max() == pytest.approx(fair.max(), rel=RTOL)


def test_fifo_lets_disjoint_routes_run_in_parallel():
    # 0->1 and 2->3 share no link, so both run at full rate at once; 0->3 waits for both.
    t, _ = _run(4, [(0, 1, 10**6), (2, 3, 10**6), (0, 3, 10**6)], bandwidth=1e9, sharing="fifo")
    np.testing.assert_allclose(t, [1e-3, 1e-3, 2e-3], rtol=RTOL)


def test_conservation_after_random_traffic():
    rng = np.random.default_rng(7)
    for sharing, topo in (("fair", "star"), ("fifo", "star"), ("fair", "racks")):
        extra = dict(rack_size=3) if topo == "racks" else {}
        msgs = [(int(s), int(d), int(rng.integers(0, 10**7)), float(rng.uniform(0, 0.01)))
                for s, d in (rng.choice(9, 2, replace=False) for _ in range(200))]
        t, net = _run(8, msgs, bandwidth=rng.uniform(1e8, 1e10, 8).tolist(), latency=1e-5,
                      sharing=sharing, topology=topo, **extra)
        assert net.sent_bits == sum(m[2] for m in msgs)
        assert net.delivered_bits == net.sent_bits
        assert net.active_flows == 0
        # No message beats its own unloaded time: start + alpha + bits / bottleneck rate.
        lower = np.array([m[3] + net.path_latency(m[0], m[1]) + m[2] / 1e10 for m in msgs])
        assert (t >= lower * (1 - RTOL)).all()


def test_simultaneous_starts_cause_one_recomputation():
    env = simpy.Environment()
    net = Network(env, 50, bandwidth=1e9, latency=1e-4, transport="fluid")
    for i in range(50):
        net.transfer(i, net.server, 10**6)
    env.run(until=0.5e-4)  # still paying alpha = 1e-4 s
    assert net.recomputations == 0
    env.run(until=1.5e-4)  # all 50 flows joined at alpha
    assert net.recomputations == 1 and net.active_flows == 50
    env.run()
    assert net.recomputations == 2  # and one more when all 50 finish together


def test_step_time_is_monotone_in_every_link_for_equal_messages():
    # PS step: N workers push M bits each, then the server sends M bits to each. With equal
    # messages and simultaneous starts each phase takes alpha + M*max(1/min B_i, N/B_s)
    # (capped flows run at their own rate; the rest saturate the server link until the end),
    # which can only shrink when any link gets faster. Checked over a seeded sweep.
    rng = np.random.default_rng(3)

    def step(bw, b_server, n, m):
        env = simpy.Environment()
        net = Network(env, n, bandwidth=bw.tolist(), server_bandwidth=b_server, latency=1e-5,
                      transport="fluid")

        def proc():
            up = [net.transfer(i, net.server, m) for i in range(n)]
            yield env.all_of(up)
            down = [net.transfer(net.server, i, m) for i in range(n)]
            yield env.all_of(down)
            return max(max(e.value for e in up), max(e.value for e in down))

        p = env.process(proc())
        env.run()
        return p.value

    for _ in range(40):
        n = int(rng.integers(1, 9))
        m = int(rng.integers(10**5, 10**7))
        bw, bs = rng.uniform(1e8, 1e10, n), float(rng.uniform(1e8, 1e10))
        base = step(bw, bs, n, m)
        assert base == pytest.approx(2 * (1e-5 + m * max(1 / bw.min(), n / bs)), rel=RTOL)
        j, f = int(rng.integers(0, n + 1)), float(rng.uniform(1.0, 4.0))
        bw2, bs2 = bw.copy(), bs
        if j < n:
            bw2[j] *= f
        else:
            bs2 *= f
        assert step(bw2, bs2, n, m) <= base * (1 + RTOL)


def test_max_min_is_not_monotone_per_flow_or_for_unequal_messages():
    # Server at 10 bits/s; flow k (cap 6, 60 bits) and flow j (cap 4, 8 bits). Fair share 5:
    # j capped at 4, k gets 6 and ends at 60/6 = 10 s. Raising j's cap to 8 gives both 5 until
    # j ends at 1.6 s, then k runs at 6: 1.6 + 52/6 s. More bandwidth, later makespan: this is
    # max-min fairness itself, not a model error, so the guarantee above needs equal messages.
    slow, _ = _run(2, [(0, 2, 60), (1, 2, 8)], bandwidth=[6.0, 4.0], server_bandwidth=10.0)
    fast, _ = _run(2, [(0, 2, 60), (1, 2, 8)], bandwidth=[6.0, 8.0], server_bandwidth=10.0)
    np.testing.assert_allclose(slow, [10.0, 2.0], rtol=RTOL)
    np.testing.assert_allclose(fast, [1.6 + 52 / 6, 1.6], rtol=RTOL)


def _random_instance(rng, n_links, n_flows, width):
    capacity = np.append(rng.uniform(1.0, 10.0, n_links), np.inf)
    routes = np.full((n_flows, width), n_links)
    for f in range(n_flows):
        k = int(rng.integers(1, min(width, n_links) + 1))
        routes[f, :k] = rng.choice(n_links, k, replace=False)
    flow_cap = np.where(rng.random(n_flows) < 0.3, rng.uniform(0.5, 5.0, n_flows), np.inf)
    return routes, capacity, flow_cap


def test_max_min_rates_satisfy_the_bottleneck_characterisation():
    # A feasible allocation is max-min fair iff every flow is at its own cap or crosses a
    # saturated link on which no flow has a larger rate.
    rng = np.random.default_rng(11)
    for _ in range(200):
        n_links = int(rng.integers(1, 6))
        routes, capacity, flow_cap = _random_instance(rng, n_links, int(rng.integers(1, 12)), 3)
        rate = max_min_rates(Routes.from_rows(routes, n_links), capacity, flow_cap)
        load = np.bincount(routes.ravel(), weights=np.repeat(rate, 3), minlength=n_links + 1)
        assert (load[:n_links] <= capacity[:n_links] * (1 + 1e-12)).all()
        assert (rate <= flow_cap * (1 + 1e-12)).all()
        for f in range(len(rate)):
            if rate[f] >= flow_cap[f] * (1 - 1e-12):
                continue
            ok = False
            for link in routes[f][routes[f] < n_links]:
                on_link = (routes == link).any(axis=1)
                if load[link] >= capacity[link] * (1 - 1e-12) and rate[on_link].max() <= rate[f] * (1 + 1e-12):
                    ok = True
            assert ok, f"flow {f} has no bottleneck"


def test_more_capacity_never_lowers_the_sorted_allocation():
    # Max-min is the lexicographically largest sorted rate vector among feasible ones, and more
    # capacity only enlarges the feasible set, so the sorted vector cannot decrease
    # lexicographically (in particular the smallest rate never drops).
    rng = np.random.default_rng(5)
    for _ in range(200):
        n_links = int(rng.integers(1, 6))
        routes, capacity, flow_cap = _random_instance(rng, n_links, int(rng.integers(1, 12)), 3)
        before = np.sort(max_min_rates(Routes.from_rows(routes, n_links), capacity, flow_cap))
        bigger = capacity.copy()
        bigger[int(rng.integers(0, n_links))] *= rng.uniform(1.0, 3.0)
        after = np.sort(max_min_rates(Routes.from_rows(routes, n_links), bigger, flow_cap))
        diff = after - before
        first = np.flatnonzero(np.abs(diff) > 1e-9 * before.max())
        assert first.size == 0 or diff[first[0]] > 0


def test_fifo_rates_pick_heads_of_every_link():
    capacity = np.array([1.0, 2.0, 3.0, np.inf])
    routes = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    # Flow 0 heads links 0 and 1; flow 1 waits on link 1; flow 2 waits behind flow 1 on link 2
    # (no overtaking); flow 3 waits behind flow 0 on link 0.
    np.testing.assert_array_equal(fifo_rates(Routes.from_rows(routes, 3), capacity, np.full(4, np.inf)),
                                  [1.0, 0, 0, 0])


@pytest.mark.parametrize("kw, word", [
    (dict(bandwidth=0.0), "bandwidth"),
    (dict(bandwidth=[1e9, 1e9]), "bandwidth"),
    (dict(bandwidth=1e9, latency=-1.0), "latency"),
    (dict(bandwidth=1e9, topology="mesh"), "topology"),
    (dict(bandwidth=1e9, sharing="lifo"), "sharing"),
    (dict(bandwidth=1e9, servers=2), "servers"),
    (dict(bandwidth=1e9, topology="racks"), "rack_size"),
    (dict(bandwidth=1e9, topology="racks", rack_size=5), "rack_size"),
    (dict(bandwidth=1e9, rack_size=2), "rack_size"),
    (dict(bandwidth=1e9, goodput=1.5), "goodput"),
    (dict(bandwidth=1e9, tcp_window=0), "tcp_window"),
    (dict(bandwidth=1e9, oversubscription=0), "oversubscription"),
])
def test_bad_arguments_name_themselves(kw, word):
    with pytest.raises(ValueError, match=word):
        Network(simpy.Environment(), 3, **kw)


def test_bad_transfer_arguments():
    net = Network(simpy.Environment(), 2, bandwidth=1e9)
    for args, word in (((0, 3, 8), "dst"), ((0, 0, 8), "dst"), ((0, 1, -1), "bits"), ((0, 1, 1.5), "bits"),
                       ((True, 1, 8), "src")):
        with pytest.raises(ValueError, match=word):
            net.transfer(*args)
    for delay in (-1.0, float("nan"), "1s"):
        with pytest.raises(ValueError, match="delay"):
            net.transfer(0, 1, 8, delay=delay)
