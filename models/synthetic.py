"""Synthetic objectives: quadratics with known curvature and generated regression data sets."""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from models.base import register
from models.checks import (check_dtype, check_eval_params, check_int, check_params, check_real,
                           check_seed)
from models.sharded import ShardedData


class _Quadratic:
    """Separable quadratic 0.5 * sum_k h_k (x_k - x*_k)^2 with additive Gaussian gradient noise.

    Subclasses fix the optimum x* and the per-coordinate noise std (for a batch of one).
    """

    optimum: np.ndarray
    noise_std: np.ndarray

    def __init__(self, *, dim: int, condition: float, noise: float, seed: int, dtype):
        self.dim = check_int("dim", dim, 1)
        self.condition = check_real("condition", condition, 1.0)
        self.noise = check_real("noise", noise, 0.0)
        self.seed = check_seed(seed)
        self.dtype = check_dtype(dtype)
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
        n_workers = check_int("n_workers", n_workers, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        x = np.broadcast_to(check_params(params, n_workers, self.dim, self.dtype),
                            (n_workers, self.dim))
        losses, g = self.loss_grad(x)
        z = rng.standard_normal((n_workers, self.dim), dtype=self.dtype)
        scale = self.noise_std / self.dtype.type(np.sqrt(batch_size))
        return losses, g + scale * z

    def evaluate(self, params) -> dict[str, float]:
        """``loss`` f(x) and ``dist`` ||x - x*|| (float64)."""
        x = check_eval_params(params, self.dim, np.float64)
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


class _LinearModel(ShardedData):
    """A convex linear model on generated data.

    Besides what ``ShardedData`` needs, subclasses set the train arrays ``x_train`` (n, dim)
    and ``y_train`` (n,) in ``dtype``.
    """

    @property
    def n_classes(self) -> int:
        """Histogram width of ``partition_info``: the largest train label + 1."""
        return int(self.train_labels.max()) + 1

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Zeros (dim,): the problems are convex, so the start point needs no randomness."""
        return np.zeros(self.dim, dtype=self.dtype)

    def _batch(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """(params (N, dim), idx (N, B)) checked, with N taken from ``idx``."""
        params, idx = self._check_batch(params, idx)
        return np.broadcast_to(params, (idx.shape[0], self.dim)), idx


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
class Logistic(_LinearModel):
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
        samples = check_int("samples", samples, 2)
        features = check_int("features", features, 1)
        self.label_noise = check_real("label_noise", label_noise, 0.0, 0.5)
        self.l2 = check_real("l2", l2, 0.0, low_open=True)
        test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0,
                                   low_open=True, high_open=True)
        self.seed = check_seed(seed)
        self.dtype = check_dtype(dtype)
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
        self.train_labels = y[:n_train]
        self._set_partition(partition, alpha, classes_per_worker)
        self._optimum: tuple[np.ndarray, float] | None = None

    def batch_loss_grad(self, params, idx) -> tuple[np.ndarray, np.ndarray]:
        """Losses (N,) and gradients (N, dim) of the regularised log-loss on train rows (N, B)."""
        w, idx = self._batch(params, idx)
        return _log_loss_grad(self.x_train[idx], self.y_train[idx], w, self.l2)

    def optimum(self) -> tuple[np.ndarray, float]:
        """(w*, f*) of the full regularised train loss, float64, cached after the first call."""
        if self._optimum is None:
            # imported here: scipy.optimize is a third of the import time of a sweep worker
            # process, and only the logistic objective's evaluation needs it
            from scipy.optimize import minimize
            res = minimize(lambda w: _log_loss_grad(self._x64, self._y64, w, self.l2),
                           np.zeros(self.dim), jac=True, method="L-BFGS-B",
                           options={"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-11})
            self._optimum = (res.x, float(res.fun))
        return self._optimum

    def evaluate(self, params) -> dict[str, float]:
        """Train ``loss``, ``test_loss``, test ``accuracy`` and ``gap`` to f* (float64)."""
        w = check_eval_params(params, self.dim, np.float64)
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
class LeastSquares(_LinearModel):
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
        samples = check_int("samples", samples, 2)
        self.dim = check_int("features", features, 1)
        self.noise = check_real("noise", noise, 0.0)
        test_fraction = check_real("test_fraction", test_fraction, 0.0, 1.0,
                                   low_open=True, high_open=True)
        self.seed = check_seed(seed)
        self.dtype = check_dtype(dtype)
        n_train, _ = _split_sizes(samples, test_fraction)

        rng = np.random.default_rng([self.seed, 0])
        a = rng.standard_normal((samples, self.dim))
        y = a @ rng.standard_normal(self.dim) + self.noise * rng.standard_normal(samples)

        self._x64, self._y64 = a[:n_train], y[:n_train]
        self._test_x, self._test_y = a[n_train:], y[n_train:]
        self.x_train = self._x64.astype(self.dtype)
        self.y_train = self._y64.astype(self.dtype)
        edges = np.quantile(self._y64, np.arange(1, self._TARGET_BINS) / self._TARGET_BINS)
        self.train_labels = np.searchsorted(edges, self._y64).astype(np.int64)
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
        w = check_eval_params(params, self.dim, np.float64)
        loss = float(_squared_loss_grad(self._x64, self._y64, w)[0])
        test_loss = float(_squared_loss_grad(self._test_x, self._test_y, w)[0])
        return {"loss": loss, "test_loss": test_loss, "gap": loss - self.optimum()[1]}
