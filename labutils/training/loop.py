"""The training loop: :func:`fit` trains a classifier (cross-entropy) or an autoencoder (pixel MSE).

It reads an in-memory uint8 dataset through :class:`labutils.data.Batches`, steps an SGD or
AdamW optimiser with a per-step learning-rate schedule (:mod:`.optim`), runs in bf16 autocast
where the hardware computes bf16 natively (and fp32 elsewhere) with channels_last memory, and
after every epoch writes a resumable checkpoint when given a path: a run that is interrupted
continues from its last completed epoch with the same weights, optimiser, schedule and random
streams, so the result is the one an uninterrupted run gives.

What each optimiser step trains on is the config's ``mode`` (:mod:`.steps`, :mod:`.adversarial`:
standard, FGSM-augmented, fast FGSM, free and PGD adversarial training, Gaussian noise augmentation); every run counts the
images it sends forward and backward, and the adversarial modes check for catastrophic
overfitting after each epoch.  Other per-batch changes plug in through ``batch_hook(model, x, y)
-> (x, y)``, which may replace each batch before the step; the modes of the model's submodules
are restored after it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Batches, subset, to_float
from ..models.dual_bn import convert_to_dual_bn, drop_auxiliary_bn
from ..runtime import (autocast_dtype, channels_last, default_device, model_to_channels_last, preserved_modes,
                       seed_everything)
from . import checkpoints
from .adversarial import ADVERSARIAL_STEPS, detect_catastrophic_overfitting, robust_accuracy_check
from .config import DUAL_BN_MODES, BatchHook, TrainConfig, TrainResult
from .entprop import ENTPROP_STEPS
from .inference import evaluate
from .optim import make_optimizer, make_scheduler
from .steps import GaussianNoiseStep, StandardStep, Step

__all__ = ["fit"]

# Steps between two progress-bar updates of the running loss: reading a device number waits for
# the GPU, so the loss is not read back every step.
_POSTFIX_EVERY = 10


@dataclass
class _Progress:
    """Where a run stands: completed epochs, their records and the training seconds spent."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    passes: dict = field(default_factory=lambda: {"forward": 0, "backward": 0})


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

    Volumes ``(N, C, D, H, W)`` train the same way with ``cfg.augment=False`` (e.g. the 3D hybrid).

    Seeds the global generators with ``cfg.seed`` (a side effect on the process: dropout draws
    from them); shuffling and augmentation use their own generator, seeded with it too.

    Args:
        test: optional held-out set, evaluated (plain accuracy) after each epoch.
        batch_hook: ``(model, x, y) -> (x, y)`` applied to every training batch
            (x float in [0, 1]) before the loss: the adversarial-training hook.
        checkpoint: path of a resumable checkpoint written atomically after each
            epoch; an existing one with the same ``checkpoint_meta`` is resumed.
        checkpoint_meta: identity of the run (architecture, data, config) stored
            with the checkpoint and checked on resume.

    The mode (``cfg.mode``) decides what each step trains on; in mode ``"free"`` an epoch of the
    history is one pass over the data (``cfg.data_epochs()`` of them, each batch replayed
    ``cfg.replays`` times).  ``cfg.check_size()`` training images (512 in the adversarial modes by
    default; in standard training only when ``overfit_check`` is set, so that it trains on the same
    images as the adversarial runs it is compared with) are held out and attacked after every epoch
    (:func:`.adversarial.robust_accuracy_check`).  In modes ``"advprop"`` and ``"entprop"`` the model is
    converted to dual BatchNorm (:func:`labutils.models.convert_to_dual_bn`) before the first step and the
    auxiliary set is dropped after the last one, so ``model`` comes back with its own architecture (an
    interrupted run's checkpoint keeps both sets and resumes with them).

    Returns:
        :class:`TrainResult` with per-epoch ``loss``, ``train_acc`` (on what was trained on, e.g.
        adversarial examples), ``test_acc``, ``lr``, ``seconds`` (cumulative, excluding the checks),
        ``forward_passes`` / ``backward_passes`` (images, this epoch) and, with a check set,
        ``check_clean_acc`` / ``check_fgsm_acc`` / ``check_pgd_acc``; the run's total ``passes``,
        ``catastrophic_overfitting`` (:func:`.adversarial.detect_catastrophic_overfitting`), ``data_epochs``
        (passes over the data) and ``equivalent_epochs`` (the standard epochs they cost).
        The model is left in eval mode.
    """
    from tqdm.auto import tqdm

    device = torch.device(device) if device is not None else default_device()
    images, labels = subset(*train, cfg.train_size, seed=cfg.seed)
    if images.dtype != torch.uint8:
        raise TypeError("fit expects uint8 training images (as returned by labutils.data.load).")
    images, labels, check = _hold_out_check_set(images, labels, cfg)
    seed_everything(cfg.seed)
    _prepare_model(model, images, labels, cfg, device)
    if cfg.mode in DUAL_BN_MODES:  # before the optimiser (it must see the auxiliary parameters) and the resume
        convert_to_dual_bn(model)
    if check is not None:
        check = (channels_last(to_float(check[0], device)), check[1].to(device))
    batches = Batches(images, labels, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment, pad=cfg.pad,
                      drop_last=images.shape[0] >= 2 * cfg.batch_size, device=device, channels_last=True,
                      seed=cfg.seed)
    opt = make_optimizer(model, cfg)
    epochs = cfg.data_epochs()
    schedule = make_scheduler(opt, cfg, epochs * len(batches) * cfg.steps_per_batch())
    amp = autocast_dtype(device, cfg.precision)
    step = _STEPS[cfg.mode](model, opt, schedule, cfg, amp, device)
    run = _Progress()
    if checkpoint is not None:
        run = _resume(checkpoint, checkpoint_meta or {}, model, opt, schedule, batches, step, device) or run
    resumed_from = run.epoch

    bar = tqdm(total=epochs * len(batches), initial=run.epoch * len(batches),
               desc=f"training {type(model).__name__}" + ("" if cfg.mode == "standard" else f" ({cfg.mode})"),
               disable=not progress, leave=False, mininterval=0.5)
    try:
        for epoch in range(run.epoch, epochs):
            t0 = time.perf_counter()
            before = step.passes.as_dict()
            record = {**_train_epoch(model, batches, step, cfg, batch_hook, _epoch_size(cfg, epoch), bar),
                      **step.epoch_summary()}
            run.seconds += time.perf_counter() - t0
            done = {k: v - before[k] for k, v in step.passes.as_dict().items()}
            run.passes = {k: run.passes[k] + done[k] for k in done}
            record = {"epoch": epoch + 1, **record, "seconds": run.seconds,
                      "forward_passes": done["forward"], "backward_passes": done["backward"]}
            if check is not None:
                record.update(robust_accuracy_check(model, *check, cfg.eps, amp=amp, seed=cfg.seed,
                                                    norm=cfg.attack_norm))
            if test is not None and cfg.objective == "classify":
                record["test_acc"] = evaluate(model, *test, device=device)
            run.history.append(record)
            run.epoch = epoch + 1
            if checkpoint is not None:
                _save_state(checkpoint, checkpoint_meta or {}, model, opt, schedule, batches, step, run)
    finally:
        bar.close()
    drop_auxiliary_bn(model)  # advprop / entprop: the main BatchNorms are the trained model
    model.eval()
    return TrainResult(history=run.history, train_seconds=run.seconds,
                       precision=str(amp or torch.float32).replace("torch.", ""), resumed_from_epoch=resumed_from,
                       passes=dict(run.passes), catastrophic_overfitting=detect_catastrophic_overfitting(run.history),
                       data_epochs=epochs, equivalent_epochs=epochs * cfg.steps_per_batch())


#: The step of each training mode.
_STEPS: dict[str, type[Step]] = {"standard": StandardStep, "gaussian": GaussianNoiseStep, **ADVERSARIAL_STEPS,
                                 **ENTPROP_STEPS}


def _hold_out_check_set(images, labels, cfg: TrainConfig):
    """``(train images, train labels, check set or None)``: ``cfg.check_size()`` images, a sample seeded by
    ``cfg.seed`` (the same images in every mode), held out for the per-epoch check."""
    k = cfg.check_size()
    if k == 0:
        return images, labels, None
    if k > images.shape[0] // 2:
        raise ValueError(f"overfit_check={k} would hold out more than half of the {images.shape[0]} training "
                         "images; lower it (or set 0 to skip the catastrophic-overfitting check).")
    held = torch.zeros(images.shape[0], dtype=torch.bool)
    held[torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(cfg.seed + 3))[:k]] = True
    return images[~held], labels[~held], (images[held], labels[held])


def _prepare_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                   device: torch.device) -> None:
    """Move the model to ``device`` in channels-last; data-dependent initialisation (FastNet's whitening)."""
    model_to_channels_last(model.to(device))
    if hasattr(model, "init_whitening"):
        model.init_whitening(to_float(subset(images, labels, 5000, seed=cfg.seed + 1)[0], device))


def _epoch_size(cfg: TrainConfig, epoch: int) -> int | None:
    """Side of the training images in this epoch (progressive resizing), None for full size."""
    return cfg.early_size if cfg.early_size is not None and epoch < cfg.early_epochs else None


def _train_epoch(model, batches, step: Step, cfg, batch_hook, size, bar) -> dict:
    """One pass over ``batches``; returns the epoch's mean ``loss``, its last step's ``lr`` and ``train_acc``."""
    model.train()
    device = batches.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for i, (x, y) in enumerate(batches):
        if size is not None and size != x.shape[-1]:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if batch_hook is not None:
            with preserved_modes(model):  # an attack in the hook switches to eval mode and back
                x, y = batch_hook(model, x, y)
        batch_loss, batch_correct, n = step(x, y)
        loss_sum += batch_loss
        correct += batch_correct.to(device)
        seen += n
        bar.update(1)
        if i % _POSTFIX_EVERY == 0:
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}")
    record = {"loss": float(loss_sum) / seen, "lr": step.lr}
    if cfg.objective == "classify":
        record["train_acc"] = int(correct) / seen
    return record


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _save_state(path, meta, model, opt, schedule, batches, step: Step, run: _Progress) -> None:
    checkpoints.save_training_state(path, meta, {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
        "batches": batches.state_dict(), "rng": _rng_state(batches.device), "history": run.history,
        "epoch": run.epoch, "train_seconds": run.seconds, "passes": run.passes, "step": step.state_dict(),
    })


def _resume(path, meta, model, opt, schedule, batches, step: Step, device) -> _Progress | None:
    """Load the state of an interrupted run into the objects; None when there is none to resume."""
    state = checkpoints.load_training_state(path, meta)
    if state is None:
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    batches.load_state_dict(state["batches"])
    _set_rng_state(state["rng"], device)
    step.load_state_dict(state.get("step", {}))
    passes = state.get("passes") or {"forward": 0, "backward": 0}
    return _Progress(epoch=state["epoch"], history=state["history"], seconds=state["train_seconds"],
                     passes=dict(passes))
