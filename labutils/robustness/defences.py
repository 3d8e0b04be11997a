"""Input-transformation defences: feature squeezing by bit depth (Xu et al., 2018).

:func:`squeeze_bit_depth` rounds every pixel to one of ``2**bits`` levels; :class:`FeatureSqueezing`
puts it in front of a classifier.  Rounding has a zero gradient almost everywhere, so a gradient
attack on the squeezed model through autograd sees nothing and the defence looks strong for the
wrong reason (gradient masking, notebook 04).  :class:`FeatureSqueezing` therefore passes the
gradient straight through the rounding by default (BPDA, Athalye et al., 2018): the forward pass
is squeezed, the backward pass is the identity's, which is the attack a defender must expect.
The training-time defences of the course are training modes of :func:`labutils.training.fit`
(``mode="gaussian"``: noise augmentation; ``"fgsm"``, ``"fast_fgsm"``, ``"pgd"``: adversarial training).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["squeeze_bit_depth", "FeatureSqueezing"]


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in [1, 8] (levels per channel: 2**bits; 8 keeps uint8 images "
                         f"unchanged), got {bits!r}.")
    return bits


def squeeze_bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``round(x * (2**bits - 1)) / (2**bits - 1)``: images ``(N, C, H, W)`` in ``[0, 1]`` reduced to ``2**bits`` levels.

    Same shape, dtype and device as ``x`` (not modified).  ``bits=1`` is binarisation at 0.5;
    ``bits=8`` leaves images that came from uint8 unchanged.
    """
    levels = float(2 ** _check_bits(bits) - 1)
    if not x.is_floating_point():
        raise TypeError(f"x must be float images in [0, 1], got dtype {x.dtype}.")
    return torch.round(x * levels) / levels


class FeatureSqueezing(nn.Module):
    """``model(squeeze_bit_depth(x, bits))``: a classifier behind a bit-depth squeezer.

    Args:
        model: classifier taking ``[0, 1]`` images ``(N, C, H, W)`` and returning logits.
        bits: levels per channel ``2**bits``, an int in ``[1, 8]`` (fewer: stronger squeezing).
        straight_through: gradients pass through the rounding as through the identity (default True:
            BPDA, the adaptive attacker); False gives autograd's zero gradient (a masked defence).
    """

    def __init__(self, model: nn.Module, bits: int, straight_through: bool = True):
        super().__init__()
        self.model, self.bits, self.straight_through = model, _check_bits(bits), bool(straight_through)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = squeeze_bit_depth(x, self.bits)
        if self.straight_through:
            squeezed = x + (squeezed - x).detach()
        return self.model(squeezed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, straight_through={self.straight_through}"
