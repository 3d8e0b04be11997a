"""Robustness as survival: per-image time to failure under attack, AFT fits, a cost-normalised metric.

An attack is a reliability test; an image's "time" is the budget at which its prediction first
flips: the first ``eps`` of an increasing ladder (:func:`time_to_failure`, FGSM or PGD, optional
bisection) or the first PGD step (:func:`steps_to_failure`).  Images never flipped are
right-censored at the largest budget; images misclassified without attack are excluded and
counted.  :func:`fit_aft` fits Weibull, log-normal and log-logistic accelerated-failure-time
models (lifelines), :func:`compare_aft` compares them, :func:`acceleration_factors` reads their
time ratios.  The measurements need torch only; tables and fits need pandas and lifelines (the
``course`` extra, ``make setup``), imported by the functions that use them.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..attacks.checks import as_int, canonical_norm, check_alpha, check_eps, check_labels
from ..attacks.gradient import PreparedBatch, fgsm, pgd, pgd_step
from ..data import as_float_images
from ..extras import require
from ..runtime import frozen_eval
from .curves import _correct_under_attack, correct_mask

__all__ = ["SurvivalData", "time_to_failure", "steps_to_failure", "AFT_MODELS", "AFTFits", "fit_aft",
           "compare_aft", "acceleration_factors", "time_ratio_effect", "expected_time_to_failure",
           "cost_normalised_robustness"]

# model name -> lifelines class and the name of its scale parameter (the one covariates act on)
AFT_MODELS = {"weibull": ("WeibullAFTFitter", "lambda_"), "lognormal": ("LogNormalAFTFitter", "mu_"),
              "loglogistic": ("LogLogisticAFTFitter", "alpha_")}


def _optional(name: str):
    """Import ``pandas`` or ``lifelines``, or say how to install it."""
    return require(name, "labutils.robustness.survival (tables and AFT fits)")


@dataclass(frozen=True, eq=False)
class SurvivalData:
    """Time to failure of each correctly classified image under one attack.

    Attributes:
        duration: float64 ``(M,)``: the budget at which the prediction first flipped (``eps`` on the
            ``[0, 1]`` pixel scale, or a PGD step count), or the largest budget if it never did.
        event: bool ``(M,)``: True where the prediction flipped, False where censored.
        index: int64 ``(M,)``: each row's position in the ``x`` that was measured.
        n_misclassified: images already misclassified without attack (excluded from the rows).
        misclassified: int64 ``(n_misclassified,)``: their positions in ``x``.
        budgets: float64 ``(B,)``: the ladder (for :func:`steps_to_failure`: ``1..max_steps``).
        attack: ``"fgsm"`` or ``"pgd"``; norm: ``"linf"`` or ``"l2"``; unit: ``"eps"`` or ``"steps"``.
        seconds: wall-clock seconds of the whole measurement; with :attr:`n_events`, the whole-attack
            view (time to generate, successes).
    """

    duration: np.ndarray
    event: np.ndarray
    index: np.ndarray
    n_misclassified: int
    misclassified: np.ndarray
    budgets: np.ndarray
    attack: str
    norm: str
    unit: str = "eps"
    seconds: float = float("nan")

    @property
    def n_events(self) -> int:  # images flipped within the budgets
        return int(self.event.sum())

    @property
    def n_censored(self) -> int:  # images that survived the largest budget
        return int(self.event.size - self.event.sum())

    def to_frame(self, covariates: dict | None = None):
        """A pandas DataFrame, one row per measured image: ``duration``, ``event`` and the covariates.

        ``covariates`` maps a column name to a scalar (broadcast, e.g. ``{"depth": 18}``) or to an
        array of length M.  Every column but ``duration`` and ``event`` is a covariate to :func:`fit_aft`,
        so the image index is the frame's index, not a column.  Concatenate the frames of several
        models (``pandas.concat``) before fitting: a covariate constant over the frame has no effect to estimate.
        """
        pd = _optional("pandas")
        frame = pd.DataFrame({"duration": self.duration, "event": self.event},
                             index=pd.Index(self.index, name="image"))
        for name, value in (covariates or {}).items():
            if name in ("duration", "event"):
                raise ValueError(f"covariate name {name!r} clashes with the duration / event columns.")
            arr = np.asarray(value)
            if arr.ndim and arr.shape != (len(frame),):
                raise ValueError(f"covariate {name!r} must be a scalar or have shape (M,) = ({len(frame)},), "
                                 f"got shape {arr.shape}.")
            frame[name] = arr.item() if arr.ndim == 0 else arr
        return frame


def _check_ladder(budgets, norm: str, dim: int) -> np.ndarray:
    """The budgets as float64 ``(B,)``: non-empty, each a valid ``eps`` > 0, strictly increasing."""
    try:
        ladder = np.asarray([float(b) for b in budgets], dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"budgets must be a sequence of numbers (eps values), got {budgets!r}.") from None
    if ladder.size == 0:
        raise ValueError("budgets is empty: give an increasing ladder of eps values > 0, e.g. [1/255, 2/255, 4/255].")
    bad = ~np.isfinite(ladder) | (ladder <= 0)
    if bad.any():
        raise ValueError(f"budgets must be finite and > 0 (a budget of 0 is the clean image, measured apart), "
                         f"got {ladder[bad].tolist()} at positions {np.flatnonzero(bad).tolist()}.")
    for b in ladder:
        check_eps(float(b), 1, norm, dim, name="budget")
    if ladder.size > 1 and not (np.diff(ladder) > 0).all():
        raise ValueError(f"budgets must be strictly increasing, got {ladder.tolist()}.")
    return ladder


def _survival(clean: torch.Tensor, duration, event, budgets, attack, norm, unit, t0) -> SurvivalData:
    keep = clean.nonzero().squeeze(1).numpy().astype(np.int64)
    wrong = (~clean).nonzero().squeeze(1).numpy().astype(np.int64)
    return SurvivalData(duration=np.asarray(duration, np.float64), event=np.asarray(event, bool), index=keep,
                        n_misclassified=int(wrong.size), misclassified=wrong, budgets=np.asarray(budgets, np.float64),
                        attack=attack, norm=norm, unit=unit, seconds=time.perf_counter() - t0)


def time_to_failure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budgets: Sequence[float], *,
                    attack: str = "fgsm", norm: str = "linf", steps: int = 10, alpha: float | None = None,
                    alpha_factor: float = 2.5, random_start: bool = False, refine: int = 0, batch_size: int = 256,
                    precision: str = "fp32", generator: torch.Generator | None = None,
                    progress: bool = True) -> SurvivalData:
    """Per image, the smallest budget of the ladder ``budgets`` at which the attack flips the prediction.

    Each budget attacks, from the clean image, the images no smaller budget flipped; an image's
    duration is the **first** budget whose attack misclassifies it.  This is the first flip, not a
    monotone threshold: a one-step attack (FGSM) can succeed at one ``eps`` and fail at a larger one.
    Images never flipped are right-censored (``event=False``, duration ``budgets[-1]``); images
    misclassified without attack are excluded and counted.

    ``refine=r`` then bisects each flipped image's interval (previous budget, or 0, to the flip budget)
    ``r`` times with per-image budgets: the duration becomes a budget that flipped it, within
    ``spacing / 2**r`` of one that did not (the minimal one only where success is monotone in ``eps``).

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8 (converted per batch); y: int labels ``(N,)``.
        budgets: strictly increasing ``eps`` values > 0 on the ``[0, 1]`` pixel scale (Linf, e.g.
            ``[1/255, 2/255, ...]``) or L2 radii.
        attack: ``"fgsm"`` (Linf only) or ``"pgd"``.  norm: ``"linf"`` or ``"l2"`` (PGD only).
        steps: PGD steps per budget.  alpha: PGD step size, fixed on the pixel scale at every budget;
            None (default): ``alpha_factor * eps / steps`` at each budget (2.5: Madry et al.'s rule;
            ``steps=1, alpha_factor=1, norm="l2"`` is FGM, the L2 fast gradient method).
        random_start: PGD from a random point of the ball (default False: deterministic).  refine: bisection steps.
        batch_size: images attacked at once.  precision: ``"fp32"``, ``"bf16"`` or ``"auto"``.
        generator: ``torch.Generator`` on the model's device for PGD's random starts.  progress: a tqdm bar.

    Returns :class:`SurvivalData` with ``unit="eps"`` (``seconds``: wall-clock time of the whole measurement).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    key = str(attack).strip().lower()
    if key not in ("fgsm", "pgd"):
        raise ValueError(f"Unknown attack {attack!r}: use 'fgsm' or 'pgd'.")
    norm = canonical_norm(norm)
    if key == "fgsm" and norm != "linf":
        raise ValueError("FGSM is an Linf attack; for L2 use attack='pgd', norm='l2' (steps=1, alpha_factor=1 is FGM).")
    n = x.shape[0]
    check_labels(y, n)
    batch_size, refine = as_int(batch_size, "batch_size", 1), as_int(refine, "refine", 0)
    steps = as_int(steps, "steps", 1)
    dim = int(math.prod(x.shape[1:]))
    ladder = _check_ladder(budgets, norm, dim)
    if alpha is not None:
        alpha = check_alpha(alpha, 1, norm, dim)
    if not (isinstance(alpha_factor, numbers.Real) and alpha_factor > 0):
        raise ValueError(f"alpha_factor must be a number > 0, got {alpha_factor!r}.")

    fn = fgsm if key == "fgsm" else pgd

    def kwargs(eps):  # eps: a float or a per-image float64 tensor
        if key == "fgsm":
            return {"eps": eps, "precision": precision}
        return {"eps": eps, "alpha": alpha if alpha is not None else alpha_factor * eps / steps, "steps": steps,
                "norm": norm, "random_start": random_start, "precision": precision, "generator": generator}

    clean = _correct_under_attack(model, x, y, None, batch_size)
    keep = clean.nonzero().squeeze(1)
    m = keep.numel()
    duration, event = np.full(m, ladder[-1]), np.zeros(m, dtype=bool)
    lower = np.zeros(m)  # the largest budget each image survived (0: none yet)
    alive = torch.ones(m, dtype=torch.bool)
    for eps in tqdm(ladder, desc=f"{key} ladder", disable=not progress, leave=False):
        idx = alive.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        sel = keep[idx]
        ok = _correct_under_attack(model, x[sel], y[sel], fn, batch_size, **kwargs(float(eps)))
        flipped, survived = idx[~ok].numpy(), idx[ok].numpy()
        duration[flipped], event[flipped], lower[survived] = eps, True, eps
        alive[flipped] = False
    if refine and event.any():
        idx = np.flatnonzero(event)
        lo, hi = lower[idx], duration[idx].copy()
        sel = keep[torch.from_numpy(idx)]
        for _ in range(refine):
            mid = (lo + hi) / 2
            ok = _correct_under_attack(model, x[sel], y[sel], fn, batch_size, **kwargs(torch.from_numpy(mid))).numpy()
            hi, lo = np.where(ok, hi, mid), np.where(ok, mid, lo)
        duration[idx] = hi
    return _survival(clean, duration, event, ladder, key, norm, "eps", t0)


def steps_to_failure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, max_steps: int, *,
                     norm: str = "linf", alpha: float | None = None, batch_size: int = 256, precision: str = "fp32",
                     progress: bool = True) -> SurvivalData:
    """Per image, the first PGD step (1..max_steps) after which the prediction is wrong.

    PGD runs step by step from the clean image (no random start) with budget ``eps`` and step size
    ``alpha``; after step ``k`` the images are exactly ``pgd(..., steps=k, random_start=False)``'s
    for the same batch, and the prediction is checked after every step.  Images still classified
    correctly after ``max_steps`` are right-censored there (duration ``max_steps``,
    ``event=False``); images misclassified without attack are excluded and counted.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8; y: int labels ``(N,)``.
        eps: budget > 0 on the ``[0, 1]`` pixel scale (Linf, e.g. ``8/255``) or an L2 radius.
        max_steps: the most steps (>= 1).  norm: ``"linf"`` or ``"l2"``.
        alpha: step size on the pixel scale; None: ``2.5 * eps / max_steps``.
        batch_size: images attacked at once.  precision: ``"fp32"``, ``"bf16"`` or ``"auto"``.  progress: a tqdm bar.

    Returns :class:`SurvivalData` with ``unit="steps"``, durations in ``1..max_steps`` and ``budgets = 1..max_steps``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    norm = canonical_norm(norm)
    n = x.shape[0]
    check_labels(y, n)
    batch_size, max_steps = as_int(batch_size, "batch_size", 1), as_int(max_steps, "max_steps", 1)
    dim = int(math.prod(x.shape[1:]))
    eps = float(check_eps(eps, 1, norm, dim))
    if eps <= 0:
        raise ValueError("eps must be > 0: with a budget of 0 no step can change the image.")
    alpha = float(check_alpha(2.5 * eps / max_steps if alpha is None else alpha, 1, norm, dim))
    clean = _correct_under_attack(model, x, y, None, batch_size)
    keep = clean.nonzero().squeeze(1)
    first = np.zeros(keep.numel(), dtype=np.int64)  # 0: not flipped
    for i in tqdm(range(0, keep.numel(), batch_size), desc="PGD steps", disable=not progress, leave=False):
        sel = keep[i: i + batch_size]
        xb, yb = as_float_images(x[sel], name="x"), y[sel]
        atk = PreparedBatch(model, xb, yb, precision)
        found = torch.zeros(atk.n, dtype=torch.int64)
        x_adv = atk.x
        with frozen_eval(model):
            for k in range(1, max_steps + 1):
                g, _ = atk.grad(x_adv, atk.y, False)
                with torch.no_grad():
                    x_adv = pgd_step(x_adv, atk.x, g, eps, alpha, norm)
                wrong = ~correct_mask(model, x_adv, yb)
                found[wrong & (found == 0)] = k
                if bool((found > 0).all()):
                    break
        first[i: i + atk.n] = found.numpy()
    event = first > 0
    duration = np.where(event, first, max_steps).astype(np.float64)
    return _survival(clean, duration, event, np.arange(1, max_steps + 1), "pgd", norm, "steps", t0)


class AFTFits(dict):
    """``{model name: fitted lifelines AFT fitter}``, remembering the held-out frame given to :func:`fit_aft`."""

    def __init__(self, *args, test_df=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.test_df = test_df  # the checked held-out frame, or None


def _model_key(name) -> str:
    key = str(name).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in AFT_MODELS:
        raise ValueError(f"Unknown AFT model {name!r}: use {sorted(AFT_MODELS)}.")
    return key


def _rows(index, mask, limit: int = 10) -> str:
    labels = list(index[mask])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return f"{labels[:limit]}{more}"


def _check_frame(df, duration_col: str, event_col: str, *, name: str = "df", check_variance: bool = True):
    """A cleaned copy of ``df`` (float durations > 0, 0/1 events, float covariates), or a clear error."""
    pd = _optional("pandas")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame (e.g. SurvivalData.to_frame()), got {type(df).__name__}.")
    missing = [c for c in (duration_col, event_col) if c not in df.columns]
    if missing:
        raise ValueError(f"{name} has no column {missing}; its columns are {list(df.columns)}.")
    if len(df) == 0:
        raise ValueError(f"{name} is empty: there is nothing to fit.")
    out = df.copy()  # then durations as float, events as bool, covariates as float
    dur = pd.to_numeric(df[duration_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(dur) | (dur <= 0)
    if bad.any():
        raise ValueError(f"{name}[{duration_col!r}] must hold finite durations > 0 (AFT models take log T), but "
                         f"rows {_rows(df.index, bad)} hold {dur[bad][:10].tolist()}: a time to failure is the "
                         "budget that broke the image (e.g. a ladder's budgets, not 0); leave out images "
                         "misclassified without attack instead of giving them duration 0.")
    ev = pd.to_numeric(df[event_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(ev, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name}[{event_col!r}] must be True/False or 1/0 (failure observed / censored), but rows "
                         f"{_rows(df.index, bad)} hold {df[event_col].to_numpy()[bad][:10].tolist()}.")
    if check_variance and not ev.any():
        raise ValueError(f"{name} has no observed failure (every {event_col!r} is False): raise the budgets.")
    out[duration_col], out[event_col] = dur, ev.astype(bool)
    for col in (c for c in df.columns if c not in (duration_col, event_col)):
        if not (df[col].dtype == bool or pd.api.types.is_numeric_dtype(df[col])):
            raise TypeError(f"covariate {col!r} of {name} is not numeric ({df[col].dtype}): encode it, e.g. with "
                            "pandas.get_dummies(..., drop_first=True, dtype=float).")
        out[col] = vals = df[col].astype(np.float64).to_numpy(na_value=np.nan)
        if not np.isfinite(vals).all():
            raise ValueError(f"covariate {col!r} of {name} has missing or infinite values in rows "
                             f"{_rows(df.index, ~np.isfinite(vals))}.")
    flat = [c for c in out.columns if c not in (duration_col, event_col) and np.ptp(out[c].to_numpy()) == 0]
    if check_variance and flat:
        raise ValueError(f"covariate(s) {flat} of {name} take a single value, so an AFT model cannot estimate their "
                         "effect (they duplicate the intercept): drop them, or fit data that varies them (e.g. "
                         "the frames of several models concatenated).")
    return out


def fit_aft(df, *, duration_col: str = "duration", event_col: str = "event",
            models: Sequence[str] = ("weibull", "lognormal", "loglogistic"), test_df=None, alpha: float = 0.05,
            penalizer: float = 0.0, **fit_kwargs) -> AFTFits:
    """Fit accelerated-failure-time models (lifelines) to right-censored durations.

    Each model says ``log T = b0 + b . covariates + sigma * noise`` (noise: Gumbel-min for Weibull,
    normal for log-normal, logistic for log-logistic): a covariate multiplies the time to failure
    by ``exp(b)`` (:func:`acceleration_factors`).

    Args:
        df: pandas DataFrame with ``duration_col`` (finite, > 0, e.g. ``eps`` or steps), ``event_col``
            (True: failure observed, False: censored) and numeric covariate columns (every other
            column), e.g. from :meth:`SurvivalData.to_frame`.
        models: any of ``"weibull"``, ``"lognormal"``, ``"loglogistic"``.
        test_df: an optional held-out frame with the same columns; checked now, kept for :func:`compare_aft`.
        alpha: 1 - the confidence level of the intervals (0.05: 95 %).  penalizer: lifelines' L2 penalty.
        fit_kwargs: passed to each fitter's ``fit`` (e.g. ``ancillary=True``).

    Returns :class:`AFTFits`, ``{name: fitted lifelines fitter}``.  Raises ValueError, before lifelines
    runs, for a non-positive, missing or infinite duration (naming the rows), events other than 0/1,
    no observed failure or a covariate that never varies (named).
    """
    lifelines = _optional("lifelines")
    keys = [_model_key(m) for m in models]
    if not keys or len(set(keys)) < len(keys):
        raise ValueError(f"models must name at least one AFT model, each once, got {list(models)}.")
    data = _check_frame(df, duration_col, event_col)
    test = None
    if test_df is not None:
        test = _check_frame(test_df, duration_col, event_col, name="test_df", check_variance=False)
        if set(test.columns) != set(data.columns):
            raise ValueError(f"test_df must have the columns of df, {sorted(data.columns)}; "
                             f"got {sorted(test.columns)}.")
    fits = AFTFits(test_df=test)
    for key in keys:
        fitter = getattr(lifelines, AFT_MODELS[key][0])(alpha=alpha, penalizer=penalizer)
        fits[key] = fitter.fit(data, duration_col=duration_col, event_col=event_col, **fit_kwargs)
    return fits


def compare_aft(fits, test_df=None):
    """One row per fitted model, best (lowest AIC) first: the table to choose a distribution by.

    Columns: ``n`` (rows), ``events``, ``k`` (estimated parameters), ``log_likelihood`` (training),
    ``AIC = -2 logL + 2k``, ``BIC = -2 logL + k ln n`` (computed here with every parameter; lifelines'
    own ``BIC_`` counts parameter groups), ``delta_AIC`` (to the best), ``concordance`` (Harrell's
    C on the training frame, in ``[0, 1]``; 0.5 is chance) and, with a held-out frame (``test_df``
    or the one given to :func:`fit_aft`), ``test_log_likelihood`` (summed) and ``test_concordance``.
    """
    pd = _optional("pandas")
    if not fits:
        raise ValueError("fits is empty: pass the result of fit_aft.")
    first = next(iter(fits.values()))
    test = getattr(fits, "test_df", None) if test_df is None else _check_frame(
        test_df, first.duration_col, first.event_col, name="test_df", check_variance=False)
    rows = {}
    for name, fit in fits.items():
        k, n, ll = int(fit.params_.shape[0]), int(fit.event_observed.shape[0]), float(fit.log_likelihood_)
        row = {"n": n, "events": int(np.sum(fit.event_observed)), "k": k, "log_likelihood": ll,
               "AIC": -2 * ll + 2 * k, "BIC": -2 * ll + k * math.log(n), "concordance": float(fit.concordance_index_)}
        if test is not None:
            row["test_log_likelihood"] = float(fit.score(test, scoring_method="log_likelihood")) * len(test)
            row["test_concordance"] = float(fit.score(test, scoring_method="concordance_index"))
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("AIC", kind="stable")
    table.insert(table.columns.get_loc("BIC") + 1, "delta_AIC", table["AIC"] - table["AIC"].min())
    table.index.name = "model"
    return table


def _scale_name(fit) -> str:
    names = set(fit.params_.index.get_level_values(0)) if hasattr(fit, "params_") else set()
    for scale in (scale for _, scale in AFT_MODELS.values() if scale in names):
        return scale
    raise TypeError(f"{type(fit).__name__} is not a fitted Weibull, log-normal or log-logistic AFT model.")


def time_ratio_effect(ci_lower, ci_upper) -> np.ndarray:
    """Per covariate, what its time-ratio interval says: ``"slows failure"`` (above 1), ``"speeds up failure"``
    (below 1) or ``"unclear"`` (it contains 1)."""
    lower, upper = np.asarray(ci_lower, dtype=float), np.asarray(ci_upper, dtype=float)
    return np.where(lower > 1, "slows failure", np.where(upper < 1, "speeds up failure", "unclear"))


def acceleration_factors(fit, *, include_intercept: bool = False):
    """Time ratios ``exp(coef)`` of the covariates on the scale parameter, with confidence intervals.

    In an AFT model a covariate multiplies the time to failure by ``exp(coef)`` per unit: above 1 it
    slows failure (more robust), below 1 it speeds it up.  The scale parameter is ``lambda_``
    (Weibull), ``mu_`` (log-normal) or ``alpha_`` (log-logistic); shape parameters are not read.

    Returns:
        DataFrame indexed by covariate: ``coef``, ``se``, ``time_ratio`` (``exp(coef)``),
        ``ci_lower``, ``ci_upper`` (its interval at level ``1 - fit.alpha``, in ``attrs["ci"]``),
        ``p`` and ``effect`` (``"slows failure"``, ``"speeds up failure"`` or ``"unclear"`` when
        the interval contains 1).
    """
    pd = _optional("pandas")
    summary = fit.summary
    rows = summary.loc[_scale_name(fit)]
    if not include_intercept:
        rows = rows.drop(index="Intercept", errors="ignore")
    lower = next(c for c in summary.columns if c.startswith("exp(coef) lower"))
    upper = next(c for c in summary.columns if c.startswith("exp(coef) upper"))
    out = pd.DataFrame({"coef": rows["coef"], "se": rows["se(coef)"], "time_ratio": rows["exp(coef)"],
                        "ci_lower": rows[lower], "ci_upper": rows[upper], "p": rows["p"]})
    out["effect"] = time_ratio_effect(out["ci_lower"], out["ci_upper"])
    out.index.name = "covariate"
    out.attrs["ci"] = 1 - float(fit.alpha)
    return out


def expected_time_to_failure(fit, df, *, statistic: str = "mean") -> float:
    """The model's expected time to failure averaged over the rows of ``df`` (their covariates).

    ``statistic``: ``"mean"`` (each row's expected duration; a log-logistic fit with shape
    ``beta <= 1`` has an infinite mean) or ``"median"``.  In the durations' unit (``eps`` or
    steps); it extrapolates beyond the largest budget for heavily censored data.
    """
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}.")
    pred = (fit.predict_expectation if statistic == "mean" else fit.predict_median)(df)
    return float(np.mean(np.asarray(pred, dtype=np.float64)))


def cost_normalised_robustness(train_seconds_per_sample: float, expected_time_to_failure: float) -> float:
    """Training time per sample divided by the expected time to break one sample.

    Args:
        train_seconds_per_sample: wall-clock training time divided by the number of training
            samples seen (epochs x samples), in seconds; > 0.
        expected_time_to_failure: expected time to break one sample, > 0.  In seconds (e.g. the
            attack's seconds per step times the expected steps to failure) the ratio has no unit:
            above 1 a sample costs more to train than to break.  In budget units (``eps`` or steps)
            it is seconds per unit of budget, comparable only across models measured on the same ladder.

    Returns the ratio, a float > 0 (lower: robustness bought more cheaply).
    """
    for name, v in [("train_seconds_per_sample", train_seconds_per_sample),
                    ("expected_time_to_failure", expected_time_to_failure)]:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(v).__name__}.")
        if not math.isfinite(float(v)) or float(v) <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {v!r}.")
    return float(train_seconds_per_sample) / float(expected_time_to_failure)
