"""Risk-coverage curves, AURC / E-AURC and thresholds at a coverage, for a classifier that may abstain.

A selective classifier **accepts** a sample (predicts) when its confidence score is ``>=`` a
threshold and abstains otherwise; a higher score means more confident, accepted first.

* **coverage**: the fraction of samples accepted, in ``[0, 1]``;
* **selective risk**: the error rate among the accepted samples, in ``[0, 1]`` (undefined, NaN,
  when nothing is accepted); selective accuracy is ``1 - risk``.

**Ties.**  A threshold accepts every sample with a score equal to it or none of them, so the
curve has one point per *distinct* score and a target coverage is met or exceeded, never split
inside a group of tied scores.  :func:`aurc` gives tied samples no order: it is the expected AURC
over all orders of the tied samples, which is the same as giving each position inside a tied
group that group's mean error (see :func:`aurc`).

Scores are 1-D tensors, arrays or lists without NaN (``+-inf`` is fine); ``correct`` is bool
``(N,)`` (or 0 / 1).  Fractions are returned as Python floats, curves as float64 NumPy arrays.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..uncertainty.metrics import _as_correct, _as_scores
from ..uncertainty.scores import SCORES, as_logits

__all__ = ["risk_coverage_curve", "aurc", "optimal_aurc", "excess_aurc", "threshold_for_coverage",
           "selective_risk", "selective_accuracy_at_coverage", "selective_summary", "confidence_scores", "SCORE_KINDS"]

#: Names :func:`confidence_scores` accepts: ``"msp"`` (max softmax probability) and every :data:`~labutils.uncertainty.SCORES` name.
SCORE_KINDS = ("msp",) + tuple(SCORES)


def _scores_and_correct(scores, correct) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores, "scores")
    return s, _as_correct(correct, len(s))


def _check_fraction(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}.") from exc
    if not 0 < value <= 1:  # also rejects NaN
        raise ValueError(f"{name} must be in (0, 1], got {value}.")
    return value


def _groups(s: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores in *decreasing* order, with the number of samples and of errors at each."""
    values, which = np.unique(s, return_inverse=True)
    counts = np.bincount(which, minlength=len(values))
    errors = np.bincount(which, weights=(~ok).astype(np.float64), minlength=len(values))
    return values[::-1], counts[::-1], errors[::-1]


def risk_coverage_curve(scores, correct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage and selective risk at every distinct threshold, from the most confident sample down.

    Args:
        scores: ``(N,)`` confidence scores, higher = more confident (accepted first).
        correct: ``(N,)`` bool, whether each prediction was right.

    Returns:
        ``(coverage, risk, thresholds)``, float64 arrays of length ``D`` (the number of distinct
        scores): ``thresholds`` are the distinct scores in decreasing order; at ``thresholds[j]``
        the samples with score ``>= thresholds[j]`` are accepted, ``coverage[j]`` is their fraction
        (increasing, in ``(0, 1]``, the last one 1) and ``risk[j]`` their error rate in ``[0, 1]``
        (the last one the overall error rate).
    """
    s, ok = _scores_and_correct(scores, correct)
    values, counts, errors = _groups(s, ok)
    accepted = np.cumsum(counts)
    return accepted / len(s), np.cumsum(errors) / accepted, values.astype(np.float64)


def aurc(scores, correct) -> float:
    """Area under the risk-coverage curve, ``AURC = (1/N) sum_{i=1..N} E_i / i``, a fraction in ``[0, 1]``.

    ``E_i`` is the number of errors among the ``i`` most confident samples (Geifman et al.), so
    AURC is the mean selective risk over the coverages ``1/N, 2/N, ..., 1``; lower is better.
    Papers usually report it x1000.

    **Ties**: samples with equal scores have no order, so this is the *expected* AURC over all
    orders of the tied samples (each order equally likely).  AURC is linear in the ``E_i``, so this
    equals the sum with ``E_i`` replaced by its expectation, which for a position ``i`` inside a
    tied group is the errors before the group plus ``(i - start)`` times the group's error rate.
    With distinct scores it is the plain formula; it does not depend on the input order.

    Args:
        scores: ``(N,)`` confidence scores, higher = more confident.
        correct: ``(N,)`` bool.
    """
    s, ok = _scores_and_correct(scores, correct)
    _, counts, errors = _groups(s, ok)
    expected_errors = np.cumsum(np.repeat(errors / counts, counts))  # E[E_i] for i = 1..N
    return float(np.mean(expected_errors / np.arange(1, len(s) + 1)))


def optimal_aurc(error_rate: float, n_samples: int | None = None) -> float:
    """AURC* of a perfect ranking (every error less confident than every correct sample), in ``[0, 1]``.

    With ``n_samples=None`` this is the usual ``r + (1 - r) ln(1 - r)`` for overall error rate
    ``r`` (``0`` at ``r = 0``, ``1`` at ``r = 1``), the large-``N`` limit used by papers (reported
    x1000).  With ``n_samples = N`` it is the exact AURC of a perfect ranking of ``N`` samples with
    ``k = r N`` errors, ``(1/N) sum_{i=N-k+1..N} (i - N + k) / i``, which is slightly *larger* (by at
    most about ``r / (2N)``), so a finite sample's E-AURC against the formula is ``>= 0`` as well.

    Args:
        error_rate: overall error rate ``r`` in ``[0, 1]``.
        n_samples: ``N`` for the exact finite-sample value (``r N`` must be a whole number), or None.
    """
    r = float(error_rate)
    if not 0 <= r <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {r}.")
    if n_samples is None:
        return 1.0 if r == 1 else float(r + (1 - r) * math.log1p(-r))
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a whole number >= 1 or None, got {n_samples!r}.")
    n = int(n_samples)
    k = round(r * n)
    if abs(r * n - k) > 1e-6:
        raise ValueError(f"error_rate * n_samples must be a whole number of errors, got {r} * {n} = {r * n}.")
    i = np.arange(n - k + 1, n + 1, dtype=np.float64)
    return float(np.sum((i - (n - k)) / i) / n)


def excess_aurc(scores, correct) -> float:
    """E-AURC = :func:`aurc` - :func:`optimal_aurc` of the overall error rate, a fraction (papers report x1000).

    It removes the part of AURC that comes from the classifier's error rate and keeps the part that
    comes from the ranking: 0 for a perfect ranking (up to the finite-sample term in
    :func:`optimal_aurc`, ``>= 0``), larger for a worse one.
    """
    s, ok = _scores_and_correct(scores, correct)
    return aurc(s, ok) - optimal_aurc(float(np.mean(~ok)))


def threshold_for_coverage(scores, coverage: float) -> float:
    """The largest threshold ``t`` such that accepting ``score >= t`` covers at least ``coverage``.

    ``t`` is the ``m``-th largest score with ``m = ceil(coverage * N)``.  Tie rule: the samples
    tied with ``t`` are all accepted, so the achieved coverage ``mean(scores >= t)`` can exceed
    ``coverage``; any larger threshold covers less than ``coverage``.

    Args:
        scores: ``(N,)`` confidence scores, higher = more confident.
        coverage: target fraction in ``(0, 1]``.
    """
    coverage = _check_fraction(coverage, "coverage")
    s = _as_scores(scores, "scores")
    n = len(s)
    m = max(1, min(n, math.ceil(round(coverage * n, 9))))  # round away float noise before the ceiling
    return float(np.sort(s)[n - m])


def selective_risk(scores, correct, threshold: float) -> tuple[float, float]:
    """``(coverage, risk)`` when the samples with ``score >= threshold`` are accepted.

    Returns the accepted fraction in ``[0, 1]`` and their error rate in ``[0, 1]``; the risk is
    NaN when nothing is accepted (coverage 0).  ``threshold`` may be ``+-inf``, not NaN.
    """
    s, ok = _scores_and_correct(scores, correct)
    t = float(threshold)
    if math.isnan(t):
        raise ValueError("threshold is NaN; pass a number (+-inf allowed).")
    accepted = s >= t
    n_acc = int(accepted.sum())
    risk = float(np.mean(~ok[accepted])) if n_acc else math.nan
    return n_acc / len(s), risk


def selective_accuracy_at_coverage(scores, correct, coverage: float) -> float:
    """Accuracy among the accepted samples at the threshold :func:`threshold_for_coverage` gives, in ``[0, 1]``.

    With ties at that threshold the achieved coverage can exceed ``coverage``; get it with
    ``selective_risk(scores, correct, threshold_for_coverage(scores, coverage))[0]``.
    """
    s, ok = _scores_and_correct(scores, correct)
    _, risk = selective_risk(s, ok, threshold_for_coverage(s, coverage))
    return 1.0 - risk


def selective_summary(scores, correct, coverages=(0.8, 0.9, 0.97)) -> dict:
    """One model's selective-classification numbers, all fractions in ``[0, 1]`` (papers print AURC x1000).

    Returns ``{"accuracy": overall accuracy, "aurc": ..., "e_aurc": ..., "at_coverage": {c:
    {"threshold", "coverage", "accuracy"}}}``: for each target coverage ``c`` in ``coverages`` the
    threshold of :func:`threshold_for_coverage`, the coverage it achieves (``>= c`` with ties) and
    the selective accuracy there.
    """
    s, ok = _scores_and_correct(scores, correct)
    at = {}
    for c in coverages:
        t = threshold_for_coverage(s, c)
        achieved, risk = selective_risk(s, ok, t)
        at[float(c)] = {"threshold": t, "coverage": achieved, "accuracy": 1.0 - risk}
    return {"accuracy": float(ok.mean()), "aurc": aurc(s, ok), "e_aurc": excess_aurc(s, ok), "at_coverage": at}


def confidence_scores(logits, kind: str | Callable = "msp") -> torch.Tensor:
    """Confidence scores ``(N,)`` from logits ``(N, K)``, higher = more confident, for the functions above.

    Args:
        logits: ``(N, K)`` tensor or array.
        kind: ``"msp"`` / ``"max_softmax"`` (max softmax probability, ``[1/K, 1]``), ``"neg_entropy"``
            (``[-log K, 0]`` nats), ``"max_logit"``, ``"neg_energy"`` (the functions of
            :mod:`labutils.uncertainty.scores`), or a callable ``f(logits) -> (N,)`` scores with the
            same direction (e.g. a wrapper around a fitted detector: negate a score where higher
            means more suspicious).

    Returns:
        A float tensor ``(N,)`` on the logits' device.
    """
    z = as_logits(logits)
    if callable(kind):
        fn = kind
    elif kind in SCORE_KINDS:
        fn = SCORES["max_softmax" if kind == "msp" else kind]
    else:
        raise ValueError(f"kind must be one of {SCORE_KINDS} or a callable f(logits) -> (N,) scores, got {kind!r}.")
    out = fn(z)
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out, dtype=np.float64))
    if out.shape != (z.shape[0],):
        raise ValueError(f"the score function must return one score per row, shape ({z.shape[0]},); "
                         f"got {tuple(out.shape)}.")
    return out
