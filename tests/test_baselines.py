"""The compressed-communication baselines: wire sizes against DESIGN.md section 6, invariants
(unbiasedness, error feedback, density 1, full rank), hand-checked steps, and sanity runs."""
import math
import struct

import numpy as np
import pytest

import experiments
from experiments.cli import main as cli_main
from experiments.spec import SpecError
from sim import methods
from sim.wire.codecs import DenseCodec, LevelCodec
from sim.wire.sparse import SparseCodec

NAMES = ["terngrad", "dgc", "graddrop", "signum", "efsignsgd", "qsgd", "topk", "randomk",
         "powersgd", "onebit_adam"]


def _hp(name, **overrides):
    hp = {k: (list(v) if isinstance(v, tuple) else v)
          for k, v in methods.get(name).defaults.items()}
    hp.update(overrides)
    return hp


def _step(name, grads, hp, x=None, shapes=None, state=None, rng=None, lr=None):
    """One encode/aggregate/apply round of ``name``: (payloads, reply, new x, state)."""
    method = methods.get(name)
    grads = np.asarray(grads, dtype=np.float32)
    n, d = grads.shape
    x = np.zeros(d, np.float32) if x is None else np.asarray(x, np.float32)
    rng = np.random.default_rng(0) if rng is None else rng
    state = method.init(x, n, hp, shapes) if state is None else state
    payloads, state = method.encode(state, grads, hp, rng)
    reply = method.aggregate(payloads, d, hp, rng)
    x, state = method.apply(x, reply, state, hp, hp["lr"] if lr is None else lr)
    return payloads, reply, x, state


# --- wire cost: one table against DESIGN.md section 6 -------------------------------------------

D = 4096  # a multiple of 8 * 32: no padding anywhere, so most rows are exact
R_DGC, R_TOPK, R_DROP = 0.001, 0.01, 1 - 0.99


def _union_bounds(up, n):
    # the union of n supports of k entries holds between k and min(d, n*k) entries
    return up, min(n * up, 64.0)


TABLE = {
    # name: (hp overrides, expected up, tolerance up, expected down (value or (lo, hi)))
    "terngrad": ({}, 2 + 32 / D, 0,
                 lambda n: math.ceil(math.log2(2 * n + 1)) + 32 / D),
    "dgc": ({"sparsity_warmup": 0}, R_DGC * 64, 64 / D, None),
    # sampled selection keeps between 0.8k and k entries (DGC's bounds)
    "graddrop": ({}, 0.9 * R_DROP * 64, 0.1 * R_DROP * 64 + 64 / D, None),
    "topk": ({}, R_TOPK * 64, 64 / D, None),
    "signum": ({}, 1.0, 0, lambda n: 1.0),
    "efsignsgd": ({}, 1 + 32 / D, 0, lambda n: n * (1 + 32 / D)),  # a server forwards all N
    "qsgd": ({"levels": int(math.sqrt(D)), "bucket_size": D}, None, 0, lambda n: 32.0),
    "randomk": ({}, 32 * R_TOPK, 32 / D, lambda n: 32 * R_TOPK),
    "powersgd": ({"batched": True}, 32 * 2 * (64 + 64) / (64 * 64), 0,
                 lambda n: 32 * 2 * 128 / 64**2),
    # the compressed phase: D + 32N up; the other workers' chunks, then the other servers'
    # chunks, each with its scale, down
    "onebit_adam": ({"freeze_step": 1}, 1.0, 0, lambda n: 2 * (n - 1) * (D / n + 32) / D),
}


@pytest.mark.parametrize("n", [4, 8, 32])
@pytest.mark.parametrize("name", NAMES)
def test_bits_per_parameter_match_the_design_table(name, n):
    overrides, up_want, up_tol, down_want = TABLE[name]
    grads = np.random.default_rng(n).standard_normal((n, D))
    payloads, reply, _, state = _step(name, grads, _hp(name, **overrides))
    up = methods.message_bits(payloads).astype(float) / D
    down = 8 * reply.size / D
    if name == "onebit_adam":  # its rounds: an all-to-all, then an all-gather of N-1 messages
        payloads, reply, _, state = _step(name, grads, _hp(name, **overrides), state=state)
        exchange, gather = methods.message_rounds(methods.get(name), state, payloads, reply)
        up = (exchange[0] + gather[0]) / D
        down = (exchange[1] + (n - 1) * gather[0]) / D
    if name == "qsgd":
        # Alistarh et al.: at s = sqrt(d) the Elias code needs at most 2.8 d + 32 bits; ours adds
        # a 32-bit count and pads to a byte
        assert np.all(up > 2.0) and np.all(up <= 2.8 + (32 + 32 + 8) / D)
    elif name == "onebit_adam":
        assert np.all(up == 1 + 32 * n / D)
    else:
        assert np.all(np.abs(up - up_want) <= up_tol + 1e-12)
    if down_want is None:  # sparse: the mean on the union of the supports
        lo, hi = _union_bounds(up.max(), n)
        assert lo - 1e-12 <= down <= hi + 1e-12
    else:
        assert down == pytest.approx(down_want(n), abs=up_tol + 1e-12)


def test_qsgd_fixed_width_wire():
    # 1 sign bit + ceil(log2(s+1)) level bits per entry + one float32 norm per bucket
    grads = np.random.default_rng(0).standard_normal((4, D))
    for levels, bucket in [(16, 512), (64, D)]:
        payloads, _, _, _ = _step("qsgd", grads, _hp("qsgd", coding="fixed", levels=levels,
                                                     bucket_size=bucket))
        want = 1 + math.ceil(math.log2(levels + 1)) + 32 / bucket
        assert np.all(methods.message_bits(payloads) / D == want)


# --- invariants ------------------------------------------------------------------------------------

def _mean_estimates(name, grads, hp, draws):
    """The decoded mean (read from a step at x = 0, lr = 1, no momentum) over many draws."""
    rng = np.random.default_rng(7)
    out = [-_step(name, grads, hp, rng=rng, lr=1.0)[2] for _ in range(draws)]
    return np.mean(out, axis=0)


def test_terngrad_is_unbiased():
    rng = np.random.default_rng(3)
    grads = rng.standard_normal((4, 48)) * np.linspace(0.1, 2, 48)
    grads = grads.astype(np.float32).astype(np.float64)
    draws = 3000
    got = _mean_estimates("terngrad", grads, _hp("terngrad", clip_factor=0.0, momentum=0.0),
                          draws)
    # one worker's s*t has variance s|g| - g^2, with s = max |g| over all workers
    s = np.abs(grads).max()
    var = (s * np.abs(grads) - grads**2).sum(axis=0) / 16 / draws
    assert np.all(np.abs(got - grads.mean(axis=0)) <= 5 * np.sqrt(var) + 1e-6)


def test_qsgd_is_unbiased():
    rng = np.random.default_rng(4)
    grads = rng.standard_normal((3, 40)).astype(np.float32).astype(np.float64)
    draws = 3000
    got = _mean_estimates("qsgd", grads, _hp("qsgd", levels=2, bucket_size=16, momentum=0.0),
                          draws)
    # a level rounds up with probability p: variance (norm/s)^2 p(1-p) <= (norm/s)^2 / 4
    norms = np.sqrt(np.add.reduceat(grads**2, [0, 16, 32], axis=1))
    step = np.repeat(norms, [16, 16, 8], axis=1) / 2
    var = (step**2 / 4).sum(axis=0) / 9 / draws
    assert np.all(np.abs(got - grads.mean(axis=0)) <= 5 * np.sqrt(var) + 1e-6)


def _sparse_sent(payloads, d, n):
    return SparseCodec(d, "int32").decode(payloads, n)


@pytest.mark.parametrize("name", ["topk", "graddrop"])
def test_sparsifier_residual_plus_sent_is_the_compensated_input(name):
    rng = np.random.default_rng(5)
    hp = _hp(name)
    g1, g2 = (rng.standard_normal((3, 300)).astype(np.float32) for _ in range(2))
    _, _, _, state = _step(name, g1, hp)
    before = state["memory"].copy()
    payloads, _, _, state = _step(name, g2, hp, state=state)
    sent = _sparse_sent(payloads, 300, 3)
    assert np.count_nonzero(sent) == 3 * 3  # density 1% of 300, per worker
    assert np.array_equal(state["memory"] + sent, before + g2)


def test_dgc_momentum_correction_masking_and_feedback():
    rng = np.random.default_rng(6)
    hp = _hp("dgc", sparsity_warmup=0, density=0.05, selection="exact")
    g1, g2 = (rng.standard_normal((2, 200)).astype(np.float32) for _ in range(2))
    p1, _, _, state = _step("dgc", g1, hp)
    sent1 = _sparse_sent(p1, 200, 2)
    u1 = np.where(sent1 != 0, 0, g1)  # u = g, masked where sent
    assert np.array_equal(state["u"], u1)
    v_before = state["v"].copy()
    p2, _, _, state = _step("dgc", g2, hp, state=state)
    sent2 = _sparse_sent(p2, 200, 2)
    u2 = hp["momentum"] * u1 + g2
    assert np.array_equal(state["v"] + sent2, v_before + u2)
    assert np.all(state["u"][sent2 != 0] == 0)
    # what was sent are the 10 largest |v| of each worker
    compensated = v_before + u2
    kth = -np.sort(-np.abs(compensated), axis=1)[:, 9]
    assert np.array_equal(sent2 != 0, np.abs(compensated) >= kth[:, None])


def test_dgc_local_clipping_and_sparsity_warmup():
    n, d = 4, D
    grads = np.full((n, d), 1.0)  # norm 64 per worker
    hp = _hp("dgc", clip_norm=2.0, momentum_masking=False, selection="exact", density=1.0,
             sparsity_warmup=0)
    payloads, _, _, _ = _step("dgc", grads, hp)
    # each worker's gradient norm is clipped at clip_norm / sqrt(N) = 1
    assert np.linalg.norm(_sparse_sent(payloads, d, n), axis=1) == pytest.approx(1.0, rel=1e-5)
    hp = _hp("dgc", sparsity_warmup=8, selection="exact")
    state, rng, sizes = None, np.random.default_rng(0), []
    for _ in range(10):
        payloads, _, _, state = _step("dgc", grads, hp, state=state, rng=rng)
        sizes.append(payloads.shape[1] // 8)  # int32 indices: 8 bytes per entry
    # 75%, 93.75%, 98.4%, 99.6% sparse for two steps each, then the final 99.9%
    want = [int(0.25**s * d) for s in (1, 1, 2, 2, 3, 3, 4, 4)] + [math.ceil(0.001 * d)] * 2
    assert sizes == want


def test_dgc_clips_each_tensor_on_its_own():
    # the docstring's rule, as the reference code's per-tensor memory: every tensor of a
    # worker's gradient has its L2 norm clipped at clip_norm / sqrt(N) = 1 on its own. Worker
    # 0's matrix (norm 8) is scaled down to norm 1 while its bias (norm 0.5) goes through
    # whole; worker 1's matrix (norm 0.8) goes through whole and its bias (norm 3) is clipped
    shapes = [("w", (4, 4)), ("b", (4,))]
    grads = np.zeros((4, 20))
    grads[0, :16], grads[0, 16:] = 2.0, 0.25
    grads[1, :16], grads[1, 16:] = 0.2, 1.5
    grads[2:] = 0.1  # norms 0.4 and 0.2: untouched
    hp = _hp("dgc", clip_norm=2.0, momentum_masking=False, selection="exact", density=1.0,
             sparsity_warmup=0)
    payloads, _, _, _ = _step("dgc", grads, hp, shapes=shapes)
    sent = _sparse_sent(payloads, 20, 4)
    want = grads.copy()
    want[0, :16] = 0.25  # 2 * 1/8
    want[1, 16:] = 0.5   # 1.5 * 1/3
    assert sent == pytest.approx(want, rel=1e-6)


def test_randomk_residual_and_shared_indices():
    rng = np.random.default_rng(8)
    g = rng.standard_normal((3, 500)).astype(np.float32)
    payloads, reply, _, state = _step("randomk", g, _hp("randomk", density=0.02))
    index = state["index"]
    assert index.size == 10 and np.unique(index).size == 10
    values = DenseCodec().decode(payloads, 10)
    assert np.array_equal(values, g[:, index])  # only values travel
    sent = np.zeros_like(g)
    sent[:, index] = values
    assert np.array_equal(state["memory"] + sent, g)
    assert np.allclose(DenseCodec().decode(reply, 10), g[:, index].mean(axis=0), atol=1e-7)


def test_efsignsgd_residual_and_scaled_sign():
    rng = np.random.default_rng(9)
    g = rng.standard_normal((2, 64)).astype(np.float32)
    payloads, reply, _, state = _step("efsignsgd", g, _hp("efsignsgd"))
    scale = np.array([struct.unpack("<f", p[:4].tobytes())[0] for p in payloads])
    assert scale == pytest.approx(np.abs(g).mean(axis=1), rel=1e-6)
    signs = np.unpackbits(payloads[:, 4:], axis=1).astype(np.float32) * 2 - 1
    sent = scale[:, None].astype(np.float32) * signs
    # residual + sent = compensated up to the rounding of one float32 subtraction
    assert np.allclose(state["memory"] + sent, g, rtol=0, atol=4 * np.finfo(np.float32).eps)
    assert np.array_equal(reply, payloads.reshape(-1))  # forwarded whole


# --- order of operations: error feedback and momentum correction, step by step ----------------
# One worker, lr 1, no momentum in the base optimizer, no decay: x after t steps is minus the
# sum of what the wire carried, so every trajectory below is a hand computation.

def _trajectory(name, grads_seq, hp, shapes=None, seed=0):
    """x after each step of ``name`` on the per-step gradients (each (n, d)), from x = 0."""
    rng = np.random.default_rng(seed)
    state, x, xs = None, None, []
    for g in grads_seq:
        _, _, x, state = _step(name, g, hp, x=x, shapes=shapes, state=state, rng=rng)
        xs.append(x)
    return xs


@pytest.mark.parametrize("name, options", [
    ("topk", {"density": 0.5}), ("graddrop", {"drop_ratio": 0.5, "selection": "exact"})])
def test_sparsifier_sends_the_residual_it_kept(name, options):
    # d = 2, one entry sent per step. g1 = (1, 0.6): send 1, keep 0.6. g2 = (0.5, 0):
    # compensated (0.5, 0.6): send 0.6. x2 = (-1, -0.6).
    # Rules out no error feedback (step 2 sends 0.5: x2 = (-1.5, 0)) and a memory that keeps
    # what was sent (compensated (1.5, 0.6): x2 = (-2.5, 0)).
    hp = _hp(name, lr=1.0, momentum=0.0, **options)
    xs = _trajectory(name, [[[1.0, 0.6]], [[0.5, 0.0]]], hp)
    assert xs[0].tolist() == [-1.0, 0.0]
    assert xs[1] == pytest.approx([-1.0, -0.6], abs=1e-7)


def test_topk_without_error_feedback_drops_the_residual():
    hp = _hp("topk", lr=1.0, momentum=0.0, density=0.5, error_feedback=False)
    xs = _trajectory("topk", [[[1.0, 0.6]], [[0.5, 0.0]]], hp)
    assert xs[1] == pytest.approx([-1.5, 0.0], abs=1e-7)


def test_randomk_sends_every_gradient_an_entry_has_seen():
    # d = 2, one shared random index per step, g = (1, 1) every step. With error feedback an
    # entry sent at step t carries all t - (its previous send) gradients it accumulated, so
    # x_j = -(the last step at which j was sent): the entry sent at the last step is at -T, and
    # both entries are non-zero once both were drawn (probability 1 - 2^(1-T) for any seed).
    # Rules out no error feedback (x_j = -(times j was sent), which sum to -T, so one entry at
    # -T means the other was never sent) and a memory that keeps what was sent (an entry's
    # sends grow past the number of steps).
    steps = 12
    hp = _hp("randomk", lr=1.0, momentum=0.0, density=0.5)
    x = _trajectory("randomk", [[[1.0, 1.0]]] * steps, hp)[-1]
    assert x.min() == -steps and x.max() < 0
    assert np.all(x == np.round(x))


def test_efsignsgd_sends_the_residual_it_kept():
    # p = g + e, sent = (|p|_1/d) sign(p), e = p - sent. g1 = (1, 0.5): sent (0.75, 0.75),
    # e = (0.25, -0.25). g2 = (-0.2, 0.4): p = (0.05, 0.15), sent (0.1, 0.1). x2 = (-0.85, -0.85).
    # Rules out no error feedback (p = g2, sent (-0.3, 0.3): x2 = (-0.45, -1.05)), a memory
    # that keeps what was sent (p = (0.8, 0.9): x2 = (-1.6, -1.6)), and an L2 scale
    # (step 1 sends sqrt(0.625) = 0.79 per entry).
    hp = _hp("efsignsgd", lr=1.0)
    xs = _trajectory("efsignsgd", [[[1.0, 0.5]], [[-0.2, 0.4]]], hp)
    assert xs[0].tolist() == [-0.75, -0.75]
    assert xs[1] == pytest.approx([-0.85, -0.85], abs=1e-6)


def test_dgc_accumulates_the_velocity_and_masks_what_it_sent():
    # DGC (Lin et al. 2018, momentum correction): u = m*u + g; v = v + u; send top-k of v;
    # v and (masking) u are zeroed where sent. m = 0.5, d = 2, one entry per step.
    #   g1 = (1, 0.8):  u = (1, 0.8),     v = (1, 0.8)    send v0 = 1     x1 = (-1, 0)
    #                   u = (0, 0.8),     v = (0, 0.8)
    #   g2 = (0.3, 0):  u = (0.3, 0.4),   v = (0.3, 1.2)  send v1 = 1.2   x2 = (-1, -1.2)
    #                   u = (0.3, 0),     v = (0.3, 0)
    #   g3 = (0.3, 0.3): u = (0.45, 0.3), v = (0.75, 0.3) send v0 = 0.75  x3 = (-1.75, -1.2)
    # Rules out: the gradient accumulated instead of the velocity (v2 = (0.3, 0.8): sends 0.8),
    # no error feedback (v2 = u2 = (0.3, 0.4): sends 0.4), a memory that keeps what was sent
    # (v2 = (1.3, 1.2): sends 1.3), no momentum masking (u2 = (0.8, 0.4), then v3 = (1.5, 0.5):
    # x3 = (-2.5, -1.2)), and momentum applied after adding the gradient (x1 = (-0.5, 0)).
    hp = _hp("dgc", lr=1.0, momentum=0.5, density=0.5, selection="exact", sparsity_warmup=0)
    xs = _trajectory("dgc", [[[1.0, 0.8]], [[0.3, 0.0]], [[0.3, 0.3]]], hp)
    assert xs[0].tolist() == [-1.0, 0.0]
    assert xs[1] == pytest.approx([-1.0, -1.2], abs=1e-6)
    assert xs[2] == pytest.approx([-1.75, -1.2], abs=1e-6)


def test_powersgd_compresses_the_gradient_plus_what_it_missed():
    # PowerSGD (Vogels et al. 2019): M = g + e; P = M Q; P_hat = orthonormal(P); Q = M^T P_hat;
    # the update is P_hat Q^T = P_hat P_hat^T M, an orthogonal projection of M; e = M - update.
    # With one worker and lr 1 the update of step t is x_{t-1} - x_t, and under error feedback
    # e_{t-1} = x_{t-1} + (g_1 + ... + g_{t-1}). So each update must have rank 1 and leave a
    # remainder M - update orthogonal to its column space, with M rebuilt from x alone.
    # Rules out no error feedback (the projection of g_t alone leaves e_{t-1} in the remainder)
    # and a memory that keeps what was sent.
    rng = np.random.default_rng(13)
    grads = [rng.standard_normal((1, 9)).astype(np.float32) for _ in range(4)]
    hp = _hp("powersgd", lr=1.0, momentum=0.0, rank=1)
    xs = _trajectory("powersgd", grads, hp, shapes=[("w", (3, 3))])
    x_prev, seen = np.zeros(9), np.zeros(9)
    for g, x in zip(grads, xs):
        compensated = (g[0] + x_prev + seen).reshape(3, 3)
        update = (x_prev - x).reshape(3, 3)
        assert np.linalg.svd(update, compute_uv=False)[1] < 1e-5
        assert np.abs(update.T @ (compensated - update)).max() < 1e-5
        x_prev, seen = x.astype(np.float64), seen + g[0]
    assert np.abs(x_prev + seen).max() > 0.1  # the memory is not empty: the check had teeth


def _scaled_signs(rows):
    """The 1-bit compressor of 1-bit Adam: each row as ||row||_2 / sqrt(len) times its signs,
    sign(0) = +1."""
    scale = np.sqrt(np.mean(rows * rows, axis=-1, keepdims=True))
    return scale * np.where(rows >= 0, 1.0, -1.0)


def _onebit_adam_reference(grads_seq, freeze, lr, b1, b2, eps, wd):
    """1-bit Adam (Tang et al. 2021, Algorithm 1) from x = 0, written out for this test.

    Warm-up: Adam without bias correction on the mean gradient. Then v is frozen; worker i
    compresses its momentum b1*m + (1-b1)*g_i plus its error; server j (of N, one chunk of d/N
    entries each) compresses its chunk of the mean of those plus its own error; the gathered
    chunks are everyone's new momentum. d must be a multiple of 8N (no padding)."""
    n, d = grads_seq[0].shape
    x, m, v = np.zeros(d), np.zeros(d), np.zeros(d)
    worker_error, server_error = np.zeros((n, d)), np.zeros((n, d // n))
    xs = []
    for t, g in enumerate(grads_seq):
        if t < freeze:
            mean = g.mean(axis=0)
            m = b1 * m + (1 - b1) * mean
            v = b2 * v + (1 - b2) * mean * mean
        else:
            compensated = b1 * m + (1 - b1) * g + worker_error
            sent = _scaled_signs(compensated)
            worker_error = compensated - sent
            chunks = sent.mean(axis=0).reshape(n, d // n) + server_error
            gathered = _scaled_signs(chunks)
            server_error = chunks - gathered
            m = gathered.reshape(d)
        x = x - lr * (m / (np.sqrt(v) + eps) + wd * x)
        xs.append(x)
    return xs


def test_onebit_adam_matches_a_reference_of_its_compressed_phase():
    # Rules out a missing worker error feedback, a missing server error feedback, one scale
    # for the whole vector on the server side, and an L1 scale: each changes x from the second
    # compressed step on by far more than the float32 rounding allowed for here.
    rng = np.random.default_rng(14)
    n, d, freeze = 2, 32, 2
    grads = [rng.standard_normal((n, d)).astype(np.float32) for _ in range(freeze + 4)]
    hp = _hp("onebit_adam", freeze_step=freeze, lr=0.01, weight_decay=0.01,
             bias_correction=False)  # the reference below is DeepSpeed's: no bias correction
    got = _trajectory("onebit_adam", grads, hp)
    b1, b2 = hp["betas"]
    want = _onebit_adam_reference([g.astype(np.float64) for g in grads], freeze, 0.01, b1, b2,
                                  hp["eps"], 0.01)
    for t, (a, b) in enumerate(zip(got, want)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), f"step {t + 1}"


@pytest.mark.parametrize("name", ["topk", "randomk"])
@pytest.mark.parametrize("error_feedback", [True, False])
def test_density_one_equals_uncompressed_sgd(name, error_feedback):
    common = dict(objective={"name": "logistic", "samples": 1024, "features": 15}, workers=4,
                  batch_size=16, steps=25, seed=2)
    plain = experiments.simulate(method={"name": "gsgd", "lr": 0.05}, **common)
    dense = experiments.simulate(method={"name": name, "lr": 0.05, "density": 1.0,
                                         "error_feedback": error_feedback}, **common)
    assert np.array_equal(plain.params, dense.params)


@pytest.mark.parametrize("shapes, d", [(None, 30), ([("w", (6, 4)), ("b", (4,))], 28),
                                       ([("w", (3, 2, 4)), ("v", (5, 2))], 34)])
def test_powersgd_full_rank_reproduces_the_mean_gradient(shapes, d):
    rng = np.random.default_rng(10)
    g = rng.standard_normal((3, d)).astype(np.float32)
    hp = _hp("powersgd", rank=8, momentum=0.0, batched=shapes is None)
    _, _, x, state = _step("powersgd", g, hp, shapes=shapes, lr=1.0)
    assert -x == pytest.approx(g.mean(axis=0), abs=2e-5)
    assert np.abs(state["memory"]).max() <= np.abs(g - g.mean(axis=0)).max() + 2e-5
    # rank 1 does not reproduce it; the memory keeps what the matrices missed (1-D tensors
    # travel exactly and keep nothing)
    _, _, x1, state1 = _step("powersgd", g, _hp("powersgd", rank=1, momentum=0.0,
                                                batched=shapes is None), shapes=shapes, lr=1.0)
    assert np.abs(-x1 - g.mean(axis=0)).max() > 1e-2
    matrix = np.ones(d, bool)
    matrix[state1["dense"]] = False
    assert np.allclose((state1["memory"] - x1)[:, matrix], g[:, matrix], atol=1e-5)
    assert np.all(state1["memory"][:, ~matrix] == 0)


def test_powersgd_warm_start_keeps_the_reduced_q():
    g = np.random.default_rng(11).standard_normal((2, 36)).astype(np.float32)
    hp = _hp("powersgd", rank=2, batched=True)
    _, reply, _, state = _step("powersgd", g, hp)
    # reply: [P mean (6x2) | Q mean (6x2)]; the next step starts from that Q
    q_mean = DenseCodec().decode(reply, 24)[12:].reshape(6, 2)
    assert np.array_equal(state["q"][0], q_mean)


def test_terngrad_wire_by_hand():
    # clip_factor 0 and |g| equal to the shared scale or 0: the ternaries are deterministic
    g = [[2.0, -2.0, 0.0, 1.0], [-1.0, 2.0, 0.0, -2.0]]
    hp = _hp("terngrad", clip_factor=0.0, momentum=0.0)
    rng = np.random.default_rng(0)
    payloads, reply, x, _ = _step("terngrad", np.sign(g) * 2, hp, rng=rng, lr=1.0)
    assert [struct.unpack("<f", p[:4].tobytes())[0] for p in payloads] == [2.0, 2.0]
    assert struct.unpack("<f", reply[:4].tobytes())[0] == 2.0
    # sums [0, 0, 0, 0] of 2 ternaries are sent as the level sum + N in 5 levels (3 bits)
    assert LevelCodec(5).decode(reply[4:], 4).tolist() == [2, 2, 2, 2]
    assert x.tolist() == [0.0, 0.0, 0.0, 0.0]
    _, reply, x, _ = _step("terngrad", [[1.0, 2.0, 0.0, -2.0]] * 2, hp, rng=rng, lr=1.0)
    # coordinate 0 has probability 1/2, so look only at the deterministic ones
    assert LevelCodec(5).decode(reply[4:], 4)[1:].tolist() == [4, 2, 0]
    assert x[1:].tolist() == [-2.0, 0.0, 2.0]


def test_terngrad_clips_at_c_standard_deviations():
    g = np.zeros((1, 100))
    g[0, 0] = 100.0  # one outlier: std = 9.95, so the shared scale is 2.5 * 9.95
    payloads, _, _, _ = _step("terngrad", g, _hp("terngrad"))
    assert struct.unpack("<f", payloads[0, :4].tobytes())[0] == pytest.approx(2.5 * np.std(g[0]),
                                                                               rel=1e-6)


def test_signum_majority_vote_by_hand():
    g = [[1.0, -1.0, 2.0, -3.0], [1.0, 1.0, -2.0, -3.0], [-1.0, 1.0, -2.0, 3.0]]
    hp = _hp("signum", momentum=0.0, lr=0.5)
    payloads, reply, x, _ = _step("signum", g, hp)
    assert payloads.shape == (3, 1) and reply.shape == (1,)  # 1 bit each way, 4 bits -> 1 byte
    assert x.tolist() == [-0.5, -0.5, 0.5, 0.5]  # x - lr * sign(sum of signs)
    # ties (two workers) go to +1 by the reference code's rule (tie = "plus")
    _, _, x, _ = _step("signum", [[1.0, -1.0], [-1.0, 1.0]], _hp("signum", momentum=0.0, lr=0.5,
                                                                   tie="plus"))
    assert x.tolist() == [-0.5, -0.5]


def test_onebit_adam_warmup_then_frozen_variance():
    rng = np.random.default_rng(12)
    hp = _hp("onebit_adam", freeze_step=2, lr=0.01, weight_decay=0.0, bias_correction=False)
    b1, b2, eps = 0.9, 0.999, 1e-8
    state, x = None, np.zeros(16, np.float32)
    m = v = np.zeros(16)
    for t in range(2):  # Adam on the float32 mean, without bias correction (as DeepSpeed)
        g = rng.standard_normal((4, 16)).astype(np.float32)
        payloads, _, x_new, state = _step("onebit_adam", g, hp, x=x, state=state)
        assert payloads.shape == (4, 64)
        mean = g.mean(axis=0)
        m, v = b1 * m + (1 - b1) * mean, b2 * v + (1 - b2) * mean**2
        assert x_new == pytest.approx(x - 0.01 * m / (np.sqrt(v) + eps), rel=1e-5, abs=1e-7)
        x = x_new
    v_frozen = state["v"].copy()
    g = rng.standard_normal((4, 16)).astype(np.float32)
    payloads, reply, _, state = _step("onebit_adam", g, hp, x=x, state=state)
    # 16 entries padded to 32 (8 per server chunk): [scale|4 bytes] + [scale|1 byte]
    assert payloads.shape == (4, 4 + 4 + 4 + 1)
    assert np.array_equal(state["v"], v_frozen)
    # the momentum is what the servers sent back: one scale per chunk times a sign
    assert np.unique(np.abs(state["m"][:8])).size == 1
    assert np.abs(state["m"]).min() > 0


# --- the registry, the spec layer and sanity runs ----------------------------------------------

def test_every_baseline_is_listed_with_its_wire(capsys):
    assert cli_main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        method = methods.get(name)
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert line.split(None, 1)[1] == method.description
        assert method.wire in out


def test_bad_hyperparameters_are_spec_errors():
    with pytest.raises(SpecError, match="method.density"):
        experiments.simulate(objective="logistic", method={"name": "topk", "density": 0.0},
                             steps=1)
    with pytest.raises(SpecError, match="method.index_bits"):
        experiments.simulate(objective="logistic", method={"name": "dgc", "index_bits": "int16"},
                             steps=1)


LRS = {"terngrad": 0.1, "dgc": 0.1, "graddrop": 0.1, "signum": 0.003, "efsignsgd": 0.1,
       "qsgd": 0.1, "topk": 0.1, "randomk": 0.01, "powersgd": 0.1, "onebit_adam": 0.01}


@pytest.mark.parametrize("name", NAMES)
def test_each_baseline_lowers_the_logistic_loss(name):
    # the paper's defaults except the step size, which belongs to the objective
    result = experiments.simulate(objective={"name": "logistic"},
                                  method={"name": name, "lr": LRS[name]},
                                  workers=4, steps=150, seed=0)
    assert result.summary["initial"]["loss"] == pytest.approx(math.log(2))
    assert result.summary["final"]["loss"] < 0.5
