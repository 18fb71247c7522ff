"""Optimizer numerics against hand computations and invariants (DESIGN.md section 5)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import experiments
from sim import methods
from sim.schedules import learning_rates


def _hp(name, **overrides):
    hp = {k: (list(v) if isinstance(v, tuple) else v)
          for k, v in methods.get(name).defaults.items()}
    hp.update(overrides)
    return hp


def _run(name, x0, grads_seq, n_workers=1, seed=0, **hp_overrides):
    """Apply a method to a fixed gradient sequence (each (n_workers, d)); returns the x's."""
    method = methods.get(name)
    hp = _hp(name, **hp_overrides)
    rng = np.random.default_rng(seed)
    x = np.asarray(x0, dtype=np.float64)
    state = method.init(x, n_workers, hp, None)
    xs = []
    for g in grads_seq:
        payloads, state = method.encode(state, np.asarray(g, dtype=np.float64), hp, rng)
        reply = method.aggregate(payloads, x.size, hp, rng)
        x, state = method.apply(x, reply, state, hp, hp["lr"])
        xs.append(x)
    return xs


def test_lion_three_steps_by_hand():
    # lr 0.1, wd 0.5, b1 0.9, b2 0.99; the sign uses the OLD momentum, decay applies to the old x.
    x0 = [1.0, -2.0, 0.5, 0.0]
    g = [[[0.5, -1.0, 0.0, 2.0]], [[-1.0, -1.0, 1.0, -0.1]], [[0.02, 0.3, -0.2, -0.2]]]
    xs = _run("lion", x0, g, lr=0.1, weight_decay=0.5, betas=[0.9, 0.99])
    # step 1: m=0, c=0.1*g1 -> sign [1,-1,0,1]; x1 = x0 - 0.1*(sign + 0.5*x0); m1 = 0.01*g1
    assert xs[0] == pytest.approx([0.85, -1.8, 0.475, -0.1], abs=1e-12)
    # step 2: c = 0.9*m1 + 0.1*g2 = [-0.0955, -0.109, 0.1, 0.008] -> sign [-1,-1,1,1]
    assert xs[1] == pytest.approx([0.9075, -1.61, 0.35125, -0.195], abs=1e-12)
    # step 3: m2 = [-0.00505, -0.0199, 0.01, 0.0188]; c = 0.9*m2 + 0.1*g3
    #   = [-0.002545, 0.01209, -0.011, -0.00308] -> sign [-1,1,-1,-1] (coordinate 0: momentum
    #   outvotes a positive gradient)
    assert xs[2] == pytest.approx([0.962125, -1.6295, 0.4336875, -0.08525], abs=1e-12)


def test_adamw_two_steps_by_hand():
    # betas (0.5, 0.75) and eps 0.25 keep the numbers small and make every term count.
    # coordinate 0, g = 1 then -1:
    #   t=1: m = 0.5, v = 0.25; m_hat = 1, v_hat = 1; step 1/(1 + 0.25) = 0.8
    #        x1 = 1 - 0.1*(0.8 + 0.1*1) = 0.91
    #   t=2: m = -0.25, v = 0.4375; m_hat = -0.25/0.75 = -1/3, v_hat = 0.4375/0.4375 = 1;
    #        step (-1/3)/1.25 = -4/15;  x2 = 0.91 - 0.1*(-4/15 + 0.091) = 0.9275666...
    # coordinate 1, g = 0: only the decay acts, scaled by lr: x = -2*0.99, then *0.99 again.
    # Rules out: no bias correction (t=1 step 0.5/0.75: x1 = 0.92333), bias correction on m
    # only (t=2 step -1/3/(0.6614 + 0.25)), eps inside the square root (t=1 step 1/sqrt(1.25):
    # x1 = 0.90056), decay not scaled by lr (x1[1] = -1.8).
    xs = _run("gadamw", [1.0, -2.0], [[[1.0, 0.0]] * 2, [[-1.0, 0.0]] * 2], n_workers=2,
              lr=0.1, betas=[0.5, 0.75], eps=0.25, weight_decay=0.1)
    assert xs[0] == pytest.approx([0.91, -1.98], abs=1e-12)
    assert xs[1] == pytest.approx([0.91 + 0.1 * (4 / 15 - 0.091), -1.9602], abs=1e-12)


@pytest.mark.parametrize("name, n_workers, options", [
    ("lion", 1, {}), ("dlion", 1, {"aggregate": "mavo"}), ("dlion", 1, {"aggregate": "avg"}),
    ("dlion", 3, {"aggregate": "mavo"}), ("dlion", 3, {"aggregate": "avg"}), ("glion", 2, {})])
def test_lion_family_takes_the_sign_before_updating_the_momentum(name, n_workers, options):
    # Every worker sees the same gradients, so every method here is Lion on them.
    # lr 1, wd 0, betas (0.9, 0.99); coordinate 0 sees g = 1 then -0.085:
    #   reference: c1 = 0.1 -> +1; m1 = 0.01; c2 = 0.9*0.01 - 0.0085 = +0.0005 -> +1: x = -2.
    #   Rules out the momentum updated before the sign: m1 = 0.01, c1 = 0.109 -> +1;
    #   m2 = 0.0099 - 0.00085 = 0.00905, c2 = 0.008145 - 0.0085 = -0.000355 -> -1: x = 0.
    # coordinate 1 sees g = 1 then -0.5:
    #   reference: c2 = 0.009 - 0.05 < 0 -> -1: x = 0.
    #   Rules out b1 and b2 swapped: m1 = 0.1, c2 = 0.99*0.1 - 0.005 > 0 -> +1: x = -2.
    steps = [[[1.0, 1.0]] * n_workers, [[-0.085, -0.5]] * n_workers]
    xs = _run(name, [0.0, 0.0], steps, n_workers, lr=1.0, weight_decay=0.0, **options)
    assert xs[0].tolist() == [-1.0, -1.0]
    assert xs[1].tolist() == [-2.0, 0.0]


@pytest.mark.parametrize("aggregate, x2", [("mavo", -2.0), ("avg", -2 / 3)])
def test_dlion_workers_keep_their_own_momentum(aggregate, x2):
    # three workers, gradients (1, 1, -1) then (-0.085, -0.085, -0.5); lr 1, wd 0.
    # Each worker's momentum sees only its own gradients: m1 = (0.01, 0.01, -0.01);
    # c2 = (0.009 - 0.0085, same, -0.009 - 0.05) -> signs (+, +, -) on both steps:
    # S = 1 twice, MaVo x = -1 - 1, Avg x = -1/3 - 1/3.
    # Rules out the momentum updated before the sign (step 2 signs (-, -, -): MaVo x = 0,
    # Avg x = 2/3) and one momentum on the mean gradient (mean g2 = -0.2233 flips step 2).
    steps = [[[1.0], [1.0], [-1.0]], [[-0.085], [-0.085], [-0.5]]]
    xs = _run("dlion", [0.0], steps, 3, aggregate=aggregate, lr=1.0, weight_decay=0.0)
    assert xs[1][0] == pytest.approx(x2, abs=1e-15)


def test_sgd_nesterov_matches_formula():
    g = [[1.0, -2.0]], [[0.5, 0.5]]
    xs = _run("gsgd", [0.0, 0.0], g, lr=0.1, momentum=0.5, nesterov=True)
    # buf1 = g1; update = g1 + 0.5*buf1 = 1.5*g1 ; buf2 = 0.5*g1 + g2; update = g2 + 0.5*buf2
    x1 = [-0.15, 0.3]
    buf2 = [0.5 * 1.0 + 0.5, 0.5 * -2.0 + 0.5]
    x2 = [x1[k] - 0.1 * ([0.5, 0.5][k] + 0.5 * buf2[k]) for k in range(2)]
    assert xs[0] == pytest.approx(x1, abs=1e-12)
    assert xs[1] == pytest.approx(x2, abs=1e-12)


@pytest.mark.parametrize("aggregate", ["mavo", "avg"])
def test_dlion_one_worker_is_lion_bit_for_bit(aggregate):
    common = dict(objective={"name": "logistic", "samples": 512, "features": 15},
                  workers=1, batch_size=8, steps=40, seed=3)
    lion = experiments.simulate(method={"name": "lion", "lr": 0.01}, **common)
    dlion = experiments.simulate(method={"name": "dlion", "aggregate": aggregate, "lr": 0.01},
                                 **common)
    assert lion.params.dtype == np.float32
    assert np.array_equal(lion.params, dlion.params)
    assert np.array_equal(lion.history["train_loss"], dlion.history["train_loss"])


def test_identical_gradients_collapse_mavo_avg_and_glion():
    # noise-free quadratic: every worker computes the same gradient
    common = dict(objective={"name": "quadratic", "dim": 64, "noise": 0.0}, workers=4,
                  steps=30, seed=1)
    runs = [experiments.simulate(method=m, **common) for m in (
        {"name": "dlion", "aggregate": "mavo"}, {"name": "dlion", "aggregate": "avg"},
        {"name": "glion"})]
    assert np.array_equal(runs[0].params, runs[1].params)
    assert np.array_equal(runs[0].params, runs[2].params)
    assert not np.array_equal(runs[0].params, experiments.simulate(
        method={"name": "gadamw"}, **common).params)


def test_mavo_tie_rules_on_an_even_split():
    # two workers that disagree everywhere: S = 0 on every coordinate
    g = [[[1.0, -1.0, 2.0], [-1.0, 1.0, -2.0]]]
    x0 = [0.0, 0.0, 0.0]
    assert _run("dlion", x0, g, 2, tie="zero", lr=1.0, weight_decay=0.0)[0].tolist() == [0, 0, 0]
    assert _run("dlion", x0, g, 2, tie="plus", lr=1.0, weight_decay=0.0)[0].tolist() == [-1, -1, -1]
    assert _run("dlion", x0, g, 2, tie="minus", lr=1.0, weight_decay=0.0)[0].tolist() == [1, 1, 1]
    randomised = _run("dlion", [0.0] * 4000, [[[1.0] * 4000, [-1.0] * 4000]], 2, lr=1.0,
                      weight_decay=0.0)[0]
    assert set(np.unique(randomised)) == {-1.0, 1.0}
    assert abs(randomised.mean()) < 0.05  # unbiased: as many up as down


def test_avg_reply_is_the_mean_sign():
    # three workers, signs (+,+,-) on coordinate 0 and (-,-,-) on coordinate 1
    g = [[[1.0, -1.0], [2.0, -3.0], [-1.0, -0.5]]]
    x = _run("dlion", [0.0, 0.0], g, 3, aggregate="avg", lr=1.0, weight_decay=0.0)[0]
    assert x == pytest.approx([-1 / 3, 1.0])


def test_worker_zero_sign_rules():
    g = [[[0.0, 1.0]]]
    assert _run("dlion", [0.0, 0.0], g, 1, zero_sign="plus", lr=1.0, weight_decay=0.0)[0][0] == -1
    assert _run("dlion", [0.0, 0.0], g, 1, zero_sign="minus", lr=1.0, weight_decay=0.0)[0][0] == 1
    assert _run("dlion", [0.0, 0.0], g, 1, zero_sign="zero", tie="zero", lr=1.0,
                weight_decay=0.0)[0][0] == 0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 40), lr=st.floats(1e-3, 1.0),
       lr_wd=st.floats(1e-3, 1.0), scale=st.floats(0.0, 50.0), seed=st.integers(0, 2**16),
       aggregate=st.sampled_from(["mavo", "avg"]), steps=st.integers(1, 25))
def test_weight_decay_box_is_reached_geometrically_and_never_left(n, d, lr, lr_wd, scale, seed,
                                                                  aggregate, steps):
    wd = lr_wd / lr
    rng = np.random.default_rng(seed)
    x0 = rng.normal(0, scale / wd + 1e-9, d)
    grads = [rng.normal(0, 10.0 ** rng.integers(-3, 4), (n, d)) for _ in range(steps)]
    xs = _run("dlion", x0, grads, n, seed=seed, aggregate=aggregate, lr=lr, weight_decay=wd)

    def outside(x):
        return max(0.0, float(np.max(np.abs(wd * x))) - 1.0)

    d0 = outside(x0)
    for t, x in enumerate(xs, start=1):
        assert outside(x) <= (1 - lr * wd) ** t * d0 + 1e-9


def test_schedules():
    assert learning_rates(0.1, 3).tolist() == [0.1, 0.1, 0.1]
    assert learning_rates(1.0, 6, "warmup", warmup_steps=4).tolist() == [0.25, 0.5, 0.75, 1, 1, 1]
    cos = learning_rates(1.0, 12, "cosine", warmup_steps=2, min_lr_ratio=0.1)
    assert cos[:2].tolist() == [0.5, 1.0]
    assert cos[2] == pytest.approx(1.0)  # decay over steps 2..11: progress (t - 2) / 9
    assert cos[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 9)))
    assert cos[-1] == pytest.approx(0.1)
    assert np.all(np.diff(cos[2:]) < 0)
    assert learning_rates(1.0, 10, "cosine", 0, 0.1)[-1] == pytest.approx(0.1)


def test_avg_with_a_ternary_wire_sends_the_sum_of_ternaries():
    # sign(0) = 0 on the wire: worker 0 sends 0 on coordinate 0, so S = 0 + 1 = 1 (odd, with
    # N = 2), sent at ceil(log2(5)) = 3 bits; the step is S / N = 1/2
    g = [[[0.0, 1.0], [1.0, 1.0]]]
    x = _run("dlion", [0.0, 0.0], g, 2, aggregate="avg", zero_sign="zero", lr=1.0,
             weight_decay=0.0)[0]
    assert x == pytest.approx([-0.5, -1.0])
