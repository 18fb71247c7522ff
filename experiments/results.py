"""Results of a run, and their directory on disk (written atomically, read back exactly).

A run directory holds ``spec.toml`` (resolved), ``history.csv``, ``params.npy``, optionally
``trace.csv`` and ``trace.json`` (the same rows as a Chrome trace, for Perfetto or
chrome://tracing), and ``summary.json``, written last: a directory with a summary is complete.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.chrome_trace import chrome_trace

TRACE_COLUMNS = ("node", "phase", "start_s", "end_s", "bytes", "step")


@dataclass
class Result:
    """One simulated run.

    params   final parameters, (dim,)
    history  per-step table: column name -> array (step, time_s [simulated s], bits_up and
             bits_down [cumulative bits per worker], train_loss, per-phase seconds, eval_* columns
             at evaluation steps and NaN elsewhere)
    summary  final metrics, simulated and wall-clock seconds, bits per parameter per step, status,
             and the resolved spec under "spec"
    trace    timeline rows (node, phase, start_s, end_s, bytes, step) when the run was traced
    """

    params: np.ndarray
    history: dict[str, np.ndarray]
    summary: dict
    trace: list[tuple] | None = None

    def save(self, directory) -> Path:
        """Write the run into ``directory`` (created if needed); returns its path."""
        from experiments.spec import to_toml  # the spec format lives with the spec

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        # the directory stops looking complete first, and no file of an earlier run survives
        for stale in ("summary.json", "trace.csv", "trace.json"):
            (path / stale).unlink(missing_ok=True)
        _write_atomic(path / "spec.toml", to_toml(self.summary["spec"]))
        _write_atomic(path / "history.csv", _table_csv(self.history))
        buffer = io.BytesIO()
        np.save(buffer, self.params)
        _write_atomic(path / "params.npy", buffer.getvalue())
        if self.trace is not None:
            rows = io.StringIO()
            writer = csv.writer(rows, lineterminator="\n")
            writer.writerow(TRACE_COLUMNS)
            writer.writerows((n, p, repr(s), repr(e), b, k) for n, p, s, e, b, k in self.trace)
            _write_atomic(path / "trace.csv", rows.getvalue())
            trace = chrome_trace(self.trace, trace_name(self.summary))
            _write_atomic(path / "trace.json", json.dumps(trace, separators=(",", ":")) + "\n")
        _write_atomic(path / "summary.json", json.dumps(_json_safe(self.summary), indent=2) + "\n")
        return path


def trace_name(summary: dict) -> str:
    """The name of a run in its Chrome trace: the method ('dlion/mavo', 'gadamw') and, when the
    summary has it, the collective it ran ('dlion/mavo, ring')."""
    method = summary["spec"]["method"]
    key = method["name"] + (f"/{method['aggregate']}" if "aggregate" in method else "")
    collective = summary.get("collective")
    return f"{key}, {collective}" if isinstance(collective, str) else key


class DamagedRunError(ValueError):
    """A run directory whose files cannot be read back (truncated, edited or mixed up)."""


def load(directory) -> Result:
    """Read a run directory written by ``Result.save``.

    FileNotFoundError when it holds no finished run; DamagedRunError (one line naming the
    file) when a file of it cannot be read.
    """
    path = Path(directory)
    summary_file = path / "summary.json"
    if not summary_file.exists():
        raise FileNotFoundError(f"{path} holds no finished run (summary.json is missing)")
    summary = _read(summary_file, lambda f: json.loads(f.read_text()))
    if not isinstance(summary, dict) or not isinstance(summary.get("spec"), dict):
        raise DamagedRunError(f"{summary_file} is damaged (no resolved spec in it); run it again")
    history = _read(path / "history.csv", read_table)
    rows = len(next(iter(history.values()), ()))
    if rows != summary.get("steps", rows):  # cut at a line end still parses: count the rows
        raise DamagedRunError(f"{path / 'history.csv'} is damaged ({rows} rows for "
                              f"{summary['steps']} steps); run it again")
    params = _read(path / "params.npy", np.load)
    trace = _read(path / "trace.csv", _read_trace) if (path / "trace.csv").exists() else None
    return Result(params=params, history=history, summary=summary, trace=trace)


def _read(file: Path, reader):
    """``reader(file)``, with any failure to parse it turned into one DamagedRunError line."""
    try:
        return reader(file)
    except (OSError, ValueError, TypeError, KeyError, IndexError, StopIteration, EOFError,
            csv.Error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DamagedRunError(f"{file} is damaged or unreadable ({reason}); run it again") \
            from None


def _read_trace(file: Path) -> list[tuple]:
    with open(file, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return [(n, p, float(s), float(e), int(b), int(k)) for n, p, s, e, b, k in reader]


def is_complete(directory) -> bool:
    """True when ``directory`` holds a finished run."""
    return (Path(directory) / "summary.json").exists()


def read_table(path) -> dict[str, np.ndarray]:
    """A numeric CSV with a header row -> column name -> float64 array (empty cells are NaN)."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [[float(v) if v else math.nan for v in row] for row in reader]
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    return {name: data[:, i] for i, name in enumerate(header)}


def _table_csv(table: dict[str, np.ndarray]) -> str:
    columns = list(table)
    data = np.column_stack([np.asarray(table[c], dtype=np.float64) for c in columns])
    out = io.StringIO()
    out.write(",".join(columns) + "\n")
    for row in data:
        # repr keeps every bit of a float64, so a saved run loads back identical
        out.write(",".join("" if v != v else repr(float(v)) for v in row) + "\n")
    return out.getvalue()


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, content) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``.

    The file gets the mode an ordinary ``open`` would give it (0666 less the umask), not the
    private 0600 of a temporary file, so shared results stay readable by colleagues.
    """
    mode = "wb" if isinstance(content, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _json_safe(value):
    """Replace non-finite floats (not valid JSON) by None, and numpy scalars by Python ones."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: A tuned sweep's winners (written by ``experiments.tune``), at the sweep directory's root.
TUNE = "tune.json"


def read_tune(directory) -> dict | None:
    """The tune.json of a sweep directory (None when it has none or it is unreadable)."""
    try:
        tune = json.loads((Path(directory) / TUNE).read_text())
    except (OSError, ValueError):
        return None
    return tune if isinstance(tune, dict) and isinstance(tune.get("groups"), list) else None


def tune_marks(directory) -> dict[str, str]:
    """Run directory name -> "best" | "tried" for the runs a tune.json lists ({}: none)."""
    out = {}
    for group in (read_tune(directory) or {}).get("groups", []):
        best = set(group.get("best_dirs") or [])
        for candidate in group.get("candidates", []):
            for d in candidate.get("dirs", []):
                out[d] = "best" if d in best else "tried"
    return out


def tuned_keys_of(directory) -> list[str]:
    """The dotted keys a sweep directory's tune.json tuned ([] when none)."""
    return list((read_tune(directory) or {}).get("keys", []))
