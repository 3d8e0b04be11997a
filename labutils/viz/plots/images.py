"""Pictures of images and of matrices over classes: image grids, class balance, heatmaps."""
from __future__ import annotations

import math

import numpy as np

from ._common import _to_numpy, _new_axes

__all__ = ["image_grid", "class_balance", "heatmap"]


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
