"""Curves over training and over attack settings: losses and accuracies per epoch, accuracy vs budget,
PGD's steps / step size / restarts, targeted hit rates vs budget and steps."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._common import _to_numpy, _new_axes, _percent

__all__ = ["training_curves", "accuracy_vs_eps", "pgd_settings", "rates_vs_eps", "rate_vs_steps"]


def training_curves(histories: Mapping[str, Sequence[Mapping]], *, loss_floors: Mapping[str, float] | None = None,
                    axes=None):
    """Training accuracy against training time and training loss against epoch, one line per model.

    Args:
        histories: ``{label: records}``, one record per epoch as :func:`labutils.training.fit` keeps them
            (``info["history"]`` of ``get_or_train``): ``epoch``, ``seconds`` (training time so far),
            ``loss`` and ``train_acc`` (a fraction, measured on the augmented batches while the epoch trains).
        loss_floors: ``{label: lowest reachable loss}`` drawn as a dashed line in that model's colour
            (e.g. the target's entropy under label smoothing).
        axes: two axes to draw into (default: a new figure with two panels side by side).

    Returns the Figure: left, training accuracy (%) against seconds; right, loss against epoch.
    """
    if not histories:
        raise ValueError("histories is empty: pass {label: per-epoch records}.")
    for label, records in histories.items():
        if len(records) == 0:
            raise ValueError(f"history {label!r} has no epochs.")
        missing = {"epoch", "seconds", "loss", "train_acc"} - set().union(*map(set, records))
        if missing:
            raise ValueError(f"history {label!r} lacks {sorted(missing)} (records of a classifier's training).")
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    ax_acc, ax_loss = axes
    for label, records in histories.items():
        ax_acc.plot([r["seconds"] for r in records], [100 * r["train_acc"] for r in records], marker="o",
                    label=str(label))
        (line,) = ax_loss.plot([r["epoch"] for r in records], [r["loss"] for r in records], marker="o",
                               label=str(label))
        if loss_floors is not None and label in loss_floors:
            ax_loss.axhline(loss_floors[label], color=line.get_color(), linestyle="--", linewidth=1,
                            label=f"{label}: lowest possible loss")
    ax_acc.set(xlabel="training time (s)", ylabel="training accuracy (%)",
               title="accuracy on augmented training batches")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="training loss")
    ax_loss.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return ax_acc.figure


def accuracy_vs_eps(eps_values, curves: Mapping[str, Sequence[float]], *, ax=None, eps_in_255: bool = True,
                    accuracy_in_percent: bool = False, xlabel: str | None = None, title: str | None = None):
    """Accuracy under attack against the attack budget epsilon, one line per model / attack.

    Args:
        eps_values: budgets on the ``[0, 1]`` pixel scale (e.g. ``(0, 1/255, 8/255)``),
            or in the attack's own units (e.g. L2 norms) with ``eps_in_255=False``.
        curves: ``{label: accuracies}``, one accuracy per epsilon: fractions in
            ``[0, 1]`` (as :func:`labutils.training.evaluate` returns them) or
            percentages with ``accuracy_in_percent=True``.
        ax: axes to draw into (default: a new figure).
        eps_in_255: show epsilon as multiples of 1/255 (x label "epsilon (x/255)").
        accuracy_in_percent: the accuracies are already in %.
        xlabel: override the x label (e.g. ``"L2 epsilon"``).

    Returns the Figure: one marked line per curve, y axis "accuracy (%)" from 0 to 100.
    """
    eps = _to_numpy(eps_values).ravel()
    if eps.size == 0:
        raise ValueError("eps_values is empty.")
    if not curves:
        raise ValueError("curves is empty: pass {label: accuracies}.")
    if eps_in_255 and eps.max() > 1:
        raise ValueError(f"eps_values must be on the [0, 1] pixel scale when eps_in_255=True (e.g. 8/255), "
                         f"got a maximum of {eps.max():g}; pass eps/255, or eps_in_255=False for other units.")
    x = eps * 255 if eps_in_255 else eps
    fig, ax = _new_axes(ax, (5.5, 3.5))
    for label, acc in curves.items():
        y = _to_numpy(acc).ravel()
        if y.shape != eps.shape:
            raise ValueError(f"curve {label!r} has {y.size} accuracies for {eps.size} epsilon values.")
        if not accuracy_in_percent:
            if np.nanmax(y) > 1 + 1e-9:
                raise ValueError(f"curve {label!r} has accuracies above 1; pass fractions in [0, 1] "
                                 "or set accuracy_in_percent=True.")
            y = 100 * y
        ax.plot(x, y, marker="o", label=str(label))
    ax.set_xlabel(xlabel if xlabel is not None else ("epsilon (x/255)" if eps_in_255 else "epsilon"))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def pgd_settings(panels: Mapping[str, object], *, xlabels: Mapping[str, str] | None = None,
                 log2_x: Sequence[str] = ("steps", "alpha_factor"), title: str | None = None):
    """Accuracy under PGD against one attack setting per panel (steps, step size, restarts), one line per budget.

    Args:
        panels: ``{setting: records}``, the setting a record key (``"steps"``, ``"alpha_factor"``,
            ``"restarts"``); records as :func:`labutils.robustness.pgd_accuracy_grid` returns them (dicts
            with ``eps`` on the ``[0, 1]`` pixel scale, the setting and ``accuracy`` in ``[0, 1]``), or a DataFrame.
        xlabels: x label per setting (default: the setting's name).
        log2_x: settings drawn on a log2 x axis.

    Returns the Figure: one panel per setting sharing the y axis "accuracy under attack (%)" from 0.
    """
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("panels is empty: pass {setting: records}.")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), layout="constrained",
                             sharey=True, squeeze=False)
    for ax, (key, records) in zip(axes[0], panels.items()):
        rows = records.to_dict("records") if hasattr(records, "to_dict") else list(records)
        if not rows or any(key not in r for r in rows):
            raise ValueError(f"panel {key!r}: every record needs the keys 'eps', {key!r} and 'accuracy'.")
        for eps in sorted({float(r["eps"]) for r in rows}):
            pts = sorted((r[key], 100 * float(r["accuracy"])) for r in rows if float(r["eps"]) == eps)
            ax.plot(*zip(*pts), marker="o", label=f"eps {eps * 255:.0f}/255")
        ticks = sorted({r[key] for r in rows})
        if key in log2_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel((xlabels or {}).get(key, key))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylim(bottom=0)
    axes[0, 0].set_ylabel("accuracy under attack (%)")
    axes[0, 0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def rates_vs_eps(eps_values, solid: Mapping[str, Sequence[float]], dashed: Mapping[str, Sequence[float]] | None = None,
                 *, solid_name: str = "target hit", dashed_name: str = "misclassified", ax=None,
                 ylabel: str = "attacked pairs (%)", title: str | None = None):
    """Two rates per attack against the Linf budget: one colour per attack, ``solid`` drawn solid, ``dashed`` dashed.

    Args:
        eps_values: budgets on the ``[0, 1]`` pixel scale, shown as multiples of 1/255.
        solid, dashed: ``{attack: fractions in [0, 1]}``, one per budget (e.g. targeted attacks: the pairs whose
            target was hit, and the pairs misclassified); ``dashed``'s keys are among ``solid``'s.
        solid_name, dashed_name: what each rate is, appended to the attack's name in the legend.

    Returns the Figure: lines labelled ``"<attack>: <rate name>"``, y axis in % from 0 to 100.
    """
    eps, dashed = _to_numpy(eps_values).ravel(), dict(dashed or {})
    if not solid or eps.size == 0 or eps.max() > 1:
        raise ValueError("pass budgets on the [0, 1] pixel scale (e.g. 8/255) and at least one solid curve.")
    if set(dashed) - set(solid):
        raise ValueError(f"dashed curves {sorted(set(dashed) - set(solid))} have no solid curve.")
    fig, ax = _new_axes(ax, (5.5, 3.5))
    for j, label in enumerate(solid):
        for name, curves, style in ((solid_name, solid, "-"), (dashed_name, dashed, "--")):
            if label in curves:
                ax.plot(255 * eps, _percent(curves[label], eps.size, f"{label}: {name}"), marker="o", color=f"C{j}",
                        linestyle=style, label=f"{label}: {name}")
    ax.set(xlabel="epsilon (x/255)", ylabel=ylabel, ylim=(-2, 102), title=title or "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def rate_vs_steps(steps_values, curves: Mapping[str, Sequence[float]], *, reference: Mapping[str, float] | None = None,
                  ax=None, ylabel: str = "target hit (%)", title: str | None = None):
    """A success rate against the number of attack steps, on a log axis ticked at the step counts.

    Args:
        steps_values: positive step counts (e.g. ``(1, 2, 5, 10)``).
        curves: ``{attack: fractions in [0, 1]}``, one per step count.
        reference: ``{label: fraction}`` drawn as dotted horizontal lines (e.g. a one-step attack).

    Returns the Figure: one marked line per curve, one dotted line per reference, y axis in % from 0 to 100.
    """
    steps = _to_numpy(steps_values).ravel()
    if not curves or steps.size == 0 or steps.min() < 1:
        raise ValueError("pass positive step counts and at least one curve.")
    fig, ax = _new_axes(ax, (5.5, 3.5))
    for label, rates in curves.items():
        ax.plot(steps, _percent(rates, steps.size, str(label)), marker="o", label=str(label))
    for label, rate in (reference or {}).items():
        ax.axhline(100 * float(rate), color="grey", linestyle=":", label=str(label))
    ax.set_xscale("log")
    ax.set_xticks(steps, [f"{s:g}" for s in steps])
    ax.minorticks_off()
    ax.set(xlabel="attack steps (count, log scale)", ylabel=ylabel, ylim=(-2, 102), title=title or "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
