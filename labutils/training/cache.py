"""The train-once cache: :func:`get_or_train` returns a trained model, training it only on first use.

Files live under ``<data dir>/checkpoints`` (see :mod:`.checkpoints` for the format and for
what happens to corrupt, mismatched and partial files), named by the architecture, the dataset
and a hash of everything that determines the run.  Checkpoints handed out in an archive
(:mod:`.archive`) are used as they are, also by a device that trains in the other precision.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from ..data import CACHE_VERSION, load
from ..models import build
from ..runtime import autocast_dtype, default_device, model_to_channels_last, seed_everything
from .checkpoints import (FORMAT, CheckpointCorruptError, checkpoint_dir, jsonable, load_model, partial_path, run_key,
                          save)
from .checkpoints import load as load_checkpoint
from .loop import fit

__all__ = ["get_or_train"]


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
    init=None,
) -> tuple[nn.Module, dict]:
    """Return a trained model, training it on first use and caching the weights.

    Args:
        name: architecture in :data:`labutils.models.MODELS` (e.g. ``"fastnet"``).
        config: :class:`labutils.training.TrainConfig`; its seed seeds the initial weights too.
        dataset: training set name for :func:`labutils.data.load` (its ``train`` split).
        model_kwargs: keyword arguments of the architecture.
        tag: distinguishes runs whose ``batch_hook`` or ``init`` differs (e.g. ``"fgsm-at"``);
            neither can be hashed, so such a run must name itself.
        init: ``init(model)`` changes the freshly built model before training, e.g. loads a
            backbone trained by another run (name that run in ``tag``: its checkpoint's file stem
            carries its hash).  Not called when the trained model comes from the cache.
        retrain: ignore (and overwrite) a cached checkpoint, and the state of an interrupted run:
            train from scratch.

    Returns:
        ``(model, info)``: the model in eval mode on ``device`` and a dict with
        ``path``, ``history``, ``train_seconds``, ``precision``, ``passes`` (images sent forward and
        backward), ``catastrophic_overfitting`` (see :class:`~labutils.training.TrainResult`) and
        ``cached`` (True when nothing was trained) and ``handed_out`` (True when the weights come from a
        loaded archive, see :mod:`.archive`; then one line says so).  With ``$LAB_CHECKPOINT_LOG`` set,
        the checkpoint's path is appended to that file.
    """
    from .archive import find_handed_out, log_checkpoint  # here: `python -m labutils.training.archive` runs it once

    if (batch_hook is not None or init is not None) and tag is None:
        raise ValueError("get_or_train: a run with a batch_hook or an init must have a tag naming it, "
                         "or it would share a cache entry with the plain run.")
    model_kwargs = dict(model_kwargs or {})
    device = torch.device(device) if device is not None else default_device()
    # The precision actually used (not the configured "auto"): a bf16-trained model is not an fp32 run's.
    precision = "bf16" if autocast_dtype(device, config.precision) is not None else "fp32"
    meta = {"model": name, "model_kwargs": model_kwargs, "dataset": dataset, "config": config.to_dict(),
            "precision": precision, "tag": tag, "format": FORMAT, "data_version": CACHE_VERSION}
    path = checkpoint_dir() / f"{name}-{dataset}-{run_key(meta)}.pt"
    # a handed-out file (see .archive): this one, or when it is missing, the same run in the other precision
    handed_out = None if retrain else find_handed_out(meta, path)
    source, source_meta = (handed_out[0], handed_out[1]["meta"]) if handed_out else (path, meta)
    if retrain:  # from scratch: not from the state of an earlier, interrupted run
        partial_path(path).unlink(missing_ok=True)
    elif source.exists():
        try:
            ckpt = load_checkpoint(source)
        except CheckpointCorruptError as exc:
            corrupt = source.with_name(source.name + ".corrupt")
            os.replace(source, corrupt)
            warnings.warn(f"{exc} Moved it to {corrupt} and training again.", stacklevel=2)
        else:
            model = model_to_channels_last(load_model(source, expected_meta=source_meta).to(device))
            info = {k: ckpt.get(k) for k in ("history", "train_seconds", "precision", "passes",
                                             "catastrophic_overfitting")}
            if handed_out:
                print(f"Using the handed-out model {source.name} (trained in {source_meta['precision']}): "
                      "skipping training.")
            log_checkpoint(source)
            return model, {**info, "path": source, "cached": True, "handed_out": handed_out is not None}

    seed_everything(config.seed)  # the initial weights are part of the run
    model = build(name, **model_kwargs)
    if init is not None:
        init(model)
    result = fit(model, load(dataset, "train"), config, device=device, batch_hook=batch_hook,
                 checkpoint=partial_path(path), checkpoint_meta=meta, progress=progress)
    info = {"history": result.history, "train_seconds": result.train_seconds, "precision": result.precision,
            "passes": result.passes, "catastrophic_overfitting": result.catastrophic_overfitting}
    save({"meta": jsonable(meta), "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, **info}, path)
    partial_path(path).unlink(missing_ok=True)
    log_checkpoint(path)
    return model.eval(), {**info, "path": path, "cached": False, "handed_out": False,
                          "resumed_from_epoch": result.resumed_from_epoch}
