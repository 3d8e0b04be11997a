"""How sure a model is, and how well that separates what it should not be trusted on.

* :mod:`.scores`: confidence scores from logits (max softmax, max logit, negative entropy,
  negative energy), higher = more in-distribution;
* :mod:`.metrics`: AUROC, AUPR (in / out), ROC curve and FPR at a TPR, with the
  in-distribution samples as the positive class;
* :mod:`.reconstruction`: the autoencoder detector (reconstruction error).

OOD detection (notebook 01) uses all three; entropy monitoring, selective classification and
calibration (later notebooks) reuse the scores and metrics.
"""
from .metrics import aupr_in, aupr_out, auroc, evaluate_scores, fpr_at_tpr, roc_curve, threshold_at_tpr
from .reconstruction import reconstruction_error, reconstruction_score, train_autoencoder
from .scores import (SCORES, as_logits, classifier_scores, energy, entropy, max_logit, max_softmax, neg_energy,
                     neg_entropy, scores_from_logits)

__all__ = ["SCORES", "as_logits", "max_logit", "max_softmax", "entropy", "neg_entropy", "energy", "neg_energy",
           "scores_from_logits", "classifier_scores", "reconstruction_error", "reconstruction_score",
           "train_autoencoder", "auroc", "aupr_in", "aupr_out", "roc_curve", "threshold_at_tpr", "fpr_at_tpr",
           "evaluate_scores"]
