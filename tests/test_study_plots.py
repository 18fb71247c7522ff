"""The study figures (plots/rtt.py, deadline.py, faults.py, byzantine.py, asynchrony.py) drawn
from shrunk runs of their bundled studies, as `dlion-sim plot --kind KIND` draws them: the figure is
written and the table's numbers are the runs' own (the speed-up of the rtt study re-derived
here from the runs' summaries)."""
import importlib
import json

import pytest

from experiments.spec import bundled_spec, load_toml
from experiments.sweep import run_sweep

#: a target the shrunk runs reach (the loss starts at ln 2 = 0.693)
TARGETS = {"rtt": 0.675, "deadline": 0.675, "faults": 0.62, "byzantine": 0.62,
           "asynchrony": 0.675}
#: the bundled study of a figure not named for it
STUDIES = {"asynchrony": "async"}


def _shrunk(kind, tmp_path):
    raw = load_toml(bundled_spec(STUDIES.get(kind, kind)))
    raw["objective"] = {"name": "logistic", "samples": 1024, "features": 15}
    zipped = raw.get("sweep", {}).get("zip", {})
    for table in zipped if isinstance(zipped, list) else [zipped]:
        for key in ("run.steps", "run.eval_every"):  # the shrunk run's own, below
            table.pop(key, None)
    raw.setdefault("run", {}).update({"steps": 30, "eval_every": 5, "target": TARGETS[kind]})
    out = tmp_path / kind
    run_sweep(raw, out, jobs=1)
    return out


@pytest.mark.parametrize("kind", list(TARGETS))
def test_each_study_figure_draws_from_its_study(kind, tmp_path):
    runs = _shrunk(kind, tmp_path)
    draw = getattr(importlib.import_module(f"plots.{kind}"), f"plot_{kind}")
    lines = draw(runs, tmp_path / f"{kind}.png")
    assert (tmp_path / f"{kind}.png").stat().st_size > 10_000
    assert lines[0].startswith("| ") and set(lines[1]) <= {"|", "-"} and len(lines) > 2
    if kind != "rtt":
        return
    times = {}
    for summary in runs.glob("*/summary.json"):
        s = json.loads(summary.read_text())
        net = s["spec"]["network"]
        times[net["bandwidth"], 2 * net["latency"], net["transport"],
              s["spec"]["method"]["name"]] = s["target"]["time_s"]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        bandwidth, rtt = float(cells[0].split()[0]) * 1e9, float(cells[1]) / 1e3
        key = min(times, key=lambda k: abs(k[0] - bandwidth) + abs(k[1] - rtt)
                  + (k[2] != cells[2]) * 1e12)[:3]
        expected = times[(*key, "gadamw")] / times[(*key, "dlion")]
        assert cells[5] == f"{expected:.1f}x"
