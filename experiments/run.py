"""``simulate``: run one experiment, numerics and network together, step by step."""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import models
from experiments import footprint
from experiments.results import Result
from experiments.spec import (FLAT_KEYS, SECTIONS, SpecError, suggest, bundled_spec, load_toml,
                              objective_fields, overlaps, overridden, override, resolve)
from experiments.versioned import run_updates
from sim import methods
from sim.adversaries import SCALE_DEFAULT, Adversaries, choose
from sim.buckets import Buckets, equal_layers, plan, preset_layers, scaled_layers
from sim.cluster import PHASES, AllWorkersDown, Cluster
from sim.compute import ComputeModel, read_trace
from sim.faults import FaultModel
from sim.net.pipelined import Pipeline
from sim.methods.base import snapshot_rows
from sim.schedules import learning_rates
from sim.server import Policy
from sim.step import train_step
from sim.units import count_of

# spec keys that are not arguments of sim.net.network.Network (the cluster's, or presets' names)
_NETWORK_ONLY = ("collective", "header", "preset", "links", "intra", "chunk", "channels",
                 "sockets", "bucket", "first_bucket")
#: [compute] keys of the step's schedule, not of the compute-time model
_SCHEDULE_ONLY = ("trace_file", "overlap", "backward_fraction")


def simulate(spec=None, *, objective=None, method=None, cluster=None, network=None,
             compute=None, server=None, faults=None, run=None, progress: bool | None = None,
             **flat) -> Result:
    """Run one experiment and return its ``Result``.

    ``spec`` is a dict, a TOML path, the name of a bundled spec ('quickstart') or an already
    resolved spec. Pass the sections as keywords (each a dict) instead, or on top of ``spec``
    to override its keys; ``objective`` and ``method`` may also be a name or an object, and the
    everyday keys may be flat: workers, batch_size, steps, seed, eval_every, target, dtype.
    Switching the objective's or method's name drops the spec's keys the new one does not
    take. An override of a key that the spec's [sweep] varies pins it to that value, so
    ``simulate("quickstart", method="gadamw", steps=5)`` runs one point of that study; a spec
    whose [sweep] still varies keys runs its first point, with a warning naming it.
    ``progress``: show a progress bar (default: when stderr is a terminal).
    """
    custom_objective = None
    items = []
    for name, value in (("cluster", cluster), ("network", network), ("compute", compute),
                        ("server", server), ("faults", faults), ("run", run)):
        if value is not None:
            if not isinstance(value, dict):
                raise SpecError(f"simulate: {name}= must be a dict of {name} keys, "
                                f"got {value!r}")
            items.extend((name, key, v) for key, v in value.items())
    sections = {(section, key): v for section, key, v in items}
    for key, value in flat.items():
        if key not in FLAT_KEYS:
            raise SpecError(f"simulate: unknown keyword {key!r}"
                            f"{suggest(key, list(FLAT_KEYS) + list(SECTIONS))}")
        section = FLAT_KEYS[key]
        if (section, key) in sections and sections[section, key] != value:
            raise SpecError(f"simulate: {key}={value!r} and {section}={{{key!r}: "
                            f"{sections[section, key]!r}}} contradict each other; give one")
        items.append((section, key, value))
    if isinstance(objective, str):
        items.append(("objective", "name", objective))
    elif isinstance(objective, dict):
        items.extend(("objective", key, v) for key, v in objective.items())
    elif isinstance(objective, models.Objective):
        custom_objective = objective
    elif objective is not None:
        raise SpecError(f"simulate: objective={objective!r} is not a name, a dict or an "
                        "object with dim, init, grads and evaluate")
    if isinstance(method, str):
        items.append(("method", "name", method))
    elif isinstance(method, dict):
        items.extend(("method", key, v) for key, v in method.items())
    elif isinstance(method, methods.Method):
        items.append(("method", "name", _registered(method)))
    elif method is not None:
        raise SpecError(f"simulate: method={method!r} is not a name, a dict or a "
                        "sim.methods.Method")
    if spec is None:
        raw = {}
    elif isinstance(spec, (str, Path)):
        raw = load_toml(bundled_spec(spec))
    elif isinstance(spec, dict):
        raw = dict(spec)
    else:
        raise SpecError(f"simulate: spec={spec!r} is not a dict, a TOML file or a bundled "
                        "spec name")
    if custom_objective is not None:
        raw.pop("objective", None)  # the object stands for the whole section
    if items:
        from experiments.grid import pin

        raw = pin(override(raw, items), overridden(items))
    if "sweep" in raw:
        raw = _first_point(raw)
    resolved = resolve(raw, custom_objective)
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    return execute(resolved, custom_objective, progress=progress)


def _first_point(raw: dict) -> dict:
    """The first grid point of a spec that still has a [sweep] table, with a warning naming it
    and how to choose another; every point is checked first, so a typo anywhere is named."""
    import warnings

    from experiments.grid import axis_keys, expand, point_settings

    points = expand(raw)
    for point in points:
        resolve(point)
    shown = "; ".join(f"{key} = {value}" for key, value in point_settings(points[0],
                                                                          axis_keys(raw)))
    warnings.warn(f"the spec's [sweep] has {len(points)} points: ran the first ({shown}); pin "
                  "the keys it varies to run another (e.g. simulate('quickstart', "
                  "method='gadamw')), or run them all with `dlion-sim sweep` "
                  "(experiments.sweep.run_sweep)", stacklevel=3)
    return points[0]


def _registered(method: methods.Method) -> str:
    """Register a user's Method (once) so specs can name it; its name must be its own."""
    known = methods.METHODS.get(method.name)
    if known is not None and known is not method:
        raise SpecError(f"simulate: a different method is already called {method.name!r}; "
                        "give yours another name")
    try:
        methods.register(method)
    except ValueError as err:
        raise SpecError(f"simulate: {err}; add rules for new hyperparameters with "
                        "sim.methods.register(method, {name: rule})") from None
    return method.name


class Cancelled(Exception):
    """A run stopped because its ``stop`` callable said so (an interrupted sweep)."""


def check_data(spec: dict) -> None:
    """SpecError naming the install command when the objective's data set is not here."""
    from models.datasets import MissingDataError, require

    name = spec["objective"]["name"]
    if name not in models.REGISTRY:
        return
    field = objective_fields(name).get("dataset")
    if field is not None:
        try:
            require(spec["objective"].get("dataset", field.default))
        except MissingDataError as err:
            raise SpecError(f"[objective] {err}") from None


def execute(spec: dict, objective=None, progress: bool = False, label: str = "",
            stop=None, keep_when_stopped: bool = False) -> Result:
    """Run a resolved ``spec`` (see ``experiments.spec.resolve``).

    ``stop``: a callable checked before every step; once it returns true the run raises
    ``Cancelled``, or, with ``keep_when_stopped``, ends there with status "interrupted" and
    returns what it computed (``dlion-sim run`` on Ctrl-C). A run whose arrays would not fit in
    memory is refused before they exist.
    """
    wall_start = time.perf_counter()
    run, cl, net = spec["run"], spec["cluster"], spec["network"]
    dtype = np.dtype(run["dtype"])
    # one stream per concern; spawned children keep their values as streams are added
    init_rng, data_rng, method_rng, compute_rng, fault_rng, attack_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(run["seed"]).spawn(6))
    footprint.check(spec, getattr(objective, "dim", None))
    if objective is None:
        check_data(spec)
        params = {k: v for k, v in spec["objective"].items() if k != "name"}
        try:
            objective = models.make(spec["objective"]["name"], **params)
        except (ValueError, TypeError, ImportError, FileNotFoundError) as err:
            raise SpecError(f"[objective] {err}") from None
        footprint.check(spec, int(objective.dim))
    if hasattr(objective, "shards"):
        try:  # a data objective splits its samples now, so a bad split fails before any step
            objective.shards(cl["workers"])
        except ValueError as err:
            raise SpecError(f"cluster.workers = {cl['workers']}: {err}") from None
    method = methods.get(spec["method"]["name"])
    hp = {k: v for k, v in spec["method"].items() if k != "name"}
    n, batch, steps = cl["workers"], cl["batch_size"], run["steps"]

    x = np.asarray(objective.init(init_rng), dtype=dtype)
    d = x.size
    if method.local_params is not None and spec["objective"]["name"] not in models.REGISTRY:
        _check_rows(objective, x, n, batch)
    shapes = getattr(objective, "shapes", None)
    try:
        state = method.init(x, n, hp, shapes)
    except ValueError as err:  # a setting only the objective's size shows wrong (one line)
        raise SpecError(str(err)) from None
    lrs = learning_rates(hp["lr"], steps, hp["schedule"], hp["warmup_steps"], hp["min_lr_ratio"])
    policy = _policy(spec["server"], n)
    initial = objective.evaluate(x)
    target = _Target(run["target"], run["target_metric"], initial)
    columns = ["step", "time_s", "bits_up", "bits_down", "train_loss", "lr", *PHASES,
               *PARTICIPATION]
    history = {c: np.full(steps, np.nan) for c in columns}
    bar = tqdm(total=steps, desc=label or spec["method"]["name"], disable=not progress,
               unit="step", leave=False, file=sys.stderr)
    if policy.versioned:  # no steps: the server applies updates as the messages arrive
        out = run_updates(spec, objective, method, hp, x, state, lrs, policy,
                          _compute_model(spec["compute"], n),
                          {k: v for k, v in net.items() if k not in _NETWORK_ONLY}, history,
                          target, data_rng=data_rng, method_rng=method_rng,
                          compute_rng=compute_rng, bar=bar, stop=stop)
        bar.close()
        if out["status"] == "stopped" and not keep_when_stopped:
            raise Cancelled(f"stopped after update {out['done']}")
        status = "interrupted" if out["status"] == "stopped" else out["status"]
        history = {k: v[:out["done"]] for k, v in {**history, **out["evals"]}.items()}
        summary = _summary(spec, objective, out["x"], history, status, out["reached_at"],
                           out["done"], initial, target, 0, wall_start,
                           {"collective": "ps", "collective_choice": None, "overlap": False,
                            "buckets": 0, "staleness": out["staleness"]}, [])
        return Result(params=out["x"], history=history, summary=summary, trace=out["trace"])
    collective = net["collective"]
    # a robust rule (median, Multi-Krum) needs every message at the server
    robust = hp.get("aggregate") in ("median", "trimmed_mean", "krum")
    wire = method.wire_bits
    bits_scale = cl["model_params"] / d if cl["model_params"] else 1.0
    try:
        cluster = Cluster(n, {k: v for k, v in net.items() if k not in _NETWORK_ONLY},
                          _compute_model(spec["compute"], n), collective, bits_scale,
                          header_bits=int(8 * net["header"]), policy=policy,
                          faults=FaultModel(**{k: v for k, v in spec["faults"].items()
                                               if k not in ADVERSARY_KEYS}),
                          fault_rng=fault_rng,
                          pipeline=Pipeline(int(8 * net["chunk"]), net["channels"], net["sockets"]),
                          wire_bits=None if wire is None else
                          (lambda length, k: wire(length, k, hp)),
                          candidates=("ps",) if robust else method.collectives
                          if method.candidates is None else method.candidates(hp),
                          buckets=_buckets(spec, shapes, d) if overlaps(spec) else None)
    except ValueError as err:
        raise SpecError(f"[network] {err}") from None
    # a worker back from a crash starts from the method's initial per-worker state
    cold = snapshot_rows(method.init(x, n, hp, shapes), n) if cluster.faults else None
    adversaries = _adversaries(spec["faults"], n, attack_rng)

    evals: dict[str, np.ndarray] = {}
    sent_up = sent_down = 0
    status, reached_at = "completed", None
    done = 0
    for t in range(steps):
        if stop is not None and stop():
            if keep_when_stopped:
                status = "interrupted"
                break
            bar.close()
            raise Cancelled(f"stopped before step {t + 1}")
        at = x if method.local_params is None else method.local_params(state)  # (N, d) rows
        losses, grads = objective.grads(at, n, batch, data_rng)
        train_loss = float(np.mean(losses))
        history["step"][t], history["train_loss"][t], history["lr"][t] = t + 1, train_loss, lrs[t]
        done = t + 1
        if not math.isfinite(train_loss):
            status = "diverged"
            break
        try:
            outcome = train_step(method, cluster, x, state, np.asarray(grads, dtype=dtype), hp,
                                 lrs[t], method_rng=method_rng, compute_rng=compute_rng,
                                 batch_size=batch, n_params=cl["model_params"] or d, step=t,
                                 cold=cold, adversaries=adversaries, attack_rng=attack_rng)
        except AllWorkersDown as err:
            status, done = "all_workers_down", t
            down_reason = str(err)
            break
        x, state, record = outcome.x, outcome.state, outcome.record
        history["empty"][t] = outcome.empty
        if adversaries is not None:
            taken = adversaries.mask if record.aggregated is None else record.aggregated
            history["adversarial"][t] = int((taken & adversaries.mask).sum())
        step_up, step_down = cluster.message_bits(record)
        sent_up, sent_down = sent_up + step_up, sent_down + step_down
        history["bits_up"][t], history["bits_down"][t] = sent_up, sent_down
        if (run["eval_every"] and (t + 1) % run["eval_every"] == 0) or t + 1 == steps:
            for key, value in objective.evaluate(x).items():
                if f"eval_{key}" not in evals:  # allocated once, not at every evaluation
                    evals[f"eval_{key}"] = np.full(steps, np.nan)
                evals[f"eval_{key}"][t] = value
            if target.reached(evals, t):
                status, reached_at = "target_reached", t
                break
        bar.update(1)
        if progress and t % 10 == 0:
            bar.set_postfix(loss=f"{train_loss:.4g}", refresh=False)
    bar.close()
    cluster.finish()
    # late arrivals and the last replies land after their step: count once time has run out
    for t, record in enumerate(cluster.records):
        for key, value in record.phases().items():
            history[key][t] = value
        history["aggregated"][t], history["late"][t] = record.n_aggregated, record.late
        history["lost"][t], history["down"][t] = record.lost, record.down_workers
        history["abandoned"][t] = record.abandoned
    history = {k: v[:done] for k, v in {**history, **evals}.items()}
    steady = method.steady_from(hp) if method.steady_from else 0  # after the method's warm-up
    summary = _summary(spec, objective, x, history, status, reached_at, done, initial, target,
                       steady, wall_start, {
                           "collective": cluster.collective,
                           "collective_choice": cluster.choice,
                           # the message went in gradient buckets during the backward pass
                           # (compute.overlap)
                           "overlap": any(r.buckets is not None for r in cluster.records),
                           "buckets": max((len(r.buckets[0]) for r in cluster.records
                                           if r.buckets is not None), default=0)},
                       [] if adversaries is None else adversaries.ids)
    if status == "all_workers_down":
        summary["stopped_because"] = down_reason
    trace = cluster.trace_rows() if run["trace"] else None
    return Result(params=x, history=history, summary=summary, trace=trace)


def _summary(spec: dict, objective, x, history: dict, status: str, reached_at, done: int,
             initial: dict, target, steady: int, wall_start: float, how: dict,
             adversaries: list) -> dict:
    """The run's summary (``Result.summary``): final metrics, time, bits per parameter per step
    (from 0-based step ``steady`` on too), mean phases, participation, the data's partition;
    ``how`` the run's collective and overlap, ``adversaries`` their ids."""
    cl = spec["cluster"]
    d = x.size
    partition = ({"partition": objective.partition_info(cl["workers"])}
                 if hasattr(objective, "partition_info") else {})
    final_eval = objective.evaluate(x) if status in ("diverged", "all_workers_down",
                                                     "interrupted") else {
        k[5:]: float(v[~np.isnan(v)][-1]) for k, v in history.items()
        if k.startswith("eval_") and np.any(~np.isnan(v))}
    return {
        "status": status,
        "steps": done,
        "sim_time_s": _last_finite(history["time_s"]),
        "wall_s": time.perf_counter() - wall_start,
        "final": {"train_loss": history["train_loss"][-1] if done else math.nan, **final_eval},
        "initial": initial,
        "target": None if target.value is None else {
            "metric": target.metric, "value": target.value,
            "step": None if reached_at is None else reached_at + 1,
            "time_s": None if reached_at is None else float(history["time_s"][reached_at])},
        "n_params": d,
        "model_params": cl["model_params"] or d,
        "bits_per_param_per_step": _bits_per_param(history, cl["model_params"] or d),
        "steady_from_step": steady + 1,
        "steady_bits_per_param_per_step": _bits_per_param(history, cl["model_params"] or d,
                                                          steady),
        "peak_bits_per_param": _peak_bits(history, cl["model_params"] or d, steady),
        "phases_mean_s": {p: _mean_taken(history[p]) for p in PHASES},
        **how,
        "participation": {key: int(np.nansum(history[key])) for key in PARTICIPATION},
        "adversaries": adversaries,
        "spec": spec,
        **partition,
    }


#: per-step history columns of who took part: messages aggregated, discarded as late (arrived
#: after the close), lost (each lost attempt), workers down at the close, computations given
#: up (still running when the step closed), and empty steps (nothing arrived: no update)
PARTICIPATION = ("aggregated", "late", "lost", "down", "abandoned", "empty", "adversarial")
#: [faults] keys of the adversaries (sim.adversaries); the rest are crashes and losses
ADVERSARY_KEYS = ("byzantine", "attack", "scale_factor", "collude")


def _adversaries(faults: dict, n: int, rng) -> Adversaries | None:
    """The run's adversaries from the resolved [faults] table (None when there are none)."""
    mask = choose(faults["byzantine"], n, rng) if faults["byzantine"] else None
    if mask is None or not mask.any():
        return None
    scale = SCALE_DEFAULT if faults["scale_factor"] is None else faults["scale_factor"]
    return Adversaries(mask, faults["attack"], scale, faults["collude"])


def _check_rows(objective, x, n: int, batch: int) -> None:
    """SpecError unless ``objective.grads`` takes one parameter row per worker (N, d), as a
    local-update method needs (one call, on a generator of its own)."""
    try:
        _, g = objective.grads(np.repeat(x[None], n, axis=0), n, batch, np.random.default_rng(0))
        ok = np.shape(g) == (n, x.size)
    except (ValueError, TypeError, IndexError):
        ok = False
    if not ok:
        raise SpecError(f"objective {type(objective).__name__}: its grads does not take "
                        f"per-worker parameters ({n}, {x.size}); allowed with method.name = "
                        "'diloco': an objective whose grads accepts (n_workers, dim) params")


def _policy(server: dict, n: int) -> Policy:
    """The server's policy from the resolved [server] table (k may be a fraction of N)."""
    k = server["k"]
    if isinstance(k, float):
        k = max(1, count_of(k, n, round_up=True))
    weight = {key: server[f"staleness_{key}"] for key in ("exponent", "threshold", "slope")
              if server[f"staleness_{key}"] is not None}
    return Policy(server["policy"], server["deadline"] or math.inf, k or 0,
                  server["staleness"] or 0, server["staleness_weight"] or "constant", **weight)


def _buckets(spec: dict, shapes, d: int) -> Buckets:
    """The gradient buckets of the spec's model (``sim.buckets``): the preset's layers, the
    objective's tensors, or cluster.layers equal layers of the virtual model."""
    cl, net = spec["cluster"], spec["network"]
    params = cl["model_params"] or d
    if cl["model"] is not None:
        layers = scaled_layers(preset_layers(cl["model"]), params)
    elif not cl["model_params"] and shapes:
        layers = [math.prod(shape) for _, shape in shapes]
    else:
        layers = equal_layers(params, cl["layers"])
    return plan(layers, net["bucket"], net["first_bucket"], spec["compute"]["backward_fraction"])


def _compute_model(compute: dict, n: int) -> ComputeModel:
    """The compute model of the resolved [compute] table (a trace file is read here)."""
    table = {k: v for k, v in compute.items() if k not in _SCHEDULE_ONLY and v is not None}
    if compute["distribution"] == "trace":
        table["trace"] = read_trace(compute["trace_file"], n)
    return ComputeModel(**table)


def _mean_taken(column: np.ndarray) -> float:
    """Mean of a phase column over the steps that had that phase (0 when none did)."""
    taken = column[~np.isnan(column)]
    return float(taken.mean()) if taken.size else 0.0


def _last_finite(column: np.ndarray) -> float:
    finite = column[np.isfinite(column)]
    return float(finite[-1]) if finite.size else 0.0


def _bits_per_param(history, n_params, first: int = 0) -> dict:
    """Bits per (virtual) parameter per step, up and down, averaged over the steps sent from
    0-based step ``first`` on (the steady state after the method's warm-up; all zero for a run
    that sent nothing, None for one that ended before ``first``)."""
    count = int(np.count_nonzero(~np.isnan(history["bits_up"])))
    if count <= first:
        value = None if first else 0.0
        return {"up": value, "down": value, "total": value}
    up, down = ((float(history[k][count - 1]) - (float(history[k][first - 1]) if first else 0.0))
                / (count - first) / n_params for k in ("bits_up", "bits_down"))
    return {"up": up, "down": down, "total": up + down}


def _peak_bits(history, n_params, first: int = 0) -> dict:
    """The largest step's bits per (virtual) parameter, up, down and both, from step index
    ``first`` on (after the method's warm-up, like the steady average): the most one worker
    sends (receives) in one step, the burst its link carries, against the per-step average."""
    count = int(np.count_nonzero(~np.isnan(history["bits_up"])))
    if not count:
        return {"up": 0.0, "down": 0.0, "total": 0.0}
    first = first if first < count else 0
    up, down = (np.diff(history[k][:count], prepend=0.0)[first:] / n_params
                for k in ("bits_up", "bits_down"))
    return {"up": float(up.max()), "down": float(down.max()), "total": float((up + down).max())}


class _Target:
    """Early stopping once an evaluation metric reaches a value (accuracy-like: from below)."""

    def __init__(self, value, metric, initial: dict):
        self.value, self.metric = value, metric
        if value is not None and metric not in initial:
            raise SpecError(f"run.target_metric = {metric!r}: the objective reports "
                            f"{', '.join(initial)}{suggest(metric, list(initial))}")
        self.maximise = "acc" in metric

    def reached(self, evals: dict, t: int) -> bool:
        if self.value is None:
            return False
        current = evals[f"eval_{self.metric}"][t]
        return current >= self.value if self.maximise else current <= self.value
