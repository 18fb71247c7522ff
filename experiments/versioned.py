"""Runs on a versioned server (``server.policy`` = async, ssp or fedbuff; ``sim.versioned``):
``run.steps`` counts server updates, and the history has one row per update.

A row's ``time_s`` is when the update reached the worker whose message completed it (its reply
landed; under fedbuff that reply leaves before the update is applied, so no earlier than the
server's aggregation ends), ``worker`` is that worker, ``staleness`` and ``staleness_max`` the mean and largest
staleness of the update's messages (versions applied between their read and this update),
``aggregated`` their number; ``train_loss`` is the mean of their minibatch losses, each at the x
its worker read. Bits are cumulative per worker, as in a synchronous run: every message that
entered an update and every reply that left after one.
"""
from __future__ import annotations

import math

import numpy as np

from experiments.keys import SpecError
from sim import methods
from sim.compute import ComputeModel
from sim.methods import Method
from sim.server import VERSIONED, Policy
from sim.versioned import Numerics, VersionedServer

#: what a versioned server's updates need of a run: (section, key, allowed: a test, in words)
_VERSIONED_NEEDS = (
    ("network", "collective", lambda v: v in ("ps", "auto"), "'ps' (a server holds x)"),
    ("faults", "crash_workers", lambda v: not v, "[] (no crashes under a versioned server)"),
    ("faults", "crash_rate", lambda v: v == 0, "0 (no crashes under a versioned server)"),
    ("faults", "loss", lambda v: v == 0, "0 (no message loss under a versioned server)"),
    ("faults", "byzantine", lambda v: not v, "0 (no adversaries under a versioned server)"),
)


def check_versioned(spec: dict) -> None:
    """Server policies async, ssp and fedbuff in a resolved ``spec``: refuse what a versioned
    server does not model (``SpecError``), and fill in the staleness weight's settings."""
    server = spec["server"]
    if server["policy"] not in VERSIONED:
        return
    what = f"server.policy = {server['policy']!r}"
    method = methods.METHODS[spec["method"]["name"]]
    if not method.stale:
        allowed = ", ".join(repr(m.name) for m in methods.METHODS.values() if m.stale)
        raise SpecError(f"{what}: method.name = {method.name!r} needs every worker's message "
                        "in every step (its collective or state is shared by the step), so its "
                        f"updates cannot be applied one message or buffer at a time; allowed: "
                        f"{allowed}")
    for section, key, ok, allowed in _VERSIONED_NEEDS:
        if not ok(spec[section][key]):
            raise SpecError(f"{what} with {section}.{key} = {spec[section][key]!r}: allowed: "
                            f"{allowed}")
    spec["network"]["collective"] = "ps"
    weights = Policy()
    server["staleness_weight"] = server["staleness_weight"] or weights.weight
    for key, rule in (("exponent", "polynomial"), ("threshold", "hinge"), ("slope", "hinge")):
        if server["staleness_weight"] == rule and server[f"staleness_{key}"] is None:
            server[f"staleness_{key}"] = getattr(weights, key)


def run_updates(spec: dict, objective, method: Method, hp: dict, x, state, lrs, policy: Policy,
                compute: ComputeModel, network: dict, history: dict, target, *, data_rng,
                method_rng, compute_rng, bar, stop=None) -> dict:
    """Simulate ``run.steps`` updates of the resolved ``spec`` and fill ``history`` (one array of
    ``run.steps`` per column); ``target`` stops the run (``experiments.run._Target``), ``bar``
    counts updates, ``stop()`` interrupts it. Returns the run's outcome: x, evals, done (rows),
    status ("completed", "diverged", "target_reached", "stopped"), reached_at, trace, staleness.
    """
    run, cl = spec["run"], spec["cluster"]
    n, steps = cl["workers"], run["steps"]
    d = x.size
    numerics = Numerics(method, objective, x, state, hp, lrs, policy, n, cl["batch_size"],
                        np.dtype(run["dtype"]), method_rng, data_rng)
    try:
        server = VersionedServer(n, network, compute, policy, numerics,
                                 batch_size=cl["batch_size"], n_params=cl["model_params"] or d,
                                 compute_rng=compute_rng,
                                 bits_scale=cl["model_params"] / d if cl["model_params"] else 1.0,
                                 header_bits=int(8 * spec["network"]["header"]))
    except ValueError as err:
        raise SpecError(f"[network] {err}") from None
    evals: dict[str, np.ndarray] = {}
    outcome = {"status": "completed", "reached_at": None}

    def after(u: int) -> bool:
        """Whether the run ends after update ``u`` (0-based): divergence, target, a stop."""
        bar.update(1)
        loss = float(np.mean([m.loss for m in server.updates[u].messages]))
        if not math.isfinite(loss):
            outcome["status"] = "diverged"
            return True
        if (run["eval_every"] and (u + 1) % run["eval_every"] == 0) or u + 1 == steps:
            for key, value in objective.evaluate(numerics.x).items():
                if f"eval_{key}" not in evals:
                    evals[f"eval_{key}"] = np.full(steps, np.nan)
                evals[f"eval_{key}"][u] = value
            if target.reached(evals, u):
                outcome.update(status="target_reached", reached_at=u)
                return True
        if stop is not None and stop():
            outcome["status"] = "stopped"
            return True
        return False

    server.run(steps, after)
    done = len(server.updates)
    up = down = 0
    rows = []
    for u, update in enumerate(server.updates):
        msgs, last = update.messages, update.trigger
        taus = [m.staleness for m in msgs]
        up, down = up + sum(m.up for m in msgs) / n, down + sum(m.down for m in msgs) / n
        # fedbuff releases its workers at once: the update exists only once it is aggregated
        row = {"step": u + 1, "time_s": max(last.reply_done, update.agg_end), "bits_up": up,
               "bits_down": down,
               "train_loss": float(np.mean([m.loss for m in msgs])), "lr": lrs[u],
               "compute_s": np.mean([m.ready - m.start for m in msgs]),
               "comm_up_s": np.mean([m.arrived - m.ready for m in msgs]),
               "aggregate_s": update.agg_end - update.agg_start,
               "comm_down_s": last.reply_done - last.reply_at,
               "idle_s": np.mean([update.agg_start - m.arrived for m in msgs]),
               "exposed_comm_s": last.reply_done - last.ready, "overlapped_s": 0.0,
               "aggregated": len(msgs), "late": 0, "lost": 0, "down": 0, "abandoned": 0,
               "empty": 0, "adversarial": 0,
               "worker": last.worker, "staleness": np.mean(taus), "staleness_max": max(taus)}
        rows.append(row)
    for key in rows[0] if rows else ():  # one column at a time, each allocated once
        if key not in history:
            history[key] = np.full(steps, np.nan)
        history[key][:len(rows)] = [row[key] for row in rows]
    applied = np.array([m.staleness for m in server.messages if m.update >= 0], dtype=float)
    return {**outcome, "x": numerics.x, "evals": evals, "done": done,
            "trace": trace_rows(server) if run["trace"] else None,
            "staleness": staleness_summary(applied, policy)}


def staleness_summary(taus: np.ndarray, policy: Policy) -> dict:
    """The staleness (versions) of the messages that entered an update: its distribution and
    the mean weight their steps were scaled by."""
    if taus.size == 0:
        return {"messages": 0}
    return {"messages": int(taus.size), "mean": float(taus.mean()),
            "p50": float(np.percentile(taus, 50)), "p90": float(np.percentile(taus, 90)),
            "max": int(taus.max()), "weight_mean": float(policy.weights(taus).mean())}


def trace_rows(server: VersionedServer) -> list[tuple]:
    """Timeline events (node, phase, start_s, end_s, bytes, step) of the applied messages: each
    worker's compute from its read, its message up to the arrival, the wait for its reply
    (idle) and the reply; the server's aggregate of each update (steps: updates, 1-based)."""
    rows = []
    for m in server.messages:
        if m.update < 0:
            continue
        node, step = f"worker{m.worker}", m.update + 1
        rows += [(node, "compute", m.start, m.ready, 0, step),
                 (node, "send", m.ready, m.arrived, m.up // 8, step)]
        if not math.isnan(m.reply_at):
            rows += [(node, "idle", m.arrived, m.reply_at, 0, step),
                     (node, "receive", m.reply_at, m.reply_done, m.down // 8, step)]
    rows += [("server", "aggregate", u.agg_start, u.agg_end, sum(m.up for m in u.messages) // 8,
              i + 1) for i, u in enumerate(server.updates)]
    return rows
