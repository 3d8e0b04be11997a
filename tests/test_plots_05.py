"""plots.entropy_histograms, plots.auroc_vs_eps, plots.auroc_bars: notebook 05's entropy-monitoring figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labutils.viz import plots  # noqa: E402


def _signals(shift, n=50, seed=0):
    rng = np.random.default_rng(seed)
    return {"whiten": rng.normal(5 + shift, 0.1, n), "pooled": torch.tensor(rng.normal(3 - shift, 0.2, n)),
            "predictive": rng.uniform(0, 3.3, n)}


def test_entropy_histograms_one_panel_per_signal_with_thresholds():
    fig = plots.entropy_histograms(_signals(0.0), _signals(0.3, n=40, seed=1), thresholds={"whiten": 5.15},
                                   labels=("clean", "PGD 8/255"), ncols=2, title="entropies")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "entropies"
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and len(fig.axes) == 4  # a 2x2 grid, the fourth cell hidden
    assert [ax.get_xlabel() for ax in visible] == ["whiten (bits)", "pooled (bits)", "predictive (bits)"]
    assert visible[0].get_ylabel() == "density (per bits)"
    texts = [t.get_text() for t in visible[0].get_legend().get_texts()]
    assert sorted(texts) == ["PGD 8/255 (n=40)", "clean (n=50)", "threshold"]
    assert len(visible[0].lines) == 1 and visible[0].lines[0].get_xdata()[0] == pytest.approx(5.15)
    assert len(visible[1].lines) == 0  # no threshold given for it


def test_entropy_histograms_errors():
    with pytest.raises(ValueError, match="same signals"):
        plots.entropy_histograms({"a": [1.0, 2.0]}, {"b": [1.0]})
    with pytest.raises(ValueError, match="empty"):
        plots.entropy_histograms({}, {})
    fig = plots.entropy_histograms({"a": [2.0, 2.0]}, {"a": [2.0]})  # one value everywhere: bins get a width
    assert fig.axes[0].get_xlim()[1] > fig.axes[0].get_xlim()[0]


def test_auroc_vs_eps_panels_lines_and_chance():
    eps = [2 / 255, 8 / 255, 16 / 255]
    panels = {"baseline, PGD": {"whiten": [0.6, 0.8, 0.95], "predictive": np.array([0.7, 0.6, 0.5])},
              "robust, PGD": {"whiten": [0.5, 0.55, 0.7], "predictive": [0.5, 0.52, 0.6]}}
    fig = plots.auroc_vs_eps(eps, panels, title="AUROC")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "AUROC"
    ax0, ax1 = fig.axes
    assert ax0.get_ylabel() == "detection AUROC" and ax0.get_xlabel() == "epsilon (x/255)"
    assert ax0.get_title() == "baseline, PGD" and ax0.get_ylim() == (0, 1.02)
    assert len(ax0.lines) == 3  # two signals and the chance line
    x, yv = ax0.lines[0].get_data()
    assert np.allclose(x, [2, 8, 16]) and np.allclose(yv, [0.6, 0.8, 0.95])
    assert ax0.lines[-1].get_ydata()[0] == 0.5
    labels = [t.get_text() for t in ax0.get_legend().get_texts()]
    assert labels == ["whiten", "predictive", "chance"] and ax1.get_legend() is None


def test_auroc_vs_eps_errors():
    with pytest.raises(ValueError, match="3 values for 2"):
        plots.auroc_vs_eps([1 / 255, 2 / 255], {"p": {"s": [0.5, 0.6, 0.7]}})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.auroc_vs_eps([1 / 255], {"p": {"s": [55.0]}})
    with pytest.raises(ValueError, match="panels is empty"):
        plots.auroc_vs_eps([1 / 255], {})


def test_auroc_bars_groups_and_labels():
    groups = {"PGD": {"whiten": 0.9, "pooled": 0.7, "fused": 0.95},
              "adaptive PGD": {"whiten": 0.55, "pooled": 0.6, "fused": 0.62}}
    fig = plots.auroc_bars(groups, title="before / after")
    ax = fig.axes[0]
    assert ax.get_title() == "before / after" and ax.get_ylabel() == "detection AUROC" and ax.get_xlabel() == "signal"
    assert len(ax.patches) == 6
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.9, 0.7, 0.95, 0.55, 0.6, 0.62])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["whiten", "pooled", "fused"]
    assert "0.55" in [t.get_text() for t in ax.texts]
    with pytest.raises(ValueError, match="expected"):
        plots.auroc_bars({"a": {"x": 0.5}, "b": {"y": 0.5}})
    with pytest.raises(ValueError, match="empty"):
        plots.auroc_bars({})
