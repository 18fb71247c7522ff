"""Byzantine workers: adversaries that send whatever hurts, inside their method's wire format.

An adversary computes its gradient like everyone else, then feeds its method something else:

- ``flip``: exactly the negation of what it would honestly send: -sign(c) for a sign method,
  -g for a full-precision one. Most methods get there by being fed the negated gradient: they
  encode linearly or symmetrically, and an adversary's own state (a D-Lion momentum, a top-k
  memory) then only ever sees negated inputs. EF-signSGD, PowerSGD and 1-bit Adam put shared
  state into a message (the weight decay of x, the aggregated approximation their memory
  subtracts, the shared momentum), so they negate their adversaries' messages themselves and
  keep those workers' honest state (``Method.flips``). Where a sign method's input is exactly
  0, an adversary resolves it by ``zero_sign`` as an honest worker does (the same sign under
  "plus" and "minus", its own coin under "random", 0 under "zero").
- ``random``: Gaussian noise with each adversary's own gradient's root-mean-square scale: random
  signs for a sign method, noise of the honest scale for the others.
- ``scale``: -lambda times the gradient (``scale_factor``, default 10); full-precision methods
  only, where one such worker is enough to break the mean (a sign cannot be scaled).

Adversaries stay inside their wire format: the method encodes what they feed it, so a 1-bit
adversary still sends 1 bit per parameter. They do not collude, unless ``collude``: then every
adversary starts from the same vector, the mean of the honest workers' gradients (the
direction the honest majority pushes), and all send the same message against it. Who is
adversarial is fixed for the run: the listed workers, or ones drawn from the run's seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.units import count_of

ATTACKS = ("flip", "random", "scale")
SCALE_DEFAULT = 10.0
#: methods that send the fp32 gradient itself, the only ones a ``scale`` attack applies to
FULL_PRECISION = ("glion", "gadamw", "gsgd")


@dataclass(frozen=True)
class Adversaries:
    """Which workers are adversarial (bool (N,)) and what they do."""

    mask: np.ndarray
    attack: str = "flip"
    scale_factor: float = SCALE_DEFAULT
    collude: bool = False

    @property
    def ids(self) -> list[int]:
        return np.flatnonzero(self.mask).tolist()

    def corrupt(self, grads: np.ndarray, rng: np.random.Generator,
                negate: bool = True) -> np.ndarray:
        """What every worker feeds its method: the honest rows of ``grads`` (N, d) unchanged,
        the adversaries' replaced by their attack (a new array). ``negate`` False: a ``flip``
        adversary feeds the gradient it stands for unnegated, since its method negates its
        message itself (``Method.flips``)."""
        if not self.mask.any():
            return grads
        out = grads.copy()
        honest = grads[~self.mask]
        if self.collude and honest.shape[0]:
            base = np.broadcast_to(honest.mean(axis=0), (int(self.mask.sum()), grads.shape[1]))
        else:
            base = grads[self.mask]
        if self.attack == "flip":
            out[self.mask] = -base if negate else base
        elif self.attack == "scale":
            out[self.mask] = -self.scale_factor * base
        else:
            rms = np.sqrt(np.mean(np.square(base, dtype=np.float64), axis=1, keepdims=True))
            rows = 1 if self.collude else base.shape[0]
            noise = rng.standard_normal((rows, grads.shape[1])) * rms[:rows]
            out[self.mask] = np.broadcast_to(noise, base.shape)
        return out


def choose(byzantine, n_workers: int, rng: np.random.Generator) -> np.ndarray:
    """bool (N,) adversaries: a list of ids as given, or a count (an int) or a fraction of N
    (a float, rounded down) drawn from ``rng``."""
    mask = np.zeros(n_workers, dtype=bool)
    if isinstance(byzantine, (list, tuple)):
        mask[list(byzantine)] = True
        return mask
    count = byzantine if isinstance(byzantine, int) else count_of(byzantine, n_workers)
    mask[rng.choice(n_workers, count, replace=False)] = True
    return mask
