"""Transformer encoder in numpy with a hand-written backward pass, batched over workers.

``Transformer`` is the core that ``gpt`` and ``vit`` share: learned positions, pre-norm blocks
``h + attention(LN(h))`` then ``h + MLP(LN(h))`` with multi-head self-attention (causal or
full) and a GELU MLP, and a final layer norm. The objectives own what comes before it (token
or patch embedding) and after it (the head and the loss).

Arrays carry a leading worker axis N. Token vectors are (N, B, T, width) and run through the
blocks as (N, B*T, width). Weights are shared (shape) or per worker (N, *shape), as in
``models.mlp``: with shared weights every linear layer is one (N*B*T, in) @ (in, out) matmul,
and each weight gradient is one batched (N, in, B*T) @ (N, B*T, out) matmul. Attention is
batched matmuls over (N, B, heads).
"""
from __future__ import annotations

import numpy as np

from models.checks import check_eval_params, check_int, check_real
from models.mlp import ShardedClassifier, matmul, softmax_xent

_LN_EPS = 1e-5
_GELU_C, _GELU_A = float(np.sqrt(2.0 / np.pi)), 0.044715
#: the sublayers' output projections start at init_std / sqrt(2 * blocks), as in GPT-2, so the
#: residual stream does not grow with depth at initialisation
_RESIDUAL_OUTPUTS = ("attn.out.weight", "mlp.proj.weight")
#: token vectors per chunk when ``evaluate`` scores the held-out set (bounds its memory)
_EVAL_TOKENS = 16384


def vec(v: np.ndarray) -> np.ndarray:
    """A 1-D tensor, shared (k,) or per worker (N, k), made to broadcast against (N, M, k)."""
    return v if v.ndim == 1 else v[:, None, :]


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x (N, M, in) @ w + b, with w (in, out) or (N, in, out) -> (N, M, out)."""
    return matmul(x, w) + vec(b)


def linear_backward(x, w, dy, gw, gb, input_grad: bool = True):
    """Write the per-worker gradients of ``linear`` into gw (N, in, out), gb (N, out); return
    d loss / d x (N, M, in), or None when not ``input_grad`` (an input layer skips it)."""
    np.matmul(x.swapaxes(1, 2), dy, out=gw)
    dy.sum(axis=1, out=gb)
    return matmul(dy, w.swapaxes(-1, -2)) if input_grad else None


def gelu(z: np.ndarray):
    """GELU in its tanh form 0.5 z (1 + tanh(c (z + a z^3))), as GPT-2 computes it: within
    5e-4 of the exact z Phi(z), and several times faster in numpy than scipy's Phi. Returns
    the output and the tanh term for the backward pass."""
    t = z * z
    t *= _GELU_A
    t += 1.0
    t *= _GELU_C * z
    np.tanh(t, out=t)
    return 0.5 * z * (1.0 + t), t


def gelu_backward(dg: np.ndarray, z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """d loss / d z from d loss / d gelu(z), with t the tanh term of ``gelu``."""
    # d/dz = 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3 a z^2)
    slope = z * z
    slope *= 3.0 * _GELU_A
    slope += 1.0
    slope *= (0.5 * _GELU_C) * z
    slope *= 1.0 - t * t
    slope += 0.5 * (1.0 + t)
    slope *= dg
    return slope


def layer_norm(x: np.ndarray, gain, bias):
    """Normalise x (N, M, k) over its last axis, then scale and shift; returns y and a cache."""
    centred = x - x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + _LN_EPS)
    xhat = centred * rstd
    return xhat * vec(gain) + vec(bias), (xhat, rstd)


def layer_norm_backward(dy, cache, gain, g_gain, g_bias) -> np.ndarray:
    """Write the gain and bias gradients (N, k); return d loss / d x (N, M, k)."""
    xhat, rstd = cache
    np.sum(dy * xhat, axis=1, out=g_gain)
    dy.sum(axis=1, out=g_bias)
    dxhat = dy * vec(gain)
    # the normalisation removes the mean and the scale, so its Jacobian projects both out
    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                   - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


def _block(tensors: dict, i: int) -> dict:
    """Block i's tensors from a dict name -> tensor, keyed without the ``block{i}.`` prefix."""
    prefix = f"block{i}."
    return {name[len(prefix):]: v for name, v in tensors.items() if name.startswith(prefix)}


class Transformer:
    """Positions, ``blocks`` pre-norm blocks and a final layer norm over ``tokens`` positions.

    ``width`` is split over ``heads`` attention heads; the MLP is ``mlp_ratio * width`` wide.
    ``causal``: position t attends only to positions <= t. ``shapes`` lists the core's tensors
    (names unique, prefixed ``block{i}.``); ``forward`` and ``backward`` take dicts name ->
    tensor view holding at least them.
    """

    def __init__(self, *, tokens: int, width: int, heads: int, blocks: int, mlp_ratio: int,
                 causal: bool):
        self.tokens = check_int("context", tokens, 1)
        self.width = check_int("width", width, 1)
        self.heads = check_int("heads", heads, 1)
        self.blocks = check_int("blocks", blocks, 1)
        self.mlp_ratio = check_int("mlp_ratio", mlp_ratio, 1)
        if self.width % self.heads:
            raise ValueError(f"heads = {heads!r} must divide width = {width!r} (each head gets "
                             f"width / heads dimensions)")
        self.causal = causal
        d, h = self.width, self.mlp_ratio * self.width
        self.shapes = [("position", (self.tokens, d))]
        for i in range(self.blocks):
            self.shapes += [(f"block{i}.{name}", shape) for name, shape in (
                ("ln1.gain", (d,)), ("ln1.bias", (d,)),
                ("attn.qkv.weight", (d, 3 * d)), ("attn.qkv.bias", (3 * d,)),
                ("attn.out.weight", (d, d)), ("attn.out.bias", (d,)),
                ("ln2.gain", (d,)), ("ln2.bias", (d,)),
                ("mlp.fc.weight", (d, h)), ("mlp.fc.bias", (h,)),
                ("mlp.proj.weight", (h, d)), ("mlp.proj.bias", (d,)))]
        self.shapes += [("norm.gain", (d,)), ("norm.bias", (d,))]
        # additive mask: -inf above the diagonal, so softmax gives future positions weight 0
        upper = np.triu(np.ones((self.tokens, self.tokens), dtype=bool), k=1)
        self._mask = np.where(upper, -np.inf, 0.0).astype(np.float32) if causal else None

    def forward(self, p: dict, x: np.ndarray):
        """Normalised hidden states (N, B, T, width) of token vectors x (N, B, T, width), and
        the cache ``backward`` needs."""
        n, b, t, d = x.shape
        pos = p["position"]
        h = (x + (pos if pos.ndim == 2 else pos[:, None])).reshape(n, b * t, d)
        caches = []
        for i in range(self.blocks):
            w = _block(p, i)
            a, ln1 = layer_norm(h, w["ln1.gain"], w["ln1.bias"])
            attn_out, attn = self._attention(a, w, b, t)
            h = h + attn_out
            a2, ln2 = layer_norm(h, w["ln2.gain"], w["ln2.bias"])
            z = linear(a2, w["mlp.fc.weight"], w["mlp.fc.bias"])
            g, tanh = gelu(z)
            h = h + linear(g, w["mlp.proj.weight"], w["mlp.proj.bias"])
            caches.append((ln1, a, attn, ln2, a2, z, g, tanh))
        y, norm = layer_norm(h, p["norm.gain"], p["norm.bias"])
        return y.reshape(n, b, t, d), (caches, norm, b, t)

    def backward(self, p: dict, cache, dy: np.ndarray, grads: dict) -> np.ndarray:
        """Write the core's gradients (N, *shape) into ``grads``; return d loss / d x
        (N, B, T, width) from d loss / d output ``dy`` of the same shape."""
        caches, norm, b, t = cache
        n, d = dy.shape[0], self.width
        dh = layer_norm_backward(dy.reshape(n, b * t, d), norm, p["norm.gain"],
                                 grads["norm.gain"], grads["norm.bias"])
        for i in reversed(range(self.blocks)):
            w, gw = _block(p, i), _block(grads, i)
            ln1, a, attn, ln2, a2, z, g, tanh = caches[i]
            dg = linear_backward(g, w["mlp.proj.weight"], dh, gw["mlp.proj.weight"],
                                 gw["mlp.proj.bias"])
            dz = gelu_backward(dg, z, tanh)
            da2 = linear_backward(a2, w["mlp.fc.weight"], dz, gw["mlp.fc.weight"],
                                  gw["mlp.fc.bias"])
            dh = dh + layer_norm_backward(da2, ln2, w["ln2.gain"], gw["ln2.gain"],
                                          gw["ln2.bias"])
            da = self._attention_backward(a, w, gw, attn, dh, b, t)
            dh = dh + layer_norm_backward(da, ln1, w["ln1.gain"], gw["ln1.gain"],
                                          gw["ln1.bias"])
        dx = dh.reshape(n, b, t, d)
        dx.sum(axis=1, out=grads["position"])
        return dx

    def _attention(self, a, w: dict, b: int, t: int):
        """Multi-head self-attention of a (N, B*T, width); returns its output and a cache."""
        n, _, d = a.shape
        heads, dh = self.heads, d // self.heads
        qkv = linear(a, w["attn.qkv.weight"], w["attn.qkv.bias"])
        # (N, B, T, 3, heads, dh) -> (3, N, B, heads, T, dh): one contiguous copy of all three
        qkv = np.ascontiguousarray(qkv.reshape(n, b, t, 3, heads, dh).transpose(3, 0, 1, 4, 2, 5))
        query, key, value = qkv
        query *= 1.0 / np.sqrt(dh)
        weights = np.matmul(query, key.swapaxes(-1, -2))                 # (N, B, heads, T, T)
        if self._mask is not None:
            weights += self._mask
        weights -= weights.max(axis=-1, keepdims=True)
        np.exp(weights, out=weights)
        weights /= weights.sum(axis=-1, keepdims=True)
        mixed = np.matmul(weights, value).transpose(0, 1, 3, 2, 4).reshape(n, b * t, d)
        out = linear(mixed, w["attn.out.weight"], w["attn.out.bias"])
        return out, (qkv, weights, mixed)

    def _attention_backward(self, a, w: dict, gw: dict, cache, dout, b: int,
                            t: int) -> np.ndarray:
        """Write the attention gradients; return d loss / d a (N, B*T, width)."""
        qkv, weights, mixed = cache
        query, key, value = qkv
        n, _, d = a.shape
        heads, dh = self.heads, d // self.heads
        dmixed = linear_backward(mixed, w["attn.out.weight"], dout, gw["attn.out.weight"],
                                 gw["attn.out.bias"])
        dmixed = np.ascontiguousarray(dmixed.reshape(n, b, t, heads, dh).transpose(0, 1, 3, 2, 4))
        dqkv = np.empty_like(qkv)
        np.matmul(weights.swapaxes(-1, -2), dmixed, out=dqkv[2])
        dscores = np.matmul(dmixed, value.swapaxes(-1, -2))
        # softmax Jacobian; masked entries have weight 0, so their gradient vanishes too
        dscores -= (dscores * weights).sum(axis=-1, keepdims=True)
        dscores *= weights
        np.matmul(dscores, key, out=dqkv[0])
        dqkv[0] *= 1.0 / np.sqrt(dh)
        np.matmul(dscores.swapaxes(-1, -2), query, out=dqkv[1])       # query is pre-scaled
        dqkv = dqkv.transpose(1, 2, 4, 0, 3, 5).reshape(n, b * t, 3 * d)
        return linear_backward(a, w["attn.qkv.weight"], dqkv, gw["attn.qkv.weight"],
                               gw["attn.qkv.bias"])


class TransformerObjective(ShardedClassifier):
    """A ``Transformer`` between an objective's input layer and its head.

    Subclasses build ``self.core``, then call ``_set_layout(front, back, init_std)`` with the
    (name, shape) lists of their own tensors before and after the core's, and implement
    ``_forward(params, split, idx)`` (returning logits, labels and a cache) and
    ``_backward_tensors(cache, dlogits, grads)`` with ``grads`` a dict name -> (N, *shape).
    """

    def _set_layout(self, front, back, init_std) -> None:
        self.init_std = check_real("init_std", init_std, 0.0, low_open=True)
        self.shapes = list(front) + self.core.shapes + list(back)
        self.names = [name for name, _ in self.shapes]
        self.dim = sum(int(np.prod(s)) for _, s in self.shapes)

    def tensors(self, params: np.ndarray) -> dict[str, np.ndarray]:
        """Views name -> tensor of ``params`` (dim,) or (N, dim): shape or (N, *shape)."""
        lead = params.shape[:-1]
        views, offset = {}, 0
        for name, shape in self.shapes:
            size = int(np.prod(shape))
            views[name] = params[..., offset:offset + size].reshape(lead + shape)
            offset += size
        return views

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Layer-norm gains 1, biases 0, every other tensor N(0, init_std^2); the sublayers'
        output projections N(0, init_std^2 / (2 * blocks)), as in GPT-2."""
        params = np.zeros(self.dim, dtype=self.dtype)
        for name, view in self.tensors(params).items():
            if name.endswith(".gain"):
                view[...] = 1.0
            elif not name.endswith(".bias"):
                std = self.init_std
                if name.endswith(_RESIDUAL_OUTPUTS):
                    std /= np.sqrt(2.0 * self.core.blocks)
                view[...] = std * rng.standard_normal(view.shape)
        return params

    def evaluate(self, params) -> dict[str, float]:
        """Held-out ``loss`` (nats) and ``accuracy`` on the fixed test subsample, scored in
        chunks of about 16k token vectors so memory stays bounded."""
        params = check_eval_params(params, self.dim, self.dtype)
        n_chunks = -(-self.eval_index.size * self.core.tokens // _EVAL_TOKENS)
        loss_sum = hits = count = 0.0
        for chunk in np.array_split(self.eval_index, n_chunks):
            logits, labels, _ = self._forward(params, "test", chunk[None, :])
            losses, _ = softmax_xent(logits, labels)
            loss_sum += float(losses[0]) * labels.size
            hits += float(np.sum(logits[0].argmax(axis=-1) == labels[0]))
            count += labels.size
        return {"loss": loss_sum / count, "accuracy": hits / count}

    def _backward(self, params, cache, dlogits, grads) -> None:
        # ShardedClassifier hands the gradient views as a list in ``shapes`` order
        self._backward_tensors(cache, dlogits, dict(zip(self.names, grads)))
