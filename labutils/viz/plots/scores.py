"""Figures of detector scores: histograms of in- and out-of-distribution scores, ROC curves."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._common import _to_numpy, _new_axes, _scores_1d

__all__ = ["score_histograms", "roc_curves"]


def score_histograms(scores_id, scores_ood, *, score_name: str, ax=None, bins: int = 50,
                     id_label: str = "in-distribution", unit: str | None = None):
    """Overlaid density histograms of an OOD score on ID data and on one or more OOD sets.

    Args:
        scores_id: ``(N_id,)`` scores of the in-distribution test set.
        scores_ood: ``{OOD set name: (N,) scores}`` (a single array is labelled "OOD").
        score_name: name of the score, used in the x label and title (e.g. ``"max_softmax"``).
        ax: axes to draw into (default: a new figure).
        bins: number of bins shared by all histograms (over the range of all finite scores).
        id_label: legend label of the ID histogram.
        unit: unit of the score for the x label (e.g. ``"nats"``, ``"logit units"``).

    Non-finite scores are left out.  Returns the Figure: one step-filled
    histogram per data set (the ID one first) and a legend.
    """
    if not isinstance(scores_ood, Mapping):
        scores_ood = {"OOD": scores_ood}
    if not scores_ood:
        raise ValueError("scores_ood is empty: pass {OOD set name: scores}.")
    sets = {id_label: _scores_1d(scores_id, "scores_id")}
    for name, s in scores_ood.items():
        if name in sets:
            raise ValueError(f"OOD set name {name!r} clashes with the ID label; pass another id_label.")
        sets[name] = _scores_1d(s, f"scores_ood[{name!r}]")
    lo = min(float(s.min()) for s in sets.values())
    hi = max(float(s.max()) for s in sets.values())
    if hi <= lo:  # every score identical: give the bins a width
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    fig, ax = _new_axes(ax, (6, 3.5))
    for name, s in sets.items():
        ax.hist(s, bins=edges, density=True, histtype="stepfilled", alpha=0.45, label=f"{name} (n={s.size})")
    ax.set_xlabel(f"{score_name} ({unit})" if unit else f"{score_name} score")
    ax.set_ylabel("density (per unit of score)")
    ax.set_title(f"{score_name}: higher = more in-distribution")
    ax.legend()
    return fig


def roc_curves(curves: Mapping[str, Sequence], ax=None):
    """ROC curves with the chance diagonal and each curve's AUROC in the legend.

    Args:
        curves: ``{label: (fpr, tpr)}`` or ``{label: (fpr, tpr, thresholds)}`` as returned by
            :func:`labutils.uncertainty.roc_curve`: fractions in ``[0, 1]``, ordered by increasing fpr.
            In the OOD setting the positive class is in-distribution: ``tpr`` is the
            fraction of ID images accepted, ``fpr`` the fraction of OOD images accepted.
        ax: axes to draw into (default: a new figure).

    The AUROC shown is the trapezoidal area under the given points.  Returns
    the Figure: one line per curve plus the dashed chance line.
    """
    if not curves:
        raise ValueError("curves is empty: pass {label: (fpr, tpr)}.")
    fig, ax = _new_axes(ax, (4.5, 4.5))
    for label, curve in curves.items():
        if len(curve) < 2:
            raise ValueError(f"curve {label!r} must be (fpr, tpr[, thresholds]).")
        fpr, tpr = _to_numpy(curve[0]).ravel(), _to_numpy(curve[1]).ravel()
        if fpr.shape != tpr.shape or fpr.size < 2:
            raise ValueError(f"curve {label!r}: fpr and tpr must be 1-D of the same length >= 2, "
                             f"got {fpr.shape} and {tpr.shape}.")
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        ax.plot(fpr, tpr, label=f"{label} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance (AUROC 0.500)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (fraction of OOD accepted)")
    ax.set_ylabel("true positive rate (fraction of ID accepted)")
    ax.legend(loc="lower right", fontsize="small")
    return fig
