"""Attacks the course does not re-implement (DeepFool, CW, Square, AutoAttack...), run through torchattacks
behind the calling convention of :mod:`.gradient`."""
from __future__ import annotations

import torch
from torch import nn

from ..runtime import frozen_eval
from .checks import canonical_norm, check_eps
from .gradient import PreparedBatch

__all__ = ["torchattacks_attack", "TORCHATTACKS_ATTACKS"]

# Attacks the course only mentions; any other torchattacks class name works too.
TORCHATTACKS_ATTACKS = ("DeepFool", "CW", "Square", "AutoAttack")


_TORCHATTACKS_INSTALL = "pip install torchattacks==3.5.1 --no-deps"


def _import_torchattacks():
    try:
        import torchattacks
    except ImportError as exc:
        raise ImportError(f"torchattacks is needed for this attack and is not installed: {_TORCHATTACKS_INSTALL} "
                          "(--no-deps keeps your torch version).") from exc
    return torchattacks


def torchattacks_attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                        targeted: bool = False, **kwargs) -> torch.Tensor:
    """Run torchattacks' attack ``name`` (e.g. ``"DeepFool"``, ``"CW"``, ``"Square"``, ``"AutoAttack"``).

    Same calling convention as :func:`fgsm`/:func:`pgd`: ``x`` float ``(N, C, H, W)`` in ``[0, 1]``
    (not modified), ``y`` int labels ``(N,)`` (targets when ``targeted=True``), the model returns
    logits, runs in eval mode and gets its modes and ``requires_grad`` flags back, parameters
    receive no gradients; the result has the dtype and device of ``x``.

    Args:
        name: torchattacks class name, case-insensitive.
        kwargs: the attack's constructor arguments, e.g. ``eps=8/255`` (Square, AutoAttack: on the
            ``[0, 1]`` pixel scale), ``steps=50`` (DeepFool, CW), ``c=1`` (CW), ``n_queries``, ``seed``.

    Raises:
        ImportError: torchattacks is not installed (``pip install torchattacks==3.5.1 --no-deps``).
    """
    ta = _import_torchattacks()
    classes = {k.lower(): getattr(ta, k) for k in dir(ta)
               if isinstance(getattr(ta, k), type) and issubclass(getattr(ta, k), ta.attack.Attack)}
    key = str(name).strip().lower()
    if key not in classes or key in ("attack", "multiattack", "lgv", "vanila"):
        known = ", ".join(TORCHATTACKS_ATTACKS)
        raise ValueError(f"Unknown torchattacks attack {name!r}: use one of {known} (or another torchattacks class).")
    atk_in = PreparedBatch(model, x, y, "fp32")
    if "eps" in kwargs:
        norm = canonical_norm(kwargs.get("norm", "Linf"))
        check_eps(kwargs["eps"], atk_in.n, norm, atk_in.dim)
    if atk_in.n == 0:
        return x.detach().clone()
    with frozen_eval(model):
        with torch.no_grad():
            atk_in.logits(atk_in.x)  # checks that the model returns logits
        attack = classes[key](model, **kwargs)
        if targeted:
            attack.set_mode_targeted_by_label(quiet=True)
        x_model = atk_in.x.to(atk_in.model_dtype).contiguous()
        x_adv = attack(x_model, atk_in.y)
    return atk_in.finish(x_adv, x)
