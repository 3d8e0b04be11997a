"""Image classifiers of the course; each takes float images in ``[0, 1]`` and returns logits.

* :class:`Normalize`: the first layer of every model (per-channel ``(x - mean) / std``).
* :class:`SimpleCNN`: the course's plain baseline (two conv blocks, dropout, no BatchNorm);
  the reference figure is 73.7 % on CIFAR-10.
* :class:`FastNet`: a small, fast CIFAR-10 network for CPUs in the spirit of airbench /
  hlb-CIFAR10: a frozen 2x2 patch-whitening convolution initialised from the data, three
  conv-pool-BN-GELU groups, global max pooling and a scaled linear head.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Normalize", "SimpleCNN", "FastNet", "GrayscaleCNN", "CIFAR10_MEAN", "CIFAR10_STD", "FASHION_MNIST_MEAN",
           "FASHION_MNIST_STD"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# Fashion-MNIST training set, one grey channel
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``x`` in ``[0, 1]``, shape ``(N, C, H, W)``."""

    def __init__(self, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected images of shape (N, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}.")
        return (x - self.mean) / self.std


class SimpleCNN(nn.Module):
    """Baseline CNN: [conv-ReLU-conv-ReLU-maxpool-dropout] x 2, FC 512, dropout, FC.

    Input ``(N, in_channels, 32, 32)`` in ``[0, 1]``; output logits ``(N, num_classes)``.
    About 2.2 M parameters and 26.6 M multiply-adds (53 MFLOP, as
    :func:`labutils.models.cost.flops_per_image` counts them) per 32x32 image.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.25,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
                    nn.MaxPool2d(2), nn.Dropout(dropout)]

        self.net = nn.Sequential(
            Normalize(mean[:in_channels], std[:in_channels]),
            *block(in_channels, 32), *block(32, 64),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 512), nn.ReLU(inplace=True), nn.Dropout(2 * dropout),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GrayscaleCNN(nn.Module):
    """Small CNN for 28x28 greyscale images (MNIST, Fashion-MNIST): the "MNIST-style CNN" of notebook 07.

    Normalize -> [conv 3x3 (``widths[0]``) - ReLU - maxpool 2] -> [conv 3x3 (``widths[1]``) - ReLU -
    maxpool 2] -> FC ``hidden`` - ReLU - dropout -> FC.  With the default widths (32, 64) and 128
    hidden units: about 0.42 M parameters and 4.3 M multiply-adds per image, cheap enough to classify
    the tens of thousands of noisy copies per image that randomized smoothing needs on a CPU.

    Input ``(N, 1, 28, 28)`` in ``[0, 1]``; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, widths=(32, 64), hidden: int = 128, dropout: float = 0.25,
                 mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD):
        super().__init__()
        w1, w2 = widths
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(1, w1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(w2 * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ConvGroup(nn.Sequential):
    """conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
            nn.BatchNorm2d(cout, momentum=bn_momentum), nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout, momentum=bn_momentum), nn.GELU(),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _dirac_init(m)


def _dirac_init(conv: nn.Conv2d) -> None:
    """Default init plus an identity on the first ``min(cin, cout)`` channels (eases early training)."""
    w = conv.weight.data
    torch.nn.init.dirac_(w[: w.size(1)])


class FastNet(nn.Module):
    """Fast CIFAR-10 classifier for CPUs.

    Architecture: Normalize -> 2x2 patch-whitening conv (frozen weights, 24
    channels, no padding: 32x32 -> 31x31) -> GELU -> three conv groups of
    ``widths`` (each halves the resolution) -> global max pool -> linear ->
    logits x ``logit_scale``.

    Call :meth:`init_whitening` with a sample of training images before
    training; :func:`labutils.training.fit` does it automatically.  ``whiten_eps`` regularises the
    whitening: each direction of the 2x2 patches is scaled by ``1/sqrt(eigenvalue + whiten_eps)``, so
    the default (5e-4, best clean accuracy) amplifies the faint, high-frequency directions up to ~45x
    (pixel-scale perturbations there become large activations).  Single-step adversarial training
    overfits catastrophically with it; 0.1 avoided that where 5e-4 did not (fast FGSM, 8/255, 8,000
    images, 3 epochs: PGD-10 16 % vs 0 %).

    Input ``(N, 3, 32, 32)`` in ``[0, 1]``; output logits ``(N, num_classes)``.
    """

    def __init__(self, widths=(64, 128, 256), num_classes: int = 10, logit_scale: float = 1 / 9,
                 bn_momentum: float = 0.4, mean=CIFAR10_MEAN, std=CIFAR10_STD, whiten_eps: float = 5e-4):
        super().__init__()
        if not whiten_eps > 0:
            raise ValueError(f"whiten_eps must be > 0 (added to the patch covariance's eigenvalues), got {whiten_eps}.")
        self.whiten_eps = float(whiten_eps)
        w1, w2, w3 = widths
        self.normalize = Normalize(mean, std)
        # Frozen weights and a separate learnt bias: a conv whose weight needs no
        # gradient has no backward pass at all (a bias inside it would force one).
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=False)
        self.whiten.weight.requires_grad_(False)
        self.whiten_bias = nn.Parameter(torch.zeros(1, 24, 1, 1))
        self.features = nn.Sequential(
            nn.GELU(),
            _ConvGroup(24, w1, bn_momentum), _ConvGroup(w1, w2, bn_momentum), _ConvGroup(w2, w3, bn_momentum),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = logit_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float | None = None) -> None:
        """Set the first conv to whiten 2x2 patches of ``images`` (float ``(N, 3, H, W)`` in [0, 1]).

        ``eps`` (default: the model's ``whiten_eps``) is added to each eigenvalue.

        The 12 filters are the eigenvectors of the patch covariance scaled by
        ``1/sqrt(eigenvalue + eps)``, and their negatives (24 channels in all).
        """
        eps = self.whiten_eps if eps is None else eps
        x = self.normalize(images.float())
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1)  # (N, 3, H-1, W-1, 2, 2)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
        cov = torch.cov(patches.T)
        evals, evecs = torch.linalg.eigh(cov)
        filters = (evecs.T / torch.sqrt(evals.clamp_min(0) + eps)[:, None]).float().view(12, 3, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))
        self.whiten_bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.whiten(self.normalize(x)) + self.whiten_bias)) * self.logit_scale
