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
