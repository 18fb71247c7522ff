"""A versioned server (server.policy async, ssp, fedbuff): updates applied in the order the
simulated clock decides, against event loops written here and the synchronous run."""
import heapq

import numpy as np
import pytest

import experiments
import models
from sim.server import Policy

LR = 0.3
QUADRATIC = {"name": "quadratic", "dim": 6, "noise": 0.0, "condition": 10.0}  # exact gradients
FREE = {"bandwidth": 1e15, "latency": 0.0, "transport": "fluid"}  # a near-free network


@pytest.fixture
def one_and_2_3(tmp_path):
    """Worker 0 computes for 1 s every step, worker 1 for 2.3 s."""
    path = tmp_path / "steps.csv"
    path.write_text("w0,w1\n1.0,2.3\n")
    return {"distribution": "trace", "trace_file": str(path)}


def _run(compute, server, updates=8, method=None, **keys):
    return experiments.simulate(
        objective=QUADRATIC, workers=2, steps=updates, dtype="float64",
        method=method or {"name": "gsgd", "lr": LR, "momentum": 0.0}, network=FREE,
        compute=compute, server=server, progress=False, **{"eval_every": 0, **keys})


def reference(k, updates, times=(1.0, 2.3), weight=lambda tau: 1.0):
    """The event loop of a versioned server, by hand: every worker reads (x, version) at time 0
    and again whenever its message arrives (the network is free); every k arrivals the server
    steps x by the float32 mean of their float32 gradients, each taken at the x its worker read,
    at lr times the mean weight of their staleness. Returns x, the staleness of each applied
    message and the time of each update."""
    objective = models.make(**QUADRATIC, dtype="float64")
    x = objective.init(np.random.default_rng(np.random.SeedSequence(0).spawn(6)[0]))
    version, staleness, when, buffer = 0, [], [], []
    events = [(times[w], w, x, 0) for w in range(len(times))]  # (arrival, worker, read x, version)
    while len(when) < updates:
        t, w, read, v = heapq.heappop(events)
        buffer.append((read, v))
        if len(buffer) == k:
            grads = np.stack([objective.loss_grad(r)[1].astype(np.float32) for r, _ in buffer])
            taus = [version - v for _, v in buffer]
            step = LR * float(np.mean([weight(tau) for tau in taus]))
            x = x - step * grads.mean(axis=0, dtype=np.float32).astype(np.float64)
            version, buffer = version + 1, []
            staleness += taus
            when.append(t)
        heapq.heappush(events, (t + times[w], w, x, version))
    return x, staleness, when


def test_async_is_the_event_loop_by_hand(one_and_2_3):
    result = _run(one_and_2_3, {"policy": "async"})
    x, staleness, when = reference(1, 8)
    # By hand: both read version 0 at t = 0. Worker 0 arrives at 1 (read v0, nothing applied
    # since: 0) -> v1; at 2 (read v1 at 1: 0) -> v2; worker 1 at 2.3 (read v0: v1, v2 since: 2)
    # -> v3; worker 0 at 3 (read v2 at 2: 1) -> v4; at 4 (read v4: 0) -> v5; worker 1 at 4.6
    # (read v3 at 2.3: 2) -> v6; worker 0 at 5 (read v5 at 4: 1) -> v7; at 6 (read v7: 0) -> v8.
    assert staleness == [0, 0, 2, 1, 0, 2, 1, 0]
    assert result.history["staleness"].tolist() == staleness
    assert result.history["worker"].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert result.history["time_s"] == pytest.approx([1, 2, 2.3, 3, 4, 4.6, 5, 6], abs=1e-9)
    assert when == pytest.approx([1, 2, 2.3, 3, 4, 4.6, 5, 6])
    np.testing.assert_allclose(result.params, x, rtol=1e-12, atol=1e-15)
    assert result.summary["staleness"] == {"messages": 8, "mean": 0.75, "p50": 0.5,
                                           "p90": 2.0, "max": 2, "weight_mean": 1.0}


def test_async_dlion_steps_by_each_workers_sign_of_its_own_momentum(one_and_2_3):
    b1, b2, lr, wd = 0.9, 0.99, 0.05, 0.1
    result = _run(one_and_2_3, {"policy": "async"},
                  method={"name": "dlion", "lr": lr, "weight_decay": wd, "betas": [b1, b2]})
    objective = models.make(**QUADRATIC, dtype="float64")
    x = objective.init(np.random.default_rng(np.random.SeedSequence(0).spawn(6)[0]))
    m = np.zeros((2, x.size))
    # worker 0 arrives at 1, 2, 3, 4, 5, 6, worker 1 at 2.3, 4.6 (staleness as by hand above);
    # each reads x when its reply leaves, and its sign uses its momentum before the update
    events = [(1.0, 0, x), (2.3, 1, x)]
    for _ in range(8):
        t, w, read = heapq.heappop(events)
        g = objective.loss_grad(read)[1]
        c = b1 * m[w] + (1 - b1) * g
        m[w] = b2 * m[w] + (1 - b2) * g
        x = x - lr * (np.sign(c) + wd * x)
        heapq.heappush(events, (t + (1.0, 2.3)[w], w, x))
    np.testing.assert_allclose(result.params, x, rtol=1e-12, atol=1e-15)


def test_fedbuff_steps_by_the_mean_of_each_k_arrivals_weighted_by_their_staleness(one_and_2_3):
    weight = Policy(weight="inverse_sqrt").weights
    result = _run(one_and_2_3, {"policy": "fedbuff", "k": 2, "staleness_weight": "inverse_sqrt"},
                  updates=6)
    x, staleness, when = reference(2, 6, weight=lambda tau: float(weight(tau)))
    # worker 0 at 1 and 2 (both read v0) -> v1 at 2; worker 1 at 2.3 (read v0: 1) and worker 0
    # at 3 (read v1 at 2: 0) -> v2 at 3; worker 0 at 4 (read v2 at 3: 0) and worker 1 at 4.6
    # (read v1 at 2.3: 1) -> v3 at 4.6; ...
    assert staleness[:6] == [0, 0, 1, 0, 0, 1]
    assert result.history["aggregated"].tolist() == [2] * 6
    assert result.history["time_s"] == pytest.approx(when, abs=1e-9)
    np.testing.assert_allclose(result.params, x, rtol=1e-12, atol=1e-15)
    assert result.summary["staleness"]["messages"] == 12


def test_a_reply_carries_the_updates_its_worker_missed(one_and_2_3):
    dlion = _run(one_and_2_3, {"policy": "async"},
                 method={"name": "dlion", "lr": 0.01, "aggregate": "mavo"})
    # a message and a vote are 6 signs, one byte; the parameters 6 fp32 values, 192 bits
    down = np.diff(dlion.history["bits_down"], prepend=0.0) * 2  # per update, of both workers
    # each reply carries the votes since its worker's read (the staleness of its message, plus
    # its own update): worker 1's at 2.3 the 3 since time 0, worker 0's at 3 the 2 since 2
    assert down.tolist() == [8, 8, 24, 16, 8, 24, 16, 8]
    assert dlion.history["bits_up"][-1] * 2 == 8 * 8
    gsgd = _run(one_and_2_3, {"policy": "async"})  # one update's reply is the parameters' size
    assert np.diff(gsgd.history["bits_down"], prepend=0.0).tolist() == [96.0] * 8


@pytest.mark.parametrize("method,same_clock", [
    ({"name": "gsgd", "lr": 0.05}, True),  # momentum on the server
    ({"name": "gadamw", "lr": 0.01}, True),
    ({"name": "dlion", "aggregate": "mavo", "lr": 0.01}, True),  # ties: the vote's coins
    ({"name": "dlion", "aggregate": "avg", "lr": 0.01}, True),
    ({"name": "signum", "lr": 0.01}, True),
    ({"name": "qsgd", "lr": 0.05}, True),  # stochastic rounding: the same draws, in order
    ({"name": "graddrop", "lr": 0.05}, True),  # sampled selection, error feedback
    # a union of supports can outgrow the parameters, which a versioned server sends instead
    ({"name": "topk", "lr": 0.05, "density": 0.25}, False),
])
def test_ssp_with_staleness_0_is_the_synchronous_run(method, same_clock):
    keys = dict(objective={"name": "quadratic", "dim": 40, "noise": 0.3}, method=method,
                workers=4, steps=15, network={"collective": "ps", "bandwidth": "1Gbps"},
                compute={"step_time": "5ms", "jitter": 0.5}, progress=False)
    sync = experiments.simulate(**keys)
    ssp = experiments.simulate(**keys, server={"policy": "ssp", "staleness": 0})
    assert np.array_equal(ssp.params, sync.params)
    assert ssp.history["train_loss"].tolist() == sync.history["train_loss"].tolist()
    # the same compute draws and replies: the same clock (the last reply of each step)
    if same_clock:
        assert ssp.history["time_s"] == pytest.approx(sync.history["time_s"], rel=1e-12)
    assert ssp.summary["staleness"]["max"] == 0


def test_ssp_lets_the_fast_worker_run_ahead_by_the_bound(one_and_2_3):
    result = _run(one_and_2_3, {"policy": "ssp", "staleness": 1}, updates=6)
    # By hand: worker 0 sends clock 0 at 1, reads v0 again (1 clock ahead of v0 is allowed),
    # sends clock 1 at 2 and waits; worker 1's clock 0 at 2.3 completes clock 0 -> v1, and
    # both read v1. Clock 1 completes with worker 1 at 4.6: worker 0's clock-1 message read v0
    # (staleness 1), worker 1's read v1 (0). From then on worker 0 reads the version before
    # the one worker 1 reads: every clock has staleness 1 and 0, and the slow worker sets the
    # pace, 2.3 s a clock.
    assert result.history["staleness_max"].tolist() == [0, 1, 1, 1, 1, 1]
    assert result.history["staleness"].tolist() == [0, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert result.history["time_s"] == pytest.approx([2.3 * c for c in range(1, 7)], abs=1e-9)
    sync = _run(one_and_2_3, {"policy": "ssp", "staleness": 0}, updates=6)
    assert not np.array_equal(result.params, sync.params)


def test_staleness_weights_by_hand():
    tau = np.array([0, 3, 4, 5, 8])
    assert Policy(weight="constant").weights(tau).tolist() == [1, 1, 1, 1, 1]
    assert Policy(weight="inverse_sqrt").weights(tau)[:2].tolist() == [1.0, 0.5]
    assert Policy(weight="polynomial", exponent=1.0).weights(tau).tolist() == pytest.approx(
        [1, 1 / 4, 1 / 5, 1 / 6, 1 / 9])
    # FedAsync's hinge with a = 10, b = 4: 1 up to b, then 1 / (a (tau - b) + 1)
    assert Policy(weight="hinge", threshold=4, slope=10.0).weights(tau).tolist() == \
        pytest.approx([1, 1, 1, 1 / 11, 1 / 41])


def test_a_versioned_run_reports_its_updates_and_timeline(one_and_2_3):
    result = _run(one_and_2_3, {"policy": "async"}, run={"trace": True})
    assert result.summary["steps"] == 8 and result.summary["collective"] == "ps"
    assert result.summary["spec"]["server"]["staleness_weight"] == "constant"
    rows = [r for r in result.trace if r[0] == "worker1"]
    # worker 1 read at 0 and 2.3: computes 2.3 s, its message arrives, its reply comes back
    assert [(r[1], round(r[2], 6)) for r in rows[:4]] == [
        ("compute", 0.0), ("send", 2.3), ("idle", 2.3), ("receive", 2.3)]
    assert [r[5] for r in rows if r[1] == "compute"] == [3, 6]  # the updates they entered
    assert sum(1 for r in result.trace if r[:2] == ("server", "aggregate")) == 8


def test_a_target_stops_after_the_update_that_reaches_it(one_and_2_3):
    result = _run(one_and_2_3, {"policy": "async"}, updates=50, eval_every=1, target=0.5)
    assert result.summary["status"] == "target_reached"
    assert result.history["eval_loss"][-1] <= 0.5 < result.history["eval_loss"][-2]


def test_a_stopped_versioned_run_keeps_its_updates(one_and_2_3):
    from experiments.run import Cancelled, execute
    from experiments.spec import resolve

    spec = resolve({"objective": QUADRATIC, "cluster": {"workers": 2},
                    "compute": one_and_2_3, "server": {"policy": "async"},
                    "run": {"steps": 8}})
    asked = []

    def stop():  # after the third update
        asked.append(1)
        return len(asked) == 3

    result = execute(spec, stop=stop, keep_when_stopped=True)
    assert result.summary["status"] == "interrupted" and result.summary["steps"] == 3
    asked.clear()
    with pytest.raises(Cancelled):
        execute(spec, stop=stop)


@pytest.mark.parametrize("setting,words", [
    (['server.policy="ssp"'], "needs server.staleness"),
    (['server.policy="fedbuff"'], "needs server.k"),
    (['server.policy="async"', "server.staleness=1"], "needs server.policy = 'ssp'"),
    (['server.staleness_weight="hinge"'], "needs server.policy = 'async'"),
    (['server.policy="async"', 'server.staleness_exponent=2'],
     "needs server.staleness_weight = 'polynomial'"),
    (['server.policy="async"', 'server.staleness_weight="linear"'],
     "Allowed: constant, inverse_sqrt"),
    (['server.policy="asynch"'], "did you mean 'async'"),
    (['server.policy="async"', 'method.name="onebit_adam"'],
     "allowed: 'dlion', 'glion', 'gadamw', 'gsgd'"),
    (['server.policy="ssp"', "server.staleness=1", 'method.name="terngrad"'],
     "cannot be applied one message or buffer at a time"),
    (['server.policy="fedbuff"', "server.k=2", 'method.name="diloco"'], "need every worker"),
    (['server.policy="async"', 'method.name="gsgd"', 'network.collective="ring"'],
     "allowed: 'ps'"),
    (['server.policy="async"', "faults.loss=0.1"], "no message loss"),
    (['server.policy="ssp"', "server.staleness=-1"], "out of range"),
    (['server.policy="fedbuff"', "server.k=5"], "more than cluster.workers"),
])
def test_bad_versioned_settings_are_one_line_errors(refused, setting, words):
    assert words in refused(setting)


def test_a_fedbuff_update_is_not_timed_before_the_server_has_applied_it():
    # fedbuff releases its workers as their messages land; with a server that takes time to
    # aggregate (1 ns per parameter: 1 ms for 10^6), the update exists only when that ends
    result = experiments.simulate(
        objective={"name": "logistic", "samples": 512, "features": 63},
        method={"name": "dlion", "lr": 0.003}, workers=4, batch_size=16, steps=10,
        eval_every=0, cluster={"model_params": 1_000_000},
        network={"bandwidth": "1Gbps", "latency": "50us"},
        compute={"step_time": "10ms", "distribution": "pareto", "pareto_shape": 1.5,
                 "codec_per_param": 1e-9},
        server={"policy": "fedbuff", "k": 2}, run={"trace": True, "seed": 0})
    ends = {step: end for node, phase, _, end, _, step in result.trace
            if node == "server" and phase == "aggregate"}
    assert sorted(ends) == list(range(1, 11))
    assert all(result.history["time_s"][u] >= ends[u + 1] for u in range(10))
    # and the updates are timed in order
    assert np.all(np.diff(result.history["time_s"]) > 0)
