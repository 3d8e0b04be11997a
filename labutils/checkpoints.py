"""Checkpoint cache: train a model once, keep it under the data directory.

A checkpoint is a dict ``{"meta": {...}, "state_dict": {...}, ...}`` saved with
:func:`torch.save` to a temporary file and renamed into place (atomic on POSIX
and Windows), and read back with ``torch.load(weights_only=True)``.  ``meta``
records the architecture name and arguments, the data and the training
config (whose seed carries the ``$LAB_SEED`` offset when it comes from a profile) and the
precision the weights were trained in (bf16 or fp32, resolved for the device); :func:`get_or_train`
keys files by a hash of it.

Failure handling:

* a corrupt or truncated file is moved aside to ``<name>.corrupt`` and the
  model is trained again (with a warning);
* a checkpoint whose ``meta`` does not match what was asked for raises
  :class:`CheckpointMismatchError` and is left untouched;
* an interrupted training run resumes from its last completed epoch (the
  per-epoch state lives in ``<name>.partial.pt``).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from . import data as _data
from . import models as _models

__all__ = ["CheckpointMismatchError", "CheckpointCorruptError", "save", "load", "load_model", "get_or_train",
           "checkpoint_dir", "run_key"]


class CheckpointMismatchError(RuntimeError):
    """A checkpoint belongs to another architecture, dataset or training config."""


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file cannot be read."""


def checkpoint_dir() -> Path:
    """``<data dir>/checkpoints``."""
    path = _data.data_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=list))


def run_key(meta: dict) -> str:
    """Short stable hash (12 hex digits) of a JSON-serialisable ``meta`` dict."""
    blob = json.dumps(_jsonable(meta), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save(obj: dict, path: str | os.PathLike) -> Path:
    """Write ``obj`` atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True``; raise :class:`CheckpointCorruptError` if unreadable."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointCorruptError(f"{path} cannot be read ({type(exc).__name__}: {exc}). "
                                     "Delete it to train again.") from exc
    if not isinstance(obj, dict) or "meta" not in obj:
        raise CheckpointCorruptError(f"{path} is not a labutils checkpoint (no 'meta' entry).")
    return obj


def _check_meta(path: Path, found: dict, expected: dict) -> None:
    found, expected = _jsonable(found), _jsonable(expected)
    if found == expected:
        return
    diffs = [f"  {k}: checkpoint has {found.get(k)!r}, expected {expected.get(k)!r}"
             for k in sorted(set(found) | set(expected)) if found.get(k) != expected.get(k)]
    raise CheckpointMismatchError(
        f"{path} was saved for a different model or training run:\n" + "\n".join(diffs)
        + "\nPass the matching architecture/config, or delete the file (or call get_or_train(..., retrain=True))."
    )


def load_model(path: str | os.PathLike, expected_meta: dict | None = None) -> nn.Module:
    """Rebuild the model stored at ``path`` (architecture from its meta) in eval mode.

    Raises :class:`CheckpointMismatchError` when ``expected_meta`` is given and differs.
    """
    path = Path(path)
    ckpt = load(path)
    if expected_meta is not None:
        _check_meta(path, ckpt["meta"], expected_meta)
    meta = ckpt["meta"]
    model = _models.build(meta["model"], **meta.get("model_kwargs", {}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"{path}: weights do not fit architecture {meta['model']!r}: {exc}") from exc
    return model.eval()


# --------------------------------------------------------------------------- resumable training state
def _partial_path(path: Path) -> Path:
    return path.with_name(path.name.replace(".pt", "") + ".partial.pt")


def save_training_state(path: str | os.PathLike, meta: dict, state: dict) -> None:
    """Per-epoch resumable state of :func:`labutils.train.fit` (written atomically)."""
    save({"meta": _jsonable(meta), **state}, path)


def load_training_state(path: str | os.PathLike, meta: dict) -> dict | None:
    """The resumable state at ``path`` if it exists, is readable and matches ``meta``; else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = load(path)
    except CheckpointCorruptError as exc:
        warnings.warn(f"Ignoring unreadable training state ({exc}); starting from epoch 0.", stacklevel=2)
        return None
    _check_meta(path, state["meta"], meta)
    return state


# --------------------------------------------------------------------------- cache
def get_or_train(
    name: str,
    config,
    *,
    dataset: str = "cifar10",
    model_kwargs: dict | None = None,
    tag: str | None = None,
    device: torch.device | str | None = None,
    retrain: bool = False,
    progress: bool = True,
    batch_hook=None,
) -> tuple[nn.Module, dict]:
    """Return a trained model, training it on first use and caching the weights.

    Args:
        name: architecture in :data:`labutils.models.MODELS` (e.g. ``"fastnet"``).
        config: :class:`labutils.train.TrainConfig`.
        dataset: training set name for :func:`labutils.data.load` (its ``train`` split).
        model_kwargs: keyword arguments of the architecture.
        tag: distinguishes runs whose ``batch_hook`` differs (e.g. ``"fgsm-at"``);
            the hook itself cannot be hashed, so a hooked run must name itself.
        retrain: ignore (and overwrite) a cached checkpoint.

    Returns:
        ``(model, info)``: the model in eval mode on ``device`` and a dict with
        ``path``, ``history``, ``train_seconds``, ``precision`` and ``cached``
        (True when nothing was trained).
    """
    from . import train as _train

    if batch_hook is not None and tag is None:
        raise ValueError("get_or_train: a run with a batch_hook must have a tag naming it, "
                         "or it would share a cache entry with the plain run.")
    model_kwargs = dict(model_kwargs or {})
    device = torch.device(device) if device is not None else _train.default_device()
    # The precision actually used (not the configured "auto"): a bf16-trained model is not an fp32 run's.
    precision = "bf16" if _train.autocast_dtype(device, config.precision) is not None else "fp32"
    meta = {"model": name, "model_kwargs": model_kwargs, "dataset": dataset, "config": config.to_dict(),
            "precision": precision, "tag": tag, "format": 2, "data_version": _data._CACHE_VERSION}
    path = checkpoint_dir() / f"{name}-{dataset}-{run_key(meta)}.pt"
    if path.exists() and not retrain:
        try:
            ckpt = load(path)
        except CheckpointCorruptError as exc:
            corrupt = path.with_name(path.name + ".corrupt")
            os.replace(path, corrupt)
            warnings.warn(f"{exc} Moved it to {corrupt} and training again.", stacklevel=2)
        else:
            model = load_model(path, expected_meta=meta).to(device).to(memory_format=torch.channels_last)
            info = {k: ckpt.get(k) for k in ("history", "train_seconds", "precision")}
            return model, {**info, "path": path, "cached": True}

    _train.seed_everything(config.seed)  # the initial weights are part of the run
    model = _models.build(name, **model_kwargs)
    result = _train.fit(model, _data.load(dataset, "train"), config, device=device, batch_hook=batch_hook,
                        checkpoint=_partial_path(path), checkpoint_meta=meta, progress=progress)
    info = {"history": result.history, "train_seconds": result.train_seconds, "precision": result.precision}
    save({"meta": _jsonable(meta), "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, **info}, path)
    _partial_path(path).unlink(missing_ok=True)
    return model.eval(), {**info, "path": path, "cached": False, "resumed_from_epoch": result.resumed_from_epoch}
