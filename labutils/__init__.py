"""CNN Reliability Lab helpers: a small library for training, attacking and checking image classifiers.

Subpackages by job (see ``labutils/README.md`` for the layout and where each planned topic goes):
:mod:`~labutils.data`, :mod:`~labutils.models`, :mod:`~labutils.training`, :mod:`~labutils.attacks`,
:mod:`~labutils.robustness`, :mod:`~labutils.uncertainty`, :mod:`~labutils.selective`, :mod:`~labutils.viz`,
:mod:`~labutils.course`;
and the modules :mod:`~labutils.settings` (every ``LAB_*`` environment variable),
:mod:`~labutils.runtime` (device, precision, seeds, model state) and :mod:`~labutils.files`
(atomic writes).

Conventions: images are float tensors ``(N, C, H, W)`` in ``[0, 1]`` (datasets
are stored as uint8); every epsilon is on that scale (8/255 ~ 0.031); models
normalise inside and return logits.
"""
__version__ = "0.1.0"
