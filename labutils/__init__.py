"""CNN Reliability Lab helpers.

Modules, one job each: :mod:`~labutils.data` (datasets as uint8 tensors, batch
iterator), :mod:`~labutils.models`, :mod:`~labutils.train` (fit/evaluate),
:mod:`~labutils.checkpoints` (train-once cache), :mod:`~labutils.profiles`,
:mod:`~labutils.attacks`, :mod:`~labutils.ood`, :mod:`~labutils.widgets`,
:mod:`~labutils.plots`, :mod:`~labutils.report`, :mod:`~labutils.runner`,
:mod:`~labutils.doctor`, :mod:`~labutils.exercises`; :mod:`~labutils.settings` (every
``LAB_*`` environment variable), :mod:`~labutils.claims` (assertions about trained models, with
their margins), :mod:`~labutils.seeds` (``make seeds``), :mod:`~labutils.timing` (run-time
estimates).

Conventions: images are float tensors ``(N, C, H, W)`` in ``[0, 1]`` (datasets
are stored as uint8); every epsilon is on that scale (8/255 ~ 0.031); models
normalise inside and return logits.
"""
__version__ = "0.1.0"
