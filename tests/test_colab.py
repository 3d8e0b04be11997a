"""The notebooks' hidden first cell: on Colab it installs the course and its data; elsewhere it does nothing.

Colab is simulated (a ``google.colab`` module in ``sys.modules``), not reached.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import types

import nbformat
import pytest

from labutils.course import links
from labutils.course.paths import notebook_paths

NOTEBOOKS = notebook_paths()


def _first(path):
    return nbformat.read(path, as_version=4).cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_cell_is_the_hidden_two_line_colab_setup(path):
    cell = _first(path)
    assert cell.cell_type == "code" and cell.metadata.get("tags") == ["colab-setup"]
    assert cell.metadata["jupyter"]["source_hidden"] is True
    assert len(cell.source.splitlines()) == 2
    # no expression statement at the top level: IPython would display its value (False) under the hidden cell
    assert not any(isinstance(node, ast.Expr) for node in ast.parse(cell.source).body)
    assert cell.source == _first(NOTEBOOKS[0]).source, "one setup cell for the whole series"


def _run_first_cell(monkeypatch, colab: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(_first(NOTEBOOKS[0]).source, "colab-setup", "exec"), {})
    return calls


def test_outside_colab_the_cell_does_nothing(monkeypatch):
    assert _run_first_cell(monkeypatch, colab=False) == []


def test_on_colab_it_installs_the_course_from_the_repository_and_fetches_the_data(monkeypatch):
    (args, kwargs), = _run_first_cell(monkeypatch, colab=True)
    command = args[0]
    assert f"'labutils[course] @ git+{links.repository_url()}'" in command
    assert "torchattacks==3.5.1" in command and command.endswith("python -m labutils.data")
    assert kwargs == {"shell": True, "check": True}  # a failed install stops the notebook with pip's error
