"""Bits per parameter per step over the whole run and over the steady state after a method's own
warm-up (DGC's sparsity warm-up, 1-bit Adam's full-precision phase), and the trade-off figure
placing either."""
import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

import experiments
from experiments.cli import main
from plots.tradeoff import plot_tradeoff

COMMON = dict(objective={"name": "quadratic", "dim": 4096}, workers=4, batch_size=4, seed=0)


def _per_step(result, first):
    """Mean bits per parameter per step over 0-based steps first.. from the cumulative columns."""
    h, d = result.history, result.summary["n_params"]
    up, down = (np.diff(np.concatenate([[0.0], h[k]])) for k in ("bits_up", "bits_down"))
    return (up[first:].mean() + down[first:].mean()) / d


def test_onebit_adam_steady_state_is_its_compressed_phase():
    r = experiments.simulate(method={"name": "onebit_adam", "freeze_step": 3}, steps=7,
                             network={"bandwidth": "1Gbps"}, **COMMON)
    s = r.summary
    assert s["steady_from_step"] == 4
    # 4096 parameters need no padding with 4 workers (a multiple of 4 * lcm(4, 8)): the worker
    # sends its 4096 signs and four scales, and receives the others' 3 chunks of 1024 signs and
    # their scales twice (the all-to-all, then the all-gather)
    up, down = (4096 + 32 * 4) / 4096, 2 * 3 * (1024 + 32) / 4096
    assert s["steady_bits_per_param_per_step"] == pytest.approx(
        {"up": up, "down": down, "total": up + down}, rel=1e-12)
    # the whole run averages in three fp32 steps (32 each way)
    assert s["bits_per_param_per_step"]["total"] == pytest.approx((3 * 64 + 4 * (up + down)) / 7)
    assert s["steady_bits_per_param_per_step"]["total"] == pytest.approx(_per_step(r, 3))


def test_dgc_steady_state_starts_after_the_sparsity_warmup():
    r = experiments.simulate(method={"name": "dgc", "sparsity_warmup": 8}, steps=12, **COMMON)
    s = r.summary
    assert s["steady_from_step"] == 9
    assert s["steady_bits_per_param_per_step"]["total"] == pytest.approx(_per_step(r, 8))
    # the warm-up sends 25% ... 0.4% of the entries, then 0.1%: the whole run costs far more
    assert s["bits_per_param_per_step"]["total"] > 10 * s["steady_bits_per_param_per_step"]["total"]


def test_no_warmup_or_ended_inside_it():
    plain = experiments.simulate(method="dlion", steps=5, **COMMON).summary
    assert plain["steady_from_step"] == 1
    assert plain["steady_bits_per_param_per_step"] == plain["bits_per_param_per_step"]
    short = experiments.simulate(method={"name": "dgc", "sparsity_warmup": 8}, steps=5,
                                 **COMMON).summary
    assert short["steady_bits_per_param_per_step"] == {"up": None, "down": None, "total": None}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("steady")
    specs = {"dlion": {"name": "dlion", "lr": 0.01},
             "dgc": {"name": "dgc", "sparsity_warmup": 4, "lr": 0.01},
             "onebit": {"name": "onebit_adam", "freeze_step": 20, "lr": 0.01}}
    runs = {}
    for key, method in specs.items():
        runs[key] = experiments.simulate(method=method, steps=8, **COMMON)
        runs[key].save(root / key)
    return root, runs


def test_tradeoff_places_either_and_says_which(sweep):
    root, runs = sweep
    for bits, key in (("total", "bits_per_param_per_step"),
                      ("steady", "steady_bits_per_param_per_step")):
        ax = plot_tradeoff(str(root), bits=bits).axes[0]
        assert ("whole run" if bits == "total" else "steady state") in ax.get_xlabel()
        xs = {c.get_label(): float(c.lines[0].get_xdata()[0]) for c in ax.containers
              if isinstance(c, ErrorbarContainer)}
        assert xs["D-Lion (MaVo)"] == runs["dlion"].summary[key]["total"]
        assert xs["DGC"] == runs["dgc"].summary[key]["total"]
        # 1-bit Adam ran 8 steps of a 20-step warm-up: no steady state to place
        if bits == "steady":
            assert "1-bit Adam" not in xs
            assert any("ended inside its warm-up: 1-bit Adam" in t.get_text() for t in ax.texts)
        else:
            assert math.isclose(xs["1-bit Adam"], 64.0)


def test_cli_tradeoff_bits_option(sweep, tmp_path, capsys):
    root, _ = sweep
    out = tmp_path / "steady.svg"
    assert main(["plot", str(root), "--kind", "tradeoff", "--bits", "steady", "-o",
                 str(out)]) == 0
    assert "steady state" in out.read_text()
    assert main(["plot", str(root), "--kind", "curves", "--bits", "steady"]) == 2
    assert "--kind curves does not take --bits" in capsys.readouterr().err
