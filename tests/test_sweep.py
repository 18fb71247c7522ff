"""Sweeps: zip and grid axes, shards and merge, resume, failed points, backends, the table, CLI."""
import csv
import json
import os
import sys
import tomllib

import numpy as np
import pytest

import experiments
import models
from experiments.cli import main
from experiments.spec import SECTIONS, SpecError, resolve, spec_hash
from experiments.grid import expand
from experiments.sweep import merge, parse_shard, plan, run_sweep, shard_of
from experiments.table import read_table, to_pandas

BASE = {"objective": {"name": "logistic", "samples": 256, "features": 7},
        "cluster": {"workers": 2, "batch_size": 8},
        "run": {"steps": 10, "eval_every": 5}}
ZIP = {**BASE, "sweep": {"run.seed": [0, 1],
                         "zip": {"method.name": ["dlion", "glion"], "method.lr": [0.01, 0.003]}}}


def _same_run(a, b):
    a, b = experiments.load(a), experiments.load(b)
    assert np.array_equal(a.params, b.params)
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        assert np.array_equal(a.history[key], b.history[key], equal_nan=True), key


def _measured(table):
    """The table without wall-clock seconds, the one column a re-run may change."""
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in table]


def _complete(directory):
    return sorted(p.name for p in directory.iterdir() if (p / "summary.json").exists())


# --- axes ----------------------------------------------------------------------------------------

def test_zip_lists_vary_together_and_multiply_with_the_grid():
    points = expand(ZIP)
    seen = [(p["run"]["seed"], p["method"]["name"], p["method"]["lr"]) for p in points]
    # the first axis varies slowest; a zip is one axis
    assert seen == [(0, "dlion", 0.01), (0, "glion", 0.003), (1, "dlion", 0.01),
                    (1, "glion", 0.003)]
    assert all(p["cluster"] == BASE["cluster"] for p in points)


def test_several_zip_groups_and_whole_section_tables_in_a_zip():
    raw = {**BASE, "sweep": {"zip": [
        {"method": [{"name": "dlion", "aggregate": "avg"}, {"name": "glion"}],
         "method.lr": [0.02, 0.004]},
        {"cluster.workers": [2, 4], "cluster.batch_size": [16, 8]}]}}
    seen = {(p["method"]["name"], p["method"].get("aggregate"), p["method"]["lr"],
             p["cluster"]["workers"], p["cluster"]["batch_size"]) for p in expand(raw)}
    assert seen == {("dlion", "avg", 0.02, 2, 16), ("dlion", "avg", 0.02, 4, 8),
                    ("glion", None, 0.004, 2, 16), ("glion", None, 0.004, 4, 8)}


@pytest.mark.parametrize("sweep, words", [
    ({"zip": {"method.name": ["dlion", "glion"], "method.lr": [0.1]}},
     ["'method.lr' has 1 values", "'method.name' has 2", "equal"]),
    ({"zip": {}}, ["sweep.zip", "equal length"]),
    ({"zip": []}, ["sweep.zip = []"]),
    ({"zip": {"methd.lr": [0.1]}}, ["'methd'", "did you mean 'method'"]),
    ({"zip": {"method.lr": 0.1}}, ["'method.lr'", "non-empty list"]),
    ({"method.lr": [0.1, 0.2], "zip": {"method.lr": [0.3], "run.seed": [1]}},
     ["'method.lr'", "two sweep axes"]),
    ({"method": [{"name": "glion", "lr": 0.1}], "method.lr": [0.2]},
     ["'method.lr'", "two sweep axes"]),
])
def test_bad_sweeps_name_the_key_and_what_is_allowed(sweep, words):
    with pytest.raises(SpecError) as err:
        expand({**BASE, "sweep": sweep})
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_seed_axis_gives_the_runs_of_those_seeds(tmp_path):
    raw = {**BASE, "method": {"name": "dlion", "lr": 0.01}, "sweep": {"run.seed": [0, 1, 2]}}
    records = run_sweep(raw, tmp_path, jobs=1)
    assert [row["run.seed"] for row in read_table(tmp_path)] == [0, 1, 2]
    base = {k: v for k, v in raw.items() if k != "sweep"}
    params = []
    for seed, record in zip([0, 1, 2], records):
        direct = experiments.simulate({**base, "run": {**BASE["run"], "seed": seed}})
        saved = experiments.load(record["dir"])
        assert np.array_equal(saved.params, direct.params)
        params.append(saved.params)
    assert not np.array_equal(params[0], params[1])
    assert not np.array_equal(params[1], params[2])


# --- shards and merge ----------------------------------------------------------------------------

def test_shards_partition_the_grid_exactly_once():
    raw = {**BASE, "sweep": {"run.seed": [0, 1, 2, 3, 4, 5, 6],
                             "method.name": ["dlion", "glion"]}}
    grid = {spec_hash(resolve(p)) for p in expand(raw)}
    assert len(grid) == 14
    for n in (1, 2, 3, 5, 14, 20):
        pieces = [set(shard_of(plan(raw), (i, n))) for i in range(1, n + 1)]
        assert sum(len(p) for p in pieces) == len(grid)
        assert set().union(*pieces) == grid
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
    assert shard_of(plan(raw), (2, 3)) == shard_of(plan(raw), (2, 3))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1-2", "", "1/2/3", "-1/2"])
def test_bad_shard_strings_name_the_value_and_the_form(text):
    with pytest.raises(SpecError) as err:
        parse_shard(text)
    assert repr(text) in str(err.value) and "i/n" in str(err.value)


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(" 1 / 1 ") == (1, 1)


def test_shards_merged_equal_the_whole_sweep(tmp_path):
    whole = tmp_path / "whole"
    run_sweep(ZIP, whole, jobs=1)
    run_sweep(ZIP, tmp_path / "a", jobs=1, shard=(1, 2))
    run_sweep(ZIP, tmp_path / "b", jobs=1, shard=(2, 2))
    assert len(_complete(tmp_path / "a")) == len(_complete(tmp_path / "b")) == 2

    counts = merge(tmp_path / "merged", [tmp_path / "a", tmp_path / "b"])
    assert counts == {"added": 4, "replaced": 0, "kept": 0}
    assert _measured(read_table(tmp_path / "merged")) == _measured(read_table(whole))
    for name in _complete(whole):
        _same_run(whole / name, tmp_path / "merged" / name)
    # merging again finds every run there already; moving empties the piece
    assert merge(tmp_path / "merged", [tmp_path / "a"]) == {"added": 0, "replaced": 0, "kept": 2}
    assert merge(tmp_path / "moved", [tmp_path / "b"], move=True)["added"] == 2
    assert _complete(tmp_path / "b") == [] and read_table(tmp_path / "b") == []


def test_shards_into_one_directory_need_no_merge(tmp_path):
    run_sweep(ZIP, tmp_path / "whole", jobs=1)
    run_sweep(ZIP, tmp_path / "one", jobs=1, shard=(2, 2))
    run_sweep(ZIP, tmp_path / "one", jobs=1, shard=(1, 2))
    assert _measured(read_table(tmp_path / "one")) == _measured(read_table(tmp_path / "whole"))


def test_merge_replaces_a_failed_run_by_a_finished_one(tmp_path, monkeypatch):
    import experiments.run

    real = experiments.run.execute
    monkeypatch.setattr(experiments.run, "execute", _failing_seed(real, 1))
    run_sweep(ZIP, tmp_path / "flaky", jobs=1)
    monkeypatch.setattr(experiments.run, "execute", real)
    run_sweep(ZIP, tmp_path / "good", jobs=1)

    counts = merge(tmp_path / "flaky", [tmp_path / "good"])
    assert counts == {"added": 0, "replaced": 2, "kept": 2}
    assert [row["status"] for row in read_table(tmp_path / "flaky")] == ["completed"] * 4


def test_merge_rejects_what_is_not_a_sweep(tmp_path):
    with pytest.raises(SpecError, match="is not a directory"):
        merge(tmp_path / "out", [tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="holds no finished or failed run"):
        merge(tmp_path / "out", [tmp_path / "empty"])


# --- resume and failures -------------------------------------------------------------------------

def test_resume_runs_only_the_missing_points_and_gives_the_same_table(tmp_path):
    run_sweep(ZIP, tmp_path / "whole", jobs=1)
    part = tmp_path / "part"
    first = run_sweep(ZIP, part, jobs=1, shard=(1, 2))
    done = sorted(os.path.basename(r["dir"]) for r in first)
    # what a kill leaves behind: a run directory without summary.json, and a temporary file
    missing = sorted(set(_complete(tmp_path / "whole")) - set(done))
    (part / missing[0]).mkdir()
    (part / missing[0] / "history.csv").write_text("step,time_s\n1,0.5\n")
    (part / missing[0] / ".summary.json.x.tmp").write_text("{")
    (part / "runs.csv").unlink()

    again = run_sweep(ZIP, part, jobs=1)
    status = {os.path.basename(r["dir"]): r["status"] for r in again}
    assert status == {**{h: "done before" for h in done}, **{h: "completed" for h in missing}}
    assert _measured(read_table(part)) == _measured(read_table(tmp_path / "whole"))


def test_a_sweep_cut_after_any_write_resumes_to_the_same_table(tmp_path, atomic_writes):
    raw = {**BASE, "sweep": {"run.seed": [0, 1]}}
    whole = tmp_path / "whole"
    atomic_writes.cut_after(None)
    run_sweep(raw, whole, jobs=1)
    order = [p.relative_to(whole) for p in atomic_writes.written]
    # every file of a sweep goes through the atomic writer; a run's summary.json is its last
    assert sorted(order) == sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file())
    for run in _complete(whole):
        assert [p.name for p in order if p.parent.name == run][-1] == "summary.json"
    for k in range(len(order)):
        out = tmp_path / f"cut{k}"
        atomic_writes.cut_after(k)
        with pytest.raises(atomic_writes.Cut):
            run_sweep(raw, out, jobs=1)
        atomic_writes.cut_after(None)
        done = _complete(out)
        for name in done:  # what looks finished is finished, and is the same run
            _same_run(out / name, whole / name)
        if (out / "runs.csv").exists():
            assert len(read_table(out)) == len(done)
        records = run_sweep(raw, out, jobs=1)
        assert sorted(r["status"] for r in records) == sorted(
            ["done before"] * len(done) + ["completed"] * (2 - len(done)))
        assert _measured(read_table(out)) == _measured(read_table(whole))


def _failing_seed(execute, seed):
    def execute_or_fail(spec, *args, **kw):
        if spec["run"]["seed"] == seed:
            raise RuntimeError(f"injected failure at seed {seed}")
        return execute(spec, *args, **kw)
    return execute_or_fail


def test_a_failed_point_is_recorded_and_the_others_finish(tmp_path, monkeypatch):
    import experiments.run

    real = experiments.run.execute
    monkeypatch.setattr(experiments.run, "execute", _failing_seed(real, 1))
    records = run_sweep(ZIP, tmp_path, jobs=1)
    assert [r["status"] for r in records] == [
        "completed", "completed", "failed: RuntimeError: injected failure at seed 1",
        "failed: RuntimeError: injected failure at seed 1"]
    error = json.loads((tmp_path / os.path.basename(records[2]["dir"]) / "error.json").read_text())
    assert error["error"] == "RuntimeError: injected failure at seed 1"
    assert error["spec"]["run"]["seed"] == 1 and error["spec"]["method"]["name"] == "dlion"
    table = read_table(tmp_path)
    assert [(r["run.seed"], r["status"]) for r in table] == [
        (0, "completed"), (0, "completed"), (1, "failed"), (1, "failed")]
    assert table[2]["error"] == "RuntimeError: injected failure at seed 1"
    assert table[2]["final.loss"] is None and table[0]["error"] is None

    # a re-run tries the failed points again and leaves no stale error behind
    monkeypatch.setattr(experiments.run, "execute", real)
    again = run_sweep(ZIP, tmp_path, jobs=1)
    assert [r["status"] for r in again] == ["done before"] * 2 + ["completed"] * 2
    assert not list(tmp_path.glob("*/error.json"))
    assert [r["status"] for r in read_table(tmp_path)] == ["completed"] * 4


# --- backends ------------------------------------------------------------------------------------

def test_one_and_two_processes_give_identical_runs(tmp_path):
    run_sweep(ZIP, tmp_path / "one", jobs=1)
    run_sweep(ZIP, tmp_path / "two", jobs=2)
    names = _complete(tmp_path / "one")
    assert len(names) == 4 and names == _complete(tmp_path / "two")
    for name in names:
        _same_run(tmp_path / "one" / name, tmp_path / "two" / name)
    assert _measured(read_table(tmp_path / "one")) == _measured(read_table(tmp_path / "two"))


def test_a_dask_local_cluster_gives_identical_runs(tmp_path):
    pytest.importorskip("dask.distributed", reason="dask is an optional extra: "
                        "pip install 'dlion-sim[dask]'")
    run_sweep(ZIP, tmp_path / "one", jobs=1)
    records = run_sweep(ZIP, tmp_path / "dask", jobs=2, dask="local")
    assert [r["status"] for r in records] == ["completed"] * 4
    names = _complete(tmp_path / "one")
    assert names == _complete(tmp_path / "dask")
    for name in names:
        _same_run(tmp_path / "one" / name, tmp_path / "dask" / name)
    assert _measured(read_table(tmp_path / "one")) == _measured(read_table(tmp_path / "dask"))


def test_a_sweep_runs_on_a_dask_scheduler_by_address(tmp_path):
    distributed = pytest.importorskip("dask.distributed", reason="dask is an optional extra: "
                                      "pip install 'dlion-sim[dask]'")
    raw = {**BASE, "sweep": {"run.seed": [0, 1]}}
    run_sweep(raw, tmp_path / "one", jobs=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        records = run_sweep(raw, tmp_path / "remote", dask=cluster.scheduler_address)
        # the sweep closes only its client: the scheduler it was given keeps running
        with distributed.Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result() == 3
    assert [r["status"] for r in records] == ["completed"] * 2
    for name in _complete(tmp_path / "one"):
        _same_run(tmp_path / "one" / name, tmp_path / "remote" / name)


# --- the table -----------------------------------------------------------------------------------

def test_table_columns_and_values(tmp_path):
    records = run_sweep(ZIP, tmp_path, jobs=1)
    with open(tmp_path / "runs.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert len(rows) == 5 and all(len(row) == len(header) for row in rows)
    seen = list(dict.fromkeys(
        f"{section}.{key}" for r in records for section, table in r["spec"].items()
        for key in table))
    spec_columns = [c for section in SECTIONS for c in seen if c.startswith(f"{section}.")]
    assert header[:len(spec_columns)] == spec_columns
    assert header[len(spec_columns):] == [
        "status", "steps", "sim_time_s", "wall_s", "final.train_loss", "final.loss",
        "final.test_loss", "final.accuracy", "final.gap", "bits_per_param_per_step.total",
        "bits_per_param_per_step.up", "bits_per_param_per_step.down",
        "steady_bits_per_param_per_step.total", "steady_bits_per_param_per_step.up",
        "steady_bits_per_param_per_step.down", "peak_bits_per_param.total",
        "peak_bits_per_param.up", "peak_bits_per_param.down", "target.time_s", "collective",
        "participation.aggregated",
        "participation.late", "participation.lost", "participation.down",
        "participation.abandoned", "participation.empty", "participation.adversarial", "error",
        "dir"]

    table = read_table(tmp_path)
    assert [(r["run.seed"], r["method.name"], r["method.lr"]) for r in table] == [
        (0, "dlion", 0.01), (0, "glion", 0.003), (1, "dlion", 0.01), (1, "glion", 0.003)]
    # D-Lion MaVo sends one bit each way; G-Lion a float32 each way
    assert [(r["bits_per_param_per_step.up"], r["bits_per_param_per_step.total"])
            for r in table] == [(1.0, 2.0), (32.0, 64.0)] * 2
    # neither has a warm-up of its own: the steady state is the whole run
    assert all(r["steady_bits_per_param_per_step.total"] == r["bits_per_param_per_step.total"]
               for r in table)
    assert tomllib.loads(f"v = {table[0]['method.betas']}")["v"] == [0.9, 0.99]
    objective = models.make("logistic", samples=256, features=7)
    for row in table:
        assert row["status"] == "completed" and row["steps"] == 10
        assert row["network.bandwidth"] == 1e9 and row["cluster.workers"] == 2
        params = experiments.load(tmp_path / row["dir"]).params
        assert row["final.loss"] == pytest.approx(objective.evaluate(params)["loss"], rel=1e-12)


def test_to_pandas(tmp_path, monkeypatch):
    run_sweep({**BASE, "sweep": {"run.seed": [0, 1]}}, tmp_path, jobs=1)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        to_pandas(tmp_path)
    monkeypatch.undo()
    pytest.importorskip("pandas", reason="pandas is not installed")
    frame = to_pandas(tmp_path / "runs.csv")
    assert list(frame["run.seed"]) == [0, 1]
    assert list(frame.columns) == list(read_table(tmp_path)[0])


# --- command line --------------------------------------------------------------------------------

def _spec(tmp_path, sweep):
    path = tmp_path / "spec.toml"
    path.write_text('[objective]\nname = "logistic"\nsamples = 256\nfeatures = 7\n'
                    '[cluster]\nworkers = 2\n[run]\nsteps = 10\n' + sweep)
    return str(path)


def test_cli_sweep_shard_and_merge(tmp_path, capsys):
    spec = _spec(tmp_path, '[sweep]\n"run.seed" = [0, 1, 2]\n'
                           '[sweep.zip]\n"method.name" = ["dlion", "gadamw"]\n'
                           '"method.lr" = [0.01, 0.001]\n')
    for i in (1, 2):
        assert main(["sweep", spec, "-o", str(tmp_path / f"s{i}"), "--jobs", "1",
                     "--shard", f"{i}/2"]) == 0
    assert main(["merge", str(tmp_path / "all"), str(tmp_path / "s1"), str(tmp_path / "s2")]) == 0
    assert "6 runs added" in capsys.readouterr().out
    assert main(["sweep", spec, "-o", str(tmp_path / "all"), "--jobs", "2"]) == 0
    assert f"6 runs in {tmp_path / 'all'} (6 already done, 0 failed)" in capsys.readouterr().out
    table = read_table(tmp_path / "all")
    assert [(r["run.seed"], r["method.name"]) for r in table] == [
        (s, m) for s in (0, 1, 2) for m in ("dlion", "gadamw")]


def test_cli_exit_1_when_a_point_fails(tmp_path, capsys):
    # a racks topology without rack_size passes validation but fails when the network is built
    spec = _spec(tmp_path, '[sweep]\n"network.topology" = ["star", "racks"]\n')
    assert main(["sweep", spec, "-o", str(tmp_path / "out"), "--jobs", "2"]) == 1
    captured = capsys.readouterr()
    assert "2 runs in" in captured.out and "1 failed" in captured.out
    assert "rack_size" in captured.err
    assert [r["status"] for r in read_table(tmp_path / "out")] == ["completed", "failed"]


@pytest.mark.parametrize("argv, words", [
    (["--shard", "2/1"], ["'2/1'", "i/n"]),
    (["--jobs", "0"], ["--jobs 0", ">= 1"]),
])
def test_cli_bad_options_exit_2(tmp_path, capsys, argv, words):
    spec = _spec(tmp_path, '[sweep]\n"run.seed" = [0, 1]\n')
    assert main(["sweep", spec, "-o", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for word in words:
        assert word in err
    assert not (tmp_path / "out").exists()


def test_cli_unequal_zip_exits_2(tmp_path, capsys):
    spec = _spec(tmp_path, '[sweep.zip]\n"method.name" = ["dlion", "glion"]\n'
                           '"method.lr" = [0.01]\n')
    assert main(["sweep", spec, "-o", str(tmp_path / "out")]) == 2
    assert "'method.lr' has 1 values but 'method.name' has 2" in capsys.readouterr().err


def test_cli_dask_without_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    monkeypatch.setitem(sys.modules, "distributed", None)
    spec = _spec(tmp_path, '[sweep]\n"run.seed" = [0, 1]\n')
    assert main(["sweep", spec, "-o", str(tmp_path / "out"), "--dask", "local"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'dlion-sim[dask]'" in err
    assert not (tmp_path / "out").exists()


def test_cli_merge_of_nothing_exits_2(tmp_path, capsys):
    assert main(["merge", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
