"""Run profiles: how much data, how many epochs and attack steps a notebook uses.

* ``smoke``: CI; every notebook in well under two minutes on 2 CPU cores.
  Numbers are small-sample and the models are weak: only claims that hold for
  any trained model are asserted.
* ``standard``: a student's CPU; real, meaningful results in minutes.
* ``full``: a GPU; paper-scale evaluation.

A profile is a plain table (:data:`PROFILES`); notebooks read their knobs from
``profile(PROFILE)`` and never branch on the profile's name.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .train import TrainConfig

__all__ = ["PROFILES", "profile", "profile_name", "Profile"]

# Training recipes ----------------------------------------------------------------
# Fast network: airbench-style recipe (whitening init, Nesterov SGD with a large
# learning rate on scaled logits, label smoothing 0.2, short triangular schedule).
_FAST = dict(optimizer="sgd", lr=1.5, momentum=0.85, weight_decay=2e-6, bias_lr_scale=64.0,
             label_smoothing=0.2, schedule="triangular", warmup=0.2, pad=2)
# Simple CNN: the baseline recipe (Adam, constant learning rate, no smoothing).
_SIMPLE = dict(batch_size=128, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant", warmup=0.0, pad=4)
# Autoencoder for OOD detection (pixel MSE).
_AE = dict(batch_size=256, optimizer="adam", lr=2e-3, weight_decay=0.0, schedule="triangular", warmup=0.1,
           augment=False, objective="reconstruct")


class Profile(Mapping):
    """Read-only mapping with attribute access (``P.n_test`` or ``P["n_test"]``)."""

    def __init__(self, name: str, settings: dict):
        self._name, self._settings = name, dict(settings)

    def __getitem__(self, key):
        return self._settings[key]

    def __iter__(self):
        return iter(self._settings)

    def __len__(self):
        return len(self._settings)

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._settings[key]
        except KeyError:
            raise AttributeError(f"profile {self._name!r} has no setting {key!r}; "
                                 f"settings: {', '.join(self._settings)}") from None

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self):
        return f"Profile({self._name!r})"


_TABLE = {
    "smoke": dict(
        fast_config=TrainConfig(epochs=2, train_size=4000, batch_size=256, **_FAST),
        simple_config=TrainConfig(epochs=1, train_size=4000, **_SIMPLE),
        ae_config=TrainConfig(epochs=2, train_size=4000, **_AE),
        n_test=1000,           # test images for clean accuracy / OOD scores
        n_attack=200,          # test images attacked
        eps_grid=(0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255),
        pgd_steps=5,
        pgd_restarts=1,
        steps_grid=(1, 2, 5),
        restarts_grid=(1, 2),
        l2_eps_grid=(0.0, 0.25, 0.5, 1.0, 2.0),
        study_eps=(2 / 255,),  # Linf budgets of notebook 03's steps / step-size / restarts studies
        n_targeted_per_class=5,
        expect_min_accuracy=0.2,       # asserted: both baselines beat chance (10 %) clearly
        expect_fastnet_accuracy=0.2,   # asserted: FastNet test accuracy with flip TTA
    ),
    "standard": dict(
        fast_config=TrainConfig(epochs=9, batch_size=1024, **_FAST),  # ~9 min on 2 cores with bf16
        simple_config=TrainConfig(epochs=4, **_SIMPLE),
        ae_config=TrainConfig(epochs=8, **_AE),
        n_test=10_000,
        n_attack=1000,
        eps_grid=(0.0, 1 / 255, 2 / 255, 3 / 255, 4 / 255, 6 / 255, 8 / 255, 12 / 255, 16 / 255, 32 / 255),
        pgd_steps=10,
        pgd_restarts=1,
        steps_grid=(1, 2, 5, 10, 20),
        restarts_grid=(1, 2, 5),
        l2_eps_grid=(0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
        study_eps=(2 / 255, 4 / 255, 8 / 255),
        n_targeted_per_class=20,
        expect_min_accuracy=0.5,
        expect_fastnet_accuracy=0.855,  # the published hybrid CNN's figure
    ),
    "full": dict(
        fast_config=TrainConfig(epochs=16, batch_size=1024, **_FAST),
        simple_config=TrainConfig(epochs=15, **_SIMPLE),
        ae_config=TrainConfig(epochs=30, **_AE),
        n_test=10_000,
        n_attack=10_000,
        eps_grid=(0.0, 1 / 255, 2 / 255, 3 / 255, 4 / 255, 6 / 255, 8 / 255, 12 / 255, 16 / 255, 32 / 255),
        pgd_steps=20,
        pgd_restarts=5,
        steps_grid=(1, 2, 5, 10, 20, 50),
        restarts_grid=(1, 2, 5, 10),
        l2_eps_grid=(0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
        study_eps=(2 / 255, 4 / 255, 8 / 255),
        n_targeted_per_class=100,
        expect_min_accuracy=0.6,
        expect_fastnet_accuracy=0.9,
    ),
}
PROFILES: dict[str, Profile] = {name: Profile(name, settings) for name, settings in _TABLE.items()}
DEFAULT_PROFILE = "standard"


def profile_name(name: str | None = None) -> str:
    """Resolve a profile name: ``name`` if given, else ``$LAB_PROFILE``, else ``"standard"``."""
    chosen = name or os.environ.get("LAB_PROFILE") or DEFAULT_PROFILE
    chosen = str(chosen).strip().lower()
    if chosen not in PROFILES:
        raise ValueError(f"Unknown profile {chosen!r}: use one of {', '.join(PROFILES)} "
                         "(set PROFILE in the notebook's parameters cell or the LAB_PROFILE environment variable).")
    return chosen


def profile(name: str | None = None) -> Profile:
    """The settings of a profile (see :func:`profile_name` for how the name is chosen)."""
    return PROFILES[profile_name(name)]
