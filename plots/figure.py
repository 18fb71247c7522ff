"""The matplotlib backend every figure uses, and writing a figure to a file."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from plots.data import PlotError, sweep_progress  # noqa: E402

FORMATS = (".png", ".svg", ".pdf")


def save(fig, out_file=None, results=None, dpi: int = 130):
    """Write ``fig`` to ``out_file`` (format from the suffix) when given; returns ``fig``.

    When ``results`` is a sweep directory whose points are not all finished, the figure says
    so in a line at its bottom left. A written figure is closed, so a long sweep of plots
    holds no figures in memory.
    """
    progress = sweep_progress(results) if isinstance(results, (str, Path)) else None
    if progress is not None and progress[0] < progress[1]:
        fig.text(0.005, 0.005, f"incomplete sweep: {progress[0]} of {progress[1]} points "
                 "finished", fontsize=7.5, color="#B00000", ha="left", va="bottom",
                 gid="incomplete")
    if out_file is None:
        return fig
    out = check_format(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return fig


def check_format(out_file) -> Path:
    """``out_file`` as a Path; PlotError unless its suffix names a format we write."""
    out = Path(out_file)
    if out.suffix.lower() not in FORMATS:
        raise PlotError(f"figure file {str(out)!r}: the format comes from the suffix; "
                        f"allowed: {', '.join(FORMATS)}")
    return out


def bandwidth_text(bits_per_s: float) -> str:
    """A bandwidth with its unit and three significant digits at most ('100 Mb/s', '2.15 Gb/s')."""
    from sim.units import format_bandwidth

    return format_bandwidth(float(f"{bits_per_s:.3g}"))


def wrap(text: str, width: int) -> str:
    """``text`` with every line wrapped at ``width`` characters (titles that must not clip)."""
    return "\n".join("\n".join(textwrap.wrap(line, width)) or line for line in text.split("\n"))


def unit_ticks(axis, kind: str) -> None:
    """Label the major ticks of a matplotlib ``axis`` in human units of ``kind`` ('bandwidth',
    'time', 'size'), and drop the minor tick labels (a log axis would print 2x10^9 there)."""
    from sim.units import format_quantity

    axis.set_major_formatter(FuncFormatter(lambda v, _: format_quantity(float(f"{v:.3g}"),
                                                                        kind)))
    axis.set_minor_formatter(NullFormatter())


__all__ = ["bandwidth_text", "check_format", "plt", "save", "unit_ticks", "wrap"]
