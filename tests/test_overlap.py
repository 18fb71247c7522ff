"""Gradient buckets overlapped with the backward pass (sim/buckets.py, sim/peers.py's
bucketed_round, the server's bucketed push) against step times computed by hand, DDP's
bucket assignment, and the invariant that overlap changes the clock, never the numbers."""
import numpy as np
import pytest

import experiments
from experiments.spec import SpecError
from sim import buckets
from sim.net.presets import MODELS

MB = 2**20


def _step_times(method, collective, bandwidth, overlap, **extra):
    """Seconds of each of two steps: 4 workers, 10 equal layers of 1M parameters (4 MB of
    gradient each), buckets of 8 MB (two layers), 1 s of compute of which the second half is the
    backward pass, no latency, the fluid network."""
    result = experiments.simulate(
        objective={"name": "quadratic", "dim": 16}, method={"name": method}, workers=4,
        steps=2, eval_every=0, progress=False,
        cluster={"model_params": 10_000_000, "layers": 10},
        network={"bandwidth": bandwidth, "latency": 0.0, "transport": "fluid",
                 "collective": collective, "chunk": 0, "bucket": 8e6, "first_bucket": 8e6},
        compute={"step_time": 1.0, "backward_fraction": 0.5, "overlap": overlap, **extra})
    return np.diff(np.concatenate([[0.0], result.history["time_s"]])), result


def test_ring_buckets_queue_behind_each_other_as_computed_by_hand():
    """Five buckets of 2M parameters (64 Mbit at 32 bits) are ready at 0.6, 0.7, ..., 1.0 s; a
    ring all-reduce of one takes 2(N-1)/N x 64 Mbit / 640 Mb/s = 0.15 s, longer than the
    0.1 s between them, so each waits for the one before: 0.6 + 5 x 0.15 = 1.35 s. Without
    overlap the whole 320 Mbit go after the compute: 1 + 1.5 x 0.5 s = 1.75 s."""
    overlapped, result = _step_times("gadamw", "ring", 6.4e8, True)
    assert overlapped == pytest.approx([1.35, 1.35], rel=0.03)
    whole, _ = _step_times("gadamw", "ring", 6.4e8, False)
    assert whole == pytest.approx([1.75, 1.75], rel=0.03)
    h = result.history
    # exposed: from the last gradient (1 s) to the end; overlapped: 0.6 to 1.0 s busy
    assert h["exposed_comm_s"] == pytest.approx([0.35, 0.35], rel=0.03)
    assert h["overlapped_s"] == pytest.approx([0.4, 0.4], rel=0.03)


def test_ring_buckets_that_keep_up_leave_only_the_last_one_exposed():
    """At 6.4 Gb/s a bucket takes 0.015 s, less than the 0.1 s between buckets: only the last
    bucket's all-reduce comes after the compute, 1 + 0.015 s."""
    overlapped, _ = _step_times("gadamw", "ring", 6.4e9, True)
    assert overlapped == pytest.approx([1.015, 1.015], rel=0.01)


def test_server_buckets_keep_its_link_busy_and_the_reply_follows_the_last():
    """Over a parameter server at 1 Gb/s the four workers' buckets (4 x 64 Mbit every 0.1 s,
    from 0.6 s) arrive faster than its link drains them, so its link is busy from 0.6 s until
    all 4 x 320 Mbit are in (1.28 s), and the reply, 4 x 320 Mbit out, takes 1.28 s more:
    3.16 s, against 1 + 1.28 + 1.28 = 3.56 s without overlap."""
    overlapped, result = _step_times("gadamw", "ps", 1e9, True)
    assert overlapped[0] == pytest.approx(3.16, rel=0.03)
    whole, _ = _step_times("gadamw", "ps", 1e9, False)
    assert whole[0] == pytest.approx(3.56, rel=0.03)


@pytest.mark.parametrize("method", ["dlion", "gadamw"])
def test_the_parameters_do_not_depend_on_overlap_or_the_bucket_size(method):
    runs = [experiments.simulate(
        "quickstart", method={"name": method}, steps=6, progress=False,
        cluster={"model": "gpt2-small"},
        network={"bucket": bucket}, compute={"overlap": overlap})
        for overlap, bucket in ((False, 25 * MB), (True, 25 * MB), (True, 4 * MB))]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.params, runs[0].params)
    times = [r.history["time_s"][-1] for r in runs]
    assert times[1] < times[0]  # the overlapped run is faster on this 1 Gb/s default network


def test_ddp_assigns_buckets_backward_closing_each_at_its_cap():
    """Layers of 3, 1, 2, 2, 4 MiB of gradient (forward order) walked backward with a 1 MiB
    first bucket and 4 MiB after: [4], then 2 + 2 = 4 closes, then 1 + 3 = 4 closes."""
    per_mib = MB // 4  # parameters per MiB of fp32 gradient
    layers = np.array([3, 1, 2, 2, 4]) * per_mib
    plan = buckets.plan(layers, 4 * MB, 1 * MB, backward=0.5)
    assert plan.params.tolist() == [4 * per_mib, 4 * per_mib, 4 * per_mib]
    assert plan.done.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    # a message splits in proportion, one header per bucket, the payloads adding up
    bits = plan.split(np.array([1000 + 80, 2000 + 80]), header=80)
    assert bits.sum(axis=0).tolist() == [1000 + 3 * 80, 2000 + 3 * 80]


def test_the_presets_layers_add_up_to_their_parameter_counts():
    for name in buckets.PRESET_LAYERS:
        assert buckets.preset_layers(name).sum() == MODELS[name]["params"]
    # GPT-2 small: 12 blocks of 7,087,872 parameters (12 x 768^2 + 13 x 768 each)
    block = buckets.preset_layers("gpt2-small")[2:-1].reshape(12, 6).sum(axis=1)
    assert np.all(block == 12 * 768**2 + 13 * 768)


def test_overlap_is_refused_in_one_line_where_it_cannot_work():
    with pytest.raises(SpecError, match=r"^compute.overlap = true: method.name = 'topk' needs "
                                        r"the whole gradient"):
        experiments.simulate("quickstart", method={"name": "topk"}, steps=1,
                             compute={"overlap": True})
    with pytest.raises(SpecError, match=r"^compute.overlap = true: server.policy = 'deadline'"):
        experiments.simulate("quickstart", steps=1, compute={"overlap": True},
                             server={"policy": "deadline", "deadline": 1.0})
    # by default it is on where it can be, and off elsewhere
    common = dict(steps=1, progress=False, cluster={"model": "resnet50"})
    on = experiments.simulate("quickstart", method={"name": "dlion"}, **common)
    off = experiments.simulate("quickstart", method={"name": "topk"}, **common)
    assert on.summary["overlap"] is True and off.summary["overlap"] is False
