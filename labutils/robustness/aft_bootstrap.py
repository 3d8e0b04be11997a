"""Confidence intervals of AFT time ratios when rows come in clusters: a bootstrap over whole clusters.

A grid measures the same test image under many models and attacks, so its rows are not independent:
an image that is easy to break is easy for every model.  lifelines' standard errors treat every row as
independent and come out too narrow.  :func:`cluster_bootstrap_time_ratios` resamples whole clusters
(images) with replacement, refits, and reads percentile intervals of ``exp(coef)`` from the refits
(Efron and Tibshirani, 1993; the cluster bootstrap of Field and Welsh, 2007).
"""
from __future__ import annotations

import numpy as np

from .survival import _model_key, _optional, _scale_name, acceleration_factors, fit_aft, time_ratio_effect

__all__ = ["cluster_bootstrap_time_ratios"]


def cluster_bootstrap_time_ratios(df, clusters, *, model: str = "weibull", n_boot: int = 50, alpha: float = 0.05,
                                  seed: int = 0, duration_col: str = "duration", event_col: str = "event",
                                  progress: bool = True):
    """Time ratios of one AFT model with intervals from a bootstrap that resamples whole clusters.

    Args:
        df: the frame :func:`~labutils.robustness.fit_aft` takes (durations > 0, events, numeric covariates).
        clusters: array-like ``(len(df),)``: each row's cluster (e.g. the test image it measured).
        model: ``"weibull"``, ``"lognormal"`` or ``"loglogistic"``.  n_boot: refits (>= 10).
        alpha: 1 - the intervals' level (0.05: 95 % percentile intervals).  seed: the resampling's seed.
        progress: a tqdm bar over the refits.

    Returns a DataFrame indexed by covariate: ``time_ratio`` (the fit on all rows), ``ci_lower`` /
    ``ci_upper`` (percentiles of the refits' ``exp(coef)``), ``se`` (the refits' standard deviation of
    ``coef``), ``naive_se`` (lifelines', rows taken as independent), ``effect`` (``"slows failure"``,
    ``"speeds up failure"`` or ``"unclear"`` when the interval contains 1); ``attrs``: ``n_boot``,
    ``failed`` (refits skipped because a resample had no variance in a covariate or did not converge),
    ``clusters``, ``ci``.
    """
    from tqdm.auto import tqdm

    pd = _optional("pandas")
    key = _model_key(model)
    clusters = np.asarray(clusters)
    if clusters.shape != (len(df),):
        raise ValueError(f"clusters must have one entry per row of df ({len(df)}), got shape {clusters.shape}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"n_boot must be an int >= 10 (percentile intervals need refits), got {n_boot!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    full = fit_aft(df, models=(key,), duration_col=duration_col, event_col=event_col)[key]
    base = acceleration_factors(full)
    names, inverse = np.unique(clusters, return_inverse=True)
    if names.size < 2:
        raise ValueError("clusters has a single value: a cluster bootstrap needs at least two clusters.")
    members = [np.flatnonzero(inverse == c) for c in range(names.size)]
    rng = np.random.default_rng(seed)
    scale = _scale_name(full)
    coefs, failed = [], 0
    for _ in tqdm(range(n_boot), desc=f"bootstrap ({key})", disable=not progress, leave=False):
        rows = np.concatenate([members[c] for c in rng.integers(0, names.size, names.size)])
        sample = df.iloc[rows].reset_index(drop=True)
        try:
            refit = fit_aft(sample, models=(key,), duration_col=duration_col, event_col=event_col)[key]
        except (ValueError, ArithmeticError):  # no variance left in a covariate, or lifelines did not converge
            failed += 1
            continue
        coefs.append(refit.params_.loc[scale].reindex(base.index).to_numpy(float))
    if len(coefs) < max(10, 0.8 * n_boot):
        raise RuntimeError(f"{failed} of {n_boot} bootstrap refits failed (a resample lacked variance in a covariate, "
                           "or the fit did not converge): use more clusters or fewer covariates.")
    draws = np.vstack(coefs)
    lo, hi = np.exp(np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0))
    out = pd.DataFrame({"time_ratio": base["time_ratio"], "ci_lower": lo, "ci_upper": hi,
                        "se": draws.std(axis=0, ddof=1), "naive_se": base["se"]}, index=base.index)
    out["effect"] = time_ratio_effect(lo, hi)
    out.attrs.update({"n_boot": n_boot, "failed": failed, "clusters": int(names.size), "ci": 1 - alpha})
    return out
