"""Notebooks read as lessons (../shared/conventions/notebooks.md): objectives, a predict-first cell and a summary;
exercises whose check cells do not give the solution away; code cells short enough to read."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_VISIBLE_LINES = 25  # a code cell a student reads; longer bookkeeping cells are hidden (jupyter.source_hidden)
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


def _solution_lines(source: str) -> list[str]:
    """The code lines between the solution markers (comments and blank lines left out)."""
    lines, inside = [], False
    for line in source.splitlines():
        text = line.strip()
        if text.startswith(BEGIN):
            inside = True
        elif text.startswith(END):
            inside = False
        elif inside and text and not text.startswith("#"):
            lines.append(text)
    return lines


def _exercises(cells):
    """(exercise cell index, its solution lines, the code cells after it up to the next exercise)."""
    marked = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and BEGIN in _source(c)]
    for k, i in enumerate(marked):
        end = marked[k + 1] if k + 1 < len(marked) else len(cells)
        after = [j for j in range(i + 1, end) if cells[j]["cell_type"] == "code"]
        yield i, _solution_lines(_source(cells[i])), after


def test_the_course_has_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_objectives_a_prediction_and_a_summary(path):
    cells = _cells(path)
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown").lower()
    assert "learning objectives" in markdown, "a 'Learning objectives' section at the top"
    assert "prerequisites" in markdown and "expected time" in markdown
    assert "predict first" in markdown, "a 'Predict first' cell before the most surprising result"
    headings = [line for c in cells if c["cell_type"] == "markdown" for line in _source(c).splitlines()
                if line.startswith("#")]
    assert any("summary" in h.lower() for h in headings), "a Summary section"
    last_section = max(i for i, h in enumerate(headings) if h.startswith("## "))
    assert "summary" in headings[last_section].lower() or any(
        "summary" in h.lower() for h in headings[last_section - 1:]), "the summary closes the notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cells_do_not_contain_the_solution(path):
    cells = _cells(path)
    exercises = list(_exercises(cells))
    assert len(exercises) >= 2, "at least two exercises per notebook"
    for i, solution, after in exercises:
        assert solution, f"cell {i}: an empty solution"
        assert after, f"cell {i}: no check cell after the exercise"
        for j in after:
            check = {line.strip() for line in _source(cells[j]).splitlines()}
            leaked = [line for line in solution if line in check]
            assert not leaked, f"check cell {j} repeats the solution of exercise cell {i}: {leaked}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_visible_code_cells_are_short(path):
    long = {i: len(_source(c).splitlines()) for i, c in enumerate(_cells(path))
            if c["cell_type"] == "code" and not c.get("metadata", {}).get("jupyter", {}).get("source_hidden")
            and len(_source(c).splitlines()) > MAX_VISIBLE_LINES}
    assert not long, f"code cells over {MAX_VISIBLE_LINES} lines (split them, or move the detail to labutils): {long}"


def test_the_leak_check_finds_a_leak():
    cells = [{"cell_type": "code", "source": [f"x = None\n{BEGIN}\nx = torch.autograd.grad(loss, z)\n{END}\n"]},
             {"cell_type": "code", "source": ["check('g', x, torch.autograd.grad(loss, z))\n"]},
             {"cell_type": "code", "source": ["x = torch.autograd.grad(loss, z)\n"]}]
    ((i, solution, after),) = _exercises(cells)
    assert solution == ["x = torch.autograd.grad(loss, z)"] and after == [1, 2]
    assert any(line in {s.strip() for s in _source(cells[2]).splitlines()} for line in solution)
