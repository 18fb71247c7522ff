"""Every baseline against a small implementation written here from its paper's algorithm (and
its reference code where the paper leaves a detail open), never from the project's code: a few
steps from a fixed seed, the trajectories equal to float32 rounding.

The references run in float64 with plain loops over workers and tensors. Where a method draws
random numbers, the reference draws the same ones (same seed, same shapes, same order); random-k
and PowerSGD's first Q come from a seed all workers share, so the reference reads them from the
method's state.
"""
import math

import numpy as np
import pytest

import experiments
from experiments.cli import main as cli_main
from sim import methods

N, STEPS = 4, 4
#: two matrices and a bias: per-tensor rules see real tensors
SHAPES = [("w", (4, 5)), ("b", (5,)), ("v", (3, 2))]
D = 31
TENSORS = [(0, 20, 2), (20, 5, 1), (25, 6, 2)]  # (start, size, dimensions) of SHAPES
RTOL, ATOL = 2e-5, 1e-6


def _hp(name, **overrides):
    return {**methods.get(name).defaults, **overrides}


def _grads(seed, d=D, steps=STEPS):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((N, d)).astype(np.float32) for _ in range(steps)]


def _x0(d=D):
    return np.random.default_rng(99).standard_normal(d).astype(np.float32)


def _trajectory(name, hp, grads, shapes=None, seed=0, watch=None):
    """The method's parameters after every step (its float32 run), and its final state;
    ``watch(state)`` sees the state after every encode."""
    method = methods.get(name)
    x = _x0(grads[0].shape[1])
    rng = np.random.default_rng(seed)
    state = method.init(x, N, hp, shapes)
    xs = []
    for g in grads:
        payloads, state = method.encode(state, g, hp, rng)
        if watch is not None:
            watch(state)
        reply = method.aggregate(payloads, x.size, hp, rng)
        x, state = method.apply(x, reply, state, hp, hp["lr"])
        xs.append(x.astype(np.float64))
    return xs, state


def _same(got, want):
    for step, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"step {step + 1}")


def _sgd(x, g, buf, lr, momentum, wd, nesterov=False):
    """torch.optim.SGD: g + wd*x into buf = momentum*buf + g; step g + momentum*buf or buf."""
    g = g + wd * x
    buf *= momentum
    buf += g
    return x - lr * (g + momentum * buf if nesterov else buf)


def _sign1(a):
    """A 1-bit sign: +1 for a >= 0."""
    return np.where(a >= 0, 1.0, -1.0)


# --- TernGrad (Wen et al. 2017, Algorithm 1 with per-layer scalers shared by max) ----------------

def test_terngrad():
    hp = _hp("terngrad", lr=0.05, weight_decay=1e-3)
    grads = _grads(1)
    for g in grads:
        g[:, [3, 22, 27]] *= 8.0  # outliers beyond 2.5 standard deviations: clipping engages
    got, _ = _trajectory("terngrad", hp, grads, SHAPES)
    rng, x, buf, want = np.random.default_rng(0), _x0().astype(float), np.zeros(D), []
    for g32 in grads:
        g = g32.astype(float)
        s = np.zeros(D)
        for start, size, _ in TENSORS:
            block = g[:, start:start + size]
            limit = 2.5 * block.std(axis=1, keepdims=True)  # clip at c sigma, c = 2.5
            block[:] = np.clip(block, -limit, limit)
            s[start:start + size] = np.abs(block).max()  # the largest scaler over the workers
        u = rng.random(g.shape)
        ternary = np.sign(g) * (u < np.abs(g) / s)  # b ~ Bernoulli(|g| / s)
        x = _sgd(x, s * ternary.sum(axis=0) / N, buf, 0.05, 0.9, 1e-3)
        want.append(x.copy())
    _same(got, want)


# --- QSGD (Alistarh et al. 2017: Q_s(v) = ||v|| sign(v) xi(v, s), per bucket) -------------------

def test_qsgd():
    s, bucket = 4, 8
    hp = _hp("qsgd", lr=0.05, levels=s, bucket_size=bucket)
    grads = _grads(2)
    got, _ = _trajectory("qsgd", hp, grads, SHAPES)
    rng, x, buf, want = np.random.default_rng(0), _x0().astype(float), np.zeros(D), []
    for g32 in grads:
        g = g32.astype(float)
        u = rng.random(g.shape)
        decoded = np.zeros_like(g)
        for i in range(N):
            for start in range(0, D, bucket):
                v = g[i, start:start + bucket]
                norm = np.linalg.norm(v)
                scaled = s * np.abs(v) / norm
                low = np.floor(scaled)
                level = low + (u[i, start:start + bucket] < scaled - low)  # unbiased rounding
                decoded[i, start:start + bucket] = norm * np.sign(v) * level / s
        x = _sgd(x, decoded.mean(axis=0), buf, 0.05, 0.9, 0.0)
        want.append(x.copy())
    _same(got, want)


# --- top-k, random-k, GradDrop: error-compensated sparsification (Stich et al. 2018) ------------

def _ef_sparse(grads, keep, lr, momentum):
    """keep(c, step) -> boolean mask of what each worker sends of c = g + e."""
    x, buf, e, want = _x0().astype(float), np.zeros(D), np.zeros((N, D)), []
    for step, g in enumerate(grads):
        c = e + g
        sent = np.where(keep(c, step), c, 0.0)
        e = c - sent
        x = _sgd(x, sent.mean(axis=0), buf, lr, momentum, 0.0)
        want.append(x.copy())
    return want


def _largest(c, k):
    order = np.argsort(-np.abs(c), axis=1)[:, :k]
    mask = np.zeros(c.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def test_topk():
    hp = _hp("topk", lr=0.1, density=0.1)
    grads = _grads(3)
    got, _ = _trajectory("topk", hp, grads)
    _same(got, _ef_sparse(grads, lambda c, _: _largest(c, 3), 0.1, 0.9))  # floor(0.1 * 31)


def test_graddrop_exact():
    hp = _hp("graddrop", lr=0.1, drop_ratio=0.9, selection="exact")
    grads = _grads(4)
    got, _ = _trajectory("graddrop", hp, grads)
    # drop the 90% smallest |g + residual|: keep ceil(0.1 * 31) = 4
    _same(got, _ef_sparse(grads, lambda c, _: _largest(c, 4), 0.1, 0.9))


def test_randomk():
    hp = _hp("randomk", lr=0.1, density=0.2)
    grads = _grads(5)
    drawn = []
    got, _ = _trajectory("randomk", hp, grads, watch=lambda s: drawn.append(s["index"].copy()))
    assert all(np.unique(i).size == int(0.2 * D) for i in drawn)  # k distinct shared indices

    def keep(c, step):
        mask = np.zeros(c.shape, bool)
        mask[:, drawn[step]] = True
        return mask
    _same(got, _ef_sparse(grads, keep, 0.1, 0.9))


# --- DGC (Lin et al. 2018, Algorithm 1 with momentum correction, and the reference code's
# per-tensor selection, dense 1-D tensors, Nesterov correction and weight-decay momentum) ------

def test_dgc_exact_selection_nesterov_and_weight_decay():
    lr, mu, wd, density = 0.1, 0.9, 1e-2, 0.2
    hp = _hp("dgc", lr=lr, weight_decay=wd, nesterov=True, density=density, sparsity_warmup=2,
             selection="exact")
    grads = _grads(6)
    got, _ = _trajectory("dgc", hp, grads, SHAPES)
    x, wbuf, want = _x0().astype(float), np.zeros(D), []
    u, v = np.zeros((N, D)), np.zeros((N, D))
    for step, g in enumerate(grads):
        u = mu * (u + g)  # Nesterov momentum correction (the reference's memory)
        v = v + u + g
        rho = max(density, 0.25 ** (1 + 4 * step // 2)) if step < 2 else density
        sent = np.zeros((N, D), bool)
        for start, size, dims in TENSORS:
            if dims < 2:  # biases travel whole
                sent[:, start:start + size] = True
                continue
            k = math.ceil(rho * size)
            for i in range(N):
                top = np.argsort(-np.abs(v[i, start:start + size]))[:k]
                sent[i, start + top] = True
        values = np.where(sent, v, 0.0)
        v = v - values
        matrix = np.repeat([dims >= 2 for _, _, dims in TENSORS], [s for _, s, _ in TENSORS])
        u[sent & matrix] = 0  # momentum factor masking (not for the dense biases)
        wbuf = mu * wbuf + wd * x  # DGCSGD: only the decay goes through a momentum
        x = x - lr * (values.mean(axis=0) + wd * x + mu * wbuf)
        want.append(x.copy())
    _same(got, want)


def _dgc_select(mag, density, sample):
    """The DGC code's threshold search for one row, given the row's sampled indices."""
    k = math.ceil(density * mag.size)
    values = np.sort(mag[sample])
    threshold = values[-math.ceil(sample.size * density)]
    chosen = np.flatnonzero(mag >= threshold)
    for _ in range(10):
        if chosen.size > k:
            if chosen.size > 1.3 * k:
                chosen = chosen[np.argsort(-mag[chosen])[:k]]
            break
        if chosen.size < 0.8 * k:
            threshold *= 0.8
            chosen = np.flatnonzero(mag >= threshold)
        else:
            break
    return np.sort(chosen)[:k]


def test_dgc_sampled_selection():
    d, density, ratio, lr, mu = 5000, 0.01, 0.01, 0.1, 0.9
    hp = _hp("dgc", lr=lr, density=density, sparsity_warmup=0, sample_ratio=ratio)
    grads = _grads(7, d=d)
    got, _ = _trajectory("dgc", hp, grads)
    size = max(math.ceil(ratio * d), math.ceil(2 / density))  # 200 samples of 5000
    rng = np.random.default_rng(0)
    x, want = _x0(d).astype(float), []
    u, v = np.zeros((N, d)), np.zeros((N, d))
    for g in grads:
        u = mu * u + g
        v = v + u
        samples = rng.integers(0, d, size=(N, size))
        sent = np.zeros((N, d), bool)
        for i in range(N):
            sent[i, _dgc_select(np.abs(v[i]), density, samples[i])] = True
        assert sent.sum(axis=1).max() <= math.ceil(density * d)
        values = np.where(sent, v, 0.0)
        v = v - values
        u[sent] = 0
        x = x - lr * values.mean(axis=0)
        want.append(x.copy())
    _same(got, want)


# --- signSGD with majority vote / Signum (Bernstein et al. 2019, Algorithm 1) -------------------

def test_signum_majority_vote_with_random_ties():
    lr, beta, wd = 0.01, 0.9, 0.1
    hp = _hp("signum", lr=lr, momentum=beta, weight_decay=wd)
    grads = _grads(8)
    got, _ = _trajectory("signum", hp, grads, SHAPES)
    rng, x, m, want, tied = np.random.default_rng(0), _x0().astype(float), np.zeros((N, D)), [], 0
    for g in grads:
        m = beta * m + (1 - beta) * g
        vote = np.sign(np.sign(m).sum(axis=0))  # no exact zero in m: no worker-side draw
        ties = vote == 0  # 4 voters: 2 against 2
        vote[ties] = np.where(rng.random(ties.sum()) < 0.5, 1.0, -1.0)
        tied += ties.sum()
        x = x - lr * (vote + wd * x)
        want.append(x.copy())
    assert tied > 0
    _same(got, want)


def test_signum_default_tie_and_zero_rules_are_unbiased():
    # two workers that always disagree: every vote is a tie; the default reply averages to 0
    hp = _hp("signum", momentum=0.0, lr=1.0)
    method, rng = methods.get("signum"), np.random.default_rng(1)
    g = np.array([[1.0, -2.0, 0.0], [-1.0, 2.0, 0.0]], np.float32)
    state = method.init(np.zeros(3, np.float32), 2, hp, None)
    replies = []
    for _ in range(4000):
        payloads, state = method.encode(state, g, hp, rng)
        replies.append(-method.apply(np.zeros(3, np.float32), method.aggregate(
            payloads, 3, hp, rng), state, hp, 1.0)[0])
    # binomial: the mean of 4000 fair +-1 draws is within 4 standard errors (0.063) of 0
    assert np.abs(np.mean(replies, axis=0)).max() < 0.063
    assert set(np.unique(replies)) == {-1.0, 1.0}  # one bit, never a silent 0


# --- EF-signSGD (Karimireddy et al. 2019, Algorithm 1, scale ||p||_1 / d per tensor) ------------

def test_efsignsgd_per_tensor():
    lr, mu, wd = 0.05, 0.5, 0.01
    hp = _hp("efsignsgd", lr=lr, momentum=mu, weight_decay=wd)
    grads = _grads(9)
    got, _ = _trajectory("efsignsgd", hp, grads, SHAPES)
    x, p, e, want = _x0().astype(float), np.zeros((N, D)), np.zeros((N, D)), []
    for g in grads:
        p = mu * p + g + wd * x  # L2 decay in the gradient, then the momentum
        c = p + e
        sent = np.zeros_like(c)
        for start, size, _ in TENSORS:
            block = c[:, start:start + size]
            sent[:, start:start + size] = np.abs(block).mean(axis=1, keepdims=True) * _sign1(block)
        e = c - sent
        x = x - lr * sent.mean(axis=0)
        want.append(x.copy())
    _same(got, want)


# --- PowerSGD (Vogels et al. 2019, Algorithm 1 with error feedback and warm start; the paper
# code's Nesterov momentum after the reduce) ------------------------------------------------------

def _gram_schmidt(p):
    q = p.copy()
    for j in range(q.shape[1]):
        q[:, j] -= q[:, :j] @ (q[:, :j].T @ q[:, j])
        q[:, j] /= np.linalg.norm(q[:, j])
    return q


@pytest.mark.parametrize("batched", [False, True])
def test_powersgd(batched):
    lr, mu, wd, rank = 0.05, 0.9, 1e-3, 2
    hp = _hp("powersgd", lr=lr, weight_decay=wd, rank=rank, batched=batched)
    grads = _grads(10)
    first_q = [q.astype(float) for q in methods.get("powersgd").init(_x0(), N, hp, SHAPES)["q"]]
    got, _ = _trajectory("powersgd", hp, grads, SHAPES)
    if batched:  # the whole vector as one 6 x 6 matrix, zero-padded (36 >= 31)
        layout, dense = [(0, D, 6, 6)], []
    else:  # the matrices (rows, rest); the bias travels densely
        layout, dense = [(0, 20, 4, 5), (25, 6, 3, 2)], list(range(20, 25))
    x, buf, e, qs, want = _x0().astype(float), np.zeros(D), np.zeros((N, D)), first_q, []
    for g in grads:
        m = g + e
        approx = np.zeros(D)
        approx[dense] = m[:, dense].mean(axis=0)
        new_qs = []
        for (start, size, a, b), q in zip(layout, qs):
            block = np.zeros((N, a * b))
            block[:, :size] = m[:, start:start + size]
            mats = block.reshape(N, a, b)
            p_hat = _gram_schmidt(np.mean([mi @ q for mi in mats], axis=0))
            q_new = np.mean([mi.T @ p_hat for mi in mats], axis=0)
            approx[start:start + size] = (p_hat @ q_new.T).reshape(-1)[:size]
            new_qs.append(q_new)  # warm start
        qs = new_qs
        e = m - approx
        e[:, dense] = 0.0
        step = approx + wd * x
        buf = mu * buf + step
        x = x - lr * (step + buf)  # the paper code's Nesterov form
        want.append(x.copy())
    _same(got, want)


# --- 1-bit Adam (Tang et al. 2021, Algorithm 1, with DeepSpeed's chunked servers) ---------------

@pytest.mark.parametrize("bias_correction", [True, False])
def test_onebit_adam(bias_correction):
    lr, b1, b2, eps, wd, freeze = 0.01, 0.9, 0.999, 1e-8, 0.01, 2
    hp = _hp("onebit_adam", lr=lr, weight_decay=wd, freeze_step=freeze,
             bias_correction=bias_correction)
    grads = _grads(11, steps=6)
    for g in grads:
        g[:, 7] = 0.0  # a weight into a dead unit: v stays 0 through the warm-up
    got, state = _trajectory("onebit_adam", hp, grads, SHAPES)
    padded = 32  # every tensor padded to a multiple of N * lcm(N, 8) = 32: chunks of 8
    chunk = padded // N
    x, m, v, want = _x0().astype(float), np.zeros(D), np.zeros(D), []
    worker_err = [np.zeros((N, padded)) for _ in TENSORS]
    server_err = [np.zeros((N, chunk)) for _ in TENSORS]
    for t, g in enumerate(grads, start=1):
        if t <= freeze:  # Adam on the averaged gradient
            mean = g.mean(axis=0).astype(float)
            m = b1 * m + (1 - b1) * mean
            v = b2 * v + (1 - b2) * mean**2
        else:
            mask = v != 0
            local = b1 * m + (1 - b1) * g
            for k, (start, size, _) in enumerate(TENSORS):
                c = np.zeros((N, padded))
                c[:, :size] = local[:, start:start + size]
                c += worker_err[k]
                scale = np.linalg.norm(c, axis=1, keepdims=True) / math.sqrt(padded)
                sent = scale * _sign1(c)
                worker_err[k] = c - sent
                gathered = np.zeros(padded)
                for j in range(N):  # worker j serves chunk j
                    z = sent[:, j * chunk:(j + 1) * chunk].mean(axis=0) + server_err[k][j]
                    out = np.linalg.norm(z) / math.sqrt(chunk) * _sign1(z)
                    server_err[k][j] = z - out
                    gathered[j * chunk:(j + 1) * chunk] = out
                m[start:start + size] = gathered[:size]
            m = m * mask
        if bias_correction:
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2 ** min(t, freeze))
        else:
            m_hat, v_hat = m, v
        x = x - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * x)
        want.append(x.copy())
    _same(got, want)
    assert state["mask"].sum() == D - 1 and not state["mask"][7]
    # the masked weight only decays
    assert got[-1][7] == pytest.approx(_x0()[7] * (1 - lr * wd) ** 6, rel=1e-5)


def test_onebit_adam_never_compressing_is_gadamw_bit_for_bit():
    common = dict(objective={"name": "mlp", "dataset": "synthetic", "hidden": [12]}, workers=4,
                  batch_size=8, steps=12, seed=3)
    adamw = experiments.simulate(method={"name": "gadamw", "lr": 1e-2}, **common)
    onebit = experiments.simulate(method={"name": "onebit_adam", "lr": 1e-2, "weight_decay": 0.01,
                                          "freeze_step": 50}, **common)
    assert np.array_equal(adamw.params, onebit.params)


def test_graddrop_samples_its_threshold_on_a_thousand_parameters():
    # the sample floor is 2/density = 200 entries, not 100/density = 10,000: on 1,024 parameters
    # GradDrop's selection is sampled, no longer the exact top-k
    from sim.wire.compressors import sampled_mask, topk_mask

    x = np.random.default_rng(12).standard_normal((N, 1024))
    sampled = sampled_mask(x, 0.01, 0.001, np.random.default_rng(0))
    assert not np.array_equal(sampled, topk_mask(x, 11))
    assert sampled.sum(axis=1).max() <= 11


# --- every accepted hyperparameter counts, every method says how it differs ---------------------

def test_nesterov_needs_momentum():
    with pytest.raises(experiments.SpecError, match="method.nesterov = true needs"):
        experiments.simulate(objective="logistic", method={"name": "powersgd", "momentum": 0.0},
                             steps=1)


def test_every_method_lists_its_differences_from_the_reference(capsys):
    assert cli_main(["list", "methods", "--verbose"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    built_in = [m for m in methods.METHODS.values() if m.init.__module__.startswith("sim.methods.")]
    assert len(built_in) >= 15
    for method in built_in:
        assert method.notes, f"{method.name}: no notes on its reference"
        for note in method.notes.splitlines():
            assert note in out
