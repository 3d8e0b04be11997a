"""The notebooks as nbgrader assignments: student versions and autograding, done by nbgrader itself.

Every exercise of the instructor notebooks (``notebooks/``) is two cells with nbgrader metadata:
a *solution* cell, whose answer sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``,
and the locked, autograded *check* cell after it (1 point; it raises when the answer is wrong).
Each notebook is one assignment, named by its stem, in a standard nbgrader course directory::

    <root>/nbgrader_config.py
    <root>/source/<stem>/<stem>.ipynb             the instructor version
    <root>/release/<stem>/<stem>.ipynb            `nbgrader generate_assignment`: the student version
    <root>/submitted/<student>/<stem>/<stem>.ipynb
    <root>/autograded/<student>/<stem>/<stem>.ipynb  `nbgrader autograde`: executed, with marks in gradebook.db

:func:`write_course_directory` lays one out; :func:`student_versions` (``make student``) writes the
release versions to ``student/``; :func:`autograde` grades submissions and returns the marks.
In a student version a solution becomes :data:`CODE_STUB`, which fails with a message that says
what to do; the check cell after it then fails too, which is what the tests verify.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .paths import REPO_ROOT, notebook_paths

__all__ = ["CODE_STUB", "NOT_DONE", "nbgrader_config", "exercise_cells", "write_course_directory", "student_versions",
           "autograde", "marks"]

NOT_DONE = "Exercise not done yet"
CODE_STUB = (f'# YOUR CODE HERE\nraise NotImplementedError("{NOT_DONE}: replace these two lines with your answer, '
             'run this cell, then the check cell below it.")')


def nbgrader_config(timeout: int = 900) -> str:
    """The course's ``nbgrader_config.py``: its stub, and ``timeout`` seconds per executed cell (a notebook
    trains and attacks: minutes per cell on a 2-core CPU under the standard profile)."""
    return "\n".join([
        "c = get_config()  # noqa: F821 (defined by nbgrader when it reads this file)",
        f"c.ClearSolutions.code_stub = {{'python': {CODE_STUB!r}}}",
        "c.ClearSolutions.enforce_metadata = True",
        f"c.Execute.timeout = {int(timeout)}", ""])


def exercise_cells(notebook) -> list[tuple[int, int]]:
    """``(solution cell index, check cell index)`` of each exercise of an nbformat notebook.

    Works on instructor and student versions alike (it reads the nbgrader metadata).  Raises
    ValueError naming the cell when a solution has no metadata or no graded check cell after it.
    """
    pairs, cells = [], notebook.cells
    for i, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if "### BEGIN SOLUTION" in cell.source and not meta.get("solution"):
            raise ValueError(f"cell {i} has a solution but no nbgrader solution metadata ({meta or 'none'})")
        if meta.get("solution"):
            check = cells[i + 1].get("metadata", {}).get("nbgrader", {}) if i + 1 < len(cells) else {}
            if not (check.get("grade") and check.get("locked") and check.get("points", 0) > 0):
                raise ValueError(f"cell {i + 1}: the cell after the solution in cell {i} must be a locked, "
                                 f"graded check cell with points; its nbgrader metadata is {check or 'missing'}")
            pairs.append((i, i + 1))
    return pairs


def write_course_directory(root: str | Path, notebooks=None, *, timeout: int = 900) -> Path:
    """Lay out an nbgrader course directory at ``root`` with one assignment per notebook.

    ``notebooks``: stems or prefixes (``["02", "07"]``); all notebooks by default.
    ``timeout``: seconds one cell may run when nbgrader executes it.
    """
    root = Path(root)
    for path in notebook_paths(notebooks):
        dest = root / "source" / path.stem
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / path.name)
    (root / "nbgrader_config.py").write_text(nbgrader_config(timeout))
    return root


def _nbgrader(root: Path, *args: str, env: dict | None = None) -> None:
    """Run one nbgrader command in the course directory ``root``; raise with its log when it fails."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # nbgrader runs `alembic` (its gradebook migrations) from PATH: put this environment's scripts first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = subprocess.run(cmd, cwd=root, env={**os.environ, **(env or {}), "PATH": path}, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed in {root} (exit {done.returncode}):\n"
                           f"{done.stdout[-3000:]}{done.stderr[-3000:]}")


def student_versions(out: str | Path = REPO_ROOT / "student", notebooks=None) -> list[Path]:
    """Write the student versions of the notebooks to ``out`` (solutions stubbed, outputs cleared).

    Runs ``nbgrader generate_assignment`` on a temporary course directory, so the stubs, the
    locked check cells and the checksums nbgrader later verifies are nbgrader's own.
    Returns the paths written, ``out/<stem>.ipynb``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="nbgrader-course-") as tmp:
        root = write_course_directory(tmp, notebooks)
        for path in notebook_paths(notebooks):
            _nbgrader(root, "generate_assignment", path.stem, "--force")
            shutil.copy2(root / "release" / path.stem / path.name, out / path.name)
            written.append(out / path.name)
    return written


def autograde(root: str | Path, submissions: dict[str, dict[str, Path]], *, env: dict | None = None,
              generate: bool = True) -> dict:
    """Autograde ``submissions`` (student id -> {assignment stem -> notebook path}) in course ``root``.

    ``root`` is a directory from :func:`write_course_directory`.  With ``generate`` the assignments
    are generated first (so the gradebook knows their cells; skip it on a second call for the same
    assignments).  nbgrader executes every notebook with ``env`` added to the kernel's environment;
    returns :func:`marks` of the whole gradebook.
    """
    root = Path(root)
    if generate:
        for name in sorted({a for subs in submissions.values() for a in subs}):
            _nbgrader(root, "generate_assignment", name, "--force")
    for student, subs in submissions.items():
        for name, path in subs.items():
            dest = root / "submitted" / student / name
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / f"{name}.ipynb")
            _nbgrader(root, "autograde", name, "--student", student, "--create", "--force", env=env)
    return marks(root)


def marks(root: str | Path) -> dict[tuple[str, str], dict]:
    """Marks in the gradebook of course ``root``: (student, assignment) -> {score, max_score, cells}.

    ``cells`` maps each graded cell's ``grade_id`` to its score.
    """
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                cells = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
                out[(sub.student.id, assignment.name)] = {"score": sub.score, "max_score": sub.max_score,
                                                          "cells": cells}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Student versions of the notebooks through nbgrader.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "student", help="folder for the student versions")
    parser.add_argument("--only", nargs="*", help="notebook prefixes, e.g. 02 07 (default: all)")
    args = parser.parse_args(argv)
    for path in student_versions(args.out, args.only):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
