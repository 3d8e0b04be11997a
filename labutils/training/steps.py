"""One optimiser step per training mode: what :func:`labutils.training.fit` does with each batch.

A step object is made once per run by :func:`labutils.training.fit` and called with every batch ``(x, y)``
(float images in ``[0, 1]``, labels).  It runs the forward and backward passes the mode needs,
steps the optimiser and the learning-rate schedule (free training steps them ``replays`` times per
batch), counts the images it sent forward and backward through the network, and returns the
summed loss and correct count of what it trained on.  State that must survive an interrupted run
(free training's perturbation) is in ``state_dict`` / ``load_state_dict``.

The adversarial modes are in :mod:`.adversarial`; this module holds the common machinery and the
standard step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import autocast, channels_last
from .config import TrainConfig

__all__ = ["PassCounter", "Step", "StandardStep", "GaussianNoiseStep"]


class PassCounter:
    """Images sent forward and backward through the network (one image, one pass = 1).

    A backward pass that computes only the input gradient (an attack step) counts like one that
    also computes the weights' gradients: it costs about the same.
    """

    def __init__(self):
        self.forward = 0
        self.backward = 0

    def add(self, n: int, *, backward: bool = True) -> None:
        self.forward += n
        self.backward += n if backward else 0

    def as_dict(self) -> dict:
        return {"forward": self.forward, "backward": self.backward}


class Step:
    """Base class: ``step(x, y) -> (loss summed over the images trained on, correct count, images)``."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, schedule, cfg: TrainConfig,
                 amp: torch.dtype | None, device: torch.device):
        self.model, self.opt, self.schedule, self.cfg, self.amp, self.device = model, opt, schedule, cfg, amp, device
        self.passes = PassCounter()
        self.lr = float("nan")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """fp32 logits of the model (in whatever mode it is) at ``x``, under the run's autocast; counted."""
        with autocast(self.device, self.amp):
            out = self.model(x)
        return out.float()

    def loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.objective == "reconstruct":
            return F.mse_loss(out, x)
        return F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward, optimiser and schedule step on ``(x, y)``; returns (logits, loss), detached.

        A step that needs an input gradient from the same backward pass (free training's perturbation)
        builds ``x`` from a leaf that requires grad and reads the leaf's ``.grad`` afterwards."""
        out = self.logits(x)
        loss = self.loss(out, x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.passes.add(x.shape[0])
        self.lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.schedule.step()
        return out.detach(), loss.detach()

    def summary(self, out: torch.Tensor, loss: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        n = out.shape[0]
        correct = (out.argmax(1) == y).sum() if self.cfg.objective == "classify" else torch.zeros((), dtype=torch.int64)
        return loss * n, correct, n

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        raise NotImplementedError

    def epoch_summary(self) -> dict:
        """Numbers the mode measured during the epoch that just ended, added to its history record (and reset)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class StandardStep(Step):
    """Train on the batch as it is: one forward and one backward pass per image."""

    def __call__(self, x, y):
        out, loss = self.update(x, y)
        return self.summary(out, loss, y)


class GaussianNoiseStep(Step):
    """Gaussian noise augmentation (Cohen et al. 2019), the training of a base classifier for randomized
    smoothing: train on ``x + N(0, noise_sigma^2)`` per pixel, on the ``[0, 1]`` scale and not clipped, as
    the smoothed classifier will see it.  One forward and one backward pass per image.  The noise comes
    from the global generator, whose state the resumable checkpoint keeps."""

    def __call__(self, x, y):
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype).mul_(self.cfg.noise_sigma)
        out, loss = self.update(channels_last(x + noise), y)
        return self.summary(out, loss, y)

