"""Shared helpers of the benchmarks: best-of timing, the machine's load, and the JSON record.

Every figure a benchmark prints is a ratio against a reference measured in the same run; it
also goes, with its target and the raw times, into the JSON file named by the environment
variable DLION_SIM_BENCH_JSON (default benchmarks/results.json), merged with what other scripts
wrote there, so that runs can be compared over time (``make bench`` starts a fresh file).
"""
import json
import os
import platform
import sys
import time
from pathlib import Path

_FIGURES: dict = {}


def best_seconds(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``fn`` after one warm-up, in seconds (the minimum filters
    out scheduler noise on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages (other work on the machine skews timings)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def record(name: str, value: float, target: str | None, reference: str, **details) -> None:
    """Keep one figure for the JSON file: ``value`` (a ratio, or the unit its name says), the
    ``target`` it is judged by (e.g. ">= 0.6"; None for a figure given for context), what it is
    measured against, and raw numbers."""
    _FIGURES[name] = {"value": value, "target": target, "met": _met(value, target),
                      "reference": reference, **details}


def _met(value: float, target: str | None) -> bool | None:
    if target is None:
        return None
    op, bound = target.split()
    return value >= float(bound) if op == ">=" else value <= float(bound)


def write() -> Path:
    """Merge this script's figures into the JSON file, with the script, time and load."""
    path = Path(os.environ.get("DLION_SIM_BENCH_JSON", Path(__file__).with_name("results.json")))
    data = json.loads(path.read_text()) if path.exists() else {"figures": {}, "runs": {}}
    data["figures"].update(_FIGURES)
    data["runs"][Path(sys.argv[0]).name] = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg": loadavg(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "figures": list(_FIGURES)}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path
