"""The links each active flow crosses, and how much of each: the flows' routes as entries.

Entry e says that flow ``flow[e]`` puts ``weight[e]`` times its rate on link ``link[e]``
(bits/s). A point-to-point message has weight 1 on every link of its path. A collective's
symmetric traffic is one flow at one common rate: a ring all-reduce puts weight 1 on every
link of the ring, an all-to-all weight k on a link that carries k of its pieces at once. The
sharing rules of ``sim.net.sharing`` read the entries, so a collective over N ranks costs one
flow, not N (or N^2) of them.
"""
from __future__ import annotations

import numpy as np


class Routes:
    """Entries (flow, link, weight) of the active flows, in flow order; flows are numbered
    0..n-1 as the network keeps them."""

    __slots__ = ("flow", "link", "weight")

    def __init__(self, flow=None, link=None, weight=None):
        self.flow = np.zeros(0, dtype=np.int64) if flow is None else flow
        self.link = np.zeros(0, dtype=np.int64) if link is None else link
        self.weight = np.zeros(0) if weight is None else weight

    @classmethod
    def from_rows(cls, rows: np.ndarray, pad: int) -> "Routes":
        """Routes of flows given as rows of link ids (F, width); entries ``pad`` (a link that
        no flow really crosses) are left out; weight 1 each."""
        flow = np.repeat(np.arange(rows.shape[0], dtype=np.int64), rows.shape[1])
        link = rows.reshape(-1).astype(np.int64, copy=False)
        real = link != pad
        return cls(flow[real], link[real], np.ones(int(real.sum())))

    @classmethod
    def of_one_flow(cls, links, weights) -> "Routes":
        """The route of one flow: weights[i] on links[i] (links distinct)."""
        link = np.asarray(links, dtype=np.int64)
        return cls(np.zeros(link.size, dtype=np.int64), link,
                   np.asarray(weights, dtype=np.float64).reshape(-1) * np.ones(link.size))

    def extend(self, other: "Routes", offset: int) -> None:
        """Append ``other``'s flows, numbered from ``offset`` on."""
        self.flow = np.concatenate([self.flow, other.flow + offset])
        self.link = np.concatenate([self.link, other.link])
        self.weight = np.concatenate([self.weight, other.weight])

    def keep(self, kept: np.ndarray) -> None:
        """Keep the flows of the bool mask ``kept`` (F,), renumbered in order."""
        entries = kept[self.flow]
        number = np.cumsum(kept) - 1
        self.flow = number[self.flow[entries]]
        self.link = self.link[entries]
        self.weight = self.weight[entries]

    def bottleneck(self, capacity: np.ndarray, n_flows: int) -> np.ndarray:
        """The rate (bits/s) each flow would get alone: min over its links of capacity/weight."""
        out = np.full(n_flows, np.inf)
        np.minimum.at(out, self.flow, capacity[self.link] / self.weight)
        return out

    def load(self, rate: np.ndarray, n_links: int) -> np.ndarray:
        """Bits/s on every link when the flows run at ``rate``."""
        return np.bincount(self.link, weights=self.weight * rate[self.flow], minlength=n_links)
