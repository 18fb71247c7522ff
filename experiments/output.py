"""Where results go: every output location is checked before any simulation starts.

A run directory holds one run and a sweep directory one study; neither is overwritten by a
different one unless the caller forces it. The checks only look (and create and remove an
empty probe directory), so a refused command leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from experiments.results import is_complete
from experiments.spec import SpecError, spec_hash

SWEEP_FILES = ("sweep.json", "runs.csv")


def check_writable_dir(path, option: str = "-o") -> Path:
    """SpecError unless ``path`` is a directory this process can create or write into."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{option} {str(path)!r} is a file; give a directory")
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpecError(f"{option} {str(path)!r}: {str(existing)!r} is not a directory, so "
                        "the directory cannot be created there")
    try:  # permissions alone do not tell (root, read-only mounts, /proc): try it
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".dlion-sim-probe-"))
    except OSError as err:
        raise SpecError(f"{option} {str(path)!r}: cannot write in {str(existing)!r} "
                        f"({err.strerror or err}); give a writable directory") from None
    return path


def check_writable_file(path, option: str = "-o") -> Path:
    """SpecError unless ``path`` can be written as a file (its directory creatable)."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{option} {str(path)!r} is a directory; give a file name such as "
                        f"{str(path / 'figure.png')!r}")
    check_writable_dir(path.parent, option=f"{option} {str(path)!r}: directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise SpecError(f"{option} {str(path)!r} exists and is not writable")
    return path


def _canonical(spec: dict) -> dict:
    """The spec as it reads back from summary.json (JSON types, non-finite floats as None)."""
    from experiments.results import _json_safe

    return json.loads(json.dumps(_json_safe(spec), default=str))


def _differences(old: dict, new: dict, most: int = 3) -> str:
    """'network.bandwidth 1000000000.0 -> 10000000000.0, ...' for the keys that differ."""
    found = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                found.append(f"{section}.{key} {a.get(key)!r} -> {b.get(key)!r}")
    shown = ", ".join(found[:most])
    return shown + (f" and {len(found) - most} more" if len(found) > most else "")


def holds_sweep(path: Path) -> bool:
    """Whether ``path`` is a sweep directory (a manifest or table written by a sweep)."""
    return any((path / name).exists() for name in SWEEP_FILES)


def check_run_dir(path, spec: dict, force: bool = False) -> Path:
    """SpecError unless ``path`` may receive a run of resolved ``spec``.

    Refused: a sweep directory, and a directory holding a finished run of another spec
    (unless ``force``). A finished run of the same spec is simply run again and replaced.
    """
    path = check_writable_dir(path)
    if holds_sweep(path):
        raise SpecError(f"-o {str(path)!r} holds a sweep (sweep.json); give another directory "
                        "for a single run")
    if is_complete(path) and not force:
        try:
            old = json.loads((path / "summary.json").read_text())["spec"]
        except (OSError, ValueError, KeyError, TypeError):
            old = None
        new = _canonical(spec)
        if old != new:
            what = ("an unreadable run" if old is None else
                    f"a finished run of another spec ({_differences(old, new)})")
            raise SpecError(f"-o {str(path)!r} holds {what}; give another -o, or --force to "
                            "replace it")
    return path


def study(axes: list[str], points: list[dict]) -> dict:
    """What identifies a sweep's study: its axes, and its points without the swept keys.

    Two sweeps are the same study when they vary the same keys and agree on everything else,
    so a sweep may grow or shrink along its axes (more bandwidths, more seeds of a seed axis)
    in the same directory, but a different setting never lands among its runs. ``axes`` are
    dotted keys, or section names for whole-section axes.
    """
    fixed = set()
    for point in points:
        reduced = {section: {k: v for k, v in table.items() if f"{section}.{k}" not in axes}
                   for section, table in _canonical(point).items() if section not in axes}
        fixed.add(spec_hash(reduced))
    return {"axes": sorted(set(axes)), "fixed": sorted(fixed)}


def check_sweep_dir(path, this_study: dict, recorded: dict | None, force: bool = False) -> Path:
    """SpecError unless ``path`` may receive the runs of ``this_study``.

    ``recorded`` is the study in the directory's sweep.json (None: none recorded). Refused: a
    directory holding a single run, and one holding another study (unless ``force``).
    """
    path = check_writable_dir(path)
    if is_complete(path):
        raise SpecError(f"-o {str(path)!r} holds a single run (summary.json), not a sweep; give "
                        "another directory")
    if recorded is not None and recorded != this_study and not force:
        if recorded.get("axes") != this_study["axes"]:
            what = (f"its sweep varies {', '.join(recorded.get('axes') or ['nothing'])}; this "
                    f"one varies {', '.join(this_study['axes']) or 'nothing'}")
        else:
            what = "the keys it does not sweep have other values"
        raise SpecError(f"-o {str(path)!r} holds another study ({what}); give another -o, or "
                        "--force to add these runs to it")
    return path


def default_name(stem: str, changed: bool, digest: str) -> Path:
    """``runs/<stem>``, or ``runs/<stem>-<digest>`` when overrides changed the spec."""
    return Path("runs") / (f"{stem}-{digest[:8]}" if changed else stem)
