"""Threshold-free metrics of a detector that scores samples, with **in-distribution as the positive class**.

"A detector accepts a sample as in-distribution when its score is >= a threshold."  Libraries
and papers differ here: some treat OOD as positive and negate the scores; :func:`aupr_out` is
that view.  The areas come from scikit-learn (``roc_auc_score``, ``average_precision_score``,
``roc_curve``, given the scores' ranks from ``scipy.stats.rankdata`` so that +-inf scores work);
this module fixes the positive class, checks the inputs (1-D, non-empty, no NaN)
and adds what scikit-learn does not have: the FPR at a TPR (FPR95) with a documented tie rule.
Metrics take 1-D tensors, NumPy arrays or lists, compute in float64 and return Python floats
in ``[0, 1]``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

__all__ = ["auroc", "aupr_in", "aupr_out", "roc_curve", "threshold_at_tpr", "fpr_at_tpr", "evaluate_scores"]


def _as_scores(x, name: str) -> np.ndarray:
    """A 1-D float64 NumPy copy of ``x``; clear errors for wrong shapes, empty input and NaN."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers ({exc}).") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per sample), got shape {arr.shape}; "
                         "pass scores of shape (N,), e.g. x.ravel() or a score from labutils.uncertainty.SCORES.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: the metrics need at least one score.")
    nan = int(np.isnan(arr).sum())
    if nan:
        raise ValueError(f"{name} contains {nan} NaN value(s) out of {arr.size}; a score must be a number "
                         "(check the logits / reconstructions for NaN).")
    return arr


def _as_correct(correct, n: int | None = None) -> np.ndarray:
    """``correct`` as a 1-D bool NumPy array (bool, or numbers that are all 0 / 1); ``n``: the length it must have."""
    if isinstance(correct, torch.Tensor):
        correct = correct.detach().cpu().numpy()
    arr = np.asarray(correct)
    if arr.ndim != 1:
        raise ValueError(f"correct must be 1-D (one True / False per sample), got shape {arr.shape}.")
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
            raise ValueError("correct must hold booleans (True = the prediction was right), or only 0 and 1; "
                             f"got dtype {arr.dtype} with other values.")
        arr = arr.astype(bool)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"scores and correct must have the same length (one per sample), got {n} and {arr.shape[0]}.")
    if arr.size == 0:
        raise ValueError("correct is empty: at least one sample is needed.")
    return arr


def _check_pair(scores_id, scores_ood) -> tuple[np.ndarray, np.ndarray]:
    return _as_scores(scores_id, "scores_id"), _as_scores(scores_ood, "scores_ood")


def _labelled(s_id: np.ndarray, s_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = in-distribution) and dense ranks of the pooled scores.

    Every metric here depends only on the order of the scores (ties included), so scikit-learn
    gets ranks (``scipy.stats.rankdata``, ties share a rank): scores of +-inf are then fine too.
    """
    labels = np.concatenate([np.ones(len(s_id), dtype=np.int64), np.zeros(len(s_ood), dtype=np.int64)])
    return labels, rankdata(np.concatenate([s_id, s_ood]), method="dense").astype(np.float64)


def auroc(scores_id, scores_ood) -> float:
    """Area under the ROC curve with **in-distribution as the positive class**, in ``[0, 1]``.

    Equal to the Mann-Whitney probability ``P(s_id > s_ood) + 0.5 P(s_id = s_ood)``
    for a random ID / OOD pair (ties count 1/2); scikit-learn's ``roc_auc_score`` with ID labelled 1.
    0.5 is chance, 1 perfect separation, 0 perfectly reversed scores.

    Args:
        scores_id, scores_ood: 1-D scores (tensor, array or list), higher = more in-distribution.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    labels, scores = _labelled(s_id, s_ood)
    return float(roc_auc_score(labels, scores))


def aupr_in(scores_id, scores_ood) -> float:
    """Area under the precision-recall curve with **in-distribution as the positive class**, in ``[0, 1]``.

    Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score
    thresholds (step-wise, no interpolation): scikit-learn's ``average_precision_score``
    with ID labelled 1.  Its chance level is the ID fraction
    ``n_id / (n_id + n_ood)``, so it depends on the class balance.

    Args:
        scores_id, scores_ood: 1-D scores, higher = more in-distribution.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    labels, scores = _labelled(s_id, s_ood)
    return float(average_precision_score(labels, scores))


def aupr_out(scores_id, scores_ood) -> float:
    """Area under the precision-recall curve with **OOD as the positive class** (scores negated), in ``[0, 1]``.

    Same average-precision definition as :func:`aupr_in`; chance level ``n_ood / (n_id + n_ood)``.

    Args:
        scores_id, scores_ood: 1-D scores, higher = more in-distribution.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    labels, scores = _labelled(s_id, s_ood)
    return float(average_precision_score(1 - labels, -scores))


def roc_curve(scores_id, scores_ood) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve with **in-distribution as the positive class**: one point per distinct threshold.

    A sample is accepted (predicted in-distribution) when its score is ``>=`` the threshold.

    Args:
        scores_id, scores_ood: 1-D scores, higher = more in-distribution.

    Returns:
        ``(fpr, tpr, thresholds)``, float64 arrays of length ``D + 1`` (``D``
        distinct scores): ``thresholds`` in decreasing order, starting with
        ``+inf`` (nothing accepted, the point ``(0, 0)``); ``fpr[i]`` is the
        fraction of OOD scores ``>= thresholds[i]`` and ``tpr[i]`` the fraction
        of ID scores ``>= thresholds[i]``.  Both increase to 1.  This is
        scikit-learn's ``roc_curve(..., drop_intermediate=False)`` with ID labelled 1.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    labels, ranks = _labelled(s_id, s_ood)
    fpr, tpr, rank_thresholds = sk_roc_curve(labels, ranks, drop_intermediate=False)
    values = np.unique(np.concatenate([s_id, s_ood]))  # sorted; dense rank r is values[r - 1]
    finite = np.isfinite(rank_thresholds)  # the first threshold is +inf (nothing accepted)
    thresholds = np.full(len(rank_thresholds), np.inf)
    thresholds[finite] = values[rank_thresholds[finite].astype(np.int64) - 1]
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def _check_tpr(tpr: float) -> float:
    tpr = float(tpr)
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr} (e.g. 0.95 for FPR at 95 % TPR).")
    return tpr


def threshold_at_tpr(scores_id, tpr: float = 0.95) -> float:
    """The largest threshold that accepts at least a fraction ``tpr`` of the in-distribution scores.

    A sample is accepted when its score is ``>=`` the threshold.  The threshold
    is the ``m``-th largest ID score with ``m = ceil(tpr * N)``, so
    ``mean(scores_id >= threshold) >= tpr``, and any larger threshold accepts
    fewer than ``tpr``.  With ties at the threshold the achieved TPR can
    exceed ``tpr``.

    Args:
        scores_id: 1-D ID scores, higher = more in-distribution.
        tpr: target true positive rate in ``(0, 1]``.
    """
    tpr = _check_tpr(tpr)
    s_id = _as_scores(scores_id, "scores_id")
    n = len(s_id)
    # round away float noise such as 0.95 * 300 = 285.00000000000006 before the ceiling
    m = max(1, min(n, math.ceil(round(tpr * n, 9))))
    return float(np.sort(s_id)[n - m])


def fpr_at_tpr(scores_id, scores_ood, tpr: float = 0.95) -> float:
    """False positive rate at a true positive rate of ``tpr`` (FPR95 by default), in ``[0, 1]``.

    **In-distribution is the positive class**: the threshold is
    :func:`threshold_at_tpr` (the largest one that keeps at least ``tpr`` of
    the ID samples) and the result is the fraction of OOD samples accepted,
    i.e. with score ``>=`` threshold.  OOD scores *equal* to the threshold count
    as accepted (the pessimistic choice; no interpolation between ROC points).
    Lower is better: 0 when no OOD sample reaches the threshold.

    Args:
        scores_id, scores_ood: 1-D scores, higher = more in-distribution.
        tpr: target true positive rate in ``(0, 1]``.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    t = threshold_at_tpr(s_id, tpr)
    return float(np.mean(s_ood >= t))


def evaluate_scores(id_scores: Mapping[str, object], ood_scores: Mapping[str, object]) -> list[dict]:
    """A table of OOD metrics, one row per score (and per OOD set), ready for ``pandas.DataFrame``.

    Args:
        id_scores: ``{score name: (N_id,) ID scores of the in-distribution test set}``.
        ood_scores: either ``{score name: (N_ood,) scores of one OOD set}`` with the
            same names, or ``{OOD set name: {score name: scores}}`` for several OOD sets.
            All scores: higher = more in-distribution (ID is the positive class).

    Returns:
        A list of dicts with keys ``score``, ``auroc``, ``fpr95``, ``aupr_in`` and
        ``aupr_out`` (fractions in ``[0, 1]``), preceded by ``ood`` (the OOD set
        name) in the nested form.  Rows follow the order of ``id_scores`` (and
        of the OOD sets).
    """
    if not isinstance(id_scores, Mapping) or not isinstance(ood_scores, Mapping):
        raise ValueError("evaluate_scores expects two dicts: {score name: scores} for ID and for OOD data.")
    if not id_scores:
        raise ValueError("id_scores is empty: pass at least one score, e.g. classifier_scores(model, images).")
    if not ood_scores:
        raise ValueError("ood_scores is empty.")
    nested = all(isinstance(v, Mapping) for v in ood_scores.values())
    if not nested and any(isinstance(v, Mapping) for v in ood_scores.values()):
        raise ValueError("ood_scores mixes score arrays and dicts: use either {score: scores} "
                         "or {ood set: {score: scores}}.")
    sets = dict(ood_scores) if nested else {None: ood_scores}
    rows = []
    for set_name, per_score in sets.items():
        missing = [k for k in id_scores if k not in per_score]
        extra = [k for k in per_score if k not in id_scores]
        if missing or extra:
            where = f" for OOD set {set_name!r}" if set_name is not None else ""
            raise ValueError(f"ID and OOD scores must have the same names{where}: "
                             f"missing in OOD {missing}, missing in ID {extra}.")
        for name in id_scores:
            s_id = _as_scores(id_scores[name], f"id_scores[{name!r}]")
            s_ood = _as_scores(per_score[name], f"ood_scores[{name!r}]")
            row = {} if set_name is None else {"ood": set_name}
            row.update(score=name, auroc=auroc(s_id, s_ood), fpr95=fpr_at_tpr(s_id, s_ood, 0.95),
                       aupr_in=aupr_in(s_id, s_ood), aupr_out=aupr_out(s_id, s_ood))
            rows.append(row)
    return rows
