"""Loss curves of one or more runs: against step, simulated time and cumulative bits sent."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.results import is_complete, load  # noqa: E402
from plots.style import color_for, run_label  # noqa: E402

X_AXES = {
    "step": ("step", "step"),
    "time": ("time_s", "simulated wall-clock time (s)"),
    "bits": (None, "bits sent per worker (up + down, cumulative)"),
}


def find_runs(directory) -> list[Path]:
    """The finished run directories at or directly below ``directory`` (sorted by name)."""
    path = Path(directory)
    if is_complete(path):
        return [path]
    runs = sorted(p for p in path.iterdir() if p.is_dir() and is_complete(p)) if path.is_dir() else []
    if not runs:
        raise FileNotFoundError(f"{path} holds no finished runs (no summary.json at or below it)")
    return runs


def _x_values(history: dict, axis: str) -> np.ndarray:
    if axis == "bits":
        return history["bits_up"] + history["bits_down"]
    return history[X_AXES[axis][0]]


def plot_curves(results, out_file=None, metric: str = "train_loss",
                axes: tuple = ("step", "time", "bits"), title: str | None = None):
    """One panel per x-axis in ``axes``, one line per run; returns the matplotlib Figure.

    ``results``: Result objects or run/sweep directories. ``metric``: a history column
    (``train_loss``, or an ``eval_*`` column, drawn at its evaluation steps). Writes PNG or SVG
    to ``out_file`` when given (format from the suffix).
    """
    runs = []
    for item in results if isinstance(results, (list, tuple)) else [results]:
        if isinstance(item, (str, Path)):
            runs.extend(load(p) for p in find_runs(item))
        else:
            runs.append(item)
    if not runs:
        raise ValueError("plot_curves: no runs to plot")
    specs = [r.summary["spec"] for r in runs]
    if metric not in runs[0].history:
        raise ValueError(f"metric {metric!r} is not in the history; available: "
                         f"{', '.join(k for k in runs[0].history if k != 'step')}")
    fig, panels = plt.subplots(1, len(axes), figsize=(4.6 * len(axes), 3.8), squeeze=False)
    for ax, axis in zip(panels[0], axes):
        for run, spec in zip(runs, specs):
            y = run.history[metric]
            x = _x_values(run.history, axis)
            keep = np.isfinite(y) & np.isfinite(x)
            if axis != "step":
                keep &= x > 0  # log axes; the first point at 0 bits or 0 s has no place there
            ax.plot(x[keep], y[keep], color=color_for(spec), label=run_label(spec, specs),
                    lw=1.6)
        ax.set_xlabel(X_AXES[axis][1])
        ax.set_ylabel(metric.replace("_", " "))
        if axis != "step":
            ax.set_xscale("log")
        ax.set_yscale("log" if _positive(runs, metric) else "linear")
        ax.grid(True, which="major", alpha=0.3)
    panels[0][0].legend(fontsize=8, frameon=False)
    fig.suptitle(title or _default_title(specs[0]), fontsize=11)
    fig.tight_layout()
    if out_file is not None:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_file, dpi=130)
        plt.close(fig)
    return fig


def _positive(runs, metric) -> bool:
    values = np.concatenate([r.history[metric] for r in runs])
    values = values[np.isfinite(values)]
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > 20


def _default_title(spec: dict) -> str:
    from sim.units import format_bandwidth

    bandwidth = spec["network"]["bandwidth"]
    bw = format_bandwidth(bandwidth) if not isinstance(bandwidth, list) else "mixed links"
    return (f"{spec['objective']['name']}: {spec['cluster']['workers']} workers, {bw}, "
            f"{spec['network']['topology']}")
