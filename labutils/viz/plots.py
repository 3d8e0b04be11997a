"""Figures of the course, drawn with matplotlib.

Every function draws into ``ax`` (or ``fig``) when given one, else into a new
figure, and returns the :class:`matplotlib.figure.Figure`.  Nothing here
calls ``plt.show()`` or chooses a backend: notebooks display the returned
figure, scripts save it (e.g. with :func:`labutils.course.report.save_figure`) and
should close it with ``plt.close(fig)``.

Conventions: images are ``(N, C, H, W)`` uint8 in 0..255 or float in
``[0, 1]``; OOD scores follow :mod:`labutils.uncertainty` (higher = more
in-distribution); accuracies are fractions in ``[0, 1]`` unless stated; attack
budgets ``eps`` are on the ``[0, 1]`` pixel scale (e.g. ``8/255``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["score_histograms", "roc_curves", "image_grid", "class_balance", "accuracy_vs_eps", "heatmap"]


# --------------------------------------------------------------------------- helpers
def _to_numpy(x, dtype=np.float64) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype in (torch.bfloat16, torch.float16):
                x = x.float()
            x = x.numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.asarray(x, dtype=dtype) if dtype is not None else np.asarray(x)


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def _scores_1d(x, name: str) -> np.ndarray:
    arr = _to_numpy(x).ravel()
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        raise ValueError(f"{name} has no finite scores to plot (got {arr.size} values).")
    return finite


# --------------------------------------------------------------------------- OOD
def score_histograms(scores_id, scores_ood, *, score_name: str, ax=None, bins: int = 50,
                     id_label: str = "in-distribution", unit: str | None = None):
    """Overlaid density histograms of an OOD score on ID data and on one or more OOD sets.

    Args:
        scores_id: ``(N_id,)`` scores of the in-distribution test set.
        scores_ood: ``{OOD set name: (N,) scores}`` (a single array is labelled "OOD").
        score_name: name of the score, used in the x label and title (e.g. ``"max_softmax"``).
        ax: axes to draw into (default: a new figure).
        bins: number of bins shared by all histograms (over the range of all finite scores).
        id_label: legend label of the ID histogram.
        unit: unit of the score for the x label (e.g. ``"nats"``, ``"logit units"``).

    Non-finite scores are left out.  Returns the Figure: one step-filled
    histogram per data set (the ID one first) and a legend.
    """
    if not isinstance(scores_ood, Mapping):
        scores_ood = {"OOD": scores_ood}
    if not scores_ood:
        raise ValueError("scores_ood is empty: pass {OOD set name: scores}.")
    sets = {id_label: _scores_1d(scores_id, "scores_id")}
    for name, s in scores_ood.items():
        if name in sets:
            raise ValueError(f"OOD set name {name!r} clashes with the ID label; pass another id_label.")
        sets[name] = _scores_1d(s, f"scores_ood[{name!r}]")
    lo = min(float(s.min()) for s in sets.values())
    hi = max(float(s.max()) for s in sets.values())
    if hi <= lo:  # every score identical: give the bins a width
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    fig, ax = _new_axes(ax, (6, 3.5))
    for name, s in sets.items():
        ax.hist(s, bins=edges, density=True, histtype="stepfilled", alpha=0.45, label=f"{name} (n={s.size})")
    ax.set_xlabel(f"{score_name} ({unit})" if unit else f"{score_name} score")
    ax.set_ylabel("density (per unit of score)")
    ax.set_title(f"{score_name}: higher = more in-distribution")
    ax.legend()
    return fig


def roc_curves(curves: Mapping[str, Sequence], ax=None):
    """ROC curves with the chance diagonal and each curve's AUROC in the legend.

    Args:
        curves: ``{label: (fpr, tpr)}`` or ``{label: (fpr, tpr, thresholds)}`` as returned by
            :func:`labutils.uncertainty.roc_curve`: fractions in ``[0, 1]``, ordered by increasing fpr.
            In the OOD setting the positive class is in-distribution: ``tpr`` is the
            fraction of ID images accepted, ``fpr`` the fraction of OOD images accepted.
        ax: axes to draw into (default: a new figure).

    The AUROC shown is the trapezoidal area under the given points.  Returns
    the Figure: one line per curve plus the dashed chance line.
    """
    if not curves:
        raise ValueError("curves is empty: pass {label: (fpr, tpr)}.")
    fig, ax = _new_axes(ax, (4.5, 4.5))
    for label, curve in curves.items():
        if len(curve) < 2:
            raise ValueError(f"curve {label!r} must be (fpr, tpr[, thresholds]).")
        fpr, tpr = _to_numpy(curve[0]).ravel(), _to_numpy(curve[1]).ravel()
        if fpr.shape != tpr.shape or fpr.size < 2:
            raise ValueError(f"curve {label!r}: fpr and tpr must be 1-D of the same length >= 2, "
                             f"got {fpr.shape} and {tpr.shape}.")
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        ax.plot(fpr, tpr, label=f"{label} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance (AUROC 0.500)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (fraction of OOD accepted)")
    ax.set_ylabel("true positive rate (fraction of ID accepted)")
    ax.legend(loc="lower right", fontsize="small")
    return fig


# --------------------------------------------------------------------------- images and data
def _images_hwc(images) -> np.ndarray:
    """(N, C, H, W) uint8 or [0, 1] float -> float (N, H, W, C) in [0, 1]."""
    arr = _to_numpy(images, dtype=None)
    if arr.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {arr.shape}.")
    if arr.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (N, C, H, W), got C={arr.shape[1]}.")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    else:
        arr = arr.astype(np.float64)
        if arr.size and (np.nanmin(arr) < -1e-6 or np.nanmax(arr) > 1 + 1e-6):
            raise ValueError(f"float images must lie in [0, 1], got values in [{np.nanmin(arr):.3g}, "
                             f"{np.nanmax(arr):.3g}]; pass un-normalised images.")
        arr = np.clip(arr, 0.0, 1.0)
    return arr.transpose(0, 2, 3, 1)


def _label_text(labels, class_names, n: int) -> list[str] | None:
    if labels is None:
        return None
    labels = list(labels.tolist()) if hasattr(labels, "tolist") else list(labels)
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels.")
    out = []
    for lab in labels:
        if isinstance(lab, str):
            out.append(lab)
        elif class_names is not None:
            i = int(lab)
            if not 0 <= i < len(class_names):
                raise ValueError(f"label {i} is out of range for {len(class_names)} class names.")
            out.append(str(class_names[i]))
        else:
            out.append(str(lab))
    return out


def image_grid(images, labels=None, class_names=None, *, nrows: int | None = None, ncols: int | None = None,
               title: str | None = None, ax=None, fig=None, cell_size: float = 1.3):
    """Show images in a grid, each titled with its label (class name when ``class_names`` is given).

    Args:
        images: ``(N, C, H, W)``, uint8 in 0..255 or float in ``[0, 1]``; C is 1 (grey) or 3 (RGB).
        labels: ``N`` integer labels (tensor, array or list) or ``N`` strings; optional.
        class_names: names indexed by integer label.
        nrows, ncols: grid shape; by default up to 8 columns and as many rows as needed.
        title: figure (or axes) title.
        ax: draw the whole grid as one mosaic image in this axes, labels written on the tiles.
        fig: draw one subplot per image into this Figure (or SubFigure) instead of a new one.
        cell_size: inches per image in a new figure.

    Returns the Figure.  With ``ax`` it holds one image artist; otherwise one
    axes (with one image) per image, extra grid cells hidden.
    """
    import matplotlib.pyplot as plt

    arr = _images_hwc(images)
    n = arr.shape[0]
    if n == 0:
        raise ValueError("image_grid needs at least one image.")
    if ax is not None and fig is not None:
        raise ValueError("pass either ax or fig, not both.")
    texts = _label_text(labels, class_names, n)
    if ncols is None:
        ncols = min(n, 8) if nrows is None else math.ceil(n / nrows)
    if nrows is None:
        nrows = math.ceil(n / ncols)
    if nrows < 1 or ncols < 1 or nrows * ncols < n:
        raise ValueError(f"a {nrows}x{ncols} grid cannot hold {n} images.")
    grey = arr.shape[-1] == 1
    imshow_kw = dict(cmap="gray", vmin=0, vmax=1) if grey else {}

    if ax is not None:
        h, w, c = arr.shape[1:]
        pad = max(1, h // 16)
        mosaic = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c))
        for i in range(n):
            r, q = divmod(i, ncols)
            y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
            mosaic[y0 : y0 + h, x0 : x0 + w] = arr[i]
            if texts is not None:
                ax.text(x0 + w / 2, y0 + 0.5, texts[i], ha="center", va="top", fontsize="x-small",
                        color="white", bbox=dict(facecolor="black", alpha=0.5, pad=1, linewidth=0))
        ax.imshow(mosaic[..., 0] if grey else mosaic, interpolation="nearest", **imshow_kw)
        ax.set_axis_off()
        if title:
            ax.set_title(title)
        return ax.figure

    if fig is None:
        fig = plt.figure(figsize=(cell_size * ncols, cell_size * nrows + (0.4 if title else 0) + 0.2 * bool(texts)),
                         layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, a in enumerate(axes):
        a.set_axis_off()
        if i >= n:
            continue
        a.imshow(arr[i, ..., 0] if grey else arr[i], interpolation="nearest", **imshow_kw)
        if texts is not None:
            a.set_title(texts[i], fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def class_balance(labels, class_names=None, *, ax=None, title: str | None = None):
    """Bar chart of the number of images per class.

    Args:
        labels: ``(N,)`` integer labels in ``0..K-1``.
        class_names: ``K`` names indexed by label (default: the labels' numbers;
            with names, classes without images get an empty bar).
        ax: axes to draw into (default: a new figure).

    Returns the Figure: one bar per class, its count written above it.
    """
    lab = _to_numpy(labels, dtype=None).ravel()
    if lab.size == 0:
        raise ValueError("labels is empty.")
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.mod(lab, 1) == 0):
            raise ValueError("labels must be integers (class indices).")
        lab = lab.astype(np.int64)
    if lab.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(lab.min())}.")
    k = len(class_names) if class_names is not None else int(lab.max()) + 1
    if lab.max() >= k:
        raise ValueError(f"label {int(lab.max())} is out of range for {k} class names.")
    counts = np.bincount(lab, minlength=k)
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    fig, ax = _new_axes(ax, (max(4.0, 0.55 * k + 1), 3.5))
    bars = ax.bar(np.arange(k), counts, color="tab:blue")
    ax.bar_label(bars, fontsize="x-small")
    ax.set_xticks(np.arange(k), names, rotation=45 if k > 5 else 0, ha="right" if k > 5 else "center")
    ax.set_xlabel("class")
    ax.set_ylabel("images (count)")
    ax.set_title(title if title is not None else f"class balance ({lab.size} images)")
    return fig


# --------------------------------------------------------------------------- robustness
def accuracy_vs_eps(eps_values, curves: Mapping[str, Sequence[float]], *, ax=None, eps_in_255: bool = True,
                    accuracy_in_percent: bool = False, xlabel: str | None = None, title: str | None = None):
    """Accuracy under attack against the attack budget epsilon, one line per model / attack.

    Args:
        eps_values: budgets on the ``[0, 1]`` pixel scale (e.g. ``(0, 1/255, 8/255)``),
            or in the attack's own units (e.g. L2 norms) with ``eps_in_255=False``.
        curves: ``{label: accuracies}``, one accuracy per epsilon: fractions in
            ``[0, 1]`` (as :func:`labutils.training.evaluate` returns them) or
            percentages with ``accuracy_in_percent=True``.
        ax: axes to draw into (default: a new figure).
        eps_in_255: show epsilon as multiples of 1/255 (x label "epsilon (x/255)").
        accuracy_in_percent: the accuracies are already in %.
        xlabel: override the x label (e.g. ``"L2 epsilon"``).

    Returns the Figure: one marked line per curve, y axis "accuracy (%)" from 0 to 100.
    """
    eps = _to_numpy(eps_values).ravel()
    if eps.size == 0:
        raise ValueError("eps_values is empty.")
    if not curves:
        raise ValueError("curves is empty: pass {label: accuracies}.")
    if eps_in_255 and eps.max() > 1:
        raise ValueError(f"eps_values must be on the [0, 1] pixel scale when eps_in_255=True (e.g. 8/255), "
                         f"got a maximum of {eps.max():g}; pass eps/255, or eps_in_255=False for other units.")
    x = eps * 255 if eps_in_255 else eps
    fig, ax = _new_axes(ax, (5.5, 3.5))
    for label, acc in curves.items():
        y = _to_numpy(acc).ravel()
        if y.shape != eps.shape:
            raise ValueError(f"curve {label!r} has {y.size} accuracies for {eps.size} epsilon values.")
        if not accuracy_in_percent:
            if np.nanmax(y) > 1 + 1e-9:
                raise ValueError(f"curve {label!r} has accuracies above 1; pass fractions in [0, 1] "
                                 "or set accuracy_in_percent=True.")
            y = 100 * y
        ax.plot(x, y, marker="o", label=str(label))
    ax.set_xlabel(xlabel if xlabel is not None else ("epsilon (x/255)" if eps_in_255 else "epsilon"))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def heatmap(matrix, row_labels, col_labels, *, title: str | None = None, fmt: str = ".1f", ax=None,
            xlabel: str = "target", ylabel: str = "source", colorbar_label: str | None = "success rate (%)",
            cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None):
    """Annotated heatmap of a matrix, e.g. attack success rates with source rows and target columns.

    Args:
        matrix: ``(R, C)`` numbers, shown as given (NaN cells are left blank, e.g. a skipped diagonal).
        row_labels, col_labels: ``R`` and ``C`` tick labels (e.g. class names).
        title: axes title.
        fmt: format spec of the cell annotations (``format(value, fmt)``), e.g. ``".0f"``, ``".2f"``.
        ax: axes to draw into (default: a new figure).
        xlabel, ylabel: axis labels (default "target" / "source").
        colorbar_label: colour bar label with the unit of the values (None: no colour bar).
        cmap, vmin, vmax: colour map and its limits (default: the finite data range).

    Returns the Figure: one image, one text per finite cell, optionally a colour bar.
    """
    m = _to_numpy(matrix)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"matrix must be a non-empty 2-D array, got shape {m.shape}.")
    row_labels, col_labels = [str(r) for r in row_labels], [str(c) for c in col_labels]
    if len(row_labels) != m.shape[0] or len(col_labels) != m.shape[1]:
        raise ValueError(f"matrix has shape {m.shape} but {len(row_labels)} row labels and "
                         f"{len(col_labels)} column labels.")
    finite = m[np.isfinite(m)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    r, c = m.shape
    fig, ax = _new_axes(ax, (max(3.5, 0.6 * c + 2), max(3.0, 0.5 * r + 1.5)))
    image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    colormap = image.get_cmap()
    span = hi - lo if hi > lo else 1.0
    for i in range(r):
        for j in range(c):
            v = m[i, j]
            if not np.isfinite(v):
                continue
            rgba = colormap(min(max((v - lo) / span, 0.0), 1.0))
            luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize="small",
                    color="black" if luminance > 0.5 else "white")
    ax.set_xticks(np.arange(c), col_labels, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
    ax.set_yticks(np.arange(r), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar_label is not None:
        fig.colorbar(image, ax=ax, label=colorbar_label)
    return fig
