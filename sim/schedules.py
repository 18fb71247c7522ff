"""Learning-rate schedules, identical on every worker (so parameters never drift apart)."""
from __future__ import annotations

import numpy as np

SCHEDULES = {
    "constant": "the same learning rate at every step",
    "warmup": "linear warm-up from 0 over warmup_steps, then constant",
    "cosine": "linear warm-up, then cosine decay to min_lr_ratio * lr at the last step",
}


def learning_rates(lr: float, steps: int, schedule: str = "constant", warmup_steps: int = 0,
                   min_lr_ratio: float = 0.0) -> np.ndarray:
    """Learning rate for steps 0..steps-1 as a float64 array (dimensionless multiplier of the update)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"method.schedule = {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    t = np.arange(steps, dtype=np.float64)
    rates = np.full(steps, float(lr))
    if schedule == "constant":
        return rates
    if warmup_steps > 0:
        # step t uses (t+1)/warmup so the first step already moves (a zero step would waste it)
        rates = lr * np.minimum(1.0, (t + 1) / warmup_steps)
    if schedule == "cosine":
        decay_len = max(steps - warmup_steps - 1, 1)  # the last step is at min_lr_ratio
        progress = np.clip((t - warmup_steps) / decay_len, 0.0, 1.0)
        cosine = min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * progress))
        rates = np.where(t < warmup_steps, rates, lr * cosine)
    return rates
