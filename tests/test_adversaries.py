"""Byzantine workers and robust aggregation, against hand computations and small independent
implementations written here from the papers' definitions."""
import itertools

import numpy as np
import pytest

import experiments
from sim.adversaries import Adversaries, choose
from sim.methods.robust import combine, krum_scores

# three workers with fixed gradients (each row: one worker, every step)
G = np.array([[1.0, 1.0, -1.0, -1.0],
              [1.0, -1.0, 1.0, -1.0],
              [-1.0, -1.0, -1.0, 1.0]])


class Fixed:
    """Worker i's gradient is rows[i] at every step (a linear loss, never used)."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, dtype=np.float64)
        self.dim = self.rows.shape[1]

    def init(self, rng):
        return np.zeros(self.dim)

    def grads(self, params, n_workers, batch_size, rng):
        return np.zeros(n_workers), self.rows[:n_workers].copy()

    def evaluate(self, params):
        return {"loss": float(np.sum(params))}


def _run(method, rows=G, steps=1, **faults):
    return experiments.simulate(objective=Fixed(rows), workers=len(rows), steps=steps,
                                dtype="float64", method={"lr": 1.0, "weight_decay": 0.0,
                                                         **method},
                                faults=faults or None)


def test_one_flipping_worker_in_a_majority_vote_by_hand():
    # first step: momentum 0, so each worker sends sign(g); worker 2 sends -sign(g_2). The
    # vote S = s0 + s1 - s2 = [3, 1, 1, -3], MaVo replies [1, 1, 1, -1] and x = -reply
    result = _run({"name": "dlion", "aggregate": "mavo", "tie": "zero"}, byzantine=[2])
    assert result.params.tolist() == [-1.0, -1.0, -1.0, 1.0]
    honest = _run({"name": "dlion", "aggregate": "mavo", "tie": "zero"})
    assert honest.params.tolist() == [-1.0, 1.0, 1.0, 1.0]  # S = [1, -1, -1, -1]
    assert result.summary["adversaries"] == [2]
    assert result.history["adversarial"].tolist() == [1]


def test_flipping_shifts_the_avg_sum_by_twice_the_honest_sign_every_step():
    # with Avg the step is S/N, so S = -N * (x_t+1 - x_t) / lr; over several steps (the
    # momentum then matters) the adversary's vote is always the negation of its honest one
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3, 16))
    def sums(result_history_x):
        xs = np.vstack([np.zeros(16), result_history_x])
        return -3 * np.diff(xs, axis=0)

    def trajectory(**faults):
        xs = []
        for steps in range(1, 5):
            xs.append(_run({"name": "dlion", "aggregate": "avg"}, rows, steps, **faults).params)
        return sums(np.array(xs))

    honest, flipped = trajectory(), trajectory(byzantine=[2])
    lone = []  # worker 2's own signs: Lion on its gradient alone (a run of one worker)
    for steps in range(1, 5):
        lone.append(_run({"name": "dlion", "aggregate": "avg"}, rows[2:], steps).params)
    sign_2 = -np.diff(np.vstack([np.zeros(16), np.array(lone)]), axis=0)
    assert np.array_equal(np.abs(sign_2), np.ones_like(sign_2))
    assert flipped == pytest.approx(honest - 2 * sign_2, abs=1e-12)


def _read_messages(name):
    """What each worker's own message carries, as floats (n, ...), read with its codec (1-bit
    Adam: its compressed momentum, not the chunk it serves)."""
    from sim.methods.onebit_adam import _decompress
    from sim.methods.signsgd import _scaled_sign_decode
    from sim.wire.codecs import DenseCodec, SignCodec
    from sim.wire.sparse import SparseCodec

    f32 = DenseCodec("float32")
    if name == "efsignsgd":
        return lambda p, state: _scaled_sign_decode(p, state["segments"])
    if name == "onebit_adam":
        return lambda p, state: (_decompress(p[:, :state["sizes"][0]], state["padded"])
                                 if state["compressed"] else f32.decode(p, p.shape[1] // 4))
    if name == "dlion":
        return lambda p, state: SignCodec().decode(p, 24)
    if name == "dgc":
        return lambda p, state: SparseCodec(24, "int32").decode(p, 3)
    return lambda p, state: f32.decode(p, p.shape[1] // 4)  # gsgd, powersgd: float32


def _run_with_a_flipper(name, hp, collective, watch, shapes=None, steps=4):
    """Three workers, worker 1 flipping; workers 0 and 1 see the same gradients every step.
    ``watch(state before, payloads, state after)`` sees every encode."""
    from dataclasses import replace

    from sim import methods
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.step import train_step

    method = methods.get(name)
    hp = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in method.defaults.items()},
          "lr": 0.05, **hp}

    def encode(state, grads, hp, rng, **kw):
        before = {k: v.copy() for k, v in state.items() if isinstance(v, np.ndarray)}
        payloads, state = method.encode(state, grads, hp, rng, **kw)
        watch(before, payloads, state)
        return payloads, state

    cluster = Cluster(3, {"bandwidth": 1e9, "latency": 1e-5, "transport": "fluid"},
                      ComputeModel(step_time=0.01), collective=collective)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(24)
    state = method.init(x, 3, hp, shapes)
    flip = Adversaries(np.array([False, True, False]))
    for t in range(steps):
        grads = rng.standard_normal((3, 24))
        grads[1] = grads[0]
        out = train_step(replace(method, encode=encode), cluster, x, state, grads, hp,
                         hp["lr"], method_rng=rng, compute_rng=rng, batch_size=1, n_params=24,
                         step=t, adversaries=flip, attack_rng=rng)
        x, state = out.x, out.state


@pytest.mark.parametrize("name,hp,collective", [
    ("efsignsgd", {"momentum": 0.5, "weight_decay": 0.01}, "ps"),
    ("powersgd", {"rank": 1}, "ps"),
    ("onebit_adam", {"freeze_step": 2, "weight_decay": 0.01}, "ring"),
    ("dlion", {}, "ps"), ("gsgd", {}, "ps"),
    ("dgc", {"selection": "exact", "density": 0.25, "sparsity_warmup": 0}, "ps"),
])
def test_a_flipping_worker_sends_exactly_the_negated_honest_message(name, hp, collective):
    # the docs' rule: every message of worker 1 is the one worker 0 (the same gradients)
    # sends, negated, at every step; EF-signSGD's carries the decay of x, PowerSGD's memory
    # subtracts the aggregate, 1-bit Adam's carries the shared momentum
    read, seen = _read_messages(name), []
    _run_with_a_flipper(name, hp, collective, lambda _, p, state: seen.append(read(p, state)),
                        shapes=[("w", (4, 4)), ("b", (8,))])
    assert len(seen) == 4
    for step, sent in enumerate(seen, start=1):
        assert np.array_equal(sent[1], -sent[0]), f"step {step}"
        assert not np.array_equal(sent[2], -sent[0])


def test_powersgd_projects_on_the_mean_of_the_p_its_adversaries_sent():
    # round 1 reduces the P the workers sent, an adversary's negated P included: rank 1, each
    # worker's Q_i = M_i^T u with u = P_mean / ||P_mean|| (up to a sign shared by all workers)
    qs = []

    def watch(_, p, state):
        values = p.view("<f4").astype(np.float64)  # [8 dense entries | P (4) | Q (4)]
        p_mean = values[:, 8:12].mean(axis=0)
        u = p_mean / np.linalg.norm(p_mean)
        m = state["compensated"][:, :16].reshape(3, 4, 4)
        want = np.einsum("nab,a->nb", m, u) * np.array([1, -1, 1])[:, None]  # 1 is negated
        sign = np.sign(values[0, 12:] @ want[0])
        qs.append((values[:, 12:], sign * want))

    _run_with_a_flipper("powersgd", {"rank": 1}, "ps", watch,
                        shapes=[("w", (4, 4)), ("b", (8,))])
    for got, want in qs:
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_a_flipping_chunk_server_sends_the_negation_of_its_honest_chunk():
    # 1-bit Adam's compressed phase, from its docstring: worker j serves chunk j of the padded
    # vector (72 = 3 chunks of 24 for 24 parameters on 3 workers), z_j = e_j + the mean over
    # the workers of what they sent for chunk j, and honestly sends ||z_j|| / sqrt(24) *
    # sign(z_j) (sign(0) = +1). Worker 1 sends the negation of its chunk's; the others theirs
    from sim.methods.onebit_adam import _decompress

    checked = []

    def watch(before, p, state):
        if not state["compressed"]:
            return
        w = state["sizes"][0]
        sent = _decompress(p[:, :w], state["padded"])
        served = _decompress(p[:, w:], state["served"])
        z = before["server_error"] + sent.mean(axis=0)[state["chunks"]]
        honest = np.linalg.norm(z, axis=1, keepdims=True) / np.sqrt(24) * np.where(z >= 0, 1, -1)
        assert served[[0, 2]] == pytest.approx(honest[[0, 2]], rel=1e-6)
        assert served[1] == pytest.approx(-honest[1], rel=1e-6)
        checked.append(True)

    _run_with_a_flipper("onebit_adam", {"freeze_step": 2}, "ring", watch)
    assert len(checked) == 2


def test_scale_breaks_the_mean_by_hand():
    # G-SGD without momentum steps by the mean: (g0 + g1 - 10 g2) / 3
    result = _run({"name": "gsgd", "momentum": 0.0}, attack="scale", byzantine=[2])
    assert result.params == pytest.approx(-(G[0] + G[1] - 10 * G[2]) / 3)
    lam = _run({"name": "gsgd", "momentum": 0.0}, attack="scale", scale_factor=100.0,
               byzantine=[2])
    assert lam.params == pytest.approx(-(G[0] + G[1] - 100 * G[2]) / 3)


def test_colluding_adversaries_send_one_vector_against_the_honest_mean():
    rows = np.random.default_rng(1).standard_normal((5, 8))
    result = _run({"name": "gsgd", "momentum": 0.0}, rows, byzantine=[3, 4], collude=True)
    honest_mean = rows[:3].mean(axis=0)
    expected = (rows[:3].sum(axis=0) - 2 * honest_mean) / 5
    assert result.params == pytest.approx(-expected, rel=1e-6, abs=1e-8)  # a float32 wire
    # without collusion each flips its own gradient
    alone = _run({"name": "gsgd", "momentum": 0.0}, rows, byzantine=[3, 4])
    assert alone.params == pytest.approx(-(rows[:3].sum(axis=0) - rows[3] - rows[4]) / 5)


def test_random_adversaries_stay_inside_their_wire_and_carry_no_signal():
    d = 20_000
    rows = np.tile(np.linspace(0.5, 1.5, d), (3, 1))  # every worker pushes x down everywhere
    signs = _run({"name": "dlion", "aggregate": "avg"}, rows, attack="random", byzantine=[2])
    s = -3 * signs.params  # S = 1 + 1 + the adversary's sign
    adversary = s - 2
    assert set(np.unique(adversary)) == {-1.0, 1.0}
    assert abs(adversary.mean()) < 0.03  # a fair coin, not the honest +1
    assert signs.summary["bits_per_param_per_step"]["up"] == pytest.approx(1.0, rel=1e-3)
    # for a full-precision method: Gaussian noise of the honest gradient's RMS
    noise = _run({"name": "gsgd", "momentum": 0.0}, rows, attack="random", byzantine=[2])
    sent = -3 * noise.params - rows[0] - rows[1]
    rms = np.sqrt(np.mean(rows[2] ** 2))
    assert np.std(sent) == pytest.approx(rms, rel=0.03)
    assert abs(np.mean(sent)) < 0.05 * rms


def test_each_random_adversary_has_its_own_gradients_scale():
    # docs/faults.md: "Gaussian noise with the root-mean-square of its own gradient"; two
    # adversaries whose gradients differ in scale by 100 send noise that differs as much
    d = 50_000
    rng = np.random.default_rng(3)
    grads = np.stack([np.ones(d), rng.standard_normal(d), 100 * rng.standard_normal(d)])
    mask = np.array([False, True, True])
    sent = Adversaries(mask, "random").corrupt(grads, np.random.default_rng(4))
    assert np.array_equal(sent[0], grads[0])
    for w in (1, 2):
        rms = np.sqrt(np.mean(grads[w] ** 2))
        assert np.std(sent[w]) == pytest.approx(rms, rel=0.02)
        assert abs(np.corrcoef(sent[w], grads[w])[0, 1]) < 0.02  # no signal in it


def test_identities_are_drawn_from_the_seed_and_fixed():
    common = dict(objective={"name": "quadratic", "dim": 8}, workers=9, steps=3,
                  method="dlion", faults={"byzantine": 3})
    a = experiments.simulate(seed=5, **common).summary["adversaries"]
    b = experiments.simulate(seed=5, **common).summary["adversaries"]
    c = experiments.simulate(seed=6, **common).summary["adversaries"]
    assert a == b and len(a) == 3 and len(set(a)) == 3 and a != c
    assert choose(0.5, 9, np.random.default_rng(0)).sum() == 4  # a fraction, rounded down


@pytest.mark.parametrize("n,fraction,count", [(9, 0.5, 4), (5, 0.7, 3), (2, 0.9, 1),
                                                # 0.29 * 100 is 28.999999999999996
                                                (100, 0.29, 29), (90, 0.7, 63)])
def test_a_fraction_of_the_workers_is_rounded_down(n, fraction, count):
    # docs/faults.md: byzantine is "a count, a fraction of N (rounded down), or a list of ids"
    result = experiments.simulate(objective={"name": "quadratic", "dim": 8}, workers=n,
                                  steps=1, method="dlion", faults={"byzantine": fraction})
    chosen = result.summary["adversaries"]
    assert len(chosen) == len(set(chosen)) == count
    assert result.history["adversarial"].tolist() == [count]


def test_the_adversaries_drawn_are_distinct_workers():
    for seed in range(20):
        assert choose(9, 10, np.random.default_rng(seed)).sum() == 9
        assert choose(0.75, 8, np.random.default_rng(seed)).sum() == 6


def test_the_trimmed_mean_cuts_a_fraction_rounded_down():
    # 100 messages whose values are the squares 0, 1, ..., 99^2 (shuffled): cutting 29 from each
    # end (0.29 * 100, rounded down as floor(trim * M)) leaves the squares of 29 to 70
    values = (np.random.default_rng(0).permutation(100).astype(np.float32) ** 2)[:, None]
    kept = np.arange(29, 71, dtype=np.float64) ** 2
    got = combine(values, {"aggregate": "trimmed_mean", "trim": 0.29})
    assert got[0] == pytest.approx(kept.mean(), rel=1e-6)


def test_no_adversary_changes_nothing():
    common = dict(objective={"name": "logistic", "samples": 256, "features": 15}, workers=4,
                  steps=10, method="dlion")
    plain = experiments.simulate(**common)
    none = experiments.simulate(faults={"byzantine": 0}, **common)
    assert np.array_equal(plain.params, none.params)
    assert none.summary["adversaries"] == []
    grads = np.ones((3, 4))
    assert Adversaries(np.zeros(3, bool)).corrupt(grads, None) is grads


# --- robust aggregation against independent implementations -----------------------------------

V = np.array([[1.0, -2.0, 0.5], [1.5, 8.0, 0.4], [0.9, -1.0, 0.6], [1.1, -3.0, 50.0],
              [1.2, -2.5, 0.5], [-40.0, -2.2, 0.45]], dtype=np.float32)


def _median(values):
    out = []
    for column in values.T:
        s = sorted(column)
        m = len(s)
        out.append(s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2)
    return np.array(out)


def _trimmed(values, trim):
    k = int(trim * len(values))
    return np.array([np.mean(sorted(c)[k:len(c) - k]) for c in values.T])


def _krum_scores(values, f):
    n = len(values)
    scores = []
    for i in range(n):
        distances = sorted(float(np.sum((values[i].astype(float) - values[j]) ** 2))
                           for j in range(n) if j != i)
        scores.append(sum(distances[:n - f - 2]))
    return scores


def _multi_krum(values, f, m):
    scores = _krum_scores(values, f)
    best = sorted(range(len(values)), key=lambda i: (scores[i], i))[:m]
    return np.mean([values[i] for i in best], axis=0)


def test_median_trimmed_mean_and_krum_against_their_definitions():
    assert combine(V, {"aggregate": "median"}) == pytest.approx(_median(V), rel=1e-6)
    for trim in (0.0, 0.1, 0.2, 0.49):
        assert combine(V, {"aggregate": "trimmed_mean", "trim": trim}) == pytest.approx(
            _trimmed(V, trim), rel=1e-6)
    for f in (0, 1, 2):
        assert krum_scores(V, f) == pytest.approx(_krum_scores(V, f), rel=1e-9)
    for f, m in itertools.product((0, 1), (1, 3, 4)):
        assert combine(V, {"aggregate": "krum", "krum_f": f, "krum_m": m}) == pytest.approx(
            _multi_krum(V, f, m), rel=1e-6)
    # the defaults: trim 0.1, f = 1 and m = M - f
    assert combine(V, {"aggregate": "krum"}) == pytest.approx(_multi_krum(V, 1, 5), rel=1e-6)
    # the outliers (rows 3 and 5) do not move the robust rules the way they move the mean
    assert abs(combine(V, {"aggregate": "median"})[0] - 1.1) < 0.2
    assert combine(V, {"aggregate": "mean"})[0] < -5


def test_krum_with_too_few_messages_falls_back_to_the_median():
    few = V[:4]  # M = 4 is not more than 2f + 2 with f = 1
    assert combine(few, {"aggregate": "krum", "krum_f": 1}) == pytest.approx(_median(few))


def test_robust_rules_hold_off_one_scaled_adversary():
    rows = np.random.default_rng(2).standard_normal((7, 32)) + 1.0
    honest = -rows[:6].mean(axis=0)
    for rule, extra in (("median", {}), ("trimmed_mean", {"trim": 0.2}), ("krum", {})):
        robust = _run({"name": "gsgd", "momentum": 0.0, "aggregate": rule, **extra}, rows,
                      attack="scale", byzantine=[6])
        mean = _run({"name": "gsgd", "momentum": 0.0}, rows, attack="scale", byzantine=[6])
        assert np.linalg.norm(robust.params - honest) < 0.5 * np.linalg.norm(mean.params - honest)


@pytest.mark.parametrize("setting,words", [
    (["faults.byzantine=4"], "at least one must be honest"),
    (["faults.byzantine=[0, 1, 2, 3]"], "at least one must be honest"),
    (["faults.byzantine=[7]"], "worker 7 does not exist"),
    (["faults.byzantine=1.0"], "out of range"),
    (["faults.byzantine=-0.5"], "out of range"),
    (["faults.byzantine=-1"], "out of range"),
    (["faults.byzantine=1", "faults.attack=\"fllip\""], "did you mean 'flip'"),
    (["faults.byzantine=1", "faults.attack=\"scale\""], "only a full-precision gradient"),
    (["faults.attack=\"flip\"", "faults.scale_factor=5"], "needs faults.attack = 'scale'"),
    (["faults.collude=true"], "needs adversaries"),
    (["method.name=\"gsgd\"", "method.aggregate=\"krum\""], "Multi-Krum needs more than"),
    (["method.name=\"gsgd\"", "method.aggregate=\"krum\"", "method.krum_f=0",
      "method.krum_m=5"], "more than cluster.workers"),
    (["method.name=\"gsgd\"", "method.aggregate=\"trimmed_mean\"", "method.trim=0.5"],
     "out of range"),
    (["method.name=\"gsgd\"", "method.trim=0.1"], "needs method.aggregate = 'trimmed_mean'"),
    (["method.name=\"gsgd\"", "method.aggregate=\"median\"", "network.collective=\"ring\""],
     "an all-reduce can only sum"),
    (["method.aggregate=\"median\""], "is not allowed"),  # D-Lion's rule: mavo or avg
])
def test_bad_adversary_settings_are_one_line_errors(refused, setting, words):
    err = refused(setting)
    assert words in err, err
