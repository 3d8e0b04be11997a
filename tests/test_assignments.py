"""The notebooks as nbgrader assignments (labutils.course.assignments), graded by nbgrader itself.

One module-scoped course directory: every notebook's instructor version and its unmodified student
version (made by ``nbgrader generate_assignment``) are submitted and autograded under the smoke
profile.  The instructor versions must get full marks, the student versions zero, and every check
cell of a student version must fail with a message that tells the student what to do.
"""
from __future__ import annotations

import json
import tarfile

import nbformat
import pytest

from labutils import data, training
from labutils.course import assignments, paths
from labutils.course.exercises import ExerciseError, check
from labutils.course.findings import REPORT_NOTEBOOK

NOTEBOOKS = paths.notebook_paths()
STEMS = [p.stem for p in NOTEBOOKS]


def _nb(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=STEMS)
def test_every_notebook_has_two_exercises_with_nbgrader_metadata(path):
    nb = _nb(path)
    pairs = assignments.exercise_cells(nb)
    assert len(pairs) >= 2, f"{path.name} has {len(pairs)} exercise(s)"
    ids = [nb.cells[i].metadata["nbgrader"]["grade_id"] for pair in pairs for i in pair]
    assert len(set(ids)) == len(ids)
    for sol, chk in pairs:
        assert "### END SOLUTION" in nb.cells[sol].source
        assert "check(" in nb.cells[chk].source and "hint=" in nb.cells[chk].source, \
            f"{path.name} cell {chk}: a check cell needs a hint for a student who got it wrong"


def test_exercise_cells_refuses_a_solution_without_metadata():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = None\n### BEGIN SOLUTION\nx = 1\n"
                                                                   "### END SOLUTION")])
    with pytest.raises(ValueError, match="no nbgrader solution metadata"):
        assignments.exercise_cells(nb)
    nb.cells[0].metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "a", "schema_version": 3}
    nb.cells.append(nbformat.v4.new_code_cell("check('x', x, 1)"))
    with pytest.raises(ValueError, match="locked, graded check cell"):
        assignments.exercise_cells(nb)


def test_check_message_carries_the_hint():
    with pytest.raises(ExerciseError, match="no answer yet.*count the images"):
        check("count", None, 3, hint="count the images")
    with pytest.raises(ExerciseError, match="not right yet.*largest difference 1.*count the images"):
        check("count", 2, 3, hint="count the images")


def test_config_sets_the_stub_nbgrader_reads():
    ns = {}

    class _Config:
        def __getattr__(self, name):
            return ns.setdefault(name, type(name, (), {})())

    exec(assignments.nbgrader_config(timeout=12), {"get_config": _Config})
    assert ns["ClearSolutions"].code_stub == {"python": assignments.CODE_STUB}
    assert ns["Execute"].timeout == 12


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every notebook autograded twice, with a checkpoint archive handed out in between.

    1. The instructor versions run on the test data directory (training what its cache lacks) with
       ``LAB_CHECKPOINT_LOG`` set; ``make checkpoints``' packing makes an archive of the logged files.
    2. The archive is loaded into a clean data directory (the datasets, no checkpoints), and the
       student versions (``make student``'s function) run there: nothing may be trained.
    """
    tmp = tmp_path_factory.mktemp("nbgrader")
    students = assignments.student_versions(tmp / "student")
    root = assignments.write_course_directory(tmp / "course")
    env = {"LAB_PROFILE": "smoke", "LAB_RUN_DIR": str(tmp / "run"), "MPLBACKEND": "Agg",
           "LAB_CHECKPOINT_LOG": str(tmp / "used-instructor.txt")}
    assignments.autograde(root, {"instructor": {p.stem: p for p in NOTEBOOKS}}, env=env)
    used = sorted(set((tmp / "used-instructor.txt").read_text().split()))
    archive = training.pack_checkpoints(used, tmp / "checkpoints-smoke.tar", profile="smoke")

    clean = tmp / "data-clean"
    clean.mkdir()
    for entry in data.data_dir().iterdir():
        if entry.name != "checkpoints":
            (clean / entry.name).symlink_to(entry.resolve())
    env.update(LAB_DATA_DIR=str(clean), LAB_CHECKPOINT_LOG=str(tmp / "used-student.txt"))
    placed = training.load_checkpoints(archive, into=clean / "checkpoints")
    marks = assignments.autograde(root, {"student": {p.stem: p for p in students}}, env=env, generate=False)
    return {"root": root, "students": students, "marks": marks, "archive": archive, "used": used,
            "placed": placed, "clean": clean, "used_by_students": (tmp / "used-student.txt").read_text().split()}


def test_handed_out_archive_round_trip(graded):
    """The student versions ran on the loaded archive alone: every model handed out, none trained."""
    ckpts = graded["clean"] / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.pt")) == sorted(p.name for p in graded["placed"])
    assert len(graded["placed"]) == len(graded["used"]) >= 10
    assert set(graded["used_by_students"]) <= {str(p.resolve()) for p in graded["placed"]}
    said = sorted(path.stem for path in (graded["root"] / "autograded" / "student").glob("*/*.ipynb")
                  if "Using the handed-out model" in "".join(o.get("text", "") for c in _nb(path).cells
                                                             for o in c.get("outputs", ())))
    # every notebook but the report (notebook 10 reads metrics and uses no model)
    assert said == [p.stem for p in NOTEBOOKS if p.stem != REPORT_NOTEBOOK], f"used a handed-out model: {said}"
    print(f"archive: {len(graded['placed'])} checkpoints, {graded['archive'].stat().st_size / 1e6:.1f} MB")


def test_a_flipped_byte_is_refused(graded, tmp_path):
    data = bytearray(graded["archive"].read_bytes())
    name = graded["placed"][0].name
    with tarfile.open(graded["archive"]) as tar:
        member = tar.getmember(name)
    data[member.offset_data + member.size // 2] ^= 0x01  # one bit in the middle of a checkpoint's bytes
    bad = tmp_path / "flipped.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(training.ArchiveError, match="corrupt: expected SHA-256"):
        training.load_checkpoints(bad, into=tmp_path / "checkpoints")
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


@pytest.mark.parametrize("stem", STEMS)
def test_student_version_is_nbgraders_release(graded, stem):
    students = graded["students"]
    path = next(p for p in students if p.stem == stem)
    nb, source = _nb(path), _nb(next(p for p in NOTEBOOKS if p.stem == stem))
    assert "### BEGIN SOLUTION" not in path.read_text()
    assert all(not c.get("outputs") for c in nb.cells)
    checks = {source.cells[c].metadata["nbgrader"]["grade_id"]: source.cells[c].source
              for _, c in assignments.exercise_cells(source)}
    for sol, chk in assignments.exercise_cells(nb):
        assert assignments.CODE_STUB.splitlines()[1].strip() in nb.cells[sol].source
        assert nb.cells[chk].source == checks[nb.cells[chk].metadata["nbgrader"]["grade_id"]]  # unchanged, locked
        assert nb.cells[chk].metadata["nbgrader"]["locked"]
        assert nb.cells[chk].metadata["nbgrader"].get("checksum")


@pytest.mark.parametrize("stem", STEMS)
def test_autograder_marks(graded, stem):
    marks = graded["marks"]
    n = len(assignments.exercise_cells(_nb(next(p for p in NOTEBOOKS if p.stem == stem))))
    teacher, student = marks[("instructor", stem)], marks[("student", stem)]
    assert teacher["max_score"] == student["max_score"] == n
    assert teacher["score"] == n, f"instructor version lost marks: {teacher['cells']}"
    assert student["score"] == 0, f"unmodified student version got marks: {student['cells']}"


@pytest.mark.parametrize("stem", STEMS)
def test_every_stub_fails_its_check_cell_clearly(graded, stem):
    root = graded["root"]
    nb = _nb(root / "autograded" / "student" / stem / f"{stem}.ipynb")
    for _, chk in assignments.exercise_cells(nb):
        errors = [o for o in nb.cells[chk].outputs if o.output_type == "error"]
        assert len(errors) == 1, f"cell {chk}: {json.dumps(nb.cells[chk].outputs)[:300]}"
        err = errors[0]
        # not a NameError or a stale variable's shape: the student is told the exercise is not done yet
        assert (err.ename, assignments.NOT_DONE in err.evalue or "no answer yet" in err.evalue) in {
            ("NotImplementedError", True), ("ExerciseError", True)}, f"cell {chk}: {err.ename}: {err.evalue}"
