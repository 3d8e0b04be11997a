"""Confidence scores from a classifier's logits, shared by OOD detection, entropy monitoring and
selective classification.

An **in-distribution (ID) score** is a number per image where *higher means more
in-distribution* (more confident).  Every entry of :data:`SCORES` follows this convention.
:func:`entropy` and :func:`energy` point the other way (higher = more OOD); their negatives
(:func:`neg_entropy`, :func:`neg_energy`) are the ID scores.  Scores come from logits
``(N, K)`` (float tensor) and are returned as float tensors ``(N,)`` on the logits' device;
logits in bf16 / fp16 are computed in float32.

=================  =====================================  =========================
name               formula                                range / direction
=================  =====================================  =========================
``max_softmax``    ``max_k softmax(z)_k`` (MSP)           ``[1/K, 1]``, higher = ID
``max_logit``      ``max_k z_k``                          logit units, higher = ID
``neg_entropy``    ``sum_k p_k log p_k``                  ``[-log K, 0]`` nats, higher = ID
``neg_energy``     ``T logsumexp(z / T)``                 logit units, higher = ID
``entropy``        ``-sum_k p_k log p_k``                 ``[0, log K]`` nats, higher = OOD
``energy``         ``-T logsumexp(z / T)``                logit units, higher = OOD
=================  =====================================  =========================
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..training.inference import predict_logits

__all__ = ["SCORES", "as_logits", "max_logit", "max_softmax", "entropy", "neg_entropy", "energy", "neg_energy",
           "scores_from_logits", "classifier_scores"]


def as_logits(logits) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        logits = torch.as_tensor(np.asarray(logits))
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}; "
                         "add a batch dimension with logits.unsqueeze(0) for a single image.")
    if logits.shape[1] < 1:
        raise ValueError("logits must have at least one class (K >= 1).")
    if not logits.is_floating_point():
        logits = logits.float()
    elif logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logits = logits.detach()
    if logits.numel() and not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(1).sum())
        raise ValueError(f"logits contain NaN or infinite values ({bad} of {logits.shape[0]} rows); "
                         "check the model and its inputs.")
    return logits


def _check_temperature(T: float) -> float:
    T = float(T)
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"temperature T must be a finite number > 0, got {T}.")
    return T


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Largest logit per row: ``(N, K) -> (N,)``, in logit units.  Higher = more in-distribution."""
    z = as_logits(logits)
    return z.max(dim=1).values


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Maximum softmax probability (MSP) per row: ``(N, K) -> (N,)`` in ``[1/K, 1]``.  Higher = more in-distribution.

    Computed as ``exp(max log_softmax)``, so huge logits do not overflow.
    """
    z = as_logits(logits)
    return torch.log_softmax(z, dim=1).max(dim=1).values.exp()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy ``-sum_k p_k log p_k`` in nats: ``(N, K) -> (N,)`` in ``[0, log K]``.

    **Higher = more likely OOD** (the opposite of the ID-score convention);
    use :func:`neg_entropy` as an in-distribution score.  Computed from
    ``log_softmax``; classes whose probability underflows to 0 contribute 0.
    """
    logp = torch.log_softmax(as_logits(logits), dim=1)
    return -(logp.exp() * logp).nan_to_num(0.0).sum(dim=1)  # 0 * log 0 (underflow: -inf) counts 0


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Negative predictive entropy ``sum_k p_k log p_k`` (nats): ``(N, K) -> (N,)`` in ``[-log K, 0]``.  Higher = more in-distribution."""
    return -entropy(logits)


def energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Free energy ``-T logsumexp(logits / T)``: ``(N, K) -> (N,)``, in logit units.

    **Lower = more in-distribution** (higher = more likely OOD); use
    :func:`neg_energy` as an in-distribution score.  ``T > 0`` is the
    temperature (1 in the reference method).
    """
    T = _check_temperature(T)
    z = as_logits(logits)
    return -T * torch.logsumexp(z / T, dim=1)


def neg_energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Negative free energy ``T logsumexp(logits / T)``: ``(N, K) -> (N,)``, in logit units.  Higher = more in-distribution."""
    return -energy(logits, T=T)


#: In-distribution scores from logits: name -> ``f(logits (N, K)) -> (N,)``, higher = more in-distribution.
SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max_softmax": max_softmax,
    "max_logit": max_logit,
    "neg_entropy": neg_entropy,
    "neg_energy": neg_energy,
}


def scores_from_logits(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every score of :data:`SCORES` for logits ``(N, K)``: ``{name: (N,) tensor}``, higher = more in-distribution."""
    z = as_logits(logits)
    return {name: fn(z) for name, fn in SCORES.items()}


def classifier_scores(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000,
                      device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """All :data:`SCORES` of ``model`` on ``images`` from one pass of :func:`labutils.training.predict_logits`.

    Args:
        model: a classifier returning logits ``(N, K)``; it runs in eval mode
            and its previous mode is restored.
        images: uint8 ``(N, C, H, W)`` in 0..255 or float in ``[0, 1]``.
        batch_size: images per forward pass.
        device: where to run the model (default: where its parameters are).

    Returns:
        ``{name: float32 (N,) CPU tensor}`` for every name in :data:`SCORES`
        (higher = more in-distribution).
    """
    logits = predict_logits(model, images, batch_size=batch_size, device=device)
    if logits.shape[0] == 0:  # no images: no classes either
        logits = logits.reshape(0, 1)
    return scores_from_logits(logits)
