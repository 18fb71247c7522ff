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
    if str(dtype) not in _DTYPES:
        raise ValueError(f"dtype = {dtype!r} is not supported; choose one of {', '.join(_DTYPES)}")
    return np.dtype(str(dtype))


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

    def __init__(self, *, dim: int, condition: float, noise: float, seed: int, dtype):
        self.dim = _check_int("dim", dim, 1)
        self.condition = _check_real("condition", condition, 1.0)
        self.noise = _check_real("noise", noise, 0.0)
        self.seed = _check_seed(seed)
        self.dtype = _check_dtype(dtype)
        # h_k log-spaced from 1 down to 1/condition
        self.curvature = (self.condition ** -np.linspace(0.0, 1.0, self.dim)).astype(self.dtype)

    optimum: np.ndarray
    noise_std: np.ndarray

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
        rng = np.random.default_rng(self.seed)
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
