"""Sweeps: expand a spec's [sweep] table into a grid of runs and run them in parallel processes.

Each point runs in its own directory named by the hash of its resolved spec, so re-running a
sweep skips the points already finished and an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from experiments.results import _write_atomic, is_complete
from experiments.spec import SECTIONS, SpecError, _suggest, resolve, spec_hash

# Numerics run one process per core; BLAS threads on top would only fight over the cores.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def expand(raw: dict) -> list[dict]:
    """The raw specs of every grid point of ``raw['sweep']`` (the base spec when it has none).

    Keys are ``"section.key" = [values]`` (one axis each) or ``section = [tables]`` (each table
    merged over the base section, e.g. method variants with their own hyperparameters).
    """
    sweep = raw.get("sweep", {})
    base = {k: v for k, v in raw.items() if k != "sweep"}
    if not isinstance(sweep, dict):
        raise SpecError("[sweep] must be a table of 'section.key' = [values]")
    axes = []
    for dotted, values in sweep.items():
        section, _, key = dotted.partition(".")
        if section not in SECTIONS:
            raise SpecError(f"sweep key {dotted!r}: unknown section {section!r}"
                            f"{_suggest(section, SECTIONS)}")
        if not isinstance(values, list) or not values:
            raise SpecError(f"sweep.{dotted!r} = {values!r}: expected a non-empty list of values")
        if not key and not all(isinstance(v, dict) for v in values):
            raise SpecError(f"sweep.{section} = {values!r}: a whole-section axis takes a list of "
                            "tables, e.g. [{name = 'dlion'}, {name = 'glion'}]")
        axes.append((section, key, values))
    points = []
    for combination in itertools.product(*(values for _, _, values in axes)):
        point = {k: dict(v) for k, v in base.items()}
        for (section, key, _), value in zip(axes, combination):
            table = point.setdefault(section, {})
            if key:
                table[key] = value
            else:
                table.update(value)
        points.append(point)
    return points


def _run_point(spec: dict, directory: str) -> tuple[str, str]:
    """Run one resolved point into ``directory`` (in a worker process); returns (dir, status)."""
    from experiments.run import execute

    try:
        result = execute(spec)
    except Exception as err:  # a failed point is recorded and the sweep goes on
        Path(directory).mkdir(parents=True, exist_ok=True)
        _write_atomic(Path(directory) / "error.json",
                      json.dumps({"error": f"{type(err).__name__}: {err}"}) + "\n")
        return directory, f"failed: {type(err).__name__}: {err}"
    result.save(directory)
    return directory, result.summary["status"]


def run_sweep(raw: dict, out_dir, jobs: int | None = None, progress: bool = False) -> list[dict]:
    """Run every point of the sweep ``raw`` into ``out_dir``; returns one record per point.

    All points are validated before any runs, so a bad value never costs finished work.
    ``jobs``: worker processes (default: the number of cores; 1 runs in this process).
    """
    specs = [resolve(point) for point in expand(raw)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [{"dir": str(out / spec_hash(s)), "spec": s} for s in specs]
    todo = [r for r in records if not is_complete(r["dir"])]
    for r in records:
        r["status"] = "done before" if r not in todo else "pending"
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    by_dir = {r["dir"]: r for r in records}
    if jobs == 1:
        for r in todo:
            by_dir[r["dir"]]["status"] = _run_point(r["spec"], r["dir"])[1]
            bar.update(1)
    else:
        saved = {v: os.environ.get(v) for v in _THREAD_VARS}
        os.environ.update({v: "1" for v in _THREAD_VARS})
        try:
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_run_point, r["spec"], r["dir"]) for r in todo]
                for future in as_completed(futures):
                    directory, status = future.result()
                    by_dir[directory]["status"] = status
                    bar.update(1)
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
    bar.close()
    return records
