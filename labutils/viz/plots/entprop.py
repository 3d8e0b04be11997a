"""Figures of EntProp (notebook 08): the predictive entropy of the images it selects and of those it leaves,
as the training goes on.

Histograms come from the training history (``entropy_hist_selected`` / ``entropy_hist_unselected`` of each
epoch's record, :class:`labutils.training.entprop.EntPropStep`); entropies are in nats.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._common import _to_numpy

__all__ = ["selection_entropy_histograms"]


def selection_entropy_histograms(panels: Mapping[str, tuple[Sequence[int], Sequence[int]]], edges, *, fig=None,
                                 title: str | None = None):
    """One panel per entry: the entropy distribution of the selected and of the unselected images.

    Args:
        panels: ``{panel title (e.g. "epoch 1"): (selected counts, unselected counts)}``, counts per bin.
        edges: the ``B + 1`` bin edges in nats (increasing).
        title: figure title.

    Returns the Figure: each panel shows both distributions as densities (each sums to 1 over the bins),
    x axis "predictive entropy (nats)", y axis "share of images per bin".
    """
    import matplotlib.pyplot as plt

    edges = _to_numpy(edges).ravel()
    if not panels:
        raise ValueError("panels is empty: pass {title: (selected counts, unselected counts)}.")
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be at least two increasing bin edges (nats).")
    if fig is None:
        fig = plt.figure(figsize=(3.6 * len(panels), 3.0))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    for ax, (name, (sel, unsel)) in zip(axes, panels.items()):
        for counts, label, colour in ((sel, "selected", "tab:red"), (unsel, "not selected", "tab:blue")):
            c = _to_numpy(counts).ravel()
            if c.shape != centres.shape or np.any(c < 0):
                raise ValueError(f"panel {name!r}: {label} needs {len(centres)} non-negative counts, got {c.size}.")
            share = c / c.sum() if c.sum() > 0 else c
            ax.bar(centres, share, width=width, alpha=0.55, color=colour, label=f"{label} ({int(c.sum())})")
        ax.set_title(str(name))
        ax.set_xlabel("predictive entropy (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("share of images per bin")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
