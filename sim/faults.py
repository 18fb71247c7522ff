"""Faults: worker crashes and recoveries, and lost messages, drawn from the run's seed.

Crashes. A worker crashes at a given time or step (``crash_workers`` with ``crash_time`` or
``crash_step``), or at random with ``crash_rate`` crashes per worker per simulated second
(exponential times between failures). A crashed worker loses the computation it was doing,
sends nothing more and receives nothing; a message it had already put on the wire is still
delivered. After ``recover_after`` seconds (never, when None) it is back: it rejoins at the next
step the server opens, with the current parameters and a cold optimizer state. The server
learns of a crash ``detect_after`` seconds after it happened (a missed heartbeat) and from then
on does not wait for that worker, so no policy waits for ever.

Lost messages. Each message a worker sends is lost with probability ``loss``. With
``on_loss = "retransmit"`` it is sent again, whole, ``rto`` seconds after the lost attempt ended
(so a loss costs its transfer time plus the retransmission timeout); with ``"drop"`` it never
arrives and the server's policy goes on without it. The server's replies are not lost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOSS_HANDLING = ("retransmit", "drop")


@dataclass(frozen=True)
class FaultModel:
    """What can go wrong in a run (see the module docstring); times in seconds."""

    crash_workers: tuple[int, ...] = ()
    crash_time: float | None = None
    crash_step: int | None = None
    crash_rate: float = 0.0
    recover_after: float | None = None
    detect_after: float = 1.0
    loss: float = 0.0
    on_loss: str = "retransmit"
    rto: float = 0.2

    @property
    def active(self) -> bool:
        """Whether anything can go wrong at all."""
        return bool(self.crash_workers) or self.crash_rate > 0 or self.loss > 0


class WorkerFaults:
    """The crash history of N workers as simulated time goes on, and loss draws.

    ``crash_at[w]`` is worker w's next (or current) crash time and ``recover_at[w]`` the end of
    that down time (inf: never). A worker is down at time t when crash_at <= t < recover_at.
    """

    def __init__(self, model: FaultModel, n_workers: int, rng: np.random.Generator):
        self.model = model
        self.rng = rng
        self.crash_at = np.full(n_workers, math.inf)
        self.recover_at = np.full(n_workers, math.inf)
        listed = np.zeros(n_workers, dtype=bool)
        listed[list(model.crash_workers)] = True
        self._listed = listed
        if model.crash_time is not None:
            self.crash_at[listed] = model.crash_time
        if model.crash_rate > 0:
            self.crash_at = np.minimum(self.crash_at, self._draw_crash(0.0, n_workers))
        self._set_recovery(np.isfinite(self.crash_at))

    def _draw_crash(self, after, size):
        return after + self.rng.exponential(1.0 / self.model.crash_rate, size)

    def _set_recovery(self, which):
        if self.model.recover_after is not None:
            self.recover_at[which] = self.crash_at[which] + self.model.recover_after

    def open_step(self, step: int, now: float) -> np.ndarray:
        """Bring the history up to ``now``, the opening of ``step`` (1-based); returns the
        workers that recovered since the last opening (they rejoin with a cold state)."""
        if self.model.crash_step == step:
            hit = self._listed & (self.crash_at > now)
            self.crash_at[hit] = now
            self._set_recovery(hit)
        rejoined = np.zeros(self.crash_at.size, dtype=bool)
        while True:  # a worker may crash and recover more than once between two openings
            back = self.recover_at <= now
            if not back.any():
                return rejoined
            rejoined |= back
            self.crash_at[back] = (self._draw_crash(self.recover_at[back], int(back.sum()))
                                   if self.model.crash_rate > 0 else math.inf)
            self.recover_at[back] = math.inf
            self._set_recovery(back & np.isfinite(self.crash_at))

    def down(self, now: float) -> np.ndarray:
        """bool (N,): the workers that are down at ``now``."""
        return (self.crash_at <= now) & (now < self.recover_at)

    def detected(self, now: float) -> np.ndarray:
        """bool (N,): the workers the server knows to be down at ``now``."""
        return self.down(now) & (self.crash_at + self.model.detect_after <= now)

    def next_recovery(self, now: float) -> float:
        """The earliest time after ``now`` at which a down worker comes back (inf: none)."""
        later = self.recover_at[(self.recover_at > now) & self.down(now)]
        return float(later.min()) if later.size else math.inf

    def detection_times(self) -> np.ndarray:
        """float (N,): when the server will notice each worker's next crash (inf: never)."""
        return self.crash_at + self.model.detect_after

    def lost(self) -> bool:
        """Draw whether one message is lost."""
        return self.model.loss > 0 and bool(self.rng.random() < self.model.loss)


def sender(net, faults: WorkerFaults | None, closer, on_lost, drop: bool, transfer=None):
    """A ``send(worker, server, bits, delay) -> event`` for ``sim.net.collectives.push``.

    The piece leaves once the worker has computed (``delay`` from now), unless by then the
    worker has crashed or the step has closed (``closer``): a worker that had not finished
    computing when its step closed gives the step up. A lost piece is reported to
    ``on_lost(worker, begin, end, bits)`` (end: when it is sent again, or, dropped, when the
    lost attempt ended) and sent again ``rto`` after the attempt ended, or, with
    ``drop`` and ``on_loss = "drop"``, never arrives. The event fires when the piece arrives.
    ``transfer(worker, server, bits, delay, guard) -> event`` sends one attempt (default: a
    message on ``net``; the shard owners send a worker's pieces as one flow).
    """
    env = net.env
    if transfer is None:
        def transfer(w, server, bits, wait, guard):
            return net.transfer(w, server, bits, delay=wait, guard=guard)
    drop = drop and faults is not None and faults.model.on_loss == "drop"

    def send(w, server, bits, delay):
        done = env.event()
        computed_at = env.now + delay

        def allowed():
            if faults is not None and faults.crash_at[w] <= computed_at:
                return False
            return not (closer.is_closed and closer.close_time < computed_at)

        def attempt(wait, guard, begin):
            ev = transfer(w, server, bits, wait, guard)
            ev.callbacks.append(lambda e: landed(e.value, begin))

        def landed(t, begin):
            if faults is not None and faults.lost():
                retry = t + faults.model.rto
                on_lost(w, begin, t if drop else retry, bits)
                if not drop:
                    attempt(faults.model.rto, lambda: faults.crash_at[w] > env.now, retry)
            else:
                done.succeed(t)

        attempt(delay, allowed, computed_at)
        return done

    return send
