"""Character-level GPT: a causal transformer language model on real text.

Each character id looks up a row of an embedding table; the ``Transformer`` core (causal)
turns the window into hidden states, and a head maps each to logits over the vocabulary for
the next character. The head is its own matrix or, with ``tie_head``, the embedding table.
"""
from __future__ import annotations

import numpy as np

from models.base import register
from models.charlm import TEXT_PARTITIONS, embed, embed_backward
from models.checks import (check_bool, check_choice, check_dtype, check_int, check_params,
                           check_seed)
from models.datasets import TEXT_SETS, load_text
from models.transformer import Transformer, TransformerObjective, linear, linear_backward


@register("gpt", "character-level GPT: a causal transformer language model on real text")
class GPT(TransformerObjective):
    """Next-character prediction at every position of a window; losses in nats per
    character, ``evaluate`` also in bits per character.

    ``dataset``: ``kjv`` or ``pydoc``. ``context``: window length T. ``width``, ``heads``,
    ``blocks``, ``mlp_ratio``: the transformer (``models.transformer``). A training sample is
    a window start i: the model reads characters i..i+T-1 and predicts i+1..i+T, and the loss
    is the mean over all B*T predictions of a worker's minibatch. ``partition``: ``iid`` or
    ``contiguous`` window starts, as for ``charlm``. The last ``test_fraction`` of the text is
    held out; ``evaluate`` scores every position of ``eval_size`` fixed, non-overlapping
    held-out windows (so early positions, with little context, count too).
    """

    #: the values a choice argument allows (the spec checks them before loading any data)
    CHOICES = {"dataset": TEXT_SETS}

    def __init__(self, *, dataset: str = "kjv", context: int = 64, width: int = 64,
                 heads: int = 4, blocks: int = 2, mlp_ratio: int = 4, tie_head: bool = False,
                 partition: str = "iid", test_fraction: float = 0.1, eval_size: int = 256,
                 init_std: float = 0.02, dtype: str = "float32", seed: int = 0):
        self.dataset = check_choice("dataset", dataset, self.CHOICES["dataset"])
        self.context = check_int("context", context, 1)
        self.tie_head = check_bool("tie_head", tie_head)
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        text = load_text(dataset, test_fraction=test_fraction, context=self.context)
        self.vocab = text.vocab
        self.n_classes = len(text.vocab)
        self.train_text, self.test_text = text.train, text.test
        # built after the checks above: its causal mask is context x context
        self.core = Transformer(tokens=self.context, width=width, heads=heads, blocks=blocks,
                                mlp_ratio=mlp_ratio, causal=True)
        # the partition summaries label sample i by its last target, ids[i + context]
        self.train_labels = self.train_text[self.context:].astype(np.int64)
        d, v = self.core.width, self.n_classes
        head = [] if self.tie_head else [("head.weight", (d, v))]
        self._set_layout([("embedding", (v, d))], head + [("head.bias", (v,))], init_std)
        self._set_partition(check_choice("partition", partition, TEXT_PARTITIONS), 1.0, 1)
        self._set_eval(eval_size, (self.test_text.size - 1) // self.context)

    def evaluate(self, params) -> dict[str, float]:
        """Held-out ``loss`` (nats/char), ``bits_per_char`` and next-char ``accuracy``."""
        metrics = super().evaluate(params)
        metrics["bits_per_char"] = metrics["loss"] / float(np.log(2.0))
        return metrics

    def logits(self, params, windows) -> np.ndarray:
        """Next-character logits (N, B, T, vocab) for character ids ``windows`` (N, B, T) and
        ``params`` (N, dim) (or (dim,) for every row)."""
        windows = np.asarray(windows)
        params = check_params(params, windows.shape[0], self.dim, self.dtype)
        logits, _ = self._logits(self.tensors(params), windows)
        return logits.reshape(windows.shape + (self.n_classes,))

    def _forward(self, params, split, idx):
        # training samples are any window start; held-out sample k is the window at k * T
        ids, starts = ((self.train_text, idx) if split == "train"
                       else (self.test_text, idx * self.context))
        at = starts[..., None] + np.arange(self.context)                 # (N, B, T)
        logits, cache = self._logits(self.tensors(params), ids[at])
        targets = ids[at + 1].astype(np.int64).reshape(idx.shape[0], -1)
        return logits, targets, cache

    def _logits(self, p: dict, windows: np.ndarray):
        """Logits (N, B*T, vocab) and the cache for the backward pass."""
        hidden, core = self.core.forward(p, embed(p["embedding"], windows))
        hidden = hidden.reshape(windows.shape[0], -1, self.core.width)
        return linear(hidden, self._head(p), p["head.bias"]), (p, windows, core, hidden)

    def _head(self, p: dict) -> np.ndarray:
        return p["embedding"].swapaxes(-1, -2) if self.tie_head else p["head.weight"]

    def _backward_tensors(self, cache, dlogits, grads) -> None:
        p, windows, core, hidden = cache
        head = self._head(p)
        g_head = (np.empty((windows.shape[0],) + head.shape[-2:], dtype=self.dtype)
                  if self.tie_head else grads["head.weight"])
        dhidden = linear_backward(hidden, head, dlogits, g_head, grads["head.bias"])
        dx = self.core.backward(p, core, dhidden.reshape(windows.shape + (-1,)), grads)
        embed_backward(windows, dx, grads["embedding"])
        if self.tie_head:  # the table is used twice, so its two gradients add
            grads["embedding"] += g_head.swapaxes(1, 2)
