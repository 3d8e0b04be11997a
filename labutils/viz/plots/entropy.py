"""Figures of entropy monitoring (notebook 05): entropy histograms clean vs attacked, detection AUROC
against the attack budget, and AUROCs side by side (e.g. before and after an adaptive attack).

Entropies are in bits; AUROCs are fractions in ``[0, 1]`` (0.5 = chance), drawn as they are given
(a detector whose direction was learnt elsewhere can score below 0.5 on new data); budgets
``eps`` are on the ``[0, 1]`` pixel scale and shown as multiples of 1/255.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ._common import _new_axes, _scores_1d, _to_numpy, overlaid_histograms

__all__ = ["entropy_histograms", "auroc_vs_eps", "auroc_bars"]


def _aurocs(values, n: int, what: str) -> np.ndarray:
    y = _to_numpy(values).ravel()
    if y.size != n:
        raise ValueError(f"{what} has {y.size} values for {n} points on the x axis.")
    finite = y[np.isfinite(y)]
    if finite.size and (finite.min() < -1e-9 or finite.max() > 1 + 1e-9):
        raise ValueError(f"{what} must hold AUROCs in [0, 1].")
    return y


def entropy_histograms(clean: Mapping[str, Sequence[float]], attacked: Mapping[str, Sequence[float]], *,
                       thresholds: Mapping[str, float] | None = None, labels: tuple[str, str] = ("clean", "attacked"),
                       unit: str = "bits", bins: int = 40, ncols: int = 3, title: str | None = None, fig=None):
    """One panel per signal: overlaid density histograms of its values on clean and on attacked inputs.

    Args:
        clean, attacked: ``{signal name: (N,) values}`` with the same names (e.g. per-layer entropies
            and ``"predictive"``); the two sets of one signal share the bins (their common range).
        thresholds: optional ``{signal: threshold}`` drawn as a dashed vertical line.
        labels: legend labels of the clean and the attacked histograms.
        unit: unit of the values for the x labels.
        bins: bins per panel.
        ncols: panels per row.
        title: figure title.
        fig: a Figure (or SubFigure) to draw into (default: a new one).

    Returns the Figure: one axes per signal (x: "<signal> (unit)", y: density), each with two
    step-filled histograms and a legend with the counts.
    """
    import matplotlib.pyplot as plt

    names = list(clean)
    if not names:
        raise ValueError("clean is empty: pass {signal name: values}.")
    if set(names) != set(attacked):
        raise ValueError(f"clean and attacked need the same signals, got {names} and {list(attacked)}.")
    ncols = max(1, min(int(ncols), len(names)))
    nrows = math.ceil(len(names) / ncols)
    if fig is None:
        fig = plt.figure(figsize=(3.6 * ncols, 2.8 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        c, a = _scores_1d(clean[name], f"clean[{name!r}]"), _scores_1d(attacked[name], f"attacked[{name!r}]")
        overlaid_histograms(ax, c, a, (labels[0], labels[1]), bins)
        if thresholds is not None and name in thresholds and np.isfinite(thresholds[name]):
            ax.axvline(float(thresholds[name]), color="black", linestyle="--", linewidth=1, label="threshold")
        ax.set_xlabel(f"{name} ({unit})")
        ax.set_ylabel(f"density (per {unit})")
        ax.legend(fontsize="x-small")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def auroc_vs_eps(eps_values, panels: Mapping[str, Mapping[str, Sequence[float]]], *, eps_in_255: bool = True,
                 ylabel: str = "detection AUROC", title: str | None = None, fig=None):
    """Detection AUROC against the attack budget: one panel per setting (model, attack), one line per signal.

    Args:
        eps_values: budgets on the ``[0, 1]`` pixel scale (shown as x/255 unless ``eps_in_255=False``).
        panels: ``{panel title: {signal: aurocs}}``, one AUROC (fraction in ``[0, 1]``) per budget.
        ylabel: y label (the unit is "AUROC": 0.5 is chance, 1 a perfect separation).
        title: figure title.
        fig: a Figure (or SubFigure) to draw into (default: a new one).

    Returns the Figure: one axes per panel (shared y from 0 to 1, a dotted chance line at 0.5),
    one marked line per signal, the legend in the first panel.
    """
    import matplotlib.pyplot as plt

    eps = _to_numpy(eps_values).ravel()
    if eps.size == 0:
        raise ValueError("eps_values is empty.")
    if not panels:
        raise ValueError("panels is empty: pass {panel title: {signal: aurocs}}.")
    x = eps * 255 if eps_in_255 else eps
    if fig is None:
        fig = plt.figure(figsize=(3.8 * len(panels), 3.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True, squeeze=False)).ravel()
    for ax, (panel, curves) in zip(axes, panels.items()):
        if not curves:
            raise ValueError(f"panel {panel!r} has no curves.")
        for signal, values in curves.items():
            ax.plot(x, _aurocs(values, x.size, f"panels[{panel!r}][{signal!r}]"), marker="o", label=str(signal))
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel("epsilon (x/255)" if eps_in_255 else "epsilon")
        ax.set_title(str(panel), fontsize="small")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize="x-small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def auroc_bars(groups: Mapping[str, Mapping[str, float]], *, ylabel: str = "detection AUROC", ax=None,
               title: str | None = None):
    """Grouped bars: one group per signal, one bar per condition (e.g. plain vs adaptive attack).

    Args:
        groups: ``{condition: {signal: auroc}}``; every condition has the same signals, in order.
        ylabel: y label; ax: axes to draw into (default: a new figure); title: axes title.

    Returns the Figure: bars labelled with their values (two decimals), a dotted chance line at 0.5,
    y from 0 to 1.
    """
    if not groups:
        raise ValueError("groups is empty: pass {condition: {signal: auroc}}.")
    conditions = list(groups)
    signals = list(groups[conditions[0]])
    if not signals:
        raise ValueError(f"condition {conditions[0]!r} has no signals.")
    for c in conditions:
        if list(groups[c]) != signals:
            raise ValueError(f"condition {c!r} has signals {list(groups[c])}, expected {signals}.")
    fig, ax = _new_axes(ax, (max(5.0, 1.1 * len(signals) * len(conditions) + 1.5), 3.5))
    width = 0.8 / len(conditions)
    pos = np.arange(len(signals))
    for k, c in enumerate(conditions):
        values = _aurocs([groups[c][s] for s in signals], len(signals), f"groups[{c!r}]")
        bars = ax.bar(pos + (k - (len(conditions) - 1) / 2) * width, values, width, label=str(c))
        ax.bar_label(bars, [f"{v:.2f}" for v in values], padding=1, fontsize="x-small")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(pos, signals, rotation=20, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("signal")
    if title:
        ax.set_title(title, fontsize="small")
    ax.legend(fontsize="x-small")
    return fig
