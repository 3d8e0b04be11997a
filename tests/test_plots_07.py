"""plots.smoothing_votes_figure and plots.certified_accuracy_curves: notebook 07's randomized-smoothing figures.

Synthetic votes and curves (and one tiny hand-made model): each test takes well under a second.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from labutils.robustness import ABSTAIN, certified_accuracy, smoothing_votes  # noqa: E402
from labutils.viz import plots  # noqa: E402

NAMES = ["shirt", "coat", "bag"]


def _votes(prediction=1, counts=(5, 180, 15)):
    g = torch.Generator().manual_seed(0)
    copies = torch.rand(4, 1, 6, 6, generator=g) * 2 - 0.5  # noisy copies leave [0, 1]
    return {"copies": copies, "counts": torch.tensor(counts), "prediction": prediction,
            "top": int(np.argmax(counts)), "p_lower": 0.8512, "radius": 0.2605, "n": int(sum(counts))}


def _bars(fig):
    top, bottom = fig.subfigs
    return top, bottom, bottom.axes[0]


def _same_colour(a, b) -> bool:
    return np.allclose(mcolors.to_rgba(a), mcolors.to_rgba(b))


def test_votes_figure_copies_bars_labels_and_title():
    votes = _votes()
    fig = plots.smoothing_votes_figure(votes, NAMES, sigma=0.25, true_label=0)
    assert isinstance(fig, Figure)
    top, _, ax = _bars(fig)
    assert "sigma = 0.25" in top._suptitle.get_text() and "clipped to [0, 1]" in top._suptitle.get_text()
    shown = [a for a in top.axes if a.images]
    assert len(shown) == 4
    for a, copy in zip(shown, votes["copies"]):
        pixels = np.asarray(a.images[0].get_array())
        assert np.allclose(pixels, copy[0].clamp(0, 1).numpy()) and a.images[0].get_cmap().name == "gray"
    assert ax.get_ylabel() == "votes (of 200 noisy copies)"
    assert [p.get_height() for p in ax.patches] == [5, 180, 15]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    colours = [p.get_facecolor() for p in ax.patches]
    assert _same_colour(colours[1], "tab:blue") and all(_same_colour(c, "tab:grey") for c in (colours[0], colours[2]))
    assert _same_colour(ax.get_xticklabels()[0].get_color(), "tab:green")  # the true class
    title = ax.get_title()
    assert "PREDICT: coat" in title and "true class: shirt" in title
    assert "p_lower = 0.851" in title and "radius = 0.261 (L2, [0, 1] pixel scale)" in title


def test_votes_figure_shows_abstain():
    fig = plots.smoothing_votes_figure(_votes(prediction=ABSTAIN, counts=(98, 100, 2)), NAMES, sigma=1.0)
    _, _, ax = _bars(fig)
    assert "PREDICT: abstain" in ax.get_title() and "for coat" in ax.get_title()
    colours = [p.get_facecolor() for p in ax.patches]
    assert _same_colour(colours[1], "tab:orange") and not any(_same_colour(c, "tab:blue") for c in colours)


def test_votes_figure_from_smoothing_votes_and_into_a_given_figure():
    class Brightness(nn.Module):  # three classes by the pixel mean
        def forward(self, x):
            m = x.flatten(1).mean(1, keepdim=True)
            return -((m - torch.tensor([[0.2, 0.5, 0.8]])) ** 2)

    image = torch.full((1, 5, 5), 0.5)
    votes = smoothing_votes(Brightness(), image, 0.5, 100, num_classes=3, n_show=3)
    given = plt.figure()
    fig = plots.smoothing_votes_figure(votes, NAMES, sigma=0.5, fig=given)
    assert fig is given
    top, _, ax = _bars(fig)
    assert ax.get_ylabel() == "votes (of 100 noisy copies)" and len([a for a in top.axes if a.images]) == 3
    assert sum(p.get_height() for p in ax.patches) == 100


@pytest.mark.parametrize("change, kwargs, match", [
    ({"counts": None}, {}, "votes lacks counts"),
    ({}, {"sigma": 0}, "sigma must be a positive"),
    ({"prediction": 3}, {}, "prediction must be a class index"),
    ({"copies": torch.zeros(1, 6, 6)}, {}, "copies must be"),
    ({}, {"true_label": 7}, "true_label"),
    ({}, {"class_names": NAMES[:2]}, "3 vote counts but 2 class names"),
])
def test_votes_figure_errors(change, kwargs, match):
    votes = _votes() | change
    votes = {k: v for k, v in votes.items() if v is not None}
    call = {"class_names": NAMES, "sigma": 0.25} | kwargs
    with pytest.raises(ValueError, match=match):
        plots.smoothing_votes_figure(votes, call.pop("class_names"), **call)


def test_certified_accuracy_curves_steps_axes_and_published_points():
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 1])
    radii = np.linspace(0, 1.5, 16)
    a = certified_accuracy(torch.tensor([0, 1, 0, ABSTAIN, 0, 2, 2]), torch.tensor([0.3, 1.2, 0.8, 0, 0.05, 1.0, 0.4]),
                           labels, radii)
    b = certified_accuracy(torch.tensor([0, 1, 2, 1, 0, 2, 1]), torch.full((7,), 0.2), labels, radii)
    fig = plots.certified_accuracy_curves({"sigma = 0.25": (radii, a), "sigma = 0.5": (torch.tensor(radii), b)},
                                          published={"sigma = 0.25": 0.7, "Cohen et al.": ([0.0, 0.5], [0.75, 0.6])},
                                          title="Fashion-MNIST")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "L2 radius (pixel scale [0, 1])" and ax.get_ylabel() == "certified accuracy (%)"
    assert ax.get_ylim() == (0, 100) and ax.get_xlim()[0] == 0 and ax.get_title() == "Fashion-MNIST"
    curves, stars = ax.lines[:2], ax.lines[2:]
    for line, acc in zip(curves, (a, b)):
        assert line.get_drawstyle() == "steps-post"
        assert np.allclose(line.get_xdata(), radii) and np.allclose(line.get_ydata(), 100 * acc)
    assert [s.get_marker() for s in stars] == ["*", "*"]
    assert list(stars[0].get_xdata()) == [0.0] and list(stars[0].get_ydata()) == pytest.approx([70.0])
    assert _same_colour(stars[0].get_color(), curves[0].get_color())  # the same label, the same colour
    assert np.allclose(stars[1].get_xdata(), [0, 0.5]) and np.allclose(stars[1].get_ydata(), [75, 60])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["sigma = 0.25", "sigma = 0.5", "sigma = 0.25 (published)", "Cohen et al. (published)"]


def test_certified_accuracy_curves_into_given_axes_and_errors():
    fig, (a0, a1) = plt.subplots(1, 2)
    out = plots.certified_accuracy_curves({"m": ([0, 0.5, 1.0], [0.9, 0.5, 0.1])}, ax=a1)
    assert out is fig and not a0.lines and len(a1.lines) == 1
    with pytest.raises(ValueError, match="non-empty mapping"):
        plots.certified_accuracy_curves({})
    with pytest.raises(ValueError, match="pair"):
        plots.certified_accuracy_curves({"m": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="increasing"):
        plots.certified_accuracy_curves({"m": ([0.5, 0.0], [0.5, 0.9])})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.certified_accuracy_curves({"m": ([0.0, 0.5], [90, 50])})  # percentages, not fractions
    with pytest.raises(ValueError, match="2 points"):
        plots.certified_accuracy_curves({"m": ([0.0, 0.5], [0.9])})
    with pytest.raises(ValueError, match="published"):
        plots.certified_accuracy_curves({"m": ([0.0], [0.9])}, published={"p": "high"})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.certified_accuracy_curves({"m": ([0.0], [0.9])}, published={"p": 75})


def test_radius_vs_distance_draws_the_diagonal_and_the_cap():
    fig = plots.radius_vs_distance([0.2, 0.8, 1.5], [0.1, 0.7, 1.2], cap=1.23)
    ax = fig.axes[0]
    assert "exact distance" in ax.get_xlabel() and "certified radius" in ax.get_ylabel()
    assert any("1.23" in t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(ValueError, match="one length"):
        plots.radius_vs_distance([0.2], [0.1, 0.2])
    with pytest.raises(ValueError, match=">= 0"):
        plots.radius_vs_distance([-0.2], [0.1])
    plt.close(fig)
