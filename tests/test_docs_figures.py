"""docs/figures are current: each was drawn from the bundled study as it is now (make figures)."""
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_figures():
    return _load()


def test_every_figure_in_docs_is_made_by_make_figures(make_figures):
    on_disk = {p.name for p in (DOCS / "figures").glob("*.png")}
    assert on_disk == set(make_figures.FIGURES)


@pytest.mark.parametrize("figure", list(_load().FIGURES))
def test_figure_was_drawn_from_the_study_as_it_is_now(make_figures, figure):
    manifest = json.loads((DOCS / "figures" / "manifest.json").read_text())
    assert figure in manifest, f"{figure} is not in the manifest: run `make figures`"
    entry = manifest[figure]
    stale = "is stale: run `make figures` (or python docs/make_figures.py --only " + figure + ")"
    assert {k: entry[k] for k in ("study", "spec_sha256", "options")} == \
        make_figures.expected_entry(figure), f"{figure} {stale}"
    png = hashlib.sha256((DOCS / "figures" / figure).read_bytes()).hexdigest()
    assert png == entry["png_sha256"], f"{figure} was changed by hand; {stale}"


def test_the_check_notices_a_changed_study(make_figures, monkeypatch):
    """The spec hash follows the study's content, not its comments or layout."""
    import experiments.spec

    real = experiments.spec.load_toml
    before = make_figures.study_hash("workers")
    monkeypatch.setattr(experiments.spec, "load_toml",
                        lambda path: {**real(path), "run": {**real(path)["run"], "steps": 301}})
    assert make_figures.study_hash("workers") != before
