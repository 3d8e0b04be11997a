"""Optimiser and learning-rate schedule of a :class:`~labutils.training.config.TrainConfig`."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["param_groups", "make_optimizer", "lr_at", "make_scheduler"]


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Trainable parameters in two groups: weights (matrices, kernels) and vectors (biases, BN shifts).

    Vectors get the learning rate times ``cfg.bias_lr_scale`` and the weight decay divided by it,
    so that their per-step decay ``lr * wd`` equals the weights'.  Frozen parameters are left out.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    vectors = [p for p in trainable if p.ndim <= 1]
    matrices = [p for p in trainable if p.ndim > 1]
    groups = [{"params": matrices, "lr": cfg.lr}]
    if vectors:
        groups.append({"params": vectors, "lr": cfg.lr * cfg.bias_lr_scale,
                       "weight_decay": cfg.weight_decay / cfg.bias_lr_scale})
    return groups


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Nesterov SGD (coupled weight decay) or AdamW (decoupled), over :func:`param_groups`."""
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate of the schedule at optimiser step ``step`` (0-based) of ``total``.

    ``"triangular"``: linear warm-up from 0 over the first ``warmup`` fraction of the steps, then
    linear decay to ``final_lr_fraction * lr`` at the end; ``"constant"``: ``lr`` throughout.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    t = step / max(1, total)
    if t < cfg.warmup:
        return cfg.lr * (t / cfg.warmup)
    frac = (t - cfg.warmup) / max(1e-12, 1 - cfg.warmup)
    return cfg.lr * (1 - frac * (1 - cfg.final_lr_fraction))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """A ``LambdaLR`` that sets every group's learning rate to its base times ``lr_at(step) / cfg.lr``.

    Step it once after every optimiser step; its ``state_dict`` (the step count) goes into the
    resumable checkpoint.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, total_steps, cfg) / cfg.lr)
