"""Transformer objectives (gpt, vit): gradients of every tensor, the causal mask, the forward pass
against its formulas, the parameter layout, evaluation, learning, and bad input through the
command line."""
import math

import numpy as np
import pytest

import experiments
from experiments.cli import main
from models.base import REGISTRY
from models.gpt import GPT
from models.transformer import Transformer
from models.vit import ViT


def tiny_objectives():
    """float64 configurations small enough for finite differences, covering both heads of gpt
    and both poolings of vit."""
    return [
        GPT(dataset="pydoc", context=5, width=8, heads=2, blocks=2, mlp_ratio=2,
            dtype="float64"),
        GPT(dataset="pydoc", context=4, width=6, heads=3, blocks=1, mlp_ratio=1, tie_head=True,
            dtype="float64"),
        ViT(dataset="synthetic", patch=2, width=8, heads=2, blocks=2, dtype="float64"),
        ViT(dataset="synthetic", patch=1, width=6, heads=1, blocks=1, mlp_ratio=3, pool="mean",
            dtype="float64"),
    ]


def label(obj):
    if isinstance(obj, GPT):
        return "gpt-tied" if obj.tie_head else "gpt-head"
    return f"vit-{obj.pool}"


def per_worker_loss(obj, params, idx):
    return obj.batch_loss_grad(params, idx)[0]


def off_init_point(obj, n_workers, rng):
    """Per-worker parameters away from the init, so gains are not 1 and biases not 0."""
    params = np.stack([obj.init(rng) for _ in range(n_workers)])
    return params + 0.1 * rng.standard_normal(params.shape)


@pytest.mark.parametrize("obj", tiny_objectives(), ids=label)
def test_every_tensor_matches_finite_differences(obj):
    rng = np.random.default_rng(1)
    params = off_init_point(obj, 2, rng)
    idx = obj.sample(2, 3, rng)
    _, grads = obj.batch_loss_grad(params, idx)
    eps = 1e-6
    # central differences at a few coordinates of every tensor; all workers move coordinate j
    # at once, which is valid because worker i's loss depends only on row i
    for name, coords in obj.tensors(np.arange(obj.dim)).items():
        for j in rng.choice(coords.ravel(), min(3, coords.size), replace=False):
            step = np.zeros(obj.dim)
            step[j] = eps
            fd = (per_worker_loss(obj, params + step, idx)
                  - per_worker_loss(obj, params - step, idx)) / (2 * eps)
            np.testing.assert_allclose(grads[:, j], fd, rtol=1e-5, atol=1e-8, err_msg=name)
    # and the derivative along one random direction through all coordinates together
    direction = rng.standard_normal(obj.dim)
    fd = (per_worker_loss(obj, params + eps * direction, idx)
          - per_worker_loss(obj, params - eps * direction, idx)) / (2 * eps)
    np.testing.assert_allclose(grads @ direction, fd, rtol=1e-6)


@pytest.mark.parametrize("obj", tiny_objectives()[::2], ids=label)
def test_batched_workers_equal_a_loop_over_workers(obj):
    rng = np.random.default_rng(2)
    params = off_init_point(obj, 3, rng)
    idx = obj.sample(3, 4, rng)
    losses, grads = obj.batch_loss_grad(params, idx)
    for i in range(3):
        loss_i, grad_i = obj.batch_loss_grad(params[i], idx[i:i + 1])
        np.testing.assert_allclose(losses[i], loss_i[0], rtol=1e-12)
        np.testing.assert_allclose(grads[i], grad_i[0], rtol=1e-9, atol=1e-13)
    # shared params (dim,) take the one-big-matmul path; it must agree with the tiled copy
    shared = obj.batch_loss_grad(params[0], idx)
    tiled = obj.batch_loss_grad(np.tile(params[0], (3, 1)), idx)
    np.testing.assert_allclose(shared[0], tiled[0], rtol=1e-12)
    np.testing.assert_allclose(shared[1], tiled[1], rtol=1e-9, atol=1e-13)


def test_a_prediction_never_sees_later_characters():
    obj = tiny_objectives()[0]
    rng = np.random.default_rng(3)
    params = off_init_point(obj, 2, rng)
    windows = rng.integers(0, len(obj.vocab), (2, 3, obj.context))
    t = 2
    changed = windows.copy()
    changed[..., t + 1:] = (changed[..., t + 1:] + 1) % len(obj.vocab)
    before, after = obj.logits(params, windows), obj.logits(params, changed)
    np.testing.assert_allclose(after[..., :t + 1, :], before[..., :t + 1, :], rtol=1e-13)
    assert np.abs(after[..., t + 1:, :] - before[..., t + 1:, :]).max() > 1e-3


@pytest.mark.parametrize("causal", [True, False])
def test_full_attention_sees_every_token_and_causal_only_the_past(causal):
    core = Transformer(tokens=4, width=6, heads=2, blocks=1, mlp_ratio=2, causal=causal)
    rng = np.random.default_rng(4)
    p = {name: rng.standard_normal((2,) + shape) for name, shape in core.shapes}
    x = rng.standard_normal((2, 3, 4, 6))
    y, _ = core.forward(p, x)
    x2 = x.copy()
    x2[:, :, -1] += rng.standard_normal(6)  # not a constant shift: layer norm removes those
    y2, _ = core.forward(p, x2)
    first_moved = np.abs(y2[:, :, 0] - y[:, :, 0]).max()
    assert (first_moved == 0.0) if causal else (first_moved > 1e-3)


# --- the forward pass against formulas written out here -----------------------------------------

def _gelu_formula(z: float) -> float:
    """GELU's tanh form (Hendrycks and Gimpel 2016; GPT-2), from its formula."""
    return 0.5 * z * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))


def test_gelu_is_the_tanh_formula_and_close_to_z_phi_z():
    from models.transformer import gelu

    z = np.linspace(-6.0, 6.0, 241)
    got, _ = gelu(z.copy())
    np.testing.assert_allclose(got, [_gelu_formula(v) for v in z], rtol=1e-14, atol=1e-15)
    exact = [v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z]  # z Phi(z)
    assert np.abs(got - exact).max() < 5e-4
    assert gelu(np.array([1.0]))[0][0] == pytest.approx(0.8411919906082768, rel=1e-14)


def _layer_norm_formula(row, gain, bias):
    """(x - mean) / sqrt(var + 1e-5) * gain + bias over one vector (GPT-2's epsilon)."""
    mean = sum(row) / len(row)
    var = sum((v - mean) ** 2 for v in row) / len(row)
    return [(v - mean) / math.sqrt(var + 1e-5) * g + b for v, g, b in zip(row, gain, bias)]


def _block_reference(w, h, heads, causal):
    """One pre-norm block, h + attention(LN(h)), then + MLP(LN(h)), for one sequence h (T, d)
    as plain lists: softmax(q k^T / sqrt(d / heads)) v per head, keys up to the query's own
    position when causal, then the output projection; the MLP is GELU between two layers."""
    t, d = h.shape
    dh = d // heads
    a = np.array([_layer_norm_formula(row, w["ln1.gain"], w["ln1.bias"]) for row in h])
    qkv = a @ w["attn.qkv.weight"] + w["attn.qkv.bias"]
    q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
    mixed = np.zeros((t, d))
    for head in range(heads):
        cols = slice(head * dh, (head + 1) * dh)
        for i in range(t):
            keys = range(i + 1) if causal else range(t)
            scores = [float(q[i, cols] @ k[j, cols]) / math.sqrt(dh) for j in keys]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            mixed[i, cols] = sum(wj / total * v[j, cols] for wj, j in zip(weights, keys))
    h = h + mixed @ w["attn.out.weight"] + w["attn.out.bias"]
    a2 = np.array([_layer_norm_formula(row, w["ln2.gain"], w["ln2.bias"]) for row in h])
    z = a2 @ w["mlp.fc.weight"] + w["mlp.fc.bias"]
    g = np.vectorize(_gelu_formula)(z)
    return h + g @ w["mlp.proj.weight"] + w["mlp.proj.bias"]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("per_worker", [False, True])
def test_the_forward_pass_is_the_block_formula(causal, per_worker):
    core = Transformer(tokens=4, width=6, heads=2, blocks=2, mlp_ratio=2, causal=causal)
    rng = np.random.default_rng(5)
    lead = (2,) if per_worker else ()
    p = {name: rng.standard_normal(lead + shape) for name, shape in core.shapes}
    x = rng.standard_normal((2, 3, 4, 6))
    y, _ = core.forward(p, x)
    for n in range(2):
        weights = {name: (v[n] if per_worker else v) for name, v in p.items()}
        for b in range(3):
            h = x[n, b] + weights["position"]
            for i in range(core.blocks):
                prefix = f"block{i}."
                h = _block_reference({k[len(prefix):]: v for k, v in weights.items()
                                      if k.startswith(prefix)}, h, core.heads, causal)
            want = [_layer_norm_formula(row, weights["norm.gain"], weights["norm.bias"])
                    for row in h]
            np.testing.assert_allclose(y[n, b], want, rtol=1e-10, atol=1e-12)


def block_params(width, ratio):
    """Parameters of one block counted by hand: two layer norms (gain, bias), the qkv and
    output projections, and the two MLP layers, each with biases."""
    h = ratio * width
    return (2 * 2 * width + (width * 3 * width + 3 * width) + (width * width + width)
            + (width * h + h) + (h * width + width))


def test_parameter_layout_covers_dim_exactly():
    gpt, tied, vit, vit_mean = tiny_objectives()
    v = len(gpt.vocab)
    core = lambda o: (o.core.tokens * o.core.width  # noqa: E731  positions, blocks, final norm
                      + o.core.blocks * block_params(o.core.width, o.core.mlp_ratio)
                      + 2 * o.core.width)
    assert gpt.dim == v * 8 + core(gpt) + 8 * v + v
    assert tied.dim == v * 6 + core(tied) + v
    assert vit.dim == 4 * 8 + 8 + 8 + core(vit) + 8 * 4 + 4          # 2x2 patches, class token
    assert vit.core.tokens == 4 + 1 and vit_mean.core.tokens == 16
    for obj in (gpt, tied, vit, vit_mean):
        names = [name for name, _ in obj.shapes]
        assert len(set(names)) == len(names)
        views = obj.tensors(np.arange(obj.dim))
        np.testing.assert_array_equal(np.concatenate([t.ravel() for t in views.values()]),
                                      np.arange(obj.dim))
        assert all(views[name].shape == shape for name, shape in obj.shapes)
    assert dict(gpt.shapes)["block1.attn.qkv.weight"] == (8, 24)
    assert dict(vit.shapes)["patch.weight"] == (4, 8)


def test_init_follows_the_gpt2_scheme():
    obj = GPT(dataset="pydoc", context=16, width=64, heads=4, blocks=4, init_std=0.05)
    t = obj.tensors(obj.init(np.random.default_rng(0)))
    assert t["block0.ln1.gain"].min() == 1 == t["norm.gain"].max()
    assert not t["block3.mlp.fc.bias"].any() and not t["head.bias"].any()
    assert t["block2.mlp.fc.weight"].std() == pytest.approx(0.05, rel=0.02)
    # residual output projections shrink by sqrt(2 * blocks)
    assert t["block1.mlp.proj.weight"].std() == pytest.approx(0.05 / np.sqrt(8), rel=0.02)
    assert t["embedding"].dtype == np.float32


@pytest.mark.parametrize("obj", tiny_objectives()[1:3], ids=label)
def test_zero_parameters_predict_uniformly(obj):
    # zero gains and biases zero every hidden state, so the logits are 0: loss ln C
    metrics = obj.evaluate(np.zeros(obj.dim))
    assert metrics["loss"] == pytest.approx(np.log(obj.n_classes), rel=1e-12)
    if isinstance(obj, GPT):
        assert set(metrics) == {"loss", "accuracy", "bits_per_char"}
        assert metrics["bits_per_char"] == pytest.approx(np.log2(obj.n_classes), rel=1e-12)
    else:
        assert set(metrics) == {"loss", "accuracy"}


def test_chunked_evaluation_equals_one_pass():
    obj = ViT(dataset="synthetic", patch=2, width=8, heads=2, blocks=1, eval_size=256,
              dtype="float64")
    x = obj.init(np.random.default_rng(5))
    logits, labels, _ = obj._forward(x, "test", obj.eval_index[None, :])
    shifted = logits[0] - logits[0].max(axis=1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(labels.size), labels[0]]
    metrics = obj.evaluate(x)
    assert metrics["loss"] == pytest.approx(nll.mean(), rel=1e-12)
    assert metrics["accuracy"] == np.mean(logits[0].argmax(axis=1) == labels[0])


def adam(obj, steps, lr, n_workers=4, batch_size=16, seed=0):
    """Plain Adam on the workers' mean gradient."""
    rng = np.random.default_rng(seed)
    x = obj.init(rng)
    m, v = np.zeros_like(x), np.zeros_like(x)
    for t in range(1, steps + 1):
        g = obj.grads(x, n_workers, batch_size, rng)[1].mean(axis=0)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return x


def test_vit_learns_the_synthetic_blobs():
    obj = ViT(dataset="synthetic", patch=2, width=16, heads=2, blocks=1)
    assert obj.evaluate(adam(obj, 150, 3e-3))["accuracy"] > 0.8


def test_gpt_beats_the_unigram_entropy_on_pydoc():
    # a model that ignores its context can do no better than the unigram entropy
    obj = GPT(dataset="pydoc", context=16, width=16, heads=2, blocks=1, eval_size=64)
    freq = np.bincount(obj.train_labels, minlength=len(obj.vocab)) / obj.train_labels.size
    starts = obj.eval_index[:, None] * obj.context + 1 + np.arange(obj.context)
    unigram_bits = -np.mean(np.log2(np.maximum(freq[obj.test_text[starts]], 1e-12)))
    x = adam(obj, 100, 1e-2, batch_size=8)
    assert obj.evaluate(x)["bits_per_char"] < unigram_bits - 1.0


def test_registered_and_runs_through_the_simulator():
    assert REGISTRY["gpt"][0] is GPT and REGISTRY["vit"][0] is ViT
    result = experiments.simulate(
        objective={"name": "gpt", "dataset": "pydoc", "context": 8, "width": 8, "heads": 2,
                   "blocks": 1, "eval_size": 4},
        method={"name": "dlion", "lr": 1e-3}, workers=2, batch_size=2, steps=3, eval_every=3)
    assert np.isfinite(result.history["eval_bits_per_char"][-1])


@pytest.mark.parametrize("objective, setting, words", [
    ("gpt", "objective.context=0", ["context = 0", "integer >= 1"]),
    ("gpt", "objective.dataset=tinyshakespeare", ["dataset = 'tinyshakespeare'", "kjv, pydoc"]),
    ("gpt", "objective.heads=3", ["heads = 3", "width = 8"]),
    ("vit", "objective.patch=3", ["patch = 3", "image side 4", "1, 2, 4"]),
    ("vit", "objective.dataset=wine", ["dataset = 'wine'", "fashion_mnist"]),
    ("vit", "objective.pool=max", ["pool = 'max'", "class, mean"]),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, objective, setting, words):
    data = 'dataset = "pydoc"' if objective == "gpt" else 'dataset = "synthetic"\npatch = 2'
    spec = tmp_path / "small.toml"
    spec.write_text(f'[objective]\nname = "{objective}"\n{data}\nwidth = 8\nheads = 2\n'
                    f'blocks = 1\n[run]\nsteps = 2\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "out"), "--set", setting]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlion-sim: error:")
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("make, match", [
    (lambda: GPT(dataset="pydoc", tie_head="yes"), "tie_head = 'yes'"),
    (lambda: GPT(dataset="pydoc", blocks=0), "blocks = 0"),
    (lambda: GPT(dataset="pydoc", width=0), "width = 0"),
    (lambda: GPT(dataset="pydoc", partition="dirichlet"), "partition = 'dirichlet'"),
    (lambda: GPT(dataset="pydoc", context=10**6), "leaves no train window"),
    (lambda: ViT(dataset="synthetic", patch=2, init_std=0.0), "init_std = 0.0"),
    (lambda: ViT(dataset="synthetic", patch=2, mlp_ratio=0), "mlp_ratio = 0"),
    (lambda: ViT(dataset="synthetic", patch=2, eval_size=0), "eval_size = 0"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("study, preset", [("gpt", "gpt2-small"), ("vit", "vit-b16")])
def test_bundled_studies_resolve_with_messages_sized_by_the_preset(study, preset):
    from pathlib import Path

    from experiments.spec import load_toml, resolve
    from experiments.grid import expand
    from sim.net import presets

    raw = load_toml(Path(experiments.__file__).parent / f"{study}.toml")
    points = [resolve(p) for p in expand(raw)]
    assert {(p["method"]["name"], p["method"].get("aggregate")) for p in points} == {
        ("dlion", "mavo"), ("dlion", "avg"), ("glion", "mean"), ("gadamw", "mean"),
        ("terngrad", None), ("dgc", None)}
    for p in points:
        assert p["objective"]["name"] == study
        assert p["cluster"]["model_params"] == presets.model(preset)["params"]


def test_a_data_set_the_objective_does_not_take_is_named_before_any_install_hint(
        tmp_path, capsys, monkeypatch):
    """vit with dataset = 'wine' and no scikit-learn: the error says wine is not an image set
    (what the user must change), not that scikit-learn is missing (which would not help)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    spec = tmp_path / "small.toml"
    spec.write_text('[objective]\nname = "vit"\ndataset = "wine"\n[run]\nsteps = 2\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "dataset = 'wine'" in err and "fashion_mnist" in err
    assert "scikit-learn" not in err
