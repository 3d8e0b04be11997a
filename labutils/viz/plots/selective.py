"""Figures of selective classification and calibration (notebook 06): risk-coverage curves and reliability diagrams.

Both take a mapping ``{label: (values, correct)}`` so that several models or conditions share one
axes (clean vs attacked inputs, before vs after temperature scaling), and both put the summary
number of each curve in the legend, computed by the library (:func:`labutils.selective.aurc`,
:func:`labutils.uncertainty.expected_calibration_error`), so the figure and the tables agree.

Conventions: scores are higher = more confident and a sample is accepted when ``score >=
threshold`` (:mod:`labutils.selective`); coverage, risk, confidence and accuracy are fractions in
the library and drawn in percent; AURC and E-AURC are shown x1000, as papers print them; ECE is
shown in percent.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ...selective import aurc, excess_aurc, risk_coverage_curve, selective_risk, threshold_for_coverage
from ...selective.curves import _check_fraction
from ...uncertainty.calibration import expected_calibration_error, reliability_table
from ._common import _new_axes

__all__ = ["risk_coverage_curves", "reliability_diagram", "RELIABILITY_STYLES"]

#: How :func:`reliability_diagram` draws each label: side-by-side bars per bin, or a marked line.
RELIABILITY_STYLES = ("bars", "lines")


def _pairs(mapping, what: str, parts: str) -> list[tuple[str, object, object]]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(f"{what} must be a non-empty mapping {{label: ({parts})}}, got {mapping!r:.80}.")
    out = []
    for label, pair in mapping.items():
        try:
            first, second = pair
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what}[{label!r}] must be a pair ({parts}).") from exc
        out.append((str(label), first, second))
    return out


def _as_list(value) -> list[float]:
    if isinstance(value, (int, float, np.floating, np.integer)):
        return [float(value)]
    return [float(v) for v in value]


def risk_coverage_curves(curves: Mapping[str, tuple], *, thresholds: Mapping[str, float | Sequence[float]] | None = None,
                         coverages: Sequence[float] | None = None, show_eaurc: bool = False, ax=None,
                         title: str | None = "risk-coverage curves"):
    """Selective risk against coverage, one line per label, with AURC (x1000) in the legend.

    Args:
        curves: ``{label: (scores, correct)}``: ``(N,)`` confidence scores (higher = more
            confident) and ``(N,)`` bool, whether each prediction was right; labels may have
            different ``N`` (e.g. clean and attacked test sets).
        thresholds: optional ``{label: threshold or list of thresholds}``: marks (circles, with the
            threshold written beside them) where accepting ``score >= threshold`` lands on that
            label's curve, e.g. a threshold chosen on clean data applied to attacked inputs.
        coverages: optional target coverages (fractions in ``(0, 1]``): a dotted vertical line at
            each, and on every curve a square at the point :func:`~labutils.selective.threshold_for_coverage`
            reaches (with ties it can lie a little to the right of the line).
        show_eaurc: also write E-AURC (x1000) in the legend.
        ax: axes to draw into (default: a new figure); title: axes title (None: no title).

    Returns the Figure: x "coverage (%)" from 0 to 100, y "selective risk (%)" from 0; the first
    ``len(curves)`` lines of the axes are the curves (the points of
    :func:`~labutils.selective.risk_coverage_curve`, in percent), in the order of ``curves``; the legend
    reads ``"<label> (AURC x1000 = a)"`` (and ``", E-AURC x1000 = e"``).
    """
    items = _pairs(curves, "curves", "scores, correct")
    fig, ax = _new_axes(ax, (6.0, 4.0))
    colours = {}
    for label, scores, correct in items:
        coverage, risk, _ = risk_coverage_curve(scores, correct)
        text = f"{label} (AURC ×1000 = {1000 * aurc(scores, correct):.1f}"
        if show_eaurc:
            text += f", E-AURC ×1000 = {1000 * excess_aurc(scores, correct):.1f}"
        (line,) = ax.plot(100 * coverage, 100 * risk, linewidth=1.5, label=text + ")")
        colours[label] = line.get_color()
    if thresholds:
        unknown = [k for k in thresholds if str(k) not in colours]
        if unknown:
            raise ValueError(f"thresholds has labels {unknown} that are not in curves {list(colours)}.")
        by_label = {label: (scores, correct) for label, scores, correct in items}
        for key, values in thresholds.items():
            label = str(key)
            points = [(t, *selective_risk(*by_label[label], t)) for t in _as_list(values)]
            points = [(t, c, r) for t, c, r in points if not math.isnan(r)]  # nothing accepted: no point
            if not points:
                continue
            ax.plot([100 * c for _, c, _ in points], [100 * r for _, _, r in points], linestyle="none", marker="o",
                    markersize=6, color=colours[label], markeredgecolor="black", label=f"_{label} thresholds")
            for t, c, r in points:
                ax.annotate(f"t = {t:.3g}", (100 * c, 100 * r), textcoords="offset points", xytext=(4, 4),
                            fontsize="x-small", color=colours[label])
    if coverages is not None:
        targets = [_check_fraction(c, "coverages") for c in _as_list(coverages)]
        for k, target in enumerate(targets):
            ax.axvline(100 * target, color="grey", linestyle=":", linewidth=1,
                       label="target coverage" if k == 0 else "_target coverage")
        for label, scores, correct in items:
            pts = [selective_risk(scores, correct, threshold_for_coverage(scores, target)) for target in targets]
            ax.plot([100 * c for c, _ in pts], [100 * r for _, r in pts], linestyle="none", marker="s", markersize=5,
                    color=colours[label], markeredgecolor="black", label=f"_{label} at target coverages")
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage (%)")
    ax.set_ylabel("selective risk (%)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize="small")
    ax.legend(fontsize="x-small")
    return fig


def reliability_diagram(confidences_by_label: Mapping[str, tuple], n_bins: int = 15, *, style: str = "bars", ax=None,
                        title: str | None = None):
    """Accuracy against confidence per bin, one set of bars (or one line) per label, the diagonal, ECE in the legend.

    Args:
        confidences_by_label: ``{label: (confidences, correct)}``: ``(N,)`` confidences in
            ``[0, 1]`` (max softmax probability, e.g. from
            :func:`~labutils.uncertainty.confidence_and_correct`) and ``(N,)`` bool; e.g.
            ``{"before": ..., "after temperature scaling": ...}``.
        n_bins: equal-width bins on ``[0, 1]``, closed on the right, as in
            :func:`~labutils.uncertainty.reliability_table` (15 as in Guo et al. 2017).
        style: ``"bars"``: in each non-empty bin one bar per label (side by side) as high as its
            accuracy; ``"lines"``: a marked line through (mean confidence, accuracy) of each
            non-empty bin.
        ax: axes to draw into (default: a new figure); title: axes title (default: the bin count).

    Returns the Figure: x "confidence (%)", y "accuracy (%)", both 0 to 100; the dashed diagonal
    (perfect calibration, labelled so) is the axes' first line; the legend reads
    ``"<label> (ECE = e %)"`` with :func:`~labutils.uncertainty.expected_calibration_error` in percent.
    Empty bins draw nothing.
    """
    if style not in RELIABILITY_STYLES:
        raise ValueError(f"style must be one of {RELIABILITY_STYLES}, got {style!r}.")
    items = _pairs(confidences_by_label, "confidences_by_label", "confidences, correct")
    tables = [(label, reliability_table(conf, ok, n_bins), expected_calibration_error(conf, ok, n_bins))
              for label, conf, ok in items]
    fig, ax = _new_axes(ax, (4.8, 4.4))
    ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    m = int(n_bins)
    width = 100.0 / m
    for k, (label, table, ece) in enumerate(tables):
        full = table["count"] > 0
        text = f"{label} (ECE = {100 * ece:.2f} %)"
        accuracy = 100 * table["accuracy"][full]
        if style == "bars":
            step = 0.9 * width / len(tables)
            left = 100 * table["lower"][full] + 0.05 * width + k * step
            ax.bar(left, accuracy, width=step, align="edge", alpha=0.75, edgecolor="black", linewidth=0.4, label=text)
        else:
            ax.plot(100 * table["confidence"][full], accuracy, marker="o", markersize=4, linewidth=1.3, label=text)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (%)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title if title is not None else f"reliability diagram ({m} equal-width bins)", fontsize="small")
    ax.legend(fontsize="x-small", loc="upper left")
    return fig
