"""What determines a training run (:class:`TrainConfig`) and what it measured (:class:`TrainResult`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["TrainConfig", "TrainResult", "BatchHook"]

#: ``batch_hook(model, x, y) -> (x, y)``: replaces a training batch before the loss (e.g. adversarial training).
BatchHook = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the checkpoint cache hashes it).

    Attributes:
        epochs: passes over the training set.
        batch_size: images per optimiser step.
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adam"``.
        lr: peak learning rate (per mean loss).
        momentum: SGD momentum.
        weight_decay: L2 penalty (SGD: coupled; Adam: decoupled, AdamW).
        bias_lr_scale: learning-rate multiplier for biases and other 1-D parameters.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        schedule: ``"triangular"`` (linear warm-up for ``warmup`` of the steps,
            then linear decay to ``final_lr_fraction``) or ``"constant"``.
        warmup: fraction of steps spent warming up.
        final_lr_fraction: learning rate at the end, as a fraction of ``lr``.
        augment: random crop (``pad`` pixels) and horizontal flip.
        pad: padding of the random crop, in pixels.
        objective: ``"classify"`` (cross-entropy on labels) or ``"reconstruct"`` (MSE to the input).
        train_size: use only the first ``train_size`` images of a fixed shuffle (None: all).
        early_size: side in pixels of the (bilinearly downscaled, antialiased) training images of the
            first ``early_epochs`` epochs: progressive resizing, cheaper early epochs
            (FLOPs scale with the pixel count: 24 px costs 0.56 of 32 px); None: full size throughout.
        early_epochs: epochs at ``early_size``.
        precision: ``"auto"`` (bf16 autocast where the hardware supports it natively), ``"bf16"`` or ``"fp32"``.
        seed: seeds the initial weights (:func:`~labutils.training.get_or_train` seeds the global
            generators with it before building the model), the shuffling and augmentation, the
            whitening sample and, through the global generators, dropout during :func:`fit`.
    """

    epochs: int = 10
    batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_scale: float = 1.0
    label_smoothing: float = 0.0
    schedule: str = "triangular"
    warmup: float = 0.2
    final_lr_fraction: float = 0.0
    augment: bool = True
    pad: int = 4
    objective: str = "classify"
    train_size: int | None = None
    early_size: int | None = None
    early_epochs: int = 0
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.optimizer in ("sgd", "adam"), "optimizer must be 'sgd' or 'adam'"),
            (self.lr > 0, "lr must be > 0"),
            (self.bias_lr_scale > 0, "bias_lr_scale must be > 0 (a learning-rate multiplier; it also divides "
                                     "the biases' weight decay)"),
            (self.momentum >= 0 and self.weight_decay >= 0, "momentum and weight_decay must be >= 0"),
            (0 <= self.final_lr_fraction <= 1, "final_lr_fraction must be in [0, 1]"),
            (self.pad >= 0, "pad must be >= 0"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be an integer >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.schedule in ("triangular", "constant"), "schedule must be 'triangular' or 'constant'"),
            (0 <= self.warmup < 1, "warmup must be in [0, 1)"),
            (self.objective in ("classify", "reconstruct"), "objective must be 'classify' or 'reconstruct'"),
            (self.precision in ("auto", "bf16", "fp32"), "precision must be 'auto', 'bf16' or 'fp32'"),
            (self.train_size is None or self.train_size >= 1, "train_size must be None or >= 1"),
            (self.early_size is None or self.early_size >= 8, "early_size must be None or >= 8 pixels"),
            (0 <= self.early_epochs < self.epochs or self.early_size is None,
             "early_epochs must be in [0, epochs) (the last epoch trains at full size)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {msg}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`fit` measured: per-epoch history and wall time."""

    history: list[dict]
    train_seconds: float
    precision: str
    resumed_from_epoch: int = 0
