"""Network architectures of the course.

Every model takes float images in ``[0, 1]`` of shape ``(N, C, H, W)`` and normalises them in
its first layer (:class:`Normalize`), so attacks, OOD scores and widgets never deal with
normalised pixels.  Classifiers return logits ``(N, num_classes)``.

* :mod:`.classifiers`: :class:`SimpleCNN` (the plain baseline), :class:`FastNet` (a fast
  airbench-style CIFAR-10 network for CPUs), :class:`GrayscaleCNN` (28x28 greyscale: Fashion-MNIST);
* :mod:`.autoencoder`: :class:`ConvAutoencoder`, the reconstruction model of the OOD detector;
* :mod:`.layers`: depthwise-separable, grouped-convolution and squeeze-and-excitation blocks (2D/3D);
* :mod:`.mobilenet`: :class:`MobileNetV2` (torchvision's, adapted to 32x32 or resized inside the
  model; ImageNet weights from torch's cache, a clear error offline);
* :mod:`.hybrid`: :class:`HybridCNN` (MobileNetV2 backbone + SE + grouped/depthwise head; 3D mode);
* :mod:`.cost`: parameter count, FLOPs per image, measured latency and throughput;
* :mod:`.resnet`: :class:`CifarResNet`, He et al.'s CIFAR ResNets of depth ``6 n + 2`` (8, 14, 20, ...);
* :mod:`.dual_bn`: dual BatchNorm for AdvProp / EntProp (:func:`convert_to_dual_bn`, :func:`auxiliary_bn`,
  :func:`to_single_bn`; evaluation always uses the main BatchNorm).

:func:`build` makes a model from its registry name and keyword arguments; the checkpoint cache
stores those two things to rebuild and check a model.  A new architecture is registered in
:data:`MODELS`.
"""
from __future__ import annotations

from torch import nn

from .autoencoder import ConvAutoencoder
from .classifiers import CIFAR10_MEAN, CIFAR10_STD, FastNet, GrayscaleCNN, Normalize, SimpleCNN
from .cost import Latency, count_parameters, flops_per_image, measure_latency
from .dual_bn import (DualBatchNorm, auxiliary_bn, convert_to_dual_bn, drop_auxiliary_bn, dual_bn_layers, main_bn_state_dict,
                      to_single_bn)
from .hybrid import HybridCNN
from .layers import DepthwiseSeparableConv, GroupedConvBlock, SqueezeExcitation
from .mobilenet import MobileNetV2, PretrainedWeightsMissing, mobilenet_v2
from .resnet import CifarResNet

__all__ = ["Normalize", "SimpleCNN", "FastNet", "GrayscaleCNN", "ConvAutoencoder", "MODELS", "build", "CIFAR10_MEAN", "CIFAR10_STD",
           "DepthwiseSeparableConv", "GroupedConvBlock", "SqueezeExcitation", "MobileNetV2", "mobilenet_v2",
           "PretrainedWeightsMissing", "HybridCNN", "count_parameters", "flops_per_image", "measure_latency", "Latency",
           "DualBatchNorm", "convert_to_dual_bn", "auxiliary_bn", "to_single_bn", "drop_auxiliary_bn", "main_bn_state_dict",
           "dual_bn_layers", "CifarResNet"]

MODELS: dict[str, type[nn.Module]] = {
    "simple_cnn": SimpleCNN,
    "fastnet": FastNet,
    "grayscale_cnn": GrayscaleCNN,
    "autoencoder": ConvAutoencoder,
    "mobilenet_v2": MobileNetV2,
    "hybrid_cnn": HybridCNN,
    "resnet": CifarResNet,
}


def build(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered architecture by name (see :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {', '.join(MODELS)}.")
    return MODELS[name](**kwargs)
