"""Robustness curves: accuracy under attack per budget, per image, and over PGD's settings.

Every function attacks batch by batch with a progress bar, evaluates the model in eval mode on
the adversarial images (its modes restored, see :func:`labutils.runtime.frozen_eval`) and takes
``x`` as float images in ``[0, 1]`` or uint8 (converted per batch).
"""
from __future__ import annotations

from itertools import product
from typing import Callable, Sequence

import torch
from torch import nn

from ..attacks.checks import as_int, canonical_norm, check_labels, default_pgd_alpha
from ..attacks.gradient import fgsm, pgd, pgd_by_restarts
from ..data import as_float_images
from ..runtime import frozen_eval, model_dtype_device

__all__ = ["correct_vs_eps", "accuracy_curve", "adversarial_accuracy", "adversarial_examples", "pgd_accuracy_grid", "correct_mask", "predictions",
           "resolve_attack", "with_attack_defaults"]

_ATTACKS: dict[str, Callable] = {"fgsm": fgsm, "pgd": pgd}


def resolve_attack(attack) -> Callable:
    """The attack function for ``"fgsm"`` or ``"pgd"``; a callable is returned as it is."""
    if callable(attack):
        return attack
    key = str(attack).strip().lower()
    if key not in _ATTACKS:
        raise ValueError(f"Unknown attack {attack!r}: use 'fgsm', 'pgd' or a callable "
                         "attack(model, x, y, **kwargs) -> x_adv.")
    return _ATTACKS[key]


def with_attack_defaults(fn: Callable, eps: float, kwargs: dict) -> dict:
    """``kwargs`` completed with PGD's defaults: 10 steps, ``alpha = 2.5 * eps / steps``."""
    kw = dict(kwargs)
    if fn is pgd:
        kw.setdefault("steps", 10)
        if kw.get("alpha") is None:
            kw["alpha"] = default_pgd_alpha(eps, kw["steps"])
    return kw


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """int64 CPU tensor ``(N,)``: the class ``model`` predicts for each image (eval mode, in its dtype and on its device)."""
    dtype, device = model_dtype_device(model, x)
    x = as_float_images(x, name="x")  # uint8 images become [0, 1] floats, not 0..255
    with frozen_eval(model):
        out = model(x.to(device, dtype).contiguous(memory_format=torch.channels_last))
    return out.argmax(1).cpu()


def correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bool CPU tensor ``(N,)``: does ``model`` classify each image as ``y``? (see :func:`predictions`)"""
    return predictions(model, x) == y.cpu()


def _correct_under_attack(model, x, y, fn, batch_size: int, bar=None, **kw) -> torch.Tensor:
    """Bool ``(N,)``: still classified correctly after ``fn(model, x_batch, y_batch, **kw)``, batch by batch.

    ``fn`` None means no attack.  A per-sample ``eps``/``alpha`` tensor ``(N,)`` in ``kw`` is
    split along with the batches; ``bar`` (tqdm or None) ticks once per batch.
    """
    n = x.shape[0]
    check_labels(y, n)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    out = torch.zeros(n, dtype=torch.bool)
    for i in range(0, n, batch_size):
        sl = slice(i, min(n, i + batch_size))
        kw_b = {k: (v[sl] if k in ("eps", "alpha") and isinstance(v, torch.Tensor) and v.ndim == 1
                    and v.shape[0] == n else v) for k, v in kw.items()}
        xb, yb = as_float_images(x[sl], name="x"), y[sl]
        out[sl] = correct_mask(model, xb if fn is None else fn(model, xb, yb, **kw_b), yb)
        if bar is not None:
            bar.update(1)
    return out


def adversarial_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack="fgsm", *,
                         batch_size: int = 256, **attack_kwargs) -> float:
    """Accuracy in ``[0, 1]`` of ``model`` on adversarial versions of ``(x, y)``.

    Args:
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8 (converted per batch).
        y: int labels ``(N,)``; accuracy counts predictions equal to ``y``.
        attack: ``"fgsm"``, ``"pgd"`` or a callable ``attack(model, x, y, **attack_kwargs) -> x_adv``.
        batch_size: images attacked at once.
        attack_kwargs: passed to the attack (``eps``, ``alpha``, ``steps``, ``norm``, ``precision``...).
            A per-sample ``eps``/``alpha`` tensor ``(N,)`` is split along with the batches.

    The model is evaluated in eval mode (fp32) on the adversarial images; its mode is restored.
    """
    correct = _correct_under_attack(model, x, y, resolve_attack(attack), batch_size, **attack_kwargs)
    return float(correct.double().mean()) if len(correct) else float("nan")


def adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack="fgsm", *, batch_size: int = 256,
                         progress: bool = True, **attack_kwargs) -> torch.Tensor:
    """Adversarial versions of ``x``, attacked batch by batch: float ``(N, C, H, W)`` in ``[0, 1]`` on the CPU.

    Args:
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8 (converted per batch); not modified.
        y: int labels ``(N,)`` (with ``targeted=True``: the target classes).
        attack: ``"fgsm"``, ``"pgd"`` (10 steps and ``alpha = 2.5 eps / steps`` unless given) or a
            callable ``attack(model, x, y, **attack_kwargs) -> x_adv``.
        batch_size: images attacked at once; progress: a tqdm bar over the images.
        attack_kwargs: ``eps`` and the attack's other settings (a per-sample ``eps`` / ``alpha``
            tensor ``(N,)`` is split along with the batches; a ``generator`` makes PGD's random starts
            repeatable).

    Each batch is moved to the model's device and back; the model's modes are restored by the attack.
    """
    from tqdm.auto import tqdm

    fn = resolve_attack(attack)
    n = x.shape[0]
    check_labels(y, n)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if "eps" not in attack_kwargs:
        raise ValueError("adversarial_examples needs the attack's budget: pass eps=... (e.g. 8/255).")
    kw = with_attack_defaults(fn, attack_kwargs["eps"], attack_kwargs)
    _, device = model_dtype_device(model, x)
    out = []
    with tqdm(total=n, desc=f"{getattr(fn, '__name__', 'attack')} (images)", disable=not progress, leave=False) as bar:
        for i in range(0, n, batch_size):
            sl = slice(i, min(n, i + batch_size))
            kw_b = {k: (v[sl].to(device) if k in ("eps", "alpha") and isinstance(v, torch.Tensor) and v.ndim == 1
                        and v.shape[0] == n else v) for k, v in kw.items()}
            xb = as_float_images(x[sl], name="x").to(device)
            out.append(fn(model, xb, y[sl].to(device), **kw_b).cpu())
            bar.update(sl.stop - sl.start)
    return torch.cat(out) if out else as_float_images(x, name="x").clone()


def correct_vs_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                   attack="fgsm", batch_size: int = 256, progress: bool = True, **kwargs) -> torch.Tensor:
    """Per image and budget: is the image still classified correctly under attack?

    Same arguments and defaults as :func:`accuracy_curve` (``eps`` 0: no attack; for ``"pgd"``
    ``steps`` defaults to 10 and ``alpha`` to ``2.5 * eps / steps``), but returns a bool tensor
    ``(len(eps_values), N)`` on the CPU instead of accuracies: ``.float().mean(1)`` gives the
    accuracy curve.  Because the budgets are nested (an adversarial image at budget ``e`` is one at
    every larger budget), ``.int().cummin(0).values.bool()`` gives the per-image worst case over all
    budgets up to each one: the images that no attack up to that budget fooled.
    """
    from tqdm.auto import tqdm

    fn = resolve_attack(attack)
    eps_values = [float(e) for e in eps_values]
    n = x.shape[0]
    check_labels(y, n)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    bar = tqdm(total=len(eps_values) * -(-n // batch_size), desc=f"{getattr(fn, '__name__', 'attack')} per image",
               disable=not progress, leave=False, mininterval=0.5)
    out = torch.zeros((len(eps_values), n), dtype=torch.bool)
    try:
        for row, eps in enumerate(eps_values):
            out[row] = _correct_under_attack(model, x, y, None if eps == 0 else fn, batch_size, bar,
                                             **with_attack_defaults(fn, eps, {**kwargs, "eps": eps}))
            bar.set_postfix(eps=f"{eps:.4g}", acc=f"{float(out[row].float().mean()) if n else float('nan'):.3f}")
    finally:
        bar.close()
    return out


def accuracy_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                    attack="fgsm", batch_size: int = 256, progress: bool = True, **kwargs) -> list[float]:
    """Adversarial accuracy for each budget in ``eps_values``: the points of a robustness curve.

    ``correct_vs_eps(...).double().mean(1)`` as a list (see :func:`correct_vs_eps`); draw it with
    :func:`labutils.viz.plots.accuracy_vs_eps`.

    Args:
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8.
        y: int labels ``(N,)``.
        eps_values: budgets on the ``[0, 1]`` pixel scale (e.g. ``[0, 2/255, 8/255]``); ``0`` gives
            the clean accuracy (no attack is run).
        attack: ``"fgsm"``, ``"pgd"`` or a callable ``attack(model, x, y, eps=..., **kwargs)``.
        kwargs: passed to the attack.  For ``"pgd"``: ``steps`` defaults to 10 and ``alpha`` to
            ``2.5 * eps / steps`` (Madry et al.'s rule) when not given.
        progress: show a tqdm progress bar over budgets x batches.

    Returns:
        One accuracy in ``[0, 1]`` per entry of ``eps_values``.
    """
    return correct_vs_eps(model, x, y, eps_values, attack=attack, batch_size=batch_size, progress=progress,
                          **kwargs).double().mean(1).tolist()


def pgd_accuracy_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                      steps_values: Sequence[int], *, alpha_factors: Sequence[float] = (2.5,),
                      restarts_values: Sequence[int] = (1,), norm: str = "linf", random_start: bool = False,
                      seed: int = 0, batch_size: int = 256, precision: str = "fp32",
                      progress: bool = True) -> list[dict]:
    """PGD accuracy for every combination of budget, number of steps, step size and restarts.

    The step size of each run is ``alpha = alpha_factor * eps / steps`` (Madry et al.'s rule is
    ``alpha_factor = 2.5``: the steps together can cross the ball 2.5 times).

    Comparisons between runs are fair: without random start every run is deterministic; with it,
    every run of every configuration draws its starts from a generator reseeded with ``seed + b``
    for batch ``b``, so ``restarts=r`` begins with exactly the starts of ``restarts=1`` and (since
    :func:`pgd` keeps the images already fooled) is never weaker than it.  All the restart counts
    of one (eps, steps, alpha) come from a single run of the largest: the images after ``r``
    restarts are exactly those of ``pgd(..., restarts=r)``.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: images ``(N, C, H, W)``, float in ``[0, 1]`` or uint8; y: int labels ``(N,)``.
        eps_values: budgets on the ``[0, 1]`` pixel scale (Linf, e.g. ``8/255``) or L2 radii.
        steps_values: numbers of gradient steps (>= 1).
        alpha_factors: step sizes as multiples of ``eps / steps``.
        restarts_values: numbers of random restarts (> 1 needs ``random_start=True``).
        norm: ``"linf"`` or ``"l2"``.
        random_start, precision: as in :func:`pgd`.
        seed: seed of the random starts.
        batch_size: images attacked at once.
        progress: show a tqdm progress bar over configurations x batches.

    Returns:
        One dict per configuration, in the order eps, steps, alpha_factor, restarts (the last
        varying fastest), with keys ``eps``, ``steps``, ``alpha_factor``, ``alpha``, ``restarts``,
        ``accuracy`` (fraction in ``[0, 1]``) and ``n`` (images).
    """
    from tqdm.auto import tqdm

    norm = canonical_norm(norm)
    steps_values = [as_int(s, "steps", 1) for s in steps_values]
    restarts_values = [as_int(r, "restarts", 1) for r in restarts_values]
    if max(restarts_values, default=1) > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True: without a random start every restart is the same.")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    n = x.shape[0]
    check_labels(y, n)
    _, device = model_dtype_device(model, x)
    configs = list(product([float(e) for e in eps_values], steps_values, [float(a) for a in alpha_factors],
                           restarts_values))
    n_batches = -(-n // batch_size)
    bar = tqdm(total=len(configs) * n_batches, desc="PGD grid", disable=not progress, leave=False, mininterval=0.5)
    records = []
    try:
        for eps, steps, factor in dict.fromkeys(c[:3] for c in configs):
            # one run of the most restarts: the result after r restarts is that of restarts=r
            alpha = factor * eps / steps
            correct = dict.fromkeys(restarts_values, 0)
            for b, i in enumerate(range(0, n, batch_size)):
                xb, yb = as_float_images(x[i: i + batch_size], name="x"), y[i: i + batch_size]
                gen = torch.Generator(device=device).manual_seed(seed + b) if random_start else None
                for r, x_adv in pgd_by_restarts(model, xb, yb, eps, alpha, steps, norm, random_start,
                                                 max(restarts_values), precision, gen):
                    if r in correct:
                        correct[r] += int(correct_mask(model, x_adv, yb).sum())
                bar.update(len(correct))
            for restarts in restarts_values:
                acc = correct[restarts] / n if n else float("nan")
                records.append({"eps": eps, "steps": steps, "alpha_factor": factor, "alpha": alpha,
                                "restarts": restarts, "accuracy": acc, "n": n})
            bar.set_postfix(eps=f"{eps:.4g}", steps=steps, acc=f"{acc:.3f}")
    finally:
        bar.close()
    return records


