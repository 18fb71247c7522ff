"""Character-level language model: a Bengio-style MLP over a window of character embeddings.

The model reads ``context`` characters, looks each up in an embedding table (vocab, embed),
concatenates them, and runs the dense chain of ``models.mlp`` to logits over the vocabulary
for the next character. A training sample is a window start in the training text.
"""
from __future__ import annotations

import numpy as np

from models.base import register
from models.checks import check_choice, check_dtype, check_int, check_seed, check_widths
from models.datasets import TEXT_SETS, load_text
from models.mlp import (ACTIVATIONS, ShardedClassifier, dense_backward, dense_forward,
                        dense_shapes, init_dense, split_params)

#: Partition schemes that make sense for a text stream (the label-skewed ones do not).
TEXT_PARTITIONS = ("iid", "contiguous")


def embed(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of ``table``, shared (rows, width) or per worker (N, rows, width), at integer
    ``ids`` (N, ...) -> (N, ..., width)."""
    if table.ndim == 2:
        return table[ids]
    worker = np.arange(ids.shape[0]).reshape((-1,) + (1,) * (ids.ndim - 1))
    return table[worker, ids]


def embed_backward(ids: np.ndarray, d_rows: np.ndarray, out: np.ndarray) -> None:
    """Write d loss / d table (N, rows, width) into ``out`` from ``d_rows`` (N, ..., width),
    the gradient of ``embed(table, ids)``.

    The scatter-add is one batched matmul with a one-hot (N, n_ids, rows) matrix, so repeated
    ids add up correctly without a Python loop or ``np.add.at``.
    """
    n_workers, n_rows, width = out.shape
    one_hot = (ids.reshape(n_workers, -1, 1) == np.arange(n_rows)).astype(out.dtype)
    np.matmul(one_hot.swapaxes(1, 2), d_rows.reshape(n_workers, -1, width), out=out)


@register("charlm", "character-level MLP language model (Bengio style) on real text")
class CharLM(ShardedClassifier):
    """Next-character classifier; losses in nats, ``evaluate`` also in bits per character.

    ``dataset``: ``kjv`` (King James Bible) or ``pydoc`` (CPython docs, no install).
    ``context``: characters read; ``embed``: embedding width; ``hidden``: dense widths.
    ``partition``: ``iid`` windows or ``contiguous`` (each worker reads its own stretch of
    text). The last ``test_fraction`` of the text is held out; ``evaluate`` uses a fixed
    subsample of ``eval_size`` held-out windows.
    """

    #: the values a choice argument allows (the spec checks them before loading any data)
    CHOICES = {"dataset": TEXT_SETS, "activation": ACTIVATIONS}

    def __init__(self, *, dataset: str = "kjv", context: int = 8, embed: int = 16,
                 hidden=(256,), activation: str = "tanh", partition: str = "iid",
                 test_fraction: float = 0.1, eval_size: int = 10000,
                 dtype: str = "float32", seed: int = 0):
        self.dataset = check_choice("dataset", dataset, self.CHOICES["dataset"])
        self.context = check_int("context", context, 1)
        self.embed = check_int("embed", embed, 1)
        self.hidden = check_widths("hidden", hidden)
        self.activation = check_choice("activation", activation, self.CHOICES["activation"])
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        text = load_text(dataset, test_fraction=test_fraction, context=self.context)
        self.vocab = text.vocab
        self.n_classes = len(text.vocab)
        self.train_text, self.test_text = text.train, text.test
        # sample i is the window ids[i : i + context] and its label ids[i + context]
        self.train_labels = self.train_text[self.context:].astype(np.int64)
        self.test_labels = self.test_text[self.context:].astype(np.int64)
        self.shapes = ([("embedding", (self.n_classes, self.embed))]
                       + dense_shapes((self.context * self.embed,) + self.hidden
                                      + (self.n_classes,)))
        self.dim = sum(int(np.prod(s)) for _, s in self.shapes)
        # the label-skewed schemes are rejected, so alpha and classes_per_worker stay unused
        self._set_partition(check_choice("partition", partition, TEXT_PARTITIONS), 1.0, 1)
        self._set_eval(eval_size, self.test_labels.size)

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Embeddings ~ N(0, 1); weights ~ N(0, gain^2 / fan_in); zero biases."""
        params = np.zeros(self.dim, dtype=self.dtype)
        tensors = split_params(params, self.shapes)
        tensors[0][...] = rng.standard_normal(tensors[0].shape)
        init_dense(tensors[1::2], self.activation, rng)
        return params

    def evaluate(self, params) -> dict[str, float]:
        """Held-out ``loss`` (nats/char), ``bits_per_char`` and next-char ``accuracy``."""
        metrics = super().evaluate(params)
        metrics["bits_per_char"] = metrics["loss"] / float(np.log(2.0))
        return metrics

    def _forward(self, params, split, idx):
        ids, labels = ((self.train_text, self.train_labels) if split == "train"
                       else (self.test_text, self.test_labels))
        tensors = split_params(params, self.shapes)
        table, layers = tensors[0], tensors[1:]
        windows = ids[idx[..., None] + np.arange(self.context)]            # (N, B, context)
        x = embed(table, windows).reshape(idx.shape + (self.context * self.embed,))
        logits, cache = dense_forward(layers, x, self.activation)
        return logits, labels[idx], (layers, cache, windows)

    def _backward(self, params, cache, dlogits, grads) -> None:
        layers, dense_cache, windows = cache
        dx = dense_backward(layers, dense_cache, dlogits, self.activation, grads[1:],
                            need_input_grad=True)
        embed_backward(windows, dx, grads[0])
