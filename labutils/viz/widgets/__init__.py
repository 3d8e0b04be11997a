"""Interactive explorers: thin ipywidgets shells over pure functions that also draw headless.

* :mod:`.epsilon`: attack one image and see what changes (:func:`attack_figure`, :func:`epsilon_explorer`);
* :mod:`.compare`: one image, two models, one attack (:func:`robustness_comparison_figure`,
  :func:`comparison_explorer`; notebook 04);
* :mod:`.threshold`: a detector threshold, its detections, misses and false alarms
  (:func:`threshold_figure`, :func:`threshold_explorer`; notebook 05);
* :mod:`.coverage`: a confidence threshold, its coverage, selective accuracy and rejected images
  (:func:`coverage_figure`, :func:`coverage_explorer`; notebook 06);
* :mod:`.smoothing`: one image under Gaussian noise of a chosen sigma, the base classifier's votes,
  PREDICT's answer and the radius (:func:`smoothing_explorer` over
  :func:`labutils.robustness.smoothing_votes` and :func:`labutils.viz.plots.smoothing_votes_figure`;
  notebook 07).

ipywidgets is imported only when an explorer is built; notebooks call the pure functions directly
too, so a headless run still draws (and saves) every figure.
"""
from .compare import COMPARE_ATTACKS, comparison_explorer, robustness_comparison_figure
from .coverage import coverage_counts, coverage_explorer, coverage_figure
from .epsilon import ATTACKS, attack_figure, epsilon_explorer
from .smoothing import smoothing_explorer
from .threshold import threshold_counts, threshold_explorer, threshold_figure

__all__ = ["ATTACKS", "attack_figure", "epsilon_explorer",
           "COMPARE_ATTACKS", "robustness_comparison_figure", "comparison_explorer",
           "threshold_counts", "threshold_figure", "threshold_explorer",
           "coverage_counts", "coverage_figure", "coverage_explorer",
           "smoothing_explorer"]
