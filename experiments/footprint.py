"""Memory a run needs, estimated from its spec before anything is allocated.

The estimate counts the arrays that grow with the problem, in bytes (``itemsize`` from
``run.dtype``, d parameters, N workers, B samples per worker, w features per sample):

- state: N x d x itemsize x ``STATE_ARRAYS`` (each worker's gradient, message, momentum,
  second moment, error feedback and a temporary: no method keeps more per worker);
- minibatch: N x B x w x itemsize x 2 (the gathered samples and one temporary of their size);
- data: samples x w x (8 + itemsize) (generated in float64, kept in ``run.dtype``);
- history: steps x ``HISTORY_COLUMNS`` x 8; trace: steps x (N + 1) x 5 events x
  ``TRACE_ROW_BYTES``.

d and w come from the objective's own parameters where they name them: ``dim`` (a quadratic:
d = dim, no data) or ``features`` and ``samples`` (a generated data set: w = features + 1 = d).
Objectives on real data sets, whose size is fixed by their files, are counted once built, from
their ``dim`` (``check_built``). The estimate is a floor, not a prediction: it is meant to
refuse a run that cannot fit, not to promise that one will.
"""
from __future__ import annotations

import os

import numpy as np

import models
from experiments.spec import SpecError, objective_fields

STATE_ARRAYS = 6
HISTORY_COLUMNS = 16
TRACE_ROW_BYTES = 200   # a Python tuple of five values


def parts(spec: dict, dim: int | None = None) -> dict[str, float]:
    """The estimate's parts in bytes (see the module docstring); ``dim``: a built objective's."""
    cluster, run = spec["cluster"], spec["run"]
    objective = dict(spec["objective"])
    if objective["name"] in models.REGISTRY:  # the objective's own defaults count too
        objective = {**{k: f.default for k, f in objective_fields(objective["name"]).items()},
                     **objective}
    itemsize = np.dtype(run["dtype"]).itemsize
    n, batch, steps = cluster["workers"], cluster["batch_size"], run["steps"]
    width = samples = 0
    if dim is None and isinstance(objective.get("dim"), int):
        dim = objective["dim"]
    if isinstance(objective.get("features"), int):
        width = objective["features"] + 1
        samples = objective.get("samples", 0) if isinstance(objective.get("samples"), int) else 0
        dim = dim or width
    out = {"state": float(n) * (dim or 0) * itemsize * STATE_ARRAYS,
           "minibatch": float(n) * batch * width * itemsize * 2,
           "data": float(samples) * width * (8 + itemsize),
           "history": float(steps) * HISTORY_COLUMNS * 8}
    if run["trace"]:
        out["trace"] = float(steps) * (n + 1) * 5 * TRACE_ROW_BYTES
    return out


def available() -> float | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable, else physical RAM)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """'1.5 GiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


_KEYS = {"state": "cluster.workers or the model size", "minibatch": "cluster.batch_size or "
         "cluster.workers", "data": "objective.samples or objective.features",
         "history": "run.steps", "trace": "run.steps (or run.trace = false)"}


def check(spec: dict, dim: int | None = None, limit: float | None = None) -> None:
    """SpecError when the estimate exceeds ``limit`` bytes (default: ``available()``)."""
    limit = available() if limit is None else limit
    if limit is None:
        return
    estimate = parts(spec, dim)
    total = sum(estimate.values())
    if total > limit:
        biggest = max(estimate, key=estimate.get)
        raise SpecError(f"this run needs about {format_bytes(total)} of memory ({biggest} "
                        f"{format_bytes(estimate[biggest])}) but {format_bytes(limit)} is "
                        f"available; make {_KEYS[biggest]} smaller")
