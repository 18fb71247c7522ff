"""Vision transformer: an image cut into square patches, each patch one token.

A linear layer embeds each flattened patch; with ``pool = "class"`` a learned class token
goes first. The ``Transformer`` core (full attention) turns the tokens into hidden states,
and a linear head classifies the class token's state or the mean over all tokens.
"""
from __future__ import annotations

import numpy as np

from models.base import register
from models.checks import check_choice, check_dtype, check_int, check_seed
from models.datasets import load_classification
from models.transformer import Transformer, TransformerObjective, linear, linear_backward

#: Data sets whose samples are square one-channel images. ``synthetic`` has 16 features, read
#: as a 4x4 grid: not an image, but small enough for fast tests.
IMAGE_SETS = ("fashion_mnist", "mnist5k", "digits", "synthetic")
POOLS = ("class", "mean")


@register("vit", "vision transformer classifier on image data")
class ViT(TransformerObjective):
    """Image classifier; losses in nats, ``evaluate`` also gives test ``accuracy``.

    ``dataset``: one of ``IMAGE_SETS`` (28x28 for Fashion-MNIST and MNIST, 8x8 for digits).
    ``patch``: side of the square patches in pixels; it must divide the image side.
    ``width``, ``heads``, ``blocks``, ``mlp_ratio``: the transformer. ``pool``: ``class``
    (a learned class token) or ``mean`` (average over the patch tokens). ``partition``,
    ``alpha``, ``classes_per_worker``, ``eval_size`` as for ``mlp``.
    """

    #: the values a choice argument allows (the spec checks them before loading any data)
    CHOICES = {"dataset": IMAGE_SETS, "pool": POOLS}

    def __init__(self, *, dataset: str = "fashion_mnist", patch: int = 7, width: int = 64,
                 heads: int = 4, blocks: int = 2, mlp_ratio: int = 4, pool: str = "class",
                 partition: str = "iid", alpha: float = 1.0, classes_per_worker: int = 2,
                 eval_size: int = 10000, init_std: float = 0.02, dtype: str = "float32",
                 seed: int = 0):
        self.dataset = check_choice("dataset", dataset, self.CHOICES["dataset"])
        self.patch = check_int("patch", patch, 1)
        self.pool = check_choice("pool", pool, self.CHOICES["pool"])
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        data = load_classification(dataset, seed=self.seed)
        side = int(round(np.sqrt(data.x_train.shape[1])))
        if side % self.patch:
            divisors = [k for k in range(1, side + 1) if side % k == 0]
            raise ValueError(f"patch = {patch!r} must divide the image side {side} of "
                             f"{dataset!r}; choose one of {', '.join(map(str, divisors))}")
        grid = side // self.patch
        self.n_patches = grid * grid
        # pixel order that stores each patch's pixels together, patches in row-major order
        self.pixel_order = (np.arange(side * side).reshape(grid, self.patch, grid, self.patch)
                            .transpose(0, 2, 1, 3).reshape(-1))
        self.n_classes = data.n_classes
        self.x_train = data.x_train.astype(self.dtype, copy=False)
        self.x_test = data.x_test.astype(self.dtype, copy=False)
        self.train_labels, self.test_labels = data.y_train, data.y_test
        self.core = Transformer(tokens=self.n_patches + (self.pool == "class"), width=width,
                                heads=heads, blocks=blocks, mlp_ratio=mlp_ratio, causal=False)
        d = self.core.width
        front = [("patch.weight", (self.patch * self.patch, d)), ("patch.bias", (d,))]
        if self.pool == "class":
            front.append(("class_token", (d,)))
        self._set_layout(front, [("head.weight", (d, self.n_classes)),
                                 ("head.bias", (self.n_classes,))], init_std)
        self._set_partition(partition, alpha, classes_per_worker)
        self._set_eval(eval_size, len(self.test_labels))

    def _forward(self, params, split, idx):
        x, y = ((self.x_train, self.train_labels) if split == "train"
                else (self.x_test, self.test_labels))
        p = self.tensors(params)
        n, b = idx.shape
        d = self.core.width
        patches = x[idx[..., None], self.pixel_order].reshape(n, b * self.n_patches, -1)
        tokens = linear(patches, p["patch.weight"], p["patch.bias"]
                        ).reshape(n, b, self.n_patches, d)
        if self.pool == "class":
            cls = p["class_token"]
            cls = np.broadcast_to(cls if cls.ndim == 1 else cls[:, None, None, :], (n, b, 1, d))
            tokens = np.concatenate([cls, tokens], axis=2)
        hidden, core = self.core.forward(p, tokens)
        pooled = hidden[:, :, 0] if self.pool == "class" else hidden.mean(axis=2)
        logits = linear(pooled, p["head.weight"], p["head.bias"])           # (N, B, classes)
        return logits, y[idx], (p, patches, core, pooled)

    def _backward_tensors(self, cache, dlogits, grads) -> None:
        p, patches, core, pooled = cache
        dpooled = linear_backward(pooled, p["head.weight"], dlogits, grads["head.weight"],
                                  grads["head.bias"])
        n, b, d = dpooled.shape
        t = self.core.tokens
        if self.pool == "class":
            dhidden = np.zeros((n, b, t, d), dtype=self.dtype)
            dhidden[:, :, 0] = dpooled
        else:
            dhidden = np.repeat(dpooled[:, :, None] / t, t, axis=2)
        dtokens = self.core.backward(p, core, dhidden, grads)
        if self.pool == "class":
            dtokens[:, :, 0].sum(axis=1, out=grads["class_token"])
            dtokens = dtokens[:, :, 1:]
        linear_backward(patches, p["patch.weight"], dtokens.reshape(n, b * self.n_patches, d),
                        grads["patch.weight"], grads["patch.bias"], input_grad=False)
