"""Coverage slider: what a selective classifier accepts at a confidence threshold, and which images it rejects.

:func:`coverage_figure` is the pure part: given a confidence score per prediction (higher = more
confident, e.g. the max softmax probability or the negative entropy), whether each prediction was
right, the images and a threshold, it draws the score histograms of right and of wrong predictions
with the threshold and the rejected side shaded, the coverage and the selective accuracy in the
title, and the rejected images, least confident first.  Notebooks call it directly, so a headless
run still draws (and saves) the figure.

:func:`coverage_explorer` is a thin ipywidgets shell: a threshold slider over the range of the
scores and an ``Output`` area redrawn on every change.  ipywidgets is imported only when the
explorer is built.

Conventions (as :mod:`labutils.selective`): a prediction is **accepted** when ``score >=
threshold`` and rejected otherwise; coverage is the accepted fraction and the selective accuracy
the accuracy among the accepted (NaN when nothing is accepted).  Images are ``(N, C, H, W)`` uint8
or float in ``[0, 1]``; volumes ``(N, 1, D, H, W)`` are shown by their middle depth slice.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...selective import selective_risk, threshold_for_coverage
from ...selective.curves import _scores_and_correct
from ..plots import image_grid
from ..plots._common import _to_numpy
from .epsilon import score_slider_explorer

__all__ = ["coverage_counts", "coverage_figure", "coverage_explorer"]

_IPYWIDGETS_MISSING = ("the coverage explorer needs ipywidgets (and, in JupyterLab, jupyterlab_widgets): "
                       "pip install 'ipywidgets>=8' jupyterlab_widgets, or run `make setup`. "
                       "coverage_figure(...) draws the same figure without widgets.")


def coverage_counts(scores, correct, threshold: float) -> dict:
    """What accepting ``score >= threshold`` decides.

    Returns ``{"threshold", "n", "n_accepted", "n_rejected", "coverage", "selective_risk",
    "selective_accuracy", "rejected_wrong", "accepted", "rejected"}``: counts as ints, fractions in
    ``[0, 1]`` (coverage and risk from :func:`labutils.selective.selective_risk`; risk and accuracy
    NaN when nothing is accepted), ``rejected_wrong`` the wrong predictions among the rejected,
    ``accepted`` the accepted indices in index order and ``rejected`` the rejected indices, lowest
    score first (ties in index order).
    """
    s, ok = _scores_and_correct(scores, correct)
    coverage, risk = selective_risk(s, ok, threshold)
    t = float(threshold)
    accepted = s >= t
    rejected = np.flatnonzero(~accepted)
    rejected = rejected[np.argsort(s[rejected], kind="stable")]
    return {"threshold": t, "n": int(s.size), "n_accepted": int(accepted.sum()), "n_rejected": int(rejected.size),
            "coverage": coverage, "selective_risk": risk, "selective_accuracy": 1.0 - risk,
            "rejected_wrong": int((~ok[rejected]).sum()), "accepted": np.flatnonzero(accepted), "rejected": rejected}


def _images(images, n: int) -> np.ndarray:
    arr = _to_numpy(images, dtype=None)
    if arr.ndim == 5:  # volumes (N, C, D, H, W): the middle depth slice
        arr = arr[:, :, arr.shape[2] // 2]
    if arr.ndim != 4 or arr.shape[0] != n:
        raise ValueError(f"images must be (N, C, H, W) (or volumes (N, C, D, H, W)) with N = {n}, one per score; "
                         f"got shape {arr.shape}.")
    return arr


def _names(values, n: int, what: str) -> list | None:
    if values is None:
        return None
    out = _to_numpy(values, dtype=None).ravel().tolist()
    if len(out) != n:
        raise ValueError(f"{what} must have one entry per score ({n}), got {len(out)}.")
    return out


def _caption(i: int, s, ok, labels, predictions, class_names, unit: str) -> str:
    def name(v):
        return str(class_names[int(v)]) if class_names is not None and not isinstance(v, str) else str(v)

    lines = []
    if predictions is not None and labels is not None:
        lines.append(f"{name(predictions[i])} (true {name(labels[i])})")
    elif predictions is not None:
        lines.append(f"pred {name(predictions[i])}")
    elif labels is not None:
        lines.append(name(labels[i]))
    lines.append(f"{s[i]:.3g} {unit}, {'right' if ok[i] else 'wrong'}".strip())
    return "\n".join(lines)


def coverage_figure(scores, correct, images, threshold: float, labels=None, class_names: Sequence[str] | None = None, *,
                    predictions=None, score_name: str = "confidence", unit: str = "", n_show: int = 8,
                    bins: int = 40):
    """Draw what accepting ``score >= threshold`` keeps and which images it rejects.

    Args:
        scores: ``(N,)`` confidence scores, higher = more confident (no NaN; ``+-inf`` are counted but
            not drawn in the histogram).
        correct: ``(N,)`` bool, whether each prediction was right.
        images: ``(N, C, H, W)`` the images in the order of ``scores`` (volumes ``(N, C, D, H, W)``:
            their middle depth slice).
        threshold: accept ``score >= threshold`` (same units as the scores).
        labels: optional ``(N,)`` true labels for the captions (class names with ``class_names``).
        class_names: names indexed by label.
        predictions: optional ``(N,)`` predicted labels for the captions.
        score_name, unit: for the x label and the captions (e.g. ``"negative entropy"``, ``"nats"``).
        n_show: rejected images shown, lowest score first.
        bins: histogram bins (shared by right and wrong).

    Returns:
        ``(fig, info)``: the Figure (top: counts of right and wrong predictions per score bin, the
        threshold and the shaded rejected side, the coverage and selective accuracy in the title;
        bottom: the first ``n_show`` rejected images, lowest score first, each captioned with its
        labels, score and whether it was right, under a title with the number rejected) and
        :func:`coverage_counts`'s dict.
    """
    import matplotlib.pyplot as plt

    info = coverage_counts(scores, correct, threshold)
    s, ok = _scores_and_correct(scores, correct)
    arr = _images(images, s.size)
    labels, predictions = _names(labels, s.size, "labels"), _names(predictions, s.size, "predictions")
    n_show = max(1, int(n_show))
    fig = plt.figure(figsize=(max(8.0, 1.35 * n_show), 6.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.3, 1.6])

    ax = top.subplots()
    finite = np.isfinite(s)
    lo, hi = (float(s[finite].min()), float(s[finite].max())) if finite.any() else (-0.5, 0.5)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    for mask, name, colour in ((ok, "right", "tab:green"), (~ok, "wrong", "tab:red")):
        values = s[mask & finite]
        if values.size:
            ax.hist(values, bins=edges, histtype="stepfilled", alpha=0.45, color=colour,
                    label=f"{name} (n={int(mask.sum())})")
    t = info["threshold"]
    if math.isfinite(t):
        ax.axvline(t, color="black", linestyle="--", linewidth=1.2, label=f"threshold {t:.4g}")
    left, right = ax.get_xlim()
    if min(t, right) > left:
        ax.axvspan(left, min(t, right), color="grey", alpha=0.12, label="rejected side")
    ax.set_xlim(left, right)
    unit_txt = f" ({unit})" if unit else ""
    ax.set_xlabel(f"{score_name}{unit_txt}")
    ax.set_ylabel("predictions per bin (count)")
    acc = info["selective_accuracy"]
    acc_txt = "undefined (nothing accepted)" if math.isnan(acc) else f"{acc:.1%}"
    ax.set_title(f"accept {score_name} >= {t:.4g}: coverage {info['coverage']:.1%} ({info['n_accepted']} of "
                 f"{info['n']}), selective accuracy {acc_txt}; overall accuracy {ok.mean():.1%}", fontsize="small")
    ax.legend(fontsize="x-small")

    shown = info["rejected"][:n_show]
    if shown.size == 0:
        empty = bottom.subplots()
        empty.axis("off")
        empty.text(0.5, 0.5, "none", ha="center", va="center", fontsize="small")
    else:
        captions = [_caption(i, s, ok, labels, predictions, class_names, unit) for i in shown]
        image_grid(arr[shown], captions, fig=bottom, ncols=n_show)
    bottom.suptitle(f"rejected: {info['n_rejected']} images ({info['rejected_wrong']} of them wrong), "
                    f"lowest {score_name} first (first {n_show})", fontsize="small")
    return fig, info


def _summary(info: dict, score_name: str) -> str:
    acc = info["selective_accuracy"]
    acc_txt = "undefined" if math.isnan(acc) else f"{acc:.1%}"
    return (f"accept {score_name} >= {info['threshold']:.4g}: coverage {info['coverage']:.1%} "
            f"({info['n_accepted']}/{info['n']}), selective accuracy {acc_txt}, rejected {info['n_rejected']} "
            f"({info['rejected_wrong']} wrong)")


def coverage_explorer(scores, correct, images, *, threshold: float | None = None, labels=None,
                      class_names: Sequence[str] | None = None, predictions=None, score_name: str = "confidence",
                      unit: str = "", n_show: int = 8, steps: int = 200):
    """An ipywidgets slider over the acceptance threshold, redrawing :func:`coverage_figure`.

    Args:
        scores, correct, images, labels, class_names, predictions, score_name, unit, n_show:
            as in :func:`coverage_figure`.
        threshold: initial threshold (default: the one that covers 90 %,
            :func:`labutils.selective.threshold_for_coverage`); clipped to the slider's range.
        steps: slider positions between the smallest and the largest finite score.

    Returns:
        An ``ipywidgets.VBox`` (a ``FloatSlider`` with ``continuous_update=False``, then an ``Output``
        area holding the figure as PNG and a one-line summary).  For scripts and tests the box also
        carries ``slider``, ``output``, ``info`` (the last :func:`coverage_counts` dict, or None after
        an error), ``error`` (the last error message or None), ``n_draws`` and ``redraw()``.

    Raises:
        ImportError: ipywidgets is not installed.
    """
    s, _ = _scores_and_correct(scores, correct)  # validate once
    _images(images, s.size)
    finite = s[np.isfinite(s)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    start = threshold_for_coverage(s, 0.9) if threshold is None else float(threshold)
    if math.isnan(start):
        raise ValueError("threshold is NaN.")

    def draw_at(value):
        fig, info = coverage_figure(scores, correct, images, value, labels, class_names, predictions=predictions,
                                    score_name=score_name, unit=unit, n_show=n_show)
        return fig, info, _summary(info, score_name)

    return score_slider_explorer(lo, hi, start, steps, f"threshold{f' ({unit})' if unit else ''}", draw_at,
                                 _IPYWIDGETS_MISSING)
