"""Figures of robustness as survival (notebook 09): Kaplan-Meier curves of time to failure, AFT acceleration
factors, an AFT model's predicted survival curves, and training cost against expected survival.

Durations are attack budgets (``eps`` on the ``[0, 1]`` pixel scale, L2 radii, PGD steps, or budgets scaled
to ``(0, 1]`` within each attack); ``event`` is 1 where the prediction flipped, 0 where censored.
The Kaplan-Meier estimate is lifelines' (imported when drawn).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._common import _new_axes, _to_numpy

__all__ = ["kaplan_meier_curves", "acceleration_factor_plot", "predicted_survival_curves", "cost_vs_survival"]


def _finish_axes(ax, xlabel: str, ylabel: str | None, title: str | None, **grid) -> None:
    """Labels, a light grid (``grid``: e.g. ``axis="x"``), the legend and the title."""
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, **grid)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)


def _share_axes(ax, xlabel: str, ylabel: str, title: str | None) -> None:
    """Axes of a share of images (0 to 1) against a budget: limits, labels, grid, legend, title."""
    ax.set_ylim(-0.02, 1.02)
    _finish_axes(ax, xlabel, ylabel, title)


def kaplan_meier_curves(groups: Mapping[str, tuple], *, ax=None, xlabel: str = "attack budget", title: str | None = None,
                        ci: bool = True, logx: bool = False):
    """One Kaplan-Meier survival curve per group: the share of images not yet flipped against the budget.

    Args:
        groups: ``{label: (duration (M,), event (M,))}``: durations > 0, events 1 (flipped) / 0 (censored).
        xlabel: the budget's name and unit, e.g. ``"PGD Linf eps (x 1/255)"``.  ci: shade lifelines' 95 % band.
        logx: log-scaled budget axis.

    Returns the Figure; censored images are marked with ``|`` where they leave the curve.
    """
    from lifelines import KaplanMeierFitter

    if not groups:
        raise ValueError("groups is empty: pass {label: (duration, event)}.")
    fig, ax = _new_axes(ax, (6.0, 4.0))
    for label, (duration, event) in groups.items():
        d, e = _to_numpy(duration).ravel().astype(float), _to_numpy(event).ravel().astype(bool)
        if d.shape != e.shape or d.size == 0 or np.any(~np.isfinite(d) | (d <= 0)):
            raise ValueError(f"group {label!r}: duration and event must be non-empty, of one length, durations > 0.")
        km = KaplanMeierFitter(label=str(label)).fit(d, e)
        sf = km.survival_function_.iloc[:, 0]
        line, = ax.step(sf.index, sf.to_numpy(), where="post", label=f"{label} (n={d.size})")
        if ci:
            band = km.confidence_interval_survival_function_
            ax.fill_between(band.index, band.iloc[:, 0], band.iloc[:, 1], step="post", alpha=0.15,
                            color=line.get_color())
        cens = d[~e]
        if cens.size:
            ax.plot(np.unique(cens), km.survival_function_at_times(np.unique(cens)).to_numpy(), "|",
                    color=line.get_color(), markersize=8)
    if logx:
        ax.set_xscale("log")
    _share_axes(ax, xlabel, "share of images not yet flipped", title)
    return fig


def acceleration_factor_plot(factors: Mapping, *, ax=None, title: str | None = None):
    """Time ratios ``exp(coef)`` with their confidence intervals, one row per covariate, log scale.

    Args:
        factors: ``{model name: DataFrame}`` from :func:`labutils.robustness.acceleration_factors`
            (columns ``time_ratio``, ``ci_lower``, ``ci_upper``; indexed by covariate).

    Returns the Figure: right of the line at 1 a covariate slows failure, left of it speeds failure up.
    """
    if not factors:
        raise ValueError("factors is empty: pass {model: acceleration_factors(fit)}.")
    covariates = list(dict.fromkeys(c for f in factors.values() for c in f.index))
    fig, ax = _new_axes(ax, (6.5, 0.45 * len(covariates) + 1.5))
    k = len(factors)
    for j, (name, f) in enumerate(factors.items()):
        ys = np.array([covariates.index(c) for c in f.index]) + (j - (k - 1) / 2) * 0.8 / max(k, 1)
        tr = f["time_ratio"].to_numpy(float)
        err = np.vstack([tr - f["ci_lower"].to_numpy(float), f["ci_upper"].to_numpy(float) - tr])
        ax.errorbar(tr, ys, xerr=err, fmt="o", capsize=3, label=str(name))
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(covariates)), covariates)
    ax.invert_yaxis()
    _finish_axes(ax, "time ratio exp(coef) (log scale; > 1 slows failure)", None, title, axis="x")
    return fig


def predicted_survival_curves(fit, rows, *, times=None, ax=None, xlabel: str = "attack budget",
                              title: str | None = None):
    """An AFT model's survival curve ``S(t | covariates)`` for each row of ``rows`` (a DataFrame, index = label).

    ``times``: the budgets to evaluate at (default: 200 points up to the fit's largest duration).
    """
    if len(rows) == 0:
        raise ValueError("rows is empty: pass one row of covariates per curve.")
    if times is None:
        times = np.linspace(0, float(np.max(fit.durations)), 200)[1:]
    sf = fit.predict_survival_function(rows, times=np.asarray(times, float))
    fig, ax = _new_axes(ax, (6.0, 4.0))
    for label, col in zip(rows.index, sf.columns):
        ax.plot(sf.index, sf[col].to_numpy(), label=str(label))
    _share_axes(ax, xlabel, "predicted share not yet flipped", title)
    return fig


def cost_vs_survival(table, *, x: str = "train_seconds_per_sample", y: str = "expected_seconds_to_failure",
                     label: str = "model", ax=None, title: str | None = None):
    """Training cost per sample against the expected time to break one sample, one point per model.

    ``table``: a DataFrame with columns ``x`` and ``y`` (seconds, log-log axes) and ``label``; the dashed
    line is where both are equal (cost-normalised metric 1); above it the metric is below 1: a sample costs less
    to train than to break.
    """
    for col in (x, y, label):
        if col not in table.columns:
            raise ValueError(f"table has no column {col!r}; its columns are {list(table.columns)}.")
    fig, ax = _new_axes(ax, (6.0, 4.5))
    xs, ys = table[x].to_numpy(float), table[y].to_numpy(float)
    ax.scatter(xs, ys)
    for xi, yi, name in zip(xs, ys, table[label]):
        ax.annotate(str(name), (xi, yi), fontsize="small", xytext=(3, 3), textcoords="offset points")
    lo, hi = np.nanmin(np.r_[xs, ys]) / 2, np.nanmax(np.r_[xs, ys]) * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="cost-normalised metric = 1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _finish_axes(ax, "training time per sample (s)", "expected time to break one sample (s)", title, which="both")
    return fig
