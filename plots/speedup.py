"""A method's speed-up over a baseline in time to target, from run summaries alone: the
outcome of one run, the ratio (or a lower bound when the baseline never reached the target),
and their short texts. Light to import: the explorer's answer and ``dlion-sim summary`` share it."""
from __future__ import annotations

from dataclasses import dataclass

from plots.style import pretty

#: The method every speed-up is measured against (the fair fp32 baseline).
BASELINE = "gadamw"


@dataclass(frozen=True)
class Answer:
    """One compared method's outcome: time to target [s simulated] (None: not reached)."""

    key: str
    time_s: float | None
    steps: int          # steps run (to the target, or all of them)
    sim_time_s: float   # simulated seconds of the steps run
    bits: float         # bits per parameter per step, up + down
    color: str

    @property
    def label(self) -> str:
        return pretty(self.key)


def seconds_text(seconds: float) -> str:
    """Simulated seconds in a short form: '350 ms', '12.3 s', '4,201 s'."""
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 1000 else f"{seconds:,.0f} s"


def times_text(ratio: float) -> str:
    """A ratio as '8.13x', '26x', '1,234x'."""
    return (f"{ratio:.3g}" if ratio < 1000 else f"{ratio:,.0f}") + "x"


def speedup(answer: Answer, baseline: Answer | None) -> tuple[float, bool] | None:
    """(speed-up of ``answer`` over ``baseline``, whether it is only a lower bound), or None
    when there is nothing to say (no baseline, or ``answer`` did not reach the target). A
    baseline that never reached it took longer than all its simulated time: a lower bound."""
    if baseline is None or answer.time_s is None:
        return None
    if baseline.time_s is None:
        return baseline.sim_time_s / answer.time_s, True
    return baseline.time_s / answer.time_s, False
