"""Image tensors: uint8 to float, the ``[0, 1]`` float batch check, resizing to a model's format.

The library works on float images ``(N, C, H, W)`` in ``[0, 1]`` (models normalise inside);
datasets are stored as uint8 0..255.
"""
from __future__ import annotations

import torch

__all__ = ["to_float", "as_float_images", "check_images", "match_format"]


def to_float(images: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` in 0..255 -> float32 in ``[0, 1]`` (on ``device``)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {images.dtype}.")
    return images.to(device).float().div_(255)


def _shape_text(volumes: bool) -> str:
    return "(N, C, H, W) (or volumes (N, C, D, H, W))" if volumes else "(N, C, H, W)"


def check_images(x: torch.Tensor, *, name: str = "images", atol: float = 1e-6, volumes: bool = False) -> None:
    """Raise a clear error unless ``x`` is a float batch ``(N, C, H, W)`` with values in ``[0, 1]``.

    ``volumes=True`` also accepts volumes ``(N, C, D, H, W)`` (the 3D hybrid's input).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got {x.dtype}; "
                        "convert uint8 images with labutils.data.to_float.")
    if x.ndim != 4 and not (volumes and x.ndim == 5):
        raise ValueError(f"{name} must have shape {_shape_text(volumes)}, got {tuple(x.shape)}; "
                         "add a batch dimension with x.unsqueeze(0) for a single image.")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -atol or hi > 1 + atol:
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                             "pass un-normalised images (the models normalise inside).")


def match_format(images: torch.Tensor, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Resize uint8 images to ``size x size`` and repeat grey to ``channels`` (e.g. Fashion-MNIST -> 3x32x32)."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError("match_format expects uint8 images of shape (N, C, H, W).")
    x = images
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"cannot turn {x.shape[1]} channels into {channels}.")
        x = x.expand(-1, channels, -1, -1)
    return x.contiguous()


def as_float_images(images: torch.Tensor, device: torch.device | str | None = None, *,
                    name: str = "images", volumes: bool = False) -> torch.Tensor:
    """Float images in ``[0, 1]`` on ``device`` from uint8 (converted) or float (checked) images ``(N, C, H, W)``.

    uint8 becomes float32 (:func:`to_float`); float images keep their dtype after
    :func:`check_images`.  ``device`` None keeps the images where they are.  ``volumes=True``
    also accepts volumes ``(N, C, D, H, W)``.
    """
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        if images.ndim != 4 and not (volumes and images.ndim == 5):
            raise ValueError(f"{name} must have shape {_shape_text(volumes)}, got {tuple(images.shape)}.")
        return to_float(images, device)
    check_images(images, name=name, volumes=volumes)
    return images if device is None else images.to(device)
