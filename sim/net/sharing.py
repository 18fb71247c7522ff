"""How active flows share links: max-min fairness by progressive filling, or FIFO.

Both take the active flows' routes (``sim.net.routes.Routes``: entries of flow, link and
weight, where a flow puts weight x its rate on the link), link capacities (L,) in bits/s and
per-flow caps (F,) in bits/s (inf = none), and return each flow's rate in bits/s.
"""

from __future__ import annotations

import numpy as np

from sim.net.routes import Routes

SHARINGS = ("fair", "fifo")


def max_min_rates(routes: Routes, capacity: np.ndarray, flow_cap: np.ndarray) -> np.ndarray:
    """Max-min fair rates (bits/s) by progressive filling.

    All unfrozen flows grow together; a link saturates when the weighted sum of its flows'
    rates reaches its capacity, and a flow freezes when one of its links saturates or it
    reaches its own cap. Each round is a few array operations over the entries, and there are
    as many rounds as distinct bottleneck levels.
    """
    n_flows = flow_cap.size
    rate = np.zeros(n_flows)
    if n_flows == 0:
        return rate
    left = capacity.astype(np.float64, copy=True)
    active = np.ones(n_flows, dtype=bool)
    flow, link, weight = routes.flow, routes.link, routes.weight
    level = 0.0
    while True:
        live = active[flow]
        load = np.bincount(link[live], weights=weight[live], minlength=left.size)
        used = load > 0
        share = np.full(left.size, np.inf)
        share[used] = left[used] / load[used]
        step = min(share.min(), flow_cap[active].min() - level)
        level += step
        left[used] -= step * load[used]
        # links whose fair share equals this round's step are saturated (up to float residue)
        saturated = used & (share <= step * (1 + 1e-12))
        hit = np.zeros(n_flows, dtype=bool)
        hit[flow[live & saturated[link]]] = True
        frozen = active & (hit | (flow_cap <= level * (1 + 1e-12)))
        rate[frozen] = level
        active &= ~frozen
        if not active.any():
            return rate


def fifo_rates(routes: Routes, capacity: np.ndarray, flow_cap: np.ndarray) -> np.ndarray:
    """FIFO rates (bits/s): flows are numbered in arrival order; a flow transmits, at the
    smallest capacity/weight on its route, only when it is the earliest flow on every one of
    its links (no overtaking).

    The earliest flow overall always qualifies, so some flow always makes progress.
    """
    n_flows = flow_cap.size
    if n_flows == 0:
        return np.zeros(0)
    head = np.full(capacity.size, n_flows)
    np.minimum.at(head, routes.link, routes.flow)
    blocked = np.zeros(n_flows, dtype=bool)
    blocked[routes.flow[head[routes.link] != routes.flow]] = True
    rate = np.minimum(routes.bottleneck(capacity, n_flows), flow_cap)
    return np.where(blocked, 0.0, rate)
