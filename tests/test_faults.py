"""Faults and stragglers: crashes, recoveries, lost messages, step-time distributions."""
import math
import subprocess
import sys

import numpy as np
import pytest

import experiments
from experiments.results import load
from experiments.spec import load_toml
from experiments.sweep import run_sweep
from sim.compute import ComputeModel
from sim.faults import FaultModel, WorkerFaults


# --- step-time distributions -------------------------------------------------------------------

def _draws(model, n=200_000, batch=1):
    return model.worker_times(n, batch, 1, np.random.default_rng(0))


def test_shifted_exponential_is_never_faster_than_the_base_and_has_its_mean():
    times = _draws(ComputeModel(step_time=0.1, distribution="shifted_exponential", tail=0.5))
    assert times.min() >= 0.1
    assert times.mean() == pytest.approx(0.1 * 1.5, rel=0.01)
    # the exponential part: P(T > base * (1 + s)) = exp(-s / tail)
    assert np.mean(times > 0.1 * 2.0) == pytest.approx(math.exp(-2.0), rel=0.03)


def test_pareto_has_its_minimum_mean_and_tail():
    times = _draws(ComputeModel(step_time=0.1, distribution="pareto", pareto_shape=3.0))
    assert times.min() >= 0.1
    assert times.mean() == pytest.approx(0.1 * 3 / 2, rel=0.02)
    # P(factor > y) = y^-shape
    assert np.mean(times > 0.1 * 2.0) == pytest.approx(2.0 ** -3, rel=0.03)


def test_lognormal_jitter_keeps_the_mean():
    times = _draws(ComputeModel(step_time=0.1, jitter=0.5))
    assert times.mean() == pytest.approx(0.1, rel=0.01)


def test_a_trace_is_replayed_row_by_row_and_cycled(tmp_path):
    trace = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    model = ComputeModel(distribution="trace", trace=trace, codec_per_param=1e-3)
    rng = np.random.default_rng(0)
    got = np.array([model.worker_times(2, 1, 10, rng, step) for step in range(5)])
    assert got == pytest.approx(np.array([[0.11, 0.21], [0.31, 0.41], [0.51, 0.61],
                                          [0.11, 0.21], [0.31, 0.41]]))


@pytest.mark.parametrize("content,words", [
    (None, "cannot read"),
    ("w0,w1,w2\n0.1,0.2,0.3\n", "3 worker columns but cluster.workers = 4"),
    ("a,b,c,d\n0.1,0.2,x,0.3\n", "not a number"),
    ("a,b,c,d\n0.1,0.2,0.3\n", "line 2: 3 values"),
    ("a,b,c,d\n0.1,0.2,-0.3,0.1\n", "negative"),
    ("a,b,c,d\n", "at least one row"),
])
def test_a_bad_trace_is_a_one_line_error(tmp_path, capsys, content, words):
    from experiments.cli import main

    trace = tmp_path / "steps.csv"
    if content is not None:
        trace.write_text(content)
    spec = tmp_path / "spec.toml"
    spec.write_text('[objective]\nname = "quadratic"\ndim = 8\n[cluster]\nworkers = 4\n'
                    '[compute]\ndistribution = "trace"\ntrace_file = "steps.csv"\n'
                    '[run]\nsteps = 2\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dlion-sim: error: compute.trace_file") and words in err
    assert "\n" not in err


# --- the crash history -------------------------------------------------------------------------

def test_listed_workers_crash_at_their_time_and_come_back():
    faults = WorkerFaults(FaultModel(crash_workers=(1, 3), crash_time=2.0, recover_after=5.0,
                                     detect_after=0.5), 4, np.random.default_rng(0))
    assert faults.down(1.9).tolist() == [False] * 4
    assert faults.down(2.0).tolist() == [False, True, False, True]
    assert faults.detected(2.4).tolist() == [False] * 4
    assert faults.detected(2.5).tolist() == [False, True, False, True]
    assert faults.next_recovery(3.0) == 7.0
    assert faults.open_step(5, 6.9).tolist() == [False] * 4
    assert faults.open_step(6, 7.0).tolist() == [False, True, False, True]
    assert faults.down(8.0).tolist() == [False] * 4  # for good: no crash rate


def test_a_crash_step_takes_the_workers_down_at_that_opening():
    faults = WorkerFaults(FaultModel(crash_workers=(0,), crash_step=3), 2,
                          np.random.default_rng(0))
    faults.open_step(2, 1.0)
    assert faults.down(1.5).tolist() == [False, False]
    faults.open_step(3, 2.0)
    assert faults.down(2.0).tolist() == [True, False]


def test_random_crashes_are_exponential_per_worker():
    rate = 0.5
    faults = WorkerFaults(FaultModel(crash_rate=rate), 100_000, np.random.default_rng(0))
    assert faults.crash_at.mean() == pytest.approx(1 / rate, rel=0.02)
    assert np.mean(faults.crash_at > 2.0) == pytest.approx(math.exp(-rate * 2.0), rel=0.02)


# --- crashes in a run ------------------------------------------------------------------------

COMMON = dict(objective={"name": "logistic", "samples": 512, "features": 15}, workers=4,
              batch_size=8, method={"name": "dlion"},
              network={"collective": "ps", "bandwidth": "1Gbps", "latency": "20us"}, compute={"step_time": "10ms"})


def test_waiting_for_all_stops_waiting_once_a_crash_is_detected():
    # worker 1 crashes at 25 ms, in its third step; the server notices 200 ms later, closes
    # that step without it and stops expecting it
    result = experiments.simulate(steps=8, faults={"crash_workers": [1], "crash_time": "25ms",
                                                   "detect_after": "200ms"}, **COMMON)
    h = result.history
    assert h["aggregated"].tolist() == [4, 4, 3, 3, 3, 3, 3, 3]
    assert h["down"][:2].tolist() == [0, 0] and h["down"][2:].tolist() == [1] * 6
    waited = np.diff(np.concatenate([[0.0], h["time_s"]]))
    assert 0.225 - 0.02 < h["time_s"][2] < 0.225 + 0.001  # closed at the detection
    assert waited[3:] == pytest.approx([waited[3]] * 5)  # then steps run without it


def test_a_recovered_worker_rejoins_with_a_cold_state():
    from sim import methods
    from sim.cluster import Cluster
    from sim.methods.base import snapshot_rows
    from sim.step import train_step

    method = methods.get("dlion")
    hp = {k: (list(v) if isinstance(v, tuple) else v) for k, v in method.defaults.items()}
    x = np.zeros(6)
    cluster = Cluster(3, {"bandwidth": 1e9, "latency": 1e-5}, ComputeModel(step_time=0.01),
                      faults=FaultModel(crash_workers=(2,), crash_time=0.015,
                                        recover_after=0.03, detect_after=0.005),
                      fault_rng=np.random.default_rng(0))
    state = method.init(x, 3, hp, None)
    cold = snapshot_rows(method.init(x, 3, hp, None), 3)
    rng = np.random.default_rng(1)
    grads = np.ones((3, 6))
    seen = []
    for t in range(8):
        out = train_step(method, cluster, x, state, grads, hp, 1e-3, method_rng=rng,
                         compute_rng=rng, batch_size=1, n_params=6, step=t, cold=cold)
        x, state = out.x, out.state
        seen.append((int(out.record.n_aggregated), state["m"][2, 0]))
    counts = [c for c, _ in seen]
    assert counts[0] == 3 and 2 in counts and counts[-1] == 3
    # the momentum of a constant gradient from zero: 1 - b2^k after k steps taken
    b2 = hp["betas"][1]
    last_gone = max(i for i, (c, _) in enumerate(seen) if c == 2)
    steps_back = len(seen) - 1 - last_gone
    assert seen[-1][1] == pytest.approx(1 - b2 ** steps_back)
    assert state["m"][0, 0] == pytest.approx(1 - b2 ** 8)


def test_workers_back_after_all_were_down_rejoin_cold():
    # D-Lion, lr 1, betas (0.99, 0.9), both workers' gradient +1 and then -1 (from step 4 on).
    # Both crash at 25 ms, in step 3, which the detection closes empty at 30 ms; both are back
    # at 55 ms and step 4 opens then. Cold, each worker's c = 0.01 * -1 < 0: x goes up by 1.
    # With the momentum of steps 1-2 (m = 0.19) c would be 0.99 * 0.19 - 0.01 > 0 instead.
    from sim import methods
    from sim.cluster import Cluster
    from sim.methods.base import snapshot_rows
    from sim.step import train_step

    method = methods.get("dlion")
    hp = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in method.defaults.items()},
          "betas": [0.99, 0.9], "weight_decay": 0.0, "lr": 1.0}
    cluster = Cluster(2, {"bandwidth": 1e9, "latency": 1e-5}, ComputeModel(step_time=0.01),
                      faults=FaultModel(crash_workers=(0, 1), crash_time=0.025,
                                        recover_after=0.03, detect_after=0.005),
                      fault_rng=np.random.default_rng(0))
    x = np.zeros(3)
    state = method.init(x, 2, hp, None)
    cold = snapshot_rows(method.init(x, 2, hp, None), 2)
    rng = np.random.default_rng(1)
    for t in range(4):
        grads = np.full((2, 3), 1.0 if t < 3 else -1.0)
        out = train_step(method, cluster, x, state, grads, hp, 1.0, method_rng=rng,
                         compute_rng=rng, batch_size=1, n_params=3, step=t, cold=cold)
        x, state = out.x, out.state
    assert [r.n_aggregated for r in cluster.records] == [2, 2, 0, 2]
    assert cluster.records[3].opening == pytest.approx(0.055)
    assert x.tolist() == [-1.0, -1.0, -1.0]  # -1, -2, (empty), then back up by 1
    assert state["m"] == pytest.approx(np.full((2, 3), -0.1))  # one step from zero: 0.1 * -1


def test_every_worker_down_ends_the_run_with_a_status(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[objective]\nname = "quadratic"\ndim = 8\n[cluster]\nworkers = 3\n'
                    '[faults]\ncrash_workers = [0, 1, 2]\ncrash_step = 3\n'
                    'detect_after = "50ms"\n[run]\nsteps = 50\n')
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "run", str(spec), "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = load(tmp_path / "out").summary
    assert summary["status"] == "all_workers_down"
    assert summary["steps"] == 3  # two full steps, then the one that waited for detection
    assert summary["participation"]["empty"] == 1
    assert "every worker is down" in summary["stopped_because"]


# --- lost messages ----------------------------------------------------------------------------

def _scripted_losses(monkeypatch, pattern):
    draws = iter(pattern)
    monkeypatch.setattr(WorkerFaults, "lost", lambda self: next(draws, False))


def test_a_lost_message_costs_its_transfer_and_the_retransmission_timeout(monkeypatch):
    # one worker, 800 parameters: an 800-bit sign message at 1 Mb/s; the first attempt is
    # lost, then the message is sent again rto = 0.2 s after that attempt ended
    _scripted_losses(monkeypatch, [True])
    b, lat, rto = 1e6, 1e-3, 0.2
    result = experiments.simulate(objective={"name": "quadratic", "dim": 800}, workers=1,
                                  steps=1, method={"name": "dlion"},
                                  network={"bandwidth": b, "latency": lat,
                                           "transport": "fluid", "collective": "ps"},
                                  faults={"loss": 0.01, "rto": rto})
    up = lat + 800 / b
    down = lat + (800 + 8) / b  # the reply and its one-byte participation map
    assert result.history["time_s"][0] == pytest.approx(2 * up + rto + down, rel=1e-9)
    assert result.history["lost"].tolist() == [1]
    assert result.history["aggregated"].tolist() == [1]


def test_a_dropped_message_never_arrives(monkeypatch):
    # the second message of step 1 is lost and dropped: the deadline closes without it
    _scripted_losses(monkeypatch, [False, True])
    result = experiments.simulate(steps=2, server={"policy": "deadline", "deadline": "50ms"},
                                  faults={"loss": 0.01, "on_loss": "drop"}, **COMMON)
    assert result.history["aggregated"].tolist() == [3, 4]
    assert result.history["lost"].tolist() == [1, 0]
    assert result.history["late"].tolist() == [0, 0]


def test_loss_rates_show_in_the_counts():
    result = experiments.simulate(steps=200, faults={"loss": 0.1, "rto": "1ms"}, **COMMON)
    lost = result.summary["participation"]["lost"]
    # each of 800 messages is lost with probability 0.1 (and retried: geometric)
    expected = 800 * 0.1 / 0.9
    assert abs(lost - expected) < 4 * math.sqrt(expected)
    assert result.history["aggregated"].tolist() == [4] * 200


# --- determinism -------------------------------------------------------------------------------

def test_faults_and_stragglers_are_the_same_in_one_process_or_two(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[objective]\nname = "logistic"\nsamples = 256\nfeatures = 15\n'
        '[cluster]\nworkers = 6\nbatch_size = 8\n'
        '[compute]\nstep_time = "5ms"\ndistribution = "pareto"\npareto_shape = 1.5\n'
        '[server]\npolicy = "deadline"\ndeadline = "12ms"\n'
        '[faults]\ncrash_rate = 2.0\nrecover_after = "20ms"\ndetect_after = "5ms"\n'
        'loss = 0.05\non_loss = "drop"\n'
        '[run]\nsteps = 30\n'
        '[sweep]\n"method.name" = ["dlion", "gadamw"]\n"run.seed" = [0, 1]\n')
    raw = load_toml(spec)
    one = run_sweep(raw, tmp_path / "one", jobs=1)
    two = run_sweep(raw, tmp_path / "two", jobs=2)
    assert len(one) == len(two) == 4
    for a, b in zip(sorted(r["dir"] for r in one), sorted(r["dir"] for r in two)):
        ra, rb = load(a), load(b)
        assert np.array_equal(ra.params, rb.params)
        for column in ("time_s", "aggregated", "lost", "down", "abandoned", "late"):
            assert np.array_equal(ra.history[column], rb.history[column], equal_nan=True)
    stats = load(sorted(r["dir"] for r in one)[0]).summary["participation"]
    assert stats["lost"] > 0 and stats["down"] > 0 and stats["abandoned"] > 0


@pytest.mark.parametrize("setting,words", [
    (["faults.crash_workers=[4]", "faults.crash_time=1.0"], "worker 4 does not exist"),
    (["faults.crash_workers=[1]"], "needs faults.crash_time or faults.crash_step"),
    (["faults.crash_workers=[1]", "faults.crash_time=1.0", "faults.crash_step=2"], "give one"),
    (["faults.crash_time=1.0"], "needs faults.crash_workers"),
    (["faults.loss=1.0"], "out of range"),
    (["faults.loss=-0.1"], "out of range"),
    (["faults.loss=0.1", "faults.on_loss=\"drop\""], "wait for ever"),
    (["faults.loss=0.1", "faults.on_loss=\"drop\"", "server.policy=\"first_k\"",
      "server.k=2"], "wait for ever"),
    (["faults.crash_rate=0.1", "method.name=\"gadamw\"", "network.collective=\"ring\""],
     "cannot skip a rank"),
    (["faults.crash_workers=[1, 1]", "faults.crash_time=1.0"], "listed twice"),
    (["compute.distribution=\"pareto\""], "needs compute.pareto_shape"),
    (["compute.tail=0.5"], "needs compute.distribution = 'shifted_exponential'"),
])
def test_bad_fault_settings_are_one_line_errors(refused, setting, words):
    assert words in refused(setting)


# --- the participation columns, by hand, in every combination ---------------------------------

# Four workers computing 10, 12, 14 and 80 ms; a push (16 bytes: 4 fp32 values) takes 1 ms of
# latency and 128 us on a 1 Mb/s link, so messages land at 11.128, 13.128, 15.128 and 81.128 ms.
# "crash": worker 2 crashes at 5 ms, while computing; the server notices at 35 ms. "retransmit":
# worker 1's first attempt (the second message to land) is lost and sent again 20 ms after it
# ended, landing at 34.256 ms; "drop": it never arrives.
PARTICIPATION_CASES = [
    # policy, faults, close (ms), aggregated, late, lost, down, abandoned, empty
    ("all", "", 81.128, 4, 0, 0, 0, 0, 0),
    ("all", "crash", 81.128, 3, 0, 0, 1, 0, 0),
    ("all", "retransmit", 81.128, 4, 0, 1, 0, 0, 0),
    ("all", "crash retransmit", 81.128, 3, 0, 1, 1, 0, 0),
    # a 40 ms deadline: worker 3 is still computing and gives the step up
    ("deadline", "", 40.0, 3, 0, 0, 0, 1, 0),
    ("deadline", "crash", 40.0, 2, 0, 0, 1, 1, 0),
    ("deadline", "retransmit", 40.0, 3, 0, 1, 0, 1, 0),
    ("deadline", "drop", 40.0, 2, 0, 1, 0, 1, 0),
    ("deadline", "crash retransmit", 40.0, 2, 0, 1, 1, 1, 0),
    ("deadline", "crash drop", 40.0, 1, 0, 1, 1, 1, 0),
    # the first two messages: while worker 1's message is lost, worker 2's closes the step,
    # and worker 1's retransmission arrives late
    ("first_k", "", 13.128, 2, 0, 0, 0, 2, 0),
    ("first_k", "crash", 13.128, 2, 0, 0, 1, 1, 0),
    ("first_k", "retransmit", 15.128, 2, 1, 1, 0, 1, 0),
    ("first_k", "crash retransmit", 34.256, 2, 0, 1, 1, 1, 0),
    # a 9 ms deadline closes before anyone has finished: nothing arrives
    ("early", "", 9.0, 0, 0, 0, 0, 4, 1),
    ("early", "crash", 9.0, 0, 0, 0, 1, 3, 1),
]


@pytest.mark.parametrize("policy,what,close,aggregated,late,lost,down,abandoned,empty",
                         PARTICIPATION_CASES)
def test_participation_columns_by_hand(tmp_path, monkeypatch, policy, what, close, aggregated,
                                       late, lost, down, abandoned, empty):
    trace = tmp_path / "steps.csv"
    trace.write_text("w0,w1,w2,w3\n0.010,0.012,0.014,0.080\n")
    server = {"all": {}, "deadline": {"policy": "deadline", "deadline": "40ms"},
              "first_k": {"policy": "first_k", "k": 2},
              "early": {"policy": "deadline", "deadline": "9ms"}}[policy]
    faults = {}
    if "crash" in what:
        faults.update(crash_workers=[2], crash_time="5ms", detect_after="30ms")
    if "retransmit" in what or "drop" in what:
        faults.update(loss=0.5, rto="20ms", on_loss="drop" if "drop" in what else "retransmit")
        _scripted_losses(monkeypatch, [False, True])
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 4}, workers=4, steps=1, method="gsgd",
        network={"collective": "ps", "bandwidth": 1e6, "server_bandwidth": 1e9, "latency": 1e-3,
                 "transport": "fluid"},
        compute={"distribution": "trace", "trace_file": str(trace)}, server=server,
        faults=faults, run={"trace": True})
    h = result.history
    got = [h[key].tolist() for key in ("aggregated", "late", "lost", "down", "abandoned",
                                        "empty")]
    assert got == [[aggregated], [late], [lost], [down], [abandoned], [empty]]
    assert result.summary["participation"] == {"aggregated": aggregated, "late": late,
                                               "lost": lost, "down": down,
                                               "abandoned": abandoned, "empty": empty,
                                               "adversarial": 0}
    closes = [row[2] for row in result.trace if row[1] == "aggregate"]
    assert closes == [pytest.approx(close / 1e3, rel=1e-9)]
    # one timeline row per abandoned computation and per lost attempt
    phases = [row[1] for row in result.trace]
    assert (phases.count("abandoned"), phases.count("lost"), phases.count("late")) == (
        abandoned, lost, late)


# --- crashes, recoveries and lost attempts, by hand ------------------------------------------

def _with_trace(tmp_path, steps_csv, steps, server=None, faults=None):
    """A gsgd run of 8 parameters (256-bit messages) on fast links, its compute times replayed
    from ``steps_csv`` (one column per worker), with its timeline."""
    trace = tmp_path / "steps.csv"
    trace.write_text(steps_csv)
    return experiments.simulate(
        objective={"name": "quadratic", "dim": 8}, steps=steps, method="gsgd",
        workers=len(steps_csv.splitlines()[0].split(",")),
        network={"collective": "ps", "bandwidth": 1e9, "latency": 1e-5, "transport": "fluid"},
        compute={"distribution": "trace", "trace_file": str(trace)}, server=server,
        faults=faults, run={"trace": True})


def test_a_worker_crashed_at_a_step_is_down_for_recover_after_and_rejoins_at_the_next_opening():
    # Three workers compute 10 ms; the network is all but instantaneous (under 1e-8 s a message)
    # and the server works 1 us per byte it aggregates (32 bytes a message). Worker 1 goes down
    # at the opening of step 2, o2, for 25 ms; the server notices 12 ms later.
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 8}, workers=3, steps=6, method="gsgd",
        network={"collective": "ps", "bandwidth": 1e12, "latency": 0.0, "transport": "fluid"},
        compute={"step_time": "10ms", "aggregate_per_byte": 1e-6},
        faults={"crash_workers": [1], "crash_step": 2, "recover_after": "25ms",
                "detect_after": "12ms"}, run={"trace": True})
    o2 = 0.010 + 96e-6
    # step 2 waits for worker 1 until the server notices its crash; steps 3 and 4 run without
    # it (it is down when they open, at o2 + 12.064 ms and o2 + 22.128 ms); it is back at the
    # opening of step 5, o2 + 32.192 ms, the first after o2 + 25 ms
    opens = [o2, o2 + 0.012064, o2 + 0.022128, o2 + 0.032192]
    aggregate = [row for row in result.trace if row[1] == "aggregate"]
    np.testing.assert_allclose([row[3] for row in aggregate[:4]], opens, atol=1e-8)
    assert aggregate[1][2] == pytest.approx(o2 + 0.012, abs=1e-8)
    h = result.history
    assert h["aggregated"].tolist() == [3, 2, 2, 2, 3, 3]
    assert h["down"].tolist() == [0, 1, 1, 0, 0, 0]  # at step 4's close it is up again
    assert h["abandoned"].tolist() == [0] * 6
    # its down time, drawn step by step, is [o2, o2 + 25 ms] exactly, in consecutive pieces
    down = sorted((row[2], row[3]) for row in result.trace
                  if row[0] == "worker1" and row[1] == "down")
    assert down[0][0] == pytest.approx(o2, abs=1e-8)
    assert down[-1][1] == pytest.approx(down[0][0] + 0.025, rel=1e-12)
    assert all(a[1] == b[0] for a, b in zip(down, down[1:]))


@pytest.mark.parametrize("crash,detect_after", [
    ("20ms", "10ms"),      # noticed at 30 ms, before its message lands (138 ms)
    ("20ms", "150ms"),     # noticed at 170 ms, after it landed
    ("10.005ms", "10ms"),  # down during its message's latency, after it finished computing
])
def test_a_message_on_the_wire_when_its_sender_crashes_arrives_and_counts_once(tmp_path, crash,
                                                                               detect_after):
    # worker 2 finishes computing at 10 ms and sends 256 bits on a 2 kb/s link (128 ms), then
    # crashes; the server waits for worker 1 (200 ms), so the step closes when worker 1's
    # message lands, with all three messages
    trace = tmp_path / "steps.csv"
    trace.write_text("w0,w1,w2\n0.010,0.200,0.010\n")
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 8}, workers=3, steps=1, method="gsgd",
        network={"collective": "ps", "bandwidth": [1e9, 1e9, 2e3], "server_bandwidth": 1e9, "latency": 1e-5,
                 "transport": "fluid"},
        compute={"distribution": "trace", "trace_file": str(trace)},
        faults={"crash_workers": [2], "crash_time": crash, "detect_after": detect_after},
        run={"trace": True})
    h = result.history
    assert h["aggregated"].tolist() == [3]
    assert (h["down"].tolist(), h["abandoned"].tolist(), h["late"].tolist()) == ([1], [0], [0])
    assert h["bits_up"].tolist() == [256]  # all three computed and sent
    close = [row[2] for row in result.trace if row[1] == "aggregate"]
    assert close == [pytest.approx(0.200 + 1e-5 + 256 / 1e9, rel=1e-9)]


def test_a_worker_that_crashes_before_its_retransmission_never_sends_it(tmp_path, monkeypatch):
    # worker 1's first attempt is lost (it lands second, at 12 ms); it crashes at 20 ms, before
    # the retransmission timeout of 50 ms has passed, so the step closes at its deadline
    # without its message
    _scripted_losses(monkeypatch, [False, True])
    result = _with_trace(tmp_path, "w0,w1\n0.010,0.012\n", steps=1,
                         server={"policy": "deadline", "deadline": "100ms"},
                         faults={"loss": 0.5, "rto": "50ms", "crash_workers": [1],
                                 "crash_time": "20ms"})
    h = result.history
    assert (h["aggregated"].tolist(), h["lost"].tolist(), h["down"].tolist()) == ([1], [1], [1])
    assert h["late"].tolist() == [0]


def test_random_crashes_alternate_with_their_down_time():
    # up for an exponential time of mean 1 / crash_rate, measured from the recovery, then down
    # for recover_after: long after the start a worker is down a fraction
    # recover_after / (recover_after + 1 / crash_rate) of the time (1/3 here)
    faults = WorkerFaults(FaultModel(crash_rate=1.0, recover_after=0.5), 100_000,
                          np.random.default_rng(0))
    faults.open_step(1, 20.0)
    assert faults.down(20.0).mean() == pytest.approx(1 / 3, abs=0.01)
    # and a worker that is up will crash after an exponential time from now on (memoryless)
    up = ~faults.down(20.0)
    assert (faults.crash_at[up] - 20.0).mean() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("on_loss", ["retransmit", "drop"])
def test_each_lost_attempt_is_one_row_from_its_start_to_the_next(monkeypatch, on_loss):
    # one worker, an 800-bit message at 1 Mb/s behind 1 ms of latency: each attempt takes
    # 1.8 ms. The first two attempts are lost; retransmitted, the third arrives. A lost row runs
    # from the attempt's start to the next attempt's (rto after it ended), or, dropped, to its
    # end. bits_up counts the message once: a retransmission costs time, not bits.
    _scripted_losses(monkeypatch, [True, True])
    push, rto = 1e-3 + 800 / 1e6, 0.2
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 800}, workers=1, steps=1, method="dlion",
        network={"collective": "ps", "bandwidth": 1e6, "latency": 1e-3, "transport": "fluid"},
        server={"policy": "deadline", "deadline": "1s"},
        faults={"loss": 0.01, "rto": rto, "on_loss": on_loss}, run={"trace": True})
    lost = [(row[2], row[3]) for row in result.trace if row[1] == "lost"]
    h = result.history
    if on_loss == "retransmit":
        retry1, retry2 = push + rto, 2 * (push + rto)
        np.testing.assert_allclose(lost, [(0.0, retry1), (retry1, retry2)], rtol=1e-12)
        assert (h["lost"].tolist(), h["aggregated"].tolist()) == ([2], [1])
        assert h["bits_up"].tolist() == [800]
    else:
        np.testing.assert_allclose(lost, [(0.0, push)], rtol=1e-12)
        assert (h["lost"].tolist(), h["aggregated"].tolist(), h["empty"].tolist()) == (
            [1], [0], [1])


def test_reply_bits_count_the_workers_the_reply_goes_to(tmp_path):
    # Worker 3 is down from the start and known to be; worker 2 computes too slowly for the
    # deadline and gives every step up. Per step and worker (means over the 4 workers): up, the
    # 256-bit messages of workers 0 and 1; down, the 256-bit reply and its 8-bit map for the
    # three workers the server believes up (docs/faults.md section 7)
    result = _with_trace(tmp_path, "w0,w1,w2,w3\n0.010,0.010,0.200,0.010\n", steps=3,
                         server={"policy": "deadline", "deadline": "50ms"},
                         faults={"crash_workers": [3], "crash_time": 0.0, "detect_after": 0.0})
    h = result.history
    assert h["aggregated"].tolist() == [2, 2, 2]
    assert h["abandoned"].tolist() == [1, 1, 1] and h["down"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(np.diff(h["bits_up"], prepend=0.0), [256 * 2 / 4] * 3)
    np.testing.assert_allclose(np.diff(h["bits_down"], prepend=0.0), [(256 + 8) * 3 / 4] * 3)


# --- faults off the parameter server ------------------------------------------------------------

def _slow_worker_trace(tmp_path, steps=3):
    """Step times: workers 0-2 take 10 ms, worker 3 a second (it misses every deadline)."""
    trace = tmp_path / "steps.csv"
    trace.write_text("w0,w1,w2,w3\n" + "0.010,0.010,0.010,1.000\n" * steps)
    return str(trace)


@pytest.mark.parametrize("server", [{"policy": "deadline", "deadline": "100ms"},
                                    {"policy": "first_k", "k": 3}])
def test_the_shard_owners_go_on_without_a_worker_that_misses_the_close(tmp_path, server):
    """The sharded vote closes by the server's policy: the same three messages count as on the
    parameter server, so the parameters are the server's; the fourth worker gives its steps up."""
    common = dict(objective={"name": "logistic", "samples": 256, "features": 15}, workers=4,
                  steps=3, method={"name": "dlion"}, server=server,
                  compute={"distribution": "trace", "trace_file": _slow_worker_trace(tmp_path)})
    sharded = experiments.simulate(**common, network={"collective": "alltoall",
                                                      "transport": "fluid"})
    server_run = experiments.simulate(**common, network={"collective": "ps",
                                                         "transport": "fluid"})
    assert sharded.history["aggregated"].tolist() == [3, 3, 3]
    assert sharded.history["aggregated"].tolist() == server_run.history["aggregated"].tolist()
    np.testing.assert_array_equal(sharded.params, server_run.params)
    assert sharded.history["abandoned"].sum() >= 2


def test_crashed_shard_owners_leave_their_shards_to_the_others():
    """A worker crashes at step 2 and never comes back: once the server side has noticed, the
    step opens for the three left, who own the shards among them; every step updates x as the
    parameter server would have."""
    common = dict(objective={"name": "logistic", "samples": 256, "features": 15}, workers=4,
                  steps=4, method={"name": "dlion"}, compute={"step_time": "10ms"},
                  faults={"crash_workers": [2], "crash_step": 2, "detect_after": "20ms"})
    sharded = experiments.simulate(**common, network={"collective": "alltoall",
                                                      "transport": "fluid"})
    server = experiments.simulate(**common, network={"collective": "ps", "transport": "fluid"})
    assert sharded.history["aggregated"].tolist() == server.history["aggregated"].tolist()
    assert sharded.history["aggregated"][-1] == 3
    np.testing.assert_array_equal(sharded.params, server.params)


def test_a_lost_message_stalls_a_ring_by_the_retransmission_timeout(monkeypatch):
    """On a pipelined ring all-reduce the first worker's message is lost once: the ring waits
    the retransmission timeout, then the lost piece goes again at the link's rate."""
    _scripted_losses(monkeypatch, [True])
    n, bits, bw, lat, rto = 4, 8 * 2**20, 1e9, 1e-4, 0.2
    run = experiments.simulate(objective={"name": "quadratic", "dim": 64}, workers=n, steps=1,
                               method="gadamw", cluster={"model_params": bits // 32},
                               network={"bandwidth": bw, "latency": lat, "transport": "fluid",
                                        "collective": "ring"},
                               faults={"loss": 0.01, "rto": rto})
    clean = experiments.simulate(objective={"name": "quadratic", "dim": 64}, workers=n,
                                 steps=1, method="gadamw", cluster={"model_params": bits // 32},
                                 network={"bandwidth": bw, "latency": lat,
                                          "transport": "fluid", "collective": "ring"})
    assert run.history["lost"].tolist() == [1]
    stall = run.history["time_s"][0] - clean.history["time_s"][0]
    assert stall == pytest.approx(rto + bits / bw, rel=1e-6)


@pytest.mark.parametrize("collective", ["ring", "tree", "allgather"])
def test_crashes_and_policies_are_refused_where_no_rank_may_be_missing(refused, collective):
    method = "dlion" if collective == "allgather" else "gadamw"
    for settings in ([f"method.name={method}", f"network.collective={collective}",
                      "faults.crash_rate=0.01"],
                     [f"method.name={method}", f"network.collective={collective}",
                      "server.policy=\"deadline\"", "server.deadline=0.1"]):
        err = refused(settings)
        assert "goes on without a rank" in err and "'ps', 'alltoall'" in err
