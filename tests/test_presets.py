"""Presets against their sources: unit conversions, published counts and throughputs, and the
stated parameters of the link distributions."""
import math

import numpy as np
import pytest

from sim.net import presets

LINK_NAMES = ["1GbE", "10GbE", "25GbE", "100GbE", "IB-HDR", "IB-NDR", "NVLink4",
              "same-region", "cross-region", "intercontinental"]
MODEL_NAMES = ["resnet50", "vit-b16", "gpt2-small", "gpt2-medium", "gpt3-xl"]

GB_PER_S = 8e9  # bit/s in one GB/s


def test_the_named_presets_exist():
    assert list(presets.LINKS) == LINK_NAMES
    assert list(presets.MODELS) == MODEL_NAMES
    assert {"wan", "federated", "mixed-dc"} <= set(presets.DISTRIBUTIONS)


@pytest.mark.parametrize("name", LINK_NAMES)
def test_links_are_positive_and_sourced(name):
    p = presets.link(name)
    assert p["bandwidth"] > 0 and math.isfinite(p["bandwidth"])
    assert p["latency"] > 0 and math.isfinite(p["latency"])
    assert p["source"].strip() and p["note"].strip()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_are_positive_and_sourced(name):
    p = presets.model(name)
    assert isinstance(p["params"], int) and p["params"] > 0
    assert p["step_time"] > 0
    assert p["source"].strip() and p["note"].strip()


@pytest.mark.parametrize("name", ["wan", "federated", "mixed-dc"])
def test_distributions_are_sourced(name):
    p = presets.distribution(name)
    assert p["source"].strip() and p["note"].strip()


@pytest.mark.parametrize("name, line_rate", [
    ("1GbE", 1e9), ("10GbE", 1e10), ("25GbE", 25e9), ("100GbE", 100e9),
    ("IB-HDR", 4 * 50e9),            # 4 lanes x 50 Gb/s
    ("IB-NDR", 400e9),               # 4 lanes x 100 Gb/s
    ("NVLink4", 18 * 50 / 2 * GB_PER_S),  # 18 links x 50 GB/s counted both ways, one direction
])
def test_datacenter_line_rates(name, line_rate):
    assert presets.link(name)["bandwidth"] == pytest.approx(line_rate, rel=1e-12)


@pytest.mark.parametrize("name, low, high", [
    ("1GbE", 25e-6, 100e-6), ("10GbE", 10e-6, 50e-6), ("25GbE", 10e-6, 50e-6),
    ("100GbE", 1e-6, 3e-6), ("IB-HDR", 0.5e-6, 2e-6), ("IB-NDR", 0.5e-6, 2e-6),
])
def test_datacenter_latencies_lie_in_their_planning_ranges(name, low, high):
    assert low <= presets.link(name)["latency"] <= high


def test_nvlink_latency_is_the_astra_sim_calibration():
    assert presets.link("NVLink4")["latency"] == pytest.approx(936.25e-9, rel=1e-12)


@pytest.mark.parametrize("name, rtt_low, rtt_high", [
    ("same-region", 0.25e-3, 3.37e-3),     # AWS inter-AZ ping range
    ("cross-region", 5e-3, 72e-3),         # Azure inter-region RTT within North America
    ("intercontinental", 70e-3, 100e-3),   # US-Europe planning range
])
def test_wide_area_one_way_latency_is_half_a_quoted_rtt(name, rtt_low, rtt_high):
    assert rtt_low <= 2 * presets.link(name)["latency"] <= rtt_high


def test_intercontinental_latency_respects_light_in_fibre():
    # 5,600 km at 5 us/km one way
    assert presets.link("intercontinental")["latency"] >= 5600 * 5e-6


@pytest.mark.parametrize("name", ["same-region", "cross-region", "intercontinental"])
def test_wide_area_bandwidth_in_the_provisioned_range(name):
    assert 1e9 <= presets.link(name)["bandwidth"] <= 1e10


def _gpt2_params(layers, width, vocab=50257, positions=1024):
    # per block: two LayerNorms (2*2w), qkv (3w^2+3w), attention out (w^2+w), MLP (8w^2+5w);
    # embeddings, position embeddings and the final LayerNorm; the output layer is tied
    return layers * (12 * width**2 + 13 * width) + (vocab + positions) * width + 2 * width


def _vit_params(layers=12, width=768, patch=16, image=224, classes=1000):
    tokens = (image // patch) ** 2 + 1
    embed = 3 * patch * patch * width + width + width + tokens * width  # conv, cls, positions
    return embed + layers * (12 * width**2 + 13 * width) + 2 * width + width * classes + classes


@pytest.mark.parametrize("name, params", [
    ("resnet50", 25_557_032),  # torchvision's published count
    ("vit-b16", _vit_params()),
    ("gpt2-small", _gpt2_params(12, 768)),
    ("gpt2-medium", _gpt2_params(24, 1024)),
])
def test_model_parameter_counts(name, params):
    assert presets.model(name)["params"] == params


@pytest.mark.parametrize("name, nominal", [
    ("resnet50", 25.6e6), ("vit-b16", 86.6e6), ("gpt2-small", 124e6), ("gpt2-medium", 350e6)])
def test_model_sizes_match_their_nominal_names(name, nominal):
    assert presets.model(name)["params"] == pytest.approx(nominal, rel=0.015)


@pytest.mark.parametrize("name, step", [
    ("resnet50", 256 / 2470),          # 2,470 img/s on an A100, 256 images per step
    ("vit-b16", 192 / 391),            # 391 img/s on an RTX 3090, 192 images per step
    ("gpt2-small", 4 * 86400 / 600_000),  # 600k iterations in 4 days
])
def test_step_times_follow_the_quoted_throughputs(name, step):
    assert presets.model(name)["step_time"] == pytest.approx(step, rel=0.01)


def test_gpt2_medium_step_scales_with_parameters():
    small, medium = presets.model("gpt2-small"), presets.model("gpt2-medium")
    expected = small["step_time"] * medium["params"] / small["params"]
    assert medium["step_time"] == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("name", ["wan", "federated", "mixed-dc"])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_draw_links_shape_and_determinism(name, n):
    bw, lat = presets.draw_links(name, n, np.random.default_rng(123))
    bw2, lat2 = presets.draw_links(name, n, np.random.default_rng(123))
    assert bw.shape == lat.shape == (n,)
    assert bw.dtype == lat.dtype == np.float64
    assert (bw > 0).all() and (lat > 0).all()
    np.testing.assert_array_equal(bw, bw2)
    np.testing.assert_array_equal(lat, lat2)


@pytest.mark.parametrize("name", ["wan", "federated", "mixed-dc"])
def test_draw_links_differ_between_seeds(name):
    draws = [presets.draw_links(name, 64, np.random.default_rng(s))[0] for s in range(4)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize("name", ["wan", "federated"])
def test_lognormal_median_and_spread_match_the_stated_parameters(name):
    p = presets.distribution(name)
    bw, lat = presets.draw_links(name, 200_000, np.random.default_rng(7))
    log_bw = np.log(bw)
    n = bw.size
    # five standard errors: of a normal sample's median 1.2533*sigma/sqrt(n), of its std
    # sigma/sqrt(2n)
    assert np.log(np.median(bw)) == pytest.approx(math.log(p["median"]),
                                                  abs=5 * 1.2533 * p["sigma"] / math.sqrt(n))
    assert log_bw.std() == pytest.approx(p["sigma"], abs=5 * p["sigma"] / math.sqrt(2 * n))
    # a normal puts 95.45% of its mass within two standard deviations
    inside = np.mean(np.abs(log_bw - math.log(p["median"])) <= 2 * p["sigma"])
    assert inside == pytest.approx(0.9545, abs=0.003)
    assert p["latency_min"] <= lat.min() and lat.max() <= p["latency_max"]
    width = p["latency_max"] - p["latency_min"]
    # a uniform's standard deviation is width/sqrt(12)
    assert lat.mean() == pytest.approx(p["latency_min"] + width / 2,
                                       abs=5 * width / math.sqrt(12 * n))
    # uniform: a quarter of the draws in each quarter of the range
    quarter = np.histogram(lat, bins=4, range=(p["latency_min"], p["latency_max"]))[0] / lat.size
    np.testing.assert_allclose(quarter, 0.25, atol=0.005)


def test_wan_covers_one_to_ten_gigabits():
    bw, _ = presets.draw_links("wan", 200_000, np.random.default_rng(3))
    assert np.mean((bw >= 1e9) & (bw <= 1e10)) == pytest.approx(0.9545, abs=0.003)


def test_wan_latency_is_half_the_azure_rtt_range():
    p = presets.distribution("wan")
    assert (2 * p["latency_min"], 2 * p["latency_max"]) == pytest.approx((5e-3, 72e-3))


def test_federated_mean_upload_is_near_the_ookla_mean():
    bw, _ = presets.draw_links("federated", 200_000, np.random.default_rng(5))
    p = presets.distribution("federated")
    # lognormal mean = median * exp(sigma^2 / 2)
    assert bw.mean() == pytest.approx(p["median"] * math.exp(p["sigma"] ** 2 / 2), rel=0.02)
    assert bw.mean() == pytest.approx(44.1e6, rel=0.1)


@pytest.mark.parametrize("n, n_slow", [(1, 0), (2, 1), (4, 1), (8, 2), (10, 3), (64, 16)])
def test_mixed_dc_puts_a_quarter_of_the_workers_on_1gbe(n, n_slow):
    bw, lat = presets.draw_links("mixed-dc", n, np.random.default_rng(0))
    slow = bw == 1e9
    assert slow.sum() == n_slow
    assert (bw[~slow] == 1e10).all()
    assert (lat[slow] == presets.link("1GbE")["latency"]).all()
    assert (lat[~slow] == presets.link("10GbE")["latency"]).all()


def test_mixed_dc_places_slow_workers_at_random():
    draws = [presets.draw_links("mixed-dc", 16, np.random.default_rng(s))[0] for s in range(10)]
    positions = {tuple(np.flatnonzero(bw == 1e9)) for bw in draws}
    assert len(positions) > 1


@pytest.mark.parametrize("lookup, table", [
    (presets.link, presets.LINKS), (presets.model, presets.MODELS),
    (presets.distribution, presets.DISTRIBUTIONS)])
def test_bad_names_list_the_valid_ones(lookup, table):
    with pytest.raises(ValueError) as err:
        lookup("10Gbit")
    message = str(err.value)
    assert "'10Gbit'" in message
    for name in table:
        assert name in message


def test_draw_links_rejects_a_bad_name_or_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="'lan'.*wan, federated, mixed-dc"):
        presets.draw_links("lan", 4, rng)
    with pytest.raises(ValueError, match="n_workers"):
        presets.draw_links("wan", 0, rng)
    with pytest.raises(ValueError, match="rng"):
        presets.draw_links("wan", 4, 0)


def test_a_close_misspelling_is_suggested():
    with pytest.raises(ValueError, match="did you mean '10GbE'"):
        presets.link("10Gbe")


def test_lookups_return_copies():
    presets.link("10GbE")["bandwidth"] = 1.0
    assert presets.LINKS["10GbE"]["bandwidth"] == 1e10


def test_describe_names_every_preset_with_its_source():
    text = "\n".join(presets.describe())
    for table in (presets.LINKS, presets.MODELS, presets.DISTRIBUTIONS):
        for name, p in table.items():
            assert name in text
            assert p["source"] in text
    assert "10 Gb/s" in text and "20 us" in text      # 10GbE's values in readable units
    assert "124.4M" in text and "576 ms" in text      # gpt2-small's
