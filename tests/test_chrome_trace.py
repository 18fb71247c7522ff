"""trace.json: a traced run's timeline as a Chrome trace (Perfetto, chrome://tracing), event for
event the rows of trace.csv, on one track per node."""
import json
import math
from collections import defaultdict

import pytest

import experiments
from experiments.chrome_trace import chrome_trace, track_ids

# a peer collective (8 workers, 'workers' row) and a parameter server with a deadline, losses
# and a crash (lost, late, down rows and the deadline's instant)
SPECS = {"collective": ("quickstart", {"method": "dlion"}),
         "server": ("timeline_faults", {"network": {"collective": "ps"}})}


def _reject(constant):
    raise ValueError(f"{constant} is not JSON")


@pytest.fixture(scope="module", params=sorted(SPECS))
def saved(request, tmp_path_factory):
    """(Result, the parsed trace.json) of a traced 3-step run, saved and loaded back."""
    spec, overrides = SPECS[request.param]
    result = experiments.simulate(spec, steps=3, run={"trace": True}, progress=False,
                                  **overrides)
    path = result.save(tmp_path_factory.mktemp(request.param) / "run")
    with open(path / "trace.json") as fh:
        trace = json.load(fh, parse_constant=_reject)  # strict JSON: no NaN or Infinity
    return result, trace, path


def _events(trace):
    return [e for e in trace["traceEvents"] if e["ph"] != "M"]


def _tracks(trace) -> dict[int, str]:
    return {e["tid"]: e["args"]["name"] for e in trace["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


def test_the_file_is_a_chrome_trace(saved):
    _, trace, _ = saved
    assert trace["displayTimeUnit"] == "ms" and isinstance(trace["traceEvents"], list)
    for e in trace["traceEvents"]:
        assert {"ph", "pid", "tid", "ts", "name"} <= set(e), e
        assert e["ph"] in ("M", "X", "i")
        assert isinstance(e["ts"], (int, float)) and math.isfinite(e["ts"]) and e["ts"] >= 0
        assert e["pid"] == 1
        if e["ph"] == "X":
            assert math.isfinite(e["dur"]) and e["dur"] >= 0
        if e["ph"] == "i":
            assert "dur" not in e and e["s"] == "t"
    names = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert names == ["dlion/mavo, " + saved[0].summary["collective"]]


def test_every_row_is_one_event_on_its_nodes_track(saved):
    result, trace, _ = saved
    tid = {name: t for t, name in _tracks(trace).items()}
    assert len(tid) == len(_tracks(trace))  # one track per node
    assert set(tid) == {row[0] for row in result.trace}
    workers = sorted(n for n in tid if n.startswith("worker") and n[6:].isdigit())
    assert [tid[w] for w in workers] == [int(w[6:]) for w in workers]
    events = _events(trace)
    assert len(events) == len(result.trace)
    unmatched = defaultdict(list)
    for e in events:
        unmatched[e["tid"], e["name"], e["args"]["step"]].append(e)
    for node, phase, start, end, size, step in result.trace:
        candidates = unmatched[tid[node], phase, step]
        match = [e for e in candidates if e["ts"] == pytest.approx(start * 1e6, rel=1e-6)
                 and e.get("dur", 0.0) == pytest.approx((end - start) * 1e6, rel=1e-6,
                                                        abs=1e-6)
                 and e["args"]["bytes"] == size]
        assert len(match) >= 1, (node, phase, start, end, step)
        candidates.remove(match[0])
        assert match[0]["cat"] == phase
        assert match[0]["ph"] == ("i" if end == start else "X")
    assert not any(unmatched.values())


def test_the_server_or_collective_has_its_own_track(saved):
    result, trace, _ = saved
    tracks = _tracks(trace)
    node = "server" if result.summary["collective"] == "ps" else "workers"
    assert tracks[max(tracks)] == node  # after the workers
    aggregates = [e for e in _events(trace) if e["name"] == "aggregate"]
    assert len(aggregates) == 3 and {tracks[e["tid"]] for e in aggregates} == {node}
    deadlines = [e for e in _events(trace) if e["name"] == "deadline"]
    if result.summary["spec"]["server"]["policy"] == "deadline":
        assert len(deadlines) == 3 and all(e["ph"] == "i" for e in deadlines)
        assert {tracks[e["tid"]] for e in deadlines} == {node}  # whoever closes the step
    else:
        assert deadlines == []


def test_a_workers_compute_ends_before_its_send_begins(saved):
    _, trace, _ = saved
    tracks = _tracks(trace)
    by = defaultdict(dict)
    for e in _events(trace):
        by[e["tid"], e["args"]["step"]].setdefault(e["name"], []).append(e)
    checked = 0
    for (tid, step), phases in by.items():
        if not tracks[tid].startswith("worker") or not tracks[tid][6:].isdigit():
            continue
        main = sorted((e for name in ("compute", "send", "idle", "receive")
                       for e in phases.get(name, [])), key=lambda e: e["ts"])
        # the worker's own phases follow each other on its track: no overlap beyond rounding
        for before, after in zip(main, main[1:]):
            assert before["ts"] + before.get("dur", 0.0) <= after["ts"] * (1 + 1e-12) + 1e-9
        if "compute" in phases and "send" in phases:
            (compute,), (send,) = phases["compute"], phases["send"]
            assert compute["ts"] + compute["dur"] <= send["ts"] * (1 + 1e-12) + 1e-9
            checked += 1
    assert checked >= 3


def test_saving_untraced_over_it_removes_trace_json(saved, tmp_path):
    result, _, _ = saved
    result.save(tmp_path / "run")
    assert (tmp_path / "run" / "trace.json").exists()
    result.trace, trace = None, result.trace
    try:
        result.save(tmp_path / "run")
    finally:
        result.trace = trace
    assert not (tmp_path / "run" / "trace.json").exists()
    assert not (tmp_path / "run" / "trace.csv").exists()
    assert experiments.load(tmp_path / "run").trace is None


def test_any_phase_renders_and_microseconds_are_exact():
    rows = [("worker1", "compute", 0.0, 0.1, 0, 1), ("worker0", "prefetch", 0.25, 0.5, 4096, 1),
            ("link3", "busy", 0.125, 0.375, 10, 1), ("server", "deadline", 0.2, 0.2, 0, 1)]
    trace = chrome_trace(rows, "demo")
    assert track_ids(r[0] for r in rows) == {"worker0": 0, "worker1": 1, "link3": 2,
                                             "server": 3}
    events = _events(trace)
    unknown = events[1]
    assert unknown == {"name": "prefetch", "cat": "prefetch", "ph": "X", "pid": 1, "tid": 0,
                       "ts": 250000.0, "dur": 250000.0, "args": {"step": 1, "bytes": 4096}}
    assert events[0]["ts"] + events[0]["dur"] == 100000.0  # ts + dur is the end, exactly
    assert events[3]["ph"] == "i" and events[3]["cname"] == "terrible"


def test_buckets_have_a_track_of_their_own_below_their_worker():
    """A bucket's message travels while its worker computes: on the worker's own track the two
    would overlap, which the trace viewers cannot nest."""
    rows = [("worker0", "compute", 0.0, 0.1, 0, 1), ("worker0", "bucket", 0.05, 0.12, 64, 1),
            ("worker1", "compute", 0.0, 0.1, 0, 1), ("workers", "aggregate", 0.12, 0.12, 0, 1)]
    trace = chrome_trace(rows, "demo")
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"]
             if e["name"] == "thread_name"}
    order = {names[e["tid"]]: e["args"]["sort_index"] for e in trace["traceEvents"]
             if e["name"] == "thread_sort_index"}
    assert sorted(order, key=order.get) == ["worker0", "worker0 buckets", "worker1", "workers"]
    bucket = next(e for e in _events(trace) if e["name"] == "bucket")
    assert names[bucket["tid"]] == "worker0 buckets"
    assert json.loads(json.dumps(trace)) == trace
