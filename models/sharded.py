"""Base class of the objectives whose training samples are split over workers."""
from __future__ import annotations

import numpy as np

from models.checks import check_choice, check_int, check_params, check_real
from models.partition import SCHEMES, Shards, label_histogram, make_shards


class ShardedData:
    """Training samples split over workers by a ``models.partition`` scheme.

    Subclasses set ``dim``, ``dtype``, ``seed``, ``n_classes``, the labels ``train_labels``
    (n_train,) ints (the classes the label-skewed schemes split by), call ``_set_partition``
    and implement ``batch_loss_grad(params, idx)``. Shards are built on first use for a worker
    count, from a generator seeded by (seed, n_workers), and cached.
    """

    _SHARD_STREAM = 1  # keeps the shard generator independent of the data generator (stream 0)

    def _set_partition(self, partition, alpha, classes_per_worker) -> None:
        self.partition = check_choice("partition", partition, tuple(SCHEMES))
        self.alpha = check_real("alpha", alpha, 0.0, low_open=True)
        # by_label needs classes that occur in the train set, whatever n_classes says
        n_present = int(np.count_nonzero(np.bincount(self.train_labels)))
        self.classes_per_worker = check_int("classes_per_worker", classes_per_worker, 1)
        if self.classes_per_worker > n_present:
            raise ValueError(f"classes_per_worker = {classes_per_worker!r} must be in "
                             f"[1, {n_present}] (the number of classes in the train set)")
        self._shards: dict[int, Shards] = {}

    def shards(self, n_workers: int) -> Shards:
        """The (cached) split of the training samples over ``n_workers`` workers."""
        n_workers = check_int("n_workers", n_workers, 1)
        if n_workers not in self._shards:
            rng = np.random.default_rng([self.seed, self._SHARD_STREAM, n_workers])
            self._shards[n_workers] = make_shards(
                self.train_labels.size, n_workers, self.partition, labels=self.train_labels,
                alpha=self.alpha, classes_per_worker=self.classes_per_worker, rng=rng)
        return self._shards[n_workers]

    def partition_info(self, n_workers: int) -> dict:
        """Scheme, shard sizes and per-worker label histogram (nested lists) for summaries."""
        shards = self.shards(n_workers)
        info = {"scheme": self.partition, "sizes": shards.sizes.tolist(),
                "label_histogram": label_histogram(shards, self.train_labels,
                                                   self.n_classes).tolist()}
        if self.partition == "dirichlet":
            info["alpha"] = self.alpha
        if self.partition == "by_label":
            info["classes_per_worker"] = self.classes_per_worker
        return info

    def sample(self, n_workers: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Training sample indices (n_workers, batch_size), row i from worker i's shard only."""
        return self.shards(n_workers).sample(rng, batch_size)

    def grads(self, params, n_workers: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Minibatch losses (N,) and gradients (N, dim) on each worker's own shard.

        Equals ``batch_loss_grad(params, sample(n_workers, batch_size, rng))``.
        """
        return self.batch_loss_grad(params, self.sample(n_workers, batch_size, rng))

    def _check_batch(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """(params (dim,) or (N, dim) in ``dtype``, idx (N, B)) checked, N taken from ``idx``."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"idx must be an int array (n_workers, batch_size), got "
                             f"{idx.dtype} {idx.shape}")
        return check_params(params, idx.shape[0], self.dim, self.dtype), idx
