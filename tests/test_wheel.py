"""The package as a pip user gets it: the wheel built from the tracked files, installed into a
fresh virtual environment and run from an empty directory.

The fresh environment sees this environment's third-party packages (numpy, scipy, ...) through
a path file, so nothing is downloaded, but not the project itself: this checkout's editable
install is hooked in by a path file of its own, which Python reads only in a site directory.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sim", "models", "experiments", "plots")


def _tracked_files() -> list[str]:
    """The files of this checkout that a clean clone holds (git), or the package sources."""
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(ROOT)) for top in (*PACKAGES, "pyproject.toml", "README.md")
                  for p in ([ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts]
    return [f for f in listed if (ROOT / f).is_file()]


def _run(command, cwd, env=None, timeout=600):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the tracked files (so an untracked file cannot help)."""
    source = tmp_path_factory.mktemp("source")
    for name in _tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(dist), str(source)], cwd=source)
    (built,) = dist.glob("dlion_sim-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """(bin directory of a fresh venv with the wheel installed, environment to run it in)."""
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    python = bin_dir / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=env_dir).strip()
    here = sysconfig.get_paths()
    (Path(site) / "third_party.pth").write_text(f"{here['purelib']}\n{here['platlib']}\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
         cwd=env_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    return bin_dir, env


def test_the_wheel_holds_every_module_and_bundled_study(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [f for f in _tracked_files() if f.split("/")[0] in PACKAGES
              and f.endswith((".py", ".toml"))]
    assert wanted and not [f for f in wanted if f not in names]


def test_the_installed_package_runs_from_an_empty_directory(installed, tmp_path):
    bin_dir, env = installed
    cli = str(bin_dir / "dlion-sim")
    empty = tmp_path / "empty"
    empty.mkdir()
    # the dependencies the wheel declares are all there (nothing missing, nothing in conflict)
    _run([str(bin_dir / "python"), "-m", "pip", "check"], cwd=empty, env=env)
    where = _run([str(bin_dir / "python"), "-c", "import sim; print(sim.__file__)"], empty, env)
    assert where.startswith(str(bin_dir.parent)), where  # the wheel's copy, not this checkout
    from sim import __version__

    assert _run([cli, "--version"], empty, env).strip() == f"dlion-sim {__version__}"
    assert "usage: dlion-sim" in _run([cli, "--help"], empty, env)
    assert "dlion" in _run([cli, "list", "methods"], empty, env)
    _run([cli, "run", "quickstart", "--set", "method.name=gadamw", "--set", "run.steps=5",
          "-o", "one"], empty, env)
    assert (empty / "one" / "summary.json").is_file()
    code = ("import experiments, warnings; warnings.simplefilter('ignore'); "
            "r = experiments.simulate('workers', steps=3); print(r.summary['steps'])")
    assert _run([str(bin_dir / "python"), "-c", code], empty, env).strip() == "3"
    _run([cli, "plot", "one", "--kind", "curves", "-o", "curves.png"], empty, env)
    assert (empty / "curves.png").stat().st_size > 0


def test_the_installed_demo_writes_its_figures(installed, tmp_path):
    bin_dir, env = installed
    _run([str(bin_dir / "dlion-sim"), "demo", "-o", "tour", "--jobs", "2"], tmp_path, env)
    for figure in ("quickstart.png", "bandwidth.png", "timeline.png"):
        assert (tmp_path / "tour" / figure).stat().st_size > 0
