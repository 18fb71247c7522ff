"""Server policies: the simulated clock decides which messages the server aggregates."""
import numpy as np
import pytest

import experiments

# Three workers with fixed gradients: worker 2's signs disagree with the majority of workers 0
# and 1 on every coordinate where those two agree, so leaving worker 2 out changes the reply.
G = np.array([[1.0, 1.0, -1.0, -1.0],
              [1.0, -1.0, 1.0, -1.0],
              [-1.0, -1.0, -1.0, 1.0]])


class Fixed:
    """Every step, worker i's gradient is G[i] (loss: a linear function, never used)."""

    dim = 4

    def init(self, rng):
        return np.zeros(4)

    def grads(self, params, n_workers, batch_size, rng):
        return np.zeros(n_workers), G[:n_workers].copy()

    def evaluate(self, params):
        return {"loss": float(np.sum(params))}


@pytest.fixture
def slow_worker_2(tmp_path):
    """A step-time trace where worker 2 computes ten times slower than workers 0 and 1."""
    path = tmp_path / "steps.csv"
    path.write_text("w0,w1,w2\n0.01,0.01,0.1\n")
    return str(path)


def _one_step(trace, aggregate, server, tie="zero"):
    return experiments.simulate(
        objective=Fixed(), workers=3, steps=1, dtype="float64",
        method={"name": "dlion", "aggregate": aggregate, "tie": tie, "lr": 1.0,
                "weight_decay": 0.0},
        network={"collective": "ps", "bandwidth": "10Gbps", "latency": "10us"},
        compute={"distribution": "trace", "trace_file": trace}, server=server)


POLICIES_WITHOUT_2 = [{"policy": "deadline", "deadline": "50ms"},
                      {"policy": "first_k", "k": 2}, {"policy": "first_k", "k": 0.6}]


@pytest.mark.parametrize("server", POLICIES_WITHOUT_2)
def test_a_policy_that_excludes_the_slow_worker_votes_without_it(slow_worker_2, server):
    # first step: momentum 0, so each worker sends sign(g_i). Workers 0 and 1 sum to
    # S = [2, 0, 0, -2]: MaVo with the zero tie rule replies [1, 0, 0, -1], and x = -reply.
    result = _one_step(slow_worker_2, "mavo", server)
    assert result.params.tolist() == [-1.0, 0.0, 0.0, 1.0]
    assert result.history["aggregated"].tolist() == [2]
    assert result.history["abandoned"].tolist() == [1]


@pytest.mark.parametrize("server", POLICIES_WITHOUT_2)
def test_avg_divides_by_the_messages_that_arrived(slow_worker_2, server):
    # Avg replies S / 2 with S over workers 0 and 1 only: [1, 0, 0, -1]
    result = _one_step(slow_worker_2, "avg", server)
    assert result.params.tolist() == [-1.0, 0.0, 0.0, 1.0]


def test_waiting_for_all_counts_the_slow_worker(slow_worker_2):
    # all three: S = [1, -1, -1, -1]; MaVo replies its sign, Avg S / 3
    mavo = _one_step(slow_worker_2, "mavo", {"policy": "all"})
    assert mavo.params.tolist() == [-1.0, 1.0, 1.0, 1.0]
    avg = _one_step(slow_worker_2, "avg", {"policy": "all"})
    assert avg.params == pytest.approx([-1 / 3, 1 / 3, 1 / 3, 1 / 3], abs=1e-15)
    assert mavo.history["aggregated"].tolist() == [3]


def test_the_deadline_closes_the_step_on_time(slow_worker_2):
    # the step opens at 0 and closes at the 50 ms deadline; the reply (1 bit per parameter,
    # a 1-byte participation map and the latency of two links) lands shortly after
    result = _one_step(slow_worker_2, "mavo", {"policy": "deadline", "deadline": "50ms"})
    assert 0.05 < result.history["time_s"][0] < 0.05 + 1e-4
    waited = _one_step(slow_worker_2, "mavo", {"policy": "all"})
    assert 0.1 < waited.history["time_s"][0] < 0.1 + 1e-4
    first_two = _one_step(slow_worker_2, "mavo", {"policy": "first_k", "k": 2})
    assert 0.01 < first_two.history["time_s"][0] < 0.01 + 1e-4


def test_an_abandoned_worker_keeps_its_momentum(slow_worker_2):
    # worker 2 never finishes a step: its momentum row stays zero, so when the policy later
    # waits for it, it sends sign(g_2) as on a first step. Checked through the vote: with two
    # steps, first_k then all... here through the state directly.
    from sim import methods
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy
    from sim.step import train_step

    method = methods.get("dlion")
    hp = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in method.defaults.items()},
          "lr": 1.0, "weight_decay": 0.0}
    cluster = Cluster(3, {"bandwidth": 1e10, "latency": 1e-5},
                      ComputeModel(distribution="trace", trace=np.array([[0.01, 0.01, 0.1]])),
                      policy=Policy("first_k", k=2))
    x, state = np.zeros(4), method.init(np.zeros(4), 3, hp, None)
    rng = np.random.default_rng(0)
    for t in range(3):
        out = train_step(method, cluster, x, state, G.copy(), hp, 1.0, method_rng=rng,
                         compute_rng=rng, batch_size=1, n_params=4, step=t)
        x, state = out.x, out.state
    b2 = hp["betas"][1]
    m_fast = (1 - b2 ** 3) * G[:2]  # three EMA steps of a constant gradient from zero
    assert state["m"][:2] == pytest.approx(m_fast, rel=1e-12)
    assert state["m"][2].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_first_k_of_all_and_an_endless_deadline_aggregate_everything():
    common = dict(objective={"name": "logistic", "samples": 256, "features": 15}, workers=4,
                  steps=8, seed=2, method={"name": "gadamw"}, compute={"jitter": 0.5,
                                                                       "step_time": "10ms"},
                  network={"collective": "ps"})
    base = experiments.simulate(**common)
    for server in ({"policy": "first_k", "k": 4}, {"policy": "first_k", "k": 1.0},
                   {"policy": "deadline", "deadline": "1000s"}):
        other = experiments.simulate(server=server, **common)
        assert np.array_equal(other.params, base.params), server
        assert other.history["aggregated"].tolist() == [4] * 8
        # the same timing, except that the reply also carries the 4-bit participation map
        assert np.all(other.history["time_s"] >= base.history["time_s"])
        assert other.history["time_s"] == pytest.approx(base.history["time_s"], rel=1e-3)


def test_late_messages_are_discarded_but_their_senders_computed(tmp_path):
    # worker 3 finishes computing at 18 ms, before the 20 ms deadline, but its 3.2 Mbit
    # message needs 3.2 ms on its 1 Gb/s link: it arrives late, is counted as late and not
    # aggregated, and its worker is not counted as having given the step up
    trace = tmp_path / "steps.csv"
    trace.write_text("w0,w1,w2,w3\n0.005,0.005,0.005,0.018\n")
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 100_000}, workers=4, steps=1,
        method={"name": "gadamw"}, network={"collective": "ps", "bandwidth": "1Gbps", "latency": "10us"},
        compute={"distribution": "trace", "trace_file": str(trace)},
        server={"policy": "deadline", "deadline": "20ms"})
    h = result.history
    assert h["aggregated"].tolist() == [3]
    assert h["late"].tolist() == [1]
    assert h["abandoned"].tolist() == [0]
    assert result.summary["participation"]["late"] == 1


def test_a_worker_still_receiving_at_the_close_gives_the_step_up_and_replies_queue():
    # D-Lion on 1000 parameters: 1000-bit messages, 1008-bit replies (with the 1-byte
    # participation map); no latency, 10 ms steps, a 50 ms deadline. Worker 1's link carries
    # 10 kb/s: its first message arrives at 0.11 s, late. Each reply to it takes 0.1008 s, and
    # the server sends one at every close (0.05, 0.10, 0.15, 0.20 s): worker 1 still receives
    # the previous one at every later close, so it gives steps 2-4 up; each reply queues
    # behind the one in flight on its link, so reply k lands at 0.05 + k * 0.1008 s
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 1000}, workers=2, steps=4,
        method={"name": "dlion"}, compute={"step_time": "10ms"},
        network={"bandwidth": [1e9, 1e4], "latency": 0.0, "transport": "fluid",
                 "collective": "ps"},
        server={"policy": "deadline", "deadline": "50ms"})
    h = result.history
    assert h["time_s"] == pytest.approx([0.05 + k * 0.1008 for k in range(1, 5)], rel=1e-9)
    assert h["aggregated"].tolist() == [1, 1, 1, 1]
    assert h["late"].tolist() == [1, 0, 0, 0]
    assert h["abandoned"].tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize("setting,words", [
    (["server.policy=\"deadline\""], "needs server.deadline"),
    (["server.policy=\"deadline\"", "server.deadline=0"], "out of range"),
    (["server.policy=\"deadline\"", "server.deadline=-1"], "out of range"),
    (["server.policy=\"first_k\"", "server.k=0"], "out of range"),
    (["server.policy=\"first_k\"", "server.k=9"], "more than cluster.workers"),
    (["server.policy=\"first_k\"", "server.k=1.5"], "out of range"),
    (["server.policy=\"first_k\"", "server.k=2", "method.name=\"gadamw\"",
      "network.collective=\"ring\""], "cannot skip a rank"),
    (["server.policy=\"first_k\"", "server.k=2", "method.name=\"topk\"",
      "network.collective=\"allgather\""], "goes on without a rank"),
    (["server.k=2"], "needs server.policy = 'first_k' or 'fedbuff' (now 'all')"),
    (["server.policy=\"dedline\""], "did you mean 'deadline'"),
])
def test_bad_server_settings_are_one_line_errors(refused, setting, words):
    assert words in refused(setting)


# --- every method aggregates exactly the messages that arrived --------------------------------

def _train(name, grads, cluster, hp_overrides, shapes=None, steps=3):
    from sim import methods
    from sim.step import train_step

    method = methods.get(name)
    hp = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in method.defaults.items()},
          **hp_overrides}
    n, d = grads.shape
    x = np.linspace(-1.0, 1.0, d)
    state = method.init(x, n, hp, shapes)
    rng = np.random.default_rng(3)
    for t in range(steps):
        out = train_step(method, cluster, x, state, grads.copy(), hp, hp["lr"], method_rng=rng,
                         compute_rng=rng, batch_size=1, n_params=d, step=t)
        x, state = out.x, out.state
    return x, state


@pytest.mark.parametrize("name,hp", [
    ("gadamw", {}), ("gsgd", {}), ("glion", {}),
    ("dlion", {"aggregate": "mavo"}), ("dlion", {"aggregate": "avg"}),
    ("signum", {}), ("topk", {"density": 0.25}),
    ("graddrop", {"selection": "exact"}), ("dgc", {"selection": "exact", "density": 0.25}),
    ("randomk", {"density": 0.5}), ("efsignsgd", {}), ("powersgd", {"rank": 1}),
    ("terngrad", {"clip_factor": 0.0}),
])
def test_two_of_three_is_a_run_of_those_two(name, hp):
    # worker 2 computes ten times slower; the first two messages close every step, so each
    # step aggregates workers 0 and 1 exactly as a two-worker run on their gradients does
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy

    rng = np.random.default_rng(0)
    d = 24
    grads = rng.standard_normal((3, d))
    if name == "terngrad":  # |g| at the shared scale or 0: the ternaries are deterministic
        grads = np.sign(grads) * (rng.random((3, d)) < 0.5)
        grads[2] *= 2  # ... unless worker 2's larger scale, which never arrives, were shared
    shapes = [("w", (4, 5)), ("b", (4,))] if name == "powersgd" else None
    net = {"bandwidth": 1e9, "latency": 1e-5, "transport": "fluid"}
    slow = Cluster(3, net, ComputeModel(distribution="trace",
                                        trace=np.array([[0.01, 0.01, 0.1]])),
                   policy=Policy("first_k", k=2))
    pair = Cluster(2, net, ComputeModel(step_time=0.01))
    hp = {"lr": 0.05, **hp}
    got, state = _train(name, grads, slow, hp, shapes)
    want, _ = _train(name, grads[:2], pair, hp, shapes)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert [r.n_aggregated for r in slow.records] == [2, 2, 2]


def test_qsgd_over_two_of_three_is_a_step_of_those_two():
    # QSGD draws its stochastic levels for every worker that computes, so only the first step
    # shares the two-worker run's random numbers
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy

    grads = np.random.default_rng(0).standard_normal((3, 24))
    net = {"bandwidth": 1e9, "latency": 1e-5, "transport": "fluid"}
    slow = Cluster(3, net, ComputeModel(distribution="trace",
                                        trace=np.array([[0.01, 0.01, 0.1]])),
                   policy=Policy("first_k", k=2))
    pair = Cluster(2, net, ComputeModel(step_time=0.01))
    hp = {"lr": 0.05, "coding": "fixed"}
    got, _ = _train("qsgd", grads, slow, hp, steps=1)
    want, _ = _train("qsgd", grads[:2], pair, hp, steps=1)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("name,hp,memory", [
    ("topk", {"density": 0.25}, "memory"), ("randomk", {"density": 0.5}, "memory"),
    ("dgc", {"selection": "exact", "density": 0.25}, "v"), ("efsignsgd", {}, "memory"),
    ("powersgd", {"rank": 1}, "memory"),
])
def test_a_discarded_message_stays_in_its_workers_memory(name, hp, memory):
    # worker 2 computes in time but sits on a 1000x slower link: its message arrives after the
    # first two closed the step. Its error-feedback memory then holds its whole compensated
    # input: after one step from an empty memory, its gradient (DGC: its velocity, the same)
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy

    rng = np.random.default_rng(1)
    grads = rng.standard_normal((3, 20))
    net = {"bandwidth": [1e9, 1e9, 1e6], "latency": 1e-5, "transport": "fluid"}
    cluster = Cluster(3, net, ComputeModel(step_time=0.01), policy=Policy("first_k", k=2))
    shapes = [("w", (4, 4)), ("b", (4,))] if name == "powersgd" else None
    _, state = _train(name, grads, cluster, {"lr": 0.05, "momentum": 0.0, **hp}, shapes,
                      steps=1)
    assert cluster.records[0].late == 0  # it lands after the step, during finish()
    cluster.finish()
    assert cluster.records[0].late == 1
    assert state[memory][2] == pytest.approx(grads[2], rel=1e-6)
    # the two aggregated workers kept only what they did not send
    assert not np.allclose(state[memory][:2], grads[:2])


def _gram_schmidt(p):
    q = p.copy()
    for j in range(q.shape[1]):
        q[:, j] -= q[:, :j] @ (q[:, :j].T @ q[:, j])
        q[:, j] /= np.linalg.norm(q[:, j])
    return q


def test_powersgd_memory_of_a_worker_that_gave_steps_up_is_untouched():
    # worker 2 computes ten times slower in steps 2, 3 and 6 and gives them up at the 50 ms
    # deadline. PowerSGD (rank 2, no momentum) over the workers that took part, written here
    # from the paper: M_i = g_i + e_i, P_hat = orth(mean M_i Q), Q = mean M_i^T P_hat,
    # G = P_hat Q^T, e_i = M_i - G for those workers; the others' memory is left as it was
    from sim import methods
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy
    from sim.step import train_step

    n, shapes, lr, steps = 3, [("w", (4, 3))], 0.1, 6
    slow = [False, True, True, False, False, True]
    trace = np.array([[0.01, 0.01, 0.1 if s else 0.01] for s in slow])
    cluster = Cluster(n, {"bandwidth": 1e9, "latency": 1e-5, "transport": "fluid"},
                      ComputeModel(distribution="trace", trace=trace),
                      policy=Policy("deadline", deadline=0.05))
    method = methods.get("powersgd")
    hp = {**method.defaults, "lr": lr, "momentum": 0.0, "rank": 2}
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal((n, 12)) for _ in range(steps)]
    x = np.linspace(-1.0, 1.0, 12)
    state = method.init(x, n, hp, shapes)
    q = state["q"][0].astype(np.float64)
    want, e = x.copy(), np.zeros((n, 12))
    for t, g in enumerate(grads):
        out = train_step(method, cluster, x, state, g.copy(), hp, lr, method_rng=rng,
                         compute_rng=rng, batch_size=1, n_params=12, step=t)
        x, state = out.x, out.state
        took_part = [0, 1] if slow[t] else [0, 1, 2]
        m = {i: (g[i] + e[i]).reshape(4, 3) for i in took_part}
        p_hat = _gram_schmidt(np.mean([m[i] @ q for i in took_part], axis=0))
        q = np.mean([m[i].T @ p_hat for i in took_part], axis=0)
        approx = p_hat @ q.T
        for i in took_part:
            e[i] = (m[i] - approx).reshape(-1)
        want = want - lr * approx.reshape(-1)
        assert out.record.n_aggregated == len(took_part)
        assert state["memory"] == pytest.approx(e, rel=1e-4, abs=1e-5), f"step {t + 1}"
    assert x == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_dgc_discarded_message_keeps_its_momentum_as_if_nothing_was_sent():
    # as above, worker 2's message arrives late. DGC from zero, momentum 0.9: u = g, v = u;
    # sending would subtract the sent entries from v and zero u there (momentum masking), but
    # a discarded message was not sent: worker 2 keeps u = v = g everywhere
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy

    grads = np.random.default_rng(2).standard_normal((3, 20))
    net = {"bandwidth": [1e9, 1e9, 1e6], "latency": 1e-5, "transport": "fluid"}
    cluster = Cluster(3, net, ComputeModel(step_time=0.01), policy=Policy("first_k", k=2))
    hp = {"lr": 0.05, "momentum": 0.9, "selection": "exact", "density": 0.25}
    _, state = _train("dgc", grads, cluster, hp, steps=1)
    cluster.finish()
    assert cluster.records[0].late == 1
    assert state["u"][2] == pytest.approx(grads[2], rel=1e-6)
    assert state["v"][2] == pytest.approx(grads[2], rel=1e-6)
    # the aggregated workers did send their 5 largest entries: taken out of v (but for the
    # float32 wire's rounding) and masked in u
    for w in (0, 1):
        sent = np.abs(grads[w]) >= np.sort(np.abs(grads[w]))[-5]
        assert np.all(np.abs(state["v"][w][sent]) < 1e-6) and np.all(state["u"][w][sent] == 0)
        assert state["u"][w][~sent] == pytest.approx(grads[w][~sent], rel=1e-6)


def _server_rows(result, phase):
    return [(row[2], row[3]) for row in result.trace if row[0] == "server" and row[1] == phase]

def test_the_deadline_counts_from_the_opening_which_the_servers_work_delays(tmp_path):
    # Two workers send 16-byte messages (4 fp32 values) on 1 Mb/s links of 1 ms latency: a
    # push takes 1 ms + 128 us, a reply (16 bytes and the 1-byte map) 1 ms + 136 us. The server
    # spends 0.1 ms per byte it aggregates, so a step opens that long after the previous close.
    trace = tmp_path / "steps.csv"
    trace.write_text("w0,w1\n0.010,0.200\n0.010,0.047\n0.010,0.200\n")
    result = experiments.simulate(
        objective=Fixed(), workers=2, steps=3, dtype="float64", method="gsgd",
        network={"collective": "ps", "bandwidth": 1e6, "server_bandwidth": 1e9, "latency": 1e-3,
                 "transport": "fluid"},
        compute={"distribution": "trace", "trace_file": str(trace), "aggregate_per_byte": 1e-4},
        server={"policy": "deadline", "deadline": "50ms"}, run={"trace": True})
    push, reply, per_byte, deadline = 1e-3 + 128e-6, 1e-3 + 136e-6, 1e-4, 0.05
    # step 1 opens at 0 and closes at its deadline with worker 0's message alone (worker 1
    # computes for 200 ms and gives the step up); the server works on 16 bytes
    close1 = deadline
    open2 = close1 + 16 * per_byte
    # step 2: worker 1's message (47 ms of compute) lands at 100.864 ms: after 50 ms past the
    # close of step 1, but before the deadline 50 ms past the opening (101.6 ms), so it counts,
    # and the step closes as soon as both are in
    close2 = open2 + reply + 0.047 + push
    open3 = close2 + 32 * per_byte
    close3 = open3 + deadline
    np.testing.assert_allclose(_server_rows(result, "aggregate"),
                               [(close1, open2), (close2, open3), (close3, close3 + 16 * per_byte)],
                               rtol=1e-12)
    np.testing.assert_allclose([b for b, _ in _server_rows(result, "deadline")],
                               [deadline, open2 + deadline, open3 + deadline], rtol=1e-12)
    h = result.history
    assert h["aggregated"].tolist() == [1, 2, 1]
    assert h["abandoned"].tolist() == [1, 0, 1]
    assert h["late"].tolist() == [0, 0, 0]
    # every worker holds each reply one reply-trip after the opening it follows
    ends = sorted({row[3] for row in result.trace if row[1] == "receive"})
    np.testing.assert_allclose(ends, [open2 + reply, open3 + reply,
                                      close3 + 16 * per_byte + reply], rtol=1e-12)

def test_a_message_split_over_servers_arrives_with_its_last_piece(tmp_path):
    # three sharded servers: worker 0's 256-bit message goes in pieces of 86, 85 and 85 bits
    # that share its 1 kb/s uplink, so the last bit lands at 256 ms. The first message closes
    # the step (worker 1 computes for 10 s), so the step closes then.
    trace = tmp_path / "steps.csv"
    trace.write_text("w0,w1\n0.0,10.0\n")
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 8}, workers=2, steps=1, method="gsgd",
        network={"collective": "ps", "bandwidth": 1e3, "server_bandwidth": 1e9, "latency": 0.0,
                 "topology": "sharded", "servers": 3, "transport": "fluid"},
        compute={"distribution": "trace", "trace_file": str(trace)},
        server={"policy": "first_k", "k": 1}, run={"trace": True})
    assert _server_rows(result, "aggregate")[0][0] == pytest.approx(0.256, rel=1e-12)
    assert result.history["aggregated"].tolist() == [1]

@pytest.mark.parametrize("n,k,count", [(3, 0.34, 2), (4, 0.5, 2), (3, 1.0, 3), (10, 0.05, 1),
                                       # 0.28 * 25 is 7.000000000000001 in floating point
                                       (25, 0.28, 7), (50, 0.14, 7)])
def test_a_fraction_k_of_the_workers_is_rounded_up(tmp_path, n, k, count):
    # docs/faults.md: k is "a count, or a fraction of N rounded up". Worker i computes for
    # 10 (i + 1) ms, so the k-th message closes the step while the others still compute.
    trace = tmp_path / "steps.csv"
    trace.write_text(",".join(f"w{i}" for i in range(n)) + "\n"
                     + ",".join(f"{0.01 * (i + 1):.2f}" for i in range(n)) + "\n")
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 8}, workers=n, steps=2, method="dlion",
        network={"collective": "ps", "bandwidth": "10Gbps", "latency": "10us"},
        compute={"distribution": "trace", "trace_file": str(trace)},
        server={"policy": "first_k", "k": k})
    assert result.history["aggregated"].tolist() == [count, count]
    assert result.history["abandoned"].tolist() == [n - count, n - count]

@pytest.mark.parametrize("name,hp", [
    ("dlion", {}), ("signum", {}), ("topk", {"density": 0.25}),
    ("graddrop", {"selection": "exact"}), ("randomk", {"density": 0.5}), ("efsignsgd", {}),
    ("dgc", {"selection": "exact", "density": 0.25}),
])
def test_a_worker_that_never_finishes_computing_keeps_its_initial_state(name, hp):
    # worker 2 computes ten times slower and the first two messages close every step: it
    # gives every step up, so nothing it computed may reach its state (momentum, memory).
    # Worker 3 is 5 ms away from the server: it finishes computing in time (6 ms, then 1 ms
    # after a reply that reaches it 5 ms late) but its message lands after the close, late.
    from sim import methods
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.methods.base import snapshot_rows
    from sim.server import Policy

    grads = np.random.default_rng(4).standard_normal((4, 24))
    trace = np.array([[0.01, 0.01, 0.1, 0.006], [0.01, 0.01, 0.1, 0.001],
                      [0.01, 0.01, 0.1, 0.001]])
    cluster = Cluster(4, {"bandwidth": 1e9, "latency": [1e-5, 1e-5, 1e-5, 5e-3],
                          "transport": "fluid"},
                      ComputeModel(distribution="trace", trace=trace),
                      policy=Policy("first_k", k=2))
    hp = {"lr": 0.05, **hp}
    method = methods.get(name)
    initial = snapshot_rows(method.init(np.linspace(-1.0, 1.0, 24), 4,
                                        {**method.defaults, **hp}, None), 4)
    _, state = _train(name, grads, cluster, hp, steps=3)
    cluster.finish()
    assert [(r.n_aggregated, r.late, r.abandoned) for r in cluster.records] == [(2, 1, 1)] * 3
    after = snapshot_rows(state, 4)
    assert initial
    for key in initial:
        assert np.array_equal(after[key][2], initial[key][2]), key
        assert not np.array_equal(after[key][[0, 1, 3]], initial[key][[0, 1, 3]]), key

def test_a_step_in_which_nothing_arrives_changes_nothing(tmp_path):
    # a 5 ms deadline closes every step before anyone has computed (10 ms): every step is
    # empty, nobody's momentum moves, and x stays where it started
    from sim import methods
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy

    cluster = Cluster(3, {"bandwidth": 1e9, "latency": 1e-5, "transport": "fluid"},
                      ComputeModel(step_time=0.01), policy=Policy("deadline", deadline=0.005))
    x, state = _train("dlion", G.copy(), cluster, {"lr": 0.5}, steps=3)
    assert [(r.n_aggregated, r.abandoned) for r in cluster.records] == [(0, 3)] * 3
    assert x.tolist() == np.linspace(-1.0, 1.0, 4).tolist()
    assert not state["m"].any()

def test_a_late_message_is_left_out_of_the_update():
    # worker 2 computes in time but its link is 1000 times slower: the first two messages close
    # the step, so one step of plain SGD moves x by -lr times the mean of workers 0 and 1 only
    from sim.cluster import Cluster
    from sim.compute import ComputeModel
    from sim.server import Policy

    net = {"bandwidth": [1e9, 1e9, 1e6], "latency": 1e-5, "transport": "fluid"}
    cluster = Cluster(3, net, ComputeModel(step_time=0.01), policy=Policy("first_k", k=2))
    x, _ = _train("gsgd", G.copy(), cluster, {"lr": 0.5, "momentum": 0.0}, steps=1)
    cluster.finish()
    assert cluster.records[0].late == 1
    assert x == pytest.approx(np.linspace(-1.0, 1.0, 4) - 0.5 * G[:2].mean(axis=0), abs=1e-15)
