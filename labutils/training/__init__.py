"""Training: what a run is (:mod:`.config`), how it optimises (:mod:`.optim`), the loop
(:mod:`.loop`), prediction (:mod:`.inference`), checkpoint files (:mod:`.checkpoints`), the
train-once cache (:mod:`.cache`) and archives of handed-out checkpoints (:mod:`.archive`).

Typical use::

    from labutils import training
    model, info = training.get_or_train("fastnet", training.TrainConfig(epochs=8))
    accuracy = training.evaluate(model, x_test, y_test, tta="flip")

Training modes (``TrainConfig(mode=...)``: standard, and the adversarial modes of
:mod:`.adversarial`) decide what each step trains on (:mod:`.steps`); every run counts its passes.
"""
from .cache import get_or_train
from .checkpoints import (CheckpointCorruptError, CheckpointMismatchError, checkpoint_dir, load, load_model, run_key,
                          save)
from .adversarial import detect_catastrophic_overfitting, robust_accuracy_check
from .config import (ADVERSARIAL_MODES, DEFAULT_OVERFIT_CHECK, DUAL_BN_MODES, TRAINING_MODES, BatchHook, TrainConfig,
                     TrainResult)
from .inference import TTA_MODES, evaluate, predict_logits
from .loop import fit
from .optim import lr_at, make_optimizer, make_scheduler

__all__ = ["TrainConfig", "TrainResult", "BatchHook", "fit", "evaluate", "predict_logits", "TTA_MODES",
           "get_or_train", "load_model", "load", "save", "checkpoint_dir", "run_key", "CheckpointCorruptError",
           "CheckpointMismatchError", "ArchiveError", "pack_checkpoints", "load_checkpoints", "lr_at",
           "make_optimizer", "make_scheduler", "TRAINING_MODES", "DUAL_BN_MODES", "ADVERSARIAL_MODES",
           "DEFAULT_OVERFIT_CHECK", "detect_catastrophic_overfitting", "robust_accuracy_check"]

_ARCHIVE = ("ArchiveError", "pack_checkpoints", "load_checkpoints")


def __getattr__(name: str):
    """:mod:`.archive`'s names, imported on first use (so ``python -m labutils.training.archive`` runs it only once)."""
    if name in _ARCHIVE:
        from . import archive

        return getattr(archive, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
