"""labutils.course.doctor (environment check) and labutils.course.exercises (check cells)."""
from __future__ import annotations

import pytest
import torch

from labutils.course import doctor, exercises


def test_doctor_reports_versions_kernel_and_data():
    listed = doctor.checks()
    rows = {item.strip(): (status, hint) for item, status, hint in listed}
    assert rows["torch"][0].startswith("2.14.1")
    assert rows["torchattacks"][0] == "3.5.1"
    assert "python3" in rows["kernels"][0]
    assert rows["cifar10"][0] == "found" and rows["fashion_mnist"][0] == "found"
    assert rows["cpu kernels"][0] == torch.backends.cpu.get_cpu_capability()
    assert rows["cpu bf16"][0] in ("native", "no (fp32 training)")
    # one SHA-256 per dataset split, of the tensors load() returns: two machines can compare their data
    hashes = [status for item, status, _ in listed if item.strip() == "test sha256"]
    assert len(hashes) == 3 and hashes[0] == doctor.dataset_sha256("cifar10", "test")
    assert len(set(hashes)) == 3 and all(len(h) == 16 for h in hashes)
    assert rows["training step"][0].endswith("s (FastNet, 256 images)") and "reference machine" in rows["training step"][1]
    assert rows["standard series"][0].startswith("about ") and rows["standard series"][0].endswith(" min")


def test_doctor_points_at_the_fix_for_missing_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    rows = {item.strip(): (status, hint) for item, status, hint in doctor.checks(estimate=False)}
    assert rows["cifar10"] == ("not found", "run `make data` (needs internet) or see data/README.md")


def test_doctor_reports_the_malloc_settings(monkeypatch):
    from labutils.runtime import MALLOC_ENV

    for key, value in MALLOC_ENV.items():
        monkeypatch.setenv(key, value)
    rows = {item.strip(): (status, hint) for item, status, hint in doctor.checks(hashes=False, estimate=False)}
    assert rows["malloc settings"] == ("reuse freed memory", "")
    monkeypatch.delenv("MALLOC_MMAP_MAX_")
    status, hint = {item.strip(): (s, h) for item, s, h in doctor.checks(hashes=False, estimate=False)}["malloc settings"]
    assert status == "glibc defaults" and "make lab" in hint


def test_check_accepts_right_answers(capsys):
    exercises.check("sum", torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9])
    assert "Correct: sum." in capsys.readouterr().out


@pytest.mark.parametrize("answer,match", [(None, "no answer yet"), ([1.0], "expected shape"),
                                          ([1.0, 2.5], "largest difference 0.5")])
def test_check_explains_wrong_answers(answer, match):
    with pytest.raises(exercises.ExerciseError, match=match):
        exercises.check("sum", answer, [1.0, 2.0], hint="Add the two numbers.")
