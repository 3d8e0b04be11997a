"""Side-by-side robustness comparison: the same image attacked against several models.

:func:`robustness_comparison_figure` is the pure part: it attacks one image at one budget against
EACH model (FGSM or PGD from :mod:`labutils.attacks`; every model gets its own adversarial image,
made with its own gradients) and draws, one row per model, the adversarial image with the
prediction, and the top-k class probabilities before and after the attack.  Notebooks call it
directly, so a headless run still draws (and saves) the figure.

:func:`comparison_explorer` is a thin ipywidgets shell around it: an epsilon slider, an attack
dropdown and an ``Output`` area redrawn on every change.  ipywidgets is imported only when the
explorer is built.

Conventions as in :mod:`.epsilon`: images are float ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]``
(uint8 is converted); ``eps`` is on the ``[0, 1]`` pixel scale and shown as ``x/255``; models return logits.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Sequence

import torch
from torch import nn

from ... import attacks as _attacks
from ...runtime import model_device
from .epsilon import _as_class, _bar_panel, _one_image, _probabilities, _shown_classes, _show_image, show_in

__all__ = ["COMPARE_ATTACKS", "robustness_comparison_figure", "comparison_explorer"]

#: attack key -> label shown in the dropdown and in titles
COMPARE_ATTACKS: dict[str, str] = {"fgsm": "FGSM", "pgd": "PGD"}
_IPYWIDGETS_MISSING = ("the comparison explorer needs ipywidgets (and, in JupyterLab, jupyterlab_widgets): "
                       "pip install 'ipywidgets>=8' jupyterlab_widgets, or run `make setup`. "
                       "robustness_comparison_figure(...) draws the same figure without widgets.")


def _attack_key(attack: str) -> str:
    key = str(attack).strip().lower()
    if key not in COMPARE_ATTACKS:
        raise ValueError(f"Unknown attack {attack!r}: use one of {', '.join(repr(k) for k in COMPARE_ATTACKS)}.")
    return key


def _check_models(models) -> dict[str, nn.Module]:
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty dict {name: model}.")
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{name!r}] must be a torch.nn.Module, got {type(m).__name__}.")
    return {str(k): v for k, v in models.items()}


def _check_eps(eps) -> float:
    eps = float(eps)
    if not (math.isfinite(eps) and 0 <= eps <= 1):
        raise ValueError(f"eps={eps:.6g} must be on the [0, 1] pixel scale, e.g. 8/255 = {8 / 255:.4f} (not 8).")
    return eps


def _attack_one(model: nn.Module, x: torch.Tensor, label: int, key: str, eps: float, pgd_steps: int,
                pgd_alpha: float | None, seed: int) -> torch.Tensor:
    """The adversarial version (CPU, ``(1, C, H, W)``) of ``x`` against ``model``."""
    device = model_device(model)
    xd, y = x.to(device), torch.tensor([label], device=device)
    if key == "fgsm":
        x_adv = _attacks.fgsm(model, xd, y, eps)
    else:
        steps = int(pgd_steps)
        alpha = _attacks.default_pgd_alpha(eps, steps) if pgd_alpha is None else float(pgd_alpha)
        x_adv = _attacks.pgd(model, xd, y, eps, alpha, steps, generator=torch.Generator(device=device).manual_seed(seed))
    return x_adv.detach().cpu()


def robustness_comparison_figure(models: Mapping[str, nn.Module], image: torch.Tensor, label, *, eps: float,
                                 attack: str = "pgd", class_names: Sequence[str], pgd_steps: int = 10,
                                 pgd_alpha: float | None = None, top_k: int = 3, seed: int = 0):
    """Attack one image against each model at the same budget and draw the results side by side.

    Args:
        models: ``{name: classifier}``; each takes ``[0, 1]`` images and returns logits ``(N, K)``.  Their
            ``training`` and ``requires_grad`` flags are restored afterwards.
        image: ONE image, float ``(C, H, W)`` or ``(1, C, H, W)`` in ``[0, 1]`` (uint8 is converted); not modified.
        label: its true class (int or 0-d tensor).
        eps: Linf budget on the ``[0, 1]`` pixel scale, e.g. ``8/255`` (0: no attack).
        attack: ``"pgd"`` (untargeted Linf PGD, ``pgd_steps`` steps, random start seeded by ``seed``) or
            ``"fgsm"``; each model is attacked with its own gradients (white-box).
        class_names: the ``K`` class names.
        pgd_steps: PGD iterations; pgd_alpha: PGD step size (default ``2.5 * eps / pgd_steps``).
        top_k: classes in each probability panel (the true class is always shown).
        seed: seeds PGD's random start (the same for every model; the same call draws the same figure).

    Returns:
        ``(fig, info)``: a Figure with one row per model (adversarial image titled with the prediction and
        its probability; top-k probabilities (%) on the clean image; the same after the attack) and
        ``info = {name: {"pred_before", "pred_after", "name_before", "name_after", "conf_before",
        "conf_after", "p_label_before", "p_label_after", "correct_before", "fooled", "linf", "x_adv"}}``
        (probabilities in [0, 1]; ``fooled``: the prediction after the attack is not ``label``;
        ``x_adv``: float ``(1, C, H, W)`` on the CPU).
    """
    import matplotlib.pyplot as plt

    models = _check_models(models)
    key = _attack_key(attack)
    x = _one_image(image)
    names = [str(c) for c in class_names]
    label = _as_class(label, "label", len(names))
    eps = _check_eps(eps)
    if int(top_k) < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")

    info = {}
    for name, model in models.items():
        x_adv = _attack_one(model, x, label, key, eps, pgd_steps, pgd_alpha, int(seed))
        p0, p1 = _probabilities(model, x), _probabilities(model, x_adv)
        if p0.numel() != len(names):
            raise ValueError(f"model {name!r} has {p0.numel()} classes but {len(names)} class names were given.")
        pred0, pred1 = int(p0.argmax()), int(p1.argmax())
        info[name] = {"pred_before": pred0, "pred_after": pred1, "name_before": names[pred0],
                      "name_after": names[pred1], "conf_before": float(p0[pred0]), "conf_after": float(p1[pred1]),
                      "p_label_before": float(p0[label]), "p_label_after": float(p1[label]),
                      "correct_before": pred0 == label, "fooled": pred1 != label,
                      "linf": float(_attacks.perturbation_norms(x, x_adv, "linf")[0]), "x_adv": x_adv,
                      "_probs": (p0, p1)}

    fig, axes = plt.subplots(len(models), 3, figsize=(10, 2.6 * len(models)), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.4, 1.4]}, squeeze=False)
    for row, (name, r) in zip(axes, info.items()):
        p0, p1 = r.pop("_probs")
        outcome = "fooled" if r["fooled"] else "still correct"
        _show_image(row[0], r["x_adv"], f"{name}: {r['name_after']} ({100 * r['conf_after']:.1f} %)\n{outcome}")
        _bar_panel(row[1], p0, _shown_classes(p0, int(top_k), [label]), names, label=label, target=None,
                   title=f"{name}, clean image: top-{top_k} (%)")
        _bar_panel(row[2], p1, _shown_classes(p1, int(top_k), [label]), names, label=label, target=None,
                   title=f"{name}, after {COMPARE_ATTACKS[key]}: top-{top_k} (%)")
    steps_txt = f", {int(pgd_steps)} steps" if key == "pgd" else ""
    fig.suptitle(f"{COMPARE_ATTACKS[key]} at eps = {255 * eps:.1f}/255{steps_txt} against each model; "
                 f"true class '{names[label]}' in green", fontsize="medium")
    return fig, info


def _summary(info: dict, key: str, eps: float) -> str:
    parts = [f"{name}: {r['name_before']} -> {r['name_after']} ({r['conf_after']:.1%}, "
             f"{'fooled' if r['fooled'] else 'still correct'})" for name, r in info.items()]
    return f"{COMPARE_ATTACKS[key]} eps={255 * eps:.1f}/255: " + "; ".join(parts)


def comparison_explorer(models: Mapping[str, nn.Module], image: torch.Tensor, label, class_names: Sequence[str], *,
                        eps_max: float = 32 / 255, eps: float = 8 / 255, eps_step: float = 0.5 / 255,
                        attack: str = "pgd", pgd_steps: int = 10, top_k: int = 3, seed: int = 0):
    """An ipywidgets explorer: the same image attacked against every model as epsilon changes.

    Args:
        models, image, label, class_names: as in :func:`robustness_comparison_figure`.
        eps_max: largest epsilon of the slider; eps: the initial one; eps_step: the slider's step
            (all on the ``[0, 1]`` pixel scale).
        attack: initial attack (``"pgd"`` or ``"fgsm"``).
        pgd_steps, top_k, seed: passed to :func:`robustness_comparison_figure`.

    Returns:
        An ``ipywidgets.VBox``: a row with the epsilon ``FloatSlider`` (units of 1/255,
        ``continuous_update=False``) and the attack ``Dropdown``, then an ``Output`` area.  Every change
        redraws the figure into the output (PNG plus a one-line summary) and closes it.  The box carries
        ``eps_slider``, ``attack_dropdown``, ``output``, ``info`` (the last figure's info, None after an
        error), ``error`` (the last error message or None), ``n_draws`` and ``redraw()``.

    Raises:
        ImportError: ipywidgets is not installed.
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:
        raise ImportError(_IPYWIDGETS_MISSING) from exc

    models = _check_models(models)
    names = [str(c) for c in class_names]
    label = _as_class(label, "label", len(names))
    key = _attack_key(attack)
    x = _one_image(image)
    eps_max, eps, eps_step = float(eps_max), float(eps), float(eps_step)
    if not (0 < eps_max <= 1):
        raise ValueError(f"eps_max={eps_max:.6g} must be in (0, 1] (the [0, 1] pixel scale, e.g. 32/255).")
    if not (0 <= eps <= eps_max):
        raise ValueError(f"eps={eps:.6g} must lie in [0, eps_max={eps_max:.6g}] (the [0, 1] pixel scale).")

    slider = widgets.FloatSlider(value=255 * eps, min=0.0, max=255 * eps_max, step=255 * eps_step,
                                 description="eps (x/255)", readout_format=".1f", continuous_update=False,
                                 style={"description_width": "initial"}, layout=widgets.Layout(width="360px"))
    attack_dd = widgets.Dropdown(options=[(v, k) for k, v in COMPARE_ATTACKS.items()], value=key,
                                 description="attack")
    output = widgets.Output(layout=widgets.Layout(min_height="320px"))
    box = widgets.VBox([widgets.HBox([slider, attack_dd]), output])
    box.eps_slider, box.attack_dropdown, box.output = slider, attack_dd, output
    box.info, box.error, box.n_draws = None, None, 0

    def redraw(change=None):
        def draw():
            fig, info = robustness_comparison_figure(models, x, label, eps=slider.value / 255, attack=attack_dd.value,
                                                     class_names=names, pgd_steps=pgd_steps, top_k=top_k, seed=seed)
            return fig, info, _summary(info, attack_dd.value, slider.value / 255)

        show_in(box, output, draw)

    box.redraw = redraw
    for w in (slider, attack_dd):
        w.observe(redraw, names="value")
    redraw()
    return box
