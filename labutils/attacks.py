"""Adversarial attacks on image classifiers: FGSM, PGD (Linf / L2) and helpers for robustness curves.

Conventions shared by every function here:

* images ``x`` are float tensors ``(N, C, H, W)`` with pixels in ``[0, 1]``
  (models normalise inside); labels ``y`` are integer class indices ``(N,)``;
* ``eps`` and ``alpha`` are on the same ``[0, 1]`` pixel scale (``8/255`` is
  eight grey levels); a float or a per-sample tensor ``(N,)``;
* the model must return logits ``(N, num_classes)``; the loss is cross-entropy
  (mean over the batch, computed in fp32, as torchattacks does), so that with
  ``precision="fp32"`` the results equal torchattacks' FGSM/PGD/PGDL2;
* the model runs in eval mode during the attack; the ``training`` flag of every
  submodule and the ``requires_grad`` flag of every parameter are restored
  afterwards, parameters receive no gradients and ``x`` is not modified;
* the adversarial images come back with the dtype, device and memory format of ``x``.

DeepFool, CW, Square and AutoAttack are not re-implemented: :func:`torchattacks_attack`
runs torchattacks' versions behind the same calling convention.
"""
from __future__ import annotations

import math
import operator
from contextlib import contextmanager
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import data as _data
from .train import autocast_dtype

__all__ = [
    "fgsm",
    "pgd",
    "adversarial_accuracy",
    "accuracy_vs_eps",
    "perturbation_norms",
    "torchattacks_attack",
    "attack_mode",
    "TORCHATTACKS_ATTACKS",
]

Number = float | int
EpsLike = Number | torch.Tensor

# The divisor guard torchattacks.PGDL2 adds to the gradient norm (its ``eps_for_division``).
L2_EPS_FOR_DIVISION = 1e-10
# Attacks the course only mentions; any other torchattacks class name works too.
TORCHATTACKS_ATTACKS = ("DeepFool", "CW", "Square", "AutoAttack")
_TORCHATTACKS_INSTALL = "pip install torchattacks==3.5.1 --no-deps"


# --------------------------------------------------------------------------- validation
def _canonical_norm(norm: str) -> str:
    key = str(norm).strip().lower()
    if key in ("linf", "inf", "l_inf", "l-inf"):
        return "linf"
    if key in ("l2", "2", "l_2"):
        return "l2"
    raise ValueError(f"Unknown norm {norm!r}: use 'linf' (max pixel change) or 'l2' (Euclidean distance).")


def _check_labels(y, n: int, name: str = "y") -> None:
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


def _check_eps(eps: EpsLike, n: int, norm: str, dim: int, name: str = "eps") -> torch.Tensor | float:
    if norm == "linf":
        what = (f"{name} is on the [0, 1] pixel scale of the images, e.g. 8/255 = {8 / 255:.4f} "
                "for eight grey levels (not 8).")
        return _per_sample(eps, n, name, low=0.0, high=1.0, what=what)
    max_l2 = math.sqrt(dim)
    what = (f"an L2 {name} is the Euclidean radius on the [0, 1] pixel scale; it must be >= 0 and at most "
            f"sqrt(C*H*W) = {max_l2:.4g}, the largest distance between two images (typical values 0.25-2).")
    return _per_sample(eps, n, name, low=0.0, high=max_l2, what=what)


def _check_alpha(alpha: EpsLike, n: int, norm: str, dim: int) -> torch.Tensor | float:
    if norm == "linf":
        what = "the step size alpha is on the [0, 1] pixel scale, e.g. 2/255."
        return _per_sample(alpha, n, "alpha", low=0.0, high=1.0, what=what)
    return _per_sample(alpha, n, "alpha", low=0.0, high=math.sqrt(dim),
                       what="the L2 step size alpha is on the [0, 1] pixel scale, e.g. eps/4.")


def _as_int(value, name: str, low: int) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.") from None
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def _check_logits(out: torch.Tensor, n: int, y: torch.Tensor | None, amp: torch.dtype | None) -> None:
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


def _model_dtype_device(model: nn.Module, x: torch.Tensor) -> tuple[torch.dtype, torch.device]:
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype, t.device
    for t in model.buffers():
        if t.is_floating_point():
            return t.dtype, t.device
    return x.dtype, x.device


def _is_channels_last(model: nn.Module) -> bool:
    """True when the model's first 4-D parameter (a conv weight) is stored channels_last."""
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


# --------------------------------------------------------------------------- model state
@contextmanager
def attack_mode(model: nn.Module):
    """Put ``model`` in eval mode with frozen parameters; restore both exactly on exit.

    Saves the ``training`` flag of every submodule and ``requires_grad`` of every
    parameter, then calls ``model.eval()`` and ``requires_grad_(False)``: the
    attack's backward pass then computes input gradients only, and nothing can
    accumulate in ``param.grad``.  Restored even when the attack raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


class _Attacker:
    """Everything an attack needs, checked once: model closure, tensors on the model's device, eps/alpha views."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        _data.check_images(x, name="x")
        _check_labels(y, x.shape[0])
        self.model = model
        self.n = x.shape[0]
        self.dim = int(x[0].numel()) if self.n else int(math.prod(x.shape[1:]))
        self.model_dtype, self.device = _model_dtype_device(model, x)
        self.amp = autocast_dtype(self.device, precision)  # validates precision
        # channels_last is what oneDNN (CPU) and cuDNN prefer.  In fp32 the images follow the model's
        # memory format, so that the convolutions (and results) are those torchattacks gets.
        self.memory_format = (torch.channels_last if self.amp is not None or _is_channels_last(model)
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
            _check_logits(out, z.shape[0], self.y if y is None else y, self.amp)
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


# --------------------------------------------------------------------------- FGSM
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
    atk = _Attacker(model, x, y, precision)
    eps = atk.view(_check_eps(eps, atk.n, "linf", atk.dim))
    if atk.n == 0:
        return x.detach().clone()
    with attack_mode(model):
        g, _ = atk.grad(atk.x, atk.y, targeted)
        with torch.no_grad():
            x_adv = (atk.x + eps * g.sign_()).clamp_(0, 1)
    return atk.finish(x_adv, x)


# --------------------------------------------------------------------------- PGD
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


def _pgd_once(atk: _Attacker, x: torch.Tensor, y: torch.Tensor, eps, alpha, steps: int, norm: str,
              random_start: bool, targeted: bool, generator) -> torch.Tensor:
    """One PGD run from ``x`` (a subset of the batch); ``eps``/``alpha`` floats or ``(n,1,1,1)`` tensors.

    The update is written with the same floating-point operations as torchattacks.PGD / PGDL2,
    so that fp32 results agree with them bit for bit (up to the convolution algorithm).
    """
    x_adv = _random_start(x, eps, norm, generator) if random_start else x
    per_sample_eps = isinstance(eps, torch.Tensor)
    n = x.shape[0]
    for _ in range(steps):
        g, _ = atk.grad(x_adv, y, targeted)
        with torch.no_grad():
            if norm == "linf":
                x_adv = x_adv + g.sign_().mul_(alpha)
                delta = torch.clamp(x_adv - x, min=-eps, max=eps)
            else:
                g_norm = torch.norm(g.reshape(n, -1), p=2, dim=1) + L2_EPS_FOR_DIVISION
                x_adv = x_adv + (g / g_norm.view(n, 1, 1, 1)).mul_(alpha)
                delta = x_adv - x
                # clamp_min only guards 0/0 (eps = 0 and a zero step); it never changes a real norm.
                d_norm = torch.norm(delta.reshape(n, -1), p=2, dim=1).clamp_min_(1e-30)
                factor = torch.minimum(eps.view(n) / d_norm if per_sample_eps else eps / d_norm,
                                       torch.ones_like(d_norm))
                delta = delta * factor.view(n, 1, 1, 1)
            x_adv = torch.clamp(x + delta, min=0, max=1)
    return x_adv


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
    norm = _canonical_norm(norm)
    atk = _Attacker(model, x, y, precision)
    eps = _check_eps(eps, atk.n, norm, atk.dim)
    alpha = _check_alpha(alpha, atk.n, norm, atk.dim)
    steps, restarts = _as_int(steps, "steps", 0), _as_int(restarts, "restarts", 1)
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True: without a random start every restart is the same.")
    if atk.n == 0:
        return x.detach().clone()
    eps_v, alpha_v = atk.view(eps), atk.view(alpha)
    with attack_mode(model):
        if restarts == 1:
            x_adv = _pgd_once(atk, atk.x, atk.y, eps_v, alpha_v, steps, norm, random_start, targeted, generator)
        else:
            x_adv = _pgd_restarts(atk, eps_v, alpha_v, steps, norm, targeted, restarts, generator)
    return atk.finish(x_adv, x)


def _pgd_restarts(atk: _Attacker, eps, alpha, steps, norm, targeted, restarts, generator) -> torch.Tensor:
    best = None
    for best in _iter_restarts(atk, eps, alpha, steps, norm, targeted, restarts, generator):
        pass
    return best


def _iter_restarts(atk: _Attacker, eps, alpha, steps, norm, targeted, restarts, generator):
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


# --------------------------------------------------------------------------- evaluation helpers
_ATTACKS: dict[str, Callable] = {"fgsm": fgsm, "pgd": pgd}


def _resolve_attack(attack) -> Callable:
    if callable(attack):
        return attack
    key = str(attack).strip().lower()
    if key not in _ATTACKS:
        raise ValueError(f"Unknown attack {attack!r}: use 'fgsm', 'pgd' or a callable "
                         "attack(model, x, y, **kwargs) -> x_adv.")
    return _ATTACKS[key]


def _float_batch(x: torch.Tensor) -> torch.Tensor:
    return _data.to_float(x) if x.dtype == torch.uint8 else x


def adversarial_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack="fgsm", *,
                         batch_size: int = 256, **attack_kwargs) -> float:
    """Accuracy in ``[0, 1]`` of ``model`` on adversarial versions of ``(x, y)``.

    Args:
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8 (converted per batch).
        y: int labels ``(N,)``; accuracy counts predictions equal to ``y``.
        attack: ``"fgsm"``, ``"pgd"`` or a callable ``attack(model, x, y, **attack_kwargs) -> x_adv``.
        batch_size: images attacked at once.
        attack_kwargs: passed to the attack (``eps``, ``alpha``, ``steps``, ``norm``, ``precision``...).
            A per-sample ``eps``/``alpha`` tensor ``(N,)`` is split along with the batches.

    The model is evaluated in eval mode (fp32) on the adversarial images; its mode is restored.
    """
    return _accuracy_with_bar(model, x, y, _resolve_attack(attack), batch_size, None, **attack_kwargs)


@torch.no_grad()
def _count_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    dtype, device = _model_dtype_device(model, x)
    with attack_mode(model):
        out = model(x.to(device, dtype).contiguous(memory_format=torch.channels_last))
    return int((out.argmax(1).cpu() == y.cpu()).sum())


def accuracy_vs_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                    attack="fgsm", batch_size: int = 256, progress: bool = True, **kwargs) -> list[float]:
    """Adversarial accuracy for each budget in ``eps_values``: the points of a robustness curve.

    Args:
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8.
        y: int labels ``(N,)``.
        eps_values: budgets on the ``[0, 1]`` pixel scale (e.g. ``[0, 2/255, 8/255]``); ``0`` gives
            the clean accuracy (no attack is run).
        attack: ``"fgsm"``, ``"pgd"`` or a callable ``attack(model, x, y, eps=..., **kwargs)``.
        kwargs: passed to the attack.  For ``"pgd"``: ``steps`` defaults to 10 and ``alpha`` to
            ``2.5 * eps / steps`` (Madry et al.'s rule) when not given.
        progress: show a tqdm progress bar over budgets x batches.

    Returns:
        One accuracy in ``[0, 1]`` per entry of ``eps_values``.
    """
    from tqdm.auto import tqdm

    fn = _resolve_attack(attack)
    eps_values = [float(e) for e in eps_values]
    n = x.shape[0]
    n_batches = -(-n // batch_size) if batch_size >= 1 else 0
    bar = tqdm(total=len(eps_values) * n_batches, desc=f"{getattr(fn, '__name__', 'attack')} accuracy vs eps",
               disable=not progress, leave=False, mininterval=0.5)
    out = []
    try:
        for eps in eps_values:
            kw = dict(kwargs)
            if fn is pgd:
                kw.setdefault("steps", 10)
                if kw.get("alpha") is None:
                    kw["alpha"] = 2.5 * eps / max(1, kw["steps"])
            if eps == 0:
                attack_fn = _no_attack
            else:
                attack_fn = fn
            acc = _accuracy_with_bar(model, x, y, attack_fn, batch_size, bar, eps=eps, **kw)
            out.append(acc)
            bar.set_postfix(eps=f"{eps:.4g}", acc=f"{acc:.3f}")
    finally:
        bar.close()
    return out


def _no_attack(model, x, y, **kwargs):
    return x


def _accuracy_with_bar(model, x, y, fn, batch_size, bar, **kw) -> float:
    """Accuracy of ``model`` on ``fn(model, x_batch, y_batch, **kw)`` batch by batch; ``bar`` (tqdm or None) ticks per batch.

    A per-sample ``eps``/``alpha`` tensor ``(N,)`` in ``kw`` is split along with the batches.
    """
    n = x.shape[0]
    _check_labels(y, n)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    correct = 0
    for i in range(0, n, batch_size):
        sl = slice(i, min(n, i + batch_size))
        kw_b = {k: (v[sl] if isinstance(v, torch.Tensor) and v.ndim == 1 and v.shape[0] == n and k in ("eps", "alpha")
                    else v) for k, v in kw.items()}
        xb, yb = _float_batch(x[sl]), y[sl]
        _data.check_images(xb, name="x")
        correct += _count_correct(model, fn(model, xb, yb, **kw_b), yb)
        if bar is not None:
            bar.update(1)
    return correct / n if n else float("nan")


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    """Per-image size of ``x_adv - x``: a float tensor ``(N,)`` on the pixel scale of the images.

    ``norm``: ``"linf"`` (largest absolute pixel change), ``"l2"`` (Euclidean) or ``"l1"``.
    """
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}.")
    key = str(norm).strip().lower()
    d = (x_adv.to(x.device).double() - x.double()).flatten(1)
    if key == "l1":
        r = d.abs().sum(1)
    elif _canonical_norm(key) == "linf":
        r = d.abs().amax(1) if d.shape[1] else d.new_zeros(d.shape[0])
    else:
        r = d.norm(p=2, dim=1)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return r.to(dtype)


# --------------------------------------------------------------------------- torchattacks
def _import_torchattacks():
    try:
        import torchattacks
    except ImportError as exc:
        raise ImportError(f"torchattacks is needed for this attack and is not installed: {_TORCHATTACKS_INSTALL} "
                          "(--no-deps keeps your torch version).") from exc
    return torchattacks


def torchattacks_attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                        targeted: bool = False, **kwargs) -> torch.Tensor:
    """Run torchattacks' attack ``name`` (e.g. ``"DeepFool"``, ``"CW"``, ``"Square"``, ``"AutoAttack"``).

    Same calling convention as :func:`fgsm`/:func:`pgd`: ``x`` float ``(N, C, H, W)`` in ``[0, 1]``
    (not modified), ``y`` int labels ``(N,)`` (targets when ``targeted=True``), the model returns
    logits, runs in eval mode and gets its modes and ``requires_grad`` flags back, parameters
    receive no gradients; the result has the dtype and device of ``x``.

    Args:
        name: torchattacks class name, case-insensitive.
        kwargs: the attack's constructor arguments, e.g. ``eps=8/255`` (Square, AutoAttack: on the
            ``[0, 1]`` pixel scale), ``steps=50`` (DeepFool, CW), ``c=1`` (CW), ``n_queries``, ``seed``.

    Raises:
        ImportError: torchattacks is not installed (``pip install torchattacks==3.5.1 --no-deps``).
    """
    ta = _import_torchattacks()
    classes = {k.lower(): getattr(ta, k) for k in dir(ta)
               if isinstance(getattr(ta, k), type) and issubclass(getattr(ta, k), ta.attack.Attack)}
    key = str(name).strip().lower()
    if key not in classes or key in ("attack", "multiattack", "lgv", "vanila"):
        known = ", ".join(TORCHATTACKS_ATTACKS)
        raise ValueError(f"Unknown torchattacks attack {name!r}: use one of {known} (or another torchattacks class).")
    atk_in = _Attacker(model, x, y, "fp32")
    if "eps" in kwargs:
        norm = _canonical_norm(kwargs.get("norm", "Linf"))
        _check_eps(kwargs["eps"], atk_in.n, norm, atk_in.dim)
    if atk_in.n == 0:
        return x.detach().clone()
    with attack_mode(model):
        with torch.no_grad():
            atk_in.logits(atk_in.x)  # checks that the model returns logits
        attack = classes[key](model, **kwargs)
        if targeted:
            attack.set_mode_targeted_by_label(quiet=True)
        x_model = atk_in.x.to(atk_in.model_dtype).contiguous()
        x_adv = attack(x_model, atk_in.y)
    return atk_in.finish(x_adv, x)


# --------------------------------------------------------------------------- targeted attacks (notebook 02)
__all__ += ["correct_per_class", "targeted_success_matrix"]


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
    from .train import predict_logits

    n = x.shape[0]
    _check_labels(y, n)
    n_per_class = _as_int(n_per_class, "n_per_class", 0)
    k = int(y.max()) + 1 if num_classes is None and n else int(num_classes or 0)
    with attack_mode(model):
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
            to 10 and ``alpha`` to ``2.5 * eps / steps`` as in :func:`accuracy_vs_eps`.

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

    fn = _resolve_attack(attack)
    n = x.shape[0]
    _check_labels(y, n)
    y = y.cpu()
    if targets is None:
        k = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if n else 0)
        if k < 2:
            raise ValueError("targeted attacks need at least 2 classes; pass num_classes.")
        index = torch.arange(n).repeat_interleave(k - 1)
        offsets = torch.arange(1, k).repeat(n)
        tgt = (y[index] + offsets) % k  # every class but the label
    else:
        _check_labels(targets, n, "targets")
        tgt, index = targets.cpu().to(torch.int64), torch.arange(n)
        k = int(num_classes) if num_classes is not None else (int(torch.cat([y, tgt]).max()) + 1 if n else 0)
        if bool((tgt == y).any()):
            raise ValueError("targets must differ from the labels y (a targeted attack aims for another class).")
    if n and (int(y.max()) >= k or int(tgt.max()) >= k or int(y.min()) < 0 or int(tgt.min()) < 0):
        raise ValueError(f"labels and targets must be class indices in 0..{k - 1}.")
    src = y[index]
    kw = dict(attack_kwargs)
    if fn is pgd:
        kw.setdefault("steps", 10)
        if kw.get("alpha") is None:
            kw["alpha"] = 2.5 * float(kw["eps"]) / max(1, kw["steps"])
    m = index.numel()
    preds = []
    for i in tqdm(range(0, m, batch_size), desc=f"targeted {getattr(fn, '__name__', 'attack')}",
                  disable=not progress, leave=False, mininterval=0.5):
        sl = slice(i, min(m, i + batch_size))
        xb = _float_batch(x[index[sl]])
        x_adv = fn(model, xb, tgt[sl].to(xb.device), targeted=True, **kw)
        dtype, device = _model_dtype_device(model, x_adv)
        with torch.no_grad(), attack_mode(model):
            out = model(x_adv.to(device, dtype).contiguous(memory_format=torch.channels_last))
        preds.append(out.argmax(1).cpu())
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


# --------------------------------------------------------------------------- PGD grids and gradient-masking checks
def pgd_accuracy_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                      steps_values: Sequence[int], *, alpha_factors: Sequence[float] = (2.5,),
                      restarts_values: Sequence[int] = (1,), norm: str = "linf", random_start: bool = False,
                      seed: int = 0, batch_size: int = 256, precision: str = "fp32",
                      progress: bool = True) -> list[dict]:
    """PGD accuracy for every combination of budget, number of steps, step size and restarts.

    The step size of each run is ``alpha = alpha_factor * eps / steps`` (Madry et al.'s rule is
    ``alpha_factor = 2.5``: the steps together can cross the ball 2.5 times).

    Comparisons between runs are fair: without random start every run is deterministic; with it,
    every run of every configuration draws its starts from a generator reseeded with ``seed + b``
    for batch ``b``, so ``restarts=r`` begins with exactly the starts of ``restarts=1`` and (since
    :func:`pgd` keeps the images already fooled) is never weaker than it.  All the restart counts
    of one (eps, steps, alpha) come from a single run of the largest: the images after ``r``
    restarts are exactly those of ``pgd(..., restarts=r)``.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8; y: int labels ``(N,)``.
        eps_values: budgets on the ``[0, 1]`` pixel scale (Linf, e.g. ``8/255``) or L2 radii.
        steps_values: numbers of gradient steps (>= 1).
        alpha_factors: step sizes as multiples of ``eps / steps``.
        restarts_values: numbers of random restarts (> 1 needs ``random_start=True``).
        norm: ``"linf"`` or ``"l2"``.
        random_start, precision: as in :func:`pgd`.
        seed: seed of the random starts.
        batch_size: images attacked at once.
        progress: show a tqdm progress bar over configurations x batches.

    Returns:
        One dict per configuration, in the order eps, steps, alpha_factor, restarts (the last
        varying fastest), with keys ``eps``, ``steps``, ``alpha_factor``, ``alpha``, ``restarts``,
        ``accuracy`` (fraction in ``[0, 1]``) and ``n`` (images).
    """
    from itertools import product

    from tqdm.auto import tqdm

    norm = _canonical_norm(norm)
    steps_values = [_as_int(s, "steps", 1) for s in steps_values]
    restarts_values = [_as_int(r, "restarts", 1) for r in restarts_values]
    if max(restarts_values, default=1) > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True: without a random start every restart is the same.")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    n = x.shape[0]
    _check_labels(y, n)
    _, device = _model_dtype_device(model, x)
    configs = list(product([float(e) for e in eps_values], steps_values, [float(a) for a in alpha_factors],
                           restarts_values))
    n_batches = -(-n // batch_size)
    bar = tqdm(total=len(configs) * n_batches, desc="PGD grid", disable=not progress, leave=False, mininterval=0.5)
    records = []
    try:
        for eps, steps, factor in dict.fromkeys(c[:3] for c in configs):
            # one run of the most restarts: the result after r restarts is that of restarts=r
            alpha = factor * eps / steps
            correct = dict.fromkeys(restarts_values, 0)
            for b, i in enumerate(range(0, n, batch_size)):
                xb, yb = _float_batch(x[i: i + batch_size]), y[i: i + batch_size]
                gen = torch.Generator(device=device).manual_seed(seed + b) if random_start else None
                for r, x_adv in _pgd_by_restarts(model, xb, yb, eps, alpha, steps, norm, random_start,
                                                 max(restarts_values), precision, gen):
                    if r in correct:
                        correct[r] += _count_correct(model, x_adv, yb)
                bar.update(len(correct))
            for restarts in restarts_values:
                acc = correct[restarts] / n if n else float("nan")
                records.append({"eps": eps, "steps": steps, "alpha_factor": factor, "alpha": alpha,
                                "restarts": restarts, "accuracy": acc, "n": n})
            bar.set_postfix(eps=f"{eps:.4g}", steps=steps, acc=f"{acc:.3f}")
    finally:
        bar.close()
    return records


def _pgd_by_restarts(model, x, y, eps, alpha, steps, norm, random_start, restarts, precision, generator):
    """Yield ``(r, x_adv)`` for r = 1..restarts: ``pgd(..., restarts=r)``'s result, from one run."""
    if restarts == 1:
        yield 1, pgd(model, x, y, eps, alpha, steps, norm=norm, random_start=random_start, precision=precision,
                     generator=generator)
        return
    atk = _Attacker(model, x, y, precision)
    eps_v, alpha_v = atk.view(_check_eps(eps, atk.n, norm, atk.dim)), atk.view(_check_alpha(alpha, atk.n, norm, atk.dim))
    with attack_mode(model):
        for r, best in enumerate(_iter_restarts(atk, eps_v, alpha_v, steps, norm, False, restarts, generator), 1):
            yield r, atk.finish(best, x)


def _non_increasing(values: Sequence[float], slack: float) -> tuple[bool, float]:
    """Whether ``values`` never rise by more than ``slack``; and the largest rise."""
    rises = [b - a for a, b in zip(values, values[1:])]
    worst = max(rises, default=0.0)
    return worst <= slack + 1e-12, worst


def gradient_masking_checks(eps_values: Sequence[float], pgd_acc: Sequence[float], n: int, *,
                            fgsm_acc: Sequence[float] | None = None, max_acc_at_largest_eps: float = 0.02,
                            steps_curves: dict | None = None, restarts_curves: dict | None = None,
                            slack_images: int = 1, restarts_slack_images: int = 0) -> list[dict]:
    """Sanity checks of a robustness evaluation against gradient masking (Athalye et al., 2018).

    An attack that relies on gradients underestimates a model's vulnerability when the gradients
    are uninformative; the symptoms checked here are:

    * the iterative attack is weaker than the single step (PGD accuracy > FGSM accuracy);
    * accuracy does not fall with the budget, or stays well above 0 at a huge budget;
    * more steps or more random restarts make the attack weaker.

    Args:
        eps_values: the budgets of the curves, increasing (Linf budgets or L2 radii).
        pgd_acc: accuracies (fractions) under PGD at each budget.
        n: number of images the accuracies were measured on (sets the slack of one image).
        fgsm_acc: accuracies under FGSM at the same budgets (None: no PGD-vs-FGSM check, e.g. for L2).
        max_acc_at_largest_eps: the PGD accuracy allowed at the largest budget.
        steps_curves: ``{label: accuracies ordered by increasing number of steps}`` (runs that
            differ only in the number of steps, e.g. without random start).
        restarts_curves: ``{label: accuracies ordered by increasing number of restarts}`` (runs
            sharing their random starts, as :func:`pgd_accuracy_grid` makes them).
        slack_images: images by which a comparison may go the "wrong" way (floating-point ties).
        restarts_slack_images: the same for restarts (0: they can only help).

    Returns:
        One dict per check: ``check`` (what is checked), ``passed`` (bool), ``detail`` (the numbers),
        and ``value`` and ``bound``: each check passes when ``value <= bound`` (fractions of images),
        so a notebook can assert them with :meth:`labutils.claims.Claims.at_most`.
    """
    eps_values, pgd_acc = list(map(float, eps_values)), list(map(float, pgd_acc))
    if len(eps_values) != len(pgd_acc) or not eps_values:
        raise ValueError(f"eps_values and pgd_acc must have the same non-zero length, got "
                         f"{len(eps_values)} and {len(pgd_acc)}.")
    if fgsm_acc is not None and len(fgsm_acc) != len(eps_values):
        raise ValueError(f"fgsm_acc must have one accuracy per budget ({len(eps_values)}), got {len(fgsm_acc)}.")
    if any(b < a for a, b in zip(eps_values, eps_values[1:])):
        raise ValueError("eps_values must be increasing.")
    if n < 1:
        raise ValueError(f"n must be the number of images (>= 1), got {n}.")
    slack = slack_images / n
    rows = []
    if fgsm_acc is not None:
        worst = max(p - float(f) for f, p in zip(fgsm_acc, pgd_acc))
        rows.append({"check": "PGD at least as strong as FGSM at every budget", "passed": worst <= slack + 1e-12,
                     "detail": f"largest PGD - FGSM accuracy: {worst:+.2%} (allowed {slack:+.2%})",
                     "value": worst, "bound": slack + 1e-12})
    ok, rise = _non_increasing(pgd_acc, slack)
    rows.append({"check": "PGD accuracy never rises with the budget", "passed": ok,
                 "detail": f"largest change to the next point: {rise:+.2%} (rise allowed: {slack:.2%})",
                 "value": rise, "bound": slack + 1e-12})
    rows.append({"check": f"PGD accuracy <= {max_acc_at_largest_eps:.0%} at the largest budget",
                 "passed": pgd_acc[-1] <= max_acc_at_largest_eps + 1e-12,
                 "detail": f"accuracy {pgd_acc[-1]:.2%} at eps {eps_values[-1]:.4g}",
                 "value": pgd_acc[-1], "bound": max_acc_at_largest_eps + 1e-12})
    for what, curves, allowed in (("steps", steps_curves, slack), ("restarts", restarts_curves,
                                                                    restarts_slack_images / n)):
        for label, accs in (curves or {}).items():
            ok, rise = _non_increasing([float(a) for a in accs], allowed)
            rows.append({"check": f"more {what} never weaker ({label})", "passed": ok,
                         "detail": f"largest change to the next point: {rise:+.2%} "
                                   f"(rise allowed: {allowed:.2%})",
                         "value": rise, "bound": allowed + 1e-12})
    return rows


__all__ += ["pgd_accuracy_grid", "gradient_masking_checks"]


@torch.no_grad()
def _correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dtype, device = _model_dtype_device(model, x)
    with attack_mode(model):
        out = model(x.to(device, dtype).contiguous(memory_format=torch.channels_last))
    return out.argmax(1).cpu() == y.cpu()


def correct_vs_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                   attack="fgsm", batch_size: int = 256, progress: bool = True, **kwargs) -> torch.Tensor:
    """Per image and budget: is the image still classified correctly under attack?

    Same arguments and defaults as :func:`accuracy_vs_eps` (``eps`` 0: no attack; for ``"pgd"``
    ``steps`` defaults to 10 and ``alpha`` to ``2.5 * eps / steps``), but returns a bool tensor
    ``(len(eps_values), N)`` on the CPU instead of accuracies: ``.float().mean(1)`` gives the
    accuracy curve.  Because the budgets are nested (an adversarial image at budget ``e`` is one at
    every larger budget), ``.int().cummin(0).values.bool()`` gives the per-image worst case over all
    budgets up to each one: the images that no attack up to that budget fooled.
    """
    from tqdm.auto import tqdm

    fn = _resolve_attack(attack)
    eps_values = [float(e) for e in eps_values]
    n = x.shape[0]
    _check_labels(y, n)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    bar = tqdm(total=len(eps_values) * -(-n // batch_size), desc=f"{getattr(fn, '__name__', 'attack')} per image",
               disable=not progress, leave=False, mininterval=0.5)
    out = torch.zeros((len(eps_values), n), dtype=torch.bool)
    try:
        for row, eps in enumerate(eps_values):
            kw = dict(kwargs)
            if fn is pgd:
                kw.setdefault("steps", 10)
                if kw.get("alpha") is None:
                    kw["alpha"] = 2.5 * eps / max(1, kw["steps"])
            for i in range(0, n, batch_size):
                xb, yb = _float_batch(x[i: i + batch_size]), y[i: i + batch_size]
                _data.check_images(xb, name="x")
                x_adv = xb if eps == 0 else fn(model, xb, yb, eps=eps, **kw)
                out[row, i: i + xb.shape[0]] = _correct_mask(model, x_adv, yb)
                bar.update(1)
            bar.set_postfix(eps=f"{eps:.4g}", acc=f"{float(out[row].float().mean()) if n else float('nan'):.3f}")
    finally:
        bar.close()
    return out


__all__ += ["correct_vs_eps"]
