"""The hybrid CNN: a MobileNetV2 backbone with a small SE + grouped/depthwise head, and a 3D mode for volumes.

* ``mode="2d"`` (images ``(N, 3, H, W)`` in ``[0, 1]``): Normalize -> [resize] -> MobileNetV2
  features (optionally ImageNet-pretrained and frozen) -> 1x1 adapter conv + BN + ReLU -> SE ->
  grouped block (4 groups, 128 filters, stride 2) or depthwise-separable block (128 filters,
  stride 2) -> SE -> global average pool -> dropout -> linear.  This follows the reference row
  of ``shared/reference/methods.md`` (published: frozen ImageNet backbone, inputs resized to 96).
* ``mode="3d"`` (volumes ``(N, 1, D, H, W)`` in ``[0, 1]``): no 2D backbone; a Conv3d stem + BN +
  ReLU, then for each further width a 3D grouped or depthwise block (stride 2) and a 3D SE,
  global average pool, dropout, linear.

Every keyword is JSON-able (the checkpoint cache stores and hashes them).
"""
from __future__ import annotations

import torch
from torch import nn

from .classifiers import CIFAR10_MEAN, CIFAR10_STD, Normalize
from .layers import DepthwiseSeparableConv, GroupedConvBlock, SqueezeExcitation, batch_norm, conv_layer
from .mobilenet import IMAGENET_MEAN, IMAGENET_STD, input_resize, mobilenet_v2_features

__all__ = ["HybridCNN"]

_BLOCKS = ("grouped", "depthwise")
_MODES = ("2d", "3d")


class _VolumeNormalize(nn.Module):
    """``(x - mean) / std`` for single-channel volumes ``(N, 1, D, H, W)``."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        if not std > 0:
            raise ValueError(f"volume_std must be > 0, got {std}.")
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _block(kind: str, cin: int, cout: int, groups: int, dims: int) -> nn.Module:
    if kind == "grouped":
        return GroupedConvBlock(cin, cout, groups=groups, stride=2, dims=dims)
    return DepthwiseSeparableConv(cin, cout, stride=2, dims=dims)


class HybridCNN(nn.Module):
    """MobileNetV2 backbone + adapter + SE + grouped/depthwise block + SE + pooled linear head; or a 3D path.

    Args:
        num_classes: number of logits.
        block: ``"grouped"`` (:class:`GroupedConvBlock`, ``groups`` groups) or ``"depthwise"``
            (:class:`DepthwiseSeparableConv`); both stride 2, ``block_channels`` filters (3D: the widths).
        pretrained: ImageNet weights for the backbone (2D only; offline, the weight file must be in
            torch's cache, see :func:`labutils.models.mobilenet.imagenet_state_dict`).  Switches
            the input normalisation to ImageNet's mean and std.
        freeze_backbone: the backbone's parameters get ``requires_grad=False`` and the backbone
            stays in eval mode (BatchNorm running statistics frozen) even after ``model.train()``.
        input_size: 2D only; 32 runs CIFAR-10 images natively (backbone total stride 8, 4x4 final
            maps), another size resizes them bilinearly inside the model (96: stock strides, 3x3 maps).
        width_mult: 2D only; MobileNetV2's width multiplier (every backbone layer's channels times it;
            compute and parameters fall roughly with its square).  ImageNet weights need 1.0.
        mode: ``"2d"`` for images ``(N, 3, H, W)``, ``"3d"`` for volumes ``(N, 1, D, H, W)``.
        adapter_channels: output channels of the 1x1 adapter conv (2D).
        block_channels: filters of the grouped/depthwise block (2D).
        groups: groups of the grouped block (channel counts must be multiples of it).
        se_reduction: squeeze-and-excitation bottleneck ratio.
        dropout: before the linear head.
        volume_widths: 3D channel widths: the stem's, then one stride-2 block + SE per further width.
        volume_mean, volume_std: 3D input normalisation (default maps [0, 1] to [-1, 1]).

    Output: logits ``(N, num_classes)``.  A 5D input to the 2D mode, or a 4D input to the 3D
    mode, raises ValueError naming the expected shape.
    """

    def __init__(self, num_classes: int = 10, block: str = "grouped", pretrained: bool = False,
                 freeze_backbone: bool = False, input_size: int = 32, mode: str = "2d", adapter_channels: int = 256,
                 block_channels: int = 128, groups: int = 4, se_reduction: int = 16, dropout: float = 0.2,
                 volume_widths=(16, 32, 64), volume_mean: float = 0.5, volume_std: float = 0.5,
                 width_mult: float = 1.0):
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"block must be one of {_BLOCKS}, got {block!r}.")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")
        if mode == "3d" and (pretrained or freeze_backbone or width_mult != 1.0):
            raise ValueError("pretrained, freeze_backbone and width_mult apply to the 2D MobileNetV2 backbone only; "
                             "the 3D path is trained from scratch (its widths are volume_widths).")
        self.mode, self.block_kind, self.freeze_backbone = mode, block, bool(freeze_backbone)
        if mode == "2d":
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if pretrained else (CIFAR10_MEAN, CIFAR10_STD)
            self.normalize = Normalize(mean, std)
            self.stem = input_resize(input_size)
            self.backbone, channels = mobilenet_v2_features(pretrained, input_size, width_mult)
            self.blocks = nn.Sequential(
                conv_layer(2, channels, adapter_channels, 1, bias=False), batch_norm(2, adapter_channels),
                nn.ReLU(inplace=True),
                SqueezeExcitation(adapter_channels, se_reduction),
                _block(block, adapter_channels, block_channels, groups, dims=2),
                SqueezeExcitation(block_channels, se_reduction),
            )
            out_channels = block_channels
        else:
            widths = [int(w) for w in volume_widths]
            if len(widths) < 2:
                raise ValueError(f"volume_widths needs the stem's width and at least one block's, got {volume_widths}.")
            self.normalize = _VolumeNormalize(volume_mean, volume_std)
            self.stem = nn.Identity()
            self.backbone = nn.Sequential(conv_layer(3, 1, widths[0], 3, padding=1, bias=False),
                                          batch_norm(3, widths[0]), nn.ReLU(inplace=True))
            layers = []
            for cin, cout in zip(widths, widths[1:]):
                layers += [_block(block, cin, cout, groups, dims=3), SqueezeExcitation(cout, se_reduction, dims=3)]
            self.blocks = nn.Sequential(*layers)
            out_channels = widths[-1]
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1) if mode == "2d" else nn.AdaptiveAvgPool3d(1),
                                        nn.Flatten(), nn.Dropout(dropout), nn.Linear(out_channels, num_classes))
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.train(self.training)

    def load_backbone(self, source: nn.Module) -> HybridCNN:
        """Copy a trained :class:`~labutils.models.MobileNetV2`'s feature extractor into this backbone (2D only).

        The published hybrid took its backbone from ImageNet; this takes it from any MobileNetV2 of
        the same ``width_mult``, e.g. one trained on CIFAR-10 (notebook 06's phase 1).  Both must
        normalise their inputs the same way (both ``pretrained=False``: CIFAR-10's mean and std).
        Strides are not weights: a backbone trained at one ``input_size`` loads into another.
        Frozen flags stay as they are.  Returns ``self``.

        Raises:
            ValueError: the 3D mode, a source without ``features`` / ``normalize``, other
                normalisation statistics, or other layer shapes (another ``width_mult``).
        """
        if self.mode != "2d":
            raise ValueError("load_backbone applies to the 2D mode's MobileNetV2 backbone; the 3D path has none.")
        features, norm = getattr(source, "features", None), getattr(source, "normalize", None)
        if not isinstance(features, nn.Module) or not isinstance(norm, Normalize):
            raise ValueError(f"source must be a labutils MobileNetV2 (with .features and .normalize), got "
                             f"{type(source).__name__}.")
        if not (torch.equal(norm.mean.cpu(), self.normalize.mean.cpu())
                and torch.equal(norm.std.cpu(), self.normalize.std.cpu())):
            raise ValueError("source normalises its inputs with other statistics than this HybridCNN "
                             "(pretrained=True uses ImageNet's mean and std, False CIFAR-10's): build both alike.")
        mine, theirs = self.backbone.state_dict(), features.state_dict()
        wrong = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
        if wrong or len(mine) != len(theirs):
            raise ValueError(f"source's features do not match this backbone (another width_mult?): "
                             f"{len(wrong)} of {len(mine)} tensors differ, first {wrong[:1]}.")
        self.backbone.load_state_dict(theirs)
        return self

    def train(self, mode: bool = True) -> HybridCNN:
        """Set train/eval mode; a frozen backbone stays in eval mode (its BatchNorm statistics do not move)."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def _check_input(self, x: torch.Tensor) -> None:
        if self.mode == "2d" and (x.ndim != 4 or x.shape[1] != 3):
            raise ValueError(f"HybridCNN(mode='2d') expects images of shape (N, 3, H, W) in [0, 1], got "
                             f"{tuple(x.shape)}; volumes (N, 1, D, H, W) need mode='3d'.")
        if self.mode == "3d" and (x.ndim != 5 or x.shape[1] != 1):
            raise ValueError(f"HybridCNN(mode='3d') expects volumes of shape (N, 1, D, H, W) in [0, 1], got "
                             f"{tuple(x.shape)}; images (N, 3, H, W) need mode='2d'.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.classifier(self.blocks(self.backbone(self.stem(self.normalize(x)))))
