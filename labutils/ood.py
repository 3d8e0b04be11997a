"""Out-of-distribution (OOD) detection: scores and threshold-free metrics.

Conventions used throughout this module
---------------------------------------

* An **in-distribution (ID) score** is a number per image where *higher means
  more in-distribution*.  Every entry of :data:`SCORES` and every metric below
  follows this convention.  :func:`entropy` and :func:`energy` are the two
  quantities that point the other way (higher = more OOD); their negatives
  (:func:`neg_entropy`, :func:`neg_energy`) are the ID scores.
* In every metric the **in-distribution samples are the positive class**
  ("a detector accepts an image as in-distribution when its score is >= a
  threshold").  Libraries and papers differ here: some treat OOD as positive
  and negate the scores.  :func:`aupr_out` is the OOD-positive view.
* Scores come from logits ``(N, K)`` of a classifier (float tensor) and are
  returned as float tensors ``(N,)`` on the logits' device; logits in bf16 /
  fp16 are computed in float32.  Metrics take 1-D tensors, NumPy arrays or
  lists, compute in float64 and return Python floats in ``[0, 1]``.

Scores (direction, range, units)
--------------------------------

=================  =====================================  =========================
name               formula                                range / direction
=================  =====================================  =========================
``max_softmax``    ``max_k softmax(z)_k`` (MSP)           ``[1/K, 1]``, higher = ID
``max_logit``      ``max_k z_k``                          logit units, higher = ID
``neg_entropy``    ``sum_k p_k log p_k``                  ``[-log K, 0]`` nats, higher = ID
``neg_energy``     ``T logsumexp(z / T)``                 logit units, higher = ID
``entropy``        ``-sum_k p_k log p_k``                 ``[0, log K]`` nats, higher = OOD
``energy``         ``-T logsumexp(z / T)``                logit units, higher = OOD
=================  =====================================  =========================

The autoencoder detector scores an image by its reconstruction error
(:func:`reconstruction_error`, higher = OOD); its ID score is
:func:`reconstruction_score` = the negative error.

:func:`load_svhn` loads SVHN, an optional OOD set that is downloaded on first
use (it is not in the offline data mirror) and raises
:class:`labutils.data.DatasetNotFoundError` with the reason when it cannot be.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "SCORES",
    "max_logit",
    "max_softmax",
    "entropy",
    "neg_entropy",
    "energy",
    "neg_energy",
    "scores_from_logits",
    "classifier_scores",
    "reconstruction_error",
    "reconstruction_score",
    "train_autoencoder",
    "auroc",
    "aupr_in",
    "aupr_out",
    "roc_curve",
    "threshold_at_tpr",
    "fpr_at_tpr",
    "evaluate_scores",
    "load_svhn",
]


# --------------------------------------------------------------------------- scores from logits
def _check_logits(logits) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        logits = torch.as_tensor(np.asarray(logits))
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}; "
                         "add a batch dimension with logits.unsqueeze(0) for a single image.")
    if logits.shape[1] < 1:
        raise ValueError("logits must have at least one class (K >= 1).")
    if not logits.is_floating_point():
        logits = logits.float()
    elif logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logits = logits.detach()
    if logits.numel() and not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(1).sum())
        raise ValueError(f"logits contain NaN or infinite values ({bad} of {logits.shape[0]} rows); "
                         "check the model and its inputs.")
    return logits


def _check_temperature(T: float) -> float:
    T = float(T)
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"temperature T must be a finite number > 0, got {T}.")
    return T


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Largest logit per row: ``(N, K) -> (N,)``, in logit units.  Higher = more in-distribution."""
    z = _check_logits(logits)
    return z.max(dim=1).values


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Maximum softmax probability (MSP) per row: ``(N, K) -> (N,)`` in ``[1/K, 1]``.  Higher = more in-distribution.

    Computed as ``exp(max log_softmax)``, so huge logits do not overflow.
    """
    z = _check_logits(logits)
    return torch.log_softmax(z, dim=1).max(dim=1).values.exp()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy ``-sum_k p_k log p_k`` in nats: ``(N, K) -> (N,)`` in ``[0, log K]``.

    **Higher = more likely OOD** (the opposite of the ID-score convention);
    use :func:`neg_entropy` as an in-distribution score.  Computed from
    ``log_softmax``; classes whose probability underflows to 0 contribute 0.
    """
    z = _check_logits(logits)
    logp = torch.log_softmax(z, dim=1)
    p = logp.exp()
    terms = torch.where(p > 0, p * logp, torch.zeros_like(logp))
    return -terms.sum(dim=1)


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Negative predictive entropy ``sum_k p_k log p_k`` (nats): ``(N, K) -> (N,)`` in ``[-log K, 0]``.  Higher = more in-distribution."""
    return -entropy(logits)


def energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Free energy ``-T logsumexp(logits / T)``: ``(N, K) -> (N,)``, in logit units.

    **Lower = more in-distribution** (higher = more likely OOD); use
    :func:`neg_energy` as an in-distribution score.  ``T > 0`` is the
    temperature (1 in the reference method).
    """
    T = _check_temperature(T)
    z = _check_logits(logits)
    return -T * torch.logsumexp(z / T, dim=1)


def neg_energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Negative free energy ``T logsumexp(logits / T)``: ``(N, K) -> (N,)``, in logit units.  Higher = more in-distribution."""
    return -energy(logits, T=T)


#: In-distribution scores from logits: name -> ``f(logits (N, K)) -> (N,)``, higher = more in-distribution.
SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max_softmax": max_softmax,
    "max_logit": max_logit,
    "neg_entropy": neg_entropy,
    "neg_energy": neg_energy,
}


def scores_from_logits(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every score of :data:`SCORES` for logits ``(N, K)``: ``{name: (N,) tensor}``, higher = more in-distribution."""
    z = _check_logits(logits)
    return {name: fn(z) for name, fn in SCORES.items()}


def classifier_scores(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000,
                      device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """All :data:`SCORES` of ``model`` on ``images`` from one pass of :func:`labutils.train.predict_logits`.

    Args:
        model: a classifier returning logits ``(N, K)``; it runs in eval mode
            and its previous mode is restored.
        images: uint8 ``(N, C, H, W)`` in 0..255 or float in ``[0, 1]``.
        batch_size: images per forward pass.
        device: where to run the model (default: where its parameters are).

    Returns:
        ``{name: float32 (N,) CPU tensor}`` for every name in :data:`SCORES`
        (higher = more in-distribution).
    """
    from . import train as _train

    logits = _train.predict_logits(model, images, batch_size=batch_size, device=device)
    if logits.ndim != 2:  # predict_logits returns a 1-D empty tensor for N = 0
        logits = logits.reshape(0, 1)
    return scores_from_logits(logits)


# --------------------------------------------------------------------------- autoencoder
@torch.no_grad()
def reconstruction_error(autoencoder: nn.Module, images: torch.Tensor, *, batch_size: int = 500,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Per-image mean squared reconstruction error, ``(N, C, H, W) -> (N,)``.

    Args:
        autoencoder: a model mapping ``[0, 1]`` images to reconstructions of
            the same shape (e.g. :class:`labutils.models.ConvAutoencoder`).
            It runs in eval mode, in float32; its previous mode is restored.
        images: uint8 in 0..255 or float in ``[0, 1]``, shape ``(N, C, H, W)``.
        batch_size: images per forward pass.
        device: where to run the model (default: where its parameters are).

    Returns:
        float32 CPU tensor ``(N,)``: the mean over the ``C*H*W`` pixel values of
        ``(reconstruction - image)**2`` on the ``[0, 1]`` pixel scale, so in
        ``[0, 1]`` for a model whose output lies in ``[0, 1]``.  **Higher = more
        likely OOD**; the in-distribution score is its negative
        (:func:`reconstruction_score`).
    """
    from . import data as _data

    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if device is None:
        param = next(iter(autoencoder.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = autoencoder.training
    autoencoder.eval()
    out = []
    try:
        for i in range(0, images.shape[0], batch_size):
            chunk = images[i : i + batch_size]
            if chunk.dtype == torch.uint8:
                x = _data.to_float(chunk, device)
            else:
                _data.check_images(chunk)
                x = chunk.to(device, torch.float32)
            recon = autoencoder(x).float()
            if recon.shape != x.shape:
                raise ValueError(f"the autoencoder returned shape {tuple(recon.shape)} for input "
                                 f"{tuple(x.shape)}; a reconstruction must have the input's shape.")
            out.append((recon - x).square().flatten(1).mean(dim=1).cpu())
    finally:
        autoencoder.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def reconstruction_score(autoencoder: nn.Module, images: torch.Tensor, *, batch_size: int = 500,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """In-distribution score of the autoencoder detector: ``-reconstruction_error`` ``(N,)``, in ``[-1, 0]``, higher = more ID."""
    return -reconstruction_error(autoencoder, images, batch_size=batch_size, device=device)


def train_autoencoder(config, *, dataset: str = "cifar10", **kwargs):
    """Train (or load from the checkpoint cache) a :class:`~labutils.models.ConvAutoencoder`.

    Calls ``labutils.checkpoints.get_or_train("autoencoder", config, dataset=dataset, **kwargs)``;
    ``kwargs`` are its other keyword arguments (``model_kwargs``, ``device``,
    ``retrain``, ``progress``).  ``config`` must have ``objective="reconstruct"``
    (see ``labutils.profiles`` ``ae_config``).  For a grey dataset pass
    ``model_kwargs={"in_channels": 1}``.

    Returns:
        ``(model, info)`` as :func:`labutils.checkpoints.get_or_train`.
    """
    from . import checkpoints as _checkpoints

    objective = getattr(config, "objective", None)
    if objective != "reconstruct":
        raise ValueError(f"train_autoencoder needs a TrainConfig with objective='reconstruct', got {objective!r}; "
                         "use profile(...).ae_config or TrainConfig(..., objective='reconstruct').")
    return _checkpoints.get_or_train("autoencoder", config, dataset=dataset, **kwargs)


# --------------------------------------------------------------------------- metrics
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
                         "pass scores of shape (N,), e.g. x.ravel() or a score from labutils.ood.SCORES.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: the metrics need at least one score.")
    nan = int(np.isnan(arr).sum())
    if nan:
        raise ValueError(f"{name} contains {nan} NaN value(s) out of {arr.size}; a score must be a number "
                         "(check the logits / reconstructions for NaN).")
    return arr


def _check_pair(scores_id, scores_ood) -> tuple[np.ndarray, np.ndarray]:
    return _as_scores(scores_id, "scores_id"), _as_scores(scores_ood, "scores_ood")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` in ascending order; tied values get the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.ones(len(xs), dtype=bool)
    new_group[1:] = xs[1:] != xs[:-1]
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], len(xs))  # exclusive
    group_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(xs), dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    return ranks


def auroc(scores_id, scores_ood) -> float:
    """Area under the ROC curve with **in-distribution as the positive class**, in ``[0, 1]``.

    Equal to the Mann-Whitney probability ``P(s_id > s_ood) + 0.5 P(s_id = s_ood)``
    for a random ID / OOD pair (ties count 1/2), computed from average ranks.
    0.5 is chance, 1 perfect separation, 0 perfectly reversed scores.

    Args:
        scores_id, scores_ood: 1-D scores (tensor, array or list), higher = more in-distribution.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    n_id, n_ood = len(s_id), len(s_ood)
    ranks = _average_ranks(np.concatenate([s_id, s_ood]))
    u = ranks[:n_id].sum() - n_id * (n_id + 1) / 2.0
    return float(u / (n_id * n_ood))


def _counts_by_threshold(pos: np.ndarray, neg: np.ndarray):
    """Distinct thresholds (descending) and the numbers of positives / negatives with score >= each."""
    s = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(len(pos), dtype=np.int64), np.zeros(len(neg), dtype=np.int64)])
    order = np.argsort(-s, kind="mergesort")
    s, is_pos = s[order], is_pos[order]
    last_of_group = np.ones(len(s), dtype=bool)
    last_of_group[:-1] = s[1:] != s[:-1]
    idx = np.flatnonzero(last_of_group)
    tp = np.cumsum(is_pos)[idx]
    fp = idx + 1 - tp
    return s[idx], tp, fp


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    _, tp, fp = _counts_by_threshold(pos, neg)
    precision = tp / (tp + fp)
    recall = tp / len(pos)
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def aupr_in(scores_id, scores_ood) -> float:
    """Area under the precision-recall curve with **in-distribution as the positive class**, in ``[0, 1]``.

    Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score
    thresholds (step-wise, no interpolation; the definition of scikit-learn's
    ``average_precision_score``).  Its chance level is the ID fraction
    ``n_id / (n_id + n_ood)``, so it depends on the class balance.

    Args:
        scores_id, scores_ood: 1-D scores, higher = more in-distribution.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    return _average_precision(s_id, s_ood)


def aupr_out(scores_id, scores_ood) -> float:
    """Area under the precision-recall curve with **OOD as the positive class** (scores negated), in ``[0, 1]``.

    Same average-precision definition as :func:`aupr_in`; chance level ``n_ood / (n_id + n_ood)``.

    Args:
        scores_id, scores_ood: 1-D scores, higher = more in-distribution.
    """
    s_id, s_ood = _check_pair(scores_id, scores_ood)
    return _average_precision(-s_ood, -s_id)


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
    thr, tp, fp = _counts_by_threshold(s_id, s_ood)
    fpr = np.concatenate([[0.0], fp / len(s_ood)])
    tpr = np.concatenate([[0.0], tp / len(s_id)])
    return fpr, tpr, np.concatenate([[np.inf], thr])


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


# --------------------------------------------------------------------------- optional OOD set
def load_svhn(split: str = "test", n: int | None = None, *, root=None, download: bool = True,
              timeout: float = 60.0) -> tuple[torch.Tensor, torch.Tensor]:
    """SVHN (street-view house numbers) as an optional OOD set, via ``torchvision.datasets.SVHN``.

    SVHN is not part of the course's offline data mirror: the first call
    downloads ``<split>_32x32.mat`` (64 MB for ``"test"``) into ``root``; later
    calls read it from there.  Needs ``scipy`` (``scipy.io.loadmat``).

    Args:
        split: ``"train"``, ``"test"`` or ``"extra"``.
        n: keep only the first ``n`` images (default: all; the test split has 26,032).
        root: folder of the ``.mat`` file (default :func:`labutils.data.data_dir`).
        download: try the download when the file is missing.
        timeout: seconds a stalled network connection may wait before the
            download gives up (the previous socket default is restored afterwards).

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` in 0..255 and int64
        ``(N,)`` digits ``0..9`` (torchvision maps SVHN's label 10 to 0).

    Raises:
        labutils.data.DatasetNotFoundError: the file is missing and could not be
            downloaded (no network, no ``scipy``, a corrupt file); the message
            says why and how to provide the file.
    """
    import socket

    from . import data as _data

    if split not in ("train", "test", "extra"):
        raise ValueError(f"Unknown SVHN split {split!r}: use 'train', 'test' or 'extra'.")
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}.")
    root = Path(root) if root is not None else _data.data_dir()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        import torchvision

        ds = torchvision.datasets.SVHN(root=str(root), split=split, download=download)
    except Exception as exc:  # no network, no scipy, a corrupt or partial file
        raise _data.DatasetNotFoundError(
            f"SVHN ({split}) is not in {root} and could not be "
            f"{'downloaded' if download else 'loaded (download=False)'}: {type(exc).__name__}: {exc}\n"
            f"SVHN is optional. To use it, connect to the internet once, or copy {split}_32x32.mat from "
            f"http://ufldl.stanford.edu/housenumbers/ into {root}."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
    images = torch.as_tensor(np.asarray(ds.data, dtype=np.uint8))
    labels = torch.as_tensor(np.asarray(ds.labels, dtype=np.int64))
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32) or labels.shape != (images.shape[0],):
        raise _data.DatasetNotFoundError(f"SVHN ({split}) in {root} has unexpected shapes {tuple(images.shape)} "
                                         f"and {tuple(labels.shape)}; delete {split}_32x32.mat and download it again.")
    if n is not None:
        images, labels = images[:n], labels[:n]
    return images.contiguous(), labels.contiguous()
