"""Robust aggregation for the full-precision global methods: what the server does with the
workers' fp32 gradients when some of them may be adversarial (``method.aggregate``).

- ``mean``: the average (the default; one adversary sending a large vector can move it anywhere);
- ``median``: the coordinate-wise median (Yin et al. 2018);
- ``trimmed_mean``: per coordinate, drop the ``trim`` fraction of largest and of smallest values,
  average the rest (Yin et al. 2018);
- ``krum``: Multi-Krum (Blanchard et al. 2017; El Mhamdi et al. 2018). Each gradient is scored
  by the sum of its squared distances to its M - f - 2 nearest others (``krum_f`` = f assumed
  adversaries, among the M messages received); the ``krum_m`` best scored are averaged
  (``krum_m`` = 1 is Krum; default M - f). It needs M > 2f + 2; when fewer messages arrived (a
  server policy, faults), the server falls back to the coordinate-wise median.

Values are (M, d) float32, one row per message received; the result is the (d,) float32 the
server replies with.
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import F32
from sim.units import count_of

AGGREGATES = ("mean", "median", "trimmed_mean", "krum")
TRIM_DEFAULT = 0.1
KRUM_F_DEFAULT = 1

RULES = {
    "trim": {"type": "float", "min": 0.0, "max": 0.5, "max_open": True,
             "doc": "aggregate 'trimmed_mean': fraction cut from each end per coordinate "
                    f"(default {TRIM_DEFAULT})"},
    "krum_f": {"type": "int", "min": 0,
               "doc": f"aggregate 'krum': adversaries assumed, f (needs N > 2f + 2; default "
                      f"{KRUM_F_DEFAULT})"},
    "krum_m": {"type": "int", "min": 1,
               "doc": "aggregate 'krum': gradients averaged, m (1 = Krum; default N - f)"},
}
#: the rule of ``aggregate`` for the global methods (D-Lion's own rule names mavo and avg)
AGGREGATE_RULE = {"type": "choice", "choices": AGGREGATES,
                  "doc": "how the server combines the fp32 gradients: mean, coordinate-wise "
                         "median, trimmed mean, or Multi-Krum"}
DEFAULTS = {"aggregate": "mean", "trim": None, "krum_f": None, "krum_m": None}


def robust_aggregate(payloads, d, hp, rng):
    """The server of the global methods: the fp32 messages combined by ``hp["aggregate"]``,
    as the fp32 reply (``mean`` is exactly ``base.mean_aggregate``)."""
    p = np.asarray(payloads)
    return F32.encode(combine(F32.decode(p, p.shape[1] // 4), hp))


def combine(values: np.ndarray, hp: dict) -> np.ndarray:
    """The server's (d,) float32 combination of the received rows ``values`` (M, d)."""
    rule = hp.get("aggregate", "mean")
    if rule == "mean":
        return values.mean(axis=0, dtype=np.float32)
    if rule == "median":
        return np.median(values, axis=0).astype(np.float32)
    if rule == "trimmed_mean":
        return trimmed_mean(values, _or(hp.get("trim"), TRIM_DEFAULT))
    f = _or(hp.get("krum_f"), KRUM_F_DEFAULT)
    if values.shape[0] <= 2 * f + 2:
        return np.median(values, axis=0).astype(np.float32)
    return multi_krum(values, f, _or(hp.get("krum_m"), values.shape[0] - f))


def trimmed_mean(values: np.ndarray, trim: float) -> np.ndarray:
    """Per coordinate: the mean of the values left after cutting floor(trim * M) from each end."""
    m = values.shape[0]
    cut = count_of(trim, m)
    ordered = np.sort(values, axis=0)
    return ordered[cut:m - cut].mean(axis=0, dtype=np.float32)


def krum_scores(values: np.ndarray, f: int) -> np.ndarray:
    """(M,) Krum scores: each row's sum of squared distances to its M - f - 2 nearest others."""
    v = values.astype(np.float64)
    norms = np.einsum("ij,ij->i", v, v)
    distances = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (v @ v.T), 0.0)
    np.fill_diagonal(distances, np.inf)  # a row is not its own neighbour
    nearest = values.shape[0] - f - 2
    return np.sort(distances, axis=1)[:, :nearest].sum(axis=1)


def multi_krum(values: np.ndarray, f: int, m: int) -> np.ndarray:
    """The mean of the ``m`` rows with the lowest Krum scores (ties: the lower index first)."""
    chosen = np.argsort(krum_scores(values, f), kind="stable")[:min(m, values.shape[0])]
    return values[np.sort(chosen)].mean(axis=0, dtype=np.float32)


def _or(value, default):
    return default if value is None else value
