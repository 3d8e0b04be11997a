"""labutils.viz.widgets.threshold without a browser: the counts, the figure and the slider's wiring.

Scores and images are synthetic (no model), so these tests take well under a second each.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend


import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labutils.uncertainty import choose_threshold, evaluate_threshold  # noqa: E402
from labutils.viz import widgets  # noqa: E402


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(30, generator=g, dtype=torch.float64) + 5.0
    adv = torch.randn(20, generator=g, dtype=torch.float64) + 6.0
    images_adv = torch.rand(20, 3, 8, 8, generator=g)
    images_clean = (torch.rand(30, 3, 8, 8, generator=g) * 255).to(torch.uint8)
    return clean, adv, images_adv, images_clean


@pytest.mark.parametrize("direction", ["above", "below"])
def test_counts_match_the_definition_and_evaluate_threshold(data, direction):
    clean, adv, _, _ = data
    info = widgets.threshold_counts(clean, adv, 5.5, direction=direction)
    flag = (lambda s: s > 5.5) if direction == "above" else (lambda s: s < 5.5)
    assert info["detected"] == int(flag(adv).sum()) and info["missed"] == 20 - info["detected"]
    assert info["false_alarms"] == int(flag(clean).sum())
    assert info["tpr"] == pytest.approx(info["detected"] / 20) and info["fpr"] == pytest.approx(info["false_alarms"] / 30)
    assert np.array_equal(info["flagged_adv"], np.flatnonzero(flag(adv).numpy()))
    assert np.array_equal(info["flagged_clean"], np.flatnonzero(flag(clean).numpy()))
    assert sorted(np.r_[info["flagged_adv"], info["missed_adv"]].tolist()) == list(range(20))
    # a threshold chosen by choose_threshold gives the rates evaluate_threshold reports
    t = choose_threshold(clean, adv, direction=direction)
    again = widgets.threshold_counts(clean, adv, t.value, direction=t.direction)
    ev = evaluate_threshold(t, clean, adv)
    assert (again["fpr"], 1 - again["tpr"]) == pytest.approx((ev["fpr"], ev["fnr"]))


def test_figure_rows_titles_and_info(data):
    clean, adv, images_adv, images_clean = data
    fig, info = widgets.threshold_figure(clean, adv, images_adv, 5.5, images_clean=images_clean,
                                         score_name="whiten entropy", n_show=4)
    assert len(fig.subfigs) == 4
    hist_ax = fig.subfigs[0].axes[0]
    assert hist_ax.get_xlabel() == "whiten entropy (bits)"
    title = hist_ax.get_title()
    assert f"detected {info['detected']} of 20" in title and f"false alarms {info['false_alarms']} of 30" in title
    assert hist_ax.lines[0].get_xdata()[0] == pytest.approx(5.5)
    for sub, key in zip(fig.subfigs[1:], ("detected", "missed", "false_alarms")):
        assert str(info[key]) in sub._suptitle.get_text()
        shown = min(4, info[key])
        assert sum(ax.get_visible() and bool(ax.images) for ax in sub.axes) == shown
    # captions: the score of each shown image, in index order
    first = fig.subfigs[1].axes[0].get_title()
    assert first.startswith(f"{float(adv[info['flagged_adv'][0]]):.3g}")


def test_figure_without_clean_images_and_empty_rows(data):
    clean, adv, images_adv, _ = data
    fig, info = widgets.threshold_figure(clean, adv, images_adv, 1e9)  # flags nothing
    assert len(fig.subfigs) == 3 and info["detected"] == 0 and info["missed"] == 20
    assert any(t.get_text() == "none" for ax in fig.subfigs[1].axes for t in ax.texts)
    fig, info = widgets.threshold_figure(clean, adv, images_adv, -np.inf)  # flags everything, no finite line
    assert info["detected"] == 20 and info["false_alarms"] == 30


def test_figure_errors(data):
    clean, adv, images_adv, images_clean = data
    with pytest.raises(ValueError, match="direction"):
        widgets.threshold_figure(clean, adv, images_adv, 5.0, direction="up")
    with pytest.raises(ValueError, match="images_adv"):
        widgets.threshold_figure(clean, adv, images_adv[:5], 5.0)
    with pytest.raises(ValueError, match="images_clean"):
        widgets.threshold_figure(clean, adv, images_adv, 5.0, images_clean=images_clean[:3])
    with pytest.raises(ValueError, match="NaN"):
        widgets.threshold_counts([1.0, float("nan")], [2.0], 1.5)


def test_explorer_redraws_on_the_slider(data):
    clean, adv, images_adv, images_clean = data
    box = widgets.threshold_explorer(clean, adv, images_adv, threshold=5.5, images_clean=images_clean,
                                     score_name="whiten entropy")
    assert box.n_draws == 1 and box.error is None and box.slider.value == pytest.approx(5.5, abs=box.slider.step)
    assert box.slider.min == pytest.approx(float(min(clean.min(), adv.min())))
    assert "image/png" in box.output.outputs[0]["data"]
    before = box.info["detected"]
    box.slider.value = box.slider.max
    assert box.n_draws == 2 and box.info["detected"] <= before and box.info["threshold"] == box.slider.value
    assert "whiten entropy >" in box.output.outputs[1]["text"]
    assert plt.get_fignums() == []  # every drawn figure was closed


def test_explorer_default_threshold_and_errors_in_the_output(data, monkeypatch):
    clean, adv, images_adv, _ = data
    box = widgets.threshold_explorer(clean, adv, images_adv, direction="below")
    median = float(np.median(np.r_[clean.numpy(), adv.numpy()]))
    assert box.slider.value == pytest.approx(median, abs=box.slider.step)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(widgets.threshold, "threshold_figure", broken)
    box.slider.value = box.slider.min
    assert box.error == "RuntimeError: boom" and box.info is None
    assert box.output.outputs[0]["name"] == "stderr"


def test_missing_ipywidgets_gives_clear_error(data, no_ipywidgets):
    clean, adv, images_adv, _ = data
    with pytest.raises(ImportError, match="pip install"):
        widgets.threshold_explorer(clean, adv, images_adv)
    fig, _ = widgets.threshold_figure(clean, adv, images_adv, 5.0)  # still works
    assert len(fig.subfigs) == 3
