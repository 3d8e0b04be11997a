"""Figures of adversarial training (notebook 04): accuracy per method and attack, training cost relative to
standard training, and the per-epoch catastrophic-overfitting check."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._common import _new_axes, _percent, _to_numpy

__all__ = ["attack_accuracy_bars", "training_cost", "overfitting_checks"]


def attack_accuracy_bars(methods: Sequence[str], accuracies: Mapping[str, Sequence[float]], *, ax=None,
                         title: str | None = None):
    """Grouped bars: one group per training method, one bar per evaluation (clean, FGSM, PGD-10...).

    Args:
        methods: the training methods (x axis), e.g. ``["standard", "fgsm", "fast_fgsm", "free"]``.
        accuracies: ``{evaluation label: one accuracy per method}``, fractions in ``[0, 1]``.
        ax: axes to draw into (default: a new figure).
        title: axes title.

    Returns the Figure: bars in %, each labelled with its value, y axis "accuracy (%)" from 0 to 100.
    """
    def values(label, v):
        return _percent(v, len(methods), f"accuracies[{label!r}]")

    fig, ax = _grouped_bars(methods, accuracies, values, "{:.0f}", ax, "accuracies", title)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize="small")
    return fig


def training_cost(methods: Sequence[str], ratios: Mapping[str, Sequence[float]], *, ax=None,
                  title: str | None = None):
    """Grouped bars of training cost relative to standard training (1 = the same cost).

    Args:
        methods: the training methods (x axis).
        ratios: ``{label: one ratio per method}``, e.g. ``{"predicted passes": [...], "counted passes": [...],
            "measured time": [...]}``; non-negative multiples of standard training's cost.
        ax: axes to draw into (default: a new figure).
        title: axes title.

    Returns the Figure: one bar per (method, label) with its value, a dashed line at 1.
    """
    def values(label, v):
        y = _to_numpy(v).ravel()
        if y.size != len(methods):
            raise ValueError(f"ratios[{label!r}] has {y.size} values for {len(methods)} methods.")
        if np.nanmin(y) < 0:
            raise ValueError(f"ratios[{label!r}] must be non-negative multiples of standard training's cost.")
        return y

    fig, ax = _grouped_bars(methods, ratios, values, "{:.2g}", ax, "ratios", title)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="standard training")
    ax.set_ylabel("cost relative to standard training (x)")
    ax.set_ylim(0, None)
    ax.legend(fontsize="small")
    return fig


def _grouped_bars(methods, groups: Mapping, values, fmt: str, ax, what: str, title):
    """One bar per (method, group), labelled with ``fmt``; ``values(label, v)`` checks and converts a group."""
    methods = [str(m) for m in methods]
    if not methods:
        raise ValueError("methods is empty.")
    if not groups:
        raise ValueError(f"{what} is empty: pass {{label: one value per method}}.")
    fig, ax = _new_axes(ax, (1.6 + 1.5 * len(methods), 3.6))
    width = 0.8 / len(groups)
    x = np.arange(len(methods))
    for i, (label, v) in enumerate(groups.items()):
        y = values(label, v)
        bars = ax.bar(x + (i - (len(groups) - 1) / 2) * width, y, width, label=str(label))
        ax.bar_label(bars, [fmt.format(u) for u in y], padding=1, fontsize="x-small")
    ax.set_xticks(x, methods)
    ax.set_xlabel("training method")
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


_CHECK_KEYS = {"check_clean_acc": ("clean", ":"), "check_fgsm_acc": ("FGSM", "-"), "check_pgd_acc": ("PGD-10", "--")}


def overfitting_checks(histories: Mapping[str, Sequence[Mapping]], *, detected: Mapping[str, Mapping | None] | None = None,
                       axes=None, title: str | None = None):
    """The per-epoch catastrophic-overfitting check: accuracy on held-out training images, one panel per model.

    Args:
        histories: ``{model label: per-epoch records}`` as :func:`labutils.training.fit` keeps them for the
            adversarial modes (``epoch``, ``check_fgsm_acc``, ``check_pgd_acc`` and optionally
            ``check_clean_acc``, fractions).  Records without the check are skipped.
        detected: ``{model label: what detect_catastrophic_overfitting returned}`` (None: nothing found);
            a found epoch is marked by a vertical red line.
        axes: one axes per model (default: a new row of panels sharing the y axis).
        title: figure title.

    Returns the Figure: per panel, clean (dotted), FGSM (solid) and PGD-10 (dashed) accuracy in % against
    the epoch.  Catastrophic overfitting shows as the PGD line collapsing while the FGSM line rises.
    """
    if not histories:
        raise ValueError("histories is empty: pass {model label: per-epoch records}.")
    checked = {}
    for label, records in histories.items():
        rows = [r for r in records if "check_fgsm_acc" in r and "check_pgd_acc" in r]
        if not rows:
            raise ValueError(f"history {label!r} has no per-epoch check (check_fgsm_acc / check_pgd_acc): "
                             "train an adversarial mode with overfit_check > 0.")
        checked[label] = rows
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(checked), figsize=(3.6 * len(checked), 3.4), layout="constrained",
                                 sharey=True, squeeze=False)
        axes = axes[0]
    axes = list(np.atleast_1d(axes))
    if len(axes) != len(checked):
        raise ValueError(f"{len(axes)} axes for {len(checked)} models.")
    for ax, (label, rows) in zip(axes, checked.items()):
        epochs = [r["epoch"] for r in rows]
        for key, (name, style) in _CHECK_KEYS.items():
            if all(key in r for r in rows):
                ax.plot(epochs, _percent([r[key] for r in rows], len(rows), f"{label} {key}"), style, marker="o",
                        label=name)
        found = (detected or {}).get(label)
        if found:
            ax.axvline(found["epoch"], color="tab:red", linewidth=1.5,
                       label=f"overfitting detected (epoch {found['epoch']})")
        ax.set_title(str(label), fontsize="medium")
        ax.set_xlabel("epoch (pass over the data)")
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("accuracy on held-out training images (%)")
    axes[0].set_ylim(0, 100)
    fig = axes[0].figure
    if title:
        fig.suptitle(title)
    return fig
