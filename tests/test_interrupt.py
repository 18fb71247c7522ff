"""Ctrl-C and kills during a sweep, with real processes and signals: no traceback, no hang.

The sweep has two quick points and two that would run for many minutes, so when the quick ones
are finished the slow ones are certainly in progress. Timeouts only catch a hang; nothing here
asserts how long anything took.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPEC = ('[objective]\nname = "quadratic"\n[method]\nname = "gadamw"\n'
        '[cluster]\nworkers = 4\nbatch_size = 4\n[run]\neval_every = 0\n'
        '[sweep]\n"run.steps" = [5, 1000000]\n"run.seed" = [0, 1]\n')
HANG = 60  # seconds after which a process that should have ended counts as hung


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def started():
    """Processes a test started; any still alive at its end (a failed test) are killed."""
    pids = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _start(tmp_path, started):
    spec = tmp_path / "slow.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "sweep", str(spec), "-o",
                             str(out), "--jobs", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    started.append(proc.pid)
    finished = lambda: len(list(out.glob("*/summary.json"))) >= 2  # noqa: E731
    _wait_until(lambda: finished() or proc.poll() is not None, "the quick points")
    assert proc.poll() is None, proc.communicate()
    workers = _children(proc.pid)
    started.extend(workers)
    assert len(workers) >= 2
    return proc, out, workers


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Error" not in err, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_cancels_the_points_in_progress_and_keeps_the_finished(tmp_path, started):
    proc, out, workers = _start(tmp_path, started)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole process group
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130
    _no_traceback(err)
    assert err.strip().splitlines()[-1] == ("dlion-sim: interrupted: 2 of 4 points kept, "
                                            "2 cancelled; run the same command again to resume")
    _wait_until(lambda: not any(map(_alive, workers)), "the workers to exit")
    assert len(list(out.glob("*/summary.json"))) == 2
    assert len((out / "runs.csv").read_text().splitlines()) == 3  # header + the kept points


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_second_ctrl_c_exits_at_once(tmp_path, started):
    proc, out, workers = _start(tmp_path, started)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130
    _no_traceback(err)
    assert err.strip().splitlines()[-1].startswith("dlion-sim: interrupted")
    _wait_until(lambda: not any(map(_alive, workers)), "the workers to exit")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_sweep_is_killed(tmp_path, started):
    proc, out, workers = _start(tmp_path, started)
    proc.kill()
    proc.communicate(timeout=HANG)
    _wait_until(lambda: not any(map(_alive, workers)), "the workers of a killed sweep to exit")


RUN_SPEC = ('[objective]\nname = "quadratic"\n[method]\nname = "dlion"\n'
            '[cluster]\nworkers = 4\nbatch_size = 4\n[run]\nsteps = 1000000\neval_every = 0\n')


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (s, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_during_run_keeps_the_steps_it_computed(tmp_path, started):
    """Ctrl-C in `dlion-sim run`: the run ends after its current step, writes what it computed
    (summary status 'interrupted', one history row per step done) and says where, in one line."""
    import json

    spec = tmp_path / "long.toml"
    spec.write_text(RUN_SPEC)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "run", str(spec), "-o",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    started.append(proc.pid)
    # well past start-up (imports take well under a second of CPU): the steps are running
    _wait_until(lambda: proc.poll() is not None or _cpu_seconds(proc.pid) > 3.0,
                "the run to be under way")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130
    _no_traceback(err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlion-sim: interrupted after step "), err
    summary = json.loads((out / "summary.json").read_text())
    done = summary["steps"]
    assert summary["status"] == "interrupted" and 0 < done < 1000000
    assert f"step {done} of 1000000" in lines[0] and str(out) in lines[0]
    assert len((out / "history.csv").read_text().splitlines()) == done + 1  # header + steps


def test_a_stopped_run_returns_what_it_computed():
    """execute(stop=..., keep_when_stopped=True): exactly the steps before the stop, and the
    same numbers as a run of that many steps."""
    from experiments import resolve, simulate
    from experiments.run import execute

    raw = {"objective": {"name": "quadratic", "dim": 8}, "cluster": {"workers": 4},
           "run": {"steps": 50, "eval_every": 0}}
    asked = []
    stopped = execute(resolve(raw), stop=lambda: len(asked) >= 6 or asked.append(1),
                      keep_when_stopped=True)
    assert stopped.summary["status"] == "interrupted" and stopped.summary["steps"] == 6
    short = simulate({**raw, "run": {"steps": 6, "eval_every": 0}}, progress=False)
    assert (stopped.params == short.params).all()
    assert list(stopped.history["time_s"]) == list(short.history["time_s"])
