"""Detectors from one score: a threshold chosen on a calibration split, judged on another; AUROC with a stated direction.

The entropy monitor (:mod:`.activation_entropy`) gives scores whose "suspicious" side is not known in advance
(in the paper the first conv layer's entropy rises under attack and the FC layer's falls).  Here:

* **clean** samples are the negatives, **suspicious** ones (adversarial, or misclassified) the
  positives; a detector *flags* a sample;
* a :class:`Threshold` flags ``score > value`` (direction ``"above"``: higher = more suspicious) or
  ``score < value`` (``"below"``: lower = more suspicious);
* :func:`choose_threshold` picks value **and** direction as the argmin of ``FPR + FNR`` on the
  calibration split (the paper's rule; equivalently the max of the balanced accuracy);
  :func:`evaluate_threshold` applies it unchanged to another split;
* :func:`detection_auroc` is the AUROC for a given direction, ``P(suspicious flagged before clean)``
  (ties 1/2), computed by :func:`labutils.uncertainty.metrics.auroc`; it is *not* silently
  direction-free.  :func:`best_orientation_auroc` is ``max(AUROC, 1 - AUROC)``, optimistic
  unless the direction comes from other data.

Scores are 1-D tensors, arrays or lists of finite numbers; rates are fractions in ``[0, 1]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import _as_scores, auroc

__all__ = ["DIRECTIONS", "Threshold", "choose_threshold", "evaluate_threshold", "split_indices", "detection_auroc",
           "best_orientation_auroc", "misclassification_auroc", "detection_report"]

#: ``"above"``: flag ``score > threshold`` (higher = more suspicious); ``"below"``: flag ``score < threshold``.
DIRECTIONS = ("above", "below")


def _finite(x, name: str) -> np.ndarray:
    a = _as_scores(x, name)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains infinite values; a threshold needs finite scores.")
    return a


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'above' (flag score > threshold: higher = more suspicious) or "
                         f"'below' (flag score < threshold), got {direction!r}.")
    return direction


@dataclass(frozen=True)
class Threshold:
    """A one-score detector and its error rates on the split it was chosen on.

    Attributes:
        value: the threshold, in the score's units; ``+-inf`` means "flag everything / nothing".
        direction: ``"above"`` flags ``score > value``, ``"below"`` flags ``score < value``.
        fpr: fraction of the calibration clean samples flagged (false positives).
        fnr: fraction of the calibration suspicious samples not flagged (false negatives).
    """

    value: float
    direction: str
    fpr: float
    fnr: float

    @property
    def error(self) -> float:
        """``fpr + fnr`` on the calibration split (what :func:`choose_threshold` minimises), in ``[0, 2]``."""
        return self.fpr + self.fnr

    def flags(self, scores) -> np.ndarray:
        """Boolean array ``(N,)``: which samples this detector flags as suspicious."""
        s = _as_scores(scores, "scores")
        return s > self.value if self.direction == "above" else s < self.value


def choose_threshold(clean, suspicious, *, direction: str | None = None) -> Threshold:
    """The threshold (and direction) minimising ``FPR + FNR`` on calibration scores.

    Candidates split the sorted distinct pooled scores between two neighbours (the value reported
    is their midpoint), or flag everything / nothing (``-inf`` / ``+inf``), so every distinct
    way of cutting the scores is tried; computed with sorting and ``searchsorted``, ``O(n log n)``.
    Ties in ``FPR + FNR``: the lower FPR, then ``"above"``.

    Args:
        clean: 1-D scores of clean (negative) calibration samples.
        suspicious: 1-D scores of adversarial / misclassified (positive) calibration samples.
        direction: None (learn it) or ``"above"`` / ``"below"`` to fix it.

    Returns:
        :class:`Threshold` with the calibration FPR and FNR.
    """
    c, a = _finite(clean, "clean"), _finite(suspicious, "suspicious")
    u = np.unique(np.concatenate([c, a]))  # sorted distinct values; cut i flags values >= u[i] ("above")
    n, m, d = len(c), len(a), len(u)
    c_ge = np.append(n - np.searchsorted(np.sort(c), u, side="left"), 0)  # (d + 1,): #clean >= u[i]; 0 past the end
    a_ge = np.append(m - np.searchsorted(np.sort(a), u, side="left"), 0)
    fpr = np.concatenate([c_ge / n, 1 - c_ge / n])  # the cuts of "above", then those of "below"
    fnr = np.concatenate([1 - a_ge / m, a_ge / m])
    dirs = np.repeat([0, 1], d + 1)
    allowed = np.ones(2 * (d + 1), bool) if direction is None else dirs == DIRECTIONS.index(_check_direction(direction))
    err = np.where(allowed, fpr + fnr, np.inf)
    k = int(np.lexsort((dirs, fpr, err))[0])
    i, chosen = k % (d + 1), DIRECTIONS[dirs[k]]
    if i == 0:
        value = -np.inf  # above: flag everything; below: flag nothing
    elif i == d:
        value = np.inf  # above: flag nothing; below: flag everything
    else:
        lo, hi = u[i - 1], u[i]
        mid = lo + (hi - lo) / 2
        # keep the cut exact when lo and hi are neighbouring floats: above needs lo <= v < hi, below lo < v <= hi
        value = (mid if mid < hi else lo) if chosen == "above" else (mid if mid > lo else hi)
    return Threshold(float(value), chosen, float(fpr[k]), float(fnr[k]))


def evaluate_threshold(threshold: Threshold, clean, suspicious) -> dict:
    """Apply a threshold chosen elsewhere to another split's scores.

    Returns:
        ``{"fpr", "fnr", "balanced_accuracy", "accuracy", "n_clean", "n_suspicious"}``:
        ``balanced_accuracy = 1 - (fpr + fnr) / 2`` (each class weighs 1/2, the paper's
        detection accuracy for equal numbers); ``accuracy`` is plain: correct decisions over
        all ``n_clean + n_suspicious`` samples (depends on the class balance).
    """
    if not isinstance(threshold, Threshold):
        raise TypeError(f"threshold must be a Threshold from choose_threshold, got {type(threshold).__name__}.")
    fc, fa = threshold.flags(clean), threshold.flags(suspicious)
    fpr, fnr = float(fc.mean()), float(1 - fa.mean())
    n, m = len(fc), len(fa)
    return {"fpr": fpr, "fnr": fnr, "balanced_accuracy": 1 - (fpr + fnr) / 2,
            "accuracy": float(((~fc).sum() + fa.sum()) / (n + m)), "n_clean": n, "n_suspicious": m}


def split_indices(n: int, fraction: float = 0.5, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)`` into calibration and evaluation indices.

    Index the clean images *and* their adversarial versions with the same indices, so that an
    image and its attacked copy never sit in different splits.

    Args:
        n: number of samples (>= 2).
        fraction: share for calibration, in ``(0, 1)``; ``round(fraction * n)`` clipped to ``1..n-1``.
        seed: seed of the ``torch.Generator`` (same seed, same split on every machine).

    Returns:
        ``(calibration, evaluation)``: sorted int64 tensors, disjoint, together ``range(n)``.
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got n={n}.")
    if not 0 < float(fraction) < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    k = min(n - 1, max(1, round(float(fraction) * n)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[:k].sort().values, perm[k:].sort().values


def detection_auroc(clean, suspicious, *, direction: str = "above") -> float:
    """AUROC of a score as a detector of the suspicious samples, in ``[0, 1]``, for a **stated** direction.

    ``direction="above"`` (higher = more suspicious): ``P(s_susp > s_clean) + 0.5 P(=)``;
    ``"below"``: ``P(s_susp < s_clean) + 0.5 P(=)``; the two add up to 1.  0.5 is chance.
    Computed with :func:`labutils.uncertainty.metrics.auroc` (clean as its positive class with
    the scores oriented so that higher = more clean).
    """
    if _check_direction(direction) == "above":
        return auroc(-_as_scores(clean, "clean"), -_as_scores(suspicious, "suspicious"))
    return auroc(clean, suspicious)


def best_orientation_auroc(clean, suspicious) -> tuple[float, str]:
    """``max(AUROC, 1 - AUROC)`` and the direction that gives it: ``(auroc in [0.5, 1], "above" | "below")``.

    The direction is read off the same data, so this is optimistic; for an honest number take the
    direction from a calibration split (e.g. ``choose_threshold(...).direction``).  Ties: ``"above"``.
    """
    a = detection_auroc(clean, suspicious, direction="above")
    return (a, "above") if a >= 0.5 else (1 - a, "below")


def misclassification_auroc(scores, correct, *, direction: str = "above") -> float:
    """AUROC of ``scores`` ``(N,)`` as a detector of the misclassified samples (``correct`` False).

    The correctly classified samples are the clean (negative) class; see :func:`detection_auroc`.
    """
    s = _as_scores(scores, "scores")
    ok = np.asarray(torch.as_tensor(correct).cpu(), dtype=bool).reshape(-1)
    if ok.shape != s.shape:
        raise ValueError(f"correct must be a boolean array of shape {s.shape}, got {ok.shape}.")
    if ok.all() or not ok.any():
        raise ValueError("misclassification AUROC needs both correctly and wrongly classified samples.")
    return detection_auroc(s[ok], s[~ok], direction=direction)


def detection_report(clean: Mapping[str, object], suspicious: Mapping[str, object], calibration, evaluation) -> list[dict]:
    """One row per signal: threshold and direction chosen on ``calibration``, results on ``evaluation``.

    Args:
        clean, suspicious: ``{signal name: (N,) scores}`` of the same ``N`` images, clean and attacked
            (e.g. ``run_monitor(...).signals()`` of both); the same names in both.
        calibration, evaluation: index tensors / arrays, e.g. from :func:`split_indices`.

    Returns:
        Rows ``{"signal", "direction", "threshold", "calib_fpr", "calib_fnr", "fpr", "fnr",
        "balanced_accuracy", "accuracy", "auroc"}``; the last six on the evaluation split,
        ``auroc`` in the direction learnt on the calibration split.  For ``pandas.DataFrame``.
    """
    if set(clean) != set(suspicious):
        raise ValueError(f"clean and suspicious must have the same signals, got {list(clean)} and {list(suspicious)}.")
    cal = np.asarray(torch.as_tensor(calibration), dtype=np.int64)
    ev = np.asarray(torch.as_tensor(evaluation), dtype=np.int64)
    rows = []
    for name in clean:
        c, a = _as_scores(clean[name], f"clean[{name!r}]"), _as_scores(suspicious[name], f"suspicious[{name!r}]")
        t = choose_threshold(c[cal], a[cal])
        r = evaluate_threshold(t, c[ev], a[ev])
        rows.append({"signal": name, "direction": t.direction, "threshold": t.value, "calib_fpr": t.fpr,
                     "calib_fnr": t.fnr, "fpr": r["fpr"], "fnr": r["fnr"],
                     "balanced_accuracy": r["balanced_accuracy"], "accuracy": r["accuracy"],
                     "auroc": detection_auroc(c[ev], a[ev], direction=t.direction)})
    return rows
