"""The adaptive attacker of the entropy monitor: PGD that fools the model *and* keeps the monitored entropies.

A detector is only as good as its worst case: an attacker who knows which layers are monitored
(and their bin edges) can look for adversarial images whose activation entropies stay where
the clean image's were.  The histogram entropy of :mod:`.activation_entropy` is piecewise constant in the
input (counts jump), so the attacker ascends a differentiable surrogate instead:

* :func:`soft_histogram_counts`: each positive activation ``v`` splits its unit of mass between
  the two bin centres around it by linear interpolation (a triangular kernel one bin wide), so the
  counts move smoothly with ``v``; a value at a bin centre counts fully in its bin (then the soft
  histogram is the hard one), values below the first / above the last centre count in the
  first / last bin, as in :func:`~labutils.uncertainty.activation_entropy.histogram_counts`;
* :func:`soft_histogram_entropy`: ``-sum P log2 P`` of those soft counts, in bits, per sample.

:func:`adaptive_pgd` maximises, per sample, ``attack_loss - weight * sum_layers (H_soft - H_soft(x))**2``
(``- predictive_weight * (H_pred - H_pred(x))**2`` too, when set) over the Linf ball, with the
conventions of :mod:`labutils.attacks.gradient`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.checks import as_int, check_alpha, check_eps
from ..attacks.gradient import PreparedBatch
from ..runtime import frozen_eval
from .activation_entropy import ActivationMonitor, check_edges

__all__ = ["soft_histogram_counts", "soft_histogram_entropy", "margin_loss", "adaptive_pgd", "ATTACK_LOSSES"]

ATTACK_LOSSES = ("ce", "margin")


def soft_histogram_counts(activations: torch.Tensor, edges) -> torch.Tensor:
    """Differentiable per-sample histogram of the positive values: ``(N, ...) -> (N, B)`` in ``activations``' dtype.

    Bin ``b`` has centre ``c_b = (e_b + e_{b+1}) / 2``.  A value ``v > 0`` gives ``1 - f`` to the
    bin of the centre just below it and ``f`` to the next, ``f = (v - c_j) / (c_{j+1} - c_j)``
    (values are first clamped to ``[c_0, c_{B-1}]``).  Row sums are the numbers of positive
    values, as for the hard histogram; gradients flow through ``f``.
    """
    e = check_edges(edges)
    a = activations.reshape(activations.shape[0], -1)
    if not a.is_floating_point():
        raise TypeError("soft_histogram_counts needs floating-point activations.")
    b = e.numel() - 1
    positive = (a > 0).to(a.dtype)
    if b == 1:
        return positive.sum(1, keepdim=True)
    centres = ((e[:-1] + e[1:]) / 2).to(a.device, a.dtype)
    v = torch.minimum(torch.maximum(a, centres[0]), centres[-1])
    j = (torch.bucketize(v.detach(), centres, right=True) - 1).clamp_(0, b - 2)  # centre j <= v < centre j+1
    f = (v - centres[j]) / (centres[j + 1] - centres[j])
    counts = torch.zeros(a.shape[0], b, dtype=a.dtype, device=a.device)
    counts = counts.scatter_add(1, j, positive * (1 - f))
    return counts.scatter_add(1, j + 1, positive * f)


def _entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    p = counts / counts.sum(1, keepdim=True).clamp_min(1e-12)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1) / math.log(2)  # finite gradient at empty bins


def soft_histogram_entropy(activations: torch.Tensor, edges) -> torch.Tensor:
    """Differentiable surrogate of the per-sample histogram entropy: ``(N, ...) -> (N,)`` bits, in ``[0, log2 B]``.

    Equal to :func:`~labutils.uncertainty.activation_entropy.histogram_entropy_per_sample` when every
    positive value sits on a bin centre; 0 for a sample without positive values.
    """
    return _entropy_bits(soft_histogram_counts(activations, edges))


def margin_loss(logits: torch.Tensor, y: torch.Tensor, kappa: float) -> torch.Tensor:
    """Carlini-Wagner margin ``min(max_{j != y} z_j - z_y, kappa)`` per sample ``(N,)``; the attacker ascends it.

    Positive once the image is misclassified; capped at ``kappa`` (logit units), so a larger
    ``kappa`` asks for a more confident mistake and leaves less room for the entropy term.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return (other - true).clamp(max=float(kappa))


def _objective(atk: PreparedBatch, z, y, loss, kappa, weight, predictive_weight, soft, refs):
    """Mean over the batch of ``attack loss - weight * penalty``; ``soft`` is filled by the monitor's hook."""
    out = atk.logits(z, y)
    if loss == "ce":
        obj = F.cross_entropy(out, y)  # the same operation as attacks.pgd: equal to it at weight 0
    else:
        obj = margin_loss(out, y, kappa).mean()
    if refs is None:
        return obj
    penalty = sum((soft[k] - refs[k]).square() for k in soft) * weight
    if predictive_weight:
        logp = torch.log_softmax(out, 1)
        h = -(logp.exp() * logp).sum(1) / math.log(2)
        penalty = penalty + predictive_weight * (h - refs["__predictive__"]).square()
    return obj - penalty.mean()


def adaptive_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, alpha, steps: int, *,
                 edges: Mapping[str, object], weight: float = 10.0, loss: str = "ce", kappa: float = 5.0,
                 predictive_weight: float = 0.0, random_start: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Linf PGD against a classifier *and* its entropy monitor (an attacker who knows the monitor).

    Each of ``steps`` steps: ``x' <- clip(proj_eps(x' + alpha * sign(grad J)), 0, 1)`` with, per image,
    ``J = attack_loss - weight * sum_l (H_l(x') - H_l(x))**2 - predictive_weight * (Hp(x') - Hp(x))**2``
    averaged over the batch: ``H_l`` is the :func:`soft_histogram_entropy` (bits) of monitored layer
    ``l`` with its fixed ``edges``, ``Hp`` the predictive entropy (bits), both anchored at the clean
    image's own values.  ``weight = predictive_weight = 0`` with ``loss="ce"`` is plain PGD
    (:func:`labutils.attacks.pgd`, the same images for the same start).  The last iterate is returned.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``; runs in eval mode,
            fp32, frozen (:func:`labutils.runtime.frozen_eval`; modes and flags restored).
        x: float images ``(N, C, H, W)`` in ``[0, 1]``; not modified.
        y: int64 labels ``(N,)``.
        eps: Linf budget on the ``[0, 1]`` pixel scale (e.g. ``8/255``), float or ``(N,)``; in ``[0, 1]``.
        alpha: step size on the same scale, float or ``(N,)``.
        steps: gradient steps (>= 0).
        edges: ``{layer name: fixed bin edges}`` of the monitor (e.g. from
            :func:`~labutils.uncertainty.activation_entropy.calibrate_edges`); its layers are the ones hooked.
        weight: ``lambda >= 0`` of the entropy term (bits squared against the attack loss).
        loss: ``"ce"`` (cross-entropy, as PGD) or ``"margin"`` (:func:`margin_loss` capped at ``kappa``).
        kappa: the margin cap for ``loss="margin"``, in logit units (> 0).
        predictive_weight: weight (>= 0) of keeping the predictive entropy near its clean value.
        random_start: start uniformly in the Linf ball (``generator`` draws it).

    Returns:
        Adversarial images with the shape, dtype and device of ``x``, in ``[0, 1]``, within ``eps`` in Linf.
    """
    if loss not in ATTACK_LOSSES:
        raise ValueError(f"loss must be one of {ATTACK_LOSSES}, got {loss!r}.")
    for name, value in (("weight", weight), ("predictive_weight", predictive_weight)):
        if not (math.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    if loss == "margin" and not float(kappa) > 0:
        raise ValueError(f"kappa must be > 0 (logit units), got {kappa}.")
    if not isinstance(edges, Mapping) or not edges:
        raise ValueError("edges must be a non-empty dict {layer name: bin edges} (the monitored layers).")
    atk = PreparedBatch(model, x, y, "fp32")
    eps = atk.view(check_eps(eps, atk.n, "linf", atk.dim))
    alpha = atk.view(check_alpha(alpha, atk.n, "linf", atk.dim))
    steps = as_int(steps, "steps", 0)
    checked = {k: check_edges(v, f"edges[{k!r}]") for k, v in edges.items()}
    soft: dict[str, torch.Tensor] = {}

    def record(name, output):
        # on a copy: the layer's output may be changed in place by what follows it (ReLU(inplace=True)
        # after a BatchNorm), which would invalidate the tensors autograd saved for the surrogate
        soft[name] = soft_histogram_entropy(output.clone(), checked[name])

    penalised = float(weight) > 0 or float(predictive_weight) > 0
    monitor = ActivationMonitor(model, list(checked), callback=record if penalised else None)
    with monitor, frozen_eval(model):
        if atk.n == 0:
            return x.detach().clone()
        refs = None
        if penalised:
            with torch.no_grad():
                out = atk.logits(atk.x)
                refs = {k: v.detach() for k, v in soft.items()}
                logp = torch.log_softmax(out, 1)
                refs["__predictive__"] = -(logp.exp() * logp).sum(1) / math.log(2)
        x_adv = atk.x
        if random_start:
            noise = torch.rand(atk.x.shape, generator=generator, device=atk.device, dtype=atk.x.dtype)
            x_adv = (atk.x + noise.mul_(2).sub_(1) * eps).clamp_(0, 1)
        for _ in range(steps):
            z = x_adv.detach().requires_grad_(True)
            obj = _objective(atk, z, atk.y, loss, kappa, float(weight), float(predictive_weight), soft, refs)
            (g,) = torch.autograd.grad(obj, z)
            with torch.no_grad():
                x_adv = x_adv + g.sign_().mul_(alpha)
                delta = torch.clamp(x_adv - atk.x, min=-eps, max=eps)
                x_adv = torch.clamp(atk.x + delta, min=0, max=1)
    return atk.finish(x_adv, x)
