"""Figures of the course, drawn with matplotlib: :mod:`.images`, :mod:`.scores`, :mod:`.curves`, :mod:`.adversarial`,
:mod:`.entropy`, :mod:`.entprop` (entropy of EntProp's selected images), :mod:`.selective` (risk-coverage curves, reliability diagrams), :mod:`.smoothing` (votes under
noise, certified accuracy against the L2 radius), :mod:`.survival` (Kaplan-Meier curves, acceleration factors,
predicted survival, cost against survival), :mod:`.findings` (a finding of the report beside the published figures).

Every function draws into ``ax`` (or ``fig``) when given one, else into a new
figure, and returns the :class:`matplotlib.figure.Figure`.  Nothing here
calls ``plt.show()`` or chooses a backend: notebooks display the returned
figure, scripts save it (e.g. with :func:`labutils.course.report.save_figure`) and
should close it with ``plt.close(fig)``.

Conventions: images are ``(N, C, H, W)`` uint8 in 0..255 or float in
``[0, 1]``; OOD scores follow :mod:`labutils.uncertainty` (higher = more
in-distribution); accuracies are fractions in ``[0, 1]`` unless stated; attack
budgets ``eps`` are on the ``[0, 1]`` pixel scale (e.g. ``8/255``).
"""
from .adversarial import attack_accuracy_bars, overfitting_checks, training_cost
from .curves import accuracy_vs_eps, pgd_settings, rate_vs_steps, rates_vs_eps, training_curves
from .entprop import selection_entropy_histograms
from .findings import VERDICT_COLOURS, findings_figure
from .entropy import auroc_bars, auroc_vs_eps, entropy_histograms
from .images import class_balance, heatmap, image_grid
from .scores import roc_curves, score_histograms
from .selective import RELIABILITY_STYLES, reliability_diagram, risk_coverage_curves
from .smoothing import certified_accuracy_curves, radius_vs_distance, smoothing_votes_figure
from .survival import acceleration_factor_plot, cost_vs_survival, kaplan_meier_curves, predicted_survival_curves

__all__ = ["score_histograms", "roc_curves", "image_grid", "class_balance", "heatmap", "training_curves",
           "accuracy_vs_eps", "pgd_settings", "rates_vs_eps", "rate_vs_steps",
           "attack_accuracy_bars", "training_cost", "overfitting_checks",  # notebook 04
           "entropy_histograms", "auroc_vs_eps", "auroc_bars",  # notebook 05
           "risk_coverage_curves", "reliability_diagram", "RELIABILITY_STYLES",  # notebook 06
           "smoothing_votes_figure", "certified_accuracy_curves", "radius_vs_distance",  # notebook 07
           "selection_entropy_histograms",  # notebook 08
           "kaplan_meier_curves", "acceleration_factor_plot", "predicted_survival_curves", "cost_vs_survival",  # 09
           "findings_figure", "VERDICT_COLOURS"]  # 10
