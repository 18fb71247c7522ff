"""Compute-time models: how long a worker's step and the server's aggregation take (seconds).

Every cost defaults to zero, so a run that names none measures pure network time. A worker's
step time is a base time (fixed, per sample, per FLOP) times a random factor drawn per worker
and step from ``distribution``, which is how measurement studies and simulators model
stragglers:

- ``lognormal``: a mean-one lognormal factor of sigma ``jitter`` (0 = none);
- ``shifted_exponential``: 1 + Exp(mean ``tail``): never faster than the base time, with the
  exponential tail of queueing delays (the slowest of N is about ln N * tail later);
- ``pareto``: a Pareto factor of shape ``pareto_shape`` and minimum 1 (heavy tail: the mean is
  shape / (shape - 1), infinite for shape <= 1);
- ``trace``: replay measured per-worker step times, one row per step (cycled), one column per
  worker, from ``trace`` (the base time is then not used).

On top of any of these, ``straggler_prob`` makes a worker a straggler for a step, multiplying
its time by ``straggler_slowdown``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DISTRIBUTIONS = ("lognormal", "shifted_exponential", "pareto", "trace")


def read_trace(path, n_workers: int) -> np.ndarray:
    """A step-time trace CSV -> float64 (steps, n_workers) seconds.

    The first row names the columns, one per worker; every further row is one step's times in
    seconds (finite, >= 0). ValueError naming the file and the problem otherwise.
    """
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except OSError as err:
        raise ValueError(f"cannot read the trace {str(path)!r}: {err.strerror}") from None
    except (UnicodeDecodeError, csv.Error):
        raise ValueError(f"the trace {str(path)!r} is not a CSV text file") from None
    if len(rows) < 2:
        raise ValueError(f"the trace {str(path)!r} needs a header row and at least one row of "
                         "step times")
    header, body = rows[0], rows[1:]
    if len(header) != n_workers:
        raise ValueError(f"the trace {str(path)!r} has {len(header)} worker columns but "
                         f"cluster.workers = {n_workers}")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"the trace {str(path)!r}, line {i}: {len(row)} values, expected "
                             f"{len(header)} (one per worker)")
    try:
        times = np.array(body, dtype=np.float64)
    except ValueError:
        raise ValueError(f"the trace {str(path)!r} holds a value that is not a number "
                         "(seconds)") from None
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError(f"the trace {str(path)!r} holds a time that is negative or not finite")
    return times


@dataclass(frozen=True)
class ComputeModel:
    """Per-step compute time of each worker, and the server's and codecs' costs.

    step_time       s per step, fixed part
    per_sample      s per sample of the worker's batch
    flops_per_sample, device_flops   FLOPs per sample and the device's FLOP/s (adds their ratio)
    distribution    the per-step factor's law (see the module docstring)
    jitter          sigma of the mean-one lognormal factor (0 = none)
    tail            mean of the exponential part of a shifted-exponential factor
    pareto_shape    shape of a Pareto factor
    trace           (steps, n_workers) seconds replayed when distribution = "trace"
    straggler_prob  probability that a worker is a straggler on a given step
    straggler_slowdown  factor a straggler's compute time is multiplied by
    aggregate_per_byte  s of server time per byte received
    codec_per_param s per parameter to encode (worker) or decode (server) one message
    """

    step_time: float = 0.0
    per_sample: float = 0.0
    flops_per_sample: float = 0.0
    device_flops: float = 0.0
    distribution: str = "lognormal"
    jitter: float = 0.0
    tail: float = 0.0
    pareto_shape: float = 3.0
    trace: np.ndarray | None = None
    straggler_prob: float = 0.0
    straggler_slowdown: float = 1.0
    aggregate_per_byte: float = 0.0
    codec_per_param: float = 0.0

    def worker_times(self, n_workers: int, batch_size: int, n_params: int,
                     rng: np.random.Generator, step: int = 0) -> np.ndarray:
        """Compute time (s) of each worker's ``step`` (0-based), including its encode cost:
        shape (n_workers,)."""
        codec = self.codec_per_param * n_params
        if self.distribution == "trace":
            times = self.trace[step % self.trace.shape[0]] + codec
        else:
            base = self.step_time + self.per_sample * batch_size + codec
            if self.device_flops > 0:
                base += self.flops_per_sample * batch_size / self.device_flops
            times = np.full(n_workers, base)
            if self.distribution == "lognormal":
                if self.jitter > 0:
                    # mean-one lognormal: exp(N(-s^2/2, s^2)) keeps the average step time
                    times *= rng.lognormal(-0.5 * self.jitter**2, self.jitter, n_workers)
            elif self.distribution == "shifted_exponential":
                times *= 1.0 + rng.exponential(self.tail, n_workers)
            else:  # pareto with minimum 1: numpy's pareto is the Lomax law, shifted by one
                times *= 1.0 + rng.pareto(self.pareto_shape, n_workers)
        if self.straggler_prob > 0:
            times *= np.where(rng.random(n_workers) < self.straggler_prob,
                                     self.straggler_slowdown, 1.0)
        return times

    def server_time(self, bytes_received: int, n_messages: int, n_params: int) -> float:
        """Server time (s) to decode ``n_messages`` messages and aggregate ``bytes_received``."""
        return self.aggregate_per_byte * bytes_received + self.codec_per_param * n_params * n_messages
