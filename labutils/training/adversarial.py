"""Adversarial training modes of :func:`labutils.training.fit` and the catastrophic-overfitting check.

Selected by ``TrainConfig(mode=...)``; budgets are on the ``[0, 1]`` pixel scale, Linf unless
``attack_norm="l2"`` (modes ``"fgsm"`` and ``"pgd"``: steps along ``g / ||g||_2``, the L2 ball).  Each mode
makes its training examples on the fly, with the model in training mode (BatchNorm uses the
batch's statistics, as in the published implementations), and counts the images it sends
forward and backward (an attack's backward pass, which computes only the input gradient, counts
as one backward pass):

======================  ==========================================================  ====================
mode                    each batch                                                  passes per image
======================  ==========================================================  ====================
``"fgsm"``              a fraction ``adv_fraction`` of the images replaced by FGSM  1 + adv_fraction
                        examples ``clip(x + eps sign(g))`` (the reference lab)
``"fast_fgsm"``         Wong et al. (2020): ``delta ~ U(-eps, eps)``, one step of   2
                        ``alpha`` (1.25 eps), projected to the ball; train on it
``"free"``              Shafahi et al. (2019): replayed ``replays`` (m) times; one  m per data pass,
                        backward pass gives the weights' gradient and the update    epochs / m passes
                        ``delta <- proj(delta + eps sign(g_x))``, kept across      (= standard)
                        batches
``"pgd"``               Madry et al. (2018): ``attack_steps`` (k) PGD steps of      k + 1
                        ``alpha`` (eps / 4) from a random start
======================  ==========================================================  ====================

These are training-time attacks, written for speed and for training mode; the evaluation attacks
(eval mode, checked inputs, restarts, torchattacks-equal) are :mod:`labutils.attacks`.

Catastrophic overfitting (Wong et al. 2020): a single-step method can suddenly stop being robust
to multi-step attacks while its accuracy against FGSM rises.  With ``overfit_check > 0`` the
adversarial modes hold that many training images out and, after every epoch,
:func:`robust_accuracy_check` records FGSM and PGD-10 accuracy on them;
:func:`detect_catastrophic_overfitting` reads the history (a collapse of PGD accuracy, or FGSM accuracy
far above PGD accuracy).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import autocast, channels_last, frozen_eval
from .steps import Step

__all__ = ["steepest_ascent", "FGSMAugmentedStep", "FastFGSMStep", "FreeStep", "PGDStep", "ADVERSARIAL_STEPS", "robust_accuracy_check",
           "detect_catastrophic_overfitting", "CHECK_PGD_STEPS"]

#: PGD steps of the per-epoch robustness check (step size eps / 4, one random start).
CHECK_PGD_STEPS = 10


def _per_image_l2(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image of ``t``, shaped ``(N, 1, ..., 1)`` to broadcast against it."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def steepest_ascent(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit step that increases a linearised loss most: ``sign(g)`` (Linf) or ``g / ||g||_2`` per image (L2)."""
    if norm == "linf":
        return g.sign()
    return g / (_per_image_l2(g) + 1e-10)


class _AttackingStep(Step):
    """A step that first perturbs the batch: ``input_grad`` gives the cross-entropy's gradient at ``z``."""

    def input_grad(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = z.detach().requires_grad_(True)
        loss = F.cross_entropy(self.logits(z), y)
        (g,) = torch.autograd.grad(loss, z)
        self.passes.add(z.shape[0])
        return g

    def random_delta(self, x: torch.Tensor) -> torch.Tensor:
        """Uniform in the eps-ball, from the global generator (its state is in the resumable checkpoint).

        L2: a Gaussian direction and radius ``eps * U^(1/d)`` (d = pixels per image), uniform in the ball."""
        eps = self.cfg.eps
        if self.cfg.attack_norm == "linf":
            return torch.rand(x.shape, device=x.device, dtype=x.dtype).mul_(2 * eps).sub_(eps)
        direction = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        u = torch.rand((x.shape[0], *([1] * (x.ndim - 1))), device=x.device, dtype=x.dtype)
        return direction / (_per_image_l2(direction) + 1e-12) * (u.pow(1.0 / x[0].numel()) * eps)

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` projected onto the eps-ball (Linf: clipped; L2: rescaled) and so that ``x + delta``
        stays in [0, 1]."""
        eps = self.cfg.eps
        if self.cfg.attack_norm == "linf":
            delta = delta.clamp(-eps, eps)
        else:
            delta = delta * torch.clamp(eps / (_per_image_l2(delta) + 1e-12), max=1.0)
        return (x + delta).clamp_(0, 1) - x


class FGSMAugmentedStep(_AttackingStep):
    """FGSM-augmented batches: the first ``round(adv_fraction * B)`` images (the batch is shuffled)
    become ``clip(x + eps * sign(grad_x CE), 0, 1)``, the rest stay clean.  With ``attack_norm="l2"``
    the step is ``eps * g / ||g||_2`` (the fast gradient method, FGM)."""

    def __call__(self, x, y):
        k = max(1, round(self.cfg.adv_fraction * x.shape[0]))
        g = self.input_grad(x[:k], y[:k])
        with torch.no_grad():
            x_adv = (x[:k] + self.cfg.eps * steepest_ascent(g, self.cfg.attack_norm)).clamp_(0, 1)
            x = torch.cat([x_adv, x[k:]]) if k < x.shape[0] else x_adv
        out, loss = self.update(channels_last(x), y)
        return self.summary(out, loss, y)


class FastFGSMStep(_AttackingStep):
    """Fast FGSM (Wong et al. 2020): random start, one signed step of ``alpha``, projection; train on it."""

    def __call__(self, x, y):
        delta = self.random_delta(x) if self.cfg.random_start else torch.zeros_like(x)
        delta = self.project(x, delta)
        g = self.input_grad(x + delta, y)
        with torch.no_grad():
            x_adv = x + self.project(x, delta + self.cfg.step_size() * g.sign())
        out, loss = self.update(x_adv, y)
        return self.summary(out, loss, y)


class PGDStep(_AttackingStep):
    """PGD adversarial training (Madry et al. 2018): ``attack_steps`` steps of ``alpha`` (signed, or
    along ``g / ||g||_2`` with ``attack_norm="l2"``) from a random start, projected after each."""

    def __call__(self, x, y):
        alpha, norm = self.cfg.step_size(), self.cfg.attack_norm
        delta = self.project(x, self.random_delta(x))
        for _ in range(self.cfg.attack_steps):
            g = self.input_grad(x + delta, y)
            with torch.no_grad():
                delta = self.project(x, delta + alpha * steepest_ascent(g, norm))
        out, loss = self.update(x + delta, y)
        return self.summary(out, loss, y)


class FreeStep(Step):
    """Free adversarial training (Shafahi et al. 2019): ``replays`` optimiser steps per batch; each
    backward pass also updates the perturbation, which carries over to the next batch.

    The perturbation's update is the sign of the loss's gradient with respect to ``delta`` through
    the clip ``clamp(x + delta, 0, 1)``, as in the authors' code: a pixel held at 0 or 1 by the clip
    has gradient 0 and keeps its ``delta``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delta: torch.Tensor | None = None

    def __call__(self, x, y):
        eps, alpha = self.cfg.eps, self.cfg.step_size()
        if self.delta is None or self.delta.shape[1:] != x.shape[1:] or self.delta.shape[0] < x.shape[0]:
            self.delta = torch.zeros_like(x)
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        n = 0
        for _ in range(self.cfg.replays):
            delta = self.delta[: x.shape[0]].detach().clone().requires_grad_(True)
            out, loss = self.update(channels_last((x + delta).clamp(0, 1)), y)
            with torch.no_grad():
                self.delta[: x.shape[0]] = (delta + alpha * delta.grad.sign()).clamp_(-eps, eps)
            s, c, k = self.summary(out, loss, y)
            loss_sum, correct, n = loss_sum + s, correct + c, n + k
        return loss_sum, correct, n

    def state_dict(self) -> dict:
        return {"delta": None if self.delta is None else self.delta.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        delta = state.get("delta")
        self.delta = None if delta is None else delta.to(self.device)


ADVERSARIAL_STEPS: dict[str, type[Step]] = {
    "fgsm": FGSMAugmentedStep, "fast_fgsm": FastFGSMStep, "free": FreeStep, "pgd": PGDStep,
}


def robust_accuracy_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                          amp: torch.dtype | None = None, steps: int = CHECK_PGD_STEPS, seed: int = 0,
                          norm: str = "linf") -> dict:
    """Accuracy on ``(x, y)`` clean, under FGSM and under PGD (``steps`` steps of eps / 4, random start).

    ``x``: float images ``(N, C, H, W)`` in [0, 1] on the model's device; ``eps`` on that scale, Linf or,
    with ``norm="l2"``, an L2 radius (then FGSM is FGM, one step of ``eps`` along ``g / ||g||_2``, and
    PGD steps along the normalised gradient and projects onto the L2 ball).
    The model runs in eval mode with frozen weights (modes restored); the random start is drawn from
    a generator seeded with ``seed``, so every epoch is checked against the same start.

    Returns:
        ``{"check_clean_acc", "check_fgsm_acc", "check_pgd_acc"}``, fractions in [0, 1].
    """
    gen = torch.Generator(device=x.device).manual_seed(seed)

    def logits(z):
        with autocast(x.device, amp):
            return model(z).float()

    def grad(z):
        z = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(logits(z), y), z)
        return g

    def accuracy(z):
        with torch.no_grad():
            return float((logits(z).argmax(1) == y).float().mean())

    with frozen_eval(model), torch.enable_grad():
        clean = accuracy(x)
        x_fgsm = (x + eps * steepest_ascent(grad(x), norm)).clamp(0, 1)
        fgsm_acc = accuracy(x_fgsm)
        if norm == "linf":
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype).mul_(2 * eps).sub_(eps)
        else:
            noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            u = torch.rand((x.shape[0], *([1] * (x.ndim - 1))), generator=gen, device=x.device, dtype=x.dtype)
            noise = noise / (_per_image_l2(noise) + 1e-12) * (u.pow(1.0 / x[0].numel()) * eps)
        z = (x + noise).clamp(0, 1)
        for _ in range(steps):
            step = z + eps / 4 * steepest_ascent(grad(z), norm) - x
            if norm == "linf":
                step = step.clamp(-eps, eps)
            else:
                step = step * torch.clamp(eps / (_per_image_l2(step) + 1e-12), max=1.0)
            z = (x + step).clamp(0, 1)
        pgd_acc = accuracy(z)
    return {"check_clean_acc": clean, "check_fgsm_acc": fgsm_acc, "check_pgd_acc": pgd_acc}


def detect_catastrophic_overfitting(history: list[dict], drop: float = 0.1, gap: float = 0.25) -> dict | None:
    """The first epoch that shows catastrophic overfitting (Wong et al. 2020) on the check set, by either sign:

    * ``"collapse"``: PGD accuracy fell by more than ``drop`` (absolute: 0.1 = 10 points) below its best
      earlier value while FGSM accuracy did not fall below its value at that best epoch;
    * ``"gap"``: FGSM accuracy exceeds PGD accuracy by more than ``gap``: the model has learnt to defeat
      the single step it is trained on, not the threat (a model that overfits from the first epoch
      never has a PGD accuracy to fall from).  A sound single-step model is within a few points of PGD.

    ``history``: :func:`~labutils.training.fit`'s per-epoch records (``check_pgd_acc`` and
    ``check_fgsm_acc`` from :func:`robust_accuracy_check`); records without them are skipped.

    Returns:
        None, or ``{"epoch", "reason", "pgd_acc", "fgsm_acc", "best_epoch", "best_pgd_acc", "fgsm_acc_at_best"}``
        (``best_*``: the epoch with the highest PGD accuracy before it; for a first-epoch gap, that epoch).
    """
    for name, value in (("drop", drop), ("gap", gap)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1) (an absolute difference in accuracy), got {value}.")
    checked = [r for r in history if "check_pgd_acc" in r and "check_fgsm_acc" in r]
    best = None
    for r in checked:
        collapse = best is not None and r["check_pgd_acc"] < best["check_pgd_acc"] - drop \
            and r["check_fgsm_acc"] >= best["check_fgsm_acc"]
        if collapse or r["check_fgsm_acc"] - r["check_pgd_acc"] > gap:
            ref = best if best is not None else r
            return {"epoch": r["epoch"], "reason": "collapse" if collapse else "gap", "pgd_acc": r["check_pgd_acc"],
                    "fgsm_acc": r["check_fgsm_acc"], "best_epoch": ref["epoch"], "best_pgd_acc": ref["check_pgd_acc"],
                    "fgsm_acc_at_best": ref["check_fgsm_acc"]}
        if best is None or r["check_pgd_acc"] > best["check_pgd_acc"]:
            best = r
    return None
