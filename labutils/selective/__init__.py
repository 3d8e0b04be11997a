"""Selective classification: a classifier that may abstain, judged by how much it accepts and how often it is wrong.

A sample is accepted when its confidence score is ``>=`` a threshold (higher = more confident);
**coverage** is the accepted fraction, **selective risk** the error rate among the accepted.

* :mod:`.curves`: risk-coverage curve, AURC (ties: expected value over tie orders), AURC* and
  E-AURC (fractions; papers print x1000), the threshold for a target coverage, selective risk and
  accuracy at a threshold or coverage, confidence scores from logits (reusing
  :mod:`labutils.uncertainty.scores`, or any callable);
* :mod:`.guarantee`: Geifman & El-Yaniv's SGR, the threshold whose selective risk is at most a
  target with probability ``>= 1 - delta`` (binomial bound, binary search), and its check by
  repetition over random calibration/evaluation splits (:func:`guarantee_failure_rate`).

Calibration (ECE, temperature scaling) is in :mod:`labutils.uncertainty.calibration`.
"""
from .curves import (SCORE_KINDS, aurc, confidence_scores, excess_aurc, optimal_aurc, risk_coverage_curve,
                     selective_accuracy_at_coverage, selective_risk, selective_summary, threshold_for_coverage)
from .guarantee import (GuaranteeCheck, GuaranteedThreshold, guarantee_failure_rate, guaranteed_risk_threshold,
                        risk_upper_bound)

__all__ = ["risk_coverage_curve", "aurc", "optimal_aurc", "excess_aurc", "threshold_for_coverage", "selective_risk",
           "selective_accuracy_at_coverage", "selective_summary", "confidence_scores", "SCORE_KINDS",
           "GuaranteedThreshold", "risk_upper_bound", "guaranteed_risk_threshold", "GuaranteeCheck",
           "guarantee_failure_rate"]
