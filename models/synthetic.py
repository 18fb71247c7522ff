"""Synthetic objectives: quadratics with known curvature and generated regression data sets."""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from models.base import register
from models.partition import SCHEMES, Shards, label_histogram, make_shards

_DTYPES = ("float32", "float64")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} = {value!r} must be an integer >= {low}")
    return int(value)


def _check_real(name: str, value, low: float, high: float = np.inf, *,
                low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} = {value!r} must be a finite number in {bounds}")
    return float(value)


def _check_dtype(dtype) -> np.dtype:
    try:
        # np.dtype(None) would silently mean float64
        resolved = None if dtype is None else np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in _DTYPES:
        raise ValueError(f"dtype = {dtype!r} is not supported; choose one of {', '.join(_DTYPES)}")
    return resolved


def _check_seed(seed) -> int:
    return _check_int("seed", seed, 0)


def _worker_params(params, n_workers: int, dim: int, dtype: np.dtype) -> np.ndarray:
    """``params`` (dim,) or (n_workers, dim) as a read-only (n_workers, dim) array of ``dtype``."""
    params = np.asarray(params, dtype=dtype)
    if params.shape not in ((dim,), (n_workers, dim)):
        raise ValueError(f"params has shape {params.shape}; expected ({dim},) or "
                         f"({n_workers}, {dim})")
    return np.broadcast_to(params, (n_workers, dim))


def _check_eval_params(params, dim: int) -> np.ndarray:
    params = np.asarray(params, dtype=np.float64)
    if params.shape != (dim,):
        raise ValueError(f"params has shape {params.shape}; evaluate expects ({dim},)")
    return params


class _Quadratic:
    """Separable quadratic 0.5 * sum_k h_k (x_k - x*_k)^2 with additive Gaussian gradient noise.

    Subclasses fix the optimum x* and the per-coordinate noise std (for a batch of one).
    """

    optimum: np.ndarray
    noise_std: np.ndarray

    def __init__(self, *, dim: int, condition: float, noise: float, seed: int, dtype):
        self.dim = _check_int("dim", dim, 1)
        self.condition = _check_real("condition", condition, 1.0)
        self.noise = _check_real("noise", noise, 0.0)
        self.seed = _check_seed(seed)
        self.dtype = _check_dtype(dtype)
        # h_k log-spaced from 1 down to 1/condition
        self.curvature = (self.condition ** -np.linspace(0.0, 1.0, self.dim)).astype(self.dtype)

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """x0 ~ N(0, I), shape (dim,)."""
        return rng.standard_normal(self.dim, dtype=self.dtype)

    def loss_grad(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact loss (...,) and gradient (..., dim) at ``params`` (..., dim)."""
        diff = params - self.optimum
        hd = self.curvature * diff
        return 0.5 * np.einsum("...k,...k->...", hd, diff), hd

    def grads(self, params, n_workers: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per-worker exact losses (N,) and noisy gradients (N, dim).

        The noise of a batch of B is the mean of B per-sample draws: std ``noise_std/sqrt(B)``,
        from one ``rng.standard_normal((N, dim))`` call. The loss is the exact f(x_i): a
        quadratic has no per-sample loss to average.
        """
        n_workers = _check_int("n_workers", n_workers, 1)
        batch_size = _check_int("batch_size", batch_size, 1)
        x = _worker_params(params, n_workers, self.dim, self.dtype)
        losses, g = self.loss_grad(x)
        z = rng.standard_normal((n_workers, self.dim), dtype=self.dtype)
        scale = self.noise_std / self.dtype.type(np.sqrt(batch_size))
        return losses, g + scale * z

    def evaluate(self, params) -> dict[str, float]:
        """``loss`` f(x) and ``dist`` ||x - x*|| (float64)."""
        x = _check_eval_params(params, self.dim)
        diff = x - self.optimum.astype(np.float64)
        loss = 0.5 * np.dot(self.curvature.astype(np.float64) * diff, diff)
        return {"loss": float(loss), "dist": float(np.linalg.norm(diff))}


@register("quadratic", "ill-conditioned quadratic with a random optimum and isotropic "
                       "gradient noise")
class Quadratic(_Quadratic):
    """f(x) = 0.5 * sum_k h_k (x_k - x*_k)^2, h log-spaced in [1/condition, 1].

    x* ~ N(0, I) is drawn from ``seed``. A worker's batch-of-B gradient is
    h * (x - x*) + noise / sqrt(B) * z, z ~ N(0, I): ``noise`` is the std of one sample's
    gradient noise per coordinate. The reported minibatch loss is the exact f(x).
    """

    def __init__(self, *, dim: int = 100, condition: float = 100.0, noise: float = 1.0,
                 seed: int = 0, dtype="float32"):
        super().__init__(dim=dim, condition=condition, noise=noise, seed=seed, dtype=dtype)
        rng = np.random.default_rng([self.seed, 0])
        self.optimum = rng.standard_normal(self.dim, dtype=self.dtype)
        self.noise_std = np.full(self.dim, self.noise, dtype=self.dtype)


@register("nqm", "noisy quadratic model: optimum at 0, gradient noise covariance "
                 "proportional to the curvature")
class NQM(_Quadratic):
    """Noisy quadratic model (Zhang et al. 2019): f(x) = 0.5 * sum_k h_k x_k^2.

    h log-spaced in [1/condition, 1]; a worker's batch-of-B gradient is
    h * x + noise * sqrt(h / B) * z, z ~ N(0, I), so the noise covariance noise^2 * diag(h) / B
    follows the curvature. The reported minibatch loss is the exact f(x). ``seed`` is accepted
    for a uniform interface; the problem itself has no random part.
    """

    def __init__(self, *, dim: int = 100, condition: float = 100.0, noise: float = 1.0,
                 seed: int = 0, dtype="float32"):
        super().__init__(dim=dim, condition=condition, noise=noise, seed=seed, dtype=dtype)
        self.optimum = np.zeros(self.dim, dtype=self.dtype)
        self.noise_std = (self.noise * np.sqrt(self.curvature)).astype(self.dtype)


class _ShardedData:
    """Training data split over workers by a ``models.partition`` scheme.

    Subclasses set ``dim``, ``dtype``, ``seed``, the public train arrays ``x_train`` (n, dim)
    and ``y_train`` (n,) in ``dtype`` and ``labels_train`` (n,) ints (the classes the
    label-skewed schemes split by), and implement ``batch_loss_grad``. Shards are built on the
    first ``grads`` call for a given worker count, from a generator seeded by (seed, n_workers),
    and cached.
    """

    _SHARD_STREAM = 1  # keeps the shard generator independent of the data generator (stream 0)

    def _set_partition(self, partition, alpha, classes_per_worker) -> None:
        if partition not in SCHEMES:
            raise ValueError(f"partition = {partition!r} is unknown; choose one of "
                             f"{', '.join(SCHEMES)}")
        self.partition = partition
        self.alpha = _check_real("alpha", alpha, 0.0, low_open=True)
        n_classes = int(np.unique(self.labels_train).size)
        self.classes_per_worker = _check_int("classes_per_worker", classes_per_worker, 1)
        if self.classes_per_worker > n_classes:
            raise ValueError(f"classes_per_worker = {classes_per_worker!r} must be in "
                             f"[1, {n_classes}] (the number of classes in the train set)")
        self._shards: dict[int, Shards] = {}

    def shards(self, n_workers: int) -> Shards:
        """The (cached) split of the train set over ``n_workers`` workers."""
        n_workers = _check_int("n_workers", n_workers, 1)
        if n_workers not in self._shards:
            rng = np.random.default_rng([self.seed, self._SHARD_STREAM, n_workers])
            self._shards[n_workers] = make_shards(
                self.labels_train.size, n_workers, self.partition, labels=self.labels_train,
                alpha=self.alpha, classes_per_worker=self.classes_per_worker, rng=rng)
        return self._shards[n_workers]

    def partition_info(self, n_workers: int) -> dict:
        """Scheme, shard sizes and per-worker label histogram (nested lists) for summaries."""
        shards = self.shards(n_workers)
        n_classes = int(self.labels_train.max()) + 1
        info = {"scheme": self.partition, "sizes": shards.sizes.tolist(),
                "label_histogram": label_histogram(shards, self.labels_train,
                                                   n_classes).tolist()}
        if self.partition == "dirichlet":
            info["alpha"] = self.alpha
        if self.partition == "by_label":
            info["classes_per_worker"] = self.classes_per_worker
        return info

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Zeros (dim,): the problems are convex, so the start point needs no randomness."""
        return np.zeros(self.dim, dtype=self.dtype)

    def grads(self, params, n_workers: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Losses (N,) and gradients (N, dim) on batches drawn from each worker's own shard.

        The batch is ``self.shards(n_workers).sample(rng, batch_size)``, then
        ``batch_loss_grad`` evaluates it.
        """
        batch_size = _check_int("batch_size", batch_size, 1)
        idx = self.shards(n_workers).sample(rng, batch_size)
        return self.batch_loss_grad(params, idx)

    def _batch(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """(params (N, dim), idx (N, B)) checked, with N taken from ``idx``."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"idx must be an int array (n_workers, batch_size), got "
                             f"{idx.dtype} {idx.shape}")
        return _worker_params(params, idx.shape[0], self.dim, self.dtype), idx


def _split_sizes(samples: int, test_fraction: float) -> tuple[int, int]:
    """(n_train, n_test), both >= 1."""
    n_test = int(round(test_fraction * samples))
    if not 1 <= n_test <= samples - 1:
        raise ValueError(f"test_fraction = {test_fraction!r} with samples = {samples} leaves "
                         f"{n_test} test and {samples - n_test} train samples; both must be >= 1")
    return samples - n_test, n_test


def _log_loss_grad(a: np.ndarray, y: np.ndarray, w: np.ndarray,
                   l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean log-loss + l2/2 ||w||^2 and its gradient over the sample axis of ``a`` (..., n, d).

    ``y`` (..., n) in {0, 1}; ``w`` (..., d). log(1 + e^z) - y z is evaluated as
    logaddexp(0, z) - y z, which never overflows.
    """
    z = np.einsum("...nd,...d->...n", a, w)
    loss = np.mean(np.logaddexp(0, z) - y * z, axis=-1) + 0.5 * l2 * np.einsum("...d,...d->...",
                                                                               w, w)
    grad = np.einsum("...n,...nd->...d", expit(z) - y, a) / z.shape[-1] + l2 * w
    return loss, grad


@register("logistic", "binary logistic regression on a generated, label-noisy data set")
class Logistic(_ShardedData):
    """Binary logistic regression, loss in nats per sample.

    f(w) = mean_i [log(1 + exp(x_i.w)) - y_i x_i.w] + l2/2 ||w||^2 over the train split, with
    x_i ~ N(0, I_features) plus a constant 1 feature (the bias, also under l2), y_i in {0, 1}
    from a random separating hyperplane and a fraction ``label_noise`` of labels flipped.
    ``dim = features + 1``. ``evaluate`` reports the train ``loss`` (with l2), the test
    ``test_loss`` (log-loss without l2), test ``accuracy`` and ``gap`` = loss - f*, where f*
    comes from L-BFGS-B in float64 (computed once, on first use).
    """

    def __init__(self, *, samples: int = 4096, features: int = 32, label_noise: float = 0.05,
                 l2: float = 1e-4, test_fraction: float = 0.2, partition: str = "iid",
                 alpha: float = 1.0, classes_per_worker: int = 1, seed: int = 0,
                 dtype="float32"):
        samples = _check_int("samples", samples, 2)
        features = _check_int("features", features, 1)
        self.label_noise = _check_real("label_noise", label_noise, 0.0, 0.5)
        self.l2 = _check_real("l2", l2, 0.0, low_open=True)
        test_fraction = _check_real("test_fraction", test_fraction, 0.0, 1.0,
                                    low_open=True, high_open=True)
        self.seed = _check_seed(seed)
        self.dtype = _check_dtype(dtype)
        self.dim = features + 1
        n_train, _ = _split_sizes(samples, test_fraction)

        rng = np.random.default_rng([self.seed, 0])
        x = np.concatenate([rng.standard_normal((samples, features)), np.ones((samples, 1))],
                           axis=1)
        # logit std about 3: most labels are confident, so the flips are the main noise
        w_true = np.append(rng.standard_normal(features) * 3.0 / np.sqrt(features),
                           rng.standard_normal() * 0.5)
        y = (x @ w_true > 0).astype(np.int64)
        flip = rng.permutation(samples)[:int(round(self.label_noise * samples))]
        y[flip] = 1 - y[flip]

        self._x64, self._y64 = x[:n_train], y[:n_train].astype(np.float64)
        self._test_x, self._test_y = x[n_train:], y[n_train:].astype(np.float64)
        self.x_train = self._x64.astype(self.dtype)
        self.y_train = self._y64.astype(self.dtype)
        self.labels_train = y[:n_train]
        self._set_partition(partition, alpha, classes_per_worker)
        self._optimum: tuple[np.ndarray, float] | None = None

    def batch_loss_grad(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """Losses (N,) and gradients (N, dim) of the regularised log-loss on train rows (N, B)."""
        w, idx = self._batch(params, idx)
        return _log_loss_grad(self.x_train[idx], self.y_train[idx], w, self.l2)

    def optimum(self) -> tuple[np.ndarray, float]:
        """(w*, f*) of the full regularised train loss, float64, cached after the first call."""
        if self._optimum is None:
            res = minimize(lambda w: _log_loss_grad(self._x64, self._y64, w, self.l2),
                           np.zeros(self.dim), jac=True, method="L-BFGS-B",
                           options={"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-11})
            self._optimum = (res.x, float(res.fun))
        return self._optimum

    def evaluate(self, params) -> dict[str, float]:
        """Train ``loss``, ``test_loss``, test ``accuracy`` and ``gap`` to f* (float64)."""
        w = _check_eval_params(params, self.dim)
        loss = float(_log_loss_grad(self._x64, self._y64, w, self.l2)[0])
        test_loss = float(_log_loss_grad(self._test_x, self._test_y, w, 0.0)[0])
        accuracy = float(np.mean((self._test_x @ w > 0) == (self._test_y > 0.5)))
        return {"loss": loss, "test_loss": test_loss, "accuracy": accuracy,
                "gap": loss - self.optimum()[1]}


def _squared_loss_grad(a: np.ndarray, y: np.ndarray,
                       w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0.5 * mean squared residual and its gradient over the sample axis of ``a`` (..., n, d)."""
    r = np.einsum("...nd,...d->...n", a, w) - y
    return 0.5 * np.mean(r * r, axis=-1), np.einsum("...n,...nd->...d", r, a) / r.shape[-1]


@register("least_squares", "linear regression on a generated data set with Gaussian noise")
class LeastSquares(_ShardedData):
    """Linear regression, loss 0.5 * mean_i (a_i.w - y_i)^2 in squared target units.

    a_i ~ N(0, I_features), y_i = a_i.w_true + noise * e_i with w_true, e_i ~ N(0, 1);
    ``dim = features``. The label-skewed partitions split by target deciles (10 classes of
    y). ``evaluate`` reports the train ``loss``, ``test_loss`` and ``gap`` = loss - f*, f* at
    the exact least-squares solution (np.linalg.lstsq, float64).
    """

    _TARGET_BINS = 10

    def __init__(self, *, samples: int = 4096, features: int = 32, noise: float = 0.1,
                 test_fraction: float = 0.2, partition: str = "iid", alpha: float = 1.0,
                 classes_per_worker: int = 2, seed: int = 0, dtype="float32"):
        samples = _check_int("samples", samples, 2)
        self.dim = _check_int("features", features, 1)
        self.noise = _check_real("noise", noise, 0.0)
        test_fraction = _check_real("test_fraction", test_fraction, 0.0, 1.0,
                                    low_open=True, high_open=True)
        self.seed = _check_seed(seed)
        self.dtype = _check_dtype(dtype)
        n_train, _ = _split_sizes(samples, test_fraction)

        rng = np.random.default_rng([self.seed, 0])
        a = rng.standard_normal((samples, self.dim))
        y = a @ rng.standard_normal(self.dim) + self.noise * rng.standard_normal(samples)

        self._x64, self._y64 = a[:n_train], y[:n_train]
        self._test_x, self._test_y = a[n_train:], y[n_train:]
        self.x_train = self._x64.astype(self.dtype)
        self.y_train = self._y64.astype(self.dtype)
        edges = np.quantile(self._y64, np.arange(1, self._TARGET_BINS) / self._TARGET_BINS)
        self.labels_train = np.searchsorted(edges, self._y64).astype(np.int64)
        self._set_partition(partition, alpha, classes_per_worker)
        self._optimum: tuple[np.ndarray, float] | None = None

    def batch_loss_grad(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """Losses (N,) and gradients (N, dim) of the squared loss on train rows idx (N, B)."""
        w, idx = self._batch(params, idx)
        return _squared_loss_grad(self.x_train[idx], self.y_train[idx], w)

    def optimum(self) -> tuple[np.ndarray, float]:
        """(w*, f*) of the full train loss by np.linalg.lstsq (float64), cached."""
        if self._optimum is None:
            w = np.linalg.lstsq(self._x64, self._y64, rcond=None)[0]
            self._optimum = (w, float(_squared_loss_grad(self._x64, self._y64, w)[0]))
        return self._optimum

    def evaluate(self, params) -> dict[str, float]:
        """Train ``loss``, ``test_loss`` and ``gap`` to the least-squares optimum (float64)."""
        w = _check_eval_params(params, self.dim)
        loss = float(_squared_loss_grad(self._x64, self._y64, w)[0])
        test_loss = float(_squared_loss_grad(self._test_x, self._test_y, w)[0])
        return {"loss": loss, "test_loss": test_loss, "gap": loss - self.optimum()[1]}
