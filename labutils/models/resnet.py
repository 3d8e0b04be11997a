"""A family of small CIFAR ResNets of several depths (He et al., 2016, section 4.2), for notebook 09.

``CifarResNet(depth)`` has ``depth = 6 n + 2`` layers with weights: a 3x3 stem, three stages of
``n`` basic blocks (two 3x3 convolutions each) at ``width``, ``2 width`` and ``4 width`` channels
and 32, 16 and 8 pixels, global average pooling and a linear head.  Depths 8, 14, 20, 32, 44, 56
have 0.08, 0.18, 0.27, 0.47, 0.66 and 0.86 M parameters at ``width=16`` (He et al.'s ResNet-20 to -56);
a depth changes the compute per image in proportion to ``n`` while keeping the same stages, which
is what a study of "does depth buy robustness" needs.  A stage's first block halves the resolution
with a stride-2 convolution; its shortcut is a 1x1 stride-2 convolution with BatchNorm (option B).
"""
from __future__ import annotations

import torch
from torch import nn

from .classifiers import CIFAR10_MEAN, CIFAR10_STD, Normalize

__all__ = ["CifarResNet", "BasicBlock", "resnet_blocks_per_stage"]


def resnet_blocks_per_stage(depth: int) -> int:
    """``n`` of a CIFAR ResNet with ``depth = 6 n + 2`` weight layers (8, 14, 20, 26, 32, ...); else ValueError."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6 n + 2 with n >= 1 (8, 14, 20, 26, 32, 44, 56, 110), got {depth!r}.")
    return (depth - 2) // 6


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU; ``(N, cin, H, W) -> (N, cout, H/stride, W/stride)``."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet of ``depth = 6 n + 2`` layers (see the module docstring).

    Args:
        depth: 8, 14, 20, 26, 32, 44, 56, ...  width: channels of the first stage, >= 8 (16: He et al.'s).
        num_classes, in_channels, mean, std: the task (CIFAR-10 by default).

    Input ``(N, in_channels, H, W)`` in ``[0, 1]`` (32x32 for CIFAR-10); output logits ``(N, num_classes)``.
    """

    def __init__(self, depth: int = 20, width: int = 16, num_classes: int = 10, in_channels: int = 3,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        n = resnet_blocks_per_stage(depth)
        if isinstance(width, bool) or not isinstance(width, int) or width < 8:
            # width 4 hung or crashed in the backward pass on AVX2 kernels (oneDNN, channels-last, torch 2.14.1)
            raise ValueError(f"width must be an int >= 8 (channels of the first stage; He et al. use 16), got "
                             f"{width!r}: narrower ResNets hung or crashed in training on AVX2 CPUs.")
        self.depth, self.width = depth, width
        layers: list[nn.Module] = [Normalize(mean[:in_channels], std[:in_channels]),
                                   nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        cin = width
        for stage in range(3):
            cout = width * 2 ** stage
            for b in range(n):
                layers.append(BasicBlock(cin, cout, stride=2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
