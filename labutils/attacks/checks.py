"""Argument checks shared by the attacks and the robustness evaluations, with errors that say how to fix the call."""
from __future__ import annotations

import math
import operator

import torch
from torch import nn

__all__ = ["Number", "EpsLike", "canonical_norm", "check_labels", "check_eps", "check_alpha", "as_int",
           "check_model_logits", "is_channels_last", "default_pgd_alpha"]

Number = float | int
EpsLike = Number | torch.Tensor


def default_pgd_alpha(eps: float, steps: int) -> float:
    """Madry et al.'s step-size rule ``alpha = 2.5 * eps / steps``: the steps can cross the ball 2.5 times."""
    return 2.5 * float(eps) / max(1, int(steps))


def canonical_norm(norm: str) -> str:
    key = str(norm).strip().lower()
    if key in ("linf", "inf", "l_inf", "l-inf"):
        return "linf"
    if key in ("l2", "2", "l_2"):
        return "l2"
    raise ValueError(f"Unknown norm {norm!r}: use 'linf' (max pixel change) or 'l2' (Euclidean distance).")


def check_labels(y, n: int, name: str = "y") -> None:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(y).__name__}.")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{name} must hold integer class indices (torch.int64), got dtype {y.dtype}; "
                        "pass labels, not one-hot vectors or probabilities.")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape (N,) = ({n},) to match the {n} images, got {tuple(y.shape)}.")


def _per_sample(value: EpsLike, n: int, name: str, *, low: float, high: float, what: str,
                strict_low: bool = False) -> torch.Tensor | float:
    """A float, or a tensor ``(N,)`` of per-sample values, checked to lie in ``[low, high]``."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number or a float tensor of shape (N,), got {value.dtype}.")
        if value.ndim == 0:
            value = float(value)
        elif value.shape != (n,):
            raise ValueError(f"{name} must be a number or a tensor of shape (N,) = ({n},) (one value per image), "
                             f"got shape {tuple(value.shape)}.")
    if isinstance(value, torch.Tensor):
        vals = value.detach().double()
        lo, hi = (float(vals.min()), float(vals.max())) if n else (low, low)
        bad = not (math.isfinite(lo) and math.isfinite(hi)) or lo < low or hi > high or (strict_low and lo <= low)
        shown = f"values in [{lo:.4g}, {hi:.4g}]"
    else:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or a tensor of shape (N,), got {type(value).__name__}.") from None
        bad = not math.isfinite(value) or value < low or value > high or (strict_low and value <= low)
        shown = f"{name}={value:.6g}"
    if bad:
        raise ValueError(f"{shown} is outside {'(' if strict_low else '['}{low:g}, {high:.4g}]: {what}")
    return value


def check_eps(eps: EpsLike, n: int, norm: str, dim: int, name: str = "eps") -> torch.Tensor | float:
    if norm == "linf":
        what = (f"{name} is on the [0, 1] pixel scale of the images, e.g. 8/255 = {8 / 255:.4f} "
                "for eight grey levels (not 8).")
        return _per_sample(eps, n, name, low=0.0, high=1.0, what=what)
    max_l2 = math.sqrt(dim)
    what = (f"an L2 {name} is the Euclidean radius on the [0, 1] pixel scale; it must be >= 0 and at most "
            f"sqrt(C*H*W) = {max_l2:.4g}, the largest distance between two images (typical values 0.25-2).")
    return _per_sample(eps, n, name, low=0.0, high=max_l2, what=what)


def check_alpha(alpha: EpsLike, n: int, norm: str, dim: int) -> torch.Tensor | float:
    if norm == "linf":
        what = "the step size alpha is on the [0, 1] pixel scale, e.g. 2/255."
        return _per_sample(alpha, n, "alpha", low=0.0, high=1.0, what=what)
    return _per_sample(alpha, n, "alpha", low=0.0, high=math.sqrt(dim),
                       what="the L2 step size alpha is on the [0, 1] pixel scale, e.g. eps/4.")


def as_int(value, name: str, low: int) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.") from None
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def check_model_logits(out: torch.Tensor, n: int, y: torch.Tensor | None, amp: torch.dtype | None) -> None:
    """Raise unless ``out`` looks like logits ``(N, K)`` (and ``y`` holds classes < K)."""
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape (N, num_classes) = ({n}, K), got {shape}.")
    if n == 0:
        return
    with torch.no_grad():
        o = out.detach().float()
        tol = 1e-3 if amp is None else 2e-2  # a softmax computed in bf16 sums to 1 only within ~1e-2
        if float(o.min()) >= 0 and float(o.max()) <= 1 and float((o.sum(1) - 1).abs().max()) <= tol:
            raise ValueError(
                "the model returns probabilities (outputs in [0, 1] whose rows sum to 1), but attacks need "
                "logits: remove the final softmax (e.g. nn.Softmax) from the model; cross-entropy applies it.")
        if y is not None:
            k = out.shape[1]
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= k:
                raise ValueError(f"y holds class indices in [{lo}, {hi}] but the model has {k} classes (0..{k - 1}).")


def is_channels_last(model: nn.Module) -> bool:
    """True when the model's first 4-D parameter (a conv weight) is stored channels_last."""
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False
