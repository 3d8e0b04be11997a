"""Targeted attacks measured per (source class, target class): which confusions an attacker can force."""
from __future__ import annotations

import torch
from torch import nn

from ..attacks.checks import as_int, check_labels
from ..data import as_float_images
from ..training.inference import predict_logits
from .curves import predictions, resolve_attack, with_attack_defaults

__all__ = ["correct_per_class", "targeted_success_matrix"]


def correct_per_class(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_per_class: int,
                      num_classes: int | None = None, *, batch_size: int = 500) -> torch.Tensor:
    """Indices of the first ``n_per_class`` images of each class that ``model`` classifies correctly.

    Args:
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8; y: int labels ``(N,)``.
        n_per_class: images wanted per class (fewer where a class has fewer correct images).
        num_classes: K (default ``y.max() + 1``).

    Returns:
        int64 indices into ``x`` (on the CPU), grouped by class (class 0 first), ascending within a class.
        The model runs in eval mode (fp32); its mode is restored.
    """
    n = x.shape[0]
    check_labels(y, n)
    n_per_class = as_int(n_per_class, "n_per_class", 0)
    k = int(y.max()) + 1 if num_classes is None and n else int(num_classes or 0)
    pred = predict_logits(model, x, batch_size=batch_size).argmax(1) if n else y.cpu()
    correct = pred == y.cpu()
    picked = [torch.nonzero(correct & (y.cpu() == c)).flatten()[:n_per_class] for c in range(k)]
    return torch.cat(picked) if picked else torch.zeros(0, dtype=torch.int64)


def targeted_success_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack="fgsm", *,
                            targets: torch.Tensor | None = None, num_classes: int | None = None,
                            batch_size: int = 256, progress: bool = True, **attack_kwargs) -> dict:
    """Run a targeted attack on (image, target) pairs; tabulate hits and misclassifications per source x target.

    By default every image is attacked towards every class other than its label (``N * (K-1)``
    pairs); pass ``targets`` (one class per image, ``!= y``) to attack each image once.

    Args:
        model: classifier returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8 (callers usually pass images the
            model classifies correctly, e.g. from :func:`correct_per_class`).
        y: true labels ``(N,)``: the source classes.
        attack: ``"fgsm"``, ``"pgd"`` or a callable ``attack(model, x, t, targeted=True, **kwargs)``.
        targets: optional int ``(N,)`` target per image (each different from its label).
        num_classes: K (default: ``max(y, targets) + 1``).
        batch_size: pairs attacked at once.
        attack_kwargs: passed to the attack, e.g. ``eps=8/255``; for ``"pgd"`` ``steps`` defaults
            to 10 and ``alpha`` to ``2.5 * eps / steps`` as in :func:`labutils.robustness.accuracy_curve`.

    Returns:
        dict with
        ``success``: float64 ``(K, K)``, fraction of the pairs (source row, target column) whose
        adversarial image is classified as the target, NaN where there is no pair (the diagonal);
        ``fooled``: same layout, fraction no longer classified as the source (untargeted
        misclassification: a missed target can still fool the model);
        ``count``: int64 ``(K, K)`` pairs per cell;
        ``success_rate`` / ``fooled_rate``: the same fractions over all pairs (floats in [0, 1]);
        ``source``, ``target``, ``index`` (image index), ``pred`` (prediction after the attack):
        int64 ``(M,)`` per pair.
    """
    from tqdm.auto import tqdm

    fn = resolve_attack(attack)
    n = x.shape[0]
    check_labels(y, n)
    y = y.cpu()
    if targets is None:
        k = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if n else 0)
        if k < 2:
            raise ValueError("targeted attacks need at least 2 classes; pass num_classes.")
        index = torch.arange(n).repeat_interleave(k - 1)
        offsets = torch.arange(1, k).repeat(n)
        tgt = (y[index] + offsets) % k  # every class but the label
    else:
        check_labels(targets, n, "targets")
        tgt, index = targets.cpu().to(torch.int64), torch.arange(n)
        k = int(num_classes) if num_classes is not None else (int(torch.cat([y, tgt]).max()) + 1 if n else 0)
        if bool((tgt == y).any()):
            raise ValueError("targets must differ from the labels y (a targeted attack aims for another class).")
    if n and (int(y.max()) >= k or int(tgt.max()) >= k or int(y.min()) < 0 or int(tgt.min()) < 0):
        raise ValueError(f"labels and targets must be class indices in 0..{k - 1}.")
    src = y[index]
    kw = with_attack_defaults(fn, float(attack_kwargs.get("eps", 0.0)), attack_kwargs)
    m = index.numel()
    preds = []
    for i in tqdm(range(0, m, batch_size), desc=f"targeted {getattr(fn, '__name__', 'attack')}",
                  disable=not progress, leave=False, mininterval=0.5):
        sl = slice(i, min(m, i + batch_size))
        xb = as_float_images(x[index[sl]], name="x")
        x_adv = fn(model, xb, tgt[sl].to(xb.device), targeted=True, **kw)
        preds.append(predictions(model, x_adv))
    pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)
    cell = src * k + tgt
    count = torch.bincount(cell, minlength=k * k).view(k, k)
    hits = torch.bincount(cell, weights=(pred == tgt).double(), minlength=k * k).view(k, k)
    fooled = torch.bincount(cell, weights=(pred != src).double(), minlength=k * k).view(k, k)
    denom = count.double().where(count > 0, torch.tensor(float("nan"), dtype=torch.float64))
    return {
        "success": hits / denom, "fooled": fooled / denom, "count": count,
        "success_rate": float((pred == tgt).double().mean()) if m else float("nan"),
        "fooled_rate": float((pred != src).double().mean()) if m else float("nan"),
        "source": src, "target": tgt, "index": index, "pred": pred,
    }
