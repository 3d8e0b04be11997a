"""Calibration: does a confidence of 0.8 mean "right 80 % of the time"?  ECE, reliability tables, temperature scaling.

* **Confidence** is the maximum softmax probability of a prediction, in ``[0, 1]``; **correct**
  says whether that prediction was right (bool ``(N,)``).  :func:`confidence_and_correct` makes
  both from logits and labels.
* **Bins** are ``n_bins`` equal-width intervals of ``[0, 1]``, closed on the right:
  ``[0, 1/M], (1/M, 2/M], ..., ((M-1)/M, 1]``.  A confidence exactly on an inner edge goes to the
  lower bin (Guo et al. 2017's ``((m-1)/M, m/M]``, and scikit-learn's ``calibration_curve`` with
  ``strategy="uniform"``); 0 goes to the first bin.
* **ECE** (expected calibration error) is ``sum_b (n_b / N) |accuracy_b - mean confidence_b|``
  over the non-empty bins: a fraction in ``[0, 1]`` (papers often print it in percent).
* **Temperature scaling** divides the logits by one number ``T > 0`` fitted to minimise the
  negative log-likelihood on a held-out split (:func:`fit_temperature`); ``T > 1`` softens an
  over-confident model.  It changes no prediction (the argmax is unchanged), only the confidences.

Inputs are tensors, arrays or lists; results are Python floats or float64 NumPy arrays.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from .metrics import _as_correct, _as_scores
from .scores import _check_temperature, as_logits, max_softmax

__all__ = ["reliability_table", "expected_calibration_error", "confidence_and_correct", "negative_log_likelihood",
           "fit_temperature", "apply_temperature", "TEMPERATURE_RANGE"]

#: ``(lowest, highest)`` temperature that :func:`fit_temperature` searches.
TEMPERATURE_RANGE = (0.01, 100.0)


def _as_confidences(confidences) -> np.ndarray:
    conf = _as_scores(confidences, "confidences")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError(f"confidences must be probabilities in [0, 1], got values in [{conf.min()}, {conf.max()}]; "
                         "pass max softmax probabilities, e.g. confidence_and_correct(logits, labels)[0].")
    return conf


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins!r} (15 is the usual choice).")
    return int(n_bins)


def reliability_table(confidences, correct, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin counts, mean confidence and accuracy: the numbers behind a reliability diagram.

    Args:
        confidences: ``(N,)`` confidences in ``[0, 1]`` (max softmax probability).
        correct: ``(N,)`` bool, whether each prediction was right.
        n_bins: number ``M`` of equal-width bins on ``[0, 1]``, closed on the right (module docstring).

    Returns:
        ``{"lower", "upper", "count", "confidence", "accuracy"}``, each a length-``M`` NumPy array
        (ready for ``pandas.DataFrame``): the bin edges, the number of samples (int64), their mean
        confidence and their accuracy (fractions; NaN for an empty bin).
    """
    conf = _as_confidences(confidences)
    ok = _as_correct(correct, len(conf))
    m = _check_bins(n_bins)
    edges = np.linspace(0.0, 1.0, m + 1)
    # side="left": a value equal to an inner edge belongs to the bin below it (bins closed on the right)
    which = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(which, minlength=m)
    conf_sum = np.bincount(which, weights=conf, minlength=m)
    right_sum = np.bincount(which, weights=ok.astype(np.float64), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, right_sum / count, np.nan)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count.astype(np.int64),
            "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(confidences, correct, n_bins: int = 15) -> float:
    """ECE ``sum_b (n_b / N) |accuracy_b - mean confidence_b|`` over the non-empty bins, a fraction in ``[0, 1]``.

    0 for a perfectly calibrated model (in every bin the accuracy equals the mean confidence);
    with finitely many samples even a calibrated model gets a small positive ECE (sampling noise).
    Bins as in :func:`reliability_table` (equal width, closed on the right).

    Args:
        confidences: ``(N,)`` confidences in ``[0, 1]``.
        correct: ``(N,)`` bool.
        n_bins: number of bins (15 as in Guo et al. 2017).
    """
    table = reliability_table(confidences, correct, n_bins)
    full = table["count"] > 0
    weights = table["count"][full] / table["count"].sum()
    return float(np.sum(weights * np.abs(table["accuracy"][full] - table["confidence"][full])))


def _as_labels(labels, n: int, k: int) -> torch.Tensor:
    y = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    y = y.detach().cpu()
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) (one class index per row of the logits), got {tuple(y.shape)}.")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}.")
    y = y.long()
    if n and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"labels must be class indices in 0..{k - 1}, got values in {int(y.min())}..{int(y.max())}.")
    return y


def _logits_and_labels(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    z = as_logits(logits).cpu()
    if z.shape[0] == 0:
        raise ValueError("logits are empty: at least one sample is needed.")
    return z, _as_labels(labels, z.shape[0], z.shape[1])


def confidence_and_correct(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Max softmax probability ``(N,)`` in ``[1/K, 1]`` and whether the argmax equals the label (bool ``(N,)``).

    Args:
        logits: ``(N, K)``.
        labels: ``(N,)`` class indices in ``0..K-1``.
    """
    z, y = _logits_and_labels(logits, labels)
    return max_softmax(z), z.argmax(dim=1) == y


def negative_log_likelihood(logits, labels, T: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy) of ``labels`` under ``softmax(logits / T)``, in nats, ``>= 0``.

    Computed in float64.  ``logits`` ``(N, K)``, ``labels`` ``(N,)`` class indices, ``T > 0``.
    """
    z, y = _logits_and_labels(logits, labels)
    T = _check_temperature(T)
    return float(F.cross_entropy(z.double() / T, y))


def fit_temperature(logits, labels) -> float:
    """The temperature ``T > 0`` that minimises the NLL of ``softmax(logits / T)`` on this split.

    Fit it on a held-out split (not the training set, where the model is over-confident by
    construction) and apply it with :func:`apply_temperature` to other data.  The NLL is convex in
    ``1 / T``, so a bounded 1-D search (SciPy's ``minimize_scalar``, bounded Brent, on ``log T``) finds
    its minimum.  The search covers :data:`TEMPERATURE_RANGE`; a result at either end is returned
    with a warning (the NLL keeps falling past it, e.g. labels that the logits rank low).  When
    every sample of the split is classified correctly the NLL falls all the way to ``T -> 0``
    (sharper is always better): there is nothing to fit, and that is a ``ValueError``.

    Args:
        logits: ``(N, K)`` logits of the held-out split (tensor or array).
        labels: ``(N,)`` class indices in ``0..K-1``.

    Returns:
        ``T`` as a Python float; ``T > 1`` means the model was over-confident.
    """
    z, y = _logits_and_labels(logits, labels)
    if bool((z.argmax(dim=1) == y).all()):
        raise ValueError("fit_temperature needs at least one misclassified sample: when every prediction of the "
                         "split is right, the NLL decreases all the way to T -> 0. Use a larger held-out split.")
    z = z.double()
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    log_t = float(res.x)
    if min(log_t - lo, hi - log_t) < 1e-3:
        warnings.warn(f"fit_temperature: the best temperature is at the end of the searched range "
                      f"{TEMPERATURE_RANGE} (T = {math.exp(log_t):.3g}); the NLL keeps falling beyond it "
                      "(do the logits rank the labels low?).", RuntimeWarning, stacklevel=2)
    return math.exp(log_t)


def apply_temperature(logits, T: float) -> torch.Tensor:
    """``logits / T`` as a float tensor ``(N, K)`` (float32 for half-precision input), on the logits' device.

    Softmax of the result gives the calibrated probabilities; predictions (argmax) are unchanged.
    """
    return as_logits(logits) / _check_temperature(T)
