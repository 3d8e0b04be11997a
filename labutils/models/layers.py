"""Building blocks of the hybrid CNN, for images (``dims=2``) and volumes (``dims=3``).

* :class:`DepthwiseSeparableConv`: a per-channel k x k convolution, then a 1x1 convolution that
  mixes channels, each followed by BatchNorm and an activation (MobileNet's factorisation).
* :class:`GroupedConvBlock`: one k x k convolution split into ``groups`` independent channel
  groups (ResNeXt-style), BatchNorm, ReLU.
* :class:`SqueezeExcitation`: channel attention of Hu et al. (2018): global average pool, a
  bottleneck of two fully connected layers, a sigmoid gate that rescales each channel.

Shapes: ``dims=2`` takes ``(N, C, H, W)``, ``dims=3`` takes ``(N, C, D, H, W)``.  Every
convolution here is padded by ``k // 2``, so with stride ``s`` a side of length ``L`` becomes
``floor((L - 1) / s) + 1`` (odd ``k``); ``s = 1`` keeps the size.  Convolutions followed by
BatchNorm carry no bias (BatchNorm's shift replaces it).  Parameter counts below are exact
(``sum(p.numel() for p in block.parameters())``); BatchNorm's running mean and variance are
buffers, not parameters, so each BatchNorm adds ``2 * channels`` (scale and shift).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DepthwiseSeparableConv", "GroupedConvBlock", "SqueezeExcitation", "conv_layer", "batch_norm",
           "activation_layer"]

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU}


def _check_dims(dims: int) -> int:
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 (images) or 3 (volumes), got {dims!r}.")
    return dims


def conv_layer(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.Conv2d`` or ``nn.Conv3d`` with the given arguments."""
    return (nn.Conv2d if _check_dims(dims) == 2 else nn.Conv3d)(*args, **kwargs)


def batch_norm(dims: int, channels: int) -> nn.Module:
    """``nn.BatchNorm2d`` or ``nn.BatchNorm3d`` over ``channels``."""
    return (nn.BatchNorm2d if _check_dims(dims) == 2 else nn.BatchNorm3d)(channels)


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name: ``"relu"``, ``"relu6"`` or ``"gelu"``."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}.")
    return _ACTIVATIONS[name]()


def _check_input(x: torch.Tensor, dims: int, channels: int, name: str) -> None:
    if x.ndim != dims + 2 or x.shape[1] != channels:
        spatial = "H, W" if dims == 2 else "D, H, W"
        raise ValueError(f"{name} expects input of shape (N, {channels}, {spatial}), got {tuple(x.shape)}.")


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k conv + BN + activation, then pointwise 1x1 conv + BN + activation.

    Input ``(N, in_channels, *S)`` with ``S = (H, W)`` for ``dims=2`` or ``(D, H, W)`` for
    ``dims=3``; output ``(N, out_channels, *S')``, each side of ``S'`` being
    ``floor((L - 1) / stride) + 1`` (the stride is applied by the depthwise conv).

    Parameters (``k = kernel_size``, ``d = dims``, ``C_in``, ``C_out``)::

        C_in * k**d            depthwise weights (one k**d filter per input channel)
      + C_in * C_out           pointwise weights
      + 2 * (C_in + C_out)     the two BatchNorms (scale and shift)

    e.g. 256 -> 128 channels, k = 3, 2D: 2,304 + 32,768 + 768 = 35,840, against 295,168 for a
    dense 3x3 conv with BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3, dims: int = 2,
                 activation: str = "relu"):
        super().__init__()
        self.dims, self.in_channels, self.out_channels = _check_dims(dims), in_channels, out_channels
        self.depthwise = nn.Sequential(
            conv_layer(dims, in_channels, in_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                       groups=in_channels, bias=False),
            batch_norm(dims, in_channels), activation_layer(activation))
        self.pointwise = nn.Sequential(
            conv_layer(dims, in_channels, out_channels, 1, bias=False),
            batch_norm(dims, out_channels), activation_layer(activation))

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, kernel_size: int = 3, dims: int = 2) -> int:
        """The number of parameters of a block with these settings (the docstring's formula)."""
        return in_channels * kernel_size ** dims + in_channels * out_channels + 2 * (in_channels + out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dims, self.in_channels, type(self).__name__)
        return self.pointwise(self.depthwise(x))


class GroupedConvBlock(nn.Module):
    """Grouped k x k conv (``groups`` channel groups, no bias) + BN + ReLU.

    Each of the ``groups`` groups maps ``C_in / groups`` input channels to ``C_out / groups``
    output channels on its own, so both channel counts must be multiples of ``groups``.
    Input ``(N, in_channels, *S)``, output ``(N, out_channels, *S')`` as for
    :class:`DepthwiseSeparableConv`.

    Parameters (``g = groups``, ``k = kernel_size``, ``d = dims``)::

        k**d * (C_in / g) * C_out      conv weights (1/g of a dense conv's)
      + 2 * C_out                      BatchNorm scale and shift

    e.g. 256 -> 128 channels, 4 groups, k = 3, 2D: 73,728 + 256 = 73,984.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 4, stride: int = 1, kernel_size: int = 3,
                 dims: int = 2):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be multiples of "
                             f"groups ({groups}).")
        self.dims, self.in_channels, self.out_channels, self.groups = _check_dims(dims), in_channels, out_channels, groups
        self.block = nn.Sequential(
            conv_layer(dims, in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                       groups=groups, bias=False),
            batch_norm(dims, out_channels), nn.ReLU(inplace=True))

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, groups: int = 4, kernel_size: int = 3,
                        dims: int = 2) -> int:
        """The number of parameters of a block with these settings (the docstring's formula)."""
        return kernel_size ** dims * (in_channels // groups) * out_channels + 2 * out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dims, self.in_channels, type(self).__name__)
        return self.block(x)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 mean(x)))`` per channel.

    Squeeze: the global average over the spatial axes gives one number per channel ``(N, C)``.
    Excite: a fully connected layer down to ``hidden = max(1, C // reduction)`` units, ReLU, a
    fully connected layer back to ``C``, a sigmoid; each channel of ``x`` is multiplied by its gate
    in ``(0, 1)``.  Input and output have the same shape, ``(N, C, *S)``.

    Parameters (both layers with bias, ``h = max(1, C // reduction)``)::

        C * h + h + h * C + C  =  2 * C * h + h + C

    e.g. C = 128, reduction 16 (h = 8): 2,048 + 8 + 128 = 2,184.
    """

    def __init__(self, channels: int, reduction: int = 16, dims: int = 2):
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}.")
        self.dims, self.channels = _check_dims(dims), channels
        hidden = max(1, channels // reduction)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    @staticmethod
    def parameter_count(channels: int, reduction: int = 16) -> int:
        """The number of parameters of a block with these settings (the docstring's formula)."""
        hidden = max(1, channels // reduction)
        return 2 * channels * hidden + hidden + channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dims, self.channels, type(self).__name__)
        squeezed = x.mean(dim=tuple(range(2, x.ndim)))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(squeezed))))
        return x * gate.view(*gate.shape, *([1] * self.dims))
