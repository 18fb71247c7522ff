"""What the study figure scripts of docs/ share: the project on the import path, a headless
matplotlib, their command line (a study's run directory, ``-o FIGURE``) and how they save.

Import it first in such a script: ``from study_figure import arguments, plt, save``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (for the scripts)


def arguments(doc: str, figure: str) -> argparse.Namespace:
    """The script's command line: the study's run directory, and the figure file (default
    docs/figures/``figure``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the study's sweep directory")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures" / figure,
                        help=f"figure file (default docs/figures/{figure})")
    return parser.parse_args()


def save(fig, output: Path, dpi: int = 130) -> None:
    """Write ``fig`` to ``output`` (its folder created) and say where."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=dpi)
    print(f"\nwrote {output}")
