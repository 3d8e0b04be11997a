"""Where and how a model runs: device, precision, seeds, and the model state an operation must restore.

* :func:`default_device`, :func:`model_device`: CUDA when present; the device of a model's first
  floating-point parameter or buffer (CPU for a model without any).
* :func:`autocast_dtype` and :func:`autocast`: bf16 autocast where the hardware computes bf16
  natively (``$LAB_PRECISION`` overrides), else fp32.
* :func:`frozen_eval`: eval mode with frozen parameters for the length of a ``with`` block, then
  every submodule's own ``training`` flag and every parameter's ``requires_grad`` flag back as
  they were (a deliberately frozen BatchNorm stays frozen; ``model.train(flag)`` would not keep it).
* :func:`seed_everything` seeds Python's, NumPy's and PyTorch's global generators (CPU and CUDA).
* :func:`channels_last`, :func:`model_to_channels_last`: the channels-last layout of a batch's
  or a model's rank (``channels_last`` for images, ``channels_last_3d`` for volumes).
* :data:`MALLOC_ENV`: glibc malloc settings that make CPU training and attacks faster.
"""
from __future__ import annotations

import os
import platform
import random
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import settings

__all__ = ["default_device", "model_device", "model_dtype_device", "autocast_dtype", "autocast", "cpu_supports_bf16",
           "seed_everything", "frozen_eval", "preserved_modes", "channels_last", "model_to_channels_last", "MALLOC_ENV",
           "malloc_tuned"]

# Channels-last layout by tensor rank: images (N, C, H, W) and volumes (N, C, D, H, W).
_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the channels-last layout of its rank (what oneDNN and cuDNN prefer): ``channels_last`` for
    images ``(N, C, H, W)``, ``channels_last_3d`` for volumes ``(N, C, D, H, W)``; other ranks unchanged."""
    fmt = _CHANNELS_LAST.get(x.ndim)
    return x if fmt is None else x.contiguous(memory_format=fmt)


def model_to_channels_last(model: nn.Module) -> nn.Module:
    """Store ``model``'s convolution weights channels-last (in place; returns the model).

    2D weights (4-D tensors) get ``channels_last``, 3D ones (5-D) ``channels_last_3d``; a model with
    both kinds, or with neither, is left as it is (``Module.to`` takes one format for all).
    """
    ranks = {p.ndim for p in model.parameters()} & set(_CHANNELS_LAST)
    return model.to(memory_format=_CHANNELS_LAST[ranks.pop()]) if len(ranks) == 1 else model


def default_device() -> torch.device:
    """The device ``$LAB_DEVICE`` names: ``auto`` (default) is CUDA when available, else the CPU.

    ``cuda`` or ``mps`` (Apple silicon, opt-in until measured on such a machine) that this machine lacks
    is a RuntimeError saying what was found, never a silent fall back to the CPU.
    """
    choice = settings.device()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("LAB_DEVICE=cuda, but PyTorch finds no CUDA GPU here (torch.cuda.is_available() is "
                           f"False; torch {torch.__version__}). Unset LAB_DEVICE (auto) or set LAB_DEVICE=cpu.")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("LAB_DEVICE=mps, but PyTorch's Metal backend is not available here "
                           "(torch.backends.mps.is_available() is False: it needs an Apple-silicon Mac and macOS 12.3 "
                           "or later). Unset LAB_DEVICE (auto) or set LAB_DEVICE=cpu.")
    return torch.device(choice)


def model_dtype_device(model: nn.Module, fallback: torch.Tensor | None = None) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the first floating-point parameter (else buffer) of ``model``.

    A model without any (e.g. a bare ``nn.Flatten``) gets ``fallback``'s dtype and device, or
    float32 on the CPU.
    """
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype, t.device
    for t in model.buffers():
        if t.is_floating_point():
            return t.dtype, t.device
    if fallback is not None:
        return fallback.dtype, fallback.device
    return torch.float32, torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """Device of ``model``'s first floating-point parameter or buffer; the CPU when it has none."""
    return model_dtype_device(model)[1]


@lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (x86 AVX512-BF16/AMX, or Arm BF16)."""
    flags = ""
    if platform.system() == "Linux":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    elif platform.system() == "Darwin":
        import subprocess

        try:
            flags = subprocess.run(["sysctl", "-a"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        return "hw.optional.arm.FEAT_BF16: 1" in flags
    words = set(flags.split())
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype to train/attack with on ``device``: ``torch.bfloat16`` or None (fp32).

    ``precision``: ``"fp32"``, ``"bf16"`` or ``"auto"`` (``$LAB_PRECISION`` when set, else bf16
    where the GPU or CPU computes it natively).
    """
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}.")
    if settings.precision() is not None:  # $LAB_PRECISION overrides "auto"
        return autocast_dtype(device, settings.precision())
    if device.type == "cuda":
        # native bf16 only (Ampere and newer): a T4 emulates it, slower than fp32
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op context when ``dtype`` is None."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (``torch.manual_seed`` also seeds CUDA).

    A side effect on the whole process: everything that draws from the global generators
    afterwards (dropout, ``torch.randn`` without a generator) is repeatable on the same machine.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def preserved_modes(model: nn.Module):
    """Restore every submodule's ``training`` flag and every parameter's ``requires_grad`` on exit.

    Changes nothing itself: the ``with`` block may call ``model.train()``, ``model.eval()`` or
    freeze parameters; afterwards each module and parameter is as it was, also after an error.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


@contextmanager
def frozen_eval(model: nn.Module):
    """Eval mode with frozen parameters inside the ``with`` block; modes and flags restored exactly on exit.

    Inside, ``model.eval()`` holds and no parameter requires a gradient: a backward pass computes
    input gradients only (what an attack needs) and nothing accumulates in ``param.grad``.  On
    exit each submodule's own ``training`` flag and each parameter's ``requires_grad`` come back
    (see :func:`preserved_modes`), so a BatchNorm that was deliberately left in eval mode inside a
    training model stays so.  Used by every attack, prediction and score in ``labutils``.
    """
    with preserved_modes(model):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        yield model


# glibc malloc settings for CPU training and attacks.  By default glibc serves every block above
# 32 MiB (a batch of activations) with a fresh mmap and unmaps it on free, so each training or
# attack step page-faults its activations in again: a third or more of a FastNet step on a 2-core
# CPU.  These keep freed memory in the heap for reuse instead (peak RSS about 15 % higher).  glibc
# reads them when a process starts: the Makefile exports them and the runner passes them to its
# notebook kernels.  Other C libraries (macOS, Windows) ignore them.  ``make bench`` measures them.
MALLOC_ENV = {
    "MALLOC_MMAP_MAX_": "0",  # never mmap: big blocks come from the heap and go back to it
    "MALLOC_TRIM_THRESHOLD_": str(64 << 30),  # do not return the top of the heap to the OS
    "MALLOC_TOP_PAD_": str(256 << 20),  # grow the heap in 256 MiB steps
}


def malloc_tuned(environ=None) -> bool:
    """True when ``environ`` (default: this process's) carries every setting of :data:`MALLOC_ENV`."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in MALLOC_ENV.items())
