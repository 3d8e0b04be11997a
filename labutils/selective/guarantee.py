"""A threshold with a guaranteed selective risk: Geifman & El-Yaniv (2017), "Selection with Guaranteed Risk" (SGR).

Given a labelled split of ``m`` samples (not the training set), a target risk ``r*`` and a
confidence parameter ``delta``, SGR looks for the threshold with the largest coverage whose
selective risk is at most ``r*`` with probability at least ``1 - delta`` over the draw of the split.

How (this module's version):

1. The candidate thresholds are the split's distinct scores; accepting ``score >= t``.
2. For a threshold accepting ``n`` samples with ``k`` errors, the risk bound is the one-sided
   binomial (Clopper-Pearson) upper bound :func:`risk_upper_bound`: the ``b`` with
   ``P(Binomial(n, b) <= k) = delta'``.
3. A binary search over the candidates (sorted by coverage) tests each threshold at
   ``delta' = delta / ceil(log2(m + 1))`` with ``m`` the *sample size*: a union bound over the at
   most ``ceil(log2(D + 1)) <= ceil(log2(m + 1))`` tests (``D <= m`` distinct scores) makes every
   tested bound hold at once with probability ``>= 1 - delta``.  The paper divides by
   ``ceil(log2 m)``; the two agree unless ``m`` is a power of two, where this one divides by one
   more (the search over ``m`` distinct scores can then test ``log2 m + 1`` thresholds).  Ties
   (e.g. max-softmax scores that round to 1.0) shorten the search but do not change ``delta'``.
4. A bound ``<= r*`` moves the search to larger coverage, a bound above it to smaller coverage.

**Result.**  The paper returns the *last* tested threshold and its bound (which may end slightly
above ``r*``).  Here the result is the tested threshold with the largest coverage whose bound is
``<= r*``, so the guarantee reads "true selective risk ``<= risk_bound <= r*``"; when no tested
threshold qualifies, ``found`` is False and nothing is accepted (see :class:`GuaranteedThreshold`).
The guarantee is about the distribution the split was drawn from: under a shift (e.g. an attack)
it says nothing.

**Checking it.**  A statement "fails with probability at most ``delta``" is checked by repetition,
not by one split: :func:`guarantee_failure_rate` splits a labelled pool at random many times into
calibration and evaluation parts, runs SGR on each calibration part with a target fixed in advance,
and counts how often the evaluation part's selective risk exceeds the target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from .curves import _check_fraction, _groups, _scores_and_correct

__all__ = ["GuaranteedThreshold", "risk_upper_bound", "guaranteed_risk_threshold", "GuaranteeCheck",
           "guarantee_failure_rate"]


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
        delta_per_test: the confidence parameter of each bound, ``delta / ceil(log2(m + 1))`` for ``m`` samples.
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
    # the union bound over the sample size m, as the paper's delta / ceil(log2 m) (never over the number
    # of distinct scores, which ties shrink): ceil(log2(m + 1)) >= ceil(log2(d + 1)), the most halvings
    max_tests = len(s).bit_length()
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


@dataclass(frozen=True)
class GuaranteeCheck:
    """What :func:`guarantee_failure_rate` measured over repeated random splits.

    Attributes:
        failure_rate: fraction of the splits in which SGR found a threshold and the selective risk
            of the evaluation part at that threshold exceeded ``target_risk``, in ``[0, 1]``.
        found_rate: fraction of the splits in which SGR found a threshold, in ``[0, 1]``.
        coverages: ``(n_splits,)`` coverage of the evaluation part at each split's threshold (0 where
            nothing was found).
        risks: ``(n_splits,)`` selective risk of the evaluation part (NaN where nothing was accepted).
        thresholds: ``(n_splits,)`` each split's SGR threshold (``+inf`` where nothing was found).
        target_risk, delta: the request.
        n_calibration, n_evaluation: the sizes of the two parts of every split.
    """
    failure_rate: float
    found_rate: float
    coverages: np.ndarray
    risks: np.ndarray
    thresholds: np.ndarray
    target_risk: float
    delta: float
    n_calibration: int
    n_evaluation: int


def guarantee_failure_rate(scores, correct, target_risk: float, delta: float, *, n_splits: int = 200,
                           calibration_fraction: float = 0.5, seed: int = 0) -> GuaranteeCheck:
    """How often SGR's guarantee fails on held-out data, over ``n_splits`` random calibration/evaluation splits.

    Split ``i`` takes the ``i``-th permutation drawn by ``np.random.default_rng(seed)``
    (``rng.permutation(m)``): its first ``round(calibration_fraction * m)`` samples are the
    calibration part, the rest the evaluation part.  :func:`guaranteed_risk_threshold` runs on the
    calibration part; the split **fails** when it found a threshold and the evaluation part's selective
    risk at that threshold is above ``target_risk``.  A split where nothing was found (or where the
    threshold accepts no evaluation sample) accepts nothing and cannot fail.

    ``target_risk`` must be fixed without looking at ``scores``/``correct`` (e.g. from a separate
    pilot split): a target tuned on the pool is not what the guarantee is about.  The evaluation risk
    is itself an estimate, so its noise adds to the failure rate; and the splits reuse one pool, so
    they are not independent draws from the distribution.

    Args:
        scores: ``(m,)`` confidence scores of a labelled pool, higher = more confident.
        correct: ``(m,)`` bool, whether each prediction was right.
        target_risk: the risk ``r*`` SGR guarantees, in ``(0, 1]``.
        delta: SGR's allowed failure probability, in ``(0, 1]``.
        n_splits: how many random splits, ``>= 1``.
        calibration_fraction: share of the pool in the calibration part, in ``(0, 1)``; both parts
            must hold at least one sample.
        seed: seeds the permutations.

    Returns:
        A :class:`GuaranteeCheck`; compare ``failure_rate`` with ``delta``.
    """
    s, ok = _scores_and_correct(scores, correct)
    target_risk = _check_fraction(target_risk, "target_risk")
    delta = _check_fraction(delta, "delta")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"n_splits must be a whole number >= 1, got {n_splits!r}.")
    fraction = float(calibration_fraction)
    n_cal = round(fraction * len(s)) if 0 < fraction < 1 else 0
    if not 1 <= n_cal < len(s):
        raise ValueError(f"calibration_fraction must be in (0, 1) and leave both parts non-empty: {fraction} of "
                         f"{len(s)} samples gives {n_cal} for calibration.")
    rng = np.random.default_rng(seed)
    coverages, risks, thresholds = (np.empty(int(n_splits)) for _ in range(3))
    found = np.zeros(int(n_splits), dtype=bool)
    for i in range(int(n_splits)):
        perm = rng.permutation(len(s))
        cal, ev = perm[:n_cal], perm[n_cal:]
        result = guaranteed_risk_threshold(s[cal], ok[cal], target_risk, delta)
        accepted = s[ev] >= result.threshold
        found[i], thresholds[i], coverages[i] = result.found, result.threshold, accepted.mean()
        risks[i] = np.mean(~ok[ev][accepted]) if accepted.any() else math.nan
    failed = found & (np.nan_to_num(risks, nan=0.0) > target_risk)
    return GuaranteeCheck(failure_rate=float(failed.mean()), found_rate=float(found.mean()), coverages=coverages,
                          risks=risks, thresholds=thresholds, target_risk=target_risk, delta=delta,
                          n_calibration=n_cal, n_evaluation=len(s) - n_cal)
