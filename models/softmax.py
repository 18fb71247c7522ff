"""Softmax (multinomial logistic) regression: the MLP with no hidden layer."""
from __future__ import annotations

from models.base import register
from models.mlp import MLP


@register("softmax", "softmax (multinomial logistic) regression on a real data set")
class SoftmaxRegression(MLP):
    """Linear classifier x -> softmax(x W + b), convex in its ``dim = (features + 1) * classes``
    parameters. Arguments as for ``MLP`` (``dataset``, ``partition``, ``alpha``,
    ``classes_per_worker``, ``eval_size``, ``dtype``, ``seed``), without hidden layers.
    """

    def __init__(self, *, dataset: str = "fashion_mnist", partition: str = "iid",
                 alpha: float = 1.0, classes_per_worker: int = 2, eval_size: int = 10000,
                 dtype: str = "float32", seed: int = 0):
        super().__init__(dataset=dataset, hidden=(), partition=partition, alpha=alpha,
                         classes_per_worker=classes_per_worker, eval_size=eval_size,
                         dtype=dtype, seed=seed)
