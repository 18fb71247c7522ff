"""When the parameter server closes a step: its aggregation policy.

A step *opens* when the server sends the previous step's reply (at time 0 for the first step).
From then on the server counts the workers' messages as they arrive and closes the step, at a
simulated time, by its policy:

- ``all``: once every worker it expects has been heard from (the default; a crashed worker is
  no longer expected once the server has detected the crash);
- ``deadline``: ``deadline`` seconds after the opening, or earlier once every expected worker
  has been heard from;
- ``first_k``: once ``k`` messages have arrived (backup workers: Chen et al. 2016), or earlier
  once every expected worker has been heard from.

Only the messages that arrived by the close are aggregated; a message that arrives later is
discarded.

Three policies have no steps to close: a *versioned* server (``sim.versioned``) holds the
parameters and a version count, and applies updates as the messages arrive:

- ``async``: each message, the moment it arrives;
- ``ssp``: stale synchronous parallel (Ho et al. 2013), a clock's N messages together; a worker
  ``staleness`` clocks ahead of the slowest waits for it (0: the synchronous run);
- ``fedbuff``: every ``k`` messages, whoever sent them (Nguyen et al. 2022, FedBuff).

An update's step is scaled by a weight of the staleness tau of its messages (the versions
applied between a message's read and its update), ``staleness_weight``:

- ``constant``: 1;
- ``inverse_sqrt``: 1 / sqrt(1 + tau) (FedBuff, Nguyen et al. 2022);
- ``polynomial``: (1 + tau)^-a, a = ``exponent`` (FedAsync, Xie et al. 2019);
- ``hinge``: 1 for tau <= b, else 1 / (a (tau - b) + 1), b = ``threshold``, a = ``slope``
  (FedAsync).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

#: the policies of a versioned server (module docstring)
VERSIONED = ("async", "ssp", "fedbuff")
POLICIES = ("all", "deadline", "first_k", *VERSIONED)
WEIGHTS = ("constant", "inverse_sqrt", "polynomial", "hinge")


@dataclass(frozen=True)
class Policy:
    """A server policy: ``kind`` in POLICIES, ``deadline`` in seconds, ``k`` messages; for a
    versioned server ``staleness`` (ssp's bound, in clocks) and the staleness ``weight`` with
    its ``exponent``, ``threshold`` (versions) and ``slope`` (module docstring)."""

    kind: str = "all"
    deadline: float = math.inf
    k: int = 0
    staleness: int = 0
    weight: str = "constant"
    exponent: float = 0.5
    threshold: int = 4
    slope: float = 10.0

    def __post_init__(self):
        if self.kind not in POLICIES:
            raise ValueError(f"policy={self.kind!r}: choose one of {', '.join(POLICIES)}")
        if self.kind == "deadline" and not 0 < self.deadline < math.inf:
            raise ValueError(f"deadline={self.deadline!r}: must be a positive finite number "
                             "of seconds")
        if self.kind in ("first_k", "fedbuff") and self.k < 1:
            raise ValueError(f"k={self.k!r}: must be an integer >= 1")
        if self.staleness < 0:
            raise ValueError(f"staleness={self.staleness!r}: must be an integer >= 0")
        if self.weight not in WEIGHTS:
            raise ValueError(f"staleness_weight={self.weight!r}: choose one of "
                             f"{', '.join(WEIGHTS)}")

    @property
    def versioned(self) -> bool:
        """The server applies updates as messages arrive (async, ssp, fedbuff): no steps."""
        return self.kind in VERSIONED

    def weights(self, tau) -> np.ndarray:
        """The staleness weight (module docstring) of each staleness in ``tau`` (versions)."""
        tau = np.asarray(tau, dtype=np.float64)
        if self.weight == "inverse_sqrt":
            return 1.0 / np.sqrt(1.0 + tau)
        if self.weight == "polynomial":
            return (1.0 + tau) ** -self.exponent
        if self.weight == "hinge":
            return 1.0 / (self.slope * np.maximum(tau - self.threshold, 0.0) + 1.0)
        return np.ones_like(tau)


class StepClose:
    """Counts one round's arrivals and fires ``closed`` (value: the close time) by the policy.

    ``expected``: bool (N,) the workers the server waits for; ``forget(w)`` drops one (a
    detected crash). ``arrived`` holds, after the close, the workers whose messages made it.
    """

    def __init__(self, env: simpy.Environment, policy: Policy, expected: np.ndarray,
                 opening: float):
        self.env = env
        self.policy = policy
        self.expected = expected.copy()
        self.arrived = np.zeros(expected.size, dtype=bool)
        self.closed = env.event()
        self.close_time: float | None = None
        self._count = 0
        self._missing = int(expected.sum())
        if policy.kind == "deadline":
            timer = env.timeout(max(0.0, opening + policy.deadline - env.now))
            timer.callbacks.append(lambda _: self._close())
        self._check()

    @property
    def is_closed(self) -> bool:
        return self.close_time is not None

    def arrival(self, w: int) -> None:
        """Worker ``w``'s message has arrived now (ignored once the step is closed)."""
        if self.is_closed:
            return
        self.arrived[w] = True
        self._count += 1
        if self.expected[w]:
            self._missing -= 1
        self._check()

    def forget(self, w: int) -> None:
        """Stop waiting for worker ``w`` (its crash was detected)."""
        if self.is_closed or not self.expected[w]:
            return
        self.expected[w] = False
        if not self.arrived[w]:
            self._missing -= 1
        self._check()

    def watch(self, detections: np.ndarray) -> None:
        """Forget each worker at its time in ``detections`` (s; inf: never), the moment the
        server detects its crash; one timer at a time, the next detection."""
        detect = detections.copy()

        def next_detection(_=None):
            while not self.is_closed:
                w = int(np.argmin(detect))
                if not math.isfinite(detect[w]):
                    return
                if detect[w] > self.env.now:
                    self.env.timeout(detect[w] - self.env.now).callbacks.append(next_detection)
                    return
                detect[w] = math.inf
                self.forget(w)

        next_detection()

    def _check(self):
        if self._missing == 0 or (self.policy.kind == "first_k" and self._count >= self.policy.k):
            self._close()

    def _close(self):
        if not self.is_closed:
            self.close_time = self.env.now
            self.closed.succeed(self.env.now)
