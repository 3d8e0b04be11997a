"""What a model costs: parameters, FLOPs per image, and measured latency / throughput.

* :func:`count_parameters`: all parameters, or only those that require a gradient.
* :func:`flops_per_image`: PyTorch's ``FlopCounterMode`` on one image.  It counts
  **FLOPs = 2 x multiply-adds** of convolutions and matrix products (a 3x3 conv from C to C'
  channels costs ``2 * 9 * C * C'`` per output pixel); BatchNorm, activations, pooling, resizing
  and the SE gates' elementwise products are not counted.  Divide by 2 for multiply-adds (MACs),
  the unit MobileNet papers quote (MobileNetV2 at 224x224: about 300 M MACs = 600 M FLOPs).
* :func:`measure_latency`: median wall-clock time of forward passes on random inputs after a
  warm-up, in eval mode without autograd (``torch.inference_mode`` inside
  :func:`labutils.runtime.frozen_eval`, so every module's mode comes back), CUDA synchronised
  around each pass; returns a :class:`Latency` naming the device, precision, batch size and
  (on the CPU) thread count.  Per-image latency is measured at batch 1, throughput at a large
  batch (e.g. 256): two calls.  Numbers depend on the machine and its load; compare models
  measured in the same session.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import runtime

__all__ = ["count_parameters", "flops_per_image", "measure_latency", "Latency"]

_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (shared parameters once); with ``trainable_only``,
    only those with ``requires_grad`` (a frozen backbone then counts 0)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _sample_input(model: nn.Module, shape, device: torch.device | None = None) -> torch.Tensor:
    dtype, model_dev = runtime.model_dtype_device(model)
    gen = torch.Generator().manual_seed(0)
    return torch.rand(tuple(shape), generator=gen).to(device=device or model_dev, dtype=dtype)


def flops_per_image(model: nn.Module, input_shape) -> int:
    """FLOPs (2 x multiply-adds; convs and matrix products only) of one forward pass on one input.

    ``input_shape``: the shape of one input without the batch axis, e.g. ``(3, 32, 32)`` for a
    CIFAR-10 image or ``(1, 16, 16, 16)`` for a volume.  The model runs once in eval mode on a
    random input in ``[0, 1]`` (its mode and ``requires_grad`` flags restored afterwards).
    """
    from torch.utils.flop_counter import FlopCounterMode  # imported on first use: it costs seconds

    x = _sample_input(model, (1, *input_shape))
    counter = FlopCounterMode(display=False)
    with runtime.frozen_eval(model), torch.inference_mode(), counter:
        model(x)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Latency:
    """Result of :func:`measure_latency` (times in seconds; ``asdict(result)`` for JSON)."""

    seconds_per_batch: float  # median over the repeats
    seconds_per_image: float  # seconds_per_batch / batch_size
    images_per_second: float  # batch_size / seconds_per_batch
    batch_size: int
    device: str  # e.g. "cpu", "cuda:0"
    precision: str  # "fp32", or "bf16 autocast" when autocast was on
    repeats: int
    warmup: int
    threads: int | None  # torch's intra-op CPU threads (None on a GPU)
    min_seconds_per_batch: float  # the fastest repeat, for a sense of the spread

    def to_dict(self) -> dict:
        return asdict(self)


def measure_latency(model: nn.Module, input_shape, batch_size: int = 1, warmup: int = 5, repeats: int = 20,
                    device: torch.device | str | None = None, precision: str = "fp32") -> Latency:
    """Median wall-clock seconds of one forward pass on ``batch_size`` random inputs of ``input_shape``.

    ``input_shape`` is one input's shape without the batch axis (``(3, 32, 32)``).  ``device``:
    None measures where the model is; another device measures a copy of the model moved there
    (the model itself stays put).  ``precision``: ``"fp32"`` (default; the model's own dtype),
    ``"bf16"`` (autocast) or ``"auto"`` (:func:`labutils.runtime.autocast_dtype`).  ``warmup``
    passes are run first and not timed; each of ``repeats`` passes is timed on its own (CUDA
    synchronised before and after) and the median is reported.  Runs under
    ``torch.inference_mode()`` inside :func:`labutils.runtime.frozen_eval`: eval mode while
    measuring, every module's mode and parameter flag restored afterwards.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size >= 1, repeats >= 1 and warmup >= 0; got {batch_size}, {repeats}, {warmup}.")
    target = torch.device(device) if device is not None else runtime.model_device(model)
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", torch.cuda.current_device())
    net = model if runtime.model_device(model) == target else copy.deepcopy(model).to(target)
    autocast_dtype = runtime.autocast_dtype(target, precision)
    x = _sample_input(net, (batch_size, *input_shape), target)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    times = []
    with runtime.frozen_eval(net), torch.inference_mode(), runtime.autocast(target, autocast_dtype):
        for _ in range(warmup):
            net(x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            sync()
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    dtype_name = _DTYPE_NAMES.get(x.dtype, str(x.dtype).replace("torch.", ""))
    return Latency(
        seconds_per_batch=median, seconds_per_image=median / batch_size, images_per_second=batch_size / median,
        batch_size=batch_size, device=str(target),
        precision=f"{_DTYPE_NAMES[autocast_dtype]} autocast" if autocast_dtype is not None else dtype_name,
        repeats=repeats, warmup=warmup, threads=torch.get_num_threads() if target.type == "cpu" else None,
        min_seconds_per_batch=min(times))
