"""Compute-time models: how long a worker's step and the server's aggregation take (seconds).

Every cost defaults to zero, so a run that names none measures pure network time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ComputeModel:
    """Per-step compute time of each worker, and the server's and codecs' costs.

    step_time       s per step, fixed part
    per_sample      s per sample of the worker's batch
    flops_per_sample, device_flops   FLOPs per sample and the device's FLOP/s (adds their ratio)
    jitter          sigma of a mean-one lognormal factor on each worker's time (0 = none)
    straggler_prob  probability that a worker is a straggler on a given step
    straggler_slowdown  factor a straggler's compute time is multiplied by
    aggregate_per_byte  s of server time per byte received
    codec_per_param s per parameter to encode (worker) or decode (server) one message
    """

    step_time: float = 0.0
    per_sample: float = 0.0
    flops_per_sample: float = 0.0
    device_flops: float = 0.0
    jitter: float = 0.0
    straggler_prob: float = 0.0
    straggler_slowdown: float = 1.0
    aggregate_per_byte: float = 0.0
    codec_per_param: float = 0.0

    def worker_times(self, n_workers: int, batch_size: int, n_params: int,
                     rng: np.random.Generator) -> np.ndarray:
        """Compute time (s) of each worker's step, including its encode cost: shape (n_workers,)."""
        base = self.step_time + self.per_sample * batch_size + self.codec_per_param * n_params
        if self.device_flops > 0:
            base += self.flops_per_sample * batch_size / self.device_flops
        times = np.full(n_workers, base)
        if self.jitter > 0:
            # mean-one lognormal: exp(N(-s^2/2, s^2)) keeps the average step time unchanged
            times *= rng.lognormal(-0.5 * self.jitter**2, self.jitter, n_workers)
        if self.straggler_prob > 0:
            times *= np.where(rng.random(n_workers) < self.straggler_prob,
                              self.straggler_slowdown, 1.0)
        return times

    def server_time(self, bytes_received: int, n_messages: int, n_params: int) -> float:
        """Server time (s) to decode ``n_messages`` messages and aggregate ``bytes_received``."""
        return self.aggregate_per_byte * bytes_received + self.codec_per_param * n_params * n_messages
