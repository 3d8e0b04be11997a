"""Common corruptions at five severities, generated on the fly (in the spirit of CIFAR-10-C).

Hendrycks & Dietterich (ICLR 2019) measure robustness to common corruptions: each test image is
corrupted by each corruption type at severities 1 (mild) to 5 (strong), and the robust accuracy
RA is the mean accuracy over types and severities (EntProp's RA; :func:`robust_accuracy`).
EntProp also reports Hscore ``2 SA RA / (SA + RA)`` (:func:`hscore`), the harmonic mean of
clean (SA) and robust accuracy.

Here the corruptions are torch tensor operations on float images ``(N, C, H, W)`` in ``[0, 1]``
(C = 1 or 3, H, W >= 8), on the images' device, so a benchmark is made on the fly instead of
read from CIFAR-10-C's files.  The severity parameters (:data:`SEVERITY_PARAMS`) are the ones
of the original CIFAR-10 script (``ImageNet-C/create_c/make_cifar_c.py`` in hendrycks/robustness).

Implemented (:data:`CORRUPTIONS`): 10 of the benchmark's 15 types (gaussian_noise, shot_noise,
impulse_noise, defocus_blur, zoom_blur, fog, brightness, contrast, pixelate, jpeg_compression)
and 2 of its 4 extra "validation" types (speckle_noise, gaussian_blur).  Not implemented:
glass_blur, motion_blur, snow, frost (needs the frost photographs), elastic_transform, spatter,
saturate.  An RA over :data:`CORRUPTIONS` is therefore not the published CIFAR-10-C number.

Where this differs from the original (which works on 32x32 PIL images with NumPy, scikit-image,
OpenCV, SciPy, ImageMagick/Wand and stores uint8):

* all: float in, float out, clipped to ``[0, 1]`` (the original stores ``uint8(255 x)``,
  truncating); only JPEG quantises to uint8 (it must).  Random draws come from torch
  (``generator``), not NumPy's global state, so images differ from CIFAR-10-C's own but the
  distributions are the same; for C = 1 the operations act on the single channel.
* impulse_noise: salt or pepper on a fraction of the *values* (each channel of each pixel
  independently, half salt), as ``skimage.util.random_noise(mode="s&p")`` does on an RGB array.
* gaussian_blur: scipy/scikit-image's kernel (radius ``int(4 sigma + 0.5)``) and border
  (edge pixels repeated, ``mode="nearest"``), as a depthwise ``conv2d``.
* defocus_blur: the original's kernel (an aliased disk on a 17x17 grid, anti-aliased by a 3x3
  Gaussian, cropped to its non-zero part) as a ``conv2d`` with reflected borders (OpenCV's
  ``filter2D`` default, ``BORDER_REFLECT_101``).
* zoom_blur: the original's zoom factors (the same ``np.arange`` floats, which include 1.06 and
  1.11 but stop at 1.15, 1.20, 1.25 for severities 3-5); each zoom crops the centre and enlarges
  it by bilinear interpolation with ``align_corners=True`` (= ``scipy.ndimage.zoom(order=1)``);
  rectangles are zoomed per axis.
* fog: a diamond-square "plasma" fractal as in the original (same start amplitude 100, noise
  ``U(-w^2, w^2)`` at each level, ``w`` divided by the severity's decay per level, wrapping
  edges, min-max normalised), drawn per image in torch on a side of the next power of two
  >= max(H, W) (the original: always 32) and cropped; one map for all channels, then
  ``(x + s map) max(x) / (max(x) + s)`` per image as in the original.
* brightness: the original raises the HSV value channel ``V = max_c x`` by ``c``.  With hue and
  saturation fixed every channel is proportional to V, so this is computed exactly without an
  HSV round trip: ``x V' / V`` with ``V' = min(V + c, 1)`` (a black pixel becomes grey V').  For
  C = 1 it is ``min(x + c, 1)``.
* contrast: ``(x - mean) c + mean`` with the mean per image *and channel*, as the original
  (``np.mean(axis=(0, 1))`` over H and W).
* pixelate: PIL's ``BOX`` resampling (point-sampled box filter, re-implemented as two small
  resampling matrices) down to ``int(side c)`` and back up, which for the upsampling is nearest
  neighbour; no uint8 rounding between the two passes.
* jpeg_compression: ``torchvision.io.encode_jpeg`` / ``decode_jpeg`` (libjpeg, the same IJG
  quality scaling as PIL's ``save(quality=)``; on CIFAR-10 test images the decoded images
  equal PIL's exactly), on the CPU, per image.  torchvision 0.29 deprecates this codec;
  PIL would be a drop-in replacement.
"""
from __future__ import annotations

import math
import numbers
import warnings
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.checks import check_labels
from ..data import as_float_images, check_images
from ..runtime import frozen_eval, model_dtype_device
from .curves import predictions

__all__ = ["CORRUPTIONS", "CORRUPTION_GROUPS", "RANDOM_CORRUPTIONS", "SEVERITIES", "SEVERITY_PARAMS", "corrupt",
           "corruption_accuracy", "robust_accuracy", "hscore"]

SEVERITIES = (1, 2, 3, 4, 5)

#: Parameter per corruption and severity 1..5, all from ``make_cifar_c.py`` (hendrycks/robustness).
SEVERITY_PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std of additive N(0, c^2) noise ([0, 1] scale)
    "shot_noise": (500, 250, 100, 75, 50),  # photon count per unit intensity: Poisson(c x) / c
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # fraction of values set to 0 or 1
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),  # disk radius, anti-alias sigma (px)
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # zoom factors np.arange(1, c, 0.01): 1.00, 1.01, ...
    "fog": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),  # strength, fractal decay (lower: rougher)
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to the HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor on deviations from the channel mean
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # downsampled side / side
    "jpeg_compression": (80, 65, 58, 50, 40),  # JPEG quality (0..100)
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # std of multiplicative noise: x (1 + N(0, c^2))
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma (px)
}

#: The corruption names, in the original benchmark's order (its 15 types first, then the extras).
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITY_PARAMS)

#: The benchmark's categories (speckle noise and Gaussian blur are its extra, held-out types).
CORRUPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "zoom_blur"),
    "weather": ("fog",),
    "digital": ("brightness", "contrast", "pixelate", "jpeg_compression"),
    "extra": ("speckle_noise", "gaussian_blur"),
}

#: Corruptions that draw random numbers (from ``generator``); the others are deterministic.
RANDOM_CORRUPTIONS = frozenset({"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "fog"})


# ---------------------------------------------------------------- noise

def _rand(x: torch.Tensor, generator, normal: bool = False) -> torch.Tensor:
    draw = torch.randn if normal else torch.rand
    return draw(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _gaussian_noise(x, c, generator):
    return x + c * _rand(x, generator, normal=True)


def _shot_noise(x, c, generator):
    return torch.poisson(x * c, generator=generator) / c


def _impulse_noise(x, c, generator):
    flipped = _rand(x, generator) < c
    salt = (_rand(x, generator) < 0.5).to(x.dtype)
    return torch.where(flipped, salt, x)


def _speckle_noise(x, c, generator):
    return x + x * (c * _rand(x, generator, normal=True))


# ---------------------------------------------------------------- blur

def _depthwise(x: torch.Tensor, kernel: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Each channel filtered by the same odd square ``kernel`` (correlation), borders by ``padding_mode``."""
    n, c, h, w = x.shape
    r = kernel.shape[-1] // 2
    flat = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode=padding_mode)
    return F.conv2d(flat, kernel.to(x.device, x.dtype)[None, None]).reshape(n, c, h, w)


def _gaussian_taps(sigma: float, radius: int) -> torch.Tensor:
    """Normalised 1D Gaussian weights at offsets ``-radius..radius`` (float64)."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _gaussian_blur(x, sigma, generator):
    g = _gaussian_taps(sigma, int(4.0 * sigma + 0.5))  # scipy.ndimage's truncate=4
    return _depthwise(x, torch.outer(g, g), "replicate")


def _disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The original's defocus kernel: a normalised disk on a 17x17 grid, blurred by a 3x3 Gaussian, cropped."""
    half = 8 if radius <= 8 else math.ceil(radius)
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius ** 2).double()
    disk /= disk.sum()
    g = _gaussian_taps(alias_blur, 1 if radius <= 8 else 2)
    k = F.conv2d(disk[None, None], torch.outer(g, g)[None, None], padding=g.numel() // 2)[0, 0]
    nonzero = (k > 0).nonzero()
    r = int((nonzero - half).abs().max())  # symmetric crop to the non-zero support
    return k[half - r:half + r + 1, half - r:half + r + 1]


def _defocus_blur(x, c, generator):
    return _depthwise(x, _disk_kernel(*c), "reflect")


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """The centre ``1/zoom`` of each image enlarged ``zoom`` times (bilinear) and cropped to ``(H, W)``."""
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / zoom), math.ceil(w / zoom)
    top, left = (h - ch) // 2, (w - cw) // 2
    oh, ow = round(ch * zoom), round(cw * zoom)
    big = F.interpolate(x[..., top:top + ch, left:left + cw], size=(oh, ow), mode="bilinear",
                        align_corners=True)
    t, l = (oh - h) // 2, (ow - w) // 2
    return big[..., t:t + h, l:l + w]


def _zoom_blur(x, stop, generator):
    zooms = np.arange(1, stop, 0.01).tolist()  # the original's floats: its end points and roundings
    out = x.clone()  # the original averages the image with all its zooms (1.00 included)
    for z in zooms:
        out += _clipped_zoom(x, z)
    return out / (len(zooms) + 1)


# ---------------------------------------------------------------- weather

def _plasma(n: int, size: int, decay: float, generator, device, dtype) -> torch.Tensor:
    """``n`` diamond-square fractals ``(n, size, size)`` in ``[0, 1]``; ``size`` a power of two, edges wrap."""
    m = torch.zeros(n, size, size, device=device, dtype=dtype)
    step, wibble = size, 100.0

    def jitter(total):  # mean of the four neighbours plus U(-wibble^2, wibble^2)
        u = torch.rand(total.shape, generator=generator, device=device, dtype=dtype)
        return total / 4 + wibble * wibble * (2 * u - 1)

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        around = corners + corners.roll(-1, 1)  # square step: centre of each square
        around = around + around.roll(-1, 2)
        m[:, half::step, half::step] = jitter(around)
        centres = m[:, half::step, half::step]
        # diamond step: the edge midpoints, from the two corners and the two centres beside each
        m[:, ::step, half::step] = jitter(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        m[:, half::step, ::step] = jitter(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step, wibble = half, wibble / decay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def _fog(x, c, generator):
    strength, decay = c
    n, _, h, w = x.shape
    size = 1 << max(1, math.ceil(math.log2(max(h, w))))
    fog = _plasma(n, size, decay, generator, x.device, x.dtype)[:, None, :h, :w]
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * fog) * top / (top + strength)


# ---------------------------------------------------------------- digital

def _brightness(x, c, generator):
    value = x.amax(dim=1, keepdim=True)  # HSV value
    raised = (value + c).clamp(max=1)
    return torch.where(value > 0, x * raised / value.clamp_min(1e-12), raised.expand_as(x))


def _contrast(x, c, generator):
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * c + mean


def _box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of PIL's ``BOX`` resize along one axis (float64, rows sum to 1).

    PIL samples a box of width ``max(scale, 1)`` input pixels centred on each output pixel at the
    input pixels' centres; upsampling thus repeats the nearest pixel.
    """
    scale = n_in / n_out
    width = max(scale, 1.0)
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    t = (torch.arange(n_in, dtype=torch.float64)[None, :] + 0.5 - centre[:, None]) / width
    weight = ((t > -0.5) & (t <= 0.5)).double()
    return weight / weight.sum(1, keepdim=True)


def _box_resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    mh = _box_matrix(x.shape[-2], h).to(x.device, x.dtype)
    mw = _box_matrix(x.shape[-1], w).to(x.device, x.dtype)
    return torch.einsum("oh,nchw,pw->ncop", mh, x, mw)


def _pixelate(x, c, generator):
    h, w = x.shape[-2:]
    small = _box_resize(x, max(1, int(h * c)), max(1, int(w * c)))
    return _box_resize(small, h, w)


def _jpeg_compression(x, quality, generator):
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    u8 = (x * 255).round().clamp(0, 255).to("cpu", torch.uint8)
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its JPEG codec (for torchcodec): one per call
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        encoded = encode_jpeg([img.contiguous() for img in u8], quality=int(quality))
        decoded = decode_jpeg(encoded, mode=ImageReadMode.UNCHANGED)
    return torch.stack(decoded).to(x.device, x.dtype) / 255


_FUNCTIONS = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "zoom_blur": _zoom_blur, "fog": _fog, "brightness": _brightness,
    "contrast": _contrast, "pixelate": _pixelate, "jpeg_compression": _jpeg_compression,
    "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur,
}


# ---------------------------------------------------------------- checks

def _canonical(name) -> str:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _FUNCTIONS:
        raise ValueError(f"Unknown corruption {name!r}; use one of: {', '.join(CORRUPTIONS)}.")
    return key


def _check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise TypeError(f"severity must be an integer 1..5, got {severity!r} ({type(severity).__name__}).")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be an integer 1..5 (1 mild, 5 strong), got {severity}.")
    return int(severity)


def _check_shape(x: torch.Tensor) -> None:
    check_images(x, name="x")
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"x must have 1 (grey) or 3 (RGB) channels, got shape {tuple(x.shape)}; "
                         "images are (N, C, H, W).")
    if h < 8 or w < 8:
        raise ValueError(f"x's images must be at least 8x8 pixels, got {h}x{w}.")


def _check_generator(generator, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but x is on {device}; "
                         f"create it with torch.Generator(device=x.device).manual_seed(seed).")


# ---------------------------------------------------------------- API

def corrupt(x: torch.Tensor, name: str, severity: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A corrupted copy of ``x``: corruption ``name`` at ``severity``.

    Args:
        x: float images ``(N, C, H, W)`` in ``[0, 1]``, C = 1 or 3, H, W >= 8, any device; not modified.
        name: one of :data:`CORRUPTIONS` (case, spaces and hyphens are forgiven: "Gaussian Noise").
        severity: integer 1 (mild) .. 5 (strong); parameters in :data:`SEVERITY_PARAMS`.
        generator: a ``torch.Generator`` on x's device for the random corruptions
            (:data:`RANDOM_CORRUPTIONS`), for repeatable results; None uses torch's global RNG.
            Deterministic corruptions ignore it.

    Returns:
        float tensor of x's shape, dtype and device, in ``[0, 1]`` (float16/bfloat16 are computed in
        float32).  JPEG goes through the CPU.
    """
    key = _canonical(name)
    severity = _check_severity(severity)
    _check_shape(x)
    if key in RANDOM_CORRUPTIONS:
        _check_generator(generator, x.device)
    if x.shape[0] == 0:
        return x.clone()
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    out = _FUNCTIONS[key](work.clamp(0, 1), SEVERITY_PARAMS[key][severity - 1], generator)
    return out.clamp_(0, 1).to(x.dtype)


def _cell_seed(seed: int, name: str, severity: int) -> int:
    """A seed for one (corruption, severity) cell, independent of which other cells are evaluated."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode()) * 8 + severity) % (2 ** 63)


def corruption_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, names: Sequence[str] = CORRUPTIONS,
                        severities: Sequence[int] = SEVERITIES, batch_size: int = 500, seed: int = 0,
                        progress: bool = False):
    """Accuracy of ``model`` on corrupted copies of ``(x, y)``, per corruption and severity.

    Args:
        model: a classifier returning logits, or ``{name: classifier}`` (every batch is corrupted once and
            classified by each, all on the first one's device); evaluated in eval mode with frozen parameters,
            modes and ``requires_grad`` flags restored afterwards (:func:`labutils.runtime.frozen_eval`).
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8 (converted per batch); each batch is
            moved to the model's device and corrupted there.
        y: int labels ``(N,)``.
        names: corruptions (default all of :data:`CORRUPTIONS`); severities: integers in 1..5.
        batch_size: images corrupted and classified at once.
        seed: seeds one generator per (corruption, severity) on the model's device, so a cell is
            repeatable whatever else is evaluated (same device and batch size; CPU and GPU draw differently).
        progress: a tqdm bar over the cells.

    Returns:
        DataFrame: index ``corruption`` (names), columns ``severity``, accuracy fractions in ``[0, 1]``;
        :func:`robust_accuracy` averages it.  With a mapping of models, ``{name: DataFrame}``.  Needs
        pandas (the ``course`` extra).
    """
    import contextlib

    import pandas as pd
    from tqdm.auto import tqdm

    many = isinstance(model, Mapping)
    nets = dict(model) if many else {"model": model}
    if not nets or not all(isinstance(m, nn.Module) for m in nets.values()):
        raise TypeError("model must be an nn.Module or a non-empty {name: nn.Module} mapping.")

    names = [_canonical(n) for n in names]
    severities = [_check_severity(s) for s in severities]
    if not names or not severities:
        raise ValueError("names and severities must not be empty.")
    if len(set(names)) < len(names) or len(set(severities)) < len(severities):
        raise ValueError(f"names and severities must not repeat, got {names} and {severities}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}.")
    n = x.shape[0]
    if n == 0:
        raise ValueError("x holds no images.")
    check_labels(y, n)
    _check_shape(as_float_images(x[:1], name="x"))
    y = y.cpu()
    _, device = model_dtype_device(next(iter(nets.values())))
    tables = {k: pd.DataFrame(np.nan, index=pd.Index(names, name="corruption"),
                              columns=pd.Index(severities, name="severity"), dtype=float) for k in nets}
    with contextlib.ExitStack() as stack, tqdm(total=len(names) * len(severities), disable=not progress,
                                               desc="corruptions") as bar:
        for net in nets.values():
            stack.enter_context(frozen_eval(net))
        for name in names:
            for s in severities:
                gen = torch.Generator(device=device).manual_seed(_cell_seed(seed, name, s))
                correct = dict.fromkeys(nets, 0)
                for i in range(0, n, batch_size):
                    xc = corrupt(as_float_images(x[i:i + batch_size], device, name="x"), name, s, generator=gen)
                    for k, net in nets.items():
                        correct[k] += int((predictions(net, xc) == y[i:i + batch_size]).sum())
                for k in nets:
                    tables[k].loc[name, s] = correct[k] / n
                bar.update(1)
    return tables if many else tables["model"]


def _fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number in [0, 1], got {value!r}.")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value}; divide percentages by 100.")
    return float(value)


def robust_accuracy(table) -> float:
    """RA: the mean accuracy over corruptions and severities of a :func:`corruption_accuracy` table.

    ``table``: a DataFrame or array of accuracy fractions in ``[0, 1]`` (no missing cells).
    """
    values = np.asarray(table.to_numpy() if hasattr(table, "to_numpy") else table, dtype=float)
    if values.size == 0:
        raise ValueError("the accuracy table is empty.")
    if not np.isfinite(values).all():
        raise ValueError("the accuracy table has missing or non-finite cells.")
    if values.min() < 0 or values.max() > 1:
        raise ValueError(f"accuracies must be fractions in [0, 1], got values in "
                         f"[{values.min():.4g}, {values.max():.4g}]; divide percentages by 100.")
    return float(values.mean())


def hscore(sa: float, ra: float) -> float:
    """Hscore ``2 SA RA / (SA + RA)``: harmonic mean of clean (SA) and robust (RA) accuracy, fractions in ``[0, 1]``.

    0 when both are 0.  E.g. ``hscore(0.8, 0.5) = 0.615...``.
    """
    sa, ra = _fraction(sa, "sa"), _fraction(ra, "ra")
    return 0.0 if sa + ra == 0 else 2 * sa * ra / (sa + ra)
