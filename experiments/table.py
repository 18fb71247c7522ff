"""The tidy results table of a sweep directory: ``runs.csv``, one row per run.

Columns: every resolved spec key flattened as ``section.key`` (lists as their TOML text), then
in a sweep with a [tune] table ``tuned`` ("best": a run of its setting and method's best value,
"tried": of another value; see ``experiments.tune``), ``status`` ("failed" for a failed
point), ``steps``, ``sim_time_s`` (simulated s), ``wall_s``
(wall-clock s), ``final.<metric>``, ``bits_per_param_per_step.total/up/down`` (the whole run),
``steady_bits_per_param_per_step.total/up/down`` (after the method's warm-up),
``peak_bits_per_param.total/up/down`` (the largest step's), ``target.time_s``
(simulated s when the target was reached), ``participation.<count>`` (totals over the run:
messages aggregated, late, lost, workers down, computations abandoned, empty steps, messages
from adversaries aggregated), on a versioned server ``staleness.<statistic>`` (messages,
mean, p50, p90, max, weight_mean: ``experiments.versioned``), ``error``
and ``dir`` (the run directory, relative
to the sweep directory). Rows follow the grid order recorded in ``sweep.json``; runs it does not
list come after, by hash. Plain csv reads it; so does pandas.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from experiments.results import _write_atomic, is_complete, tune_marks
from experiments.spec import SECTIONS, toml_value

TABLE = "runs.csv"
MANIFEST = "sweep.json"
_RUN_DIR = re.compile(r"[0-9a-f]{12}")  # spec_hash names
_BITS = tuple(f"{which}.{k}" for which in ("bits_per_param_per_step",
                                           "steady_bits_per_param_per_step",
                                           "peak_bits_per_param")
              for k in ("total", "up", "down"))
_INT = re.compile(r"-?\d+")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # every bit of a float64 survives the round trip
    if isinstance(value, str):
        return value
    return toml_value(value)


def _row(run: Path) -> dict:
    """Spec keys and summary metrics of one run directory (finished or failed)."""
    if is_complete(run):
        summary = json.loads((run / "summary.json").read_text())
        target = summary.get("target") or {}
        metrics = {"status": summary["status"], "steps": summary["steps"],
                   "sim_time_s": summary["sim_time_s"], "wall_s": summary["wall_s"],
                   **{f"final.{k}": v for k, v in summary["final"].items()},
                   **{column: summary.get(column.split(".")[0], {}).get(column.split(".")[1])
                      for column in _BITS},
                   "target.time_s": target.get("time_s"),
                   # the collective the run used (what network.collective = 'auto' chose)
                   "collective": summary.get("collective"),
                   **{f"participation.{k}": v
                      for k, v in summary.get("participation", {}).items()},
                   # a versioned server's (async, ssp, fedbuff): its messages' staleness
                   **{f"staleness.{k}": v for k, v in summary.get("staleness", {}).items()},
                   "error": None}
        spec = summary["spec"]
    else:
        failure = json.loads((run / "error.json").read_text())
        metrics = {"status": "failed", "error": failure["error"]}
        spec = failure["spec"]
    flat = {f"{section}.{key}": value for section in SECTIONS
            for key, value in spec.get(section, {}).items()}
    return {**flat, **metrics, "dir": run.name}


def _columns(rows: list[dict]) -> list[str]:
    seen = list(dict.fromkeys(key for row in rows for key in row))
    tuned = ["tuned"] if "tuned" in seen else []
    spec = [c for s in SECTIONS for c in seen if c.startswith(f"{s}.")]
    final = [c for c in seen if c.startswith("final.")]
    counts = [c for c in seen if c.startswith("participation.")]
    stale = [c for c in seen if c.startswith("staleness.")]
    return [*spec, *tuned, "status", "steps", "sim_time_s", "wall_s", *final, *_BITS,
            "target.time_s",
            "collective", *counts, *stale, "error", "dir"]


def run_dirs(directory) -> list[Path]:
    """The run directories (finished or failed) directly inside a sweep directory, by hash."""
    return sorted(p for p in Path(directory).iterdir() if p.is_dir() and _RUN_DIR.fullmatch(p.name)
                  and (is_complete(p) or (p / "error.json").exists()))


def ordered_runs(directory) -> list[Path]:
    """The runs of a sweep directory in table order: grid order, then unlisted runs by hash."""
    path = Path(directory)
    runs = {p.name: p for p in run_dirs(path)}
    manifest = path / MANIFEST
    listed = json.loads(manifest.read_text())["points"] if manifest.exists() else []
    order = [h for h in listed if h in runs] + sorted(set(runs) - set(listed))
    return [runs[h] for h in order]


def write_table(directory) -> Path:
    """(Re)write ``runs.csv`` in a sweep directory, atomically; returns its path."""
    path = Path(directory)
    tuned = tune_marks(path)
    rows = [_row(run) for run in ordered_runs(path)]
    if tuned:  # a sweep with a [tune] table: which runs are the winners
        for row in rows:
            row["tuned"] = tuned.get(row["dir"])
    columns = _columns(rows)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    _write_atomic(path / TABLE, text.getvalue())
    return path / TABLE


def _value(text: str):
    if text == "":
        return None
    if _INT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text, text)


def _table_path(path) -> Path:
    path = Path(path)
    return path / TABLE if path.is_dir() else path


def read_table(path) -> list[dict]:
    """``runs.csv`` (or a sweep directory holding it) -> one dict per row.

    Whole numbers come back as int, other numbers as float, true/false as bool, empty cells as
    None and everything else (names, TOML lists) as text.
    """
    with open(_table_path(path), newline="") as fh:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def to_pandas(path):
    """``runs.csv`` (or a sweep directory holding it) as a pandas DataFrame."""
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas needs pandas (pip install pandas); "
                          "experiments.table.read_table reads the table without it") from None
    return pandas.read_csv(_table_path(path))
