"""Synthetic objectives: exact gradients, batched = per-worker, own-shard sampling, optima."""
import numpy as np
import pytest
from scipy.special import expit

import models
from models.synthetic import NQM, LeastSquares, Logistic, Quadratic

SMALL = dict(samples=600, features=6)


def _central_diff(f, x, step=1e-6):
    """Gradient of scalar f at x (d,) by central differences, one coordinate per row."""
    eye = np.eye(x.size) * step
    return (f(x + eye) - f(x - eye)) / (2 * step)


def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)


def _log_curvature(dim, condition):
    return np.logspace(0.0, -np.log10(condition), dim)


# --- quadratics -------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [Quadratic, NQM])
def test_quadratic_loss_and_gradient_match_the_formula(cls):
    obj = cls(dim=7, condition=50.0, noise=0.0, dtype="float64")
    h = _log_curvature(7, 50.0)
    x = np.random.default_rng(1).standard_normal((3, 7))
    losses, g = obj.grads(x, 3, 4, np.random.default_rng(0))
    x_star = obj.optimum
    assert np.allclose(losses, 0.5 * np.sum(h * (x - x_star) ** 2, axis=1), rtol=1e-12)
    assert np.allclose(g, h * (x - x_star), rtol=1e-12)
    if cls is NQM:
        assert np.all(x_star == 0)


@pytest.mark.parametrize("cls", [Quadratic, NQM])
def test_quadratic_gradient_matches_finite_differences(cls):
    obj = cls(dim=9, condition=100.0, noise=0.0, dtype="float64")
    x = np.random.default_rng(2).standard_normal(9)

    def f(rows):  # rows (9, dim): one worker per perturbed point
        return obj.grads(rows, rows.shape[0], 1, np.random.default_rng(0))[0]

    g = obj.grads(x, 1, 1, np.random.default_rng(0))[1][0]
    assert _rel_err(g, _central_diff(f, x)) < 1e-5
    assert obj.evaluate(x)["loss"] == pytest.approx(f(x[None])[0], rel=1e-12)


@pytest.mark.parametrize("cls", [Quadratic, NQM])
def test_quadratic_batched_path_equals_per_worker_formula(cls):
    n_workers, batch, noise = 5, 16, 0.7
    obj = cls(dim=11, condition=30.0, noise=noise, dtype="float64", seed=3)
    h = _log_curvature(11, 30.0)
    x = np.random.default_rng(4).standard_normal((n_workers, 11))
    losses, g = obj.grads(x, n_workers, batch, np.random.default_rng(9))
    z = np.random.default_rng(9).standard_normal((n_workers, 11))
    std = noise * (np.ones(11) if cls is Quadratic else np.sqrt(h)) / np.sqrt(batch)
    for i in range(n_workers):
        d = x[i] - obj.optimum
        assert losses[i] == pytest.approx(0.5 * np.sum(h * d * d), rel=1e-12)
        assert np.allclose(g[i], h * d + std * z[i], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [Quadratic, NQM])
def test_quadratic_noise_std_scales_with_batch(cls):
    dim, n_workers, batch, noise = 50, 4000, 8, 2.0
    obj = cls(dim=dim, condition=10.0, noise=noise, dtype="float64")
    x = np.zeros(dim)
    _, g = obj.grads(x, n_workers, batch, np.random.default_rng(0))
    h = _log_curvature(dim, 10.0)
    scale = np.sqrt(h) if cls is NQM else np.ones(dim)
    z = (g - h * (x - obj.optimum)) / scale
    # 200k draws: the sample std is within 1% of the truth with overwhelming probability
    assert np.std(z) == pytest.approx(noise / np.sqrt(batch), rel=0.01)
    assert abs(np.mean(z)) < 0.01


def test_params_as_vector_and_as_rows_agree():
    obj = Quadratic(dim=6, dtype="float64")
    x = np.random.default_rng(0).standard_normal(6)
    a = obj.grads(x, 3, 2, np.random.default_rng(1))
    b = obj.grads(np.tile(x, (3, 1)), 3, 2, np.random.default_rng(1))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_quadratic_init_is_standard_normal_and_seeded():
    obj = Quadratic(dim=4000)
    x0 = obj.init(np.random.default_rng(5))
    assert np.array_equal(x0, obj.init(np.random.default_rng(5)))
    assert abs(np.mean(x0)) < 0.1 and np.std(x0) == pytest.approx(1.0, rel=0.1)
    d = obj.evaluate(obj.optimum.astype(np.float64))
    assert d["loss"] == 0.0 and d["dist"] == 0.0


# --- data objectives --------------------------------------------------------------------

def _make(cls, **kw):
    return cls(**SMALL, dtype="float64", **kw)


def _ref_logistic(a, y, w, l2):
    z = a @ w
    p = expit(z)
    return np.mean(np.logaddexp(0, z) - y * z) + 0.5 * l2 * w @ w, a.T @ (p - y) / len(y) + l2 * w


def _ref_squares(a, y, w):
    r = a @ w - y
    return 0.5 * np.mean(r * r), a.T @ r / len(y)


@pytest.mark.parametrize("cls", [Logistic, LeastSquares])
def test_batch_gradient_matches_finite_differences(cls):
    obj = _make(cls)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(obj.dim) * 0.5
    batch = rng.integers(0, obj.x_train.shape[0], size=20)

    def f(rows):  # every perturbed row is a "worker" evaluating the same batch
        return obj.batch_loss_grad(rows, np.tile(batch, (rows.shape[0], 1)))[0]

    g = obj.batch_loss_grad(w, batch[None])[1][0]
    assert _rel_err(g, _central_diff(f, w)) < 1e-5


@pytest.mark.parametrize("cls", [Logistic, LeastSquares])
@pytest.mark.parametrize("partition", ["iid", "dirichlet"])
def test_data_batched_path_equals_per_worker_formula(cls, partition):
    obj = _make(cls, partition=partition, alpha=0.3)
    n_workers, batch = 4, 12
    w = np.random.default_rng(0).standard_normal((n_workers, obj.dim)) * 0.3
    losses, g = obj.grads(w, n_workers, batch, np.random.default_rng(8))
    idx = obj.shards(n_workers).sample(np.random.default_rng(8), batch)
    for i in range(n_workers):
        a, y = obj.x_train[idx[i]], obj.y_train[idx[i]]
        ref = (_ref_logistic(a, y, w[i], obj.l2) if cls is Logistic
               else _ref_squares(a, y, w[i]))
        assert losses[i] == pytest.approx(ref[0], rel=1e-12)
        assert np.allclose(g[i], ref[1], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cls", [Logistic, LeastSquares])
@pytest.mark.parametrize("partition", ["iid", "contiguous", "dirichlet", "by_label"])
def test_workers_sample_only_their_own_shard(cls, partition):
    obj = _make(cls, partition=partition, alpha=0.2)
    n_workers = 6
    shards = obj.shards(n_workers)
    idx = shards.sample(np.random.default_rng(1), 40)
    owner = shards.owner(obj.x_train.shape[0])
    assert np.all(owner[idx] == np.arange(n_workers)[:, None])


def test_logistic_by_label_workers_see_one_class():
    # at w = 0 every prediction is 1/2, so the bias gradient is 1/2 - y: +1/2 on a worker
    # that only holds class 0 and -1/2 on one that only holds class 1
    obj = _make(Logistic, partition="by_label", classes_per_worker=1)
    _, g = obj.grads(np.zeros(obj.dim), 4, 32, np.random.default_rng(0))
    bias = g[:, -1]
    assert np.allclose(np.abs(bias), 0.5)
    assert set(np.sign(bias)) == {-1.0, 1.0}


def test_full_batch_equals_evaluate_loss():
    for cls in (Logistic, LeastSquares):
        obj = _make(cls)
        w = np.random.default_rng(2).standard_normal(obj.dim) * 0.2
        n = obj.x_train.shape[0]
        assert obj.batch_loss_grad(w, np.arange(n)[None])[0][0] == pytest.approx(
            obj.evaluate(w)["loss"], rel=1e-12)


def test_logistic_optimum_is_stationary_and_gap_nonnegative():
    obj = _make(Logistic, l2=1e-3)
    w_star, f_star = obj.optimum()
    a, y = obj.x_train, obj.y_train
    loss, grad = _ref_logistic(a, y, w_star, obj.l2)
    assert np.linalg.norm(grad) < 1e-7
    assert loss == pytest.approx(f_star, abs=1e-12)
    assert abs(obj.evaluate(w_star)["gap"]) < 1e-12
    rng = np.random.default_rng(0)
    for scale in (1e-4, 1e-2, 1.0, 10.0):
        w = w_star + scale * rng.standard_normal(obj.dim)
        assert obj.evaluate(w)["gap"] >= -1e-8
    # strong convexity (modulus l2): gap >= l2/2 ||w - w*||^2
    w = w_star + rng.standard_normal(obj.dim)
    assert obj.evaluate(w)["gap"] >= 0.5 * obj.l2 * np.sum((w - w_star) ** 2)


def test_logistic_optimum_classifies_well_and_beats_zero():
    obj = Logistic(samples=2000, features=8, label_noise=0.05, dtype="float64")
    w_star, _ = obj.optimum()
    at_opt, at_zero = obj.evaluate(w_star), obj.evaluate(np.zeros(obj.dim))
    assert at_zero["loss"] == pytest.approx(np.log(2))
    # the flipped 5% cap the accuracy near 95%; a working fit is far above chance
    assert 0.8 < at_opt["accuracy"] <= 1.0
    assert at_opt["test_loss"] < at_zero["test_loss"]


def test_least_squares_optimum_solves_normal_equations():
    obj = _make(LeastSquares, noise=0.3)
    w_star, f_star = obj.optimum()
    a, y = obj.x_train, obj.y_train
    assert np.linalg.norm(a.T @ (a @ w_star - y)) < 1e-8 * np.linalg.norm(a.T @ y)
    assert f_star == pytest.approx(_ref_squares(a, y, w_star)[0], rel=1e-12)
    # noise-only residual: 0.5 * noise^2 * (1 - features / n_train) in expectation
    n = a.shape[0]
    assert f_star == pytest.approx(0.5 * 0.09 * (1 - obj.dim / n), rel=0.15)
    w = w_star + np.random.default_rng(0).standard_normal(obj.dim)
    assert obj.evaluate(w)["gap"] > 0 and obj.evaluate(w_star)["gap"] == pytest.approx(0, abs=1e-12)


def test_partition_info_reports_the_shards():
    obj = _make(Logistic, partition="dirichlet", alpha=0.5)
    info = obj.partition_info(5)
    assert info["scheme"] == "dirichlet" and info["alpha"] == 0.5
    hist = np.array(info["label_histogram"])
    assert hist.shape == (5, 2)
    assert np.array_equal(hist.sum(axis=1), info["sizes"])
    assert hist.sum() == obj.x_train.shape[0]
    assert np.array_equal(hist.sum(axis=0), np.bincount(obj.train_labels, minlength=2))


def test_least_squares_label_schemes_split_by_target_decile():
    obj = _make(LeastSquares, partition="by_label", classes_per_worker=1)
    shards = obj.shards(10)
    # each worker holds one decile of y: the deciles' y-ranges do not overlap
    ranges = np.array([[obj.y_train[shards.shard(i)].min(), obj.y_train[shards.shard(i)].max()]
                       for i in range(10)])
    ranges = ranges[np.argsort(ranges[:, 0])]
    assert np.all(ranges[1:, 0] > ranges[:-1, 1])


# --- registry, dtype, determinism, errors -----------------------------------------------

def test_make_builds_by_name_and_lists_names_on_error():
    obj = models.make("logistic", samples=300, features=4)
    assert isinstance(obj, Logistic) and obj.dim == 5
    assert isinstance(obj, models.Objective)
    for name in ("quadratic", "nqm", "logistic", "least_squares"):
        assert name in models.REGISTRY and models.REGISTRY[name][1]
    with pytest.raises(ValueError) as err:
        models.make("logistc")
    for name in ("quadratic", "nqm", "logistic", "least_squares"):
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["quadratic", "nqm", "logistic", "least_squares"])
@pytest.mark.parametrize("dtype", [None, "float32", "float64", np.float64])
def test_dtype_of_every_output(name, dtype):
    kw = {} if dtype is None else {"dtype": dtype}
    if name in ("logistic", "least_squares"):
        kw.update(SMALL)
    obj = models.make(name, **kw)
    want = np.dtype(dtype or "float32")
    rng = np.random.default_rng(0)
    x0 = obj.init(rng)
    losses, g = obj.grads(x0, 3, 5, rng)
    assert x0.dtype == want and losses.dtype == want and g.dtype == want
    assert x0.shape == (obj.dim,) and losses.shape == (3,) and g.shape == (3, obj.dim)
    assert all(isinstance(v, float) for v in obj.evaluate(x0).values())


@pytest.mark.parametrize("name", ["quadratic", "logistic", "least_squares"])
def test_same_seed_same_problem(name):
    kw = dict(SMALL) if name != "quadratic" else {}
    a, b = models.make(name, seed=4, **kw), models.make(name, seed=4, **kw)
    c = models.make(name, seed=5, **kw)
    w = np.full(a.dim, 0.1, dtype=np.float32)
    ga = a.grads(w, 3, 8, np.random.default_rng(1))
    gb = b.grads(w, 3, 8, np.random.default_rng(1))
    gc = c.grads(w, 3, 8, np.random.default_rng(1))
    assert np.array_equal(ga[1], gb[1]) and not np.array_equal(ga[1], gc[1])
    assert a.evaluate(w.astype(float)) == b.evaluate(w.astype(float))


def test_shards_are_cached_per_worker_count():
    obj = _make(Logistic)
    assert obj.shards(4) is obj.shards(4)
    assert obj.shards(4).n_workers == 4 and obj.shards(3).n_workers == 3


@pytest.mark.parametrize("factory,kwargs,words", [
    (Quadratic, dict(dim=0), ["dim = 0", ">= 1"]),
    (Quadratic, dict(condition=0.5), ["condition = 0.5", "[1.0"]),
    (NQM, dict(noise=-1.0), ["noise = -1.0"]),
    (Quadratic, dict(dtype="float16"), ["dtype = 'float16'", "float32, float64"]),
    (Quadratic, dict(dtype=None), ["dtype = None", "float32, float64"]),
    (Quadratic, dict(dtype="bogus"), ["dtype = 'bogus'"]),
    (Logistic, dict(label_noise=0.7), ["label_noise = 0.7", "0.5]"]),
    (Logistic, dict(l2=0.0), ["l2 = 0.0"]),
    (Logistic, dict(test_fraction=1.0), ["test_fraction = 1.0"]),
    (Logistic, dict(samples=10, test_fraction=0.01), ["test_fraction = 0.01", "samples = 10"]),
    (Logistic, dict(partition="zipf"), ["partition = 'zipf'", "dirichlet"]),
    (Logistic, dict(classes_per_worker=3), ["classes_per_worker = 3", "[1, 2]"]),
    (LeastSquares, dict(alpha=0.0), ["alpha = 0.0"]),
    (LeastSquares, dict(features=2.5), ["features = 2.5", "integer"]),
])
def test_bad_constructor_arguments_name_the_key(factory, kwargs, words):
    with pytest.raises(ValueError) as err:
        factory(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_bad_call_arguments_name_the_problem():
    obj = _make(LeastSquares)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"params has shape \(3,\)"):
        obj.grads(np.zeros(3), 2, 4, rng)
    with pytest.raises(ValueError, match="batch_size = 0"):
        obj.grads(np.zeros(obj.dim), 2, 0, rng)
    with pytest.raises(ValueError, match="n_workers = 0"):
        obj.grads(np.zeros(obj.dim), 0, 4, rng)
    with pytest.raises(ValueError, match="n_workers = 1000"):
        obj.grads(np.zeros(obj.dim), 1000, 4, rng)
    with pytest.raises(ValueError, match="evaluate expects"):
        obj.evaluate(np.zeros((2, obj.dim)))
