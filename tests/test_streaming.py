"""Streaming DiLoCo (sim.methods.diloco with fragments, overlap_steps, mixing): the staggered
fragment schedule and merge against a reference written from the paper's algorithm, the
fragments' message sizes and peak, and the all-reduce run behind the inner steps."""
import numpy as np
import pytest

from experiments.run import simulate
from experiments.spec import SpecError
from models.synthetic import Quadratic

from bowls import Bowls


def _run(objective, steps, workers=3, network=None, **method):
    return simulate(objective=objective, method={"name": "diloco", **method}, workers=workers,
                    steps=steps, dtype="float64", batch_size=1, eval_every=0,
                    network=network or {})


def _streaming_reference(obj, n, h, steps, p, tau, alpha, lr=0.05, b1=0.9, b2=0.99, eps=1e-8,
                         wd=0.01, outer_lr=0.7, mu=0.9):
    """Streaming DiLoCo written out: inner AdamW on every worker; fragment q (contiguous, the
    floor edges q*d/p) has grid steps (q+1)*h/p + j*h; tau steps before one, the float32 mean
    of the workers' float32 outer gradients leaves; on the grid step (after its inner step) the
    outer Nesterov step moves the global fragment and each worker mixes alpha of its own."""
    d = obj.dim
    theta = obj.init(None)
    local = np.repeat(theta[None], n, axis=0)
    m, v, buf = np.zeros((n, d)), np.zeros((n, d)), np.zeros(d)
    edges = [q * d // p for q in range(p + 1)]
    grid = [(q + 1) * h // p for q in range(p)]
    flying = {}
    for t in range(1, steps + 1):
        g = obj.grads(local, n, 1, None)[1]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        local = local - lr * (step + wd * local)
        for q in range(p):
            lo, hi = edges[q], edges[q + 1]
            if t + tau >= grid[q] and (t + tau - grid[q]) % h == 0:
                delta = (theta[lo:hi] - local[:, lo:hi]).astype(np.float32)
                flying[q] = delta.mean(axis=0, dtype=np.float32).astype(np.float64)
            if t >= grid[q] and (t - grid[q]) % h == 0:
                delta = flying.pop(q)
                buf[lo:hi] = mu * buf[lo:hi] + delta
                theta[lo:hi] = theta[lo:hi] - outer_lr * (delta + mu * buf[lo:hi])
                local[:, lo:hi] = alpha * local[:, lo:hi] + (1 - alpha) * theta[lo:hi]
    return theta


def test_one_fragment_without_overlap_is_diloco_exactly():
    obj = Bowls()
    plain = _run(obj, 12, h=4, lr=0.05, betas=[0.9, 0.99])
    keys = _run(obj, 12, h=4, lr=0.05, betas=[0.9, 0.99], fragments=1, overlap_steps=0)
    np.testing.assert_array_equal(keys.params, plain.params)
    want = _streaming_reference(obj, 3, 4, 12, 1, 0, 0.0)
    np.testing.assert_allclose(plain.params, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("fragments,tau,mixing,dim", [
    (2, 0, None, 16), (4, 0, 0.5, 16), (2, 1, 0.5, 16), (4, 1, 0.5, 16), (4, 1, None, 18),
    (1, 2, 0.5, 16)])
def test_fragments_overlap_and_mixing_follow_the_papers_algorithm(fragments, tau, mixing, dim):
    obj, h, steps = Bowls(dim=dim), 8, 5 * 8
    keys = {} if mixing is None else {"mixing": mixing}
    got = _run(obj, steps, h=h, lr=0.05, betas=[0.9, 0.99], fragments=fragments,
               overlap_steps=tau, network={"collective": "ring"}, **keys)
    alpha = (0.5 if tau else 0.0) if mixing is None else mixing  # the default: 0.5 with overlap
    want = _streaming_reference(obj, 3, h, steps, fragments, tau, alpha)
    np.testing.assert_allclose(got.params, want, rtol=1e-6, atol=1e-9)
    plain = _streaming_reference(obj, 3, h, steps, 1, 0, 0.0)
    assert not np.allclose(want, plain, rtol=1e-3)  # the schedule changed the numerics


def test_outer_dlion_votes_fragment_by_fragment():
    obj, h, n = Bowls(dim=17), 4, 3  # fragments of 8 and 9 values: the first travels padded
    got = _run(obj, 3 * h, h=h, inner="sgd", weight_decay=0.0, lr=0.1, outer="dlion",
               outer_lr=0.05, outer_betas=[0.5, 0.9], zero_sign="plus", tie="plus", fragments=2)
    theta, m = obj.init(None), np.zeros((n, obj.dim))
    local = np.repeat(theta[None], n, axis=0)
    for t in range(1, 3 * h + 1):
        local = local - 0.1 * obj.grads(local, n, 1, None)[1]
        if t % (h // 2) == 0:
            part = slice(0, 8) if (t // (h // 2)) % 2 else slice(8, 17)
            delta = theta[part] - local[:, part]
            signs = np.sign(0.5 * m[:, part] + 0.5 * delta)
            m[:, part] = 0.9 * m[:, part] + 0.1 * delta
            theta[part] = theta[part] - 0.05 * np.sign(signs.sum(axis=0))
            local[:, part] = theta[part]
    np.testing.assert_allclose(got.params, theta, rtol=1e-12)
    assert got.summary["collective"] == "ps"  # auto: no shard owners sized for the whole model


@pytest.mark.parametrize("bits", [32, 4])
@pytest.mark.parametrize("collective", ["ring", "ps"])
def test_a_sync_step_sends_one_fragment(bits, collective):
    d, h, p = 128, 8, 4
    method = {"name": "diloco", "h": h, "outer_bits": bits, "outer_chunk": 32}
    runs = {k: simulate(objective=Quadratic(dim=d), workers=4, steps=3 * h,
                        method={**method, "fragments": k}, network={"collective": collective})
            for k in (1, p)}
    # a fragment of d/p = 32 values: float32, or 4-bit levels plus one chunk's lo and scale
    per_message = 32 * d // p if bits == 32 else bits * d // p + 64
    up = np.diff(runs[p].history["bits_up"], prepend=0.0)
    down = np.diff(runs[p].history["bits_down"], prepend=0.0)
    syncs = np.arange(1, 3 * h + 1) % (h // p) == 0
    assert (up[syncs] == per_message).all() and (down[syncs] == per_message).all()
    assert (up[~syncs] == 0).all() and (down[~syncs] == 0).all()
    got = runs[p].summary["bits_per_param_per_step"]
    assert got["up"] == pytest.approx(p * per_message / d / h)
    assert got == runs[1].summary["bits_per_param_per_step"]  # the same bits, spread out
    peak, plain = runs[p].summary["peak_bits_per_param"], runs[1].summary["peak_bits_per_param"]
    assert peak == {"up": per_message / d, "down": per_message / d, "total": 2 * per_message / d}
    assert {k: v / p for k, v in plain.items()} == peak


def test_peak_of_a_per_step_method_is_its_message():
    r = simulate(objective=Quadratic(dim=64), workers=4, steps=3, method="dlion")
    assert r.summary["peak_bits_per_param"] == {"up": 1.0, "down": 1.0, "total": 2.0}


def _timed(tau, steps=8):
    return simulate(objective=Quadratic(dim=64), workers=4, steps=steps,
                    method={"name": "diloco", "h": 4, "fragments": 2, "overlap_steps": tau},
                    compute={"step_time": "10ms"},
                    network={"collective": "ring", "chunk": 0, "bandwidth": "100kbps",
                             "latency": 0, "header": 0, "transport": "fluid"})


def test_the_all_reduce_runs_behind_the_next_inner_steps():
    c, n, bits, rate = 0.01, 4, 32 * 64 // 2, 1e5
    ring = 2 * (n - 1) * (bits / n) / rate  # textbook ring all-reduce of one fragment: 15.36 ms
    assert ring > c  # it outlasts an inner step
    behind, blocking = _timed(1), _timed(0)
    # tau = 1: steps 1, 3, 5, 7 send, and 2, 4, 6, 8 wait for the all-reduce: c + ring a pair
    want = np.cumsum([c, ring] * 4)
    np.testing.assert_allclose(behind.history["time_s"], want, rtol=1e-9)
    # tau = 0: steps 2, 4, 6, 8 compute, then all-reduce: 2c + ring a pair
    np.testing.assert_allclose(blocking.history["time_s"], np.cumsum([c, c + ring] * 4),
                               rtol=1e-9)
    assert behind.summary["sim_time_s"] == pytest.approx(4 * (c + ring))
    assert behind.summary["sim_time_s"] < blocking.summary["sim_time_s"]
    # the sending step exposes nothing; the landing step waits what compute did not hide
    exposed = behind.history["exposed_comm_s"]
    np.testing.assert_allclose(exposed, [0.0, ring - c] * 4, atol=1e-12)
    np.testing.assert_allclose(behind.history["comm_up_s"][::2], ring, rtol=1e-9)


def test_a_fast_all_reduce_hides_entirely():
    r = simulate(objective=Quadratic(dim=64), workers=4, steps=8,
                 method={"name": "diloco", "h": 4, "fragments": 2, "overlap_steps": 1},
                 compute={"step_time": "10ms"}, network={"collective": "ring"})
    np.testing.assert_allclose(r.history["time_s"], 0.01 * np.arange(1, 9), rtol=1e-9)
    assert r.summary["collective"] == "ring"


def test_overlap_on_auto_chooses_a_peer_all_reduce():
    r = simulate(objective=Quadratic(dim=64), workers=4, steps=4,
                 method={"name": "diloco", "h": 4, "fragments": 2, "overlap_steps": 1})
    assert r.summary["collective"] in ("ring", "tree", "halving_doubling", "hierarchical")


@pytest.mark.parametrize("method,network,message", [
    ({"h": 4, "fragments": 3}, {}, "method.fragments = 3 with h = 4"),
    ({"h": 4, "fragments": 8}, {}, "method.fragments = 8 with h = 4"),
    ({"h": 4, "fragments": 0}, {}, "method.fragments = 0"),
    ({"h": 4, "fragments": 2, "overlap_steps": 2}, {}, "method.overlap_steps = 2"),
    ({"h": 4, "overlap_steps": 4}, {}, "method.overlap_steps = 4"),
    ({"h": 4, "overlap_steps": 1}, {"collective": "ps"}, "network.collective = 'ps'"),
    ({"h": 4, "overlap_steps": 1}, {"collective": "alltoall"},
     "network.collective = 'alltoall'"),
    ({"h": 4, "overlap_steps": 1, "outer": "dlion"}, {},
     "method.overlap_steps = 1 with outer = 'dlion'"),
    ({"h": 4, "fragments": 2}, {"collective": "alltoall"}, "network.collective = 'alltoall'"),
    ({"h": 4, "fragments": 2, "outer": "dlion"}, {"collective": "hierarchical"},
     "network.collective = 'hierarchical'"),
    ({"h": 4, "mixing": 1.5}, {}, "method.mixing = 1.5"),
    ({"h": 4, "mixing": 1.0}, {}, "method.mixing = 1.0"),
])
def test_refusals_are_one_line(method, network, message):
    with pytest.raises(SpecError) as err:
        simulate(objective="quadratic", workers=4, steps=2,
                 method={"name": "diloco", **method}, network=network)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_more_fragments_than_parameters_is_refused():
    with pytest.raises(SpecError, match=r"method.fragments = 4 with 3 parameters") as err:
        _run(Bowls(dim=3), 4, h=4, fragments=4)
    assert "\n" not in str(err.value)
