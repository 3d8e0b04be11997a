"""How long the series takes on this machine: a short calibration and the expected time per notebook.

:func:`calibrate` times a few FastNet training steps at the precision this
machine trains in; divided by the same measurement on the reference machine
(:data:`REFERENCE`) it gives a speed factor, and :func:`expected_seconds`
scales the reference machine's notebook times (:data:`EXPECTED_SECONDS`,
measured with an empty checkpoint cache) by it.  The runner uses this for its
estimate of the time left; once a run has finished, its own per-notebook
times (``runs/<profile>/timings.json``) replace the estimate.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from ..files import load_json_dict, merge_json_dict

__all__ = ["REFERENCE", "EXPECTED_SECONDS", "calibrate", "speed_factor", "expected_seconds", "load_timings",
           "save_timings"]

# The reference machine: a student's laptop-class CPU as CI reproduces it (2 cores, AVX2 kernels, fp32):
# ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 LAB_PRECISION=fp32 on a 2-core AMD EPYC.
REFERENCE = {
    "machine": "2-core AMD EPYC, AVX2 kernels, fp32",
    "step_seconds": 0.60,  # calibrate() there: 0.59-0.63 s for one FastNet training step on 256 images
}
FILE = "timings.json"  # in a run's folder, beside conditions.json
# Seconds per notebook on the reference machine, empty checkpoint cache (the notebook trains what it needs).
# smoke: measured (median of `make seeds`' five fp32 runs).  standard: measured by `make run` on the reference
# machine with an empty model cache (2026-12-02: 712 s, of which FastNet 454 s and the simple CNN 213 s of
# training; 157 s with the autoencoder's 117 s; 120 s; 629 s: 1618 s in all).  A run of the standard series
# replaces them with this machine's own times (runs/standard/timings.json).  04 and 05 (2026-12-02) were run on a
# 2-core Zen 3 AVX2 CPU in fp32 whose calibrate() gives 1.14 s (1.9x the reference) and are divided by 1.9: standard
# 04 from an empty cache 1735 s there (training 304 + 491 + 415 + 380 s for standard, fast FGSM, FGSM-augmented,
# free), 05 with 04's models cached 164-175 s; smoke (seeds 0-4) 04 103-139 s, 05 47-50 s there.  06 (2026-12-04) on a
# 2-core Zen 3 AVX2 CPU in fp32 whose calibrate() gave 0.68 s (1.14x the reference), divided by 1.14: standard 2025 s
# with notebooks 00 and 04's models cached (training MobileNetV2 1298 s, the two hybrids' heads 198 + 144 s; 291 s once
# everything is cached), 2890 s from an empty cache; smoke 67 s with 00 and 04's models cached.  04 re-measured
# (2026-12-05, five models with the random-start ablation) on a 2-core AVX-512 EPYC running AVX2 kernels in fp32, 0.84x
# the reference's time by calibrate(): standard 996 s from an empty cache (training 141 + 169 + 211 + 221 + 130 s for
# standard, FGSM-augmented, fast FGSM without its start, fast FGSM, free), divided by 0.84; smoke fp32 66-74 s.  On
# the same machine: 05 standard 116 s with 04's models cached; 06 standard 1005 s with only 04's robust model cached
# (the simple CNN 200 s, MobileNetV2 561 s, each hybrid's head 61 s of training), both divided by 0.84.  07 standard
# 717 s from an empty cache (five GrayscaleCNNs, about 290 s of training; 3 x 1000 images certified at sigma 0.5 and
# 2 x 1000 at 0.25 and 1, n = 1000), divided by the runner's 0.81 calibration; 08 standard 851 s from an
# empty cache (five half-width FastNets, 756 s of training: 10.2 vanilla units of 4 epochs on 30,000 images), / 0.81.
# 09 standard (2026-12-05) 861 s with its three ResNet-8s cached (their training: 114 s), so about 975 s from an empty
# cache (13 models, 669 + 114 s of training; 65 grid cells of 200 images, 188 s), / 0.81; smoke about 45 s (27 s training).
# 10 (2026-12-05) trains nothing: about 4 s in every profile (reading the metrics, six figures), kernel start included.
EXPECTED_SECONDS: dict[str, dict[str, float]] = {
    "smoke": {"00": 44.0, "01": 16.0, "02": 21.0, "03": 42.0, "04": 80.0, "05": 25.0, "06": 60.0, "07": 50.0,
              "08": 60.0, "09": 60.0, "10": 5.0},
    "standard": {"00": 712.0, "01": 157.0, "02": 120.0, "03": 629.0, "04": 1186.0, "05": 138.0, "06": 1196.0,
                 "07": 885.0, "08": 1050.0, "09": 1205.0, "10": 5.0},
    "full": {"00": 600.0, "01": 300.0, "02": 300.0, "03": 900.0, "04": 1800.0, "05": 600.0, "06": 1800.0, "07": 900.0,
             "08": 1800.0, "09": 1800.0, "10": 5.0},  # a GPU: rough guesses, no run measured yet
}


def calibrate(steps: int = 3, batch_size: int = 256, device: str | torch.device = "cpu") -> float:
    """Median seconds of one FastNet training step (forward, backward, SGD) on random images.

    Runs at the precision :func:`labutils.runtime.autocast_dtype` picks for ``device`` and in
    channels_last, as :func:`labutils.training.fit` does; one warm-up step is not counted.
    Takes a few seconds on a 2-core CPU.
    """
    from ..models import FastNet
    from ..runtime import autocast, autocast_dtype

    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 3, 32, 32, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), generator=gen).to(device)
    model = FastNet().to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    amp = autocast_dtype(device)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with autocast(device, amp):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed_factor(step_seconds: float) -> float:
    """How many times longer this machine takes than the reference (from :func:`calibrate`'s result)."""
    return step_seconds / REFERENCE["step_seconds"]


def expected_seconds(profile: str, notebooks: list[str], factor: float, measured: dict | None = None) -> list[float]:
    """Expected seconds per notebook (names like ``"02_fgsm..."``) for ``profile`` on this machine.

    ``measured`` (notebook name -> seconds of an earlier run here) wins over the reference times
    scaled by ``factor``; a notebook the table does not know is given the table's mean.
    """
    table = EXPECTED_SECONDS.get(profile, {})
    fallback = statistics.mean(table.values()) if table else 60.0
    scale = 1.0 if profile == "full" else factor
    return [float((measured or {}).get(nb) or table.get(nb[:2], fallback) * scale) for nb in notebooks]


def load_timings(folder: str | Path) -> dict[str, float]:
    """Per-notebook seconds of the last run in ``folder`` (``timings.json``), or an empty dict (entries that are
    not numbers are left out)."""
    data = load_json_dict(Path(folder) / FILE, unreadable="estimates come from the reference times")
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def save_timings(folder: str | Path, timings: dict[str, float]) -> Path:
    """Merge ``timings`` (notebook name -> seconds) into ``folder/timings.json``."""
    return merge_json_dict(Path(folder) / FILE, timings)
