"""labutils.viz.widgets.coverage without a browser: the counts, the figure and the slider's wiring.

Scores and images are synthetic (no model), so these tests take well under a second each.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labutils import selective  # noqa: E402
from labutils.viz import widgets  # noqa: E402

NAMES = ["plane", "car", "bird"]


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    correct = torch.rand(40, generator=g) < 0.75
    scores = -torch.rand(40, generator=g, dtype=torch.float64) * 2 + 0.8 * correct  # negative entropy-like
    scores[[3, 7]] = float(scores[5])  # ties
    images = (torch.rand(40, 3, 8, 8, generator=g) * 255).to(torch.uint8)
    labels = torch.randint(0, 3, (40,), generator=g)
    return scores, correct, images, labels


@pytest.mark.parametrize("coverage", [0.25, 0.5, 0.9, 1.0])
def test_counts_equal_selective_risk_and_rejected_are_lowest_first(data, coverage):
    scores, correct, _, _ = data
    t = selective.threshold_for_coverage(scores, coverage)
    info = widgets.coverage_counts(scores, correct, t)
    cov, risk = selective.selective_risk(scores, correct, t)
    assert info["coverage"] == cov and info["selective_risk"] == risk and info["selective_accuracy"] == 1 - risk
    s = scores.numpy()
    below = np.flatnonzero(s < t)
    assert info["n_rejected"] == below.size and info["n_accepted"] == 40 - below.size == round(cov * 40)
    assert sorted(info["rejected"].tolist()) == below.tolist()  # exactly the ones below the threshold
    assert np.all(np.diff(s[info["rejected"]]) >= 0)  # lowest score first
    assert np.array_equal(info["accepted"], np.flatnonzero(s >= t))
    assert info["rejected_wrong"] == int((~correct.numpy()[below]).sum())


def test_counts_at_the_extremes(data):
    scores, correct, _, _ = data
    none = widgets.coverage_counts(scores, correct, math.inf)
    assert none["coverage"] == 0 and none["n_rejected"] == 40 and math.isnan(none["selective_accuracy"])
    every = widgets.coverage_counts(scores, correct, -math.inf)
    assert every["coverage"] == 1 and every["selective_accuracy"] == pytest.approx(float(correct.float().mean()))
    with pytest.raises(ValueError, match="NaN"):
        widgets.coverage_counts(scores, correct, float("nan"))
    with pytest.raises(ValueError, match="same length"):
        widgets.coverage_counts(scores, correct[:5], 0.0)


def test_figure_histogram_title_and_rejected_images(data):
    scores, correct, images, labels = data
    t = selective.threshold_for_coverage(scores, 0.8)
    fig, info = widgets.coverage_figure(scores, correct, images, t, labels, NAMES, score_name="negative entropy",
                                        unit="nats", n_show=5)
    top, bottom = fig.subfigs
    ax = top.axes[0]
    assert ax.get_xlabel() == "negative entropy (nats)" and ax.get_ylabel() == "predictions per bin (count)"
    title = ax.get_title()
    assert f"coverage {info['coverage']:.1%} ({info['n_accepted']} of 40)" in title
    assert f"selective accuracy {info['selective_accuracy']:.1%}" in title
    assert ax.lines[0].get_xdata()[0] == pytest.approx(t)
    n_right = int(correct.sum())
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[:2] == [f"right (n={n_right})", f"wrong (n={40 - n_right})"] and "rejected side" in legend
    assert f"rejected: {info['n_rejected']} images" in bottom._suptitle.get_text()
    shown = [a for a in bottom.axes if a.get_visible() and a.images]
    assert len(shown) == min(5, info["n_rejected"])
    for a, i in zip(shown, info["rejected"][:5]):  # lowest score first, captioned with class and score
        assert a.get_title().startswith(NAMES[int(labels[i])] + "\n" + f"{float(scores[i]):.3g} nats")
        shown_pixels = a.images[0].get_array()
        assert np.allclose(shown_pixels, images[i].permute(1, 2, 0).numpy() / 255.0)


def test_figure_nothing_rejected_volumes_and_errors(data):
    scores, correct, images, _ = data
    fig, info = widgets.coverage_figure(scores, correct, images, -1e9)
    assert info["n_rejected"] == 0 and any(t.get_text() == "none" for a in fig.subfigs[1].axes for t in a.texts)
    volumes = torch.rand(40, 1, 6, 8, 8)
    fig, info = widgets.coverage_figure(scores, correct, volumes, 0.0, n_show=3)  # middle depth slice
    first = [a for a in fig.subfigs[1].axes if a.images][0]
    assert np.allclose(first.images[0].get_array(), volumes[info["rejected"][0], 0, 3].numpy())
    with pytest.raises(ValueError, match="images"):
        widgets.coverage_figure(scores, correct, images[:5], 0.0)
    with pytest.raises(ValueError, match="labels"):
        widgets.coverage_figure(scores, correct, images, 0.0, labels=[0, 1])
    fig, info = widgets.coverage_figure(torch.ones(40), torch.ones(40, dtype=torch.bool), images, 1.0)  # one class
    assert info["coverage"] == 1 and info["selective_accuracy"] == 1


def test_explorer_starts_at_the_threshold_and_redraws(data):
    scores, correct, images, labels = data
    t = selective.threshold_for_coverage(scores, 0.7)
    box = widgets.coverage_explorer(scores, correct, images, threshold=t, labels=labels, class_names=NAMES,
                                    score_name="negative entropy", unit="nats")
    assert box.n_draws == 1 and box.error is None
    assert box.slider.value == pytest.approx(t, abs=box.slider.step)
    assert box.info["threshold"] == box.slider.value
    cov, risk = selective.selective_risk(scores, correct, box.slider.value)
    assert (box.info["coverage"], box.info["selective_risk"]) == (cov, risk)
    assert box.slider.min == pytest.approx(float(scores.min())) and box.slider.max == pytest.approx(float(scores.max()))
    assert "image/png" in box.output.outputs[0]["data"]
    assert "negative entropy >=" in box.output.outputs[1]["text"]
    before = box.info["coverage"]
    box.slider.value = box.slider.max
    assert box.n_draws == 2 and box.info["coverage"] <= before and box.info["threshold"] == box.slider.value
    assert plt.get_fignums() == []  # every drawn figure was closed


def test_explorer_default_threshold_and_errors_in_the_output(data, monkeypatch):
    scores, correct, images, _ = data
    box = widgets.coverage_explorer(scores, correct, images)
    assert box.slider.value == pytest.approx(selective.threshold_for_coverage(scores, 0.9), abs=box.slider.step)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(widgets.coverage, "coverage_figure", broken)
    box.slider.value = box.slider.min
    assert box.error == "RuntimeError: boom" and box.info is None
    assert box.output.outputs[0]["name"] == "stderr"
    with pytest.raises(ValueError, match="images"):
        widgets.coverage_explorer(scores, correct, images[:3])


def test_missing_ipywidgets_gives_clear_error(data, no_ipywidgets):
    scores, correct, images, _ = data
    with pytest.raises(ImportError, match="pip install"):
        widgets.coverage_explorer(scores, correct, images)
    fig, _ = widgets.coverage_figure(scores, correct, images, 0.0)  # still works
    assert len(fig.subfigs) == 2
