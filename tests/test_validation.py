"""The default transport against real Linux TCP (tests/data/calibration/, docs/validation.md).

Every case of linux_tcp_cubic.csv is run as a user would: a spec that sets only the links
(worker and server bandwidth, one-way latency), one parameter-server step whose messages carry
the case's bytes. The median makespan of each phase over the repetitions must be matched
within 5%. The restart-after-idle measurements (linux_tcp_idle_cubic.csv) are matched within
5% too.
"""
import csv
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
import simpy

import experiments
from sim.net.network import Network

DATA = Path(__file__).parent / "data" / "calibration"
TOLERANCE = 0.05


def _cases():
    rows = defaultdict(list)
    for row in csv.DictReader(open(DATA / "linux_tcp_cubic.csv")):
        rows[row["case_id"]].append(row)
    return rows


def _median_makespan(rows, phase):
    spans = []
    for rep in {r["rep"] for r in rows}:
        flows = [r for r in rows if r["rep"] == rep and r["phase"] == phase]
        start = 0.0 if phase == "up" else float(flows[0]["start_s"])
        spans.append(max(float(f["end_s"]) for f in flows) - start)
    return statistics.median(spans)


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_measured_case_within_five_percent(case):
    rows = CASES[case]
    first = rows[0]
    nbytes = int(first["bytes_up"])
    assert int(first["bytes_down"]) == nbytes and nbytes % 4 == 0
    result = experiments.simulate(
        objective={"name": "logistic", "features": 15}, method="gadamw",
        workers=int(first["N"]), steps=1, progress=False,
        network={"bandwidth": f"{first['worker_rate_mbit']}Mbps",
                 "server_bandwidth": f"{first['server_rate_mbit']}Mbps",
                 "latency": f"{first['delay_ms']}ms"},
        cluster={"model_params": nbytes // 4})  # fp32 messages of exactly nbytes each way
    h = result.history
    assert h["bits_up"][0] == h["bits_down"][0] == 8 * nbytes
    up = h["comm_up_s"][0] + h["idle_s"][0]     # the server holds every byte
    down = h["time_s"][0] - up
    assert up == pytest.approx(_median_makespan(rows, "up"), rel=TOLERANCE)
    assert down == pytest.approx(_median_makespan(rows, "down"), rel=TOLERANCE)


def _idle_durations(nbytes, gap, messages=8):
    """One connection at 100 Mb/s, 5 ms one way: send, the server answers one byte, wait."""
    env = simpy.Environment()
    net = Network(env, 1, bandwidth=1e8, latency=5e-3)
    out = []

    def worker():
        for _ in range(messages):
            start = env.now
            out.append((yield net.transfer(0, net.server, 8 * nbytes)) - start)
            yield net.transfer(net.server, 0, 8)
            yield env.timeout(gap)

    env.process(worker())
    env.run()
    return out


def _idle_measurements():
    groups = defaultdict(lambda: ([], []))
    for row in csv.DictReader(open(DATA / "linux_tcp_idle_cubic.csv")):
        first, later = groups[(int(row["bytes"]), float(row["gap_s"]))]
        (first if row["msg"] == "0" else later).append(float(row["duration_s"]))
    return {key: (statistics.median(f), statistics.median(l)) for key, (f, l) in groups.items()}


IDLE = _idle_measurements()


@pytest.mark.parametrize("nbytes,gap", sorted(IDLE))
def test_restart_after_idle_within_five_percent(nbytes, gap):
    first, later = IDLE[(nbytes, gap)]
    durations = _idle_durations(nbytes, gap)
    assert durations[0] == pytest.approx(first, rel=TOLERANCE)
    assert statistics.median(durations[1:]) == pytest.approx(later, rel=TOLERANCE)

