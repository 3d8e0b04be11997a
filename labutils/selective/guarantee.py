"""A threshold with a guaranteed selective risk: Geifman & El-Yaniv (2017), "Selection with Guaranteed Risk" (SGR).

Given a labelled split of ``m`` samples (not the training set), a target risk ``r*`` and a
confidence parameter ``delta``, SGR looks for the threshold with the largest coverage whose
selective risk is at most ``r*`` with probability at least ``1 - delta`` over the draw of the split.

How (this module's version):

1. The candidate thresholds are the split's distinct scores; accepting ``score >= t``.
2. For a threshold accepting ``n`` samples with ``k`` errors, the risk bound is the one-sided
   binomial (Clopper-Pearson) upper bound :func:`risk_upper_bound`: the ``b`` with
   ``P(Binomial(n, b) <= k) = delta'``.
3. A binary search over the candidates (sorted by coverage) tests at most
   ``ceil(log2(D + 1))`` thresholds (``D`` distinct scores), each at ``delta' = delta / that number``:
   a union bound then makes every tested bound hold at once with probability ``>= 1 - delta``.  The
   paper divides by ``ceil(log2 m)``; with all ``m`` scores distinct the two agree unless ``m`` is a
   power of two, where this one divides by one more (more conservative by a hair).
4. A bound ``<= r*`` moves the search to larger coverage, a bound above it to smaller coverage.

**Result.**  The paper returns the *last* tested threshold and its bound (which may end slightly
above ``r*``).  Here the result is the tested threshold with the largest coverage whose bound is
``<= r*``, so the guarantee reads "true selective risk ``<= risk_bound <= r*``"; when no tested
threshold qualifies, ``found`` is False and nothing is accepted (see :class:`GuaranteedThreshold`).
The guarantee is about the distribution the split was drawn from: under a shift (e.g. an attack)
it says nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from .curves import _check_fraction, _groups, _scores_and_correct

__all__ = ["GuaranteedThreshold", "risk_upper_bound", "guaranteed_risk_threshold"]


@dataclass(frozen=True)
class GuaranteedThreshold:
    """What :func:`guaranteed_risk_threshold` found.

    Attributes:
        found: whether a tested threshold has a risk bound ``<= target_risk``.
        threshold: accept ``score >= threshold``; ``+inf`` (accept nothing) when not found.
        coverage: fraction of the split accepted, in ``[0, 1]`` (0 when not found).
        risk: empirical selective risk on the split, in ``[0, 1]`` (NaN when not found).
        risk_bound: upper bound on the true selective risk that holds with probability
            ``>= 1 - delta``; ``<= target_risk`` (NaN when not found).
        target_risk, delta: the request.
        n_tests: how many thresholds the binary search evaluated.
        delta_per_test: the confidence parameter of each bound (``delta`` / the most tests possible).
        note: one sentence that says what was found, or why nothing was.
    """
    found: bool
    threshold: float
    coverage: float
    risk: float
    risk_bound: float
    target_risk: float
    delta: float
    n_tests: int
    delta_per_test: float
    note: str


def risk_upper_bound(n_errors: int, n_accepted: int, delta: float) -> float:
    """One-sided binomial (Clopper-Pearson) upper bound on an error rate, in ``[0, 1]``.

    The ``b`` with ``P(Binomial(n_accepted, b) <= n_errors) = delta``: the beta quantile
    ``Beta(k + 1, n - k).ppf(1 - delta)``, and 1 when ``k = n``.  If the true rate were above
    ``b``, seeing ``n_errors`` or fewer would have probability below ``delta``.

    Args:
        n_errors: errors ``k`` among the accepted, ``0 <= k <= n``.
        n_accepted: accepted samples ``n >= 1``.
        delta: in ``(0, 1]``.
    """
    k, n = int(n_errors), int(n_accepted)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= n_errors <= n_accepted and n_accepted >= 1, got {k} and {n}.")
    delta = _check_fraction(delta, "delta")
    if k == n:
        return 1.0
    return float(beta.ppf(1 - delta, k + 1, n - k))


def guaranteed_risk_threshold(scores, correct, target_risk: float, delta: float = 0.001) -> GuaranteedThreshold:
    """SGR: the largest-coverage threshold whose selective risk is ``<= target_risk`` with probability ``>= 1 - delta``.

    See the module docstring for the method and how it differs from the paper.

    Args:
        scores: ``(m,)`` confidence scores of a labelled held-out split, higher = more confident.
        correct: ``(m,)`` bool, whether each prediction was right.
        target_risk: the risk ``r*`` to guarantee, in ``(0, 1]`` (e.g. 0.02 for 2 % errors).
        delta: the allowed failure probability of the guarantee, in ``(0, 1]`` (e.g. 0.001).

    Returns:
        A :class:`GuaranteedThreshold`; check ``found`` before using ``threshold``.
    """
    s, ok = _scores_and_correct(scores, correct)
    target_risk = _check_fraction(target_risk, "target_risk")
    delta = _check_fraction(delta, "delta")
    values, counts, errors = _groups(s, ok)
    accepted, errs = np.cumsum(counts), np.cumsum(errors).round().astype(np.int64)
    d = len(values)  # candidate j accepts the j + 1 highest distinct scores: coverage grows with j
    max_tests = d.bit_length()  # = ceil(log2(d + 1)): the most halvings of d + 1 gaps
    delta_per_test = delta / max_tests

    lo, hi = -1, d  # lo: the best candidate that met the target so far (-1: none); hi: the first known to fail
    tests = 0
    lowest = (math.inf, 0.0)  # (bound, coverage) of the best failure, for the note
    while hi - lo > 1:
        j = (lo + hi) // 2
        tests += 1
        bound = risk_upper_bound(errs[j], accepted[j], delta_per_test)
        if bound <= target_risk:
            lo = j
        else:
            hi = j
            lowest = min(lowest, (bound, accepted[j] / len(s)))
    assert tests <= max_tests

    common = dict(target_risk=target_risk, delta=delta, n_tests=tests, delta_per_test=delta_per_test)
    if lo < 0:
        note = (f"no tested threshold has a risk bound <= {target_risk} at confidence 1 - {delta}; the lowest bound "
                f"was {lowest[0]:.4f} (coverage {lowest[1]:.4f}): raise target_risk or delta, or use more samples.")
        return GuaranteedThreshold(found=False, threshold=math.inf, coverage=0.0, risk=math.nan,
                                   risk_bound=math.nan, note=note, **common)
    n_acc, n_err = int(accepted[lo]), int(errs[lo])
    bound = risk_upper_bound(n_err, n_acc, delta_per_test)
    note = (f"accept score >= {values[lo]:.6g}: coverage {n_acc / len(s):.4f}, empirical risk {n_err / n_acc:.4f}, "
            f"risk <= {bound:.4f} <= {target_risk} with probability >= {1 - delta:.6g}.")
    return GuaranteedThreshold(found=True, threshold=float(values[lo]), coverage=n_acc / len(s), risk=n_err / n_acc,
                               risk_bound=bound, note=note, **common)
