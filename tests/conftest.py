"""Shared test switches and fixtures.

``DLION_SIM_STRICT=1`` (``.ci/run`` sets it): a test that would be skipped, because an optional
data set or dependency is missing, fails instead, so CI cannot go green having run none of the
real-data tests. A test whose premise cannot hold on this machine (a permission test run as
root) says so with a reason starting with ``NOT_APPLICABLE``, and stays skipped.
"""
import os
import sys
from pathlib import Path

import pytest

STRICT = os.environ.get("DLION_SIM_STRICT", "") not in ("", "0")
NOT_APPLICABLE = "not applicable here: "


def _fail_the_skip(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    if NOT_APPLICABLE in str(reason):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped while DLION_SIM_STRICT=1 (install what it needs): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        _fail_the_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped:  # a whole module skipped (importorskip at its top)
        _fail_the_skip(report)


# --- cutting a save short after any write -----------------------------------------------------

class WriteCut(Exception):
    """The injected failure: a process dying in the middle of writing its results."""


class AtomicWrites:
    """Stands in for the atomic-write helper of ``experiments.results`` wherever it was
    imported. Records the path of every completed write (``written``); once armed with
    ``cut_after(k)`` it lets k more writes land and then fails the next one the way a kill
    would: a stray temporary file next to the target and nothing at the target itself."""

    Cut = WriteCut

    def __init__(self, real):
        self.real = real
        self.written: list[Path] = []
        self.remaining = None

    def cut_after(self, k: int | None) -> None:
        """Start a new record; fail the write after the next k (never, for None)."""
        self.written, self.remaining = [], k

    def __call__(self, path, content):
        path = Path(path)
        if self.remaining == 0:
            (path.parent / f".{path.name}.cut.tmp").write_text("partial")
            raise WriteCut(f"cut before writing {path.name}")
        if self.remaining is not None:
            self.remaining -= 1
        self.real(path, content)
        self.written.append(path)


@pytest.fixture
def atomic_writes(monkeypatch):
    """An ``AtomicWrites`` patched in for every module of the project that holds the helper."""
    import experiments.results
    import experiments.sweep  # noqa: F401  (loads every module that writes results)

    recorder = AtomicWrites(experiments.results._write_atomic)
    for name, module in list(sys.modules.items()):
        if (name.split(".")[0] in ("experiments", "sim", "models", "plots")
                and getattr(module, "_write_atomic", None) is recorder.real):
            monkeypatch.setattr(module, "_write_atomic", recorder)
    return recorder


# --- a spec refused on the command line --------------------------------------------------------

SMALL_SPEC = ('[objective]\nname = "quadratic"\ndim = 8\n[cluster]\nworkers = 4\n'
              '[run]\nsteps = 2\n')


@pytest.fixture
def refused(tmp_path, capsys):
    """``refused(["section.key=value", ...])``: run a small 4-worker spec with those
    ``--set`` overrides through the CLI, check that it exits with 2 before writing anything,
    and return its error, checked to be the project's one line."""
    from experiments.cli import main

    def run(settings, spec_text=SMALL_SPEC):
        spec = tmp_path / "spec.toml"
        spec.write_text(spec_text)
        argv = ["run", str(spec), "-o", str(tmp_path / "out")]
        for setting in settings:
            argv += ["--set", setting]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dlion-sim: error:") and "\n" not in err, err
        assert not (tmp_path / "out").exists()
        return err

    return run
