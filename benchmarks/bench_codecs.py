"""Codec throughput as a ratio against np.copyto bandwidth measured in the same run.

Run: .venv/bin/python benchmarks/bench_codecs.py [--n 32] [--log2d 20] [--repeats 5]

For each codec, one round (encode then decode) of an (n, d) float32 message batch is timed and
reported as throughput relative to copying an array of the same byte size (n * d * 4 bytes):
a ratio of 0.5 means one encode+decode round costs two copies of the values.
"""

import argparse

import numpy as np

from sim.wire.codecs import DenseCodec, SignCodec, SumCodec, TernaryCodec
from timing import best_seconds, record, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="messages (workers)")
    ap.add_argument("--log2d", type=int, default=20, help="values per message = 2**log2d")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, d = args.n, 1 << args.log2d
    rng = np.random.default_rng(0)

    signs = np.where(rng.random((n, d)) < 0.5, np.float32(-1), np.float32(1))
    src = signs.copy()
    dst = np.empty_like(src)
    t_copy = best_seconds(lambda: np.copyto(dst, src), args.repeats)
    nbytes = src.nbytes
    print(f"values: ({n}, {d}) float32 = {nbytes / 2**20:.0f} MiB")
    print(f"np.copyto reference: {t_copy * 1e3:8.2f} ms  {nbytes / t_copy / 1e9:6.2f} GB/s")

    # The Avg reply: one message of d sums of n signs, as the server computes it (float32).
    sums = (2 * rng.binomial(n, 0.5, size=d) - n).astype(np.float32)
    cases = [
        ("SignCodec", SignCodec(), signs),
        ("TernaryCodec", TernaryCodec(), np.where(rng.random((n, d)) < 0.2, np.float32(0), signs)),
        (f"SumCodec({n}) (one reply of d sums)", SumCodec(n), sums),
        ('DenseCodec("float16")', DenseCodec("float16"), signs),
    ]
    for label, codec, x in cases:
        payload = codec.encode(x)
        t_enc = best_seconds(lambda: codec.encode(x), args.repeats)
        t_dec = best_seconds(lambda: codec.decode(payload, x.shape[-1]), args.repeats)
        # Normalise to the same byte count as the copy so that one-message cases compare fairly.
        scale = nbytes / (x.size * 4)
        t_round = (t_enc + t_dec) * scale
        print(
            f"{label:38s} encode {t_enc * 1e3:7.2f} ms  decode {t_dec * 1e3:7.2f} ms  "
            f"round/copy throughput ratio {t_copy / t_round:5.3f}  "
            f"payload {payload.nbytes / x.size * 8:.2f} bits/value"
        )
        record(f"codec_{label.split('(')[0].split()[0]}_round_vs_copy", t_copy / t_round, None,
               "np.copyto of the same bytes (throughput ratio)", encode_ms=t_enc * 1e3,
               decode_ms=t_dec * 1e3, bits_per_value=payload.nbytes / x.size * 8)
    write()


if __name__ == "__main__":
    main()
