"""Data partitions: disjoint coverage, own-shard sampling, label skew, input errors."""
import numpy as np
import pytest

from models.partition import SCHEMES, Shards, label_histogram, make_shards


def _labels(n, n_classes, seed=0):
    return np.random.default_rng(seed).integers(0, n_classes, size=n)


def _all_shards(shards):
    return [shards.shard(i) for i in range(shards.n_workers)]


# by_label needs a class per worker with at least as many samples as holders, so it is not
# run with one sample per worker
@pytest.mark.parametrize("scheme,n_samples,n_workers", [
    (scheme, n, w) for scheme in SCHEMES for n, w in [(1000, 7), (64, 8), (10, 5), (9, 9)]
    if not (scheme == "by_label" and n == w)])
def test_shards_are_disjoint_nonempty_and_owner_agrees(scheme, n_samples, n_workers):
    labels = np.arange(n_samples) % 4
    shards = make_shards(n_samples, n_workers, scheme, labels=labels, alpha=0.5,
                         classes_per_worker=1, rng=np.random.default_rng(1))
    parts = _all_shards(shards)
    assert all(p.size >= 1 for p in parts)
    flat = np.concatenate(parts)
    assert np.unique(flat).size == flat.size, "a sample is in two shards"
    assert flat.min() >= 0 and flat.max() < n_samples
    owner = shards.owner(n_samples)
    for i, p in enumerate(parts):
        assert np.all(owner[p] == i)
    assert np.count_nonzero(owner >= 0) == flat.size


@pytest.mark.parametrize("scheme", ["iid", "contiguous", "dirichlet"])
def test_schemes_that_cover_every_sample(scheme):
    n = 1003
    shards = make_shards(n, 6, scheme, labels=_labels(n, 3), rng=np.random.default_rng(2))
    assert np.array_equal(np.sort(shards.order), np.arange(n))
    assert np.all(shards.owner(n) >= 0)


@pytest.mark.parametrize("scheme", ["iid", "contiguous"])
def test_equal_splits_differ_by_at_most_one(scheme):
    shards = make_shards(1003, 6, scheme, rng=np.random.default_rng(0))
    assert shards.sizes.sum() == 1003
    assert shards.sizes.max() - shards.sizes.min() <= 1


def test_contiguous_keeps_sample_order():
    shards = make_shards(100, 3, "contiguous", rng=np.random.default_rng(0))
    assert np.array_equal(np.concatenate(_all_shards(shards)), np.arange(100))


def test_iid_is_seeded():
    a = make_shards(500, 4, rng=np.random.default_rng(3))
    b = make_shards(500, 4, rng=np.random.default_rng(3))
    c = make_shards(500, 4, rng=np.random.default_rng(4))
    assert np.array_equal(a.order, b.order)
    assert not np.array_equal(a.order, c.order)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_sample_only_returns_the_workers_own_shard(scheme):
    n, n_workers, batch = 400, 5, 64
    labels = _labels(n, 5)
    shards = make_shards(n, n_workers, scheme, labels=labels, alpha=0.1,
                         rng=np.random.default_rng(5))
    idx = shards.sample(np.random.default_rng(6), batch)
    assert idx.shape == (n_workers, batch) and idx.dtype == np.int64
    owner = shards.owner(n)
    assert np.all(owner[idx] == np.arange(n_workers)[:, None])


def test_sample_is_uniform_over_a_small_shard():
    shards = Shards(order=np.array([9, 4, 7, 1, 3]), starts=np.array([0, 2]),
                    sizes=np.array([2, 3]))
    idx = shards.sample(np.random.default_rng(0), 30000)
    counts0 = np.array([np.count_nonzero(idx[0] == s) for s in (9, 4)])
    counts1 = np.array([np.count_nonzero(idx[1] == s) for s in (7, 1, 3)])
    assert counts0.sum() == 30000 and counts1.sum() == 30000
    # binomial std of a share at n = 30000 is below 0.003; 0.02 is more than 6 sigma
    assert np.allclose(counts0 / 30000, 1 / 2, atol=0.02)
    assert np.allclose(counts1 / 30000, 1 / 3, atol=0.02)


def test_sample_reproducible_from_generator_state():
    shards = make_shards(100, 4, rng=np.random.default_rng(0))
    a = shards.sample(np.random.default_rng(11), 8)
    b = shards.sample(np.random.default_rng(11), 8)
    assert np.array_equal(a, b)


def _top_worker_share(hist):
    """Mean over classes of the fraction of the class held by its largest holder."""
    return np.mean(hist.max(axis=0) / hist.sum(axis=0))


def test_dirichlet_tiny_alpha_is_skewed_and_huge_alpha_near_uniform():
    n, n_workers, n_classes = 20000, 10, 10
    labels = _labels(n, n_classes)
    skew = make_shards(n, n_workers, "dirichlet", labels=labels, alpha=0.01,
                       rng=np.random.default_rng(0))
    flat = make_shards(n, n_workers, "dirichlet", labels=labels, alpha=1e4,
                       rng=np.random.default_rng(0))
    h_skew = label_histogram(skew, labels, n_classes)
    h_flat = label_histogram(flat, labels, n_classes)
    # tiny alpha: each class goes (almost) whole to one worker
    assert _top_worker_share(h_skew) > 0.9
    # huge alpha: each worker's class mix is the global one, about 1/n_classes each
    global_mix = np.bincount(labels, minlength=n_classes) / n
    worker_mix = h_flat / h_flat.sum(axis=1, keepdims=True)
    assert np.abs(worker_mix - global_mix).max() < 0.03
    assert h_flat.sum(axis=1).min() > 0.9 * n / n_workers


def test_dirichlet_share_follows_concentration():
    n, n_classes = 20000, 10
    labels = _labels(n, n_classes)
    shares = [_top_worker_share(label_histogram(
        make_shards(n, 8, "dirichlet", labels=labels, alpha=a, rng=np.random.default_rng(1)),
        labels, n_classes)) for a in (0.05, 0.5, 50.0)]
    assert shares[0] > shares[1] > shares[2]


@pytest.mark.parametrize("n_workers,k,n_classes", [(8, 2, 10), (5, 1, 10), (6, 3, 4),
                                                   (3, 10, 10)])
def test_by_label_gives_each_worker_exactly_k_classes(n_workers, k, n_classes):
    n = 3000
    labels = _labels(n, n_classes)
    shards = make_shards(n, n_workers, "by_label", labels=labels, classes_per_worker=k,
                         rng=np.random.default_rng(7))
    hist = label_histogram(shards, labels, n_classes)
    assert np.all(np.count_nonzero(hist, axis=1) == k)
    # every class is used when there are enough slots, and no class is left half-owned
    used = hist.sum(axis=0) > 0
    assert used.sum() == min(n_classes, n_workers * k)
    totals = np.bincount(labels, minlength=n_classes)
    assert np.array_equal(hist.sum(axis=0)[used], totals[used])


def test_by_label_splits_a_class_equally_among_its_holders():
    n_classes, n = 2, 1000
    labels = np.repeat(np.arange(n_classes), n // n_classes)
    shards = make_shards(n, 4, "by_label", labels=labels, classes_per_worker=1,
                         rng=np.random.default_rng(0))
    assert np.array_equal(np.sort(shards.sizes), [250, 250, 250, 250])


def test_label_histogram_matches_a_direct_count():
    n, n_classes = 300, 3
    labels = _labels(n, n_classes)
    shards = make_shards(n, 4, rng=np.random.default_rng(0))
    hist = label_histogram(shards, labels, n_classes)
    for i in range(4):
        for c in range(n_classes):
            assert hist[i, c] == np.sum(labels[shards.shard(i)] == c)


def test_non_dense_labels_are_accepted():
    labels = np.where(_labels(200, 2) == 0, 3, 17)
    shards = make_shards(200, 2, "by_label", labels=labels, classes_per_worker=1,
                         rng=np.random.default_rng(0))
    assert all(np.unique(labels[s]).size == 1 for s in _all_shards(shards))


@pytest.mark.parametrize("kwargs,words", [
    (dict(n_samples=3, n_workers=4), ["n_workers = 4", "n_samples = 3"]),
    (dict(n_samples=10, n_workers=0), ["n_workers = 0", ">= 1"]),
    (dict(n_samples=10, n_workers=2, scheme="zipf"), ["'zipf'", "dirichlet"]),
    (dict(n_samples=10, n_workers=2, scheme="dirichlet"), ["needs labels"]),
    (dict(n_samples=10, n_workers=2, scheme="dirichlet", labels=np.zeros(10, int),
          alpha=0.0), ["alpha = 0.0", "> 0"]),
    (dict(n_samples=10, n_workers=2, scheme="by_label", labels=np.arange(10) % 2,
          classes_per_worker=3), ["classes_per_worker = 3", "[1, 2]"]),
    (dict(n_samples=10, n_workers=2, scheme="by_label", labels=np.zeros(10)),
     ["int array"]),
    (dict(n_samples=12, n_workers=4, scheme="by_label",
          labels=np.array([0] * 11 + [1]), classes_per_worker=2),
     ["classes_per_worker = 2", "label 1 has only 1 samples"]),
])
def test_bad_input_names_the_argument(kwargs, words):
    with pytest.raises(ValueError) as err:
        make_shards(rng=np.random.default_rng(0), **kwargs)
    for word in words:
        assert word in str(err.value)


def test_by_label_that_leaves_a_worker_empty_is_an_error():
    # 4 workers with one class each: label 0 gets two holders but has a single sample
    labels = np.array([0, 1, 1, 1])
    with pytest.raises(ValueError, match="only 1 samples"):
        make_shards(4, 4, "by_label", labels=labels, classes_per_worker=1,
                    rng=np.random.default_rng(0))


def test_shards_validates_its_arrays():
    with pytest.raises(ValueError, match="empty shard"):
        Shards(np.arange(4), np.array([0, 2]), np.array([2, 0]))
    with pytest.raises(ValueError, match="within order"):
        Shards(np.arange(4), np.array([0, 2]), np.array([2, 3]))
    with pytest.raises(ValueError, match="batch_size = 0"):
        Shards(np.arange(4), np.array([0]), np.array([4])).sample(np.random.default_rng(0), 0)
