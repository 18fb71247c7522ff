"""Step timing on the star against the parameter-server formula (DESIGN.md section 7); the
formulas are those of the ideal fluid model, so every network here pins transport "fluid"."""
import numpy as np
import pytest

import experiments
from sim.cluster import Cluster
from sim.compute import ComputeModel
from sim.net.pipelined import Pipeline


def _ps_formula(alpha, up_bits, down_bits, n, b_worker, b_server):
    """Incast then broadcast: alpha + M*max(1/B_worker, N/B_server) each way."""
    return (alpha + up_bits * max(1 / b_worker, n / b_server)
            + alpha + down_bits * max(1 / b_worker, n / b_server))


@pytest.mark.parametrize("n", [1, 2, 7, 64])
@pytest.mark.parametrize("server_factor", [0.5, 1.0, 200.0])  # both sides of B_w/B_s = 1/N
def test_star_step_equals_parameter_server_formula(n, server_factor):
    b_worker, latency = 1e9, 50e-6
    b_server = server_factor * b_worker
    cluster = Cluster(n, {"transport": "fluid", "bandwidth": b_worker, "latency": latency,
                          "server_bandwidth": b_server}, ComputeModel())
    up, down = 8_000_000, 3_000_000
    first = cluster.step([(np.full(n, up), down)], batch_size=1, n_params=1,
                         rng=np.random.default_rng(0))
    # the next step starts where this one ended
    second = cluster.step([(np.full(n, up), down)], 1, 1, np.random.default_rng(0))
    cluster.finish()
    expected = _ps_formula(latency, up, down, n, b_worker, b_server)
    assert first.phases()["time_s"] == pytest.approx(expected, rel=1e-9)
    assert second.phases()["time_s"] == pytest.approx(2 * expected, rel=1e-9)
    assert cluster.net.delivered_bits == cluster.net.sent_bits == 2 * n * (up + down)


def test_phases_add_up_with_compute_and_server_cost():
    n, b, lat = 4, 1e9, 1e-4
    compute = ComputeModel(step_time=0.01, per_sample=1e-4, aggregate_per_byte=1e-9)
    cluster = Cluster(n, {"transport": "fluid", "bandwidth": b, "latency": lat}, compute)
    up = 8e6
    record = cluster.step([(np.full(n, int(up)), int(up))], batch_size=10, n_params=100,
                          rng=np.random.default_rng(0))
    cluster.finish()
    t = record.phases()
    server = 1e-9 * n * up / 8
    assert t["compute_s"] == pytest.approx(0.011)
    assert t["aggregate_s"] == pytest.approx(server)
    assert t["time_s"] == pytest.approx(0.011 + server + _ps_formula(lat, up, up, n, b, b),
                                        rel=1e-9)
    assert t["compute_s"] + t["comm_up_s"] + t["idle_s"] + t["aggregate_s"] + t["comm_down_s"] \
        == pytest.approx(t["time_s"], rel=1e-9)


def test_simulated_step_time_uses_the_codec_bytes():
    # 1000 parameters: the sign vector is 125 bytes = 1000 bits up and (MaVo) down per worker
    n, b, lat = 8, 1e8, 20e-6
    result = experiments.simulate(objective={"name": "quadratic", "dim": 1000},
                                  method={"name": "dlion"}, workers=n, steps=3,
                                  network={"transport": "fluid", "bandwidth": b, "latency": lat,
                                           "collective": "ps"})
    step = _ps_formula(lat, 1000, 1000, n, b, b)
    assert result.history["time_s"] == pytest.approx([step, 2 * step, 3 * step], rel=1e-9)
    assert result.history["bits_up"].tolist() == [1000, 2000, 3000]
    # G-AdamW sends float32 both ways: 32 bits per parameter
    adamw = experiments.simulate(objective={"name": "quadratic", "dim": 1000},
                                 method="gadamw", workers=n, steps=1,
                                 network={"transport": "fluid", "bandwidth": b, "latency": lat,
                                          "collective": "ps"})
    assert adamw.history["time_s"][0] == pytest.approx(_ps_formula(lat, 32000, 32000, n, b, b),
                                                       rel=1e-9)
    assert adamw.summary["bits_per_param_per_step"] == {"up": 32.0, "down": 32.0, "total": 64.0}


def test_virtual_model_size_scales_messages():
    n, b = 4, 1e9
    result = experiments.simulate(objective={"name": "quadratic", "dim": 64}, method="dlion",
                                  workers=n, steps=1,
                                  cluster={"model_params": 1_000_000},
                                  network={"transport": "fluid", "bandwidth": b, "latency": 0,
                                           "collective": "ps"})
    assert result.history["time_s"][0] == pytest.approx(_ps_formula(0, 1e6, 1e6, n, b, b))
    assert result.summary["model_params"] == 1_000_000 and result.summary["n_params"] == 64


def test_more_bandwidth_never_slows_a_run():
    times = [experiments.simulate(objective={"name": "quadratic", "dim": 256}, method="gadamw",
                                  workers=4, steps=5, compute={"jitter": 0.3, "step_time": 0.01},
                                  network={"transport": "fluid", "bandwidth": bw}).summary["sim_time_s"]
             for bw in (1e7, 1e8, 1e9, 1e10)]
    assert times == sorted(times, reverse=True)


def test_a_worker_starts_its_next_step_when_it_holds_the_reply():
    # worker 0 on a 1 Gb/s link, worker 1 on 100 Mb/s; the server link is fast. Worker 0 gets
    # its reply first and pushes its next message while worker 1 is still receiving.
    b = [1e9, 1e8]
    cluster = Cluster(2, {"transport": "fluid", "bandwidth": b, "latency": 0.0, "server_bandwidth": 1e11},
                      ComputeModel(step_time=0.001))
    bits = 10_000_000
    rng = np.random.default_rng(0)
    first = cluster.step([(np.full(2, bits), bits)], 1, 1, rng)
    second = cluster.step([(np.full(2, bits), bits)], 1, 1, rng)
    cluster.finish()
    slow = 0.001 + bits / 1e8          # worker 1's push ends the first incast
    assert first.agg_start == pytest.approx(slow, rel=1e-9)
    assert first.done.tolist() == pytest.approx([slow + bits / 1e9, slow + bits / 1e8], rel=1e-9)
    assert second.start.tolist() == pytest.approx(first.done.tolist(), rel=1e-12)
    # worker 0's second push starts before worker 1 holds the first reply
    assert second.ready[0] < first.done[1]
    assert second.arrived[0] == pytest.approx(first.done[0] + 0.001 + bits / 1e9, rel=1e-9)


def test_header_is_added_after_scaling_to_the_virtual_size():
    n, b = 2, 1e9
    result = experiments.simulate(objective={"name": "quadratic", "dim": 64}, method="dlion",
                                  workers=n, steps=1, cluster={"model_params": 64_000},
                                  network={"transport": "fluid", "bandwidth": b, "latency": 0,
                                           "header": 40, "collective": "ps"})
    message = 64_000 + 8 * 40  # 1 bit per parameter of the virtual model, plus 40 bytes
    assert result.history["bits_up"][0] == message
    assert result.history["time_s"][0] == pytest.approx(_ps_formula(0, message, message, n, b, b))


def test_codec_cost_is_charged_for_the_virtual_model_size():
    result = experiments.simulate(objective={"name": "quadratic", "dim": 1000}, method="dlion",
                                  workers=2, steps=1, cluster={"model_params": 1_000_000},
                                  compute={"codec_per_param": "1ns"})
    assert result.history["compute_s"][0] == pytest.approx(1e-3)


def test_presets_fill_links_and_model_unless_given():
    from experiments import resolve
    from sim.net import presets

    spec = resolve({"network": {"preset": "10GbE"}, "cluster": {"model": "gpt2-small"}})
    assert spec["network"]["bandwidth"] == presets.link("10GbE")["bandwidth"] == 1e10
    assert spec["network"]["latency"] == presets.link("10GbE")["latency"]
    assert spec["cluster"]["model_params"] == presets.model("gpt2-small")["params"]
    assert spec["compute"]["step_time"] == presets.model("gpt2-small")["step_time"]
    given = resolve({"network": {"preset": "10GbE", "latency": "1ms"},
                     "cluster": {"model": "resnet50"}, "compute": {"step_time": "5ms"}})
    assert given["network"]["latency"] == pytest.approx(1e-3)
    assert given["compute"]["step_time"] == pytest.approx(5e-3)
    drawn = resolve({"network": {"links": "wan"}, "cluster": {"workers": 5}, "run": {"seed": 3}})
    assert len(drawn["network"]["bandwidth"]) == 5 and len(drawn["network"]["latency"]) == 5
    assert resolve(drawn) == drawn  # the resolved spec reproduces the same draw
    other_seed = resolve({"network": {"links": "wan"}, "cluster": {"workers": 5}})
    assert other_seed["network"]["bandwidth"] != drawn["network"]["bandwidth"]


@pytest.mark.parametrize("collective", ["ps", "ring"])
def test_rounds_travel_one_after_the_other(collective):
    # two rounds of M1 and M2 bits cost two exchanges: each pays its latency again
    n, b, lat, m1, m2 = 4, 1e9, 1e-3, 8_000_000, 2_000_000
    cluster = Cluster(n, {"transport": "fluid", "bandwidth": b, "latency": lat}, ComputeModel(), collective)
    record = cluster.step([(np.full(n, m1), m1), (np.full(n, m2), m2)], 1, 1,
                          np.random.default_rng(0))
    cluster.finish()
    if collective == "ps":
        expected = _ps_formula(lat, m1, m1, n, b, b) + _ps_formula(lat, m2, m2, n, b, b)
    else:  # ring all-reduce: 2(p-1) hops of 2*lat (worker to worker) and 2(p-1)/p * M/B
        expected = sum(2 * (n - 1) * 2 * lat + 2 * (n - 1) / n * m / b for m in (m1, m2))
    assert record.phases()["time_s"] == pytest.approx(expected, rel=1e-9)


def test_powersgd_all_reduces_p_then_q():
    # 4096 parameters compressed as one batched 64 x 64 matrix at rank 2, so P and Q are 64 x 2
    # float32 each (4096 bits), all-reduced one after the other on the textbook ring
    n, b, lat = 4, 1e9, 1e-3
    r = experiments.simulate(objective={"name": "quadratic", "dim": 4096},
                             method={"name": "powersgd", "batched": True}, workers=n, steps=1,
                             network={"transport": "fluid", "bandwidth": b, "latency": lat,
                                      "collective": "ring", "chunk": 0})
    one = 2 * (n - 1) * 2 * lat + 2 * (n - 1) / n * 4096 / b
    assert r.history["time_s"][0] == pytest.approx(2 * one, rel=1e-9)
    assert r.history["bits_up"][0] == 2 * 4096


def test_rounds_with_uneven_finishes_on_a_ring():
    # jitter makes ranks finish the first round at different times; the second round must
    # start from where simulated time stands, not in its past
    r = experiments.simulate(objective={"name": "quadratic", "dim": 4096},
                             method={"name": "powersgd", "batched": True}, workers=4, steps=3,
                             network={"transport": "fluid", "bandwidth": [1e9, 1e9, 1e9, 5e8]},
                             compute={"step_time": 0.01, "jitter": 0.3})
    assert r.summary["status"] == "completed"
    assert np.all(np.diff(r.history["time_s"]) > 0)


def test_allgather_charges_each_rank_its_own_message():
    # ring all-gather of unequal messages: rank i forwards every message once, each hop costs
    # its size; three tiny messages and one of M bits take (p-1) M / B, not (p-1) * p * M / B
    n, b, big = 4, 1e9, 8_000_000
    cluster = Cluster(n, {"transport": "fluid", "bandwidth": b, "latency": 0.0}, ComputeModel(),
                      "allgather", pipeline=Pipeline(chunk=0))
    record = cluster.step([(np.array([8, 8, 8, big]), 0)], 1, 1, np.random.default_rng(0))
    cluster.finish()
    assert record.phases()["time_s"] == pytest.approx((n - 1) * big / b, rel=1e-3)


def test_rounds_naming_their_collective():
    # 1-bit Adam's step: an all-to-all (each worker sends its up bits in N-1 pieces) then an
    # all-gather, each timed by its own collective on the star; latency alpha = 2 * link latency
    n, b, lat = 4, 1e9, 10e-6
    cluster = Cluster(n, {"bandwidth": b, "latency": lat, "transport": "fluid"}, ComputeModel(),
                      collective="ring", pipeline=Pipeline(chunk=0))  # the textbook ones
    a2a, gather = 3 * 40_000, 25_000
    rounds = [(np.full(n, a2a), a2a, "alltoall"), (np.full(n, gather), 3 * gather, "allgather")]
    record = cluster.step(rounds, 1, 1, np.random.default_rng(0))
    cluster.finish()
    alpha = 2 * lat
    expected = (alpha + a2a / b) + (n - 1) * (alpha + gather / b)
    assert record.phases()["time_s"] == pytest.approx(expected, rel=1e-9)
    assert cluster.net.sent_bits == n * a2a + n * (n - 1) * gather
    # bits per worker: what it sends and what the others send it
    assert cluster.message_bits(record) == (a2a + gather, a2a + (n - 1) * gather)
    ps = Cluster(n, {"bandwidth": b, "latency": lat}, ComputeModel(), collective="ps")
    with pytest.raises(ValueError, match="peer collectives"):
        ps.step(rounds, 1, 1, np.random.default_rng(0))
