"""`dlion-sim summary`: the table's numbers against the runs' own summary.json files, the
speed-up against ratios computed here, the CSV read back, and bad input as one line."""
import csv
import json
import shutil

import pytest

from experiments.cli import main
from experiments.sweep import run_sweep
from plots.summary_table import summary_table

METHODS = [{"name": "dlion", "aggregate": "mavo", "lr": 0.003}, {"name": "gadamw", "lr": 0.01}]
BANDWIDTHS = ["1Gbps", "10Gbps"]
SPEC = {
    "objective": {"name": "logistic", "samples": 1024, "features": 15},
    "cluster": {"workers": 4, "batch_size": 32, "model_params": 25_600_000},
    "network": {"latency": "50us", "transport": "fluid"},
    "compute": {"step_time": "100ms"},
    "run": {"steps": 40, "eval_every": 5, "seed": 0, "target": 0.6},
    "sweep": {"method": METHODS, "network.bandwidth": BANDWIDTHS},
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("summary") / "sweep"
    run_sweep(SPEC, out, jobs=1)
    return out


def _summaries(directory):
    """(bandwidth in bit/s, method key) -> summary.json, read here independently."""
    out = {}
    for file in directory.glob("*/summary.json"):
        s = json.loads(file.read_text())
        m = s["spec"]["method"]
        key = "dlion/mavo" if m["name"] == "dlion" else m["name"]
        out[s["spec"]["network"]["bandwidth"], key] = s
    return out


def _rows(text):
    """The table's data rows, split on runs of two or more spaces."""
    import re

    lines = text.splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:6]]


def test_times_and_speed_ups_are_the_summaries(sweep_dir, capsys):
    truth = _summaries(sweep_dir)
    assert len(truth) == 4 and all(s["target"]["time_s"] for s in truth.values())
    table = summary_table(sweep_dir)
    assert table.keys == ["network.bandwidth"] and table.baseline == "gadamw"
    assert [(r.setting["network.bandwidth"], r.answer.key) for r in table.rows] == [
        (1e9, "dlion/mavo"), (1e9, "gadamw"), (1e10, "dlion/mavo"), (1e10, "gadamw")]
    for row in table.rows:
        s = truth[row.setting["network.bandwidth"], row.answer.key]
        base = truth[row.setting["network.bandwidth"], "gadamw"]
        assert row.answer.time_s == s["target"]["time_s"]
        assert row.target_step == s["target"]["step"]
        assert row.final == s["final"]["loss"]
        assert row.bits == s["steady_bits_per_param_per_step"]["total"]
        assert row.collective == s["collective"]
        assert row.speedup == (base["target"]["time_s"] / s["target"]["time_s"], False)

    assert main(["summary", str(sweep_dir)]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    for column in ("bandwidth", "method", "time to target", "steps", "final eval loss",
                   "bits/param/step", "collective", "speed-up over G-AdamW"):
        assert column in header
    rows = _rows(text)
    assert [r[:2] for r in rows] == [["1 Gb/s", "D-Lion (MaVo)"], ["1 Gb/s", "G-AdamW"],
                                     ["10 Gb/s", "D-Lion (MaVo)"], ["10 Gb/s", "G-AdamW"]]
    dlion, gadamw = truth[1e9, "dlion/mavo"], truth[1e9, "gadamw"]
    ratio = gadamw["target"]["time_s"] / dlion["target"]["time_s"]
    assert rows[0][-1] == f"{ratio:.3g}x" and rows[1][-1] == "1x"
    assert rows[0][-2] == dlion["collective"]
    assert rows[1][3] == str(gadamw["target"]["step"])
    # aligned: every data row starts its method column where the header does
    start = header.index("method")
    assert all(line[start - 2:start] == "  " and line[start] != " "
               for line in text.splitlines()[2:6])


def test_a_baseline_that_never_reached_the_target_gives_a_lower_bound(sweep_dir, tmp_path,
                                                                        capsys):
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    truth = _summaries(copy)
    slow = truth[1e9, "gadamw"]
    slow["target"].update(time_s=None, step=None)
    slow["status"] = "done"
    file = next(f for f in copy.glob("*/summary.json")
                if json.loads(f.read_text())["spec"] == slow["spec"])
    file.write_text(json.dumps(slow))
    dlion = truth[1e9, "dlion/mavo"]
    row = next(r for r in summary_table(copy).rows
               if r.answer.key == "dlion/mavo" and r.setting["network.bandwidth"] == 1e9)
    assert row.speedup == (slow["sim_time_s"] / dlion["target"]["time_s"], True)
    assert main(["summary", str(copy)]) == 0
    text = capsys.readouterr().out
    rows = _rows(text)
    assert rows[0][-1] == f">{slow['sim_time_s'] / dlion['target']['time_s']:.3g}x"
    assert rows[1][2].startswith("not reached")
    assert "did not reach the target" in text


def test_another_baseline_by_key_or_name(sweep_dir):
    truth = _summaries(sweep_dir)
    for name in ("dlion/mavo", "D-Lion (MaVo)", "d-lion (mavo)"):
        table = summary_table(sweep_dir, baseline=name)
        assert table.baseline == "dlion/mavo"
        for row in table.rows:
            bandwidth = row.setting["network.bandwidth"]
            expected = truth[bandwidth, "dlion/mavo"]["target"]["time_s"] / row.answer.time_s
            assert row.speedup == (expected, False)


def test_csv_round_trip(sweep_dir, tmp_path, capsys):
    out = tmp_path / "deep" / "table.csv"
    assert main(["summary", str(sweep_dir), "--csv", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    truth = _summaries(sweep_dir)
    assert len(rows) == 4
    for row in rows:
        s = truth[float(row["network.bandwidth"]), row["method_key"]]
        base = truth[float(row["network.bandwidth"]), "gadamw"]
        assert float(row["time_to_target_s"]) == s["target"]["time_s"]  # every bit
        assert int(row["steps_to_target"]) == s["target"]["step"]
        assert float(row["sim_time_s"]) == s["sim_time_s"]
        assert float(row["final_loss"]) == s["final"]["loss"]
        assert float(row["bits_per_param_per_step"]) == \
            s["steady_bits_per_param_per_step"]["total"]
        assert row["collective"] == s["collective"]
        assert float(row["speedup"]) == base["target"]["time_s"] / s["target"]["time_s"]
        assert row["speedup_is_bound"] == "false"
    assert {r["method"] for r in rows} == {"D-Lion (MaVo)", "G-AdamW"}
    # a per-step method's peak step is its steady step: no peak column on the terminal
    assert all(float(r["peak_bits_per_param"]) == float(r["bits_per_param_per_step"])
               for r in rows)
    assert not summary_table(sweep_dir).shows_peak


def test_a_local_update_method_shows_its_peak(tmp_path, capsys):
    # DiLoCo with h = 4 sends 32 bits each way every 4th step: 16 bits per step on average,
    # 64 in its sending steps; 2 fragments halve the peak, not the average
    spec = {**SPEC, "run": {**SPEC["run"], "steps": 8, "target": None},
            "sweep": {"method": [{"name": "diloco", "h": 4},
                                 {"name": "diloco", "h": 4, "fragments": 2}]}}
    spec["network"] = {**SPEC["network"], "collective": "ring", "bandwidth": "10Gbps"}
    run_sweep(spec, tmp_path / "local", jobs=1)
    table = summary_table(tmp_path / "local")
    assert table.shows_peak
    assert sorted((r.bits, r.peak) for r in table.rows) == [(16.0, 32.0), (16.0, 64.0)]
    assert main(["summary", str(tmp_path / "local")]) == 0
    text = capsys.readouterr().out
    assert "peak bits/param" in text.splitlines()[0]
    assert sorted(row[-2] for row in _rows(text)[:2]) == ["32", "64"]


def test_a_single_run_directory(sweep_dir, capsys):
    run = next(sweep_dir.glob("*/summary.json")).parent
    assert main(["summary", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("method")  # no setting columns for one run
    assert len([line for line in lines[2:] if not line.startswith(("target", "speed-up"))]) == 1


@pytest.mark.parametrize("args,message", [
    (["missing"], "no such directory"),
    (["empty"], "holds no finished runs"),
    (["SWEEP", "--baseline", "sgd"], "--baseline sgd: no run of that method here"),
])
def test_bad_input_is_one_line_and_exit_2(sweep_dir, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    argv = [str(sweep_dir) if a == "SWEEP" else str(tmp_path / a) if a in ("missing", "empty")
            else a for a in args]
    assert main(["summary", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dlion-sim: error: ") and message in err[0]
    assert "Traceback" not in captured.err and captured.out == ""
