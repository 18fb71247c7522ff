"""How a data set's samples are split across workers (iid, contiguous, or label-skewed shards)."""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from models.checks import check_choice, check_int

#: scheme name -> one-line description.
SCHEMES: dict[str, str] = {
    "iid": "random equal split: every worker sees the same distribution",
    "contiguous": "equal split in sample order (keeps text streams and time order intact)",
    "dirichlet": "label skew: each class is split over workers in Dirichlet(alpha) proportions",
    "by_label": "label skew: each worker holds exactly classes_per_worker classes",
}


@dataclass(frozen=True)
class Shards:
    """Disjoint shards of a data set: worker i owns ``order[starts[i]:starts[i] + sizes[i]]``.

    ``order`` holds global sample indices (int64); samples that appear in no shard are owned by
    nobody. Every worker owns at least one sample, so ``sample`` is always defined.
    """

    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    def __post_init__(self):
        order = np.asarray(self.order, dtype=np.int64)
        starts = np.asarray(self.starts, dtype=np.int64)
        sizes = np.asarray(self.sizes, dtype=np.int64)
        if order.ndim != 1:
            raise ValueError(f"order must be 1-D, got shape {order.shape}")
        if starts.ndim != 1 or starts.shape != sizes.shape or starts.size == 0:
            raise ValueError(f"starts and sizes must be equal non-empty 1-D arrays, got shapes "
                             f"{starts.shape} and {sizes.shape}")
        if sizes.min() < 1:
            raise ValueError(f"sizes = {sizes.tolist()} has an empty shard; every worker needs "
                             f">= 1 sample")
        if starts.min() < 0 or (starts + sizes).max() > order.size:
            raise ValueError(f"shard ranges starts={starts.tolist()}, sizes={sizes.tolist()} "
                             f"must lie within order (length {order.size})")
        # frozen: set the normalised arrays through object.__setattr__
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "sizes", sizes)

    @property
    def n_workers(self) -> int:
        """Number of shards (one per worker)."""
        return int(self.sizes.size)

    def shard(self, worker: int) -> np.ndarray:
        """Global sample indices owned by ``worker``."""
        start = self.starts[worker]
        return self.order[start:start + self.sizes[worker]]

    def sample(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Minibatch indices ``(n_workers, batch_size)`` int64, uniform with replacement per shard.

        Uses exactly one ``rng.random((n_workers, batch_size))`` draw, so a copy of the
        generator reproduces the batch.
        """
        check_int("batch_size", batch_size, 1)
        u = rng.random((self.n_workers, batch_size))
        # u < 1 in float64 rounds u * size strictly below size, so local is a valid offset
        local = (u * self.sizes[:, None]).astype(np.int64)
        return self.order[self.starts[:, None] + local]

    def owner(self, n_samples: int) -> np.ndarray:
        """Worker id of each of ``n_samples`` samples (int64), -1 where no worker owns it."""
        check_int("n_samples", n_samples, 1)
        workers, positions = self._positions()
        owned = self.order[positions]
        if owned.size and owned.max() >= n_samples:
            raise ValueError(f"n_samples = {n_samples} is smaller than the largest owned index "
                             f"{int(owned.max())}; pass the data set size")
        out = np.full(n_samples, -1, dtype=np.int64)
        out[owned] = workers
        return out

    def _positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(worker id, position in ``order``) of every owned slot, flattened over workers."""
        workers = np.repeat(np.arange(self.n_workers), self.sizes)
        first = np.cumsum(self.sizes) - self.sizes
        positions = np.arange(workers.size) - first[workers] + self.starts[workers]
        return workers, positions


def make_shards(n_samples: int, n_workers: int, scheme: str = "iid", *,
                labels: np.ndarray | None = None, alpha: float = 1.0,
                classes_per_worker: int = 2, rng: np.random.Generator) -> Shards:
    """Split ``n_samples`` samples over ``n_workers`` workers by ``scheme`` (see ``SCHEMES``).

    ``labels`` (n_samples,) ints are required by the label-skewed schemes. ``alpha`` > 0 is the
    Dirichlet concentration (small: each class lands on few workers; large: near-uniform).
    ``classes_per_worker`` is the number of distinct classes per worker for ``by_label``.
    Raises ``ValueError`` if any worker would get no sample.
    """
    check_int("n_samples", n_samples, 1)
    check_int("n_workers", n_workers, 1)
    check_choice("partition scheme", scheme, tuple(SCHEMES))
    if n_workers > n_samples:
        raise ValueError(f"n_workers = {n_workers} exceeds n_samples = {n_samples}; every "
                         f"worker needs >= 1 sample")
    if scheme in ("iid", "contiguous"):
        order = (rng.permutation(n_samples) if scheme == "iid"
                 else np.arange(n_samples, dtype=np.int64))
        sizes = np.full(n_workers, n_samples // n_workers, dtype=np.int64)
        sizes[:n_samples % n_workers] += 1
        return Shards(order, np.cumsum(sizes) - sizes, sizes)

    values, classes = _class_ids(labels, n_samples, scheme)
    if scheme == "dirichlet":
        if not isinstance(alpha, Real) or not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha = {alpha!r} must be a finite number > 0")
        worker_of = _dirichlet_assignment(classes, n_workers, float(alpha), rng)
    else:
        worker_of = _by_label_assignment(classes, values, n_workers, classes_per_worker, rng)
    return _shards_from_assignment(worker_of, n_workers, n_samples, scheme)


def label_histogram(shards: Shards, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Count of each class in each worker's shard: ``(n_workers, n_classes)`` int64."""
    check_int("n_classes", n_classes, 1)
    labels = np.asarray(labels)
    workers, positions = shards._positions()
    owned = labels[shards.order[positions]]
    if owned.size and (owned.min() < 0 or owned.max() >= n_classes):
        raise ValueError(f"labels span [{int(owned.min())}, {int(owned.max())}] but must lie in "
                         f"[0, n_classes = {n_classes})")
    counts = np.bincount(workers * n_classes + owned.astype(np.int64),
                         minlength=shards.n_workers * n_classes)
    return counts.reshape(shards.n_workers, n_classes)


def _class_ids(labels, n_samples: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct label values, and each label as a dense class id into them."""
    if labels is None:
        raise ValueError(f"partition scheme = {scheme!r} needs labels (an int array of length "
                         f"n_samples = {n_samples})")
    labels = np.asarray(labels)
    if labels.shape != (n_samples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an int array of shape ({n_samples},), got "
                         f"{labels.dtype} {labels.shape}")
    values, classes = np.unique(labels, return_inverse=True)
    return values, classes.astype(np.int64)


def _rank_within_class(classes: np.ndarray, n_classes: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random rank of each sample among its class, and the class sizes (n_classes,)."""
    counts = np.bincount(classes, minlength=n_classes)
    # class id + a uniform in [0, 1/2) sorts by class, then randomly within a class; the 1/2
    # keeps rounding from ever lifting a key onto the next class
    by_class = np.argsort(classes + 0.5 * rng.random(classes.size))
    rank = np.empty(classes.size, dtype=np.int64)
    rank[by_class] = np.arange(classes.size) - (np.cumsum(counts) - counts)[classes[by_class]]
    return rank, counts


def _dirichlet_assignment(classes: np.ndarray, n_workers: int, alpha: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Worker of each sample: one random sample per worker, the rest split per class by p_c.

    The reserved sample per worker keeps every shard non-empty even when a tiny alpha sends
    whole classes to one worker. Within class c the k-th of n_c samples goes to the worker whose
    cumulative share of p_c ~ Dirichlet(alpha) first exceeds (k + 1/2) / n_c, so the shard
    sizes follow p_c up to rounding.
    """
    n = classes.size
    worker_of = np.empty(n, dtype=np.int64)
    reserved = rng.permutation(n)[:n_workers]
    worker_of[reserved] = np.arange(n_workers)
    rest = np.ones(n, dtype=bool)
    rest[reserved] = False
    rest_classes = classes[rest]
    n_classes = int(classes.max()) + 1
    rank, counts = _rank_within_class(rest_classes, n_classes, rng)
    # clipped and pinned to 1 so rounding can neither unsort the table below nor drop a sample
    shares = np.minimum(np.cumsum(rng.dirichlet(np.full(n_workers, alpha), size=n_classes),
                                  axis=1), 1.0)
    shares[:, -1] = 1.0
    # offsetting row c by c makes the table one sorted array, so one searchsorted serves
    # every class at once
    table = (shares + np.arange(n_classes)[:, None]).ravel()
    frac = (rank + 0.5) / np.maximum(counts, 1)[rest_classes]
    hit = np.searchsorted(table, rest_classes + frac, side="right")
    worker_of[rest] = hit - rest_classes * n_workers
    return worker_of


def _by_label_assignment(classes: np.ndarray, values: np.ndarray, n_workers: int,
                         classes_per_worker, rng: np.random.Generator) -> np.ndarray:
    """Worker of each sample (-1: unowned) when each worker holds exactly k distinct classes.

    Worker i takes classes perm[(i*k + j) mod C] for j < k, so classes are spread evenly and
    all are used once n_workers * k >= C; each class is split equally among its holders.
    """
    n_classes = values.size
    if (isinstance(classes_per_worker, bool) or not isinstance(classes_per_worker, Integral)
            or not 1 <= classes_per_worker <= n_classes):
        raise ValueError(f"classes_per_worker = {classes_per_worker!r} must be an integer in "
                         f"[1, {n_classes}] (the number of classes in labels)")
    k = int(classes_per_worker)
    slot_class = rng.permutation(n_classes)[(np.arange(n_workers * k)) % n_classes]
    slot_worker = np.repeat(np.arange(n_workers), k)
    by_class = np.argsort(slot_class, kind="stable")
    holders = np.bincount(slot_class, minlength=n_classes)
    first_holder = np.cumsum(holders) - holders
    rank, counts = _rank_within_class(classes, n_classes, rng)
    if np.any(counts < holders):
        c = int(np.argmax(counts < holders))
        raise ValueError(f"label {values[c].item()!r} has only {int(counts[c])} samples but "
                         f"classes_per_worker = {k} with n_workers = {n_workers} makes "
                         f"{int(holders[c])} workers hold it; use fewer workers or classes")
    worker_of = np.full(classes.size, -1, dtype=np.int64)
    held = holders[classes] > 0
    c = classes[held]
    slot = first_holder[c] + rank[held] * holders[c] // counts[c]
    worker_of[held] = slot_worker[by_class[slot]]
    return worker_of


def _shards_from_assignment(worker_of: np.ndarray, n_workers: int, n_samples: int,
                            scheme: str) -> Shards:
    owned = np.flatnonzero(worker_of >= 0)
    sizes = np.bincount(worker_of[owned], minlength=n_workers)
    if sizes.min() < 1:
        raise ValueError(f"partition scheme = {scheme!r} left worker {int(np.argmin(sizes))} "
                         f"empty with n_workers = {n_workers}, n_samples = {n_samples}; use "
                         f"fewer workers or a milder skew")
    order = owned[np.argsort(worker_of[owned], kind="stable")]
    return Shards(order, np.cumsum(sizes) - sizes, sizes)
