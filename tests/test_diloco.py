"""DiLoCo (sim.methods.diloco): per-worker parameter rows, the Algorithm 1 update order, the
outer gradient's wire and compute-only inner steps."""
import numpy as np
import pytest

from experiments.run import simulate
from experiments.spec import SpecError
from models.charlm import CharLM
from models.gpt import GPT
from models.mlp import MLP
from models.softmax import SoftmaxRegression
from models.synthetic import NQM, LeastSquares, Logistic, Quadratic
from models.vit import ViT
from sim.wire.lowbits import BF16, MinMaxCodec

from bowls import Bowls


def _objectives():
    return [Quadratic(dim=12, dtype="float64"), NQM(dim=12, dtype="float64"),
            Logistic(samples=64, features=5, partition="dirichlet", dtype="float64"),
            LeastSquares(samples=64, features=5, dtype="float64"),
            MLP(dataset="synthetic", hidden=(4,), dtype="float64"),
            SoftmaxRegression(dataset="synthetic", dtype="float64"),
            CharLM(dataset="pydoc", context=3, embed=4, hidden=(5,), dtype="float64"),
            GPT(dataset="pydoc", context=4, width=6, heads=2, blocks=1, mlp_ratio=1,
                dtype="float64"),
            ViT(dataset="synthetic", patch=2, width=6, heads=2, blocks=1, mlp_ratio=1,
                dtype="float64")]


@pytest.mark.parametrize("obj", _objectives(), ids=lambda o: type(o).__name__)
def test_every_builtin_objective_takes_one_parameter_row_per_worker(obj):
    n = 3
    rows = np.stack([obj.init(np.random.default_rng(i)) for i in range(n)])
    losses, grads = obj.grads(rows, n, 4, np.random.default_rng(7))
    assert grads.shape == (n, obj.dim) and losses.shape == (n,)
    for i in range(n):  # the same draws, every worker at row i: worker i's gradient is the same
        loss_i, grads_i = obj.grads(rows[i], n, 4, np.random.default_rng(7))
        np.testing.assert_allclose(grads[i], grads_i[i], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(losses[i], loss_i[i], rtol=1e-12)


class SharedOnly(Bowls):
    def grads(self, params, n_workers, batch_size, rng):
        if np.ndim(params) != 1:
            raise ValueError("one shared x only")
        return super().grads(params, n_workers, batch_size, rng)


def _run(objective, steps, workers=3, **method):
    return simulate(objective=objective, method={"name": "diloco", **method}, workers=workers,
                    steps=steps, dtype="float64", batch_size=1, eval_every=0)


def test_h1_local_sgd_is_global_sgd():
    obj = Quadratic(dim=24, noise=0.5, dtype="float64")
    local = _run(obj, 10, workers=4, h=1, inner="sgd", momentum=0.0, weight_decay=0.0,
                 lr=0.05, outer="sgd", outer_lr=1.0)
    gsgd = simulate(objective=obj, method={"name": "gsgd", "lr": 0.05, "momentum": 0.0},
                    workers=4, steps=10, dtype="float64", batch_size=1, eval_every=0)
    np.testing.assert_allclose(local.params, gsgd.params, rtol=1e-6, atol=1e-9)


def _adamw_reference(obj, n, h, rounds, lr, b1, b2, eps, wd, outer_lr, mu):
    """DiLoCo, Algorithm 1, written out: inner AdamW kept across rounds, outer Nesterov SGD
    on the float32 mean of the float32 outer gradients."""
    theta = obj.init(None)
    m, v, buf = np.zeros((n, obj.dim)), np.zeros((n, obj.dim)), np.zeros(obj.dim)
    t = 0
    for _ in range(rounds):
        local = np.repeat(theta[None], n, axis=0)
        for _ in range(h):
            g = obj.grads(local, n, 1, None)[1]
            t += 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            local = local - lr * (step + wd * local)
        delta = (theta - local).astype(np.float32).mean(axis=0, dtype=np.float32)
        delta = delta.astype(np.float64)
        buf = mu * buf + delta
        theta = theta - outer_lr * (delta + mu * buf)
    return theta


def test_inner_adamw_outer_nesterov_follows_algorithm_1_on_non_iid_bowls():
    obj = Bowls()
    got = _run(obj, 5 * 4, h=4, lr=0.05, betas=[0.9, 0.99], weight_decay=0.01)
    want = _adamw_reference(obj, 3, 4, 5, 0.05, 0.9, 0.99, 1e-8, 0.01, 0.7, 0.9)
    np.testing.assert_allclose(got.params, want, rtol=1e-6, atol=1e-9)
    assert not np.allclose(got.params, 0.0)


@pytest.mark.parametrize("bits", [32, 16, 8, 4])
@pytest.mark.parametrize("collective", ["ring", "ps"])
def test_bits_per_parameter_per_step_are_outer_bits_over_h(bits, collective):
    d, h = 128, 4
    result = simulate(objective=Quadratic(dim=d), workers=4, steps=3 * h,
                      method={"name": "diloco", "h": h, "outer_bits": bits, "outer_chunk": 32},
                      network={"collective": collective})
    per_message = 32 * d if bits == 32 else 16 * d if bits == 16 else bits * d + 64 * d // 32
    got = result.summary["bits_per_param_per_step"]
    assert got["up"] == pytest.approx(per_message / d / h)
    assert got["down"] == pytest.approx(per_message / d / h)
    up = np.diff(result.history["bits_up"], prepend=0.0)
    assert (up[np.arange(3 * h) % h != h - 1] == 0).all()  # inner steps send nothing


def test_outer_bits_change_the_numerics():
    obj = Bowls(dim=64)
    params = {bits: _run(obj, 12, h=4, outer_bits=bits, outer_chunk=16, lr=0.05).params
              for bits in (32, 16, 8, 4)}
    for bits in (16, 8, 4):
        assert not np.array_equal(params[bits], params[32])
    # coarser wires stray further from the float32 run
    errors = [np.abs(params[b] - params[32]).max() for b in (16, 8, 4)]
    assert errors[0] < errors[1] < errors[2]


def test_low_bit_codecs():
    x = np.random.default_rng(0).standard_normal((2, 50)).astype(np.float32)
    y = BF16.decode(BF16.encode(x), 50)
    assert (y.view(np.uint32) & 0xFFFF == 0).all()
    assert np.abs(y - x).max() <= np.abs(x).max() * 2.0 ** -8
    assert BF16.decode(BF16.encode(np.float32([[1 + 2 ** -8, 1 + 3 * 2 ** -8]])), 2).tolist() \
        == [[1.0, 1 + 2 ** -6]]  # ties to even
    codec = MinMaxCodec(4, 16)
    lo, s, _ = codec.quantise(x)
    z = codec.decode(codec.encode(x), 50)
    wide = np.repeat(s, 16, axis=1)[:, :50]
    assert (np.abs(z - x) <= wide / 2 * (1 + 1e-5)).all()
    assert codec.encode(x).shape[1] * 8 == codec.size_bits(50) == 64 * 4 + 4 * 56


def _dlion_reference(obj, n, h, rounds, lr, outer_lr, b1, b2):
    theta = obj.init(None)
    m = np.zeros((n, obj.dim))
    for _ in range(rounds):
        local = np.repeat(theta[None], n, axis=0)
        for _ in range(h):
            local = local - lr * obj.grads(local, n, 1, None)[1]
        delta = theta - local
        signs = np.sign(b1 * m + (1 - b1) * delta)
        m = b2 * m + (1 - b2) * delta
        theta = theta - outer_lr * np.sign(signs.sum(axis=0))
    return theta


def test_outer_dlion_sends_one_bit_a_round_and_follows_its_reference():
    obj, h = Bowls(dim=64), 3
    got = _run(obj, 2 * h, h=h, inner="sgd", weight_decay=0.0, lr=0.1, outer="dlion",
               outer_lr=0.05, outer_betas=[0.5, 0.9], zero_sign="plus", tie="plus")
    want = _dlion_reference(obj, 3, h, 2, 0.1, 0.05, 0.5, 0.9)
    np.testing.assert_allclose(got.params, want, rtol=1e-12)
    bits = got.summary["bits_per_param_per_step"]
    assert bits["up"] == pytest.approx(1 / h) and bits["down"] == pytest.approx(1 / h)
    assert got.summary["collective"] in ("ps", "alltoall", "hierarchical")


def test_inner_steps_are_compute_only():
    for collective in ("ring", "ps"):
        r = simulate(objective=Quadratic(dim=32), workers=3, steps=8,
                     method={"name": "diloco", "h": 4}, compute={"step_time": "10ms"},
                     network={"collective": collective, "bandwidth": "1Mbps"})
        t = r.history["time_s"]
        np.testing.assert_allclose(t[:3], [0.01, 0.02, 0.03])
        assert t[3] > 0.04 + 32 * 32 / 1e6  # the round's outer gradient travels
        np.testing.assert_allclose(t[4:7] - t[3], [0.01, 0.02, 0.03])
        assert np.isnan(r.history["comm_up_s"][[0, 1, 2, 4, 5, 6]]).all()
        assert (r.history["aggregated"][[0, 1, 2]] == 0).all()
        assert r.history["aggregated"][3] == 3


@pytest.mark.parametrize("settings,message", [
    ({"method": {"name": "diloco", "h": 0}}, "method.h = 0"),
    ({"method": {"name": "diloco", "outer_bits": 12}}, "method.outer_bits = 12"),
    ({"method": {"name": "diloco"}, "server": {"policy": "first_k", "k": 2}},
     "server.policy = 'first_k'"),
    ({"method": {"name": "diloco"}, "faults": {"crash_rate": 0.1}}, "crash"),
    ({"method": {"name": "diloco"}, "faults": {"loss": 0.01}}, "faults.loss = 0.01"),
    ({"method": {"name": "diloco", "outer": "dlion"}, "network": {"collective": "ring"}},
     "network.collective = 'ring'"),
])
def test_refusals_are_one_line(settings, message):
    with pytest.raises(SpecError) as err:
        simulate(objective="quadratic", workers=4, steps=2, **settings)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_objective_without_per_worker_rows_is_refused():
    with pytest.raises(SpecError, match=r"per-worker parameters \(3, 16\)") as err:
        _run(SharedOnly(), 2, h=2)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("collective", ["ps", "ring"])
def test_uneven_workers_run_their_inner_steps_back_to_back(collective):
    r = simulate(objective=Quadratic(dim=32), workers=3, steps=9,
                 method={"name": "diloco", "h": 3}, compute={"step_time": "10ms", "jitter": 0.5}, run={"trace": True},
                 network={"collective": collective, "bandwidth": "1Mbps"})
    for w in range(3):
        spans = sorted((row[2], row[3]) for row in r.trace
                       if row[0] == f"worker{w}" and row[1] == "compute")
        assert len(spans) == 9
        assert all(b >= a_end - 1e-12 for (_, a_end), (b, _) in zip(spans, spans[1:]))
    assert (np.diff(r.history["time_s"]) > 0).all()
