"""Network architectures of the course.

Every model takes float images in ``[0, 1]`` of shape ``(N, C, H, W)`` and normalises them in
its first layer (:class:`Normalize`), so attacks, OOD scores and widgets never deal with
normalised pixels.  Classifiers return logits ``(N, num_classes)``.

* :mod:`.classifiers`: :class:`SimpleCNN` (the plain baseline), :class:`FastNet` (a fast
  airbench-style CIFAR-10 network for CPUs);
* :mod:`.autoencoder`: :class:`ConvAutoencoder`, the reconstruction model of the OOD detector.

:func:`build` makes a model from its registry name and keyword arguments; the checkpoint cache
stores those two things to rebuild and check a model.  A new architecture is registered in
:data:`MODELS`.
"""
from __future__ import annotations

from torch import nn

from .autoencoder import ConvAutoencoder
from .classifiers import CIFAR10_MEAN, CIFAR10_STD, FastNet, Normalize, SimpleCNN

__all__ = ["Normalize", "SimpleCNN", "FastNet", "ConvAutoencoder", "MODELS", "build", "CIFAR10_MEAN", "CIFAR10_STD"]

MODELS: dict[str, type[nn.Module]] = {
    "simple_cnn": SimpleCNN,
    "fastnet": FastNet,
    "autoencoder": ConvAutoencoder,
}


def build(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered architecture by name (see :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {', '.join(MODELS)}.")
    return MODELS[name](**kwargs)
