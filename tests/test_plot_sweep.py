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
