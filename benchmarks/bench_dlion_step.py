"""D-Lion step throughput against numpy copy bandwidth, measured in the same run.

One step for N = 32 workers and d = 2**20 float32 parameters: worker encode (momentum
interpolation, sign, momentum update, bit packing), server majority vote, and the parameter
update. The bytes the step must move at minimum are: read g, read and write m (3 x N x d x 4),
read and write x (2 x d x 4), plus the packed messages (N x d / 8 written and read, d / 8
reply). Printed: that traffic divided by the step time, as a fraction of copy bandwidth.
"""
import numpy as np

from sim import methods
from timing import best_seconds

N, D, REPEATS = 32, 2**20, 7


def main():
    rng = np.random.default_rng(0)
    src = rng.standard_normal(N * D).astype(np.float32)
    dst = np.empty_like(src)
    copy_s = best_seconds(lambda: np.copyto(dst, src), REPEATS)
    copy_rate = 2 * src.nbytes / copy_s  # bytes read + written per second

    for aggregate in ("mavo", "avg"):
        method = methods.get("dlion")
        hp = {**method.defaults, "aggregate": aggregate}
        x = rng.standard_normal(D).astype(np.float32)
        grads = rng.standard_normal((N, D)).astype(np.float32)
        state = method.init(x, N, hp, None)

        def step():
            nonlocal x, state
            payloads, state = method.encode(state, grads, hp, rng)
            reply = method.aggregate(payloads, D, hp, rng)
            x, state = method.apply(x, reply, state, hp, 1e-4)

        step_s = best_seconds(step, REPEATS)
        traffic = 3 * N * D * 4 + 2 * D * 4 + 2 * N * D // 8 + D // 8
        rate = traffic / step_s
        print(f"D-Lion {aggregate:4s} step, N={N}, d=2^20: {step_s * 1e3:7.1f} ms; "
              f"{rate / 1e9:5.1f} GB/s of minimal traffic; copy {copy_rate / 1e9:5.1f} GB/s; "
              f"ratio {rate / copy_rate:.2f} (target >= 0.40)")


if __name__ == "__main__":
    main()
