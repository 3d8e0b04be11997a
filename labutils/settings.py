"""Every ``LAB_*`` environment setting of the course, read in one place.

======================  ==========================================================  ======================
variable                meaning                                                     default
======================  ==========================================================  ======================
``LAB_DATA_DIR``        folder with datasets, caches and checkpoints                ``./data``
``LAB_PROFILE``         run profile: ``smoke``, ``standard`` or ``full``            ``full`` on a CUDA GPU
                        (a notebook's ``PROFILE`` parameter wins)                   when ``LAB_DEVICE`` is
                                                                                    ``auto`` or ``cuda``,
                                                                                    else ``standard``
``LAB_SEED``            offset added to every seed (training configs, subsets,      ``0``
                        the notebooks' ``SEED``); part of the checkpoint key
``LAB_PRECISION``       ``fp32`` or ``bf16``: overrides ``precision="auto"``        native bf16
                        (bf16 where the CPU or GPU computes it natively)            else fp32
``LAB_DEVICE``          ``auto``, ``cpu``, ``cuda`` or ``mps``: where models train  ``auto``
                        and run (``auto``: CUDA when available, else the CPU;
                        Apple's ``mps`` only when asked for: not measured on
                        such a machine yet)
``LAB_RUN_DIR``         where a run writes metrics and figures                      ``runs/<profile>``
``LAB_CLAIMS_LOG``      JSON-lines file that :mod:`labutils.course.claims`          unset: none
                        appends every checked claim to (``make seeds`` reads it)
``LAB_CHECKPOINT_LOG``  file that :func:`labutils.training.get_or_train` appends    unset: none
                        the path of every checkpoint it returns to, one a line
                        (``make checkpoints`` packs them)
======================  ==========================================================  ======================

Each function reads the environment when called (nothing is cached), so a
notebook kernel or a test that changes a variable sees the change at once.
A malformed value raises :class:`ValueError` naming the variable and what it accepts.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["VARIABLES", "data_dir", "profile", "seed", "precision", "device", "run_dir", "claims_log",
           "checkpoint_log"]

VARIABLES = ("LAB_DATA_DIR", "LAB_PROFILE", "LAB_SEED", "LAB_PRECISION", "LAB_DEVICE", "LAB_RUN_DIR", "LAB_CLAIMS_LOG",
             "LAB_CHECKPOINT_LOG")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def data_dir() -> Path | None:
    """``$LAB_DATA_DIR`` as a path (``~`` expanded), or None when unset."""
    value = _get("LAB_DATA_DIR")
    return Path(value).expanduser() if value else None


def profile() -> str | None:
    """``$LAB_PROFILE`` in lower case, or None when unset (checked by :func:`labutils.course.profiles.profile_name`)."""
    value = _get("LAB_PROFILE")
    return value.lower() if value else None


def seed() -> int:
    """``$LAB_SEED``: a non-negative integer offset for every seed of a run (default 0)."""
    value = _get("LAB_SEED")
    if value is None:
        return 0
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"LAB_SEED={value!r} is not a non-negative integer: use for example LAB_SEED=3, "
                         "or unset it for seed 0.")
    return number


def precision() -> str | None:
    """``$LAB_PRECISION`` (``"fp32"`` or ``"bf16"``), or None when unset: then each device picks."""
    value = _get("LAB_PRECISION")
    if value is None or value.lower() == "auto":
        return None
    if value.lower() not in PRECISIONS:
        raise ValueError(f"LAB_PRECISION={value!r}: use fp32, bf16 or auto (or unset it).")
    return value.lower()


def device() -> str:
    """``$LAB_DEVICE`` in lower case: ``"auto"`` (default), ``"cpu"``, ``"cuda"`` or ``"mps"``
    (resolved by :func:`labutils.runtime.default_device`)."""
    value = _get("LAB_DEVICE")
    if value is None:
        return "auto"
    if value.lower() not in DEVICES:
        raise ValueError(f"LAB_DEVICE={value!r}: use auto, cpu, cuda or mps (or unset it for auto).")
    return value.lower()


def run_dir() -> Path | None:
    """``$LAB_RUN_DIR`` as a path, or None when unset."""
    value = _get("LAB_RUN_DIR")
    return Path(value).expanduser() if value else None


def claims_log() -> Path | None:
    """``$LAB_CLAIMS_LOG`` as a path, or None when unset (then claims are checked but not logged)."""
    value = _get("LAB_CLAIMS_LOG")
    return Path(value).expanduser() if value else None


def checkpoint_log() -> Path | None:
    """``$LAB_CHECKPOINT_LOG`` as a path, or None when unset (then nothing is logged)."""
    value = _get("LAB_CHECKPOINT_LOG")
    return Path(value).expanduser() if value else None
