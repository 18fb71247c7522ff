"""Transports (sim/net/transport.py): framing, TCP slow start against the per-round model,
connections kept between messages, restart after idle, spec defaults and bad input.

The slow-start oracle is the textbook per-round model written out here: a flow sends w
segments per round trip, w doubling every round from the initial window, until w segments per
RTT exceed its share of the link; from then on it runs at its share.
"""
import math

import numpy as np
import pytest
import simpy

from experiments.cli import main
from experiments.spec import SpecError, resolve
from sim.net.collectives import ps_pull, ps_push
from sim.net.network import Network
from sim.net.transport import framing

RTOL = 1e-9
MSS, WIRE = 1448, 1538  # TCP/IPv4 with timestamps over Ethernet at MTU 1500


def per_round_time(bits, bw, latency, iw=10, max_window=math.inf, share=1.0):
    """Last-bit arrival of one flow of ``bits`` on links of ``bw`` bit/s (its share of the payload
    rate a fraction ``share``), one-way ``latency``: latency first, then rounds of w segments
    per RTT, w doubling, until w segments per RTT exceed the share; a last flight that fits in
    the window leaves at once, at the share's rate."""
    rate = bw * MSS / WIRE * share
    rtt = 2 * latency + 8 * WIRE / bw  # and the serialization of one full frame
    t, left, w = latency, bits, min(iw, max_window)
    while True:
        cap = w * 8 * MSS / rtt
        if cap >= rate or left <= w * 8 * MSS:
            return t + left / rate
        if w >= max_window:
            return t + left / cap
        left -= cap * rtt
        t += rtt
        w = min(2 * w, max_window)


def _send(net, messages):
    """messages: (src, dst, bits, start); returns arrival times (s)."""
    events = [net.transfer(s, d, b, delay=t) for s, d, b, t in messages]
    net.env.run()
    return np.array([e.value for e in events])


def test_framing_from_the_mtu():
    tcp = framing("tcp", 1500)
    assert (tcp.payload, tcp.wire) == (1448, 1538)          # 20 IP + 20 TCP + 12 timestamps
    assert tcp.goodput == pytest.approx(0.94148, abs=1e-5)
    jumbo = framing("tcp", 9000)
    assert (jumbo.payload, jumbo.wire) == (8948, 9038)
    ib = framing("rdma")                                    # InfiniBand MTU 4096
    assert (ib.payload, ib.wire) == (4096, 4096 + 8 + 12 + 4 + 2)
    assert framing("fluid") is None


@pytest.mark.parametrize("transport,goodput", [("tcp", 1448 / 1538), ("rdma", 4096 / 4122),
                                               ("fluid", 1.0)])
def test_long_transfer_without_latency_runs_at_the_framed_rate(transport, goodput):
    bits, bw = 8 * 4_000_000, 1e8
    net = Network(simpy.Environment(), 1, bandwidth=bw, transport=transport)
    assert _send(net, [(0, 1, bits, 0.0)])[0] == pytest.approx(bits / (bw * goodput), rel=RTOL)


def test_explicit_goodput_overrides_the_framing():
    net = Network(simpy.Environment(), 1, bandwidth=1e9, goodput=0.5)
    assert _send(net, [(0, 1, 10**6, 0.0)])[0] == pytest.approx(10**6 / 5e8, rel=RTOL)


@pytest.mark.parametrize("latency", [1e-3, 5e-3, 20e-3])
@pytest.mark.parametrize("nbytes", [1448, 125_000, 4_000_000])
def test_one_flow_follows_the_per_round_model(latency, nbytes):
    bw = 1e8
    net = Network(simpy.Environment(), 1, bandwidth=bw, latency=latency)
    got = _send(net, [(0, 1, 8 * nbytes, 0.0)])[0]
    assert got == pytest.approx(per_round_time(8 * nbytes, bw, latency), rel=RTOL)


def test_slow_start_costs_one_rate_change_per_doubling():
    # 100 Mb/s, 10 ms RTT: the bandwidth-delay product is 82 segments, so from 10 segments the
    # window doubles ceil(log2(8.2)) = 4 times; the fluid model has none of these events
    bw, latency, bits = 1e8, 5e-3, 8 * 4_000_000
    counts = {}
    for transport in ("tcp", "fluid"):
        net = Network(simpy.Environment(), 1, bandwidth=bw, latency=latency, transport=transport)
        _send(net, [(0, 1, bits, 0.0)])
        counts[transport] = net.recomputations
    rtt = 2 * latency + 8 * WIRE / bw
    bdp = bw * MSS / WIRE * rtt / (8 * MSS)
    assert counts["tcp"] - counts["fluid"] == math.ceil(math.log2(bdp / 10)) == 4


def test_tcp_window_caps_the_window():
    bw, latency, bits, window = 1e9, 10e-3, 8 * 10**7, 64 * 1024
    net = Network(simpy.Environment(), 1, bandwidth=bw, latency=latency, tcp_window=window)
    got = _send(net, [(0, 1, bits, 0.0)])[0]
    expected = per_round_time(bits, bw, latency, max_window=window / MSS)
    assert got == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("n", [2, 8])
def test_incast_flows_leave_slow_start_at_their_share(n):
    # n equal flows into one server link: each runs the per-round model at rate B/n
    bw, latency, bits = 1e9, 10e-3, 8 * 2_000_000
    net = Network(simpy.Environment(), n, bandwidth=bw, latency=latency)
    got = _send(net, [(w, net.server, bits, 0.0) for w in range(n)])
    np.testing.assert_allclose(got, per_round_time(bits, bw, latency, share=1 / n), rtol=RTOL)


def test_data_centre_latency_adds_no_rate_changes():
    # at 10 us per link one initial window already exceeds each flow's share of the server
    counts = {}
    for transport in ("tcp", "fluid"):
        env = simpy.Environment()
        net = Network(env, 64, bandwidth=1e10, latency=5e-6, server_latency=5e-6,
                      transport=transport)

        def step():
            for _ in range(3):
                arrived = yield env.process(ps_push(net, np.full(64, env.now), 8 * 10**6))
                yield env.process(ps_pull(net, float(arrived.max()), 8 * 10**6))

        env.process(step())
        env.run()
        counts[transport] = net.recomputations
    assert counts["tcp"] == counts["fluid"]


def test_messages_on_one_connection_arrive_in_order():
    # two messages on the same pair at once travel one after the other, as on a socket; on
    # two different pairs through the same link they share it and end together
    bw, bits = 1e9, 8 * 10**6
    rate = bw * MSS / WIRE
    same = _send(Network(simpy.Environment(), 2, bandwidth=bw),
                 [(0, 2, bits, 0.0), (0, 2, bits, 0.0)])
    np.testing.assert_allclose(same, [bits / rate, 2 * bits / rate], rtol=RTOL)
    other = _send(Network(simpy.Environment(), 2, bandwidth=bw),
                  [(0, 2, bits, 0.0), (1, 2, bits, 0.0)])
    np.testing.assert_allclose(other, [2 * bits / rate] * 2, rtol=RTOL)


def test_fifo_starts_a_queued_flows_slow_start_when_it_starts_to_send():
    # two workers into one server link served first come first served: the second flow waits
    # for the first, then runs its own rounds from the moment it sends
    bw, latency, bits = 1e8, 5e-3, 8 * 500_000
    net = Network(simpy.Environment(), 2, bandwidth=bw, latency=latency, sharing="fifo")
    got = _send(net, [(0, net.server, bits, 0.0), (1, net.server, bits, 0.0)])
    alone = per_round_time(bits, bw, latency)
    np.testing.assert_allclose(got, [alone, 2 * alone - latency], rtol=RTOL)


def test_window_kept_between_messages_and_halved_once_per_idle_rto():
    # 35 segments on a long fat path: rounds of 10 and 20 segments, then 5. Linux grows the
    # window by one per acknowledged segment while it is below twice the most it had in flight
    # (tcp_is_cwnd_limited): the 20 of the second round, plus one per ACK of theirs while the
    # last 5 segments leave two per ACK (2.5 more), so 2 x 22.5 = 45 = 10 + 35 segments acked:
    # the connection keeps 45. Idle for k whole RTOs halves it k times, to at least 10.
    bw, latency = 1e10, 20e-3
    rto = 2 * latency + 8 * WIRE / bw + 0.2  # RTT + the minimum RTO, as Linux computes it
    bits = 8 * 35 * MSS
    for idle, start in ((0.5 * rto, 45), (1.5 * rto, 22), (2.5 * rto, 11), (9.5 * rto, 10)):
        env = simpy.Environment()
        net = Network(env, 1, bandwidth=bw, latency=latency)
        assert net.connections.window(0, 1) == 10 and len(net.connections) == 0
        first = net.transfer(0, 1, bits)
        env.run()
        assert first.value == pytest.approx(per_round_time(bits, bw, latency), rel=RTOL)
        assert net.connections.window(0, 1) == 45 and len(net.connections) == 1
        # sent `idle` after the first one arrived: the sender has been idle `idle + latency`
        # since its last byte left, which does not cross another RTO boundary here
        second = net.transfer(0, 1, bits, delay=idle)
        env.run()
        expected = first.value + idle + per_round_time(bits, bw, latency, iw=start)
        assert second.value == pytest.approx(expected, rel=RTOL), (idle / rto, start)


def _linux_restart(cwnd, idle, rto, iw=10):
    """The window after ``idle`` seconds without sending, as Linux's tcp_cwnd_restart
    computes it: halve once for each whole RTO the idle time exceeds, down to the initial
    window (never raising a smaller one)."""
    restart, delta = min(iw, cwnd), idle
    while True:
        delta -= rto
        if delta <= 0 or cwnd <= restart:
            return max(cwnd, restart)
        cwnd //= 2


@pytest.mark.parametrize("idle_rtos", [0.3, 0.7, 1.2, 1.7, 2.2, 3.4])
def test_the_restart_window_halves_as_linux_does(idle_rtos):
    # as in the test above: 35 segments leave the connection a window of 45; the sender is
    # then idle for the delay before the second message plus its latency
    bw, latency = 1e10, 20e-3
    rto = 2 * latency + 8 * WIRE / bw + 0.2
    bits = 8 * 35 * MSS
    env = simpy.Environment()
    net = Network(env, 1, bandwidth=bw, latency=latency)
    first = net.transfer(0, 1, bits)
    env.run()
    second = net.transfer(0, 1, bits, delay=idle_rtos * rto)
    env.run()
    start = _linux_restart(45, idle_rtos * rto + latency, rto)
    expected = first.value + idle_rtos * rto + per_round_time(bits, bw, latency, iw=start)
    assert second.value == pytest.approx(expected, rel=RTOL), start


def test_a_short_message_never_shrinks_the_window_it_used():
    # after the 35-segment message the connection keeps 45; a one-segment message sent right
    # away uses that window, so the window stays 45 (and the next message can use it)
    bw, latency = 1e10, 20e-3
    env = simpy.Environment()
    net = Network(env, 1, bandwidth=bw, latency=latency)
    net.transfer(0, 1, 8 * 35 * MSS)
    env.run()
    net.transfer(0, 1, 8 * MSS)
    env.run()
    assert net.connections.window(0, 1) == 45


def test_messages_queued_on_one_connection_leave_first_in_first_out():
    # three messages on one connection at once (no latency: every window is already above the
    # link's rate): each starts when the one before it ends, in the order they were sent
    bw = 1e9
    rate = bw * MSS / WIRE
    sizes = [8 * 10**6, 3 * 8 * 10**6, 2 * 8 * 10**6]
    got = _send(Network(simpy.Environment(), 1, bandwidth=bw),
                [(0, 1, size, 0.0) for size in sizes])
    np.testing.assert_allclose(got, np.cumsum(sizes) / rate, rtol=RTOL)


def test_a_message_that_waited_for_its_connection_goes_before_a_newcomer():
    # FIFO sharing of the server's link: worker 0 sends A then B on its connection; the moment
    # A ends, worker 1's C arrives. B has waited since time 0, so it is served before C.
    bw = 1e9
    rate = bw * MSS / WIRE
    a = b = c = 8 * 10**6
    got = _send(Network(simpy.Environment(), 2, bandwidth=bw, sharing="fifo"),
                [(0, 2, a, 0.0), (0, 2, b, 0.0), (1, 2, c, a / rate)])
    np.testing.assert_allclose(got, [a / rate, (a + b) / rate, (a + b + c) / rate], rtol=RTOL)


@pytest.mark.parametrize("latency", [5e-3, 40e-3, 200e-3])
def test_a_long_flow_leaves_slow_start_on_its_ack_train(latency):
    # A long flow alone on its link: each slow-start round's segments leave back to back, so
    # their ACKs return as a train as long as the round's serialization on the link. Linux's
    # cubic (HyStart's ACK-train test, no pacing) leaves slow start in the first round whose
    # train passes RTT / 2, with that round's window plus one segment per ACK so far
    # (floor(RTT / 2 / segment time)), and the connection keeps that window.
    bw = 1e8
    rtt = 2 * latency + 8 * WIRE / bw
    segment = 8 * MSS / (bw * MSS / WIRE)  # one segment's payload at the framed rate
    window = 10
    while window * segment <= rtt / 2:
        window *= 2
    net = Network(simpy.Environment(), 1, bandwidth=bw, latency=latency)
    _send(net, [(0, 1, 8 * 60_000_000, 0.0)])
    assert net.connections.window(0, 1) == window + math.floor(rtt / 2 / segment)


@pytest.mark.parametrize("n", [4, 16])
def test_flows_sharing_a_link_leave_slow_start_with_the_queueing_hystart_tolerates(n):
    # n long flows into one link: each one's share is n times below its own link's rate, so
    # its ACK train stays short and it leaves slow start once its window exceeds its share,
    # after HyStart let queueing add clamp(RTT / 8, 4 ms, 16 ms) to the round trip (RFC 9406,
    # Linux's cubic): the connection keeps that share's bandwidth-delay product.
    bw, latency = 1e8, 20e-3
    net = Network(simpy.Environment(), n, bandwidth=bw, latency=latency)
    _send(net, [(w, net.server, 8 * 20_000_000, 0.0) for w in range(n)])
    rate = bw * MSS / WIRE / n
    rtt = 2 * latency + 8 * WIRE / bw  # to the server and back; the server link adds none
    queue = sorted([4e-3, rtt / 8, 16e-3])[1]
    expected = math.floor(rate * (rtt + queue) / (8 * MSS))
    assert {net.connections.window(w, net.server) for w in range(n)} == {expected}


def test_rdma_has_no_slow_start():
    bw, latency, bits = 2e11, 1e-6, 8 * 10**6
    net = Network(simpy.Environment(), 1, bandwidth=bw, latency=latency, transport="rdma")
    assert _send(net, [(0, 1, bits, 0.0)])[0] == pytest.approx(
        latency + bits / (bw * 4096 / 4122), rel=RTOL)
    assert net.connections is None


# --- spec ------------------------------------------------------------------------------------

@pytest.mark.parametrize("network,transport", [
    ({}, "tcp"), ({"bandwidth": "10Gbps"}, "tcp"), ({"preset": "10GbE"}, "tcp"),
    ({"preset": "cross-region"}, "tcp"), ({"preset": "IB-HDR"}, "rdma"),
    ({"preset": "IB-NDR"}, "rdma"), ({"preset": "NVLink4"}, "fluid"), ({"links": "wan"}, "tcp"),
    ({"preset": "IB-HDR", "transport": "tcp"}, "tcp"),
])
def test_default_transport_per_link(network, transport):
    assert resolve({"network": network})["network"]["transport"] == transport


def test_tcp_defaults_are_filled_and_other_transports_get_none():
    tcp = resolve({})["network"]
    assert (tcp["mtu"], tcp["initial_window"], tcp["rto"], tcp["goodput"]) == (1500, 10, 0.2, None)
    rdma = resolve({"network": {"transport": "rdma"}})["network"]
    assert (rdma["mtu"], rdma["initial_window"], rdma["rto"]) == (4096, None, None)
    fluid = resolve({"network": {"transport": "fluid", "tcp_window": "4MiB"}})["network"]
    assert (fluid["mtu"], fluid["tcp_window"]) == (None, 4 * 2**20)
    # a resolved spec resolves to itself
    spec = resolve({"network": {"mtu": 9000, "initial_window": 4, "rto": "1s"}})
    assert resolve(spec) == spec


@pytest.mark.parametrize("text, words", [
    ("mtu = 500", ["network.mtu = 500", "576 <= value <= 9216"]),
    ("mtu = 9300", ["network.mtu = 9300", "576 <= value <= 9216"]),
    ("initial_window = 0", ["network.initial_window = 0", "1 <= value"]),
    ("tcp_window = 1000", ["network.tcp_window = 1000", ">= 1448"]),
    ("tcp_window = 8000\nmtu = 9000", ["network.tcp_window = 8000", ">= 8948"]),
    ("transport = 'tpc'", ["network.transport = 'tpc'", "did you mean 'tcp'"]),
    ("transport = 'fluid'\nmtu = 1500", ["network.mtu = 1500", "'fluid'"]),
    ("transport = 'fluid'\ninitial_window = 4", ["network.initial_window = 4", "'fluid'"]),
    ("transport = 'rdma'\nrto = '1s'", ["network.rto", "'rdma'"]),
    ("transport = 'rdma'\ntcp_window = '4MiB'", ["network.tcp_window = 4194304", "'rdma'"]),
    ("transport = 'rdma'\nmtu = 1500", ["network.mtu = 1500", "InfiniBand", "4096"]),
])
def test_bad_transport_options_exit_2_with_one_line(tmp_path, capsys, text, words):
    spec = tmp_path / "bad.toml"
    spec.write_text(f"[network]\n{text}\n[run]\nsteps = 1\n")
    assert main(["run", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dlion-sim: error:"), err
    for word in words:
        assert word in err[0], (word, err[0])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kw, word", [
    (dict(transport="udp"), "transport"), (dict(mtu=500), "mtu"),
    (dict(initial_window=0), "initial_window"), (dict(rto=0), "rto"),
    (dict(tcp_window=1000), "tcp_window"), (dict(transport="fluid", mtu=1500), "mtu"),
    (dict(transport="rdma", mtu=1500), "mtu"), (dict(transport="rdma", tcp_window=2**20), "tcp_window"),
])
def test_bad_network_arguments_name_themselves(kw, word):
    with pytest.raises(ValueError, match=word):
        Network(simpy.Environment(), 2, bandwidth=1e9, **kw)


def test_spec_error_is_a_value_error_for_python_users():
    with pytest.raises(SpecError, match="network.mtu"):
        resolve({"network": {"mtu": 100}})
