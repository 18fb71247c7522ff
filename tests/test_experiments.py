"""simulate, results on disk, sweeps and the command line, end to end."""
import json
from pathlib import Path

import numpy as np
import pytest

import experiments
from experiments.cli import main
from experiments.grid import expand
from experiments.sweep import run_sweep

SMALL = {"objective": {"name": "logistic", "samples": 512, "features": 15},
         "method": {"name": "dlion", "lr": 0.01}, "cluster": {"workers": 4, "batch_size": 8},
         "network": {"bandwidth": "1Gbps"}, "run": {"steps": 30, "eval_every": 10}}


def _same(a, b):
    assert np.array_equal(a.params, b.params)
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        assert np.array_equal(a.history[key], b.history[key], equal_nan=True), key


def test_same_seed_same_run_other_seed_other_run():
    a, b = experiments.simulate(SMALL), experiments.simulate(SMALL)
    _same(a, b)
    other = experiments.simulate({**SMALL, "run": {**SMALL["run"], "seed": 1}})
    assert not np.array_equal(a.params, other.params)
    assert not np.array_equal(a.history["train_loss"], other.history["train_loss"])


def test_keyword_form_resolves_to_the_same_spec_as_the_dict_form():
    by_keywords = experiments.simulate(objective=SMALL["objective"], method=SMALL["method"],
                                       workers=4, batch_size=8, steps=30, eval_every=10,
                                       network={"bandwidth": "1Gbps"})
    by_dict = experiments.simulate(SMALL)
    assert by_keywords.summary["spec"] == by_dict.summary["spec"]
    _same(by_keywords, by_dict)


def test_history_columns_and_summary():
    r = experiments.simulate(SMALL)
    for column in ("step", "time_s", "bits_up", "bits_down", "train_loss", "compute_s",
                   "comm_up_s", "aggregate_s", "comm_down_s", "idle_s", "eval_loss",
                   "eval_accuracy"):
        assert len(r.history[column]) == 30, column
    evaluated = ~np.isnan(r.history["eval_loss"])
    assert np.flatnonzero(evaluated).tolist() == [9, 19, 29]
    assert np.all(np.diff(r.history["time_s"]) > 0)
    assert r.summary["status"] == "completed"
    assert r.summary["final"]["loss"] == r.history["eval_loss"][-1]
    # 16 parameters -> 2 bytes of signs each way: 1 bit per parameter per direction
    assert r.summary["bits_per_param_per_step"] == {"up": 1.0, "down": 1.0, "total": 2.0}
    assert r.summary["partition"]["scheme"] == "iid"


def test_save_and_load_round_trip(tmp_path):
    r = experiments.simulate({**SMALL, "run": {**SMALL["run"], "trace": True}})
    r.save(tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["history.csv", "params.npy", "spec.toml", "summary.json", "trace.csv",
                     "trace.json"]
    back = experiments.load(tmp_path / "run")
    _same(r, back)
    assert back.summary["spec"] == r.summary["spec"]
    assert len(back.trace) == len(r.trace) and back.trace[0] == pytest.approx(r.trace[0])
    # the saved spec reproduces the run
    _same(r, experiments.simulate(tmp_path / "run" / "spec.toml"))


def test_trace_phases_tile_each_workers_step():
    r = experiments.simulate({**SMALL, "run": {**SMALL["run"], "steps": 3, "trace": True},
                              "compute": {"step_time": "1ms", "jitter": 0.5}})
    rows = [row for row in r.trace if row[0] == "worker2"]
    assert [row[1] for row in rows[:4]] == ["compute", "send", "idle", "receive"]
    # a worker's phases follow each other without gaps, step after step
    for before, after in zip(rows, rows[1:]):
        assert after[2] == pytest.approx(before[3], abs=1e-15)
    assert rows[-1][3] <= r.summary["sim_time_s"] + 1e-12


def test_target_stops_the_run_early():
    spec = {**SMALL, "run": {**SMALL["run"], "steps": 500, "eval_every": 5,
                             "target": 0.6, "target_metric": "loss"}}
    r = experiments.simulate(spec)
    assert r.summary["status"] == "target_reached"
    assert r.summary["steps"] < 500
    assert r.history["eval_loss"][-1] <= 0.6
    assert r.summary["target"]["time_s"] == r.history["time_s"][-1]


def test_divergence_ends_the_run_cleanly(tmp_path):
    r = experiments.simulate(objective={"name": "quadratic", "dim": 8, "condition": 1.0},
                             method={"name": "gsgd", "lr": 50.0, "momentum": 0.0},
                             workers=2, steps=200)
    assert r.summary["status"] == "diverged"
    assert r.summary["steps"] < 200
    r.save(tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged"


def test_sweep_expands_a_grid_and_section_variants():
    raw = {**SMALL, "sweep": {"cluster.workers": [2, 4],
                              "method": [{"name": "dlion", "aggregate": "avg"}, {"name": "glion"}]}}
    points = expand(raw)
    assert len(points) == 4
    assert {(p["cluster"]["workers"], p["method"]["name"]) for p in points} == {
        (2, "dlion"), (4, "dlion"), (2, "glion"), (4, "glion")}
    assert all(p["method"]["lr"] == 0.01 for p in points)  # base keys survive the merge


def test_sweep_skips_finished_points_and_processes_agree(tmp_path):
    raw = {**SMALL, "run": {**SMALL["run"], "steps": 10},
           "sweep": {"method.name": ["dlion", "glion"], "run.seed": [0, 1]}}
    first = run_sweep(raw, tmp_path / "one", jobs=1)
    assert [r["status"] for r in first] == ["completed"] * 4
    again = run_sweep(raw, tmp_path / "one", jobs=1)
    assert [r["status"] for r in again] == ["done before"] * 4
    parallel = run_sweep(raw, tmp_path / "two", jobs=2)
    for a, b in zip(first, parallel):
        _same(experiments.load(a["dir"]), experiments.load(b["dir"]))


def test_cli_run_plot_and_list(tmp_path, capsys):
    spec = tmp_path / "small.toml"
    spec.write_text('[objective]\nname = "logistic"\nsamples = 256\nfeatures = 7\n'
                    '[cluster]\nworkers = 2\n[run]\nsteps = 20\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "run"),
                 "--set", "method.name=glion", "--set", "network.bandwidth=10Gbps"]) == 0
    saved = experiments.load(tmp_path / "run")
    assert saved.summary["spec"]["method"]["name"] == "glion"
    assert saved.summary["spec"]["network"]["bandwidth"] == 1e10
    assert main(["plot", str(tmp_path / "run"), "-o", str(tmp_path / "fig.svg")]) == 0
    assert "simulated wall-clock time (s)" in (tmp_path / "fig.svg").read_text()
    assert main(["list", "methods"]) == 0
    listing = capsys.readouterr().out
    for name in ("lion", "dlion", "glion", "gadamw", "gsgd"):
        assert f"  {name} " in listing


# The demo's studies cut to what the demo test checks (its figures, the quickstart's four
# methods and their simulated times, the traced straggler runs): fewer steps and samples, two
# bandwidths. The bundled studies themselves are unchanged.
DEMO_CUTS = {"quickstart": {"run": {"steps": 60}},
             "tour": {"objective": {"samples": 1024},
                      "sweep": {"network.bandwidth": ["100Mbps", "100Gbps"]}},
             "stragglers": {}}


def test_demo_tour_writes_its_figures(tmp_path, capsys, monkeypatch):
    import experiments.spec
    from plots.curves import plot_curves

    read, studies = experiments.spec.load_toml, []

    def cut(path):
        raw, name = read(path), Path(path).stem
        studies.append(name)
        for section, keys in DEMO_CUTS[name].items():
            raw[section].update(keys)
        return raw

    monkeypatch.setattr(experiments.spec, "load_toml", cut)
    assert main(["demo", "-o", str(tmp_path / "demo"), "--jobs", "2"]) == 0
    assert sorted(studies) == sorted(DEMO_CUTS)  # the demo read every study through the cut
    for figure in ("quickstart.png", "bandwidth.png", "timeline.png"):
        assert (tmp_path / "demo" / figure).stat().st_size > 10_000
    runs = [p for p in (tmp_path / "demo" / "quickstart").iterdir()
            if (p / "summary.json").exists()]
    assert len(runs) == 4
    fig = plot_curves(str(tmp_path / "demo" / "quickstart"), metric="eval_loss")
    assert [ax.get_xlabel() for ax in fig.axes[:3]] == [
        "step", "simulated wall-clock time (s)", "bits sent per worker (up + down, cumulative)"]
    labels = sorted(line.get_label() for line in fig.axes[0].get_lines())
    assert labels == ["D-Lion (Avg)", "D-Lion (MaVo)", "G-AdamW", "G-Lion"]
    out = capsys.readouterr().out
    # 1-bit methods finish the same number of steps in far less simulated time
    times = {line.split()[0]: float(line.split("simulated")[1].split()[0])
             for line in out.splitlines() if "simulated" in line and "bits/param" in line}
    assert times["dlion/mavo"] * 10 < times["gadamw"]
    traced = [p for p in (tmp_path / "demo" / "stragglers").iterdir() if (p / "trace.csv").exists()]
    assert len(traced) == 2


def test_keyword_form_rejects_what_it_cannot_run():
    from sim import methods

    with pytest.raises(experiments.SpecError, match="method=3"):
        experiments.simulate(method=3, steps=1)
    with pytest.raises(experiments.SpecError, match="objective=123"):
        experiments.simulate(objective=123, steps=1)
    with pytest.raises(experiments.SpecError, match="network="):
        experiments.simulate(network=[1, 2], steps=1)
    impostor = methods.Method(**{**methods.get("dlion").__dict__, "apply": None})
    with pytest.raises(experiments.SpecError, match="already called 'dlion'"):
        experiments.simulate(method=impostor, steps=1)
    novel = methods.Method(**{**methods.get("gsgd").__dict__, "name": "gsgd_novel",
                              "defaults": {**methods.get("gsgd").defaults, "foo": 1.0}})
    with pytest.raises(experiments.SpecError, match="foo"):
        experiments.simulate(method=novel, steps=1)


def test_a_custom_method_object_runs():
    from sim import methods

    frozen = methods.Method(**{**methods.get("gsgd").__dict__, "name": "gsgd_frozen",
                               "apply": lambda x, reply, state, hp, lr: (x, state)})
    r = experiments.simulate(objective={"name": "quadratic", "dim": 8}, method=frozen, steps=3)
    start = experiments.simulate(objective={"name": "quadratic", "dim": 8}, method="gsgd",
                                 steps=1)
    assert r.summary["spec"]["method"]["name"] == "gsgd_frozen"
    assert np.all(r.history["train_loss"] == r.history["train_loss"][0])  # x never moves
    assert r.history["train_loss"][0] == start.history["train_loss"][0]


def test_a_custom_objective_object_runs_and_keeps_its_own_data():
    class Bowl:
        dim = 3

        def init(self, rng):
            return np.ones(3)

        def grads(self, params, n_workers, batch_size, rng):
            x = np.broadcast_to(params, (n_workers, 3))
            return 0.5 * (x * x).sum(axis=1), np.array(x)

        def evaluate(self, params):
            return {"loss": float(0.5 * params @ params)}

    r = experiments.simulate(objective=Bowl(), method={"name": "gsgd", "lr": 0.1}, workers=2,
                             steps=5)
    assert r.summary["spec"]["objective"] == {"name": "custom:Bowl", "dim": 3}
    assert r.summary["final"]["loss"] < 0.5 * 3
    with pytest.raises(experiments.SpecError, match="custom objective"):
        experiments.simulate(objective=Bowl(), cluster={"partition": "dirichlet"}, steps=1)


def test_saving_over_a_run_leaves_nothing_of_the_old_one(tmp_path):
    traced = experiments.simulate({**SMALL, "run": {**SMALL["run"], "steps": 3, "trace": True}})
    traced.save(tmp_path / "run")
    plain = experiments.simulate({**SMALL, "run": {**SMALL["run"], "steps": 5}})
    plain.save(tmp_path / "run")
    assert not (tmp_path / "run" / "trace.csv").exists()
    assert not (tmp_path / "run" / "trace.json").exists()
    back = experiments.load(tmp_path / "run")
    assert back.trace is None and back.summary["steps"] == 5


def _identical(a, b) -> bool:
    """Two results agree in every file a save writes."""
    return (np.array_equal(a.params, b.params) and a.summary == b.summary
            and a.trace == b.trace and a.history.keys() == b.history.keys()
            and all(np.array_equal(a.history[k], b.history[k], equal_nan=True)
                    for k in a.history))


def test_a_save_cut_after_any_write_never_looks_complete(tmp_path, atomic_writes):
    old = experiments.simulate({**SMALL, "run": {**SMALL["run"], "steps": 3, "trace": True}})
    new = experiments.simulate({**SMALL, "run": {**SMALL["run"], "steps": 5, "trace": True,
                                                  "seed": 1}})
    atomic_writes.cut_after(None)
    new.save(tmp_path / "whole")
    order = [p.name for p in atomic_writes.written]
    # every file of a run goes through the atomic writer, and summary.json comes last
    assert sorted(order) == sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert order[-1] == "summary.json" and order.count("summary.json") == 1
    saved = {}
    for k in range(len(order)):
        for before in ("empty", "old run"):
            directory = tmp_path / f"cut{k}-{before}"
            if before == "old run":
                old.save(directory)
            atomic_writes.cut_after(k)
            with pytest.raises(atomic_writes.Cut):
                new.save(directory)
            atomic_writes.cut_after(None)
            # a directory that holds a summary holds one whole run, never a mix of two
            if experiments.results.is_complete(directory):
                back = experiments.load(directory)
                assert _identical(back, old) or _identical(back, new), (k, before)
            saved[k, before] = experiments.results.is_complete(directory)
            new.save(directory)  # saving again completes it
            assert _identical(experiments.load(directory), new)
    assert not any(saved.values())  # summary.json is written last, the old one removed first


def test_the_atomic_writer_keeps_the_old_file_when_a_write_fails(tmp_path):
    from experiments.results import _write_atomic

    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        # a lone surrogate cannot be encoded: the write fails after the file was opened
        _write_atomic(target, "new\n" * 1000 + "\udc80")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left
