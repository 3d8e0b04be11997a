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
  per-epoch state lives in ``<name>.partial.pt``);
* any other error (no permission, out of memory, a file that ``weights_only=True``
  refuses, for example one written by other code) is raised with its cause and
  the file is kept: nothing is retrained without a word.

:func:`labutils.training.get_or_train` (in :mod:`.cache`) uses this module.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import models as _models
from ..data import data_dir
from ..files import atomic_save, error_summary, is_corrupt_file_error

__all__ = ["CheckpointMismatchError", "CheckpointCorruptError", "save", "load", "load_model", "checkpoint_dir",
           "run_key", "partial_path", "save_training_state", "load_training_state", "FORMAT"]

FORMAT = 3  # meta["format"] of the files get_or_train writes


class CheckpointMismatchError(RuntimeError):
    """A checkpoint belongs to another architecture, dataset or training config."""


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file cannot be read."""


def checkpoint_dir() -> Path:
    """``<data dir>/checkpoints``."""
    path = data_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def jsonable(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=list))


def run_key(meta: dict) -> str:
    """Short stable hash (12 hex digits) of a JSON-serialisable ``meta`` dict."""
    blob = json.dumps(jsonable(meta), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save(obj: dict, path: str | os.PathLike) -> Path:
    """Write the checkpoint ``obj`` (a dict with a ``meta`` entry) atomically (see :func:`labutils.files.atomic_save`)."""
    return atomic_save(obj, path)


def load(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True`` onto the CPU.

    Raises:
        CheckpointCorruptError: the file is truncated, empty or not a torch file, or holds no ``meta``.
        FileNotFoundError, PermissionError, other OSError, out-of-memory errors: as raised.
        pickle.UnpicklingError: ``weights_only=True`` refuses an intact file (it holds objects
            other than tensors and plain containers; labutils never writes such a file).
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not is_corrupt_file_error(exc):
            if isinstance(exc, pickle.UnpicklingError):
                raise pickle.UnpicklingError(
                    f"{path} is intact but torch.load(weights_only=True) refuses it: it holds objects other than "
                    "tensors and plain containers, so labutils did not write it (or a newer torch changed what "
                    "weights_only allows). It was left in place; move it away to train again.") from exc
            raise
        raise CheckpointCorruptError(f"{path} cannot be read ({error_summary(exc)}). "
                                     "Delete it to train again.") from exc
    if not isinstance(obj, dict) or "meta" not in obj:
        raise CheckpointCorruptError(f"{path} is not a labutils checkpoint (no 'meta' entry).")
    return obj


def _check_meta(path: Path, found: dict, expected: dict) -> None:
    found, expected = jsonable(found), jsonable(expected)
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


def partial_path(path: Path) -> Path:
    return path.with_name(path.name.replace(".pt", "") + ".partial.pt")


def save_training_state(path: str | os.PathLike, meta: dict, state: dict) -> None:
    """Per-epoch resumable state of :func:`labutils.training.fit` (written atomically)."""
    save({"meta": jsonable(meta), **state}, path)


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
