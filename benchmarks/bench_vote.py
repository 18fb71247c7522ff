"""The server's vote on N = 32 packed sign messages of d = 2**20 bits, against a popcount read
of the same packed input (np.bitwise_count over its uint64 words) measured in the same run.

Timed: the bit-sliced count of the +1 signs plus its comparison with N/2 (the majority vote,
ties to +1), with the numpy kernels and with the compiled ones (numba) when installed; the
whole MaVo reply with its default random ties (one coin flip per tie, about 14% of the
coordinates at N = 32); the Avg reply; and, for comparison, the vote as the code computed it
before bit slicing (unpack every bit to a byte, then sum).
Run: .venv/bin/python benchmarks/bench_vote.py [--workers N] [--log2d L] [--repeats R]
"""
import argparse
import contextlib

import numpy as np

from sim.kernels import compiled, numpy_only
from sim.methods.base import majority_reply, sum_reply
from sim.wire import bitslice
from timing import best_seconds, record, write

TARGET = "<= 3"


def unpack_and_sum(packed, d):
    """The vote sum as it was computed before: column blocks unpacked to bytes and summed."""
    n = packed.shape[0]
    total = np.empty(d, dtype=np.int32)
    block = max(8, (1 << 16) // n // 8 * 8)
    for j in range(0, d, block):
        w = min(block, d - j)
        bits = np.unpackbits(packed[:, j // 8:(j + w + 7) // 8], axis=-1, count=w)
        total[j:j + w] = bits.sum(axis=0, dtype=np.uint8)
    return np.sign(2 * total - n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--log2d", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    n, d, rng = args.workers, 1 << args.log2d, np.random.default_rng(0)
    packed = np.packbits(rng.random((n, d)) < 0.5, axis=-1)
    words = packed.view(np.uint64)
    if not hasattr(np, "bitwise_count"):
        raise SystemExit("bench_vote needs numpy >= 2 for its reference (np.bitwise_count)")
    counts = np.empty(words.shape, dtype=np.uint8)
    popcount = best_seconds(lambda: np.bitwise_count(words, out=counts), args.repeats)
    print(f"N={n}, d=2^{args.log2d}: popcount read of the packed input "
          f"({packed.nbytes / 2**20:.0f} MiB) {popcount * 1e3:.3f} ms")

    def vote():
        greater, equal = bitslice.compare(bitslice.count_planes(packed, d), n // 2, d)
        return greater | equal

    hp = {"zero_sign": "random", "tie": "random"}
    cases = {"vote": vote, "mavo_reply_random_ties": lambda: majority_reply(packed, d, hp, rng),
             "avg_reply": lambda: sum_reply(packed, d, hp)}
    kernels = {"numpy": numpy_only}
    if compiled() is not None:
        kernels["compiled"] = contextlib.nullcontext
    for name, context in kernels.items():
        with context():
            for case, fn in cases.items():
                seconds = best_seconds(fn, args.repeats)
                ratio = seconds / popcount
                print(f"{case:24s} {name:8s} kernels: {seconds * 1e3:7.3f} ms, "
                      f"{ratio:5.1f}x the popcount read" + (f" (target {TARGET})"
                                                             if case == "vote" else ""))
                record(f"{case}_{name}_vs_popcount", ratio, TARGET if case == "vote" else None,
                       "np.bitwise_count over the packed input", ms=seconds * 1e3,
                       popcount_ms=popcount * 1e3)
    seconds = best_seconds(lambda: unpack_and_sum(packed, d), max(3, args.repeats // 4))
    print(f"{'vote by unpack and sum':24s} (before):  {seconds * 1e3:7.3f} ms, "
          f"{seconds / popcount:5.1f}x the popcount read")
    record("vote_unpack_sum_vs_popcount", seconds / popcount, None,
           "np.bitwise_count over the packed input", ms=seconds * 1e3)
    write()


if __name__ == "__main__":
    main()
