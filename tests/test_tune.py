"""[tune]: every value tried at every point of a sweep, each setting and method kept at its best.

The winners are re-derived here from the runs' own summary.json files, independently of
experiments.tune: the smallest time to target, a run that never reaches it losing to any that
does, then the final metric.
"""
import json

import pytest

from experiments.cli import main
from experiments.grid import expand, pin
from experiments.spec import SpecError, resolve, spec_hash, to_toml
from experiments.sweep import run_sweep
from experiments.table import read_table
from experiments.tune import tune_table
from plots.data import load_runs
from plots.summary_table import format_table, summary_table

BASE = {"objective": {"name": "logistic", "samples": 256, "features": 7},
        "cluster": {"workers": 2, "batch_size": 8},
        "network": {"transport": "fluid"},
        "run": {"steps": 20, "eval_every": 5, "target": 0.6},
        "sweep": {"method.name": ["dlion", "gadamw"]}}
INSIDE = [0.03, 0.3, 3.0]   # on this problem both methods are fastest at 0.3: inside the grid
EDGE = [0.003, 0.03, 0.3]   # ... and here the fastest is the largest value tried


def _spec(lrs, **tune):
    return {**BASE, "tune": {"method.lr": lrs, **tune}}


def _rank(summary):
    """Smaller is better: reached before not, then the time, then the final loss."""
    time = (summary.get("target") or {}).get("time_s")
    return (time is None, time or 0.0, summary["final"]["loss"])


def _expected(directory):
    """(method name -> winning lr, winning run dirs) from the summaries alone."""
    summaries = [json.loads(p.read_text()) | {"dir": p.parent.name}
                 for p in directory.glob("*/summary.json")]
    winners = {}
    for name in {s["spec"]["method"]["name"] for s in summaries}:
        best = min((s for s in summaries if s["spec"]["method"]["name"] == name), key=_rank)
        winners[name] = (best["spec"]["method"]["lr"], best["dir"])
    return winners


@pytest.fixture(scope="module")
def inside(tmp_path_factory):
    out = tmp_path_factory.mktemp("inside")
    spec = out / "spec.toml"
    spec.write_text(to_toml(_spec(INSIDE)))
    return out / "sweep", spec


def test_every_value_runs_at_every_point_and_the_winners_are_the_argmin(inside, capsys):
    out, spec = inside
    assert main(["sweep", str(spec), "-o", str(out), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err  # the best is inside the grid: no edge warning
    assert len(list(out.glob("*/summary.json"))) == 2 * len(INSIDE)
    expected = _expected(out)
    assert {name: lr for name, (lr, _) in expected.items()} == {"dlion": 0.3, "gadamw": 0.3}
    tune = json.loads((out / "tune.json").read_text())
    assert tune["keys"] == ["method.lr"] and tune["objective"] == "time_to_target"
    assert len(tune["groups"]) == 2
    for group in tune["groups"]:
        lr, digest = expected[group["method"]]
        assert group["best"] == {"method.lr": lr}
        assert group["best_dirs"] == [digest]
        assert group["tried"] == {"method.lr": INSIDE}
        assert group["edge"] == []
        assert [c["values"]["method.lr"] for c in group["candidates"]] == INSIDE
    rows = read_table(out)
    best = {digest for _, digest in expected.values()}
    assert [r["tuned"] for r in rows] == ["best" if r["dir"] in best else "tried" for r in rows]


def test_load_runs_and_the_summary_default_to_the_winners(inside):
    out, _ = inside
    expected = _expected(out)
    runs = load_runs(out)
    assert sorted((r.summary["spec"]["method"]["name"], r.summary["spec"]["method"]["lr"])
                  for r in runs) == sorted((n, lr) for n, (lr, _) in expected.items())
    assert len(load_runs(out, tuned="all")) == 2 * len(INSIDE)
    table = summary_table(out)
    assert len(table.rows) == 2
    text = format_table(table)
    assert "D-Lion (MaVo) lr=0.3 (tuned)" in text and "G-AdamW lr=0.3 (tuned)" in text
    assert len(summary_table(out, tuned="all").rows) == 2 * len(INSIDE)


def test_a_best_value_at_the_edge_of_its_grid_is_a_warning_once_per_group(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(to_toml(_spec(EDGE)))
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out"), "--jobs", "1"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 2
    for name, warning in zip(("dlion", "gadamw"), sorted(warnings)):
        assert f"method.lr of {name}" in warning and "0.3" in warning and "largest" in warning
    tune = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert all(g["edge"] == ["method.lr"] and g["best"] == {"method.lr": 0.3}
               for g in tune["groups"])


def test_the_final_objective_ranks_by_the_final_metric(tmp_path):
    raw = _spec(INSIDE, objective="final")
    raw["run"] = {k: v for k, v in raw["run"].items() if k != "target"}  # runs all 20 steps
    run_sweep(raw, tmp_path, jobs=1)
    tune = json.loads((tmp_path / "tune.json").read_text())
    for group in tune["groups"]:
        finals = {c["values"]["method.lr"]: c["final_loss"][0] for c in group["candidates"]}
        assert group["best"]["method.lr"] == min(finals, key=finals.get)


def test_tuned_keys_vary_fastest_and_pinning_one_removes_it():
    points = expand(_spec(INSIDE))
    assert [(p["method"]["name"], p["method"]["lr"]) for p in points] == \
        [(n, lr) for n in ("dlion", "gadamw") for lr in INSIDE]
    assert "tune" not in pin(_spec(INSIDE), {"method.lr"})
    assert len({spec_hash(resolve(p)) for p in points}) == 6


@pytest.mark.parametrize("tune, words", [
    ({"method.lrr": [0.1]}, ["'method.lrr'", "'lr'"]),
    ({"methd.lr": [0.1]}, ["'methd.lr'", "method"]),
    ({"method.lr": []}, ["'method.lr'", "non-empty list"]),
    ({"method.lr": 0.1}, ["'method.lr'", "non-empty list"]),
    ({"method.lr": [0.1], "objective": "fastest"}, ["'fastest'", "'time_to_target'", "'final'"]),
    ({"objective": "final"}, ["no key to tune"]),
    ({"method.name": ["dlion"]}, ["'method.name'", "also swept"]),
])
def test_bad_tune_input_is_one_clear_line(tune, words):
    with pytest.raises(SpecError) as err:
        tune_table({**BASE, "tune": tune})
    message = str(err.value)
    assert "\n" not in message
    assert all(w in message for w in words), message


def test_the_cli_names_bad_input_in_one_line_and_run_points_to_sweep(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(to_toml({**BASE, "tune": {"method.lr": []}}))
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tune.'method.lr' = []" in err[0]
    raw = {k: v for k, v in _spec(INSIDE).items() if k != "sweep"}
    spec.write_text(to_toml(raw))
    assert main(["run", str(spec), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[tune]" in err[0] and "dlion-sim sweep" in err[0]
    raw["run"] = {"steps": 20}  # time to target without a target cannot rank the runs
    spec.write_text(to_toml(raw))
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert "needs run.target" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
