"""A non-iid objective for the local-update tests (test_diloco, test_streaming): each worker
its own quadratic bowl, exact gradients, (N, d) parameters."""
import numpy as np


class Bowls:
    """Non-iid quadratic: worker i's own bowl 0.5 * sum_k h_k (x_k - c_ik)^2, no noise."""

    def __init__(self, n=3, dim=16):
        rng = np.random.default_rng(3)
        self.dim, self.centres = dim, rng.standard_normal((n, dim))
        self.h = np.linspace(1.0, 0.1, dim)

    def init(self, rng):
        return np.zeros(self.dim)

    def grads(self, params, n_workers, batch_size, rng):
        diff = np.broadcast_to(params, (n_workers, self.dim)) - self.centres[:n_workers]
        return 0.5 * np.einsum("nk,nk->n", self.h * diff, diff), self.h * diff

    def evaluate(self, params):
        return {"loss": float(np.mean(self.grads(params, len(self.centres), 1, None)[0]))}
