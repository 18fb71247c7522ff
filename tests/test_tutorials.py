"""The tutorials run: every lesson executes top to bottom in a kernel, its closing assertions
of the lesson's claims included, so a change that breaks a lesson breaks the suite."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import jupytext
import pytest
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tutorials_build", ROOT / "tutorials" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

LESSONS = build.lessons()


def test_every_lesson_is_found():
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]
    assert len(LESSONS) >= 5


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_the_parts_of_a_lesson(lesson):
    notebook = jupytext.read(lesson)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "What you will learn" in text and "Try this" in text
    code = [c for c in notebook.cells if c.cell_type == "code"]
    last = ast.parse(code[-1].source)
    assert any(isinstance(node, ast.Assert) for node in ast.walk(last)), \
        f"{lesson.name}: the last code cell must assert the lesson's claims"
    assert sum(build.README_TAG in c.metadata.get("tags", []) for c in code) == 1, \
        f"{lesson.name}: exactly one cell tagged {build.README_TAG!r} (the README's figure)"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_executes_and_its_claims_hold(lesson):
    notebook, _ = build.execute(lesson)
    assert build.readme_figure(notebook)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_claim_fails_the_lesson(tmp_path):
    lesson = tmp_path / "01_broken.py"
    lesson.write_text("# %%\nx = 1 + 1\n\n# %%\nassert x == 3, 'the claim broke'\n")
    with pytest.raises(CellExecutionError, match="the claim broke"):
        build.execute(lesson)
