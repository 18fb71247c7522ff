"""Sweeps: expand a spec's [sweep] table into runs, run them in processes or on Dask, merge pieces.

Each point runs in its own directory named by the hash of its resolved spec, so re-running a
sweep skips the points already finished and an interrupted sweep resumes where it stopped. A
sweep directory also holds ``sweep.json`` (the grid order of its points) and ``runs.csv``, the
tidy table of every run in it (see ``experiments.table``), and with a [tune] table ``tune.json``
(each setting and method's best value, see ``experiments.tune``).
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from experiments.output import check_sweep_dir, study
from experiments.results import _write_atomic, is_complete
from experiments.grid import axis_keys, expand
from experiments.spec import SpecError, resolve, spec_hash
from experiments.table import MANIFEST, run_dirs, write_table
from experiments import tune

# Numerics run one process per core; BLAS threads on top would only fight over the cores.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DASK_HINT = "pip install 'dlion-sim[dask]'"

#: Seconds the points in progress get to notice a Ctrl-C and stop; then their workers are ended.
CANCEL_GRACE_S = 1.0
#: How often a worker process checks that the sweep that started it is still alive (s).
PARENT_POLL_S = 0.25


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; the message says how many points were kept and cancelled."""

    def __init__(self, kept: int, cancelled: int, total: int):
        super().__init__(f"interrupted: {kept} of {total} points kept, {cancelled} cancelled; "
                         "run the same command again to resume")
        self.kept, self.cancelled, self.total = kept, cancelled, total


def parse_shard(text: str) -> tuple[int, int]:
    """``'2/4'`` -> (2, 4): this invocation runs the second of four interleaved pieces."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise SpecError(f"--shard {text!r}: expected i/n with whole numbers 1 <= i <= n, "
                        "e.g. 1/4 (the first of four pieces)")
    return int(match[1]), int(match[2])


def plan(raw: dict) -> dict[str, dict]:
    """Spec hash -> resolved spec of every distinct grid point, in grid order (all validated)."""
    return {spec_hash(s): s for s in (resolve(point) for point in expand(raw))}


def shard_of(grid: dict[str, dict], shard: tuple[int, int] | None) -> dict[str, dict]:
    """The points of ``grid`` that shard (i, n) runs: every n-th, from the i-th on.

    Interleaving (not contiguous blocks) spreads slow and fast corners of a grid over shards.
    """
    if shard is None:
        return dict(grid)
    index, count = shard
    return dict(list(grid.items())[index - 1::count])


#: Set in a worker process (by ``_start_worker``): true once the sweep was interrupted.
_stop_requested = None


def _compute(spec: dict):
    """Run one resolved point (in a worker process or on a Dask worker).

    Returns ("ok", Result), ("failed", error text, traceback text), or ("cancelled",) when the
    sweep was interrupted while the point ran; the caller writes the run directory, so a remote
    Dask worker needs no shared file system.
    """
    from experiments.run import Cancelled, execute

    try:
        return "ok", execute(spec, stop=_stop_requested)
    except Cancelled:
        return ("cancelled",)
    except Exception as err:  # a failed point is recorded and the sweep goes on
        return "failed", f"{type(err).__name__}: {err}", traceback.format_exc()


def _start_worker(parent: int, stop_event) -> None:
    """Set up a worker process: Ctrl-C is the sweep's to handle, and the worker ends with it."""
    global _stop_requested
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_requested = stop_event.is_set
    # tqdm's default lock is a named semaphore, which a killed worker could never unlink
    tqdm.set_lock(threading.RLock())

    def watch():  # a killed sweep cannot tell its workers, so they look for themselves
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _record(directory: Path, spec: dict, outcome) -> str:
    """Write a computed point into ``directory``; returns its status."""
    if outcome[0] == "ok":
        result = outcome[1]
        result.save(directory)
        (directory / "error.json").unlink(missing_ok=True)
        return result.summary["status"]
    _, error, trace = outcome
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / "error.json",
                  json.dumps({"error": error, "traceback": trace, "spec": spec}, indent=2) + "\n")
    return f"failed: {error}"


def _crashed(err: BaseException):
    """The outcome of a point whose worker died (a broken pool, a lost Dask worker)."""
    return "failed", f"{type(err).__name__}: {err}", ""


def _outcome(future):
    """A finished future's outcome, or its crash as a failed outcome."""
    try:
        return future.result()
    except Exception as err:
        return _crashed(err)


def _collect(completed, futures: dict, finish) -> None:
    """Hand each finished future's outcome (or its crash) to ``finish`` as it completes."""
    for future in completed:
        finish(futures[future], _outcome(future))


def _run_local(todo: list[dict], jobs: int, finish) -> None:
    """Run the points in ``jobs`` processes (1: in this one); Ctrl-C cancels the rest.

    On the first Ctrl-C the queued points are dropped and the running ones stop at their next
    step (within ``CANCEL_GRACE_S``, after which their processes are ended); a second Ctrl-C
    stops waiting at once. Raises KeyboardInterrupt after handing over what finished.
    """
    if jobs == 1:
        for r in todo:
            finish(r, _compute(r["spec"]))
        return
    context = get_context("spawn")
    stop = context.Event()
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: "1" for v in _THREAD_VARS})
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(), stop))
    interrupted = False
    try:
        # workers start while Ctrl-C is ignored, so none can be hit before it ignores it itself
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            futures = {pool.submit(_compute, r["spec"]): r for r in todo}
        finally:
            signal.signal(signal.SIGINT, handler)
        try:
            _collect(as_completed(futures), futures, finish)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            for future in futures:
                future.cancel()
            _drain(futures, finish)
            raise
    finally:
        stuck = interrupted and not all(f.done() for f in futures)
        if stuck:  # a point still running after the grace, or a second Ctrl-C
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
        pool.shutdown(wait=not stuck, cancel_futures=True)
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _drain(futures: dict, finish) -> None:
    """After a Ctrl-C: hand over the points that finish within the grace; a Ctrl-C ends it."""
    deadline = time.monotonic() + CANCEL_GRACE_S
    running = {f for f in futures if not f.cancelled()}
    try:
        while running and time.monotonic() < deadline:
            done, running = wait(running, timeout=deadline - time.monotonic(),
                                 return_when=FIRST_COMPLETED)
            for future in done:
                outcome = _outcome(future)
                if outcome[0] != "cancelled":
                    finish(futures[future], outcome)
    except KeyboardInterrupt:
        pass  # the second Ctrl-C: stop waiting


def _require_dask() -> None:
    """A SpecError naming the optional extra when dask.distributed is not installed."""
    try:
        importlib.import_module("dask.distributed")
    except ImportError:
        raise SpecError(f"--dask needs the optional Dask extra: {DASK_HINT}") from None


def _dask_client(address: str, jobs: int):
    """A Dask client (and the LocalCluster it owns for ``address == 'local'``, else None)."""
    from dask.distributed import Client, LocalCluster

    if address == "local":
        # the nanny already pins BLAS threads to 1 (distributed.nanny.pre-spawn-environ)
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(address, timeout=10), None
    except (OSError, TimeoutError, ValueError) as err:
        raise SpecError(f"--dask {address!r}: cannot reach a Dask scheduler there ({err}); "
                        "give tcp://HOST:PORT or 'local'") from None


def _run_dask(todo: list[dict], address: str, jobs: int, finish) -> None:
    """Submit whole runs (never steps: Dask spends ~1 ms per task) to a Dask scheduler."""
    from dask.distributed import as_completed as dask_completed

    client, cluster = _dask_client(address, jobs)
    try:
        futures = {client.submit(_compute, r["spec"], key=f"dlion-sim-{Path(r['dir']).name}",
                                 pure=False): r for r in todo}
        _collect(dask_completed(list(futures)), futures, finish)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _manifest(directory: Path) -> dict:
    """The sweep.json of a directory ({} when it has none); SpecError when it is damaged."""
    path = directory / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest, dict) and isinstance(manifest.get("points", []), list):
            return manifest
    except (OSError, ValueError):
        pass
    raise SpecError(f"{path} is damaged; move it away (the run directories beside it are "
                    "intact) and run again")


def _manifest_points(directory: Path) -> list[str]:
    return _manifest(directory).get("points", [])


def _write_manifest(directory: Path, points: list[str], this_study: dict | None) -> None:
    """Record the grid order of the points (keeping points of earlier grids after them) and
    the study they belong to."""
    ordered = list(dict.fromkeys([*points, *_manifest_points(directory)]))
    manifest = {"points": ordered, "study": this_study or _manifest(directory).get("study")}
    _write_atomic(directory / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def run_sweep(raw: dict, out_dir, jobs: int | None = None, progress: bool = False,
              dask: str | None = None, shard: tuple[int, int] | None = None,
              force: bool = False) -> list[dict]:
    """Run the points of the sweep ``raw`` into ``out_dir``; returns one record per point.

    Everything is checked before any point runs, so a bad value never costs finished work:
    every point's spec, the output directory (writable; not a single run's; not holding
    another study unless ``force``), each point's memory estimate and its data set.
    Finished points are skipped; failed ones are tried again. Records hold ``dir``, ``spec``
    and ``status``; ``runs.csv`` is rewritten at the end, also after a Ctrl-C, which raises
    ``SweepInterrupted`` (see ``_run_local``).
    ``jobs``: worker processes (default: the number of cores; 1 runs in this process), or the
    LocalCluster's workers for ``dask='local'``. ``dask``: a scheduler address or 'local'.
    ``shard``: (i, n) runs only that piece of the grid (see ``shard_of``); the manifest and the
    table still cover the whole directory, so pieces run into one directory need no merge.
    """
    from experiments import footprint
    from experiments.run import check_data

    if dask:
        _require_dask()
    grid = plan(raw)
    tune.check(raw, grid)
    out = Path(out_dir)
    this_study = study(axis_keys(raw) + tune.tune_keys(raw), list(grid.values()))
    check_sweep_dir(out, this_study, _manifest(out).get("study") if out.is_dir() else None,
                    force)
    records = [{"dir": str(out / h), "spec": s} for h, s in shard_of(grid, shard).items()]
    todo = [r for r in records if not is_complete(r["dir"])]
    checked = set()
    for r in todo:
        objective = json.dumps(r["spec"]["objective"], sort_keys=True, default=str)
        if objective not in checked:  # once per data set, not once per point
            check_data(r["spec"])
            checked.add(objective)
        footprint.check(r["spec"])
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, list(grid), this_study)
    for r in records:
        r["status"] = "done before" if is_complete(r["dir"]) else "pending"
    jobs = max(1, jobs or os.cpu_count() or 1)
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)

    def finish(record, outcome):
        record["status"] = _record(Path(record["dir"]), record["spec"], outcome)
        bar.update(1)

    interrupted = False
    try:
        if todo and dask:
            _run_dask(todo, dask, jobs, finish)
        elif todo:
            _run_local(todo, min(jobs, len(todo)), finish)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if tune.tune_table(raw) is not None:  # the whole grid's runs, also other shards' ones
        tune.write(out, tune.definition(raw, grid, axis_keys(raw)))
    write_table(out)
    if interrupted:
        cancelled = sum(r["status"] == "pending" for r in records)
        raise SweepInterrupted(len(records) - cancelled, cancelled, len(records))
    return records


def merge(out_dir, pieces, move: bool = False) -> dict[str, int]:
    """Put sweep directories run in pieces (``--shard``) together into ``out_dir``.

    Run directories are deduplicated by hash: a finished run wins over a failed one, and an
    existing finished run is kept. ``move`` renames instead of copying. The grid order and
    ``runs.csv`` are rewritten. Returns counts: added, replaced, kept.
    """
    out = Path(out_dir)
    sources = [Path(p) for p in pieces]
    for piece in sources:
        if not piece.is_dir():
            raise SpecError(f"merge: {str(piece)!r} is not a directory (expected a sweep "
                            "directory holding run directories)")
        if piece.resolve() != out.resolve() and not run_dirs(piece):
            raise SpecError(f"merge: {str(piece)!r} holds no finished or failed run directories")
    if not sources and not out.is_dir():
        raise SpecError(f"merge: {str(out)!r} does not exist and no pieces were given "
                        "(usage: dlion-sim merge OUT DIR...)")
    studies = {json.dumps(s, sort_keys=True) for s in
               (_manifest(p).get("study") for p in [out, *sources] if p.is_dir()) if s}
    if len(studies) > 1:
        raise SpecError("merge: these directories hold different studies (their sweep.json "
                        "differ in the swept keys or the fixed settings); merge pieces of one "
                        "sweep only")
    out.mkdir(parents=True, exist_ok=True)
    counts = {"added": 0, "replaced": 0, "kept": 0}
    points = _manifest_points(out)
    for piece in sources:
        if piece.resolve() == out.resolve():
            continue
        points += _manifest_points(piece)
        for run in run_dirs(piece):
            target = out / run.name
            if target.exists() and (is_complete(target) or not is_complete(run)):
                counts["kept"] += 1
                continue
            # land the copy under a temporary name first so a crash never leaves half a run
            staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{run.name}."))
            staged = staging / run.name
            if move:
                shutil.move(str(run), staged)
            else:
                shutil.copytree(run, staged)
            counts["replaced" if target.exists() else "added"] += 1
            if target.exists():
                shutil.rmtree(target)
            os.replace(staged, target)
            staging.rmdir()
    _write_manifest(out, points, json.loads(studies.pop()) if studies else None)
    definition = tune.merge_definitions([out, *sources])
    if definition is not None:  # the winners over the merged runs
        tune.write(out, definition)
    write_table(out)
    if move:  # the pieces' tables must stop listing the runs that left them
        for piece in sources:
            if piece.resolve() != out.resolve():
                write_table(piece)
    return counts
