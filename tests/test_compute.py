"""The compute model against its formulas: constant, per-sample and FLOP-rate step times,
mean-one lognormal jitter, stragglers, codec and server costs, and zero by default."""
import math

import numpy as np
import pytest

from sim.compute import ComputeModel


def _times(model, n=4, batch=32, params=1000, seed=0):
    return model.worker_times(n, batch, params, np.random.default_rng(seed))


def test_every_cost_is_zero_by_default():
    model = ComputeModel()
    for n, batch, params in ((1, 1, 1), (8, 256, 124_000_000)):
        np.testing.assert_array_equal(_times(model, n, batch, params), np.zeros(n))
    assert model.server_time(3_200_000, 8, 25_600_000) == 0.0


def test_constant_step_time():
    t = _times(ComputeModel(step_time=0.104), n=5, batch=256)
    assert t.shape == (5,)
    np.testing.assert_allclose(t, 0.104, rtol=1e-15)


@pytest.mark.parametrize("batch", [1, 32, 256])
def test_per_sample_time_scales_with_the_batch(batch):
    t = _times(ComputeModel(step_time=0.01, per_sample=2e-4), batch=batch)
    np.testing.assert_allclose(t, 0.01 + 2e-4 * batch, rtol=1e-15)


def test_flops_over_device_rate():
    # 3 x 4.1 GFLOP per image (forward + backward) on a 312 TFLOP/s device, 256 images
    model = ComputeModel(flops_per_sample=3 * 4.1e9, device_flops=312e12)
    np.testing.assert_allclose(_times(model, batch=256), 256 * 3 * 4.1e9 / 312e12, rtol=1e-15)


def test_encode_cost_per_parameter_on_every_worker():
    model = ComputeModel(step_time=0.1, codec_per_param=1e-10)
    np.testing.assert_allclose(_times(model, params=124_000_000), 0.1 + 124_000_000 * 1e-10,
                               rtol=1e-15)


def test_all_deterministic_terms_add():
    model = ComputeModel(step_time=0.02, per_sample=1e-4, flops_per_sample=1e9,
                         device_flops=1e13, codec_per_param=1e-9)
    expected = 0.02 + 1e-4 * 64 + 1e9 * 64 / 1e13 + 1e-9 * 5000
    np.testing.assert_allclose(_times(model, batch=64, params=5000), expected, rtol=1e-14)


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_jitter_is_mean_one_lognormal_with_log_std_sigma(sigma):
    n, base = 200_000, 2.0
    factor = _times(ComputeModel(step_time=base, jitter=sigma), n=n, seed=11) / base
    log = np.log(factor)
    # five standard errors: of the mean factor, sqrt(e^(sigma^2) - 1)/sqrt(n); of the mean log,
    # sigma/sqrt(n); of the log std, sigma/sqrt(2n)
    assert factor.mean() == pytest.approx(1.0, abs=5 * math.sqrt(math.expm1(sigma**2) / n))
    # mean one needs the log to be centred at -sigma^2 / 2
    assert log.mean() == pytest.approx(-sigma**2 / 2, abs=5 * sigma / math.sqrt(n))
    assert log.std() == pytest.approx(sigma, abs=5 * sigma / math.sqrt(2 * n))
    assert len(np.unique(factor)) > n // 2  # every worker draws its own factor


def test_jitter_draws_are_fixed_by_the_seed():
    model = ComputeModel(step_time=1.0, jitter=0.3, straggler_prob=0.2, straggler_slowdown=4.0)
    np.testing.assert_array_equal(_times(model, n=50, seed=3), _times(model, n=50, seed=3))
    assert not np.array_equal(_times(model, n=50, seed=3), _times(model, n=50, seed=4))


@pytest.mark.parametrize("prob, slowdown", [(0.1, 3.0), (0.5, 1.5)])
def test_straggler_fraction_and_slowdown(prob, slowdown):
    n, base = 100_000, 0.05
    t = _times(ComputeModel(step_time=base, straggler_prob=prob, straggler_slowdown=slowdown),
               n=n, seed=2)
    slow = np.isclose(t, base * slowdown, rtol=1e-15, atol=0)
    fast = np.isclose(t, base, rtol=1e-15, atol=0)
    assert (slow | fast).all()          # a worker is either slowed by exactly the factor or not
    # binomial standard error sqrt(p(1-p)/n) is at most 0.0016 here
    assert slow.mean() == pytest.approx(prob, abs=0.008)


@pytest.mark.parametrize("prob, expected_slow", [(0.0, 0), (1.0, 20)])
def test_straggler_probability_extremes(prob, expected_slow):
    t = _times(ComputeModel(step_time=1.0, straggler_prob=prob, straggler_slowdown=2.0), n=20)
    assert int(np.sum(t == 2.0)) == expected_slow
    assert int(np.sum(t == 1.0)) == 20 - expected_slow


def test_jitter_and_stragglers_compose_in_the_mean():
    # independent factors: E[time] = base * 1 * (1 + p (s - 1))
    n, base, p, s = 200_000, 1.0, 0.2, 3.0
    t = _times(ComputeModel(step_time=base, jitter=0.2, straggler_prob=p, straggler_slowdown=s),
               n=n, seed=9)
    assert t.mean() == pytest.approx(base * (1 + p * (s - 1)), rel=0.01)


def test_server_time_per_byte_received():
    # 8 workers each send a 1-bit vector of 25.6M parameters: 3.2 MB each
    received = 8 * 25_600_000 // 8
    model = ComputeModel(aggregate_per_byte=2e-10)
    assert model.server_time(received, 8, 25_600_000) == pytest.approx(2e-10 * received, rel=1e-15)


def test_server_decodes_every_message():
    model = ComputeModel(aggregate_per_byte=1e-9, codec_per_param=5e-11)
    expected = 1e-9 * 1_000_000 + 5e-11 * 2_000_000 * 7
    assert model.server_time(1_000_000, 7, 2_000_000) == pytest.approx(expected, rel=1e-15)

