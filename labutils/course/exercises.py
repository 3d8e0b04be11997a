"""Check cells of the notebooks' exercises.

Each exercise's solution sits between nbgrader's ``### BEGIN SOLUTION`` and
``### END SOLUTION`` markers; the cell after it calls :func:`check` so the
student learns at once whether the answer is right (and why not).
"""
from __future__ import annotations

import numpy as np

__all__ = ["check", "ExerciseError"]


class ExerciseError(AssertionError):
    """The student's answer is not right yet; the message says what differs."""


def check(what: str, answer, expected, *, atol: float = 1e-6, rtol: float = 1e-5, hint: str = "") -> None:
    """Compare ``answer`` with ``expected`` (numbers, arrays or tensors; ``None`` means not answered).

    Prints a confirmation when they agree within ``atol + rtol * |expected|``;
    raises :class:`ExerciseError` with the difference and ``hint`` otherwise.
    """
    if answer is None or answer is Ellipsis:
        raise ExerciseError(f"{what}: no answer yet. Fill in the cell above. {hint}".strip())
    a = np.asarray(answer.detach().cpu() if hasattr(answer, "detach") else answer, dtype=float)
    e = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=float)
    if a.shape != e.shape:
        raise ExerciseError(f"{what}: expected shape {e.shape}, got {a.shape}. {hint}".strip())
    if not np.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True):
        worst = float(np.max(np.abs(a - e))) if a.size else 0.0
        raise ExerciseError(f"{what}: not right yet (largest difference {worst:.3g}). {hint}".strip())
    print(f"Correct: {what}.")
