"""Multi-layer perceptron classifier with a hand-written backward pass, batched over workers.

Parameters are one flat vector; ``shapes`` lists the tensors inside it in order. Every array
carries a leading worker axis N: activations are (N, B, width), and weights are either shared
(in, out) when all workers hold the same x, or per worker (N, in, out). Shared weights turn
each layer's forward into one (N*B, in) @ (in, out) matmul; per-worker gradients are always one
batched (N, in, B) @ (N, B, out) matmul.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from models.base import register
from models.checks import (check_choice, check_dtype, check_eval_params, check_int, check_seed,
                           check_widths)
from models.datasets import CLASSIFICATION_SETS, load_classification
from models.sharded import ShardedData

ACTIVATIONS = ("relu", "gelu", "tanh")

_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))


def dense_shapes(sizes, prefix: str = "dense") -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the weights (in, out) and biases (out,) of a chain of ``sizes``."""
    shapes = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes += [(f"{prefix}{i}.weight", (n_in, n_out)), (f"{prefix}{i}.bias", (n_out,))]
    return shapes


def init_dense(weights, activation: str, rng: np.random.Generator) -> None:
    """Draw a chain's weight matrices in place: N(0, gain^2 / fan_in), gain 1 at the output.

    The hidden gain is sqrt(2) (He) before relu/gelu and 1 before tanh.
    """
    gain = 1.0 if activation == "tanh" else np.sqrt(2.0)
    for i, w in enumerate(weights):
        scale = (gain if i < len(weights) - 1 else 1.0) / np.sqrt(w.shape[0])
        w[...] = scale * rng.standard_normal(w.shape)


def split_params(params: np.ndarray, shapes) -> list[np.ndarray]:
    """Views of the tensors in ``params`` (dim,) or (N, dim): shapes ``shape`` or (N, *shape)."""
    lead = params.shape[:-1]
    views, offset = [], 0
    for _, shape in shapes:
        size = int(np.prod(shape))
        views.append(params[..., offset:offset + size].reshape(lead + shape))
        offset += size
    return views


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (N, B, in) times w: shared (in, out) or per worker (N, in, out) -> (N, B, out)."""
    if w.ndim == 2:
        return (x.reshape(-1, x.shape[-1]) @ w).reshape(x.shape[:-1] + w.shape[-1:])
    return np.matmul(x, w)


def activate(z: np.ndarray, activation: str) -> np.ndarray:
    """The elementwise nonlinearity; ``gelu`` is the exact z * Phi(z)."""
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "gelu":
        return z * ndtr(z)
    return np.tanh(z)


def activation_grad(z: np.ndarray, a: np.ndarray, activation: str) -> np.ndarray:
    """d activation / dz at pre-activation ``z`` with output ``a``."""
    if activation == "relu":
        return (z > 0).astype(z.dtype)
    if activation == "gelu":
        return ndtr(z) + z * (_INV_SQRT_2PI * np.exp(-0.5 * z * z))
    return 1 - a * a


def dense_forward(layers, x: np.ndarray, activation: str):
    """Logits (N, B, out) of the chain ``layers`` = [W0, b0, W1, b1, ...] and a cache.

    The activation follows every layer but the last.
    """
    cache = []
    h = x
    n_layers = len(layers) // 2
    for i in range(n_layers):
        w, b = layers[2 * i], layers[2 * i + 1]
        z = matmul(h, w) + (b if b.ndim == 1 else b[:, None, :])
        if i < n_layers - 1:
            a = activate(z, activation)
            cache.append((h, z, a))
            h = a
        else:
            cache.append((h, None, None))
            h = z
    return h, cache


def dense_backward(layers, cache, dout: np.ndarray, activation: str, grads,
                   need_input_grad: bool = False):
    """Backpropagate ``dout`` (N, B, out) through the chain, writing into ``grads``.

    ``grads`` are per-worker views (N, *shape) matching ``layers``. Returns d loss / d input
    (N, B, in) when ``need_input_grad``, else None (skipping the first layer's largest matmul).
    """
    delta = dout
    for i in reversed(range(len(layers) // 2)):
        w = layers[2 * i]
        h, _, _ = cache[i]
        np.matmul(h.swapaxes(1, 2), delta, out=grads[2 * i])
        delta.sum(axis=1, out=grads[2 * i + 1])
        if i == 0 and not need_input_grad:
            return None
        delta = matmul(delta, w.swapaxes(-1, -2))
        if i > 0:
            _, z, a = cache[i - 1]
            delta *= activation_grad(z, a, activation)
    return delta


def softmax_xent(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy (nats) over the batch axis and its gradient.

    logits (N, B, C), labels (N, B) ints -> losses (N,), d mean-loss / d logits (N, B, C).
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    expd = np.exp(shifted)
    total = expd.sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(shifted, labels[..., None], axis=-1)[..., 0]
    losses = (np.log(total[..., 0]) - picked).mean(axis=-1)
    dlogits = expd / total
    np.put_along_axis(dlogits, labels[..., None],
                      np.take_along_axis(dlogits, labels[..., None], axis=-1) - 1, axis=-1)
    dlogits /= logits.shape[1]
    return losses, dlogits


class ShardedClassifier(ShardedData):
    """Softmax classifiers over sharded samples: cross-entropy grads and held-out evaluation.

    Besides what ``ShardedData`` needs, subclasses set ``shapes``, the test labels
    ``test_labels``, call ``_set_eval`` and implement ``_forward(params, split, idx)`` /
    ``_backward(params, cache, dlogits, grads)``.
    """

    def _set_eval(self, eval_size, n_test: int) -> None:
        """Fix the evaluation subsample; the same for every seed so runs stay comparable."""
        self.eval_size = check_int("eval_size", eval_size, 1)
        self.eval_index = (np.arange(n_test) if self.eval_size >= n_test else
                           np.sort(np.random.default_rng(0).choice(n_test, self.eval_size,
                                                                   replace=False)))

    def batch_loss_grad(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """Losses (N,) and gradients (N, dim) on training samples ``idx`` (N, B).

        ``params`` is (dim,) (shared by all workers) or (N, dim).
        """
        params, idx = self._check_batch(params, idx)
        logits, labels, cache = self._forward(params, "train", idx)
        losses, dlogits = softmax_xent(logits, labels)
        grads = np.empty((idx.shape[0], self.dim), dtype=self.dtype)
        self._backward(params, cache, dlogits, split_params(grads, self.shapes))
        return losses, grads

    def evaluate(self, params) -> dict[str, float]:
        """Held-out ``loss`` (nats) and ``accuracy`` on the fixed test subsample."""
        params = check_eval_params(params, self.dim, self.dtype)
        logits, labels, _ = self._forward(params, "test", self.eval_index[None, :])
        losses, _ = softmax_xent(logits, labels)
        accuracy = np.mean(logits[0].argmax(axis=-1) == labels[0])
        return {"loss": float(losses[0]), "accuracy": float(accuracy)}


@register("mlp", "multi-layer perceptron classifier (softmax cross-entropy) on a real data set")
class MLP(ShardedClassifier):
    """Classifier x -> [dense -> activation] * len(hidden) -> dense -> softmax.

    ``dataset``: one of ``models.datasets.CLASSIFICATION_SETS``. ``hidden``: widths of the
    hidden layers (empty: softmax regression). ``partition`` splits the train set over workers
    (``models.partition.SCHEMES``; ``alpha`` for dirichlet, ``classes_per_worker`` for
    by_label). ``evaluate`` uses a fixed subsample of ``eval_size`` test samples.
    """

    #: the values a choice argument allows (the spec checks them before loading any data)
    CHOICES = {"dataset": CLASSIFICATION_SETS, "activation": ACTIVATIONS}

    def __init__(self, *, dataset: str = "fashion_mnist", hidden=(256,),
                 activation: str = "relu", partition: str = "iid", alpha: float = 1.0,
                 classes_per_worker: int = 2, eval_size: int = 10000,
                 dtype: str = "float32", seed: int = 0):
        self.dataset = check_choice("dataset", dataset, self.CHOICES["dataset"])
        self.hidden = check_widths("hidden", hidden)
        self.activation = check_choice("activation", activation, self.CHOICES["activation"])
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        data = load_classification(dataset, seed=self.seed)
        self.n_classes = data.n_classes
        self.x_train = data.x_train.astype(self.dtype, copy=False)
        self.x_test = data.x_test.astype(self.dtype, copy=False)
        self.train_labels, self.test_labels = data.y_train, data.y_test
        self.sizes = (self.x_train.shape[1],) + self.hidden + (self.n_classes,)
        self.shapes = dense_shapes(self.sizes)
        self.dim = sum(int(np.prod(s)) for _, s in self.shapes)
        self._set_partition(partition, alpha, classes_per_worker)
        self._set_eval(eval_size, len(self.test_labels))

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Weights ~ N(0, gain^2 / fan_in) (He gain sqrt(2) before relu/gelu), zero biases."""
        params = np.zeros(self.dim, dtype=self.dtype)
        init_dense(split_params(params, self.shapes)[0::2], self.activation, rng)
        return params

    def _forward(self, params, split, idx):
        x, y = ((self.x_train, self.train_labels) if split == "train"
                else (self.x_test, self.test_labels))
        layers = split_params(params, self.shapes)
        logits, cache = dense_forward(layers, x[idx], self.activation)
        return logits, y[idx], (layers, cache)

    def _backward(self, params, cache, dlogits, grads) -> None:
        layers, dense_cache = cache
        dense_backward(layers, dense_cache, dlogits, self.activation, grads)
