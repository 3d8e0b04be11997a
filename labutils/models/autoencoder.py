"""Convolutional autoencoder: the reconstruction model of the OOD detector (notebook 01)."""
from __future__ import annotations

import torch
from torch import nn

from .classifiers import CIFAR10_MEAN, CIFAR10_STD, Normalize

__all__ = ["ConvAutoencoder"]


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder for 32x32 images: 3 stride-2 convs down to ``latent x 4 x 4``, 3 transposed convs up.

    Input ``(N, C, 32, 32)`` in ``[0, 1]``; output the reconstruction, same shape, in ``[0, 1]`` (sigmoid).
    """

    def __init__(self, in_channels: int = 3, width: int = 32, latent: int = 64,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()

        def down(cin, cout):
            return [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        def up(cin, cout):
            return [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.encoder = nn.Sequential(Normalize(mean[:in_channels], std[:in_channels]),
                                     *down(in_channels, width), *down(width, 2 * width), *down(2 * width, latent))
        self.decoder = nn.Sequential(*up(latent, 2 * width), *up(2 * width, width),
                                     nn.ConvTranspose2d(width, in_channels, 4, stride=2, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
