"""Robustness evaluation: what attacks do to a model's accuracy.

* :mod:`.curves`: accuracy per budget (:func:`accuracy_curve`), per image and budget
  (:func:`correct_vs_eps`), under one attack (:func:`adversarial_accuracy`), and over PGD's
  steps, step sizes and restarts (:func:`pgd_accuracy_grid`);
* :mod:`.targeted`: targeted attacks per (source, target) class pair;
* :mod:`.masking`: sanity checks against gradient masking;
* :mod:`.smoothing`: certified L2 robustness by randomized smoothing (Cohen et al. 2019), batched
  PREDICT / CERTIFY, certified accuracy, both average-radius definitions, one image's votes
  (:func:`smoothing_votes`);
* :mod:`.corruptions`: common corruptions at 5 severities in the spirit of CIFAR-10-C (Hendrycks &
  Dietterich 2019), generated on the fly (:func:`corrupt`), accuracy per corruption and severity
  (:func:`corruption_accuracy`), robust accuracy RA and EntProp's Hscore;
* :mod:`.survival`: robustness as survival: per-image time to failure on a budget ladder
  (:func:`time_to_failure`) or over PGD's steps (:func:`steps_to_failure`), right-censored;
  Weibull / log-normal / log-logistic AFT fits (:func:`fit_aft`, :func:`compare_aft`,
  :func:`acceleration_factors`) and the cost-normalised metric (pandas and lifelines are imported
  only by the functions that need them);
* :mod:`.aft_bootstrap`: AFT time ratios with intervals from a bootstrap over clusters of rows (e.g. the
  same test image under many models: :func:`cluster_bootstrap_time_ratios`);
* :mod:`.deepfool`: time to failure under DeepFool (torchattacks): the L2 size of its perturbation
  (:func:`deepfool_to_failure`);
* :mod:`.defences`: feature squeezing by bit depth (:func:`squeeze_bit_depth`, :class:`FeatureSqueezing`,
  straight-through gradients by default).

"""
from .aft_bootstrap import cluster_bootstrap_time_ratios
from .corruptions import (CORRUPTIONS, SEVERITIES, SEVERITY_PARAMS, corrupt, corruption_accuracy, hscore,
                          robust_accuracy)
from .curves import (accuracy_curve, adversarial_accuracy, adversarial_examples, correct_mask, correct_vs_eps,
                     pgd_accuracy_grid, predictions)
from .deepfool import deepfool_to_failure
from .defences import FeatureSqueezing, squeeze_bit_depth
from .masking import gradient_masking_checks
from .smoothing import (ABSTAIN, Certificate, SmoothedClassifier, average_certified_radius, certified_accuracy,
                        certified_radius, clopper_pearson_lower, radius_definitions, smoothing_votes)
from .survival import (AFT_MODELS, AFTFits, SurvivalData, acceleration_factors, compare_aft, cost_normalised_robustness,
                       expected_time_to_failure, fit_aft, steps_to_failure, time_to_failure)
from .targeted import correct_per_class, targeted_success_matrix

__all__ = ["accuracy_curve", "adversarial_accuracy", "adversarial_examples", "correct_vs_eps", "pgd_accuracy_grid", "correct_mask",
           "predictions", "correct_per_class", "targeted_success_matrix", "gradient_masking_checks",
           "SmoothedClassifier", "Certificate", "ABSTAIN", "clopper_pearson_lower", "certified_radius",
           "certified_accuracy", "average_certified_radius", "radius_definitions", "smoothing_votes",
           "CORRUPTIONS", "SEVERITIES", "SEVERITY_PARAMS", "corrupt", "corruption_accuracy", "robust_accuracy", "hscore",
           "SurvivalData", "time_to_failure", "steps_to_failure", "AFT_MODELS", "AFTFits", "fit_aft", "compare_aft",
           "acceleration_factors", "expected_time_to_failure", "cost_normalised_robustness", "deepfool_to_failure",
           "FeatureSqueezing", "squeeze_bit_depth", "cluster_bootstrap_time_ratios"]
