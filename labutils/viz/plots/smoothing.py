"""Figures of randomized smoothing (notebook 07): one image's votes under noise, and certified accuracy against
the L2 radius.

Conventions (as :mod:`labutils.robustness.smoothing`): ``sigma`` and radii are on the ``[0, 1]`` pixel scale
(L2 norm over all pixels); accuracies are fractions in ``[0, 1]`` and drawn in %; a prediction of -1
(:data:`labutils.robustness.ABSTAIN`) means the smoothed classifier abstained.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ...robustness.smoothing import ABSTAIN
from ._common import _new_axes, _percent, _to_numpy
from .images import image_grid

__all__ = ["smoothing_votes_figure", "certified_accuracy_curves", "radius_vs_distance"]

_VOTES_KEYS = ("copies", "counts", "prediction", "p_lower", "radius")


def _class_index(value, k: int, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or not 0 <= int(value) < k:
        raise ValueError(f"{what} must be a class index in 0..{k - 1}, got {value!r}.")
    return int(value)


def smoothing_votes_figure(votes: Mapping, class_names: Sequence[str], *, sigma: float, true_label=None, fig=None):
    """Draw one image's noisy copies and the base classifier's votes over them.

    Args:
        votes: what :func:`labutils.robustness.smoothing_votes` returns: ``copies`` ``(n_show, C, H, W)``
            (any float values; C is 1 or 3), ``counts`` ``(K,)`` votes summing to ``n``, ``prediction``
            (a class or -1 for abstain), ``p_lower`` in ``[0, 1]`` and ``radius`` (L2, ``[0, 1]`` pixel scale).
        class_names: the ``K`` class names.
        sigma: the noise's standard deviation on the ``[0, 1]`` pixel scale (> 0), for the title.
        true_label: optional true class index; its tick label is drawn green and named in the title.
        fig: an empty Figure (or SubFigure) to draw into (default: a new figure).

    Returns the Figure (``fig`` when given): two subfigures.  Top: the noisy copies as images, values shown clipped to
    ``[0, 1]`` (grey for one channel), titled with ``sigma = ...``.  Bottom: one bar per class with its
    vote count (y axis "votes (of n noisy copies)"), the predicted class's bar blue (when PREDICT
    abstains, the most-voted class's bar orange and "abstain" in the title), and PREDICT's answer,
    ``p_lower`` and the radius in the title.
    """
    import matplotlib.pyplot as plt

    missing = [key for key in _VOTES_KEYS if key not in votes]
    if missing:
        raise ValueError(f"votes lacks {', '.join(missing)}: pass what labutils.robustness.smoothing_votes returns.")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number on the [0, 1] pixel scale, got {sigma!r}.")
    counts = _to_numpy(votes["counts"], dtype=np.int64).ravel()
    names = [str(c) for c in class_names]
    k, n = counts.size, int(counts.sum())
    if len(names) != k:
        raise ValueError(f"{k} vote counts but {len(names)} class names.")
    if np.any(counts < 0) or n < 1:
        raise ValueError("counts must be non-negative votes with at least one vote.")
    prediction = int(votes["prediction"])
    if prediction != ABSTAIN:
        _class_index(prediction, k, "prediction")
    true_label = None if true_label is None else _class_index(true_label, k, "true_label")
    copies = _to_numpy(votes["copies"], dtype=np.float64)
    if copies.ndim != 4 or copies.shape[0] < 1:
        raise ValueError(f"copies must be (n_show, C, H, W) with n_show >= 1, got shape {copies.shape}.")
    p_lower, radius = float(votes["p_lower"]), float(votes["radius"])

    n_show = copies.shape[0]
    if fig is None:
        fig = plt.figure(figsize=(max(8.0, 1.2 * n_show), 6.0), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.3, 2.2])
    image_grid(np.clip(copies, 0.0, 1.0), fig=top, ncols=n_show)
    top.suptitle(f"{n_show} of the {n} noisy copies, sigma = {sigma:g} (shown clipped to [0, 1])", fontsize="small")

    ax = bottom.subplots()
    highlight = prediction if prediction != ABSTAIN else int(np.argmax(counts))
    colours = ["tab:grey"] * k
    colours[highlight] = "tab:blue" if prediction != ABSTAIN else "tab:orange"
    bars = ax.bar(np.arange(k), counts, color=colours)
    ax.bar_label(bars, [str(int(c)) for c in counts], padding=1, fontsize="x-small")
    ax.set_xticks(np.arange(k), names, rotation=30, ha="right")
    if true_label is not None:
        ax.get_xticklabels()[true_label].set_color("tab:green")
    ax.set_xlabel("class of the base classifier's vote")
    ax.set_ylabel(f"votes (of {n} noisy copies)")
    ax.set_ylim(0, 1.1 * n)
    ax.grid(axis="y", alpha=0.3)
    answer = "abstain (top two classes too close)" if prediction == ABSTAIN else names[prediction]
    truth = f"; true class: {names[true_label]} (green)" if true_label is not None else ""
    ax.set_title(f"PREDICT: {answer}{truth}\np_lower = {p_lower:.3f} for {names[highlight]}, "
                 f"radius = {radius:.3f} (L2, [0, 1] pixel scale)", fontsize="small")
    return fig


def _curve(name, pair) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"curves[{name!r}] must be a pair (radii, accuracy).")
    radii = _to_numpy(pair[0]).ravel()
    if radii.size == 0 or np.any(~np.isfinite(radii)) or np.any(radii < 0) or np.any(np.diff(radii) <= 0):
        raise ValueError(f"curves[{name!r}]: radii must be finite, >= 0 and increasing.")
    return radii, _percent(pair[1], radii.size, f"curves[{name!r}] accuracy")


def _published_points(name, value) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, (int, float, np.floating, np.integer)):
        radii, acc = np.zeros(1), np.asarray([value], dtype=np.float64)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        radii, acc = np.atleast_1d(_to_numpy(value[0])), np.atleast_1d(_to_numpy(value[1]))
    else:
        raise ValueError(f"published[{name!r}] must be an accuracy at radius 0 or a pair (radii, accuracies).")
    if radii.ndim != 1 or np.any(~np.isfinite(radii)) or np.any(radii < 0):
        raise ValueError(f"published[{name!r}]: radii must be finite and >= 0.")
    return radii, _percent(acc, radii.size, f"published[{name!r}]")


def certified_accuracy_curves(curves: Mapping[str, tuple], *, published: Mapping | None = None, ax=None,
                              title: str | None = None):
    """Certified accuracy (%) against the L2 radius, one step line per model (Cohen et al.'s figure).

    Args:
        curves: ``{model label: (radii, accuracy)}``: increasing radii ``>= 0`` on the ``[0, 1]`` pixel scale
            and the fraction certified correct at each (as
            :func:`labutils.robustness.certified_accuracy` returns it).  Each line holds its value from one
            radius to the next (``where="post"``); the true curve is non-increasing and lies between
            these steps and the next ones, so use a fine grid of radii.
        published: optional reported numbers to compare with, drawn as stars: ``{label: accuracy}`` (a
            fraction at radius 0, e.g. a clean accuracy) or ``{label: (radii, accuracies)}`` (scalars or
            equal-length sequences).  A label equal to a curve's takes that curve's colour.
        ax: axes to draw into (default: a new figure).
        title: axes title.

    Returns the Figure: x axis "L2 radius (pixel scale [0, 1])" from 0, y axis "certified accuracy (%)"
    from 0 to 100, a legend.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping {model label: (radii, accuracy)}.")
    checked = {name: _curve(name, pair) for name, pair in curves.items()}
    points = {name: _published_points(name, value) for name, value in (published or {}).items()}
    fig, ax = _new_axes(ax, (6.0, 4.0))
    colours = {}
    for name, (radii, acc) in checked.items():
        (line,) = ax.step(radii, acc, where="post", linewidth=1.8, label=str(name))
        colours[name] = line.get_color()
    for name, (radii, acc) in points.items():
        ax.plot(radii, acc, linestyle="none", marker="*", markersize=11, markeredgecolor="black",
                color=colours.get(name), clip_on=False, label=f"{name} (published)")
    ax.set_xlabel("L2 radius (pixel scale [0, 1])")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def radius_vs_distance(distance, radius, *, cap: float | None = None, ax=None, title: str | None = None):
    """Certified radius against the exact distance to the decision boundary (a linear classifier's closed form).

    Args:
        distance: ``(N,)`` exact L2 distances to the boundary, ``>= 0``, ``[0, 1]`` pixel scale.
        radius: ``(N,)`` certified radii on the same scale (0 where the smoothed classifier abstained).
        cap: the largest radius the sample size allows (a horizontal dashed line), or None.

    Returns the Figure: one point per image, the line ``radius = distance`` (a certificate never lies above
    it with probability ``1 - alpha``), axes in pixel-scale L2 units.
    """
    d, r = _to_numpy(distance).ravel(), _to_numpy(radius).ravel()
    if d.shape != r.shape or d.size == 0:
        raise ValueError(f"distance and radius must be non-empty and of one length, got {d.size} and {r.size}.")
    if np.any(d < 0) or np.any(r < 0):
        raise ValueError("distance and radius must be >= 0.")
    fig, ax = _new_axes(ax, (4.5, 4.0))
    top = float(max(d.max(), r.max(), cap or 0.0)) * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="grey", linewidth=1, label="radius = distance")
    ax.scatter(d, r, s=18, zorder=3, label="certified radius")
    if cap is not None:
        ax.axhline(cap, color="tab:red", linestyle="--", linewidth=1, label=f"largest certifiable radius {cap:.2f}")
    ax.set_xlabel("exact distance to the boundary (L2, pixel scale [0, 1])")
    ax.set_ylabel("certified radius (L2, pixel scale [0, 1])")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig
