"""The matplotlib backend every figure uses, and writing a figure to a file."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from plots.data import PlotError  # noqa: E402

FORMATS = (".png", ".svg", ".pdf")


def save(fig, out_file=None):
    """Write ``fig`` to ``out_file`` (format from the suffix) when given; returns ``fig``.

    A written figure is closed, so a long sweep of plots holds no figures in memory.
    """
    if out_file is None:
        return fig
    out = Path(out_file)
    if out.suffix.lower() not in FORMATS:
        raise PlotError(f"figure file {str(out)!r}: the format comes from the suffix; "
                        f"allowed: {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return fig


def gbps(bits_per_s: float) -> str:
    """A bandwidth in Gb/s with three significant digits at most ('0.1', '2.15', '100')."""
    return f"{bits_per_s / 1e9:.3g}"


__all__ = ["gbps", "plt", "save"]
