"""One training step of the co-simulation: the numerics of every worker and the server, in the
order the simulated clock decides.

    encode   every worker's message from its gradient (vectorised over the N workers)
    gather   the network and the server's policy decide, at a simulated time, which messages
             arrived in time and which workers finished computing
    aggregate exactly the messages that arrived, then ``reply`` sends the result back
    apply    the reply; a worker that did not finish computing keeps its old state, and an
             error-feedback worker whose message was discarded keeps all of it in its memory

A step in which nothing arrived applies no update. A step whose method sends nothing (no
rounds: a local-update method's inner step) is timed as compute only and applied at once; a
step whose collective runs behind the next steps (``Method.behind``: Streaming DiLoCo's
overlap) ends for its workers when they have computed (``sim.local``). When every message
always arrives (server policy ``all``, no faults) this is exactly encode, aggregate, apply for
all N workers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from sim.adversaries import Adversaries
from sim.cluster import Cluster, StepRecord
from sim.local import run_behind
from sim.methods import Method, message_rounds
from sim.methods.base import restore_rows, snapshot_rows


@dataclass
class StepResult:
    """What one step did: the new parameters and state, and its timing record."""

    x: np.ndarray
    state: dict
    record: StepRecord
    empty: bool = False  # no message arrived: no update was applied


def select(payloads, mask: np.ndarray):
    """The messages of the workers in ``mask`` (bool (N,)), in worker order."""
    if isinstance(payloads, np.ndarray):
        return payloads[mask]
    return [p for p, keep in zip(payloads, mask.tolist()) if keep]


def train_step(method: Method, cluster: Cluster, x, state, grads, hp, lr, *,
               method_rng, compute_rng, batch_size: int, n_params: int, step: int,
               cold: dict | None = None, adversaries: Adversaries | None = None,
               attack_rng=None) -> StepResult:
    """Simulate step ``step`` (0-based) of ``method`` on ``cluster``; see the module docstring.

    ``cold``: the method's initial state, for workers that rejoin after a crash.
    ``adversaries``: Byzantine workers, who feed their method an attack instead of their
    gradient (``sim.adversaries``; random attacks draw from ``attack_rng``); a method that
    ``flips`` is told instead who flips.
    """
    n, d = grads.shape
    flipping = {}  # a method that negates its flipping adversaries' messages itself is told who
    if adversaries is not None:
        if method.flips and adversaries.attack == "flip" and adversaries.mask.any():
            flipping = {"flipped": adversaries.mask}
        grads = adversaries.corrupt(grads, attack_rng, negate=not flipping)
    # fewer than all messages may count (a policy, faults): a collective decided at this step
    # (``auto``) can tell only after it has seen the messages, so the state is kept whenever
    uneven = cluster.uneven
    if uneven:
        cluster.open(step)  # an all-down wait decides who rejoins: before anyone encodes
        rejoining = cluster.rejoining
        if cold is not None and rejoining.any():
            restore_rows(state, cold, rejoining)
        before = snapshot_rows(state, n)
        # a multi-round method reduces over the first round's workers inside encode: it may
        # have to encode again once the server has said who those are
        again = copy.deepcopy(state) if "encode" in method.arrivals else None
    local = {"lr": lr} if method.local_params is not None else {}  # its workers' own steps
    payloads, state = method.encode(state, grads, hp, method_rng, **flipping, **local)
    rounds = message_rounds(method, state, payloads, None)
    record = cluster.gather(rounds, batch_size, n_params, compute_rng, step)
    if rounds and method.behind is not None and method.behind(hp):
        run_behind(cluster, record, method.behind(hp))
    if not rounds:  # nothing sent (a local-update method's inner step): compute only
        x, state = method.apply(x, None, state, hp, lr)
        return StepResult(x, state, record)
    if not cluster.partial:
        reply = method.aggregate(payloads, d, hp, method_rng)
        cluster.reply(message_rounds(method, state, payloads, reply)[-1][1])
        x, state = method.apply(x, reply, state, hp, lr)
        return StepResult(x, state, record)

    arrived, computed = record.aggregated, record.computed
    if not arrived.any():
        restore_rows(state, before, ~computed)
        cluster.reply(0)
        return StepResult(x, state, record, empty=True)
    if again is not None and not record.participants.all():
        payloads, state = method.encode(again, grads, hp, method_rng,
                                        arrived=record.participants, **flipping, **local)
    # a worker that did not finish computing (it gave the step up, or was down) changed nothing
    restore_rows(state, before, ~computed)
    received = select(payloads, arrived)
    reply = method.aggregate(received, d, hp, method_rng)
    cluster.reply(message_rounds(method, state, received, reply)[-1][1])
    if "apply" in method.arrivals:
        x, state = method.apply(x, reply, state, hp, lr, arrived=arrived)
    else:
        x, state = method.apply(x, reply, state, hp, lr)
    if method.discard is not None and (computed & ~arrived).any():
        state = method.discard(state, computed & ~arrived)
    return StepResult(x, state, record)
