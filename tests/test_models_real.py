"""Real-data objectives (mlp, softmax, charlm): gradients, sharding, evaluation, validation."""
import json

import numpy as np
import pytest

from models.base import REGISTRY
from models.charlm import CharLM
from models.datasets import MissingDataError, fashion_mnist_dir
from models.mlp import MLP
from models.softmax import SoftmaxRegression


def small_objectives():
    """Tiny float64 instances of every objective, covering each activation and depth."""
    return [
        MLP(dataset="synthetic", hidden=(7,), activation="relu", dtype="float64"),
        MLP(dataset="synthetic", hidden=(6, 5), activation="gelu", dtype="float64"),
        MLP(dataset="synthetic", hidden=(5,), activation="tanh", dtype="float64"),
        SoftmaxRegression(dataset="synthetic", dtype="float64"),
        CharLM(dataset="pydoc", context=3, embed=2, hidden=(4,), dtype="float64"),
        CharLM(dataset="pydoc", context=2, embed=3, hidden=(4, 3), activation="gelu",
               dtype="float64"),
    ]


def fd_gradient(obj, params, idx, eps=1e-6):
    """Central differences of every worker's loss; all workers' coordinate j move at once,
    which is valid because worker i's loss depends only on row i of ``params``."""
    out = np.empty_like(params)
    for j in range(obj.dim):
        step = np.zeros(obj.dim)
        step[j] = eps
        out[:, j] = (obj.batch_loss_grad(params + step, idx)[0]
                     - obj.batch_loss_grad(params - step, idx)[0]) / (2 * eps)
    return out


def adam_mean_gradient(obj, steps, lr, n_workers, batch_size, seed=0):
    """Plain Adam on the workers' mean gradient (what G-AdamW computes), for learning tests."""
    rng = np.random.default_rng(seed)
    x = obj.init(rng)
    m, v = np.zeros_like(x), np.zeros_like(x)
    for t in range(1, steps + 1):
        g = obj.grads(x, n_workers, batch_size, rng)[1].mean(axis=0)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return x


@pytest.mark.parametrize("obj", small_objectives(), ids=lambda o: f"{type(o).__name__}-"
                         f"{o.activation}-{len(o.hidden)}")
def test_gradients_match_finite_differences(obj):
    rng = np.random.default_rng(5)
    params = np.stack([obj.init(rng) for _ in range(3)])
    idx = obj.sample(3, 4, rng)
    _, grads = obj.batch_loss_grad(params, idx)
    fd = fd_gradient(obj, params, idx)
    assert np.linalg.norm(fd - grads) / np.linalg.norm(fd) < 1e-5


@pytest.mark.parametrize("obj", small_objectives()[::2], ids=lambda o: type(o).__name__)
def test_batched_workers_equal_a_loop_over_workers(obj):
    rng = np.random.default_rng(2)
    params = np.stack([obj.init(rng) for _ in range(4)])
    idx = obj.sample(4, 6, rng)
    losses, grads = obj.batch_loss_grad(params, idx)
    for i in range(4):
        loss_i, grad_i = obj.batch_loss_grad(params[i], idx[i:i + 1])
        np.testing.assert_allclose(losses[i], loss_i[0], rtol=1e-12)
        np.testing.assert_allclose(grads[i], grad_i[0], rtol=1e-10, atol=1e-14)
    # shared params (dim,) take a different matmul path; it must agree with the tiled copy
    shared = obj.batch_loss_grad(params[0], idx)
    tiled = obj.batch_loss_grad(np.tile(params[0], (4, 1)), idx)
    np.testing.assert_allclose(shared[0], tiled[0], rtol=1e-12)
    np.testing.assert_allclose(shared[1], tiled[1], rtol=1e-10, atol=1e-14)


def test_grads_uses_the_sampled_batch():
    obj = MLP(dataset="synthetic", hidden=(5,))
    x = obj.init(np.random.default_rng(0))
    losses, grads = obj.grads(x, 3, 8, np.random.default_rng(11))
    idx = obj.sample(3, 8, np.random.default_rng(11))
    ref_losses, ref_grads = obj.batch_loss_grad(x, idx)
    np.testing.assert_array_equal(losses, ref_losses)
    np.testing.assert_array_equal(grads, ref_grads)
    assert grads.shape == (3, obj.dim) and grads.dtype == np.float32
    assert losses.shape == (3,) and losses.dtype == np.float32


@pytest.mark.parametrize("obj", [
    MLP(dataset="synthetic", hidden=(4,), partition="dirichlet", alpha=0.3),
    MLP(dataset="synthetic", hidden=(4,), partition="by_label", classes_per_worker=2),
    CharLM(dataset="pydoc", context=4, embed=2, hidden=(4,), partition="contiguous"),
], ids=["dirichlet", "by_label", "contiguous"])
def test_workers_sample_only_their_own_shard(obj):
    owner = obj.shards(5).owner(obj.train_labels.size)
    idx = obj.sample(5, 200, np.random.default_rng(3))
    np.testing.assert_array_equal(owner[idx], np.arange(5)[:, None].repeat(200, axis=1))


def test_one_class_per_worker_shows_in_the_output_bias_gradient():
    # at zero weights the softmax is uniform, so d loss / d bias = 1/C - (class frequencies):
    # a worker that only ever sees class c gets exactly 1/C - 1 at c and 1/C elsewhere
    obj = SoftmaxRegression(dataset="synthetic", partition="by_label", classes_per_worker=1,
                            dtype="float64")
    _, grads = obj.grads(np.zeros(obj.dim), 4, 16, np.random.default_rng(0))
    bias = grads[:, -obj.n_classes:]
    hist = np.array(obj.partition_info(4)["label_histogram"])
    own_class = hist.argmax(axis=1)
    assert sorted(own_class) == [0, 1, 2, 3]
    expected = np.full((4, 4), 1 / 4) - np.eye(4)[own_class]
    np.testing.assert_allclose(bias, expected, atol=1e-12)


def test_partition_info_is_consistent_and_json_ready():
    obj = MLP(dataset="synthetic", hidden=(4,), partition="by_label", classes_per_worker=2)
    info = obj.partition_info(4)
    json.dumps(info)
    hist = np.array(info["label_histogram"])
    assert info["scheme"] == "by_label" and info["classes_per_worker"] == 2
    np.testing.assert_array_equal(hist.sum(axis=1), info["sizes"])
    np.testing.assert_array_equal((hist > 0).sum(axis=1), np.full(4, 2))
    dirichlet = MLP(dataset="synthetic", hidden=(4,), partition="dirichlet", alpha=0.5)
    assert dirichlet.partition_info(3)["alpha"] == 0.5
    assert sum(dirichlet.partition_info(3)["sizes"]) == dirichlet.train_labels.size


def test_zero_parameters_give_log_vocab_loss():
    # uniform predictions: cross-entropy ln C nats, log2 C bits
    mlp = MLP(dataset="synthetic", hidden=(3,), eval_size=50)
    assert mlp.evaluate(np.zeros(mlp.dim))["loss"] == pytest.approx(np.log(4), rel=1e-6)
    lm = CharLM(dataset="pydoc", context=2, embed=2, hidden=(3,), eval_size=500)
    metrics = lm.evaluate(np.zeros(lm.dim))
    assert metrics["bits_per_char"] == pytest.approx(np.log2(len(lm.vocab)), rel=1e-6)
    assert metrics["loss"] == pytest.approx(np.log(len(lm.vocab)), rel=1e-6)


def test_evaluation_subsample_is_fixed_and_sized():
    a = MLP(dataset="synthetic", hidden=(3,), eval_size=100, seed=1)
    b = MLP(dataset="synthetic", hidden=(3,), eval_size=100, seed=1)
    assert a.eval_index.size == 100 and np.unique(a.eval_index).size == 100
    np.testing.assert_array_equal(a.eval_index, b.eval_index)
    x = a.init(np.random.default_rng(0))
    assert a.evaluate(x) == b.evaluate(x)
    full = MLP(dataset="synthetic", hidden=(3,), eval_size=10**6)
    np.testing.assert_array_equal(full.eval_index, np.arange(full.test_labels.size))


def test_parameter_layout():
    obj = MLP(dataset="synthetic", hidden=(8, 5))
    assert obj.shapes == [("dense0.weight", (16, 8)), ("dense0.bias", (8,)),
                          ("dense1.weight", (8, 5)), ("dense1.bias", (5,)),
                          ("dense2.weight", (5, 4)), ("dense2.bias", (4,))]
    assert obj.dim == 16 * 8 + 8 + 8 * 5 + 5 + 5 * 4 + 4
    lm = CharLM(dataset="pydoc", context=3, embed=2, hidden=(4,))
    assert lm.shapes[0] == ("embedding", (len(lm.vocab), 2))
    assert lm.shapes[1] == ("dense0.weight", (6, 4))
    x = lm.init(np.random.default_rng(0))
    assert x.shape == (lm.dim,) and x.dtype == np.float32


def test_mlp_learns_synthetic_blobs():
    obj = MLP(dataset="synthetic", hidden=(16,))
    x = adam_mean_gradient(obj, steps=150, lr=1e-2, n_workers=4, batch_size=16)
    assert obj.evaluate(x)["accuracy"] > 0.8


def test_charlm_beats_the_unigram_entropy_on_pydoc():
    # a model that ignores its context can do no better than the unigram entropy
    obj = CharLM(dataset="pydoc", context=6, embed=8, hidden=(64,), eval_size=5000)
    freq = np.bincount(obj.train_labels, minlength=len(obj.vocab)) / obj.train_labels.size
    test = obj.test_labels[obj.eval_index]
    unigram_bits = -np.mean(np.log2(np.maximum(freq[test], 1e-12)))
    x = adam_mean_gradient(obj, steps=300, lr=3e-3, n_workers=4, batch_size=32)
    assert obj.evaluate(x)["bits_per_char"] < unigram_bits - 0.5


def test_registered_names():
    for name, cls in (("mlp", MLP), ("softmax", SoftmaxRegression), ("charlm", CharLM)):
        assert REGISTRY[name][0] is cls


@pytest.mark.parametrize("make, match", [
    (lambda: MLP(dataset="cifar"), "dataset = 'cifar'"),
    (lambda: MLP(dataset="synthetic", hidden=[4, 0]), r"hidden = \[4, 0\]"),
    (lambda: MLP(dataset="synthetic", activation="sigmoid"), "activation = 'sigmoid'"),
    (lambda: MLP(dataset="synthetic", partition="random"), "partition = 'random'"),
    (lambda: MLP(dataset="synthetic", partition="dirichlet", alpha=0), "alpha = 0"),
    (lambda: MLP(dataset="synthetic", classes_per_worker=5), "classes_per_worker = 5"),
    (lambda: MLP(dataset="synthetic", eval_size=0), "eval_size = 0"),
    (lambda: MLP(dataset="synthetic", dtype="float16"), "dtype = 'float16'"),
    (lambda: MLP(dataset="synthetic", seed=-1), "seed = -1"),
    (lambda: CharLM(dataset="pydoc", partition="dirichlet"), "partition = 'dirichlet'"),
    (lambda: CharLM(dataset="pydoc", context=0), "context = 0"),
    (lambda: CharLM(dataset="tinyshakespeare"), "dataset = 'tinyshakespeare'"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_call_arguments_raise_value_error():
    obj = MLP(dataset="synthetic", hidden=(3,))
    x = obj.init(np.random.default_rng(0))
    with pytest.raises(ValueError, match="params has shape"):
        obj.grads(np.zeros((2, obj.dim)), 3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_workers = 0"):
        obj.grads(x, 0, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size = 0"):
        obj.grads(x, 2, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="evaluate expects"):
        obj.evaluate(np.zeros((1, obj.dim)))


def have_fashion() -> bool:
    try:
        fashion_mnist_dir()
    except MissingDataError:
        return False
    return True


@pytest.mark.skipif(not have_fashion(),
                    reason="Fashion-MNIST absent: apt-get install -y dataset-fashion-mnist")
def test_fashion_mnist_mlp_learns():
    obj = MLP(eval_size=2000)
    assert obj.dim == 784 * 256 + 256 + 256 * 10 + 10
    x = adam_mean_gradient(obj, steps=200, lr=1e-3, n_workers=8, batch_size=32)
    assert obj.evaluate(x)["accuracy"] > 0.8
