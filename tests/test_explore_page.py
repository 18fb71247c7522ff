"""The explorer's page as a Bokeh document, driven from Python: what it shows is what
``experiments.simulate`` gives, its "copy as spec" TOML reproduces it with ``dlion-sim sweep``,
a refused value is answered in one line, and the timeline is the traced step."""
import html
import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("bokeh", reason="the explorer needs the explore extra: pip install "
                                    "'.[explore]'")
from bokeh.document import Document  # noqa: E402

import experiments  # noqa: E402
from experiments.explore.app import Explorer  # noqa: E402
from experiments.grid import expand  # noqa: E402
from plots.style import method_key, pretty  # noqa: E402

HANG = 120  # seconds after which a view that should be drawn counts as hung
ROOT = Path(__file__).resolve().parents[1]


def _state(explorer) -> tuple[str, int]:
    found = re.search(r'data-state="(\w+)" data-generation="(\d+)"', explorer.status.text)
    return found.group(1), int(found.group(2))


def _settled(explorer) -> str:
    """Wait until the page's latest change is answered; its state, 'done' or 'error'."""
    deadline = time.monotonic() + HANG
    while True:
        state, generation = _state(explorer)
        if generation == explorer.generation and state in ("done", "error"):
            return state
        assert time.monotonic() < deadline, f"the view was not drawn: {explorer.status.text}"
        time.sleep(0.02)


def shown_times(table_html: str) -> dict[str, float | None]:
    """method key -> the time to target the table carries (None: not reached)."""
    rows = re.findall(r'data-method="([^"]+)" data-time-s="([^"]+)"', table_html)
    return {key: None if text == "none" else float(text) for key, text in rows}


def simulated_times(raw: dict) -> dict[str, float | None]:
    """method key -> time to target of ``experiments.simulate`` on every point of ``raw``."""
    out = {}
    for point in expand(raw):
        result = experiments.simulate(point)
        out[method_key(result.summary["spec"])] = result.summary["target"]["time_s"]
    return out


@pytest.fixture
def page():
    """An Explorer on a document whose next-tick callbacks run at once (no server here)."""
    doc = Document()
    doc.add_next_tick_callback = lambda callback: callback()
    explorer = Explorer(doc)
    assert _settled(explorer) == "done"
    yield explorer
    explorer.runner.close(wait=HANG)


def _move(widget, value) -> None:
    """What the browser does when a slider is let go: value, then value_throttled."""
    old = widget.value
    widget.value = value
    widget.trigger("value_throttled", old, value)


def test_the_page_shows_what_simulate_gives_and_its_toml_reproduces_it(page, tmp_path):
    shown = shown_times(page.table.text)
    assert set(shown) == {"dlion/mavo", "dlion/avg", "glion", "gadamw"}
    assert all(t is not None for t in shown.values())
    raw = tomllib.loads(page.spec_text.text)
    assert simulated_times(raw) == shown
    spec = tmp_path / "explore.toml"
    spec.write_text(page.spec_text.text)
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "sweep", str(spec), "-o",
                           str(tmp_path / "sweep"), "--jobs", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    swept = {}
    for summary in (tmp_path / "sweep").glob("*/summary.json"):
        loaded = json.loads(summary.read_text())
        swept[method_key(loaded["spec"])] = loaded["target"]["time_s"]
    assert swept == shown


def test_moving_the_bandwidth_redraws_the_answer_of_that_spec(page):
    before_toml, before = page.spec_text.text, shown_times(page.table.text)
    bandwidth = page.widgets["network.bandwidth"]
    assert bandwidth.value == "1 Gb/s"
    _move(bandwidth, "10 Gb/s")
    assert _settled(page) == "done"
    expected = tomllib.loads(before_toml)
    expected["network"]["bandwidth"] = "10Gbps"
    assert tomllib.loads(page.spec_text.text) == expected  # only the bandwidth changed
    after = shown_times(page.table.text)
    assert after == simulated_times(expected)
    assert after != before
    # the sentence names the method the simulated times put first, and compares it with G-AdamW
    first = min((t, key) for key, t in after.items() if t is not None)[1]
    assert html.unescape(page.sentence.text).startswith(f"{pretty(first)} reaches")
    if first == "gadamw":
        assert "takes" in page.sentence.text and "as long" in page.sentence.text
    else:
        assert "faster than G-AdamW" in page.sentence.text


def test_a_refused_value_is_answered_in_one_line_and_runs_nothing(page):
    table = page.table.text
    page.ticks["dgc"].active = True
    assert _settled(page) == "done"
    page.widgets["network.topology"].value = "nodes of GPUs sharing a NIC"  # 8 GPUs a node
    assert _settled(page) == "done"
    _move(page.widgets["cluster.workers"], 12)  # one node and a half
    assert _settled(page) == "error"
    status = html.unescape(re.sub(r"<[^>]+>", "", page.status.text))
    assert status.startswith("Not run: cluster.workers = 12 is not a whole number of nodes "
                             "of network.gpus_per_node = 8") and "\n" not in status
    assert page.table.text != table and "dgc" in page.table.text  # the last view that ran
    _move(page.widgets["cluster.workers"], 16)
    assert _settled(page) == "done"
    assert shown_times(page.table.text)["dgc"] is not None


def test_the_timeline_is_one_traced_step_of_the_chosen_method(page):
    assert page.timeline_method.value == "D-Lion (MaVo)"
    _move(page.timeline_step, 5)
    bars = page.timeline.source.data
    assert page.timeline.figure.title.text.startswith("D-Lion (MaVo): step 5 of ")
    workers = [f"worker{i}" for i in range(8)]
    # D-Lion votes on its sharded all-to-all (auto): the collective's row below the workers
    assert list(page.timeline.figure.y_range.factors) == ["workers", *workers[::-1]]
    for node in workers:
        rows = [(p, s, e) for n, p, s, e in zip(bars["node"], bars["phase"], bars["start"],
                                                 bars["end"]) if n == node]
        phases = [r for r in rows if r[0] != "bucket"]
        assert [p for p, _, _ in phases] == ["compute", "send", "idle", "receive"]
        assert all(a[2] <= b[1] + 1e-9 for a, b in zip(phases, phases[1:]))  # one after another
        # no jitter: every worker computes exactly the ResNet-50 preset's 104 ms, from 0
        assert phases[0][1] == 0 and phases[0][2] == pytest.approx(104.0)
        # overlap (the default): the gradient buckets go out during the backward pass, the
        # last one once the compute has ended
        sent = [(s, e) for p, s, e in rows if p == "bucket"]
        assert len(sent) > 1 and sent[0][0] < 104.0 <= sent[-1][0] + 1e-9
    assert page.timeline.figure.xaxis.axis_label.endswith("(ms)")
