"""Interactive epsilon explorer: attack one image and see what changes.

:func:`attack_figure` is the pure part: it runs FGSM, targeted FGSM or PGD
(from :mod:`labutils.attacks`) on one image and draws the original, the
(amplified) perturbation, the adversarial image and the top-k class
probabilities before and after.  Notebooks call it directly, so a headless
run still draws (and saves) the figure.

:func:`epsilon_explorer` is a thin ipywidgets shell around it: an epsilon
slider, an attack dropdown, a target-class dropdown (used by targeted FGSM
only) and an ``Output`` area redrawn on every change.  ipywidgets is imported
only when the explorer is built.

Conventions: images are float ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]``
(uint8 is converted); ``eps`` is on the ``[0, 1]`` pixel scale (``8/255`` is
eight grey levels) and is shown as ``x/255``; the model returns logits.
"""
from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ... import attacks as _attacks
from ... import data as _data
from ...runtime import frozen_eval, model_device

__all__ = ["ATTACKS", "attack_figure", "epsilon_explorer"]

# attack key -> label shown in the dropdown and in titles
ATTACKS: dict[str, str] = {"fgsm": "FGSM", "targeted_fgsm": "targeted FGSM", "pgd": "PGD"}
_ALIASES = {"fgsm": "fgsm", "targeted_fgsm": "targeted_fgsm", "targeted fgsm": "targeted_fgsm",
            "targeted-fgsm": "targeted_fgsm", "pgd": "pgd", "pgd_linf": "pgd"}
_IPYWIDGETS_MISSING = ("the epsilon explorer needs ipywidgets (and, in JupyterLab, jupyterlab_widgets): "
                       "pip install 'ipywidgets>=8' jupyterlab_widgets, or run `make setup`. "
                       "attack_figure(...) draws the same figure without widgets.")


# --------------------------------------------------------------------------- helpers
def _canonical_attack(attack: str) -> str:
    key = _ALIASES.get(str(attack).strip().lower())
    if key is None:
        raise ValueError(f"Unknown attack {attack!r}: use one of {', '.join(repr(k) for k in ATTACKS)}.")
    return key


def _one_image(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` / ``(1, 3, H, W)`` float in [0, 1] or uint8 -> float ``(1, C, H, W)`` (a detached copy)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor (C, H, W) or (1, C, H, W), got {type(image).__name__}.")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be ONE image of shape (C, H, W) or (1, C, H, W), got {tuple(image.shape)}.")
    if image.dtype == torch.uint8:
        image = _data.to_float(image)
    _data.check_images(image, name="image")
    return image.detach().float().clone()


def _as_class(value, name: str, k: int | None) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_floating_point():
            raise ValueError(f"{name} must be one integer class index, got a tensor of shape {tuple(value.shape)} "
                             f"and dtype {value.dtype}.")
        value = int(value.item())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer class index, got {value!r}.")
    value = int(value)
    if value < 0 or (k is not None and value >= k):
        raise ValueError(f"{name}={value} is not a class index in 0..{(k or 1) - 1}.")
    return value


@torch.no_grad()
def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities ``(K,)`` (fp32, CPU) of one image ``(1, C, H, W)``; eval mode, mode restored."""
    with frozen_eval(model):
        logits = model(x.to(model_device(model)))
    return torch.softmax(logits.float(), dim=1)[0].cpu()


def _shown_classes(probs: torch.Tensor, top_k: int, extra: Sequence[int]) -> list[int]:
    """The ``top_k`` most probable classes plus ``extra`` ones (true label, target), most probable first."""
    keep = set(torch.topk(probs, min(top_k, probs.numel())).indices.tolist()) | set(extra)
    return sorted(keep, key=lambda c: -float(probs[c]))


def _bar_panel(ax, probs: torch.Tensor, classes: list[int], class_names, *, label: int, target: int | None,
               title: str) -> None:
    colours = []
    for c in classes:
        if c == label:
            colours.append("tab:green")
        elif target is not None and c == target:
            colours.append("tab:red")
        else:
            colours.append("tab:grey")
    pct = [100 * float(probs[c]) for c in classes]
    ypos = np.arange(len(classes))
    bars = ax.barh(ypos, pct, color=colours)
    ax.bar_label(bars, [f"{p:.1f}" for p in pct], padding=2, fontsize="x-small")
    ax.set_yticks(ypos, [str(class_names[c]) for c in classes])
    ax.invert_yaxis()
    ax.set_xlim(0, 118)
    ax.set_xlabel("probability (%)")
    ax.set_title(title, fontsize="small")


def _show_image(ax, x: torch.Tensor, title: str) -> None:
    arr = x[0].detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    if arr.shape[-1] == 1:
        ax.imshow(arr[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(arr, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize="small")


# --------------------------------------------------------------------------- the figure
def attack_figure(model: nn.Module, image: torch.Tensor, label, *, attack: str = "fgsm", eps: float,
                  target=None, class_names: Sequence[str], pgd_steps: int = 10, pgd_alpha: float | None = None,
                  amplify: float | None = None, top_k: int = 5, seed: int = 0):
    """Attack one image and draw what the attack did.

    Args:
        model: classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.  Its
            ``training`` flags and ``requires_grad`` flags are restored afterwards.
        image: ONE image, float ``(C, H, W)`` or ``(1, C, H, W)`` in ``[0, 1]`` (uint8 is converted);
            not modified.
        label: its true class (int or 0-d tensor).
        attack: ``"fgsm"`` (untargeted, one step), ``"targeted_fgsm"`` (one step towards ``target``)
            or ``"pgd"`` (untargeted Linf PGD, ``pgd_steps`` steps, random start seeded by ``seed``).
        eps: Linf budget on the ``[0, 1]`` pixel scale, e.g. ``8/255``.
        target: the class targeted FGSM aims for (required for ``"targeted_fgsm"``, ignored otherwise).
        class_names: the ``K`` class names.
        pgd_steps: PGD iterations.
        pgd_alpha: PGD step size (default ``2.5 * eps / pgd_steps``, Madry et al.'s rule).
        amplify: factor the perturbation is multiplied by before it is drawn around mid-grey
            (default: so that the largest pixel change reaches 0.5, i.e. ``0.5 / Linf``).
        top_k: classes shown in each probability panel (the true label and the target are always shown).
        seed: seeds PGD's random start (the same call draws the same figure).

    Returns:
        ``(fig, info)``: a matplotlib Figure with 5 titled axes (original, perturbation,
        adversarial image, probabilities before, probabilities after; probabilities in %), and
        a dict with ``attack``, ``eps``, ``label``, ``target``, ``pred_before``/``pred_after``
        (class indices), ``name_before``/``name_after``, ``conf_before``/``conf_after``
        (probability of the predicted class, in [0, 1]), ``p_label_before``/``p_label_after``,
        ``p_target_before``/``p_target_after`` (None when untargeted), ``fooled`` (prediction
        after != label), ``target_hit`` (prediction after == target; None when untargeted),
        ``linf`` and ``l2`` (size of the perturbation on the [0, 1] scale), ``amplify`` and
        ``x_adv`` (the adversarial image, float ``(1, C, H, W)`` on the CPU).
    """
    import matplotlib.pyplot as plt

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    key = _canonical_attack(attack)
    x = _one_image(image)
    names = [str(c) for c in class_names]
    k = len(names)
    label = _as_class(label, "label", k)
    eps = float(eps)
    if not (math.isfinite(eps) and 0 <= eps <= 1):
        raise ValueError(f"eps={eps:.6g} must be on the [0, 1] pixel scale, e.g. 8/255 = {8 / 255:.4f} (not 8).")
    if key == "targeted_fgsm":
        if target is None:
            raise ValueError("targeted FGSM needs a target class: pass target=<class index>.")
        target = _as_class(target, "target", k)
        if target == label:
            raise ValueError(f"target={target} is the true label; pick another class for a targeted attack.")
    else:
        target = None
    if amplify is not None and not (math.isfinite(float(amplify)) and float(amplify) > 0):
        raise ValueError(f"amplify must be a positive number, got {amplify!r}.")

    device = model_device(model)
    xd = x.to(device)
    y = torch.tensor([label], device=device)
    if key == "fgsm":
        x_adv = _attacks.fgsm(model, xd, y, eps)
    elif key == "targeted_fgsm":
        x_adv = _attacks.fgsm(model, xd, torch.tensor([target], device=device), eps, targeted=True)
    else:
        steps = int(pgd_steps)
        alpha = _attacks.default_pgd_alpha(eps, steps) if pgd_alpha is None else float(pgd_alpha)
        gen = torch.Generator(device=device).manual_seed(int(seed))
        x_adv = _attacks.pgd(model, xd, y, eps, alpha, steps, generator=gen)
    p0 = _probabilities(model, xd)
    p1 = _probabilities(model, x_adv)
    if p0.numel() != k:
        raise ValueError(f"the model has {p0.numel()} classes but {k} class names were given.")
    x_adv = x_adv.detach().cpu()
    delta = x_adv - x
    linf = float(_attacks.perturbation_norms(x, x_adv, "linf")[0])
    l2 = float(_attacks.perturbation_norms(x, x_adv, "l2")[0])
    factor = float(amplify) if amplify is not None else (0.5 / linf if linf > 0 else 1.0)

    pred0, pred1 = int(p0.argmax()), int(p1.argmax())
    info = {
        "attack": key, "eps": eps, "label": label, "target": target,
        "pred_before": pred0, "pred_after": pred1, "name_before": names[pred0], "name_after": names[pred1],
        "conf_before": float(p0[pred0]), "conf_after": float(p1[pred1]),
        "p_label_before": float(p0[label]), "p_label_after": float(p1[label]),
        "p_target_before": None if target is None else float(p0[target]),
        "p_target_after": None if target is None else float(p1[target]),
        "fooled": pred1 != label, "target_hit": None if target is None else pred1 == target,
        "linf": linf, "l2": l2, "amplify": factor, "x_adv": x_adv,
    }

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.25, 1.25]})
    _show_image(axes[0], x, f"original: {names[pred0]} ({100 * info['conf_before']:.1f} %)\n"
                            f"true class: {names[label]}")
    _show_image(axes[1], (0.5 + factor * delta).clamp(0, 1),
                f"perturbation x{factor:.3g} (around grey)\nLinf {255 * linf:.2f}/255, L2 {l2:.3f}")
    outcome = ("target hit" if info["target_hit"] else "target missed") if target is not None else \
              ("fooled" if info["fooled"] else "still correct")
    _show_image(axes[2], x_adv, f"adversarial: {names[pred1]} ({100 * info['conf_after']:.1f} %)\n{outcome}")
    extra = [label] + ([target] if target is not None else [])
    _bar_panel(axes[3], p0, _shown_classes(p0, top_k, extra), names, label=label, target=target,
               title=f"top-{top_k} probabilities before (%)")
    _bar_panel(axes[4], p1, _shown_classes(p1, top_k, extra), names, label=label, target=target,
               title=f"top-{top_k} probabilities after (%)")
    aim = f" towards '{names[target]}'" if target is not None else ""
    steps_txt = f", {int(pgd_steps)} steps" if key == "pgd" else ""
    colours = "green: true class, red: target" if target is not None else "green: true class"
    fig.suptitle(f"{ATTACKS[key]}{aim}, eps = {255 * eps:.1f}/255{steps_txt} ({colours})", fontsize="medium")
    return fig, info


def _summary(info: dict, class_names: Sequence[str]) -> str:
    text = (f"{ATTACKS[info['attack']]} eps={255 * info['eps']:.1f}/255: "
            f"{info['name_before']} ({info['conf_before']:.1%}) -> {info['name_after']} ({info['conf_after']:.1%}); "
            f"{'fooled' if info['fooled'] else 'still correct'}")
    if info["target"] is not None:
        text += (f"; target {class_names[info['target']]} {'hit' if info['target_hit'] else 'missed'} "
                 f"(p {info['p_target_before']:.1%} -> {info['p_target_after']:.1%})")
    return text + f"; Linf {255 * info['linf']:.2f}/255, L2 {info['l2']:.3f}"


def _figure_output(fig) -> dict:
    """A Jupyter ``display_data`` output holding the figure as PNG (works with or without a kernel)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                     "text/plain": f"<Figure with {len(fig.axes)} axes>"}}


def show_in(box, output, draw) -> None:
    """Redraw an explorer: ``draw() -> (figure, info, text)`` into ``output``'s outputs, or the error.

    ``box.info`` / ``box.error`` get the result (an exception is shown in the widget instead of being
    lost in a callback), ``box.n_draws`` counts the redraws, and the figure is closed.
    """
    import matplotlib.pyplot as plt

    fig = None
    try:
        fig, info, text = draw()
        shown = (_figure_output(fig), {"output_type": "stream", "name": "stdout", "text": text + "\n"})
        box.info, box.error = info, None
    except Exception as exc:  # show the problem in the widget instead of losing it in a callback
        box.info, box.error = None, f"{type(exc).__name__}: {exc}"
        shown = ({"output_type": "stream", "name": "stderr", "text": box.error + "\n"},)
    finally:
        if fig is not None:
            plt.close(fig)
    output.outputs = shown
    box.n_draws += 1


def score_slider_explorer(lo: float, hi: float, start: float, steps: int, description: str, draw_at,
                          missing: str = "this explorer needs ipywidgets: pip install 'ipywidgets>=8'"):
    """A ``FloatSlider`` over a score threshold above an ``Output``, redrawn by ``draw_at(value) -> (fig, info, text)``.

    The slider spans ``[lo, hi]`` (widened by 0.5 each way when empty) in ``steps`` positions and starts
    at ``start`` clipped to that range; ``continuous_update=False``.  Returns the ``ipywidgets.VBox``
    with ``slider``, ``output``, ``info``, ``error``, ``n_draws`` and ``redraw()`` (see :func:`show_in`),
    already drawn once.  Raises ImportError with the message ``missing`` when ipywidgets is missing.
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:
        raise ImportError(missing) from exc

    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    slider = widgets.FloatSlider(value=min(max(float(start), lo), hi), min=lo, max=hi,
                                 step=(hi - lo) / max(1, int(steps)), description=description, readout_format=".4g",
                                 continuous_update=False, style={"description_width": "initial"},
                                 layout=widgets.Layout(width="480px"))
    output = widgets.Output(layout=widgets.Layout(min_height="420px"))
    box = widgets.VBox([slider, output])
    box.slider, box.output = slider, output
    box.info, box.error, box.n_draws = None, None, 0

    def redraw(change=None):
        show_in(box, output, lambda: draw_at(slider.value))

    box.redraw = redraw
    slider.observe(redraw, names="value")
    redraw()
    return box


# --------------------------------------------------------------------------- the widget
def epsilon_explorer(model: nn.Module, image: torch.Tensor, label, class_names: Sequence[str], *,
                     eps_max: float = 32 / 255, eps: float = 4 / 255, eps_step: float = 0.5 / 255,
                     attack: str = "fgsm", target=None, pgd_steps: int = 10, amplify: float | None = None,
                     top_k: int = 5):
    """An ipywidgets explorer of one image under FGSM / targeted FGSM / PGD as epsilon changes.

    Args:
        model, image, label, class_names: as in :func:`attack_figure`.
        eps_max: largest epsilon of the slider, on the ``[0, 1]`` pixel scale.
        eps: initial epsilon (``[0, 1]`` scale); eps_step: slider step (``[0, 1]`` scale).
        attack: initial attack (``"fgsm"``, ``"targeted_fgsm"``, ``"pgd"``).
        target: initial target class (default: the first class other than ``label``).
        pgd_steps, amplify, top_k: passed to :func:`attack_figure`.

    Returns:
        An ``ipywidgets.VBox``: a row with the epsilon slider (``FloatSlider`` in units of
        1/255, ``continuous_update=False``), the attack ``Dropdown`` and the target ``Dropdown``
        (enabled only for targeted FGSM), then an ``Output`` area.  Every change of a value
        (except the target while it is disabled) redraws :func:`attack_figure` into the output
        (PNG plus a one-line summary) and closes the figure.  For scripts and tests the box also carries ``eps_slider``,
        ``attack_dropdown``, ``target_dropdown``, ``output``, ``info`` (the last figure's info
        dict, or None after an error), ``error`` (the last error message or None),
        ``n_draws`` and ``redraw()``.

    Raises:
        ImportError: ipywidgets is not installed.
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:
        raise ImportError(_IPYWIDGETS_MISSING) from exc

    names = [str(c) for c in class_names]
    label = _as_class(label, "label", len(names))
    key = _canonical_attack(attack)
    x = _one_image(image)  # validate once; the attack gets this copy
    eps_max, eps, eps_step = float(eps_max), float(eps), float(eps_step)
    if not (0 < eps_max <= 1):
        raise ValueError(f"eps_max={eps_max:.6g} must be in (0, 1] (the [0, 1] pixel scale, e.g. 32/255).")
    if not (0 <= eps <= eps_max):
        raise ValueError(f"eps={eps:.6g} must lie in [0, eps_max={eps_max:.6g}] (the [0, 1] pixel scale).")
    choices = [(n, i) for i, n in enumerate(names) if i != label]
    target = choices[0][1] if target is None else _as_class(target, "target", len(names))
    if target == label:
        raise ValueError(f"target={target} is the true label; pick another class.")

    slider = widgets.FloatSlider(value=255 * eps, min=0.0, max=255 * eps_max, step=255 * eps_step,
                                 description="eps (x/255)", readout_format=".1f", continuous_update=False,
                                 style={"description_width": "initial"},
                                 layout=widgets.Layout(width="360px"))
    attack_dd = widgets.Dropdown(options=[(v, k) for k, v in ATTACKS.items()], value=key, description="attack")
    target_dd = widgets.Dropdown(options=choices, value=target, description="target",
                                 disabled=key != "targeted_fgsm")
    output = widgets.Output(layout=widgets.Layout(min_height="320px"))
    box = widgets.VBox([widgets.HBox([slider, attack_dd, target_dd]), output])
    box.eps_slider, box.attack_dropdown, box.target_dropdown, box.output = slider, attack_dd, target_dd, output
    box.info, box.error, box.n_draws = None, None, 0

    def redraw(change=None):
        target_dd.disabled = attack_dd.value != "targeted_fgsm"
        if change is not None and change.get("owner") is target_dd and target_dd.disabled:
            return  # the target only matters to targeted FGSM
        def draw():
            fig, info = attack_figure(model, x, label, attack=attack_dd.value, eps=slider.value / 255,
                                      target=target_dd.value, class_names=names, pgd_steps=pgd_steps,
                                      amplify=amplify, top_k=top_k)
            return fig, info, _summary(info, names)

        show_in(box, output, draw)

    box.redraw = redraw
    for w in (slider, attack_dd, target_dd):
        w.observe(redraw, names="value")
    redraw()
    return box
