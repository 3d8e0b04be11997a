"""Figures: each function returns a Figure with labelled axes and the expected artists."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from labutils import uncertainty  # noqa: E402
from labutils.viz import plots  # noqa: E402


def _labelled(ax):
    return bool(ax.get_xlabel().strip()) and bool(ax.get_ylabel().strip())


def test_score_histograms():
    rng = np.random.default_rng(0)
    s_id = torch.tensor(rng.normal(1, 1, 200))
    fig = plots.score_histograms(s_id, {"noise": rng.normal(0, 1, 150), "fmnist": rng.normal(-1, 1, 90)},
                                 score_name="max_logit", unit="logit units")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "max_logit (logit units)" and "density" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["in-distribution (n=200)", "noise (n=150)", "fmnist (n=90)"]
    assert len(ax.patches) == 3
    # each step-filled outline encloses area 1 (a density): shoelace formula on its vertices
    for patch in ax.patches:
        x, y = patch.get_path().vertices.T
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        assert area == pytest.approx(1.0, rel=1e-6)


def test_score_histograms_into_given_axes_and_constant_scores():
    fig, ax = plt.subplots()
    out = plots.score_histograms(np.zeros(10), np.zeros(5), score_name="neg_energy", ax=ax)
    assert out is fig and len(ax.patches) == 2 and _labelled(ax)
    with pytest.raises(ValueError, match="no finite scores"):
        plots.score_histograms([np.nan], {"x": [1.0]}, score_name="s")


def test_roc_curves_legend_has_auroc_and_chance_line():
    rng = np.random.default_rng(1)
    s_id, s_ood = rng.normal(1, 1, 300), rng.normal(0, 1, 400)
    curve = uncertainty.roc_curve(s_id, s_ood)
    fig = plots.roc_curves({"msp": curve, "perfect": ([0, 0, 1], [0, 1, 1])})
    (ax,) = fig.axes
    assert len(ax.lines) == 3  # two curves + chance diagonal
    np.testing.assert_array_equal(ax.lines[-1].get_xdata(), [0, 1])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == f"msp (AUROC {uncertainty.auroc(s_id, s_ood):.3f})"
    assert texts[1] == "perfect (AUROC 1.000)"
    assert "chance" in texts[2]
    assert "false positive rate" in ax.get_xlabel() and "true positive rate" in ax.get_ylabel()
    with pytest.raises(ValueError, match="same length"):
        plots.roc_curves({"bad": ([0, 1], [0, 0.5, 1])})


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_image_grid_subplots(dtype):
    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    if dtype == torch.float32:
        images = images.float() / 255
    fig = plots.image_grid(images, torch.arange(10) % 3, class_names=("cat", "dog", "ship"), nrows=3, title="t")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 12  # 3 rows x 4 columns
    drawn = [a for a in fig.axes if a.images]
    assert len(drawn) == 10 and all(len(a.images) == 1 for a in drawn)
    assert [a.get_title() for a in drawn[:4]] == ["cat", "dog", "ship", "cat"]
    assert drawn[0].images[0].get_array().shape == (8, 8, 3)


def test_image_grid_grey_mosaic_in_axes():
    images = torch.randint(0, 256, (5, 1, 6, 6), dtype=torch.uint8)
    fig, ax = plt.subplots()
    out = plots.image_grid(images, ["a", "b", "c", "d", "e"], ncols=3, ax=ax)
    assert out is fig
    assert len(ax.images) == 1 and isinstance(ax.images[0], AxesImage)
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c", "d", "e"]
    h, w = ax.images[0].get_array().shape
    assert h > 2 * 6 and w > 3 * 6
    with pytest.raises(ValueError, match="5 images but 2 labels"):
        plots.image_grid(images, [0, 1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        plots.image_grid(torch.full((1, 3, 4, 4), 3.0))


def test_class_balance_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    fig = plots.class_balance(labels, ["a", "b", "c", "d"])
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2, 1, 3, 0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert ax.get_ylabel() == "images (count)" and ax.get_xlabel() == "class"
    with pytest.raises(ValueError, match="out of range"):
        plots.class_balance([0, 5], ["a", "b"])


def test_accuracy_vs_eps_axes_and_units():
    eps = [0, 2 / 255, 8 / 255]
    fig = plots.accuracy_vs_eps(eps, {"clean model": [0.8, 0.4, 0.05], "robust": torch.tensor([0.7, 0.6, 0.4])})
    (ax,) = fig.axes
    assert ax.get_xlabel() == "epsilon (x/255)" and ax.get_ylabel() == "accuracy (%)"
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 2, 8])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [80, 40, 5])
    fig2 = plots.accuracy_vs_eps([0, 0.5, 1.0, 2.0], {"l2": [90, 50, 20, 5]}, eps_in_255=False,
                                 accuracy_in_percent=True)
    assert fig2.axes[0].get_xlabel() == "epsilon"
    np.testing.assert_allclose(fig2.axes[0].lines[0].get_ydata(), [90, 50, 20, 5])
    with pytest.raises(ValueError, match="accuracies for 3 epsilon"):
        plots.accuracy_vs_eps(eps, {"x": [0.1, 0.2]})
    with pytest.raises(ValueError, match="above 1"):
        plots.accuracy_vs_eps(eps, {"x": [80, 40, 5]})
    with pytest.raises(ValueError, match=r"\[0, 1\] pixel scale"):
        plots.accuracy_vs_eps([0, 2, 8], {"x": [0.8, 0.4, 0.1]})


def test_heatmap_annotations_and_colorbar():
    m = np.array([[np.nan, 12.5, 3.0], [40.0, np.nan, 7.25]])
    fig = plots.heatmap(m, ["src A", "src B"], ["t1", "t2", "t3"], title="transfer", fmt=".1f")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # heatmap + colour bar
    assert fig.axes[1].get_ylabel() == "success rate (%)"
    assert sorted(t.get_text() for t in ax.texts) == sorted(["12.5", "3.0", "40.0", "7.2"])
    assert ax.get_xlabel() == "target" and ax.get_ylabel() == "source" and ax.get_title() == "transfer"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["src A", "src B"]
    assert len(ax.images) == 1
    with pytest.raises(ValueError, match="2 row labels and 2 column labels"):
        plots.heatmap(m, ["a", "b"], ["x", "y"], title="bad", fmt=".0f")
