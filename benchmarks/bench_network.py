"""Wall time of a 1024-worker parameter-server step on the flow network, per transport.

One step = ps_push (1024-flow incast) then ps_pull (1024-flow broadcast), at data-centre
latency (5 us per link). The TCP transport (slow start, connections kept between steps) is
timed next to the fluid model it extends. The reference is a bare SimPy loop of as many timeouts
as the fluid step processes events, measured in the same run, so each printed ratio is the
network model's overhead over SimPy's own event cost.
Run: .venv/bin/python benchmarks/bench_network.py [--workers N] [--repeats R]
"""

import argparse
import time

import numpy as np
import simpy

from sim.net.collectives import ps_pull, ps_push
from sim.net.network import Network


class _CountingEnvironment(simpy.Environment):
    """Counts processed events, to size the reference loop."""

    def __init__(self):
        super().__init__()
        self.events = 0

    def step(self):
        self.events += 1
        super().step()


def _steps(env, n_workers, repeats, bits, transport):
    net = Network(env, n_workers, bandwidth=10e9, latency=5e-6, server_latency=5e-6, overhead=2e-6,
                  transport=transport)

    def train():
        for _ in range(repeats):
            arrived = yield env.process(ps_push(net, np.full(n_workers, env.now), bits))
            yield env.process(ps_pull(net, float(arrived.max()), bits))

    env.process(train())
    env.run()
    return net


def _bare(n_events):
    env = simpy.Environment()

    def loop():
        for _ in range(n_events):
            yield env.timeout(1e-6)

    env.process(loop())
    env.run()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    bits = 32 * 1_000_000  # a 1M-parameter fp32 gradient

    counting = _CountingEnvironment()
    _steps(counting, args.workers, 1, bits, "fluid")
    events_per_step = counting.events

    t0 = time.perf_counter()
    _bare(events_per_step * args.repeats)
    bare_per_step = (time.perf_counter() - t0) / args.repeats
    print(f"workers={args.workers} repeats={args.repeats} events/step={events_per_step}")
    print(f"bare SimPy loop with the same number of events: {bare_per_step * 1e3:.2f} ms wall")
    for transport in ("fluid", "tcp"):
        t0 = time.perf_counter()
        net = _steps(simpy.Environment(), args.workers, args.repeats, bits, transport)
        per_step = (time.perf_counter() - t0) / args.repeats
        assert net.delivered_bits == net.sent_bits
        print(f"{transport:5s} PS step: {per_step * 1e3:.2f} ms wall, "
              f"{per_step / bare_per_step:.2f}x the bare loop, "
              f"{net.recomputations / args.repeats:.1f} rate recomputations/step "
              "(target: < 20 ms per step)")


if __name__ == "__main__":
    main()
