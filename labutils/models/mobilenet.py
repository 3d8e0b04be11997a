"""MobileNetV2 (Sandler et al. 2018) from torchvision, adapted to CIFAR-10, and its ImageNet weights offline.

* :class:`MobileNetV2` / :func:`mobilenet_v2`: torchvision's network with our :class:`Normalize`
  in front and a new head; two ways to feed it 32x32 images (``input_size``):

  - ``32`` (native): the stem convolution and the first block of the 24-channel stage use
    stride 1 instead of 2.  Stock MobileNetV2 downsamples 32x, which leaves a 32x32 image as
    2x2 maps in the 64- and 96-channel stages and 1x1 from the 160-channel stage on, where a
    3x3 depthwise filter sees mostly zero padding.  With these two strides removed the total
    stride is 8: stem and stages see 32, 32, 32, 16, 8, 8, 4, 4 pixels (from the 24-channel
    stage on, the map sizes of a 128x128 image in the stock network; the final maps are 4x4).
    Weights are unchanged (a stride is not a parameter), so ImageNet weights still load.
  - any other size, e.g. ``96`` (what the published hybrid did): stock strides, and an
    ``nn.Upsample`` (bilinear) inside the model resizes the images first; the final maps are
    ``input_size / 32`` pixels wide (3x3 at 96).

* :func:`imagenet_state_dict` loads ``MobileNet_V2_Weights.IMAGENET1K_V1``: from torch's cache
  when the file is there (``torch.load(..., weights_only=True)``, no download attempted), else
  through torchvision's weights API; a failed download raises :class:`PretrainedWeightsMissing`
  naming the file torch expects (:func:`imagenet_weights_path`) and how to put it there.

``pretrained=True`` switches :class:`Normalize` to the ImageNet mean and std (what the weights
were trained with); ``pretrained=False`` normalises with CIFAR-10's and trains from scratch.
"""
from __future__ import annotations

import http.client
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from .classifiers import CIFAR10_MEAN, CIFAR10_STD, Normalize

__all__ = ["MobileNetV2", "mobilenet_v2", "mobilenet_v2_features", "input_resize", "imagenet_state_dict",
           "imagenet_weights_path", "PretrainedWeightsMissing", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _weights():
    """torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1`` (torchvision imported on first use: it costs seconds)."""
    from torchvision.models import MobileNet_V2_Weights

    return MobileNet_V2_Weights.IMAGENET1K_V1


class PretrainedWeightsMissing(FileNotFoundError):
    """The ImageNet weight file is not in torch's cache and could not be downloaded."""


def imagenet_weights_path() -> Path:
    """Where torch's cache keeps the ImageNet weights: ``torch.hub.get_dir()/checkpoints/<file of the URL>``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``), read at call time.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(_weights().url).path)


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict of MobileNetV2 (``IMAGENET1K_V1``), loaded on the CPU.

    A file already in the cache is read as it is (no hash check, so a file one writes oneself is
    used); otherwise torchvision downloads it (hash checked).  Offline, the download's network
    error becomes :class:`PretrainedWeightsMissing`, which says where to put the file.
    """
    path = imagenet_weights_path()
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        return _weights().get_state_dict(progress=False, check_hash=True)
    except (OSError, http.client.HTTPException) as err:
        raise PretrainedWeightsMissing(
            f"MobileNetV2's ImageNet weights are not in torch's cache and could not be downloaded ({err}).\n"
            f"Expected file: {path}\n"
            f"Put it there on a machine with internet access, e.g.\n"
            f"  mkdir -p {path.parent} && curl -L -o {path} {_weights().url}\n"
            f"or set TORCH_HOME to a folder whose hub/checkpoints/ holds {path.name} "
            f"(torch looks in $TORCH_HOME/hub/checkpoints).  pretrained=False trains from scratch without it."
        ) from err


def _check_input_size(input_size: int) -> int:
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 32:
        raise ValueError(f"input_size must be 32 (native, CIFAR strides) or a larger int to resize to "
                         f"(e.g. 96), got {input_size!r}.")
    return input_size


def mobilenet_v2_features(pretrained: bool = False, input_size: int = 32, width_mult: float = 1.0):
    """torchvision MobileNetV2's ``features`` (stem, 17 inverted-residual blocks, 1x1 conv to 1280).

    ``pretrained`` loads the ImageNet weights (:func:`imagenet_state_dict`; only for
    ``width_mult=1.0``).  ``input_size=32`` sets the stem's and the 24-channel stage's first
    stride to 1 (total stride 8); other sizes keep the stock strides (total stride 32).
    Returns ``(features, out_channels)``; input ``(N, 3, H, W)`` normalised, output
    ``(N, out_channels, ceil(H / s), ceil(W / s))`` for the total stride ``s``.
    """
    _check_input_size(input_size)
    if pretrained and width_mult != 1.0:
        raise ValueError(f"ImageNet weights exist for width_mult=1.0 only, got {width_mult}.")
    from torchvision.models import mobilenet_v2 as torchvision_mobilenet_v2

    net = torchvision_mobilenet_v2(weights=None, width_mult=width_mult)
    if pretrained:
        net.load_state_dict(imagenet_state_dict())
    features = net.features
    if input_size == 32:
        # features[0]: stem Conv2dNormActivation; features[2]: first block of the 24-channel stage,
        # whose conv[1] is the 3x3 depthwise Conv2dNormActivation that carries the stride.
        for conv in (features[0][0], features[2].conv[1][0]):
            if conv.stride != (2, 2):
                raise RuntimeError(f"unexpected torchvision MobileNetV2 layout: {conv} should have stride 2.")
            conv.stride = (1, 1)
        features[2].stride = 1  # the block's own record of its stride (its residual test already fails: 16 != 24)
    return features, net.last_channel


class MobileNetV2(nn.Module):
    """MobileNetV2 for CIFAR-10-sized images: Normalize -> [Upsample] -> torchvision features -> pool -> head.

    Input ``(N, 3, H, W)`` in ``[0, 1]`` (32x32 for CIFAR-10); output logits ``(N, num_classes)``.
    ``input_size=32`` runs the images as they are with the first two downsamplings removed;
    another ``input_size`` resizes them to that size (bilinear) and keeps the stock strides.
    The head is dropout + a new ``Linear(1280, num_classes)`` (the ImageNet classifier is dropped).
    """

    def __init__(self, num_classes: int = 10, pretrained: bool = False, input_size: int = 32,
                 width_mult: float = 1.0, dropout: float = 0.2):
        super().__init__()
        self.input_size, self.pretrained = input_size, bool(pretrained)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if pretrained else (CIFAR10_MEAN, CIFAR10_STD)
        self.normalize = Normalize(mean, std)
        self.resize = input_resize(input_size)
        self.features, channels = mobilenet_v2_features(pretrained, input_size, width_mult)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(self.resize(self.normalize(x)))))


def input_resize(input_size: int) -> nn.Module:
    """Identity for the native 32x32 path, else a bilinear resize to ``input_size`` x ``input_size``."""
    if _check_input_size(input_size) == 32:
        return nn.Identity()
    return nn.Upsample(size=(input_size, input_size), mode="bilinear", align_corners=False)


def mobilenet_v2(num_classes: int = 10, pretrained: bool = False, input_size: int = 32, **kwargs) -> MobileNetV2:
    """:class:`MobileNetV2` (registered as ``"mobilenet_v2"``); ``kwargs``: ``width_mult``, ``dropout``."""
    return MobileNetV2(num_classes=num_classes, pretrained=pretrained, input_size=input_size, **kwargs)
