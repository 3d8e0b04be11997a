"""Helpers shared by the plotting modules: array conversion, new axes, 1-D score checks, percentages."""
from __future__ import annotations

import numpy as np



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


def _percent(values, n: int, what: str) -> np.ndarray:
    y = _to_numpy(values).ravel()
    if y.size != n:
        raise ValueError(f"{what} has {y.size} values for {n} points on the x axis.")
    if np.nanmin(y) < -1e-9 or np.nanmax(y) > 1 + 1e-9:
        raise ValueError(f"{what} must hold fractions in [0, 1].")
    return 100 * y


def overlaid_histograms(ax, first, second, labels: tuple[str, str], bins: int) -> None:
    """Two density histograms of 1-D NumPy arrays on shared, equal-width bins over both ranges; legend shows n."""
    import numpy as np

    lo, hi = float(min(first.min(), second.min())), float(max(first.max(), second.max()))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    for values, label in zip((first, second), labels):
        ax.hist(values, bins=edges, density=True, histtype="stepfilled", alpha=0.45, label=f"{label} (n={values.size})")
