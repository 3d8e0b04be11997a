"""Threshold slider: which adversarial images a one-score detector flags, which it misses, and its false alarms.

:func:`threshold_figure` is the pure part: given a detector score of clean and of adversarial
images (e.g. an activation entropy in bits) and a threshold, it draws both score histograms with
the threshold and the flagged side shaded, a few adversarial images it **flags** (detected), a
few it **misses**, and a few clean images it flags (**false alarms**), with the counts in the
titles.  Notebooks call it directly, so a headless run still draws (and saves) the figure.

:func:`threshold_explorer` is a thin ipywidgets shell: a threshold slider over the range of the
scores and an ``Output`` area redrawn on every change.  ipywidgets is imported only when the
explorer is built.

Conventions (as :mod:`labutils.uncertainty.thresholds`): direction ``"above"`` flags
``score > threshold`` (higher = more suspicious), ``"below"`` flags ``score < threshold``.
Images are ``(N, C, H, W)`` uint8 or float in ``[0, 1]``.
"""
from __future__ import annotations

import numpy as np

from ...uncertainty.thresholds import DIRECTIONS
from ..plots import image_grid
from ..plots._common import _to_numpy, overlaid_histograms
from .epsilon import score_slider_explorer

__all__ = ["threshold_counts", "threshold_figure", "threshold_explorer"]

_IPYWIDGETS_MISSING = ("the threshold explorer needs ipywidgets (and, in JupyterLab, jupyterlab_widgets): "
                       "pip install 'ipywidgets>=8' jupyterlab_widgets, or run `make setup`. "
                       "threshold_figure(...) draws the same figure without widgets.")


def _scores(x, name: str) -> np.ndarray:
    a = _to_numpy(x).ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return a


def _flags(scores: np.ndarray, threshold: float, direction: str) -> np.ndarray:
    return scores > threshold if direction == "above" else scores < threshold


def threshold_counts(scores_clean, scores_adv, threshold: float, *, direction: str = "above") -> dict:
    """What a threshold decides: ``{"threshold", "direction", "n_clean", "n_adv", "detected", "missed",
    "false_alarms", "tpr", "fpr", "flagged_adv", "missed_adv", "flagged_clean"}``.

    The last three are index arrays (into ``scores_adv`` / ``scores_clean``); ``tpr`` = detected /
    n_adv and ``fpr`` = false_alarms / n_clean, fractions in ``[0, 1]``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'above' (flag score > threshold) or 'below' (flag score < threshold), "
                         f"got {direction!r}.")
    c, a = _scores(scores_clean, "scores_clean"), _scores(scores_adv, "scores_adv")
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN.")
    fa, fc = _flags(a, threshold, direction), _flags(c, threshold, direction)
    return {"threshold": threshold, "direction": direction, "n_clean": int(c.size), "n_adv": int(a.size),
            "detected": int(fa.sum()), "missed": int((~fa).sum()), "false_alarms": int(fc.sum()),
            "tpr": float(fa.mean()), "fpr": float(fc.mean()),
            "flagged_adv": np.flatnonzero(fa), "missed_adv": np.flatnonzero(~fa), "flagged_clean": np.flatnonzero(fc)}


def _image_row(subfig, images, idx, scores, title: str, n_show: int, unit: str) -> None:
    shown = idx[:n_show]
    if len(shown) == 0:
        ax = subfig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize="small")
    else:
        image_grid(images[shown], [f"{scores[i]:.3g} {unit}" for i in shown], fig=subfig, ncols=n_show)
    subfig.suptitle(title, fontsize="small")


def threshold_figure(scores_clean, scores_adv, images_adv, threshold: float, *, direction: str = "above",
                     images_clean=None, score_name: str = "score", unit: str = "bits", n_show: int = 6,
                     bins: int = 40):
    """Draw what a detector with ``threshold`` flags and misses.

    Args:
        scores_clean: ``(N,)`` detector scores of clean images (the negatives).
        scores_adv: ``(M,)`` scores of adversarial images (the positives).
        images_adv: ``(M, C, H, W)`` the adversarial images, in the order of ``scores_adv``.
        threshold: the score's threshold (same units as the scores).
        direction: ``"above"`` flags ``score > threshold``, ``"below"`` flags ``score < threshold``.
        images_clean: optional ``(N, C, H, W)`` clean images: adds a row of false alarms.
        score_name, unit: for the x label and the image captions (e.g. ``"features.0 entropy"``, ``"bits"``).
        n_show: images per row, in index order (the first ``n_show`` flagged / missed / false alarms).
        bins: histogram bins (shared by both sets).

    Returns:
        ``(fig, info)``: the Figure (top: the two histograms, the threshold and the shaded flagged
        side; then rows "detected", "missed" and, with ``images_clean``, "false alarms", each
        titled with its count) and :func:`threshold_counts`'s dict.
    """
    import matplotlib.pyplot as plt

    info = threshold_counts(scores_clean, scores_adv, threshold, direction=direction)
    c, a = _scores(scores_clean, "scores_clean"), _scores(scores_adv, "scores_adv")
    images_adv = _to_numpy(images_adv, dtype=None)
    if images_adv.ndim != 4 or images_adv.shape[0] != a.size:
        raise ValueError(f"images_adv must be (M, C, H, W) with M = {a.size} (one per adversarial score), "
                         f"got shape {images_adv.shape}.")
    if images_clean is not None:
        images_clean = _to_numpy(images_clean, dtype=None)
        if images_clean.ndim != 4 or images_clean.shape[0] != c.size:
            raise ValueError(f"images_clean must be (N, C, H, W) with N = {c.size} (one per clean score), "
                             f"got shape {images_clean.shape}.")
    n_show = max(1, int(n_show))
    rows = 3 if images_clean is None else 4
    fig = plt.figure(figsize=(max(8.0, 1.35 * n_show), 2.8 + 1.7 * (rows - 1)), layout="constrained")
    top, *image_rows = fig.subfigures(rows, 1, height_ratios=[2.2] + [1.5] * (rows - 1))

    ax = top.subplots()
    overlaid_histograms(ax, c, a, ("clean", "adversarial"), bins)
    t = info["threshold"]
    if np.isfinite(t):
        ax.axvline(t, color="black", linestyle="--", linewidth=1.2, label=f"threshold {t:.4g}")
    left, right = ax.get_xlim()
    span = (max(t, left), right) if direction == "above" else (left, min(t, right))
    if span[0] < span[1]:
        ax.axvspan(*span, color="tab:red", alpha=0.08, label="flagged side")
    ax.set_xlim(left, right)
    ax.set_xlabel(f"{score_name} ({unit})")
    ax.set_ylabel(f"density (per {unit})")
    flag = ">" if direction == "above" else "<"
    ax.set_title(f"flag {score_name} {flag} {t:.4g}: detected {info['detected']} of {info['n_adv']} adversarial "
                 f"(TPR {info['tpr']:.1%}), missed {info['missed']}; false alarms {info['false_alarms']} of "
                 f"{info['n_clean']} clean (FPR {info['fpr']:.1%})", fontsize="small")
    ax.legend(fontsize="x-small")

    _image_row(image_rows[0], images_adv, info["flagged_adv"], a,
               f"detected: {info['detected']} adversarial images flagged (first {n_show})", n_show, unit)
    _image_row(image_rows[1], images_adv, info["missed_adv"], a,
               f"missed: {info['missed']} adversarial images not flagged (first {n_show})", n_show, unit)
    if images_clean is not None:
        _image_row(image_rows[2], images_clean, info["flagged_clean"], c,
                   f"false alarms: {info['false_alarms']} clean images flagged (first {n_show})", n_show, unit)
    return fig, info


def _summary(info: dict, score_name: str) -> str:
    flag = ">" if info["direction"] == "above" else "<"
    return (f"threshold {score_name} {flag} {info['threshold']:.4g}: detected {info['detected']}/{info['n_adv']} "
            f"(TPR {info['tpr']:.1%}), missed {info['missed']}, false alarms {info['false_alarms']}/"
            f"{info['n_clean']} (FPR {info['fpr']:.1%})")


def threshold_explorer(scores_clean, scores_adv, images_adv, *, threshold: float | None = None,
                       direction: str = "above", images_clean=None, score_name: str = "score", unit: str = "bits",
                       n_show: int = 6, steps: int = 200):
    """An ipywidgets slider over the threshold of a one-score detector, redrawing :func:`threshold_figure`.

    Args:
        scores_clean, scores_adv, images_adv, direction, images_clean, score_name, unit, n_show:
            as in :func:`threshold_figure`.
        threshold: initial threshold (default: the median of all scores); clipped to the slider's range.
        steps: slider positions between the smallest and the largest score.

    Returns:
        An ``ipywidgets.VBox`` (a ``FloatSlider`` with ``continuous_update=False``, then an ``Output``
        area holding the figure as PNG and a one-line summary).  For scripts and tests the box also
        carries ``slider``, ``output``, ``info`` (the last :func:`threshold_counts` dict, or None after
        an error), ``error`` (the last error message or None), ``n_draws`` and ``redraw()``.

    Raises:
        ImportError: ipywidgets is not installed.
    """
    threshold_counts(scores_clean, scores_adv, 0.0, direction=direction)  # validate once
    both = np.concatenate([_scores(scores_clean, "scores_clean"), _scores(scores_adv, "scores_adv")])
    lo, hi = float(both.min()), float(both.max())
    start = float(np.median(both)) if threshold is None else float(threshold)

    def draw_at(value):
        fig, info = threshold_figure(scores_clean, scores_adv, images_adv, value, direction=direction,
                                     images_clean=images_clean, score_name=score_name, unit=unit, n_show=n_show)
        return fig, info, _summary(info, score_name)

    return score_slider_explorer(lo, hi, start, steps, f"threshold ({unit})", draw_at, _IPYWIDGETS_MISSING)
