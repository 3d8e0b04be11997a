"""Robustness evaluation: what attacks do to a model's accuracy.

* :mod:`.curves`: accuracy per budget (:func:`accuracy_curve`), per image and budget
  (:func:`correct_vs_eps`), under one attack (:func:`adversarial_accuracy`), and over PGD's
  steps, step sizes and restarts (:func:`pgd_accuracy_grid`);
* :mod:`.targeted`: targeted attacks per (source, target) class pair;
* :mod:`.masking`: sanity checks against gradient masking.

Later: certified robustness by randomized smoothing, and robustness as time to failure.
"""
from .curves import (accuracy_curve, adversarial_accuracy, adversarial_examples, correct_mask, correct_vs_eps,
                     pgd_accuracy_grid, predictions)
from .masking import gradient_masking_checks
from .targeted import correct_per_class, targeted_success_matrix

__all__ = ["accuracy_curve", "adversarial_accuracy", "adversarial_examples", "correct_vs_eps", "pgd_accuracy_grid", "correct_mask",
           "predictions", "correct_per_class", "targeted_success_matrix", "gradient_masking_checks"]
