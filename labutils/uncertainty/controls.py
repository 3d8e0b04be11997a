"""Controls for a detector of attacked inputs, and what an adaptive attacker wins against it.

A detector that flags attacked images may be flagging *any* change of the input.  The control
is a harmless perturbation of the same size, drawn at random instead of by a gradient:

* :func:`random_sign_noise`: every pixel moved by ``+eps`` or ``-eps`` at random, the same Linf
  budget as FGSM / PGD (and, before clipping, FGSM's L2 norm ``eps * sqrt(C * H * W)``);
* :func:`gaussian_noise_like`: Gaussian noise rescaled, image by image, to the L2 norm of a
  reference perturbation (e.g. ``x_adv - x`` of an attack).

Both add the noise in ``[0, 1]`` pixel space and clip the result to ``[0, 1]``; clipping can only
shrink a perturbation, never grow it.  The detector's flag rate on them is its false-alarm rate
on harmless inputs of the attack's size.

Carlini and Wagner (2017) and Tramer et al. (2020) judge a detector by what the defender loses
against an attacker who knows it: the images that are **misclassified and not flagged** at the
deployed threshold (:func:`fooled_and_unflagged`), with the best of several attack restarts
counted for the attacker, not by a drop of the AUROC alone.

Pure functions: inputs are never modified; outputs keep the dtype and device of ``x``.
"""
from __future__ import annotations

import torch

from ..attacks.checks import check_eps
from ..data import check_images

__all__ = ["random_sign_noise", "gaussian_noise_like", "fooled_and_unflagged"]

_DIRECTIONS = ("above", "below")


def _draw(kind: str, shape, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random numbers drawn on the generator's device (so a seed gives the same draw for CPU and GPU images)."""
    device = generator.device if generator is not None else x.device
    if kind == "sign":
        r = torch.randint(0, 2, shape, generator=generator, device=device).to(x.dtype).mul_(2).sub_(1)
    else:
        r = torch.randn(shape, generator=generator, device=device, dtype=x.dtype)
    return r.to(x.device)


def random_sign_noise(x: torch.Tensor, eps, generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(x + eps * s, 0, 1)`` with an independent random sign ``s = +-1`` (probability 1/2 each) per entry.

    The harmless counterpart of an Linf attack: the same budget in every pixel, the signs chosen
    by chance instead of by a gradient.  Where ``x +- eps`` stays in ``[0, 1]`` the change is
    exactly ``eps``; at the borders clipping makes it smaller.

    Args:
        x: float images ``(N, C, H, W)`` (or volumes ``(N, C, D, H, W)``) in ``[0, 1]``; not modified.
        eps: Linf size on the ``[0, 1]`` pixel scale (e.g. ``8/255``), a number or ``(N,)``, in ``[0, 1]``.
        generator: optional ``torch.Generator``; the signs are drawn on its device, then moved to ``x``'s.

    Returns:
        A new tensor with the shape, dtype and device of ``x``, in ``[0, 1]``, with
        ``|out - x| <= eps`` entry by entry.
    """
    check_images(x, name="x", volumes=True)
    e = check_eps(eps, x.shape[0], "linf", x[0].numel())
    if isinstance(e, torch.Tensor):  # one budget per image
        e = e.to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return (x + e * _draw("sign", x.shape, x, generator)).clamp(0, 1)


def gaussian_noise_like(x: torch.Tensor, reference_delta: torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(x + g * ||d_i||_2 / ||g_i||_2, 0, 1)``: Gaussian noise with each image's L2 norm matched to a reference.

    ``g`` is standard normal, one draw per entry; it is rescaled image by image so that, before
    clipping, the noise of image ``i`` has the L2 norm of ``reference_delta[i]`` (for an attack,
    ``x_adv - x``).  A zero reference gives the image back unchanged.  After clipping the norm is
    at most the reference's.

    Args:
        x: float images ``(N, C, H, W)`` (or volumes ``(N, C, D, H, W)``) in ``[0, 1]``; not modified.
        reference_delta: a perturbation of the same shape ``(N, ...)`` (e.g. ``x_adv - x``), on the
            ``[0, 1]`` pixel scale; only its per-image L2 norms are used; not modified.
        generator: optional ``torch.Generator``; the noise is drawn on its device, then moved to ``x``'s.

    Returns:
        A new tensor with the shape, dtype and device of ``x``, in ``[0, 1]``, with
        ``||out_i - x_i||_2 <= ||reference_delta_i||_2``.
    """
    check_images(x, name="x", volumes=True)
    if not isinstance(reference_delta, torch.Tensor) or reference_delta.shape != x.shape:
        raise ValueError(f"reference_delta must be a tensor of the shape of x {tuple(x.shape)}, got "
                         f"{tuple(getattr(reference_delta, 'shape', ()))}.")
    target = reference_delta.detach().to(x.device, x.dtype).flatten(1).norm(dim=1)
    if not bool(torch.isfinite(target).all()):
        raise ValueError("reference_delta contains NaN or infinite values.")
    g = _draw("normal", x.shape, x, generator)
    scale = target / g.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    return (x + g * scale.reshape(-1, *([1] * (x.dim() - 1)))).clamp(0, 1)


def fooled_and_unflagged(predictions, labels, scores, threshold: float, *, direction: str = "above") -> torch.Tensor:
    """Which images the attacker wins at a deployed threshold: misclassified **and** not flagged, ``(N,)`` bool.

    A detector flags ``score > threshold`` (``direction="above"``, higher = more suspicious) or
    ``score < threshold`` (``"below"``), as :class:`~labutils.uncertainty.thresholds.Threshold`
    does.  With several attack restarts, pass ``(R, N)`` predictions and scores (restart ``r`` of
    image ``n`` in row ``r``): an image counts for the attacker when **any** restart is both
    misclassified and unflagged.

    Args:
        predictions: predicted classes on the attacked images, int ``(N,)`` or ``(R, N)``.
        labels: true classes, int ``(N,)``.
        scores: the detector's scores on the same attacked images, ``(N,)`` or ``(R, N)`` like
            ``predictions``; not NaN.
        threshold: the deployed threshold, in the score's units (``+-inf`` allowed).
        direction: ``"above"`` or ``"below"``, which side is flagged.

    Returns:
        Bool tensor ``(N,)`` on the CPU; ``.float().mean()`` is the share of images the defender loses.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'above' (flag score > threshold) or 'below', got {direction!r}.")
    pred = torch.as_tensor(predictions).detach().cpu()
    lab = torch.as_tensor(labels).detach().cpu().reshape(-1)
    s = torch.as_tensor(scores).detach().cpu()
    if pred.dim() == 1:
        pred = pred[None]
    if s.dim() == 1:
        s = s[None]
    if pred.dim() != 2 or pred.shape[1] != lab.shape[0] or s.shape != pred.shape:
        raise ValueError(f"predictions and scores must both have shape (N,) or (R, N) with N = {lab.shape[0]} "
                         f"labels, got {tuple(pred.shape)} and {tuple(s.shape)}.")
    if s.is_floating_point() and bool(torch.isnan(s).any()):
        raise ValueError("scores contain NaN.")
    t = float(threshold)
    if t != t:
        raise ValueError("threshold is NaN.")
    flagged = s > t if direction == "above" else s < t
    return ((pred != lab[None]) & ~flagged).any(dim=0)
