"""The DLION_SIM_STRICT switch of conftest.py: skips become failures, nothing else changes."""
import os
import subprocess
import sys
from pathlib import Path

CASES = '''
import pytest

@pytest.mark.skipif(True, reason="data set absent")
def test_marked_skip():
    pass

def test_missing_dependency():
    pytest.importorskip("a_module_that_is_not_installed")

@pytest.mark.skipif(True, reason="not applicable here: a root-only premise")
def test_not_applicable():
    pass

@pytest.mark.xfail(reason="expected to fail", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
'''


def _run_cases(tmp_path, strict: str):
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {**os.environ, "DLION_SIM_STRICT": strict,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-rfEsx",
                           "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)


def test_strict_mode_turns_skips_into_failures(tmp_path):
    strict = _run_cases(tmp_path, "1")
    assert strict.returncode == 1, strict.stdout
    # a skip at setup (a skipif mark) is reported as an error, one in the test as a failure
    # ... except one whose premise cannot hold here (NOT_APPLICABLE), which stays skipped
    assert strict.stdout.strip().splitlines()[-1].startswith(
        "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error in"), strict.stdout
    for reason in ("data set absent", "could not import 'a_module_that_is_not_installed'"):
        assert f"skipped while DLION_SIM_STRICT=1 (install what it needs): Skipped: {reason}" \
            in strict.stdout
    relaxed = _run_cases(tmp_path, "0")
    assert relaxed.returncode == 0, relaxed.stdout
    assert "3 skipped" in relaxed.stdout.strip().splitlines()[-1]
