"""Regenerate every figure in docs/figures from the bundled studies: ``make figures``.

Each figure is drawn by the command line a user would type (``dlion-sim sweep NAME`` then
``dlion-sim plot``), from runs kept in a work directory (default ``studies/``, which
``make studies`` shares), so finished points are reused. ``docs/figures/manifest.json``
records, per figure, the SHA-256 of the bundled spec it comes from (its parsed TOML, so
comments do not count), the plot options, and the SHA-256 of the figure file.
``tests/test_docs_figures.py`` recomputes the first two and checks the third against the
file, so a study changed without regenerating its figure fails the suite.

    python docs/make_figures.py [--work DIR] [--only NAME.png ...]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = Path(__file__).resolve().parent / "figures"
MANIFEST = FIGURES_DIR / "manifest.json"
#: sources that are data files rather than bundled studies
DATA = {"calibration": ["tests/data/calibration/linux_tcp_cubic.csv",
                        "tests/data/calibration/linux_tcp_idle_cubic.csv"]}

#: figure file -> (bundled study or data source, plot options as given to `dlion-sim plot`, or
#: ["--script", PATH]: a script of this repository that draws it, given the study's run
#: directory (none for a data source) and -o FILE)
FIGURES: dict[str, tuple[str, list[str]]] = {
    "quickstart.png": ("quickstart", ["--kind", "curves"]),
    "workers.png": ("workers", ["--kind", "sweep", "--key", "cluster.workers"]),
    "batch.png": ("batch", ["--kind", "sweep", "--key", "cluster.batch_size"]),
    "ties.png": ("ties", ["--kind", "sweep", "--key", "cluster.workers", "--series",
                          "method.tie"]),
    "tradeoff.png": ("baselines", ["--kind", "tradeoff", "--bits", "steady"]),
    "bandwidth.png": ("bandwidth", ["--kind", "bandwidth"]),
    "heatmap.png": ("bandwidth", ["--kind", "heatmap"]),
    "rtt.png": ("rtt", ["--kind", "rtt"]),
    "deadline.png": ("deadline", ["--kind", "deadline"]),
    "async.png": ("async", ["--kind", "asynchrony"]),
    "faults.png": ("faults", ["--kind", "faults"]),
    "byzantine.png": ("byzantine", ["--kind", "byzantine"]),
    "gpt.png": ("gpt", ["--kind", "transformer"]),
    "vit.png": ("vit", ["--kind", "transformer"]),
    "faults_timeline.png": ("timeline_faults", ["--kind", "timeline", "--steps", "1-8"]),
    "collectives.png": ("collectives", ["--kind", "collectives"]),
    "fair.png": ("fair", ["--kind", "fair"]),
    "local.png": ("local", ["--kind", "local"]),
    "validation.png": ("calibration", ["--script", "docs/validation.py"]),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def study_hash(name: str) -> str:
    """SHA-256 of a bundled spec's content (parsed TOML as canonical JSON), or of a data
    source's files."""
    from experiments.spec import bundled_spec, load_toml

    if name in DATA:
        return _sha256(b"".join((ROOT / path).read_bytes() for path in DATA[name]))
    return _sha256(json.dumps(load_toml(bundled_spec(name)), sort_keys=True).encode())


def expected_entry(figure: str) -> dict:
    """What the manifest must say about ``figure``, apart from the file's own hash."""
    study, options = FIGURES[figure]
    return {"study": study, "spec_sha256": study_hash(study), "options": options}


def regenerate(work: Path, only=None) -> None:
    """Run the studies (reusing finished points in ``work``), draw the figures, write the
    manifest. A figure that cannot be drawn stops everything with the CLI's message."""
    from experiments.cli import main

    names = list(only or FIGURES)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for figure in names:
        study, options = FIGURES[figure]
        if study not in DATA and main(["sweep", study, "-o", str(work / study)]) != 0:
            sys.exit(f"make_figures: the {study} sweep failed")
        out = FIGURES_DIR / figure
        if options[0] == "--script":
            runs = [] if study in DATA else [str(work / study)]
            drawn = subprocess.run([sys.executable, str(ROOT / options[1]), *runs, "-o",
                                    str(out)]).returncode == 0
        else:
            drawn = main(["plot", str(work / study), *options, "-o", str(out)]) == 0
        if not drawn:
            sys.exit(f"make_figures: {figure} could not be drawn")
        manifest[figure] = {**expected_entry(figure), "png_sha256": _sha256(out.read_bytes())}
    manifest = {name: manifest[name] for name in FIGURES if name in manifest}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="studies", type=Path,
                        help="directory for the studies' runs (default: studies)")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="FIGURE",
                        help="regenerate only these figures")
    args = parser.parse_args()
    regenerate(args.work, args.only)
