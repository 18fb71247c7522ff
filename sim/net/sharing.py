"""How active flows share links: max-min fairness by progressive filling, or FIFO.

Both take the active flows' routes as an (F, R) array of link indices (padding entries point at
a link of infinite capacity), link capacities (L,) in bits/s and per-flow caps (F,) in bits/s
(inf = none), and return each flow's rate in bits/s.
"""

from __future__ import annotations

import numpy as np

SHARINGS = ("fair", "fifo")


def max_min_rates(routes: np.ndarray, capacity: np.ndarray, flow_cap: np.ndarray) -> np.ndarray:
    """Max-min fair rates (bits/s) by progressive filling.

    routes: (F, R) link indices per flow; padding entries point at a link of infinite capacity.
    capacity: (L,) bits/s per link. flow_cap: (F,) per-flow upper bound in bits/s (inf = none).
    All unfrozen flows grow together; a flow freezes when one of its links saturates or it
    reaches its own cap. Each round is a few array operations, and there are as many rounds as
    distinct bottleneck levels.
    """
    n_flows = routes.shape[0]
    rate = np.zeros(n_flows)
    if n_flows == 0:
        return rate
    left = capacity.astype(np.float64, copy=True)
    active = np.arange(n_flows)
    level = 0.0
    while active.size:
        sub = routes[active]
        count = np.bincount(sub.ravel(), minlength=left.size)
        used = count > 0
        share = np.full(left.size, np.inf)
        share[used] = left[used] / count[used]
        step = min(share.min(), flow_cap[active].min() - level)
        level += step
        left[used] -= step * count[used]
        # Links whose fair share equals this round's step are saturated (up to float residue).
        saturated = used & (share <= step * (1 + 1e-12))
        frozen = saturated[sub].any(axis=1) | (flow_cap[active] <= level * (1 + 1e-12))
        rate[active[frozen]] = level
        active = active[~frozen]
    return rate


def fifo_rates(routes: np.ndarray, capacity: np.ndarray, flow_cap: np.ndarray, pad: int) -> np.ndarray:
    """FIFO rates (bits/s): rows are in arrival order; a flow transmits, at the smallest capacity
    on its route, only when it is the earliest flow on every one of its links (no overtaking).

    The earliest flow overall always qualifies, so some flow always makes progress.
    """
    n_flows, width = routes.shape
    if n_flows == 0:
        return np.zeros(0)
    links, first = np.unique(routes.ravel(), return_index=True)
    head = np.full(capacity.size, -1)
    head[links] = first // width
    own = np.arange(n_flows)[:, None]
    running = ((head[routes] == own) | (routes == pad)).all(axis=1)
    rate = np.minimum(capacity[routes].min(axis=1), flow_cap)
    return np.where(running, rate, 0.0)
