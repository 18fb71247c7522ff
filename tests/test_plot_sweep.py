"""The final-metric-against-a-swept-key figure, checked against values computed here."""
import numpy as np
import pytest
from scipy import stats

import experiments
from experiments.cli import main
from plots.sweep import plot_sweep, sweep_points


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    for workers in (2, 8):
        for seed in (0, 1, 2):
            for method in ({"name": "dlion", "tie": "zero"}, {"name": "dlion", "tie": "plus"}):
                r = experiments.simulate(objective={"name": "logistic", "samples": 256,
                                                    "features": 7},
                                         method={**method, "lr": 0.01}, workers=workers,
                                         steps=6, eval_every=3, seed=seed)
                r.save(out / f"w{workers}-s{seed}-{method['tie']}")
    return out


def test_points_are_seed_means_with_t_intervals(sweep_dir):
    lines = sweep_points(str(sweep_dir), "cluster.workers", series="method.tie")
    assert sorted(lines) == ["plus", "zero"]
    for tie, points in lines.items():
        assert [p[0] for p in points] == [2, 8]
        for workers, mean, half, seeds in points:
            finals = [experiments.load(sweep_dir / f"w{workers}-s{s}-{tie}")
                      .history["eval_loss"][-1] for s in range(3)]
            assert seeds == 3
            assert mean == pytest.approx(np.mean(finals))
            assert half == pytest.approx(stats.t.ppf(0.975, 2) * np.std(finals, ddof=1)
                                         / np.sqrt(3))


def test_figure_content(sweep_dir):
    fig = plot_sweep(str(sweep_dir), key="cluster.workers", series="method.tie")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "workers N"
    assert ax.get_ylabel() == "final evaluation loss"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["plus", "zero"]
    assert len(ax.containers) == 2  # one errorbar series per tie rule
    assert "3 seeds" in ax.get_title()


def test_cli_sweep_kind(sweep_dir, tmp_path, capsys):
    out = tmp_path / "ties.svg"
    assert main(["plot", str(sweep_dir), "--kind", "sweep", "--key", "cluster.workers",
                 "--series", "method.tie", "-o", str(out)]) == 0
    assert "workers N" in out.read_text()
    assert main(["plot", str(sweep_dir), "--kind", "sweep", "--key", "cluster.wrkers"]) == 2
    assert "cluster.wrkers" in capsys.readouterr().err


def test_runs_that_differ_in_more_than_the_seed_are_not_pooled(sweep_dir, capsys):
    # without --series the two tie rules would be pooled as if they were seeds
    assert main(["plot", str(sweep_dir), "--kind", "sweep", "--key", "cluster.workers"]) == 2
    assert "differ in more than their seed" in capsys.readouterr().err
    assert main(["plot", str(sweep_dir), "--kind", "sweep", "--key", "cluster.workers",
                 "--series", "network.bogus"]) == 2
    assert "network.bogus" in capsys.readouterr().err


# A scenario sweep: [[sweep.zip]] of method tables and bandwidths, each method at both.
ZIP_METHODS = [{"name": "dlion", "aggregate": "mavo", "lr": 0.003}, {"name": "gadamw", "lr": 0.01}]
ZIP_SPEC = {
    "objective": {"name": "logistic", "samples": 256, "features": 7},
    "cluster": {"workers": 4, "model_params": 1_000_000},
    "network": {"latency": "50us", "transport": "fluid"},
    "run": {"steps": 6, "eval_every": 3, "seed": 0},
    "sweep": {"zip": [{"method": ZIP_METHODS * 2,
                       "network.bandwidth": ["1Gbps", "1Gbps", "10Gbps", "10Gbps"]}]},
}


@pytest.fixture(scope="module")
def zip_dir(tmp_path_factory):
    from experiments.sweep import run_sweep

    out = tmp_path_factory.mktemp("zip") / "sweep"
    run_sweep(ZIP_SPEC, out, jobs=1)
    return out


def _finals(directory):
    """(method name, bandwidth) -> final evaluation loss, from the run directories here."""
    out = {}
    for run in directory.glob("*/summary.json"):
        r = experiments.load(run.parent)
        spec = r.summary["spec"]
        out[spec["method"]["name"], spec["network"]["bandwidth"]] = r.history["eval_loss"][-1]
    return out


def test_zip_sweep_with_the_method_as_series(zip_dir, tmp_path):
    finals = _finals(zip_dir)
    lines = sweep_points(str(zip_dir), "network.bandwidth", series="method")
    assert list(lines) == ["D-Lion (MaVo)", "G-AdamW"]
    for label, name in (("D-Lion (MaVo)", "dlion"), ("G-AdamW", "gadamw")):
        assert [(p[0], p[1]) for p in lines[label]] == [(1e9, pytest.approx(finals[name, 1e9])),
                                                       (1e10, pytest.approx(finals[name, 1e10]))]
    out = tmp_path / "zip.png"
    assert main(["plot", str(zip_dir), "--kind", "sweep", "--key", "network.bandwidth",
                 "--series", "method", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = plot_sweep(str(zip_dir), key="network.bandwidth", series="method").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["D-Lion (MaVo)", "G-AdamW"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1 Gb/s", "10 Gb/s"]


def test_a_section_swept_as_tables_on_the_x_axis(zip_dir, tmp_path):
    finals = _finals(zip_dir)
    lines = sweep_points(str(zip_dir), "method", series="network.bandwidth")
    assert list(lines) == ["1 Gb/s", "10 Gb/s"]
    assert [(p[0], p[1]) for p in lines["10 Gb/s"]] == [
        ("D-Lion (MaVo)", pytest.approx(finals["dlion", 1e10])),
        ("G-AdamW", pytest.approx(finals["gadamw", 1e10]))]
    ax = plot_sweep(str(zip_dir), key="method", series="network.bandwidth").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["D-Lion (MaVo)", "G-AdamW"]
    assert ax.get_xlabel() == "method"
    assert main(["plot", str(zip_dir), "--kind", "sweep", "--key", "method", "--series",
                 "network.bandwidth", "-o", str(tmp_path / "m.png")]) == 0


def test_zipped_keys_as_one_axis(zip_dir, capsys):
    ax = plot_sweep(str(zip_dir), key="method,network.bandwidth").axes[0]
    ticks = [t.get_text().replace("\n", " ").replace("\u00a0", " ")
             for t in ax.get_xticklabels()]
    assert ticks == ["D-Lion (MaVo), bandwidth=1 Gb/s", "D-Lion (MaVo), bandwidth=10 Gb/s",
                     "G-AdamW, bandwidth=1 Gb/s", "G-AdamW, bandwidth=10 Gb/s"]
    assert ax.get_xlabel() == "method / link bandwidth"
    # the method alone does not separate the runs: the error names the --key that would
    assert main(["plot", str(zip_dir), "--kind", "sweep", "--key", "method"]) == 2
    err = capsys.readouterr().err
    assert "--key method,network.bandwidth" in err and len(err.strip().splitlines()) == 1
