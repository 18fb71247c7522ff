"""Timing for the benchmarks: the best of repeated calls, after a warm-up call."""
import time


def best_seconds(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``fn`` after one warm-up, in seconds (the minimum filters
    out scheduler noise on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
