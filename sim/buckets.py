"""Layers, gradient buckets and the backward pass: when each part of a step's message exists.

Data-parallel training does not wait for the whole gradient. The backward pass produces the
gradients layer by layer, last layer first; PyTorch DDP groups them into buckets in that order
(``bucket_cap_mb`` = 25 MiB, the first bucket 1 MiB so that communication starts early: DDP's
``_DEFAULT_FIRST_BUCKET_BYTES``) and all-reduces each bucket as soon as its last gradient is
ready, one bucket after the other on one NCCL stream. Only what is left after the last layer is
exposed. Units: parameters, bytes, seconds.

The layers of a model come from the model preset's architecture (``preset_layers``), from the
objective's tensors, or are ``count`` equal layers (``equal_layers``). The backward pass takes
the share ``backward`` of the step's compute (default 2/3: its FLOPs are about twice the
forward pass's, 4N of the 6N per token of Kaplan et al. 2020, "Scaling laws for neural language
models", section 2.1) and spends it on the layers in proportion to their parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: DDP's defaults (torch.nn.parallel.DistributedDataParallel: bucket_cap_mb = 25; the first
#: bucket 1 MiB, torch.distributed's _DEFAULT_FIRST_BUCKET_BYTES)
BUCKET_BYTES = 25 * 2**20
FIRST_BUCKET_BYTES = 2**20
#: the backward pass's share of a step's compute (module docstring)
BACKWARD_FRACTION = 2 / 3
#: bytes of one parameter's gradient, by which DDP sizes its buckets (fp32)
GRADIENT_BYTES = 4


@dataclass(frozen=True)
class Buckets:
    """The buckets of one model, in the order the backward pass completes them."""

    params: np.ndarray   # int (B,): parameters in each bucket
    done: np.ndarray     # float (B,): share of the backward pass done when each is complete
    backward: float      # share of the step's compute that is the backward pass

    def __len__(self) -> int:
        return int(self.params.size)

    def ready(self, start: np.ndarray, compute: np.ndarray) -> np.ndarray:
        """(B, N) seconds at which each bucket's gradients exist on each worker that began
        its step at ``start`` and computes for ``compute`` seconds (both (N,))."""
        forward = 1.0 - self.backward
        return start + compute * (forward + self.backward * self.done[:, None])

    def split(self, bits: np.ndarray, header: int) -> np.ndarray:
        """(B, N) bits of each bucket's message, from each worker's whole message ``bits``
        (N,), header included: the payload in proportion to the bucket's parameters, and a
        header for each bucket's message. The buckets' payloads add up to the whole one."""
        payload = np.asarray(bits, dtype=np.int64) - header
        edges = np.concatenate([[0], np.cumsum(self.params)]) / self.params.sum()
        cut = np.rint(edges[:, None] * payload[None, :]).astype(np.int64)
        return np.diff(cut, axis=0) + header


def push_buckets(env, hub, buckets: Buckets, up: np.ndarray, compute: np.ndarray, after,
                 header: int):
    """Push each gradient bucket's share of every worker's message ``up`` (N,) to the server
    or the shard owners (``hub``) once the backward pass has produced it, all buckets sharing
    the network; ``after``: the previous step's replies (each worker starts at its own), as
    ``push_batch`` takes them. Runs until every bucket is in; returns (the whole messages'
    arrivals, with ``bucket_times`` (B, N) of each bucket, the buckets' send offsets from each
    worker's start (B, N), their bits (B, N))."""
    offsets = buckets.ready(np.zeros(up.size), compute)
    bits = buckets.split(up, header)
    pushes = [hub.push_batch(bits[k], offsets[k], after=after) for k in range(len(buckets))]
    env.run(until=env.all_of([p.done for p in pushes]))
    return _Landed(np.vstack([p.times for p in pushes])), offsets, bits


class _Landed:
    """A message pushed in buckets: it has arrived when its last bucket has."""

    def __init__(self, bucket_times: np.ndarray):
        self.bucket_times = bucket_times
        self.times = bucket_times.max(axis=0)


def plan(layers, bucket_bytes: float = BUCKET_BYTES,
         first_bucket_bytes: float = FIRST_BUCKET_BYTES,
         backward: float = BACKWARD_FRACTION) -> Buckets:
    """DDP's bucket assignment of ``layers`` (parameters per layer, in forward order): walking
    the layers backward, a bucket closes once its gradients reach the cap (the first bucket's
    cap ``first_bucket_bytes``, the others' ``bucket_bytes``), so a bucket may pass its cap by
    its last layer, and a layer is never split."""
    layers = np.asarray(layers, dtype=np.int64)[::-1]
    if layers.size == 0 or np.any(layers <= 0):
        raise ValueError(f"layers must be positive parameter counts, got {layers[::-1]}")
    sizes, filled = [], 0
    cap = first_bucket_bytes
    for count in layers.tolist():  # over layers (a few hundred at most), never parameters
        filled += count
        if filled * GRADIENT_BYTES >= cap:
            sizes.append(filled)
            filled, cap = 0, bucket_bytes
    if filled:
        sizes.append(filled)
    params = np.array(sizes, dtype=np.int64)
    return Buckets(params, np.cumsum(params) / params.sum(), float(backward))


def equal_layers(params: int, count: int) -> np.ndarray:
    """``count`` layers of (nearly) equal size adding up to ``params``."""
    count = max(1, min(int(count), int(params)))
    base, extra = divmod(int(params), count)
    return np.array([base + 1] * extra + [base] * (count - extra), dtype=np.int64)


def scaled_layers(layers, params: int) -> np.ndarray:
    """``layers`` rescaled to add up to ``params`` (a preset's layers for another size)."""
    layers = np.asarray(layers, dtype=np.float64)
    edges = np.rint(np.concatenate([[0], np.cumsum(layers)]) / layers.sum() * params)
    out = np.diff(edges).astype(np.int64)
    return out[out > 0]


def _transformer_block(width: int) -> list[int]:
    """A GPT-2 / ViT block's modules: layer norm, fused q-k-v, attention output, layer norm,
    the MLP's two layers (4x wide), weights and biases."""
    return [2 * width, width * 3 * width + 3 * width, width * width + width, 2 * width,
            width * 4 * width + 4 * width, 4 * width * width + width]


def _gpt2(width: int, blocks: int, positions: int = 1_024) -> list[int]:
    """GPT-2 (Radford et al. 2019): token embedding (50,257 x width, tied to the output layer,
    so its gradient is complete only at the end of the backward pass), the positions, the
    blocks, the final layer norm."""
    return [50_257 * width, positions * width, *_transformer_block(width) * blocks, 2 * width]


def _vit_b16() -> list[int]:
    """ViT-B/16 at 224 px (Dosovitskiy et al. 2021): patch embedding (16 x 16 x 3 -> 768),
    class token, 197 positions, 12 blocks of width 768, final norm, a 1000-class head."""
    width = 768
    return [16 * 16 * 3 * width + width, width, 197 * width,
            *_transformer_block(width) * 12, 2 * width, width * 1000 + 1000]


def _resnet50() -> list[int]:
    """ResNet-50 (He et al. 2016, table 1; torchvision's layout): the stem (7 x 7 conv and its
    batch norm), 3, 4, 6 and 3 bottleneck blocks of widths 64 to 512 (each one layer here:
    1x1, 3x3 and 1x1 convolutions with batch norms, and the projection of a stage's first
    block), the 1000-class head."""
    layers = [7 * 7 * 3 * 64 + 2 * 64]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            out = 4 * planes
            size = (inplanes * planes + 2 * planes + 9 * planes * planes + 2 * planes
                    + planes * out + 2 * out)
            if block == 0:  # the projection shortcut
                size += inplanes * out + 2 * out
            layers.append(size)
            inplanes = out
    return [*layers, 2048 * 1000 + 1000]


#: layers (parameters each, in forward order) of the model presets (``sim.net.presets.MODELS``)
PRESET_LAYERS = {
    "resnet50": _resnet50,
    "vit-b16": _vit_b16,
    "gpt2-small": lambda: _gpt2(768, 12),
    "gpt2-medium": lambda: _gpt2(1024, 24),
    "gpt3-xl": lambda: _gpt2(2048, 24, positions=2_048),
}


def preset_layers(name: str) -> np.ndarray:
    """The layers of model preset ``name``."""
    return np.array(PRESET_LAYERS[name](), dtype=np.int64)
