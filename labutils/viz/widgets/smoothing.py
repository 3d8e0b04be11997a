"""Smoothing explorer: one image under Gaussian noise of a chosen sigma, and how the base classifier votes.

The pure parts live below this layer: :func:`labutils.robustness.smoothing_votes` draws the noisy
copies and counts the votes, :func:`labutils.viz.plots.smoothing_votes_figure` draws them.
Notebooks call those directly, so a headless run still draws (and saves) the figure.

:func:`smoothing_explorer` is a thin ipywidgets shell around them: a sigma slider over a few
values, an image-index slider and an ``Output`` area redrawn on every change.  ipywidgets is
imported only when the explorer is built.

Conventions (as :mod:`labutils.robustness.smoothing`): images are ``(N, C, H, W)`` uint8 or float
in ``[0, 1]``; ``sigma`` and the radius are on the ``[0, 1]`` pixel scale; the model returns logits.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ... import data as _data
from ...robustness import ABSTAIN, smoothing_votes
from ..plots import smoothing_votes_figure
from .epsilon import show_in

__all__ = ["smoothing_explorer"]

_IPYWIDGETS_MISSING = ("the smoothing explorer needs ipywidgets (and, in JupyterLab, jupyterlab_widgets): "
                       "pip install 'ipywidgets>=8' jupyterlab_widgets, or run `make setup`. "
                       "labutils.robustness.smoothing_votes(...) and labutils.viz.plots.smoothing_votes_figure(...) "
                       "draw the same figure without widgets.")


def _checked_inputs(images, labels, class_names, sigmas):
    """Float ``(N, C, H, W)`` images in [0, 1], int labels ``(N,)``, names, sigmas (positive floats)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}.")
    x = _data.to_float(images) if images.dtype == torch.uint8 else images.detach()
    _data.check_images(x, name="images")
    if len(x) == 0:
        raise ValueError("images is empty: pass at least one image.")
    y = torch.as_tensor(labels).detach().cpu().reshape(-1)
    if y.is_floating_point() or len(y) != len(x):
        raise ValueError(f"labels must be {len(x)} integer class indices, one per image; got {len(y)} of {y.dtype}.")
    names = [str(c) for c in class_names]
    if len(names) < 2 or y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"labels must be class indices in 0..{len(names) - 1} of class_names (>= 2 names).")
    sigmas = [float(s) for s in sigmas]
    if not sigmas or any(not (math.isfinite(s) and s > 0) for s in sigmas) or len(set(sigmas)) != len(sigmas):
        raise ValueError(f"sigmas must be distinct positive numbers on the [0, 1] pixel scale, e.g. (0.25, 0.5); "
                         f"got {sigmas}.")
    return x, y, names, sigmas


def _summary(index: int, label: int, sigma: float, votes: dict, names: Sequence[str]) -> str:
    answer = "abstain" if votes["prediction"] == ABSTAIN else names[votes["prediction"]]
    top = votes["top"]
    return (f"image {index} (true {names[label]}), sigma = {sigma:g}: PREDICT {answer}; "
            f"{names[top]} has {int(votes['counts'][top])}/{votes['n']} votes, "
            f"p_lower {votes['p_lower']:.3f}, radius {votes['radius']:.3f}")


def smoothing_explorer(model: nn.Module, images: torch.Tensor, labels, class_names: Sequence[str], *,
                       sigmas: Sequence[float] = (0.12, 0.25, 0.5, 1.0), sigma: float | None = None, index: int = 0,
                       n: int = 1000, alpha: float = 0.001, n_show: int = 8, seed: int = 0):
    """An ipywidgets explorer of the base classifier's votes on noisy copies of one image.

    Args:
        model: classifier taking ``[0, 1]`` images (noisy copies leave that range) and returning logits
            ``(N, K)``; run in eval mode, each submodule's mode and ``requires_grad`` restored.
        images: ``(N, C, H, W)`` uint8 or float in ``[0, 1]`` (C is 1 or 3); not modified.
        labels: ``(N,)`` their true classes.
        class_names: the ``K`` class names (K = the model's number of classes).
        sigmas: the noise levels the slider offers (positive, ``[0, 1]`` pixel scale).
        sigma: the initial one (default: the first of ``sigmas``; must be one of them).
        index: the initial image.
        n, alpha, n_show, seed: passed to :func:`labutils.robustness.smoothing_votes`.

    Returns:
        An ``ipywidgets.VBox``: a row with a ``SelectionSlider`` over ``sigmas`` and an ``IntSlider``
        over the image index (both ``continuous_update=False``), then an ``Output`` area.  Every
        change redraws :func:`labutils.viz.plots.smoothing_votes_figure` of
        :func:`labutils.robustness.smoothing_votes` into the output (PNG plus a one-line summary) and
        closes the figure.  For scripts and tests the box also carries ``sigma_slider``,
        ``index_slider``, ``output``, ``info`` (the last votes dict plus ``index``, ``label`` and
        ``sigma``, or None after an error), ``error`` (the last error message or None), ``n_draws`` and
        ``redraw()``.

    Raises:
        ImportError: ipywidgets is not installed.
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:
        raise ImportError(_IPYWIDGETS_MISSING) from exc

    x, y, names, sigmas = _checked_inputs(images, labels, class_names, sigmas)
    start = sigmas[0] if sigma is None else float(sigma)
    if start not in sigmas:
        raise ValueError(f"sigma={sigma!r} must be one of sigmas {sigmas}.")
    if isinstance(index, bool) or int(index) != index or not 0 <= int(index) < len(x):
        raise ValueError(f"index must be an image index in 0..{len(x) - 1}, got {index!r}.")

    sigma_slider = widgets.SelectionSlider(options=[(f"{s:g}", s) for s in sigmas], value=start,
                                           description="sigma ([0, 1] scale)", continuous_update=False,
                                           style={"description_width": "initial"},
                                           layout=widgets.Layout(width="360px"))
    index_slider = widgets.IntSlider(value=int(index), min=0, max=len(x) - 1, description="image",
                                     continuous_update=False, layout=widgets.Layout(width="360px"))
    output = widgets.Output(layout=widgets.Layout(min_height="420px"))
    box = widgets.VBox([widgets.HBox([sigma_slider, index_slider]), output])
    box.sigma_slider, box.index_slider, box.output = sigma_slider, index_slider, output
    box.info, box.error, box.n_draws = None, None, 0

    def draw():
        i, s = index_slider.value, sigma_slider.value
        label = int(y[i])
        votes = smoothing_votes(model, x[i], s, n, num_classes=len(names), alpha=alpha, n_show=n_show, seed=seed)
        fig = smoothing_votes_figure(votes, names, sigma=s, true_label=label)
        return fig, votes | {"index": i, "label": label, "sigma": s}, _summary(i, label, s, votes, names)

    def redraw(change=None):
        show_in(box, output, draw)

    box.redraw = redraw
    for w in (sigma_slider, index_slider):
        w.observe(redraw, names="value")
    redraw()
    return box
