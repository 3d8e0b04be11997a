"""Dual BatchNorm (AdvProp, EntProp): main and auxiliary BatchNorm statistics over shared weights.

AdvProp (Xie et al., 2020) and EntProp (Enomoto, 2024) train one network on two kinds of batch
(clean, and adversarial or hard mixed samples) whose activation statistics differ.  Each BatchNorm
is split into a *main* BN (MBN, clean batches) and an *auxiliary* BN (ABN, the others); every other
layer is shared, and only MBN is used at test time.

* :class:`DualBatchNorm`: ``main`` and ``aux`` BatchNorm layers of one kind and one set of settings;
  ``forward`` goes through ``aux`` when the layer's ``use_aux`` flag is set and the layer is in
  training mode, through ``main`` otherwise.
* :func:`convert_to_dual_bn`: every BatchNorm of a model (in place) becomes a DualBatchNorm whose
  two halves are exact copies of it: the converted model computes what the original did.
* :func:`auxiliary_bn`: a ``with`` block routing every DualBatchNorm of a model through ``aux``.
* :func:`to_single_bn`, :func:`main_bn_state_dict`: the plain network (main or aux BN), for
  evaluation and saved inference models; its keys are the original architecture's.

**Evaluation uses MBN only**, by construction: in eval mode (``model.eval()``,
:func:`labutils.runtime.frozen_eval`) a DualBatchNorm ignores the aux route, so predictions,
attacks and scores see the inference network even inside a forgotten ``auxiliary_bn`` block, and a
DualBatchNorm deliberately left in eval mode in a training model (a frozen backbone) keeps its
frozen main statistics.  Hence passes that need ABN (EntProp's adversarial steps and ``L_c``) run
in training mode, as in the papers; the aux network with its running statistics is
``to_single_bn(model, which="aux")``.

One EntProp-style step::

    model = convert_to_dual_bn(build("fastnet"))        # before making the optimiser
    loss_m = F.cross_entropy(model(x_mixed), y_mixed)   # MBN
    with auxiliary_bn(model):
        loss_c = F.cross_entropy(model(x_hard), y_hard)  # ABN, shared convolutions
    (loss_m + loss_c).backward()
    torch.save(main_bn_state_dict(model), path)         # loads strictly into build("fastnet")
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.lazy import LazyModuleMixin

__all__ = ["DualBatchNorm", "convert_to_dual_bn", "auxiliary_bn", "to_single_bn", "drop_auxiliary_bn",
           "main_bn_state_dict", "dual_bn_layers"]

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_LOOKED_FOR = "nn.BatchNorm1d/2d/3d (any subclass of nn.modules.batchnorm._BatchNorm, SyncBatchNorm included)"


class DualBatchNorm(nn.Module):
    """A BatchNorm with two sets of statistics and affine parameters: ``main`` (MBN) and ``aux`` (ABN).

    ``DualBatchNorm(bn)`` keeps ``bn`` itself as ``main`` (its parameters, buffers, hooks, mode and
    ``requires_grad`` flags) and an exact copy of it, without hooks, as ``aux``: same kind (1d, 2d,
    3d, SyncBN), settings (``num_features``, ``eps``, ``momentum``, ``affine``,
    ``track_running_stats``), weights, running statistics and ``num_batches_tracked``.

    Input and output: whatever ``bn`` takes, e.g. ``(N, C, H, W)`` for ``nn.BatchNorm2d(C)``.
    :attr:`active` is the half ``forward`` uses: ``aux`` if ``use_aux`` is set (see
    :func:`auxiliary_bn`) and this layer is in training mode, else ``main``.  Only the active half
    gets gradients and, in training mode, updates its running statistics.  ``use_aux`` is a plain
    attribute: not saved in the state dict, off after building or loading.
    """

    def __init__(self, bn: _BatchNorm):
        super().__init__()
        if not isinstance(bn, _BatchNorm):
            raise TypeError(f"DualBatchNorm wraps a BatchNorm layer ({_LOOKED_FOR}), got {type(bn).__name__}.")
        if isinstance(bn, LazyModuleMixin) and bn.has_uninitialized_params():
            raise ValueError(f"{type(bn).__name__} is not initialised yet: run one forward pass before converting.")
        # the copy gets empty hook dicts: deepcopy would otherwise copy each hook's owner (a monitor, a model)
        memo = {id(getattr(bn, h)): OrderedDict() for h in _HOOKS if getattr(bn, h, None)}
        self.main = bn
        self.aux = copy.deepcopy(bn, memo)
        self.training = bn.training
        self.use_aux = False

    @property
    def active(self) -> _BatchNorm:
        """The half ``forward`` uses now (``aux`` only when ``use_aux`` and in training mode)."""
        return self.aux if self.use_aux and self.training else self.main

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active(x)

    def extra_repr(self) -> str:
        return f"use_aux={self.use_aux}"


def dual_bn_layers(model: nn.Module) -> list[DualBatchNorm]:
    """The DualBatchNorm layers of ``model`` (``model`` itself included), each once, in module order."""
    return [m for m in model.modules() if isinstance(m, DualBatchNorm)]


def _require_dual(model: nn.Module) -> list[DualBatchNorm]:
    layers = dual_bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no DualBatchNorm layer: call convert_to_dual_bn(model) first.")
    return layers


def _replace_children(model: nn.Module, kind: type, make) -> int:
    """Replace every child of type ``kind`` (outside a DualBatchNorm) by ``make(child)``; a layer shared
    by several parents becomes one shared replacement.  Returns how many distinct layers were replaced."""
    done: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        if isinstance(parent, DualBatchNorm):
            continue
        for name, child in list(parent._modules.items()):  # named_children() would skip a repeated child
            if isinstance(child, kind):
                if id(child) not in done:
                    done[id(child)] = make(child)
                setattr(parent, name, done[id(child)])
    return len(done)


def convert_to_dual_bn(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm of ``model`` by a :class:`DualBatchNorm` (in place); returns ``model``.

    Each BatchNorm layer becomes the ``main`` half of its DualBatchNorm and an exact copy of it the
    ``aux`` half, so before any training the converted model's outputs equal the original's in eval
    and in training mode, on either route.  Convert before making the optimiser (it must see the
    ``aux`` parameters).  Already converted layers are left alone (converting twice changes nothing);
    a model that is itself a BatchNorm is returned wrapped in a new DualBatchNorm.

    Raises:
        ValueError: ``model`` has no BatchNorm layer (dual BN has nothing to split).
    """
    if isinstance(model, _BatchNorm):
        return DualBatchNorm(model)
    replaced = _replace_children(model, _BatchNorm, DualBatchNorm)
    if not replaced and not dual_bn_layers(model):
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer (looked for {_LOOKED_FOR}); dual BatchNorm "
                         "(AdvProp / EntProp) splits the statistics of existing BatchNorm layers, so it needs at least "
                         "one. Use an architecture with BatchNorm, e.g. FastNet or MobileNetV2.")
    return model


@contextmanager
def auxiliary_bn(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Route every DualBatchNorm of ``model`` through ``aux`` (``enabled=False``: ``main``) inside the block.

    Each layer's previous ``use_aux`` comes back on exit, exceptions included, so blocks nest
    (``auxiliary_bn(model, False)`` inside an aux block goes back to MBN).  The route takes effect
    in training mode only; in eval mode every DualBatchNorm uses ``main`` (see the module notes).

    Raises:
        ValueError: ``model`` has no DualBatchNorm (call :func:`convert_to_dual_bn` first).
    """
    layers = _require_dual(model)
    saved = [(m, m.use_aux) for m in layers]
    try:
        for m in layers:
            m.use_aux = bool(enabled)
        yield model
    finally:
        for m, flag in saved:
            m.use_aux = flag


def _check_which(which: str) -> None:
    if which not in ("main", "aux"):
        raise ValueError(f"which must be 'main' or 'aux', got {which!r}.")


def to_single_bn(model: nn.Module, which: str = "main") -> nn.Module:
    """A deep copy of ``model`` with each DualBatchNorm replaced by its ``which`` half (``"main"`` or ``"aux"``).

    The copy has the unconverted architecture: its state dict loads into a freshly built original
    with ``load_state_dict(strict=True)``, and in eval mode it computes what ``model`` computes in
    eval mode (``which="main"``).  Each module keeps its mode; ``model`` is not changed.

    Raises:
        ValueError: ``model`` has no DualBatchNorm, or ``which`` is neither ``"main"`` nor ``"aux"``.
    """
    _check_which(which)
    _require_dual(model)
    single = copy.deepcopy(model)
    if isinstance(single, DualBatchNorm):
        return getattr(single, which)
    _replace_children(single, DualBatchNorm, lambda m: getattr(m, which))
    return single


def drop_auxiliary_bn(model: nn.Module) -> nn.Module:
    """In place: replace each DualBatchNorm inside ``model`` by its main half and return ``model``.

    What a training run hands back once the auxiliary statistics have served their purpose: the
    unconverted architecture, whose state dict saves and loads like the original's.  A model without
    DualBatchNorm is returned unchanged (so a run that did not convert can call it too).
    """
    if isinstance(model, DualBatchNorm):
        return model.main
    _replace_children(model, DualBatchNorm, lambda m: m.main)
    return model


def main_bn_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with the main BatchNorms under their original keys and the aux ones left out.

    Equal to ``to_single_bn(model).state_dict()`` without copying the model (the tensors are the
    state dict's usual detached references): ``features.1.2.main.weight`` becomes
    ``features.1.2.weight``, ``features.1.2.aux.*`` is dropped.  Loads strictly into the
    unconverted architecture.

    Raises:
        ValueError: ``model`` has no DualBatchNorm.
    """
    _require_dual(model)
    prefixes = [f"{name}." if name else "" for name, m in model.named_modules(remove_duplicate=False)
                if isinstance(m, DualBatchNorm)]
    out = {}
    for key, value in model.state_dict().items():
        prefix = next((p for p in prefixes if key.startswith(p + "main.") or key.startswith(p + "aux.")), None)
        if prefix is None:
            out[key] = value
        elif key.startswith(prefix + "main."):
            out[prefix + key[len(prefix) + len("main."):]] = value
    return out
