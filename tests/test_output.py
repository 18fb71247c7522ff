"""Results are never lost or mixed: output checks before any run, refusals, file modes, damage."""
import json
import os
import stat
import subprocess
import sys

import pytest

import experiments
from conftest import NOT_APPLICABLE
from experiments.cli import main
from experiments.sweep import run_sweep

SPEC = ('[objective]\nname = "logistic"\nsamples = 256\nfeatures = 7\n'
        '[cluster]\nworkers = 2\nbatch_size = 8\n[run]\nsteps = 4\neval_every = 2\n')
SWEEP = SPEC + '[sweep]\n"run.seed" = [0, 1]\n'


def _write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlion-sim: error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# --- run: a finished run is never replaced by another one ---------------------------------------

def test_run_refuses_a_directory_holding_a_run_of_another_spec(tmp_path, capsys):
    spec = _write(tmp_path, SPEC)
    out = str(tmp_path / "run")
    assert main(["run", spec, "-o", out, "--set", "network.bandwidth=1Gbps"]) == 0
    before = (tmp_path / "run" / "summary.json").read_text()
    capsys.readouterr()
    assert main(["run", spec, "-o", out, "--set", "network.bandwidth=10Gbps"]) == 2
    _one_line_error(capsys, "another spec", "network.bandwidth", "--force")
    assert (tmp_path / "run" / "summary.json").read_text() == before
    # the same spec again is simply run again; --force replaces another spec's run
    assert main(["run", spec, "-o", out, "--set", "network.bandwidth=1Gbps"]) == 0
    assert main(["run", spec, "-o", out, "--set", "network.bandwidth=10Gbps", "--force"]) == 0
    assert experiments.load(out).summary["spec"]["network"]["bandwidth"] == 1e10


def test_run_default_directory_is_distinct_when_set_changes_the_spec(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _write(tmp_path, SPEC, "what_if.toml")
    assert main(["run", spec]) == 0
    assert main(["run", spec, "--set", "network.bandwidth=1Gbps"]) == 0  # the same spec
    assert main(["run", spec, "--set", "network.bandwidth=10Gbps"]) == 0
    assert main(["run", spec, "--set", "network.bandwidth=100Gbps"]) == 0
    out = capsys.readouterr().out
    written = [line.split()[1] for line in out.splitlines() if line.startswith("wrote")]
    assert written[:2] == [os.path.join("runs", "what_if")] * 2
    assert len(set(written)) == 3 and all(w.startswith(os.path.join("runs", "what_if-"))
                                          for w in written[2:])
    bandwidths = sorted(experiments.load(w).summary["spec"]["network"]["bandwidth"]
                        for w in set(written))
    assert bandwidths == [1e9, 1e10, 1e11]


def test_run_refuses_a_sweep_directory_and_sweep_a_run_directory(tmp_path, capsys):
    run_spec, sweep_spec = _write(tmp_path, SPEC), _write(tmp_path, SWEEP, "sweep.toml")
    assert main(["sweep", sweep_spec, "-o", str(tmp_path / "s"), "--jobs", "1"]) == 0
    assert main(["run", run_spec, "-o", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["run", run_spec, "-o", str(tmp_path / "s")]) == 2
    _one_line_error(capsys, "holds a sweep")
    assert main(["sweep", sweep_spec, "-o", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "single run")


@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_an_interrupted_sweep_directory_is_still_a_sweep(tmp_path, capsys, monkeypatch, stop):
    # The sweep stops during its second of three points: by Ctrl-C (it still writes runs.csv,
    # then raises SweepInterrupted), or killed (nothing is written after the point began: the
    # directory holds sweep.json, written before any point runs, and the first run).
    import experiments.run
    from experiments.sweep import SweepInterrupted
    from experiments.table import read_table

    sweep_spec = _write(tmp_path, SPEC + '[sweep]\n"run.seed" = [0, 1, 2]\n', "sweep.toml")
    raw = experiments.spec.load_toml(sweep_spec)
    real = experiments.run.execute

    def stopped_at_seed_1(spec, *args, **kw):
        if spec["run"]["seed"] == 1:
            raise KeyboardInterrupt if stop == "ctrl-c" else SystemExit("killed")
        return real(spec, *args, **kw)

    monkeypatch.setattr(experiments.run, "execute", stopped_at_seed_1)
    out = tmp_path / "s"
    with pytest.raises(SweepInterrupted if stop == "ctrl-c" else SystemExit) as stopped:
        run_sweep(raw, out, jobs=1)
    monkeypatch.setattr(experiments.run, "execute", real)
    if stop == "ctrl-c":
        assert str(stopped.value).startswith("interrupted: 1 of 3 points kept, 2 cancelled")
        assert [row["run.seed"] for row in read_table(out)] == [0]
    else:
        assert not (out / "runs.csv").exists()
    assert len(json.loads((out / "sweep.json").read_text())["points"]) == 3
    capsys.readouterr()
    # still a sweep directory: a single run is refused there, and so is another study
    assert main(["run", _write(tmp_path, SPEC), "-o", str(out)]) == 2
    _one_line_error(capsys, "holds a sweep")
    other = _write(tmp_path, SPEC + '[sweep]\n"method.name" = ["dlion", "glion"]\n', "b.toml")
    assert main(["sweep", other, "-o", str(out), "--jobs", "1"]) == 2
    _one_line_error(capsys, "another study")
    # and the same sweep resumes it, keeping the finished point, to the whole sweep's table
    records = run_sweep(raw, out, jobs=1)
    assert [r["status"] for r in records] == ["done before", "completed", "completed"]
    run_sweep(raw, tmp_path / "whole", jobs=1)
    tables = [[{k: v for k, v in row.items() if k != "wall_s"} for row in read_table(d)]
              for d in (out, tmp_path / "whole")]
    assert tables[0] == tables[1]


def test_a_sweep_keeps_the_grid_order_of_points_it_no_longer_lists(tmp_path):
    # the same study run over seeds 0 to 4, then over seed 4 alone: sweep.json lists the new
    # grid first, then the earlier points in their grid order, and runs.csv follows it
    from experiments.table import read_table

    out = tmp_path / "s"
    five = experiments.spec.load_toml(_write(tmp_path, SPEC + '[sweep]\n"run.seed" = '
                                             '[0, 1, 2, 3, 4]\n'))
    run_sweep(five, out, jobs=1)
    first = json.loads((out / "sweep.json").read_text())["points"]
    run_sweep({**five, "sweep": {"run.seed": [4]}}, out, jobs=1)
    assert json.loads((out / "sweep.json").read_text())["points"] == [first[4], *first[:4]]
    assert [row["run.seed"] for row in read_table(out)] == [4, 0, 1, 2, 3]


# --- sweep: a directory holds one study ------------------------------------------------------------

def test_sweep_refuses_a_directory_of_another_study(tmp_path, capsys):
    a = _write(tmp_path, SWEEP, "a.toml")
    b = _write(tmp_path, SPEC + '[sweep]\n"method.name" = ["dlion", "glion"]\n', "b.toml")
    out = str(tmp_path / "study")
    assert main(["sweep", a, "-o", out, "--jobs", "1"]) == 0
    table = (tmp_path / "study" / "runs.csv").read_text()
    capsys.readouterr()
    assert main(["sweep", b, "-o", out, "--jobs", "1"]) == 2
    _one_line_error(capsys, "another study", "run.seed", "method.name")
    # the same keys swept over another fixed setting is another study too
    assert main(["sweep", a, "-o", out, "--set", "cluster.workers=4"]) == 2
    _one_line_error(capsys, "another study", "does not sweep")
    assert (tmp_path / "study" / "runs.csv").read_text() == table
    # growing the study along its axis is the same study; --force mixes on purpose
    grown = _write(tmp_path, SPEC + '[sweep]\n"run.seed" = [0, 1, 2]\n', "grown.toml")
    assert main(["sweep", grown, "-o", out, "--jobs", "1"]) == 0
    assert "3 runs in" in capsys.readouterr().out
    assert main(["sweep", b, "-o", out, "--jobs", "1", "--force"]) == 0


def test_a_study_grows_along_a_whole_section_axis(tmp_path, capsys):
    # method = [tables] is one axis: another method variant is the same study grown, while a
    # change outside the axis is another study
    two = _write(tmp_path, SPEC + "[sweep]\nmethod = [{name = 'dlion'}, {name = 'glion'}]\n",
                 "two.toml")
    three = _write(tmp_path, SPEC + "[sweep]\nmethod = [{name = 'dlion'}, {name = 'glion'}, "
                   "{name = 'gadamw', lr = 0.01}]\n", "three.toml")
    out = str(tmp_path / "study")
    assert main(["sweep", two, "-o", out, "--jobs", "1"]) == 0
    assert main(["sweep", three, "-o", out, "--jobs", "1"]) == 0
    assert "3 runs in" in capsys.readouterr().out
    assert main(["sweep", three, "-o", out, "--set", "cluster.workers=4"]) == 2
    _one_line_error(capsys, "another study", "does not sweep")


def test_merge_refuses_pieces_of_different_studies(tmp_path, capsys):
    a = _write(tmp_path, SWEEP, "a.toml")
    b = _write(tmp_path, SPEC + '[sweep]\n"method.name" = ["dlion", "glion"]\n', "b.toml")
    assert main(["sweep", a, "-o", str(tmp_path / "a"), "--jobs", "1"]) == 0
    assert main(["sweep", b, "-o", str(tmp_path / "b"), "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "m"), str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    _one_line_error(capsys, "different studies")
    assert not (tmp_path / "m").exists()


# --- file modes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_results_are_written_with_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        run_sweep(experiments.spec.load_toml(_write(tmp_path, SWEEP)), tmp_path / "s", jobs=1)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "s").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"runs.csv", "sweep.json", "summary.json", "history.csv", "spec.toml",
            "params.npy"} <= names
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# --- every output path is checked before any simulation starts ----------------------------------

@pytest.mark.parametrize("command", ["run", "sweep"])
def test_unwritable_outputs_are_refused_before_the_run(tmp_path, capsys, command, monkeypatch):
    import experiments.run

    def never(*args, **kwargs):
        raise AssertionError("a simulation started")

    monkeypatch.setattr(experiments.run, "execute", never)
    spec = _write(tmp_path, SPEC if command == "run" else SWEEP)
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    jobs = ["--jobs", "1"] if command == "sweep" else []
    for out, words in [(taken, ["is a file"]), (taken / "sub", ["not a directory"]),
                       ("/proc/dlion-sim-out", ["cannot write in '/proc'"])]:
        assert main([command, spec, "-o", str(out), *jobs]) == 2
        _one_line_error(capsys, *words)
    assert taken.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0,
                    reason=NOT_APPLICABLE + "root writes into read-only directories")
def test_a_read_only_directory_is_refused_before_the_run(tmp_path, capsys):
    spec = _write(tmp_path, SPEC)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["run", spec, "-o", str(locked / "run")]) == 2
    finally:
        locked.chmod(0o755)
    _one_line_error(capsys, "cannot write")


def test_plot_to_an_unwritable_place_is_one_line(tmp_path, capsys):
    spec = _write(tmp_path, SPEC)
    assert main(["run", spec, "-o", str(tmp_path / "run")]) == 0
    (tmp_path / "folder.png").mkdir()
    capsys.readouterr()
    for out, words in [("/proc/figure.png", ["cannot write in '/proc'"]),
                       (str(tmp_path / "folder.png"), ["is a directory"])]:
        assert main(["plot", str(tmp_path / "run"), "-o", out]) == 2
        _one_line_error(capsys, *words)


def test_a_directory_given_as_the_spec_is_one_line(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    _one_line_error(capsys, "is a directory")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00\x80")
    assert main(["run", str(binary)]) == 2
    _one_line_error(capsys, "not a text file")


@pytest.mark.parametrize("damage", [
    ("summary.json", lambda text: text[: len(text) // 2]),
    ("history.csv", lambda text: text[: len(text) // 2]),
    ("history.csv", lambda text: "\n".join(text.splitlines()[:3]) + "\n"),
    ("summary.json", lambda text: "[1, 2]"),
])
def test_plot_of_a_damaged_run_is_one_line_naming_the_file(tmp_path, capsys, damage):
    name, cut = damage
    spec = _write(tmp_path, SPEC)
    assert main(["run", spec, "-o", str(tmp_path / "run")]) == 0
    path = tmp_path / "run" / name
    path.write_text(cut(path.read_text()))
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run"), "-o", str(tmp_path / "f.png")]) == 2
    _one_line_error(capsys, name, "damaged")


def test_real_process_for_a_directory_spec_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", "run", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_plot_warns_when_a_sweep_is_incomplete(tmp_path, capsys):
    spec = _write(tmp_path, SPEC + '[sweep]\n"run.seed" = [0, 1, 2, 3]\n')
    out = tmp_path / "s"
    run_sweep(experiments.spec.load_toml(spec), out, jobs=1)
    manifest = json.loads((out / "sweep.json").read_text())
    for point in manifest["points"][1:]:
        (out / point / "summary.json").unlink()
    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "f.png")]) == 0
    err = capsys.readouterr().err
    assert "warning: only 1 of the 4 points" in err
