"""Bit-for-bit regression: every registered method, a few steps on a fixed seed, against values
recorded before a refactor (tests/data/regression.json).

A refactor, a new option whose default keeps today's behaviour, or a faster kernel must leave
every fingerprint unchanged: the final parameters (SHA-256 of their bytes), the bits sent, and
every step's simulated time and training loss. Only a deliberate change of numerics or timing
re-records them (``python tests/test_regression.py --record``), and its commit says why.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import experiments
from sim import methods

RECORD = Path(__file__).parent / "data" / "regression.json"

#: a flat objective (no tensor shapes) and a shaped one (per-tensor methods see real matrices)
CASES = {
    "flat": dict(objective={"name": "logistic", "samples": 256, "features": 37},
                 workers=4, batch_size=8, steps=6, seed=11),
    "shaped": dict(objective={"name": "mlp", "dataset": "synthetic", "hidden": [12]},
                   workers=4, batch_size=8, steps=6, seed=5),
}
# recorded with the fluid model, before transports existed, and with the textbook collectives
# (chunk = 0), before the pipelined ones; those are recorded as "<collective>-pipelined"
NETWORK = {"bandwidth": "1Gbps", "latency": "20us", "transport": "fluid", "chunk": 0}
PIPELINED = ("ring", "tree", "allgather", "alltoall")
COMPUTE = {"step_time": "1ms", "jitter": 0.3}


def runs():
    """(key, keyword spec) for every case, method, variant and collective the method can use."""
    for case, common in CASES.items():
        for name, method in methods.METHODS.items():
            if name not in RECORDED_METHODS:
                continue
            kw = dict(common, workers=1) if method.max_workers == 1 else dict(common)
            variants = [("", {})] + ([("-avg", {"aggregate": "avg"})] if name == "dlion" else [])
            for suffix, extra in variants:
                # auto resolves to one of the others; hierarchical needs nodes of GPUs
                collectives = [c for c in method.collectives if c not in ("auto", "hierarchical")]
                collectives = collectives if not suffix else collectives[:1]
                for coll in collectives:
                    network = dict(NETWORK, collective=None if coll == "none" else coll)
                    spec = dict(kw, method={"name": name, "lr": 1e-2, **extra},
                                network=network, compute=COMPUTE)
                    yield f"{case}/{name}{suffix}/{coll}", spec
                    if coll in PIPELINED:
                        pipelined = dict(network, chunk=512 * 1024)
                        yield (f"{case}/{name}{suffix}/{coll}-pipelined",
                               dict(spec, network=pipelined))


def fingerprint(result) -> dict:
    h = result.history
    params = np.ascontiguousarray(result.params).tobytes()
    return {"params_sha256": hashlib.sha256(params).hexdigest(),
            "bits_up": float(h["bits_up"][-1]), "bits_down": float(h["bits_down"][-1]),
            "time_s": [float(v) for v in h["time_s"]],
            "train_loss": [float(v) for v in h["train_loss"]]}


RECORDED_METHODS = ("lion", "dlion", "glion", "gadamw", "gsgd", "terngrad", "dgc", "graddrop",
                    "signum", "efsignsgd", "qsgd", "topk", "randomk", "powersgd", "onebit_adam")
_RECORDED = json.loads(RECORD.read_text()) if RECORD.exists() else {}


@pytest.mark.parametrize("key,spec", list(runs()), ids=[k for k, _ in runs()])
def test_fingerprint_is_unchanged(key, spec):
    assert key in _RECORDED, f"{key}: no recorded fingerprint"
    got, want = fingerprint(experiments.simulate(**spec)), _RECORDED[key]
    assert got == want


def test_every_recorded_case_still_runs():
    assert set(_RECORDED) == {k for k, _ in runs()}


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    RECORD.write_text(json.dumps({k: fingerprint(experiments.simulate(**s)) for k, s in runs()},
                                 indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORD}")
