"""Prediction and accuracy of a trained model, with optional test-time augmentation (TTA)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import as_float_images
from ..runtime import autocast, autocast_dtype, channels_last, frozen_eval, model_device

__all__ = ["predict_logits", "evaluate", "TTA_MODES"]


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
        return 0.5 * flip_mean(x) + 0.25 * sum(flip_mean(channels_last(z))
                                               for z in shifted)
    return flip_mean(x) if tta else model(x).float()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000, tta: bool | str = False,
                   device: torch.device | str | None = None, precision: str = "fp32") -> torch.Tensor:
    """Logits ``(N, K)`` (float32, on the CPU) of ``model`` for uint8 or [0, 1] float images ``(N, C, H, W)``
    (or volumes ``(N, C, D, H, W)``, without TTA).

    The model runs in eval mode; every submodule's mode is restored afterwards (see
    :func:`labutils.runtime.frozen_eval`).  N = 0 gives an empty ``(0, 0)`` tensor.  ``tta``: False (one pass),
    True or ``"flip"`` (mean of each image and its horizontal mirror), ``"flip+shift"`` (also
    one-pixel shifts, six passes; see :func:`_tta_logits`).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}.")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if tta and images.ndim == 5:
        raise ValueError("test-time augmentation (flips, shifts) is defined for images (N, C, H, W); "
                         "predict volumes with tta=False.")
    device = torch.device(device) if device is not None else model_device(model)
    amp = autocast_dtype(device, precision)
    outs = []
    with frozen_eval(model):
        for i in range(0, images.shape[0], batch_size):
            x = channels_last(as_float_images(images[i: i + batch_size], device, volumes=True))
            with autocast(device, amp):
                logits = _tta_logits(model, x, tta)
            outs.append(logits.float().cpu())
    if not outs:
        return torch.empty(0, 0)
    return torch.cat(outs)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, tta: bool | str = False,
             batch_size: int = 1000, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``(images, labels)``; see :func:`predict_logits`."""
    logits = predict_logits(model, images, batch_size=batch_size, tta=tta, device=device)
    return float((logits.argmax(1) == labels.cpu()).float().mean())
