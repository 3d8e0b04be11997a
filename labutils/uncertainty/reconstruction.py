"""The autoencoder OOD detector: an image is suspicious when the autoencoder reconstructs it badly.

Its score is the per-image reconstruction error (higher = more likely OOD);
:func:`reconstruction_score` (the negative error) follows the ID-score convention of :mod:`.scores`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data import as_float_images
from ..runtime import frozen_eval, model_device
from ..training import get_or_train

__all__ = ["reconstruction_error", "reconstruction_score", "train_autoencoder"]


@torch.no_grad()
def reconstruction_error(autoencoder: nn.Module, images: torch.Tensor, *, batch_size: int = 500,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Per-image mean squared reconstruction error, ``(N, C, H, W) -> (N,)``.

    Args:
        autoencoder: a model mapping ``[0, 1]`` images to reconstructions of
            the same shape (e.g. :class:`labutils.models.ConvAutoencoder`).
            It runs in eval mode, in float32; the modes of its submodules are restored.
        images: uint8 in 0..255 or float in ``[0, 1]``, shape ``(N, C, H, W)``.
        batch_size: images per forward pass.
        device: where to run the model (default: where its parameters are).

    Returns:
        float32 CPU tensor ``(N,)``: the mean over the ``C*H*W`` pixel values of
        ``(reconstruction - image)**2`` on the ``[0, 1]`` pixel scale, so in
        ``[0, 1]`` for a model whose output lies in ``[0, 1]``.  **Higher = more
        likely OOD**; the in-distribution score is its negative
        (:func:`reconstruction_score`).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    device = torch.device(device) if device is not None else model_device(autoencoder)
    out = []
    with frozen_eval(autoencoder):
        for i in range(0, images.shape[0], batch_size):
            x = as_float_images(images[i: i + batch_size], device).float()
            recon = autoencoder(x).float()
            if recon.shape != x.shape:
                raise ValueError(f"the autoencoder returned shape {tuple(recon.shape)} for input "
                                 f"{tuple(x.shape)}; a reconstruction must have the input's shape.")
            out.append((recon - x).square().flatten(1).mean(dim=1).cpu())
    return torch.cat(out) if out else torch.empty(0)


def reconstruction_score(autoencoder: nn.Module, images: torch.Tensor, *, batch_size: int = 500,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """In-distribution score of the autoencoder detector: ``-reconstruction_error`` ``(N,)``, in ``[-1, 0]``, higher = more ID."""
    return -reconstruction_error(autoencoder, images, batch_size=batch_size, device=device)


def train_autoencoder(config, *, dataset: str = "cifar10", **kwargs):
    """Train (or load from the checkpoint cache) a :class:`~labutils.models.ConvAutoencoder`.

    Calls ``labutils.training.get_or_train("autoencoder", config, dataset=dataset, **kwargs)``;
    ``kwargs`` are its other keyword arguments (``model_kwargs``, ``device``,
    ``retrain``, ``progress``).  ``config`` must have ``objective="reconstruct"``
    (see ``labutils.course.profiles`` ``ae_config``).  For a grey dataset pass
    ``model_kwargs={"in_channels": 1}``.

    Returns:
        ``(model, info)`` as :func:`labutils.training.get_or_train`.
    """
    objective = getattr(config, "objective", None)
    if objective != "reconstruct":
        raise ValueError(f"train_autoencoder needs a TrainConfig with objective='reconstruct', got {objective!r}; "
                         "use profile(...).ae_config or TrainConfig(..., objective='reconstruct').")
    return get_or_train("autoencoder", config, dataset=dataset, **kwargs)
