"""Training and evaluation loops.

:func:`fit` trains a classifier (cross-entropy) or an autoencoder (pixel MSE)
from an in-memory uint8 dataset with the tensor batch iterator of
:mod:`labutils.data`, an SGD or Adam optimiser and a per-step learning-rate
schedule; it uses bf16 autocast on CPUs that support bf16 natively (and on
CUDA), channels_last memory, and saves a resumable checkpoint after every
epoch when given a path.  :func:`evaluate` and :func:`predict_logits` run a
model in eval mode with optional flip test-time augmentation.

Adversarial training plugs in through ``fit(..., batch_hook=...)``: a callable
``batch_hook(model, x, y) -> (x, y)`` that may replace each training batch
(for example by its adversarial version) before the optimiser step.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as _data
from . import settings

__all__ = [
    "TrainConfig", "TrainResult", "fit", "evaluate", "predict_logits", "seed_everything",
    "cpu_supports_bf16", "autocast_dtype", "default_device", "MALLOC_ENV", "malloc_tuned",
]

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
        seed: seeds weights, shuffling and augmentation.
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


# --------------------------------------------------------------------------- environment
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so that a CPU run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (x86 AVX512-BF16/AMX, or Arm BF16)."""
    flags = ""
    if platform.system() == "Linux":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    elif platform.system() == "Darwin":
        import subprocess

        try:
            flags = subprocess.run(["sysctl", "-a"], capture_output=True, text=True, timeout=5).stdout
        except Exception:
            return False
        return "hw.optional.arm.FEAT_BF16: 1" in flags
    words = set(flags.split())
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


# glibc malloc settings for CPU training and attacks.  By default glibc serves every block above
# 32 MiB (a batch of activations) with a fresh mmap and unmaps it on free, so each training or
# attack step page-faults its activations in again: a third or more of a FastNet step on a 2-core
# CPU.  These keep freed memory in the heap for reuse instead (peak RSS about 15 % higher).  glibc
# reads them when a process starts: the Makefile exports them and the runner passes them to its
# notebook kernels.  Other C libraries (macOS, Windows) ignore them.  ``make bench`` measures them.
MALLOC_ENV = {
    "MALLOC_MMAP_MAX_": "0",  # never mmap: big blocks come from the heap and go back to it
    "MALLOC_TRIM_THRESHOLD_": str(64 << 30),  # do not return the top of the heap to the OS
    "MALLOC_TOP_PAD_": str(256 << 20),  # grow the heap in 256 MiB steps
}


def malloc_tuned(environ=None) -> bool:
    """True when ``environ`` (default: this process's) carries every setting of :data:`MALLOC_ENV`."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in MALLOC_ENV.items())


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype to train/attack with on ``device``: ``torch.bfloat16`` or None (fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}.")
    if settings.precision() is not None:  # $LAB_PRECISION overrides "auto"
        return autocast_dtype(device, settings.precision())
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


# --------------------------------------------------------------------------- training
def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    vectors = [p for p in trainable if p.ndim <= 1]
    matrices = [p for p in trainable if p.ndim > 1]
    groups = [{"params": matrices, "lr_scale": 1.0}]
    if vectors:
        # Biases and BatchNorm shifts: larger learning rate, weight decay scaled so
        # that the per-step decay lr * wd is the same as for the weights.
        groups.append({"params": vectors, "lr_scale": cfg.bias_lr_scale,
                       "weight_decay": cfg.weight_decay / cfg.bias_lr_scale})
    return groups


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate of the schedule at optimiser step ``step`` of ``total``."""
    if cfg.schedule == "constant":
        return cfg.lr
    t = step / max(1, total)
    if t < cfg.warmup:
        return cfg.lr * (t / cfg.warmup)
    frac = (t - cfg.warmup) / max(1e-12, 1 - cfg.warmup)
    return cfg.lr * (1 - frac * (1 - cfg.final_lr_fraction))


def subset(images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int = 0):
    """The first ``n`` images of a fixed shuffle (all when ``n`` is None or >= N): a class-balanced-in-expectation subset."""
    if n is None or n >= images.shape[0]:
        return images, labels
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(images.shape[0], generator=g)[:n]
    return images[idx], labels[idx]


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    *,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    batch_hook: BatchHook | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_meta: dict | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place on ``train = (uint8 images (N, C, H, W), int64 labels (N,))``.

    Args:
        test: optional held-out set, evaluated (plain accuracy) after each epoch.
        batch_hook: ``(model, x, y) -> (x, y)`` applied to every training batch
            (x float in [0, 1]) before the loss: the adversarial-training hook.
        checkpoint: path of a resumable checkpoint written atomically after each
            epoch; an existing one with the same ``checkpoint_meta`` is resumed.
        checkpoint_meta: identity of the run (architecture, data, config) stored
            with the checkpoint and checked on resume.

    Returns:
        :class:`TrainResult` with per-epoch ``loss``, ``train_acc``, ``test_acc``, ``lr`` and ``seconds``.
        The model is left in eval mode.
    """
    from tqdm.auto import tqdm

    from . import checkpoints

    device = torch.device(device) if device is not None else default_device()
    images, labels = subset(*train, cfg.train_size, seed=cfg.seed)
    if images.dtype != torch.uint8:
        raise TypeError("fit expects uint8 training images (as returned by labutils.data.load).")
    seed_everything(cfg.seed)
    model.to(device).to(memory_format=torch.channels_last)
    if hasattr(model, "init_whitening"):
        model.init_whitening(_data.to_float(subset(images, labels, 5000, seed=cfg.seed + 1)[0], device))
    opt = _make_optimizer(model, cfg)
    amp = autocast_dtype(device, cfg.precision)
    batches = _data.Batches(images, labels, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment,
                            pad=cfg.pad, drop_last=images.shape[0] >= 2 * cfg.batch_size, device=device,
                            channels_last=True, seed=cfg.seed)
    total_steps = cfg.epochs * len(batches)
    history: list[dict] = []
    start_epoch, spent = 0, 0.0
    if checkpoint is not None:
        state = checkpoints.load_training_state(checkpoint, checkpoint_meta or {})
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            batches._gen.set_state(state["batch_rng"])
            torch.set_rng_state(state["torch_rng"])
            history, start_epoch, spent = state["history"], state["epoch"], state["train_seconds"]

    bar = tqdm(total=total_steps, initial=start_epoch * len(batches), desc=f"training {type(model).__name__}",
               disable=not progress, leave=False, mininterval=0.5)
    step = start_epoch * len(batches)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        size = cfg.early_size if cfg.early_size is not None and epoch < cfg.early_epochs else None
        for x, y in batches:
            if size is not None and size != x.shape[-1]:
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            if batch_hook is not None:
                x, y = batch_hook(model, x, y)
                model.train()
            lr = lr_at(step, total_steps, cfg)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_scale"]
            with _autocast(device, amp):
                out = model(x)
            out = out.float()
            if cfg.objective == "reconstruct":
                loss = F.mse_loss(out, x)
            else:
                loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
                correct += int((out.argmax(1) == y).sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * x.shape[0]
            seen += x.shape[0]
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}")
        spent += time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": loss_sum / seen, "lr": lr, "seconds": spent}
        if cfg.objective == "classify":
            record["train_acc"] = correct / seen
            if test is not None:
                record["test_acc"] = evaluate(model, *test, device=device)
        history.append(record)
        if checkpoint is not None:
            checkpoints.save_training_state(checkpoint, checkpoint_meta or {}, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "batch_rng": batches._gen.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch + 1, "train_seconds": spent,
            })
    bar.close()
    model.eval()
    return TrainResult(history=history, train_seconds=spent, precision=str(amp or torch.float32).replace("torch.", ""),
                       resumed_from_epoch=start_epoch)


# --------------------------------------------------------------------------- evaluation
def _as_float_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return _data.to_float(images, device)
    _data.check_images(images)
    return images.to(device)


TTA_MODES = (False, True, "flip", "flip+shift")


def _tta_logits(model: nn.Module, x: torch.Tensor, tta) -> torch.Tensor:
    """Test-time augmentation: ``flip`` (True) averages each image and its mirror; ``flip+shift``
    gives that average weight 1/2 and the same average over the image shifted one pixel up-left and
    one down-right (reflect padding) 1/4 each: six forward passes (the views of airbench's TTA)."""
    def flip_mean(z):
        return 0.5 * (model(z).float() + model(z.flip(3)).float())

    if tta == "flip+shift":
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
        return 0.5 * flip_mean(x) + 0.25 * sum(flip_mean(z.contiguous(memory_format=torch.channels_last))
                                               for z in shifted)
    return flip_mean(x) if tta else model(x).float()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000, tta: bool | str = False,
                   device: torch.device | str | None = None, precision: str = "fp32") -> torch.Tensor:
    """Logits ``(N, K)`` (float32, on the CPU) of ``model`` for uint8 or [0, 1] float images ``(N, C, H, W)``.

    The model runs in eval mode and its previous mode is restored.  ``tta``: False (one pass),
    True or ``"flip"`` (mean of each image and its horizontal mirror), ``"flip+shift"`` (also
    one-pixel shifts, six passes; see :func:`_tta_logits`).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    amp = autocast_dtype(device, precision)
    was_training = model.training
    model.eval()
    outs = []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = _as_float_images(images[i : i + batch_size], device).contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits = _tta_logits(model, x, tta)
            outs.append(logits.cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, tta: bool | str = False,
             batch_size: int = 1000, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``(images, labels)``; see :func:`predict_logits`."""
    logits = predict_logits(model, images, batch_size=batch_size, tta=tta, device=device)
    return float((logits.argmax(1) == labels.cpu()).float().mean())
