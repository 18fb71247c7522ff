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


def test_local_figure_and_table_are_the_runs_own(tmp_path):
    # the local study with fewer points: two bandwidths, both latencies, short rounds
    raw = load_toml(bundled_spec("local"))
    raw["objective"] = {"name": "logistic", "samples": 1024, "features": 15}
    raw["run"].update({"steps": 40, "eval_every": 5, "target": 0.62})
    raw["sweep"]["network.bandwidth"] = ["100Mbps", "10Gbps"]
    raw["sweep"]["method"] = [{"name": "dlion", "aggregate": "mavo"}, {"name": "gadamw"},
                              {"name": "diloco", "h": 5}, {"name": "diloco", "h": 5,
                                                           "outer_bits": 4}]
    raw["tune"]["method.lr"] = [0.01, 0.03]
    run_sweep(raw, tmp_path / "local", jobs=1)
    from plots.local import plot_local, variant

    lines = plot_local(tmp_path / "local", tmp_path / "local.png")
    assert (tmp_path / "local.png").stat().st_size > 10_000
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[2:-1] == ["D-Lion (MaVo)", "G-AdamW", "DiLoCo, H = 5", "DiLoCo, H = 5, 4-bit"]
    tune = json.loads((tmp_path / "local" / "tune.json").read_text())
    winners = {run for group in tune["groups"] for run in group["best_dirs"]}
    best = {}
    for summary in (tmp_path / "local").glob("*/summary.json"):
        if summary.parent.name not in winners:
            continue
        s = json.loads(summary.read_text())
        net = s["spec"]["network"]
        best[round(net["latency"] * 1e6), net["bandwidth"], variant(s["spec"]["method"])] = \
            s["target"]
    assert len(lines) == 2 + 4 and len(best) == 4 * 4
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        latency = 50 if cells[0] == "50 µs" else 30_000  # µs
        bandwidth = float(cells[1].split()[0]) * 1e9
        times = {}
        for label, cell in zip(header[2:-1], cells[2:-1]):
            target = best[latency, bandwidth, label]
            if target and target["time_s"]:
                times[label] = target["time_s"]
                assert cell == (f"{target['time_s']:,.0f} s" if target["time_s"] >= 100
                                else f"{target['time_s']:.3g} s")
            else:
                assert cell == "not reached"
        assert cells[-1] == min(times, key=times.get)


def test_local_figure_refuses_two_runs_it_would_draw_as_one(tmp_path):
    # two DiLoCo runs that differ only in the inner step size, both kept (no [tune] table)
    raw = {"objective": {"name": "logistic", "samples": 256, "features": 7},
           "cluster": {"workers": 2, "batch_size": 8, "model_params": 1_000_000},
           "network": {"bandwidth": "1Gbps", "latency": "50us"},
           "run": {"steps": 6, "eval_every": 2, "target": 0.69},
           "sweep": {"method": [{"name": "diloco", "h": 2, "lr": 0.01},
                                {"name": "diloco", "h": 2, "lr": 0.03}]}}
    run_sweep(raw, tmp_path / "two", jobs=1)
    from plots.data import PlotError
    from plots.local import plot_local

    with pytest.raises(PlotError, match="two runs are both 'DiLoCo, H = 2' at 1 Gb/s and 50 µs"):
        plot_local(tmp_path / "two", tmp_path / "two.png")
    assert not (tmp_path / "two.png").exists()
