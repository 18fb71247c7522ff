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
              network={"bandwidth": "1Gbps", "latency": "20us"}, compute={"step_time": "10ms"})


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
