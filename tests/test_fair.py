"""The fair study's figure (plots/fair.py): D-Lion's speed-up over G-AdamW is the ratio of the
runs' own times to the target, per model, workers and NIC, and the bundled study compares
against an overlapped all-reduce."""
import json

import pytest

from experiments.spec import bundled_spec, load_toml, resolve
from experiments.grid import expand
from experiments.sweep import run_sweep
from plots.fair import plot_fair


def test_the_bundled_fair_study_pits_d_lion_against_an_overlapped_all_reduce():
    points = [resolve(p) for p in expand(load_toml(bundled_spec("fair")))]
    dense = [p for p in points if p["method"]["name"] == "gadamw"]
    assert dense and all(p["network"]["collective"] == "auto" for p in dense)
    assert all(p["compute"]["overlap"] is not False for p in points)  # the default: overlap
    # every method at its best step size of the same grid
    assert {p["method"]["lr"] for p in dense} == {0.003, 0.01, 0.03}
    assert all(p["network"]["topology"] == "nodes" for p in points)
    assert {p["cluster"]["model"] for p in points} == {"gpt2-small", "gpt3-xl"}


@pytest.fixture(scope="module")
def small_fair(tmp_path_factory):
    """A shrunk fair study: 2 node sizes x 2 NICs, GPT-2 small's messages, a quick target."""
    raw = load_toml(bundled_spec("fair"))
    raw.pop("tune")  # one step size, set below
    raw["objective"] = {"name": "logistic", "samples": 2048, "features": 31}
    raw["run"] = {"steps": 60, "eval_every": 5, "target": 0.55}
    zipped = raw["sweep"]["zip"]
    for table in zipped[0]["method"]:
        table["lr"] = 0.01  # the target in a few steps
    raw["sweep"] = {"network.bandwidth": ["1Gbps", "100Gbps"], "cluster.workers": [8, 16],
                    "cluster.model": ["gpt2-small"], "zip": zipped}
    out = tmp_path_factory.mktemp("fair")
    run_sweep(raw, out, jobs=1)
    return out


def test_the_speed_up_is_the_ratio_of_the_runs_times_to_the_target(small_fair, tmp_path):
    lines = plot_fair(small_fair, tmp_path / "fair.png")
    assert (tmp_path / "fair.png").stat().st_size > 10_000
    times = {}
    for summary in small_fair.glob("*/summary.json"):
        s = json.loads(summary.read_text())
        spec = s["spec"]
        who = spec["method"]["name"] + "/" + spec["network"]["collective"]
        times[spec["cluster"]["workers"], spec["network"]["bandwidth"], who] = \
            s["target"]["time_s"]
    rows = [line for line in lines[2:]]
    assert len(rows) == 4  # workers x NIC
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        n, nic = int(cells[1]), float(cells[2].split()[0]) * 1e9
        for cell, who in zip(cells[4:], ("dlion/auto", "dlion/alltoall")):
            expected = times[n, nic, "gadamw/auto"] / times[n, nic, who]
            assert cell.endswith(f"{expected:.2g}x")
