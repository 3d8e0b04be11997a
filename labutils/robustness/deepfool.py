"""Time to failure under DeepFool: the L2 size of the smallest perturbation DeepFool finds, per image.

DeepFool (Moosavi-Dezfooli et al., 2016) linearises the classifier around the image and steps to the
nearest linearised decision boundary until the prediction flips.  It has no budget: what it
returns is itself a distance, so an image's duration is the L2 norm of its DeepFool perturbation
(on the ``[0, 1]`` pixel scale), comparable with the radii of an L2 ladder in
:func:`labutils.robustness.survival.time_to_failure`.  The attack runs through torchattacks.
"""
from __future__ import annotations

import math
import numbers
import time

import numpy as np
import torch
from torch import nn

from ..attacks.adapter import torchattacks_attack
from ..attacks.checks import as_int, check_labels
from ..data import as_float_images
from .curves import _correct_under_attack, correct_mask
from .survival import SurvivalData, _survival

__all__ = ["deepfool_to_failure"]


def deepfool_to_failure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_norm: float, steps: int = 50,
                        overshoot: float = 0.02, batch_size: int = 64, progress: bool = True) -> SurvivalData:
    """Per correctly classified image, the L2 norm of the DeepFool perturbation that flips it.

    Images DeepFool does not flip within ``steps`` iterations, or flips only with a perturbation
    larger than ``max_norm``, are right-censored at ``max_norm`` (they survived every budget up to it
    as far as DeepFool can tell); images misclassified without attack are excluded and counted.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8; y: int labels ``(N,)``.
        max_norm: the censoring radius (L2, pixel scale), > 0: e.g. the largest radius of the L2 ladder
            the other attacks use, so the durations are comparable.
        steps, overshoot: DeepFool's iterations and overshoot (torchattacks' defaults: 50, 0.02).
        batch_size: images per call to the attack.  progress: a tqdm bar.

    Returns :class:`~labutils.robustness.survival.SurvivalData` with ``attack="deepfool"``, ``norm="l2"``,
    ``unit="eps"`` and ``budgets = [max_norm]``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    n = x.shape[0]
    check_labels(y, n)
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not (
            math.isfinite(float(max_norm)) and max_norm > 0):
        raise ValueError(f"max_norm must be a finite L2 radius > 0 on the [0, 1] pixel scale, got {max_norm!r}.")
    steps, batch_size = as_int(steps, "steps", 1), as_int(batch_size, "batch_size", 1)
    if not (isinstance(overshoot, numbers.Real) and overshoot >= 0):
        raise ValueError(f"overshoot must be a number >= 0, got {overshoot!r}.")
    clean = _correct_under_attack(model, x, y, None, batch_size)
    keep = clean.nonzero().squeeze(1)
    norms = np.zeros(keep.numel())
    flipped = np.zeros(keep.numel(), dtype=bool)
    for i in tqdm(range(0, keep.numel(), batch_size), desc="DeepFool", disable=not progress, leave=False):
        sel = keep[i: i + batch_size]
        xb, yb = as_float_images(x[sel], name="x"), y[sel]
        x_adv = torchattacks_attack("DeepFool", model, xb, yb, steps=steps, overshoot=float(overshoot))
        delta = (x_adv.double() - xb.double()).flatten(1)
        norms[i: i + sel.numel()] = torch.linalg.vector_norm(delta, dim=1).cpu().numpy()
        flipped[i: i + sel.numel()] = (~correct_mask(model, x_adv, yb)).numpy()
    event = flipped & (norms <= float(max_norm))
    duration = np.where(event, norms, float(max_norm))
    return _survival(clean, duration, event, [float(max_norm)], "deepfool", "l2", "eps", t0)
