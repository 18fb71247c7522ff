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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

POLICIES = ("all", "deadline", "first_k")


@dataclass(frozen=True)
class Policy:
    """A server policy: ``kind`` in POLICIES, ``deadline`` in seconds, ``k`` messages."""

    kind: str = "all"
    deadline: float = math.inf
    k: int = 0

    def __post_init__(self):
        if self.kind not in POLICIES:
            raise ValueError(f"policy={self.kind!r}: choose one of {', '.join(POLICIES)}")
        if self.kind == "deadline" and not 0 < self.deadline < math.inf:
            raise ValueError(f"deadline={self.deadline!r}: must be a positive finite number "
                             "of seconds")
        if self.kind == "first_k" and self.k < 1:
            raise ValueError(f"k={self.k!r}: must be an integer >= 1")


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
