"""Gradient attacks: FGSM and PGD (Linf / L2, random starts, restarts, targeted, per-sample budgets).

These are the course's own implementations, not wrappers: they take a per-sample ``eps``
tensor, run in bf16 autocast on request, keep the first successful restart per image, and
check their inputs.  In fp32 they equal torchattacks' FGSM / PGD / PGDL2 (the tests compare
them image by image).  Other attacks come from torchattacks (:mod:`.adapter`).

Conventions shared by every function here:

* images ``x`` are float tensors ``(N, C, H, W)`` with pixels in ``[0, 1]``
  (models normalise inside); labels ``y`` are integer class indices ``(N,)``;
* ``eps`` and ``alpha`` are on the same ``[0, 1]`` pixel scale (``8/255`` is
  eight grey levels); a float or a per-sample tensor ``(N,)``;
* the model must return logits ``(N, num_classes)``; the loss is cross-entropy
  (mean over the batch, computed in fp32, as torchattacks does);
* the model runs in eval mode during the attack (:func:`labutils.runtime.frozen_eval`):
  the ``training`` flag of every submodule and the ``requires_grad`` flag of every
  parameter are restored afterwards, parameters receive no gradients and ``x`` is
  not modified;
* the adversarial images come back with the dtype, device and memory format of ``x``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import check_images
from ..runtime import autocast_dtype, frozen_eval, model_dtype_device
from .checks import (EpsLike, as_int, canonical_norm, check_alpha, check_eps, check_labels, check_model_logits,
                     is_channels_last)

__all__ = ["fgsm", "pgd", "pgd_step", "pgd_by_restarts", "perturbation_norms", "PreparedBatch", "L2_EPS_FOR_DIVISION"]


# The divisor guard torchattacks.PGDL2 adds to the gradient norm (its ``eps_for_division``).
L2_EPS_FOR_DIVISION = 1e-10


class PreparedBatch:
    """A batch prepared for an attack, checked once: images and labels on the model's device in the
    memory format the model prefers, the precision, and the model's logits and input gradients."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        check_images(x, name="x")
        check_labels(y, x.shape[0])
        self.model = model
        self.n = x.shape[0]
        self.dim = int(x[0].numel()) if self.n else int(math.prod(x.shape[1:]))
        self.model_dtype, self.device = model_dtype_device(model, x)
        self.amp = autocast_dtype(self.device, precision)  # validates precision
        # channels_last is what oneDNN (CPU) and cuDNN prefer.  In fp32 the images follow the model's
        # memory format, so that the convolutions (and results) are those torchattacks gets.
        self.memory_format = (torch.channels_last if self.amp is not None or is_channels_last(model)
                              else torch.contiguous_format)
        # Arithmetic of the attack (steps, projections) runs in x's dtype; only the model sees model_dtype.
        self.x = x.detach().to(self.device).contiguous(memory_format=self.memory_format)
        self.y = y.detach().to(self.device, torch.int64)
        self.checked = False

    def view(self, v: torch.Tensor | float) -> torch.Tensor | float:
        """A per-sample tensor ``(N,)`` as ``(N, 1, 1, 1)`` in the attack dtype; floats stay floats."""
        if isinstance(v, torch.Tensor):
            return v.detach().to(self.device, self.x.dtype).view(-1, *([1] * (self.x.ndim - 1)))
        return v

    def logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """fp32 logits ``(n, K)`` of the model at images ``z``; the first call checks them."""
        zin = z if z.dtype == self.model_dtype else z.to(self.model_dtype)
        if self.amp is None:
            out = self.model(zin)
        else:
            with torch.autocast(self.device.type, dtype=self.amp):
                out = self.model(zin)
        if not self.checked:
            check_model_logits(out, z.shape[0], self.y if y is None else y, self.amp)
            self.checked = True
        return out.float()

    def grad(self, z: torch.Tensor, y: torch.Tensor, targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the attack objective w.r.t. ``z`` (ascend it), and the logits at ``z``.

        Objective: mean cross-entropy to ``y`` (untargeted) or its negative (targeted), as torchattacks.
        """
        z = z.detach().requires_grad_(True)
        out = self.logits(z, y)
        loss = F.cross_entropy(out, y)
        if targeted:
            loss = -loss
        (g,) = torch.autograd.grad(loss, z)
        return g, out.detach()

    def finish(self, x_adv: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        out = x_adv.detach().to(device=like.device, dtype=like.dtype)
        if like.is_contiguous() and not out.is_contiguous():
            out = out.contiguous()
        if out.untyped_storage().data_ptr() == like.untyped_storage().data_ptr():
            out = out.clone()  # e.g. steps=0 without random start: never hand back x itself
        return out


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: EpsLike, *, targeted: bool = False,
         precision: str = "fp32") -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al., 2015), one Linf step.

    ``x' = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)``; targeted:
    ``x' = clip(x - eps * sign(grad_x CE(f(x), t)), 0, 1)`` with targets ``t = y``.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: float images ``(N, C, H, W)`` in ``[0, 1]``; not modified.
        y: int labels ``(N,)``; with ``targeted=True`` the target classes.
        eps: Linf budget on the ``[0, 1]`` pixel scale (e.g. ``8/255``), a float or a tensor ``(N,)``.
        targeted: move towards class ``y`` instead of away from it.
        precision: ``"fp32"`` (default, equals ``torchattacks.FGSM``), ``"bf16"`` (forward/backward
            under bf16 autocast, loss in fp32) or ``"auto"`` (bf16 where the hardware supports it).

    Returns:
        Adversarial images, same shape, dtype and device as ``x``, in ``[0, 1]``, with
        ``|x' - x|_inf <= eps`` per image.
    """
    atk = PreparedBatch(model, x, y, precision)
    eps = atk.view(check_eps(eps, atk.n, "linf", atk.dim))
    if atk.n == 0:
        return x.detach().clone()
    with frozen_eval(model):
        g, _ = atk.grad(atk.x, atk.y, targeted)
        with torch.no_grad():
            x_adv = (atk.x + eps * g.sign_()).clamp_(0, 1)
    return atk.finish(x_adv, x)


def _random_start(x: torch.Tensor, eps, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).mul_(2).sub_(1)
        return (x + noise * eps).clamp_(0, 1)
    # Uniform in the L2 ball: Gaussian direction, radius eps * U^(1/d).
    n, d = x.shape[0], x[0].numel()
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction /= direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(n, 1, 1, 1)
    u = torch.rand((n, 1, 1, 1), generator=generator, device=x.device, dtype=x.dtype)
    return (x + direction * (u.pow(1.0 / d) * eps)).clamp_(0, 1)


def _pgd_once(atk: PreparedBatch, x: torch.Tensor, y: torch.Tensor, eps, alpha, steps: int, norm: str,
              random_start: bool, targeted: bool, generator) -> torch.Tensor:
    """One PGD run from ``x`` (a subset of the batch); ``eps``/``alpha`` floats or ``(n,1,1,1)`` tensors.

    The update is written with the same floating-point operations as torchattacks.PGD / PGDL2,
    so that fp32 results agree with them bit for bit (up to the convolution algorithm).
    """
    x_adv = _random_start(x, eps, norm, generator) if random_start else x
    for _ in range(steps):
        g, _ = atk.grad(x_adv, y, targeted)
        with torch.no_grad():
            x_adv = pgd_step(x_adv, x, g, eps, alpha, norm)
    return x_adv


def pgd_step(x_adv: torch.Tensor, x: torch.Tensor, g: torch.Tensor, eps, alpha, norm: str) -> torch.Tensor:
    """One PGD update of ``x_adv`` around ``x`` with the loss gradient ``g`` (consumed: modified in place).

    Linf: ``clip(x + clamp(x_adv + alpha sign(g) - x, -eps, eps), 0, 1)``; L2: a step of ``alpha`` along
    ``g / (||g||_2 + 1e-10)``, the perturbation rescaled to norm ``<= eps``, then the clip.  ``eps`` and
    ``alpha`` are floats or ``(N, 1, ..., 1)`` tensors; images ``(N, C, H, W)``.  The same floating-point
    operations as torchattacks' PGD / PGDL2, so that fp32 results agree with them bit for bit.
    """
    n = x.shape[0]
    if norm == "linf":
        x_adv = x_adv + g.sign_().mul_(alpha)
        delta = torch.clamp(x_adv - x, min=-eps, max=eps)
    else:
        g_norm = torch.norm(g.reshape(n, -1), p=2, dim=1) + L2_EPS_FOR_DIVISION
        x_adv = x_adv + (g / g_norm.view(n, 1, 1, 1)).mul_(alpha)
        delta = x_adv - x
        # clamp_min only guards 0/0 (eps = 0 and a zero step); it never changes a real norm.
        d_norm = torch.norm(delta.reshape(n, -1), p=2, dim=1).clamp_min_(1e-30)
        factor = torch.minimum(eps.view(n) / d_norm if isinstance(eps, torch.Tensor) else eps / d_norm,
                               torch.ones_like(d_norm))
        delta = delta * factor.view(n, 1, 1, 1)
    return torch.clamp(x + delta, min=0, max=1)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: EpsLike, alpha: EpsLike, steps: int, *,
        norm: str = "linf", random_start: bool = True, targeted: bool = False, restarts: int = 1,
        precision: str = "fp32", generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected Gradient Descent (Madry et al., 2018) in the Linf or L2 ball.

    Linf: ``steps`` times ``x' <- clip(proj_eps(x' + alpha * sign(g)), 0, 1)`` with ``g`` the
    gradient of the cross-entropy; the random start is uniform in the Linf ball.
    L2: the step is ``alpha * g / (||g||_2 + 1e-10)`` per image, the projection rescales the
    perturbation to L2 norm ``<= eps``; the random start is uniform in the L2 ball (Gaussian
    direction, radius ``eps * U**(1/d)``, d = C*H*W), clipped to ``[0, 1]`` (torchattacks'
    PGDL2 draws the radius as ``eps * U``, closer to the centre).  Targeted attacks descend
    the cross-entropy to the target classes ``y``.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: float images ``(N, C, H, W)`` in ``[0, 1]``; not modified.
        y: int labels ``(N,)``; with ``targeted=True`` the target classes.
        eps: budget on the ``[0, 1]`` pixel scale (Linf e.g. ``8/255``; L2 e.g. ``0.5``), float or ``(N,)``.
        alpha: step size on the same scale (Linf e.g. ``2/255``), float or ``(N,)``.
        steps: number of gradient steps (>= 0).
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a random point of the ball instead of ``x``.
        targeted: move towards class ``y`` instead of away from it.
        restarts: independent random starts (needs ``random_start=True``); per image the result of
            the first restart that succeeds (untargeted: misclassified; targeted: classified as the
            target) is kept, else the one with the highest loss (lowest loss to the target).
            Images already fooled are not attacked again.
        precision: ``"fp32"`` (default; equals ``torchattacks.PGD`` / ``PGDL2`` with the same
            settings on the same model: the images follow the model's memory format, because a
            channels_last and a contiguous copy of one model round differently and give slightly
            different adversarial images, for torchattacks too), ``"bf16"`` (forward/backward
            under bf16 autocast, loss in fp32, channels_last) or ``"auto"``.
        generator: ``torch.Generator`` (on the model's device) for the random starts.

    Returns:
        Adversarial images, same shape, dtype and device as ``x``, in ``[0, 1]``, within ``eps``
        of ``x`` in the chosen norm.
    """
    norm = canonical_norm(norm)
    atk = PreparedBatch(model, x, y, precision)
    eps = check_eps(eps, atk.n, norm, atk.dim)
    alpha = check_alpha(alpha, atk.n, norm, atk.dim)
    steps, restarts = as_int(steps, "steps", 0), as_int(restarts, "restarts", 1)
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True: without a random start every restart is the same.")
    if atk.n == 0:
        return x.detach().clone()
    eps_v, alpha_v = atk.view(eps), atk.view(alpha)
    with frozen_eval(model):
        if restarts == 1:
            x_adv = _pgd_once(atk, atk.x, atk.y, eps_v, alpha_v, steps, norm, random_start, targeted, generator)
        else:
            x_adv = _pgd_restarts(atk, eps_v, alpha_v, steps, norm, targeted, restarts, generator)
    return atk.finish(x_adv, x)


def _pgd_restarts(atk: PreparedBatch, eps, alpha, steps, norm, targeted, restarts, generator) -> torch.Tensor:
    best = None
    for best in _iter_restarts(atk, eps, alpha, steps, norm, targeted, restarts, generator):
        pass
    return best


def _iter_restarts(atk: PreparedBatch, eps, alpha, steps, norm, targeted, restarts, generator):
    """Yield the batch's adversarial images after each of ``restarts`` restarts (the same tensor, updated).

    Restart ``k`` attacks only the images no earlier restart fooled, so the result after ``k``
    restarts is exactly what ``pgd(..., restarts=k)`` returns with the same generator.
    """
    best = atk.x.clone()
    best_loss = torch.full((atk.n,), -math.inf, device=atk.device)
    done = torch.zeros(atk.n, dtype=torch.bool, device=atk.device)
    for _ in range(restarts):
        idx = (~done).nonzero().squeeze(1)
        if idx.numel():
            pick = (lambda v: v[idx] if isinstance(v, torch.Tensor) else v)
            xs, ys = atk.x[idx], atk.y[idx]
            cand = _pgd_once(atk, xs, ys, pick(eps), pick(alpha), steps, norm, True, targeted, generator)
            with torch.no_grad():
                out = atk.logits(cand, ys)
                loss = F.cross_entropy(out, ys, reduction="none")
                score = -loss if targeted else loss
                pred = out.argmax(1)
                success = pred == ys if targeted else pred != ys
                better = success | (score > best_loss[idx])
                take = idx[better]
                best[take] = cand[better]
                best_loss[take] = score[better]
                done[idx[success]] = True
        yield best


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    """Per-image size of ``x_adv - x``: a float tensor ``(N,)`` on the pixel scale of the images.

    ``norm``: ``"linf"`` (largest absolute pixel change), ``"l2"`` (Euclidean) or ``"l1"``.
    """
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}.")
    key = str(norm).strip().lower()
    order = 1 if key == "l1" else (math.inf if canonical_norm(key) == "linf" else 2)
    d = (x_adv.to(x.device).double() - x.double()).flatten(1)
    r = torch.linalg.vector_norm(d, ord=order, dim=1) if d.shape[1] else d.new_zeros(d.shape[0])
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return r.to(dtype)


def pgd_by_restarts(model, x, y, eps, alpha, steps, norm, random_start, restarts, precision, generator):
    """Yield ``(r, x_adv)`` for r = 1..restarts: ``pgd(..., restarts=r)``'s result, from one run."""
    if restarts == 1:
        yield 1, pgd(model, x, y, eps, alpha, steps, norm=norm, random_start=random_start, precision=precision,
                     generator=generator)
        return
    atk = PreparedBatch(model, x, y, precision)
    eps_v, alpha_v = atk.view(check_eps(eps, atk.n, norm, atk.dim)), atk.view(check_alpha(alpha, atk.n, norm, atk.dim))
    with frozen_eval(model):
        for r, best in enumerate(_iter_restarts(atk, eps_v, alpha_v, steps, norm, False, restarts, generator), 1):
            yield r, atk.finish(best, x)
