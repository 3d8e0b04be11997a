"""Fusing several detector signals (per-layer entropies, predictive entropy) with a logistic regression.

:class:`FusedDetector` standardises the features and fits scikit-learn's ``LogisticRegression``
on a calibration split (clean = 0, suspicious = 1).  Its score is the fitted log-odds, **higher =
more suspicious**.  By construction it is never worse than its best single input *on the
calibration split*: when the regression's calibration AUROC is below that of the best feature
(in that feature's better direction), the detector uses that feature instead and says so
(:attr:`FusedDetector.fell_back`, :attr:`FusedDetector.uses`).  On other data nothing is
guaranteed: judge it on an evaluation split.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .thresholds import best_orientation_auroc, detection_auroc

__all__ = ["stack_signals", "FusedDetector"]


def stack_signals(signals, names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """A float64 feature matrix ``(N, F)`` and its column names.

    Args:
        signals: ``{name: (N,) scores}`` (e.g. ``run_monitor(...).signals()``), or an ``(N, F)``
            tensor / array.
        names: the columns to take from a dict, in this order (default: all, in the dict's
            order); for a matrix, its column names (default ``"f0", "f1", ...``).
    """
    if isinstance(signals, Mapping):
        names = list(signals) if names is None else list(names)
        missing = [k for k in names if k not in signals]
        if missing or not names:
            raise ValueError(f"signals has no {missing or 'columns'}; it has {list(signals)}.")
        cols = [np.asarray(torch.as_tensor(signals[k]).detach().cpu().double()).reshape(-1) for k in names]
        if len({len(c) for c in cols}) != 1:
            raise ValueError(f"every signal needs the same length, got {[len(c) for c in cols]} for {names}.")
        x = np.stack(cols, axis=1)
    else:
        x = np.asarray(torch.as_tensor(signals).detach().cpu().double())
        if x.ndim != 2:
            raise ValueError(f"features must be a dict of (N,) signals or an (N, F) matrix, got shape {x.shape}.")
        names = [f"f{j}" for j in range(x.shape[1])] if names is None else list(names)
        if len(names) != x.shape[1]:
            raise ValueError(f"{len(names)} names for {x.shape[1]} feature columns.")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values.")
    return x, names


class FusedDetector:
    """Logistic regression over standardised signals, with a best-single-feature fallback.

    ::

        det = FusedDetector().fit(clean_cal, adv_cal)      # dicts {signal: (N,)} or (N, F) matrices
        det.calib_auroc, det.feature_aurocs, det.fell_back
        detection_auroc(det.score(clean_ev), det.score(adv_ev))  # higher = more suspicious

    Args:
        C: inverse L2 regularisation strength of ``LogisticRegression`` (on standardised features).
        max_iter: iterations of its solver (lbfgs).

    Attributes (after :meth:`fit`):
        names: the feature names, in column order.
        feature_aurocs: ``{name: (auroc, direction)}`` on the calibration split,
            :func:`~labutils.uncertainty.thresholds.best_orientation_auroc` of each feature.
        lr_auroc: calibration AUROC of the regression's score (higher = more suspicious).
        calib_auroc: calibration AUROC of the score this detector returns; ``>=`` every value of
            ``feature_aurocs``.
        fell_back: True when the regression lost to the best feature, which is then used.
        uses: ``"logistic regression"`` or the name of the feature used.
        coefficients: ``{name: weight}`` of the regression on standardised features.
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 1000):
        if not float(C) > 0:
            raise ValueError(f"C must be > 0, got {C}.")
        self.C, self.max_iter = float(C), int(max_iter)
        self.pipeline = None

    def fit(self, features_clean, features_suspicious, names: Sequence[str] | None = None) -> "FusedDetector":
        """Fit on calibration features of clean (label 0) and suspicious (label 1) samples; returns ``self``."""
        xc, names = stack_signals(features_clean, names)
        xa, names_a = stack_signals(features_suspicious, names)
        if xc.shape[1] != xa.shape[1]:
            raise ValueError(f"clean and suspicious features have {xc.shape[1]} and {xa.shape[1]} columns.")
        if len(xc) < 2 or len(xa) < 2:
            raise ValueError("fit needs at least 2 clean and 2 suspicious samples.")
        x = np.concatenate([xc, xa])
        y = np.r_[np.zeros(len(xc)), np.ones(len(xa))]
        self.names = list(names)
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))
        self.pipeline.fit(x, y)
        self.coefficients = dict(zip(self.names, self.pipeline[-1].coef_[0].tolist()))
        self.feature_aurocs = {k: best_orientation_auroc(xc[:, j], xa[:, j]) for j, k in enumerate(self.names)}
        lr = self.pipeline.decision_function(x)
        self.lr_auroc = detection_auroc(lr[: len(xc)], lr[len(xc):], direction="above")
        best = max(self.names, key=lambda k: self.feature_aurocs[k][0])  # first of equals: column order
        self.fell_back = self.lr_auroc < self.feature_aurocs[best][0]
        self.uses = best if self.fell_back else "logistic regression"
        self._column = self.names.index(best)
        self._sign = 1.0 if self.feature_aurocs[best][1] == "above" else -1.0
        self.calib_auroc = self.feature_aurocs[best][0] if self.fell_back else self.lr_auroc
        return self

    def score(self, features) -> np.ndarray:
        """Suspicion score ``(N,)`` float64, higher = more suspicious: the regression's log-odds, or
        the fallback feature (negated when lower values of it are the suspicious ones)."""
        if self.pipeline is None:
            raise RuntimeError("call fit(...) before score(...).")
        x, _ = stack_signals(features, self.names)
        if self.fell_back:
            return self._sign * x[:, self._column]
        return self.pipeline.decision_function(x)
