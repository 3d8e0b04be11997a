"""Interactive explorers: thin ipywidgets shells over pure functions that also draw headless.

* :mod:`.epsilon`: attack one image and see what changes (:func:`attack_figure`, :func:`epsilon_explorer`).

ipywidgets is imported only when an explorer is built; notebooks call the pure functions directly
too, so a headless run still draws (and saves) every figure.
"""
from .epsilon import ATTACKS, attack_figure, epsilon_explorer

__all__ = ["ATTACKS", "attack_figure", "epsilon_explorer"]
from .threshold import threshold_counts, threshold_explorer, threshold_figure  # notebook 05

__all__ += ["threshold_counts", "threshold_figure", "threshold_explorer"]
from .compare import COMPARE_ATTACKS, comparison_explorer, robustness_comparison_figure  # notebook 04

__all__ += ["COMPARE_ATTACKS", "robustness_comparison_figure", "comparison_explorer"]
