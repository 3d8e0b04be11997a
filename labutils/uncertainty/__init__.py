"""How sure a model is, and how well that separates what it should not be trusted on.

* :mod:`.scores`: confidence scores from logits (max softmax, max logit, negative entropy,
  negative energy), higher = more in-distribution;
* :mod:`.metrics`: AUROC, AUPR (in / out), ROC curve and FPR at a TPR, with the
  in-distribution samples as the positive class;
* :mod:`.reconstruction`: the autoencoder detector (reconstruction error);
* :mod:`.activation_entropy`: entropy monitoring: predictive entropy in bits, fixed-bin histogram entropy of
  positive activations (per sample and per batch), :class:`ActivationMonitor` (forward hooks);
* :mod:`.thresholds`: argmin(FPR + FNR) thresholds with a learnt direction, chosen on a
  calibration split and evaluated on another; AUROC with a stated direction (higher = more suspicious);
* :mod:`.fusion`: :class:`FusedDetector`, a logistic regression over several signals;
* :mod:`.adaptive`: :func:`adaptive_pgd`, the attacker who knows the entropy monitor;
* :mod:`.controls`: harmless perturbations of an attack's size (random signs, norm-matched Gaussian
  noise) and what an adaptive attacker wins at a deployed threshold (fooled and unflagged);
* :mod:`.calibration`: reliability table, expected calibration error (equal-width bins closed on the
  right), temperature scaling fitted on a held-out split.

OOD detection (notebook 01) uses the first three; entropy monitoring, selective classification and
calibration (later notebooks) reuse the scores and metrics.

``uncertainty.entropy`` is the *function* :func:`.scores.entropy` (predictive entropy in nats);
:func:`predictive_entropy` gives it in bits.
"""
from .adaptive import ATTACK_LOSSES, adaptive_pgd, margin_loss, soft_histogram_counts, soft_histogram_entropy
from .activation_entropy import (DEFAULT_BINS, DEFAULT_QUANTILE, ActivationMonitor, MonitorReadout,
                                 activation_entropies, calibrate_edges, default_monitor_layers, edges_from_values,
                                 entropy_from_counts, group_entropies, histogram_counts, histogram_entropy,
                                 histogram_entropy_per_sample, predictive_entropy, resolve_layers, run_monitor)
from .calibration import (TEMPERATURE_RANGE, apply_temperature, confidence_and_correct, expected_calibration_error,
                          fit_temperature, negative_log_likelihood, reliability_table)
from .controls import fooled_and_unflagged, gaussian_noise_like, random_sign_noise
from .fusion import FusedDetector, stack_signals
from .metrics import aupr_in, aupr_out, auroc, evaluate_scores, fpr_at_tpr, roc_curve, threshold_at_tpr
from .reconstruction import reconstruction_error, reconstruction_score, train_autoencoder
from .scores import (SCORES, as_logits, classifier_scores, energy, entropy, max_logit, max_softmax, neg_energy,
                     neg_entropy, scores_from_logits)
from .thresholds import (DIRECTIONS, Threshold, best_orientation_auroc, choose_threshold, detection_auroc,
                         detection_report, evaluate_threshold, misclassification_auroc, split_indices)

__all__ = ["SCORES", "as_logits", "max_logit", "max_softmax", "entropy", "neg_entropy", "energy", "neg_energy",
           "scores_from_logits", "classifier_scores", "reconstruction_error", "reconstruction_score",
           "train_autoencoder", "auroc", "aupr_in", "aupr_out", "roc_curve", "threshold_at_tpr", "fpr_at_tpr",
           "evaluate_scores",
           # entropy monitoring
           "predictive_entropy", "edges_from_values", "histogram_counts", "entropy_from_counts", "histogram_entropy",
           "histogram_entropy_per_sample", "group_entropies", "resolve_layers", "default_monitor_layers",
           "ActivationMonitor", "calibrate_edges", "MonitorReadout", "run_monitor", "activation_entropies",
           "DEFAULT_BINS", "DEFAULT_QUANTILE",
           "DIRECTIONS", "Threshold", "choose_threshold", "evaluate_threshold", "split_indices", "detection_auroc",
           "best_orientation_auroc", "misclassification_auroc", "detection_report",
           "FusedDetector", "stack_signals",
           "soft_histogram_counts", "soft_histogram_entropy", "margin_loss", "adaptive_pgd", "ATTACK_LOSSES",
           "random_sign_noise", "gaussian_noise_like", "fooled_and_unflagged",
           # calibration
           "reliability_table", "expected_calibration_error", "confidence_and_correct", "negative_log_likelihood",
           "fit_temperature", "apply_temperature", "TEMPERATURE_RANGE"]
