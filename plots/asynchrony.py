"""Asynchrony against heavy-tailed stragglers: loss against simulated time, and time to target.

Reads the runs of the ``async`` study (``dlion-sim sweep async -o DIR``): D-Lion MaVo and
G-AdamW, each waiting for all 16 workers, or on a versioned server (``ssp`` with staleness 1
and 4, ``fedbuff`` with k = 4 and 8, ``async``). Draws, per method, the evaluation loss against
simulated time for every policy (mean over seeds), and the time to the target as bars with 95%
t-intervals; prints the numbers, with the staleness of the applied messages, as a Markdown
table. Drawn by ``dlion-sim plot DIR --kind asynchrony`` (make figures runs it).
"""
from __future__ import annotations

import numpy as np

from plots.deadline import plot_policies


def _staleness(runs) -> str:
    """Mean, 90th percentile and largest staleness of the applied messages (versions; means
    over the runs), '-' for a synchronous run."""
    found = [r.summary.get("staleness") for r in runs]
    if any(s is None or not s.get("messages") for s in found):
        return "-"
    return " / ".join(f"{np.mean([s[key] for s in found]):.3g}" for key in ("mean", "p90", "max"))


def plot_asynchrony(directory, out_file=None) -> list[str]:
    """Draw the figure into ``out_file`` (when given); returns the numbers as the lines of a
    Markdown table."""
    return plot_policies(directory, out_file, "16 workers with Pareto step times (shape 1.5), "
                         "100 Gb/s, ResNet-50-sized messages: applying messages as they arrive "
                         "against waiting for every worker",
                         ("updates", "staleness: mean / p90 / max", _staleness), handlelength=4.0)
