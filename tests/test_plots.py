"""Figures from fixture results: each kind is checked for what it shows, not only that it renders.

Two fixture sets, made once per module: real runs (a few short simulations, traced, three
seeds) for curves, trade-off and timeline; and hand-written results whose times-to-target are
chosen so that the crossovers and speed-ups are known in closed form.
"""
import math
import re

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer

import experiments
from experiments.cli import main
from experiments.results import Result
from experiments.spec import resolve
from plots.bandwidth import plot_bandwidth
from plots.curves import plot_curves
from plots.data import PlotError
from plots.figure import plt
from plots.heatmap import plot_heatmap
from plots.timeline import PHASES, plot_timeline
from plots.tradeoff import plot_tradeoff

T_975_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (tables)
WORKERS = 4
SEEDS = (0, 1, 2)
REAL = {"objective": {"name": "logistic", "samples": 256, "features": 7},
        "cluster": {"workers": WORKERS, "batch_size": 8}, "network": {"bandwidth": "1Gbps"},
        "compute": {"step_time": "1ms", "jitter": 0.5},
        "run": {"steps": 12, "eval_every": 4, "trace": True}}
METHODS = {"dlion/mavo": {"name": "dlion", "aggregate": "mavo", "lr": 0.01},
           "gadamw": {"name": "gadamw", "lr": 0.01}}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Real runs: D-Lion (MaVo) and G-AdamW, three seeds each; {(method, seed): Result}."""
    root = tmp_path_factory.mktemp("real")
    runs = {}
    for key, method in METHODS.items():
        for seed in SEEDS:
            run = experiments.simulate({**REAL, "method": method,
                                        "run": {**REAL["run"], "seed": seed}})
            run.save(root / f"{key.replace('/', '_')}_{seed}")
            runs[key, seed] = run
    return root, runs


def _made_up(method: str, bandwidth: float, workers: int, seed: int, time_s: float,
             steps: int = 10) -> Result:
    """A finished run whose target was reached at ``time_s`` (simulated s)."""
    spec = resolve({"objective": {"name": "logistic", "samples": 256, "features": 7},
                    "method": dict(METHODS[method]),
                    "cluster": {"workers": workers}, "network": {"bandwidth": bandwidth},
                    "run": {"steps": steps, "seed": seed, "target": 0.5}})
    times = np.linspace(time_s / steps, time_s, steps)
    history = {"step": np.arange(1.0, steps + 1), "time_s": times,
               "bits_up": np.arange(1.0, steps + 1), "bits_down": np.arange(1.0, steps + 1),
               "train_loss": np.linspace(0.7, 0.5, steps), "eval_loss": np.linspace(0.7, 0.5, steps)}
    summary = {"status": "target_reached", "steps": steps, "sim_time_s": time_s,
               "final": {"loss": 0.5}, "bits_per_param_per_step": {"total": 2.0},
               "target": {"metric": "loss", "value": 0.5, "step": steps, "time_s": time_s},
               "spec": spec}
    return Result(params=np.zeros(8), history=history, summary=summary)


# Times to target (s) per method and bandwidth, two seeds spread +-10% around the mean.
# D-Lion against G-AdamW, between 0.1 and 1 Gb/s: 8 -> 0.5 s against 2 -> 1 s. As power laws,
# 8 (b/1e8)^log10(1/16) = 2 (b/1e8)^log10(1/2)  <=>  log10(b/1e8) = log10(4) / log10(8) = 2/3.
# Between 1 and 10 Gb/s: 0.5 -> 0.4 against 1 -> 0.1, equal where
# log10(b/1e9) = log10(2) / log10(8) = 1/3. G-Lion is slower everywhere: no crossover.
CURVES = {"dlion/mavo": {1e8: 8.0, 1e9: 0.5, 1e10: 0.4},
          "gadamw": {1e8: 2.0, 1e9: 1.0, 1e10: 0.1}}
CROSSINGS = [(10 ** (8 + 2 / 3), 8 * 16 ** (-2 / 3)), (10 ** (9 + 1 / 3), 0.5 * 0.8 ** (1 / 3))]


@pytest.fixture(scope="module")
def made_up(tmp_path_factory):
    """Hand-made sweep directories: 'bandwidth' (8 workers) and 'grid' (bandwidth x workers)."""
    root = tmp_path_factory.mktemp("made_up")
    for method, times in CURVES.items():
        for bandwidth, mean in times.items():
            for seed, spread in zip((0, 1), (0.9, 1.1)):
                run = _made_up(method, bandwidth, 8, seed, mean * spread)
                run.save(root / "bandwidth" / f"{method.replace('/', '_')}_{bandwidth:g}_{seed}")
    for bandwidth in (1e8, 1e9):
        for workers in (4, 8):
            for seed in (0, 1):
                for method, time_s in _grid_times(bandwidth, workers, seed).items():
                    run = _made_up(method, bandwidth, workers, seed, time_s)
                    run.save(root / "grid" / f"{method.replace('/', '_')}_{bandwidth:g}_"
                                              f"{workers}_{seed}")
    # a cell holding D-Lion alone has no ratio
    _made_up("dlion/mavo", 1e10, 4, 0, 1.0).save(root / "grid" / "lonely")
    return root


def _grid_times(bandwidth, workers, seed) -> dict[str, float]:
    """G-AdamW pays 64 bits per parameter and step, D-Lion 2: made-up times (s) per cell."""
    jitter = 1 + 0.05 * seed
    return {"dlion/mavo": (1 + workers * 2e8 / bandwidth) * jitter,
            "gadamw": (1 + workers * 64e8 / bandwidth) * jitter * (1 + 0.02 * workers)}


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_curves_group_seeds_into_a_mean_with_a_t_band(real):
    root, runs = real
    fig = plot_curves(str(root), metric="eval_loss")
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "step", "simulated wall-clock time (s)", "bits sent per worker (up + down, cumulative)"]
    assert {ax.get_ylabel() for ax in fig.axes} == {"evaluation loss"}
    assert "95% t-interval" in fig._suptitle.get_text()
    step_panel = fig.axes[0]
    lines = step_panel.get_lines()
    assert sorted(line.get_label() for line in lines) == ["D-Lion (MaVo)", "G-AdamW"]
    for ax in fig.axes:  # one band per method in every panel
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    # the line is the mean over seeds at the evaluation steps; the band is mean +- t * s/sqrt(n)
    line = next(line for line in lines if line.get_label() == "D-Lion (MaVo)")
    values = np.array([runs["dlion/mavo", s].history["eval_loss"][[3, 7, 11]] for s in SEEDS])
    assert line.get_xdata().tolist() == [4, 8, 12]
    np.testing.assert_allclose(line.get_ydata(), values.mean(axis=0), rtol=1e-12)
    half = T_975_DF2 * values.std(axis=0, ddof=1) / math.sqrt(3)
    band = step_panel.collections[0].get_paths()[0].vertices
    for x, mean, h in zip([4, 8, 12], values.mean(axis=0), half):
        ys = band[np.isclose(band[:, 0], x), 1]
        assert ys.min() == pytest.approx(mean - h) and ys.max() == pytest.approx(mean + h)


def test_curves_on_time_stay_inside_the_range_all_seeds_cover(real):
    root, runs = real
    fig = plot_curves(str(root), metric="train_loss", axes=("time",))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    for line in ax.get_lines():
        key = "dlion/mavo" if line.get_label() == "D-Lion (MaVo)" else "gadamw"
        times = [runs[key, s].history["time_s"] for s in SEEDS]
        assert line.get_xdata().min() >= max(t[0] for t in times)
        assert line.get_xdata().max() <= min(t[-1] for t in times)


def test_one_seed_draws_no_band(real):
    root, _ = real
    fig = plot_curves(str(root / "gadamw_0"), metric="train_loss", axes=("step",))
    assert len(fig.axes[0].get_lines()) == 1
    assert not any(isinstance(c, PolyCollection) for c in fig.axes[0].collections)
    assert "t-interval" not in fig._suptitle.get_text()


def test_tradeoff_one_point_per_method_at_its_bits(real):
    root, runs = real
    fig = plot_tradeoff(str(root), metric="loss")
    ax = fig.axes[0]
    points = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(points) == 2
    assert ax.get_xscale() == "log"
    assert "bits per parameter per step" in ax.get_xlabel()
    assert ax.get_ylabel() == "final evaluation loss"
    assert ax.get_title().startswith("Final evaluation loss against communication")
    # D-Lion MaVo: 1 bit up + 1 down; G-AdamW: 32 + 32 (the wire-cost table of the design)
    expected_bits = {"D-Lion (MaVo)": 2.0, "G-AdamW": 64.0}
    for point in points:
        x, y = (float(v[0]) for v in point.lines[0].get_data())
        assert x == expected_bits[point.get_label()]
        key = "dlion/mavo" if point.get_label() == "D-Lion (MaVo)" else "gadamw"
        finals = [runs[key, s].history["eval_loss"][-1] for s in SEEDS]
        assert y == pytest.approx(np.mean(finals), rel=1e-12)
        segment = point.lines[2][0].get_segments()[0]  # the vertical error bar
        half = T_975_DF2 * np.std(finals, ddof=1) / math.sqrt(3)
        assert segment[:, 1].tolist() == pytest.approx([y - half, y + half])
    assert sorted(t.get_text() for t in ax.texts) == ["D-Lion (MaVo)", "G-AdamW"]


def test_tradeoff_time_to_target_is_read_from_the_history(real):
    root, runs = real
    target = float(np.median([r.history["eval_loss"][7] for r in runs.values()]))
    fig = plot_tradeoff(str(root), metric="eval_loss", target=target)
    ax = fig.axes[0]
    assert ax.get_ylabel() == f"simulated time to evaluation loss ≤ {target:g} (s)"
    for point in (c for c in ax.containers if isinstance(c, ErrorbarContainer)):
        key = "dlion/mavo" if point.get_label() == "D-Lion (MaVo)" else "gadamw"
        times = []
        for s in SEEDS:
            h = runs[key, s].history
            evals = [t for t in range(len(h["step"])) if h["eval_loss"][t] <= target]
            times.append(h["time_s"][evals[0]] if evals else math.nan)
        if all(map(math.isfinite, times)):
            assert point.lines[0].get_ydata()[0] == pytest.approx(np.mean(times))
        else:  # a method that missed the target in some seed is named, not drawn
            assert point.get_label() in ax.texts[-1].get_text()


def test_bandwidth_marks_the_crossovers_where_the_lines_cross(made_up):
    fig = plot_bandwidth(str(made_up / "bandwidth"))
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "link bandwidth (each worker's, per direction)"
    assert ax.get_ylabel() == "simulated time to evaluation loss ≤ 0.5 (s)"
    lines = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in lines] == ["D-Lion (MaVo)", "G-AdamW"]
    for line in lines:
        key = "dlion/mavo" if line.get_label() == "D-Lion (MaVo)" else "gadamw"
        assert line.lines[0].get_xdata().tolist() == [1e8, 1e9, 1e10]
        np.testing.assert_allclose(line.lines[0].get_ydata(), list(CURVES[key].values()))
    marks = [line for line in ax.get_lines() if line.get_gid() == "crossover"]
    assert len(marks) == len(CROSSINGS)
    for mark, (bandwidth, time_s) in zip(sorted(marks, key=lambda m: m.get_xdata()[0]),
                                         CROSSINGS):
        assert mark.get_xdata()[0] == pytest.approx(bandwidth, rel=1e-9)
        assert mark.get_ydata()[0] == pytest.approx(time_s, rel=1e-9)
    legend = _legend_texts(ax)
    assert f"1: D-Lion (MaVo) = G-AdamW at {CROSSINGS[0][0] / 1e6:.3g} Mb/s" in legend
    assert f"2: D-Lion (MaVo) = G-AdamW at {CROSSINGS[1][0] / 1e9:.3g} Gb/s" in legend
    assert "95% t-interval" in fig._suptitle.get_text()


def test_bandwidth_draws_one_panel_per_worker_count(made_up):
    fig = plot_bandwidth(str(made_up / "grid"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["workers=4", "workers=8"]


def test_heatmap_cells_are_the_speedups(made_up):
    fig = plot_heatmap(str(made_up / "grid"))
    ax, bar = fig.axes
    cells = ax.images[0].get_array()
    assert cells.shape == (2, 3)  # workers 4, 8 x bandwidths 0.1, 1, 10 Gb/s
    for i, workers in enumerate((4, 8)):
        for j, bandwidth in enumerate((1e8, 1e9)):
            seeds = [_grid_times(bandwidth, workers, s) for s in (0, 1)]
            expected = (np.mean([t["gadamw"] for t in seeds])
                        / np.mean([t["dlion/mavo"] for t in seeds]))
            assert cells[i, j] == pytest.approx(expected, rel=1e-12)
    assert cells.mask[:, 2].all()  # at 10 Gb/s only D-Lion ran
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 6 and texts.count("n/a") == 2
    assert f"{cells[0, 0]:.3g}×" in texts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100 Mb/s", "1 Gb/s", "10 Gb/s"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4", "8"]
    assert ax.get_xlabel().startswith("link bandwidth") and ax.get_ylabel() == "workers (count)"
    assert "G-AdamW time / D-Lion (MaVo) time" in bar.get_ylabel()
    assert fig._suptitle.get_text().startswith("Speed-up of D-Lion (MaVo) over G-AdamW")


def test_heatmap_without_a_target_is_refused_like_the_bandwidth_figure(tmp_path, capsys):
    for method in ("dlion/mavo", "gadamw"):
        run = _made_up(method, 1e9, 4, 0, 5.0)
        run.summary["target"] = None
        run.save(tmp_path / method.replace("/", "_"))
    for kind in ("heatmap", "bandwidth"):
        assert main(["plot", str(tmp_path), "--kind", kind, "-o", str(tmp_path / "f.png")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "has no run.target" in err and "--target" in err
    fig = plot_heatmap(str(tmp_path), target=0.6)  # a target given on the command line
    assert fig.axes[0].images[0].get_array()[0, 0] == pytest.approx(1.0)


def test_timeline_bars_are_the_trace(real):
    root, runs = real
    fig = plot_timeline(str(root / "dlion_mavo_0"), steps=(2, 3))
    ax = fig.axes[0]
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    # no policy and no faults: only the five phases of an ordinary step are drawn and listed
    assert list(bars) == list(PHASES[:5])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(PHASES[:5])
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        *(f"worker{i}" for i in range(WORKERS)), "server"]
    assert ax.get_xlabel() == "simulated time since step 2 began (ms)"
    assert len(bars["compute"]) == WORKERS * 2 and len(bars["send"]) == WORKERS * 2
    assert len(bars["aggregate"]) == 2
    # the drawn window starts when the first worker starts step 2 (its second compute row)
    trace = runs["dlion/mavo", 0].trace
    computes = {i: [row for row in trace if row[:2] == (f"worker{i}", "compute")]
                for i in range(WORKERS)}
    begin = min(rows[1][2] for rows in computes.values())
    drawn = [(p.get_x(), p.get_width()) for p in bars["compute"]
             if p.get_y() + p.get_height() / 2 == 1]  # worker1's row
    expected = [((row[2] - begin) * 1e3, (row[3] - row[2]) * 1e3) for row in computes[1][1:3]]
    np.testing.assert_allclose(sorted(drawn), expected, rtol=1e-9, atol=1e-12)
    (steps_axis,) = ax.child_axes  # the step numbers above the panel, at the boundaries
    assert [t.get_text() for t in steps_axis.get_xticklabels()] == ["step 2", "step 3"]
    assert steps_axis.get_xticks()[0] == 0.0


def test_timeline_needs_a_traced_run(made_up):
    with pytest.raises(PlotError, match="run.trace=true"):
        plot_timeline(str(made_up / "bandwidth"))


def test_cli_draws_every_kind(real, made_up, tmp_path, capsys):
    root, _ = real
    requests = [(root, ["--kind", "curves", "--metric", "loss", "--x", "time"], "simulated"),
                (root, ["--kind", "tradeoff"], "bits per parameter per step"),
                (made_up / "bandwidth", ["--kind", "bandwidth"], "link bandwidth"),
                (made_up / "grid", ["--kind", "heatmap"], "workers (count)"),
                (root / "gadamw_1", ["--kind", "timeline", "--steps", "4"], "step 4")]
    for directory, options, text in requests:
        out = tmp_path / f"{options[1]}.svg"
        assert main(["plot", str(directory), *options, "-o", str(out)]) == 0
        assert text in out.read_text()
    assert main(["plot", str(made_up / "grid"), "--kind", "heatmap"]) == 0
    assert (made_up / "grid" / "heatmap.png").stat().st_size > 10_000


@pytest.mark.parametrize("options, says", [
    (["--kind", "timeline"], "run.trace=true"),
    (["--kind", "curves", "--metric", "nope"], "available: "),
    (["--kind", "curves", "--steps", "3"], "does not take --steps"),
    (["--kind", "heatmap", "--baseline", "glion"], "methods in these runs: dlion/mavo, gadamw"),
    (["--kind", "timeline", "--steps", "2-x"], "--steps '2-x'"),
    (["-o", "figure.jpg"], "allowed: .png, .svg, .pdf"),
])
def test_cli_bad_requests_are_one_line_errors(made_up, capsys, options, says):
    assert main(["plot", str(made_up / "grid"), *options]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


# --- figures a reader can trust at a glance ---------------------------------------------------

def _text_boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def test_legends_and_titles_use_human_units(made_up):
    from plots.style import run_label

    a = _made_up("dlion/mavo", 1e10, 8, 0, 1.0).summary["spec"]
    b = _made_up("dlion/mavo", 1e8, 8, 0, 1.0).summary["spec"]
    assert run_label(a, [a, b]) == "D-Lion (MaVo) (bandwidth=10 Gb/s)"
    big = resolve({"cluster": {"model": "gpt2-small"}})
    fig = plot_bandwidth([_with_spec(_made_up("gadamw", bw, 8, 0, 1.0), bandwidth=bw,
                                     model="gpt2-small") for bw in (1e8, 1e9)])
    assert "messages sized for 124M parameters (gpt2-small)" in " ".join(
        fig._suptitle.get_text().split())
    assert big["cluster"]["model_params"] == 124_439_808


def _with_spec(run, bandwidth, model):
    run.summary["spec"] = resolve({"objective": {"name": "logistic", "samples": 256,
                                                 "features": 7},
                                   "method": dict(METHODS["gadamw"]),
                                   "cluster": {"workers": 8, "model": model},
                                   "network": {"bandwidth": bandwidth},
                                   "run": {"steps": 10, "target": 0.5}})
    return run


def test_one_seed_draws_no_error_bars(made_up):
    runs = [_made_up(m, bw, 8, 0, t) for m, times in CURVES.items() for bw, t in times.items()]
    ax = plot_bandwidth(runs).axes[0]
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["D-Lion (MaVo)",
                                                                      "G-AdamW"]


def test_tradeoff_labels_never_overlap_or_leave_the_axes():
    # eleven methods crowded near one loss, two of them at the same place
    places = {"dlion/mavo": (2, 0.304), "gadamw": (64, 0.295)}
    crowd = [(2.1, 0.3041), (6, 0.296), (8, 0.309), (8, 0.297), (10, 0.297), (10, 0.297),
             (0.6, 0.394), (34, 0.296), (29, 0.376)]
    names = ["signum", "terngrad", "powersgd", "efsignsgd", "topk", "graddrop", "randomk",
             "qsgd", "dgc"]
    runs = []
    for name, (bits, loss) in [*places.items(), *zip(names, crowd)]:
        method = {"name": name} if "/" not in name else {"name": "dlion",
                                                          "aggregate": name.split("/")[1]}
        run = _made_up("gadamw", 1e9, 8, 0, 1.0)
        run.summary["spec"] = resolve({"method": method, "cluster": {"workers": 8}})
        run.summary["bits_per_param_per_step"] = {"total": bits}
        run.history["eval_loss"] = np.full(10, loss)
        runs.append(run)
    fig = plot_tradeoff(runs)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == "point-label"]
    texts = [t.get_text() for t in labels]
    assert "GradDrop / Top-k" in texts  # one place, one label
    assert len(labels) == 10
    boxes = _text_boxes(fig, labels)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    for i, box in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, texts[i]
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, texts[i]
        for j, other in enumerate(boxes[i + 1:], start=i + 1):
            assert not box.overlaps(other), (texts[i], texts[j])
    # and none covers a point
    points = ax.transData.transform([(r.summary["bits_per_param_per_step"]["total"],
                                      r.history["eval_loss"][-1]) for r in runs])
    for box, text in zip(boxes, texts):
        assert not any(box.contains(x, y) for x, y in points), text


def test_heatmap_of_one_column_keeps_its_title_and_round_colour_bar_ticks(made_up, tmp_path):
    runs = [r for r in (experiments.load(p) for p in sorted((made_up / "grid").iterdir())
                                            if p.is_dir())
            if r.summary["spec"]["network"]["bandwidth"] == 1e8]
    fig = plot_heatmap(runs)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert 0 <= title.x0 and title.x1 <= fig.bbox.width
    bar = fig.axes[1]
    labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?×", t) for t in labels), labels
    for text in labels:  # 1, 2 or 5 times a power of ten
        value = float(text[:-1])
        assert f"{value / 10 ** math.floor(math.log10(value)):.6g}" in ("1", "2", "5"), text
    assert "1×" in labels
    assert not [t for t in bar.yaxis.get_minorticklabels() if t.get_text()]


def test_curves_default_to_evaluation_loss_else_smoothed_training_loss(real, tmp_path):
    root, runs = real
    fig = plot_curves(str(root / "gadamw_0"), axes=("step",))
    assert fig.axes[0].get_ylabel() == "evaluation loss"
    plain = experiments.simulate({**REAL, "method": METHODS["gadamw"],
                                  "run": {**REAL["run"], "steps": 200, "eval_every": 0}})
    fig = plot_curves(plain, axes=("step",))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "training loss (moving average of 4 steps)"
    raw = plain.history["train_loss"]
    expected = [raw[max(0, t - 3):t + 1].mean() for t in range(len(raw))]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), expected, rtol=1e-12)


def test_bands_never_reach_below_zero_for_a_loss(tmp_path):
    runs = []
    for seed, scale in enumerate((0.02, 1.0, 2.0)):  # wildly different seeds near zero
        run = _made_up("gadamw", 1e9, 8, seed, 1.0)
        run.history["eval_loss"] = np.linspace(0.1, 0.001, 10) * scale
        runs.append(run)
    fig = plot_curves(runs, metric="eval_loss", axes=("step",))
    band = fig.axes[0].collections[0].get_paths()[0].vertices
    assert band[:, 1].min() >= 0


def test_timeline_panels_each_span_their_own_window_and_say_how_much_shorter(tmp_path):
    """A fast method's steps are not slivers on a slow one's axis: every panel's axis is its
    own window, and the shorter panel's title says how many times shorter it is."""
    runs = {}
    for key, method in METHODS.items():  # large messages: G-AdamW's steps take far longer
        runs[key] = experiments.simulate({**REAL, "method": method,
                                          "cluster": {**REAL["cluster"], "model_params": 10**6}})
        runs[key].save(tmp_path / key.replace("/", "_"))
    fig = plot_timeline([str(tmp_path / "dlion_mavo"), str(tmp_path / "gadamw")])
    first, second = fig.axes[:2]
    spans = {}
    for key in ("dlion/mavo", "gadamw"):
        rows = [r for r in runs[key].trace if 1 <= r[5] <= 6 and r[1] != "deadline"]
        spans[key] = max(r[3] for r in rows) - min(r[2] for r in rows)
    units = {"s": 1.0, "ms": 1e-3, "µs": 1e-6}
    for ax, key in ((first, "dlion/mavo"), (second, "gadamw")):
        unit = ax.get_xlabel().rsplit("(", 1)[1].rstrip(")")
        np.testing.assert_allclose(ax.get_xlim()[1] * units[unit], spans[key], rtol=1e-9)
    ratio = spans["gadamw"] / spans["dlion/mavo"]
    assert ratio > 1.5
    assert f"{ratio:.0f}x shorter than the longest panel" in first.get_title(loc="left")
    assert "shorter" not in second.get_title(loc="left")


def test_an_incomplete_sweep_says_so_in_the_figure(tmp_path):
    from experiments.sweep import run_sweep

    raw = {"objective": {"name": "logistic", "samples": 256, "features": 7},
           "cluster": {"workers": 2}, "run": {"steps": 4, "eval_every": 2},
           "sweep": {"method.name": ["dlion", "glion", "gadamw"]}}
    run_sweep(raw, tmp_path, jobs=1)
    for point in sorted(tmp_path.glob("*/summary.json"))[1:]:
        point.unlink()
    fig = plot_curves(str(tmp_path), out_file=tmp_path / "f.png")
    notes = [t.get_text() for t in fig.texts if t.get_gid() == "incomplete"]
    assert notes == ["incomplete sweep: 1 of 3 points finished"]


def test_sweep_figure_of_bandwidth_has_unit_ticks_and_no_bars_for_one_seed(tmp_path):
    from plots.sweep import plot_sweep

    runs = [_made_up(m, bw, 8, 0, t) for m, times in CURVES.items() for bw, t in times.items()]
    ax = plot_sweep(runs, key="network.bandwidth", metric="loss").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100 Mb/s", "1 Gb/s", "10 Gb/s"]
    assert ax.get_xlabel() == "link bandwidth"
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
