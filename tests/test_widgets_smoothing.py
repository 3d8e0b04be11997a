"""labutils.viz.widgets.smoothing without a browser: the explorer's wiring over smoothing_votes and its figure.

The base classifier is a tiny hand-made module (classes by pixel brightness), so these tests take well
under a second each.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from labutils import robustness  # noqa: E402
from labutils.viz import widgets  # noqa: E402

NAMES = ["dark", "grey", "light"]
N = 200


class Brightness(nn.Module):
    """Class by the pixel mean, nearest of 0.2 / 0.5 / 0.8 (a BatchNorm-free toy; one weight for the mode checks)."""

    def __init__(self):
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([[0.2, 0.5, 0.8]]))

    def forward(self, x):
        return -((x.flatten(1).mean(1, keepdim=True) - self.centres) ** 2)


@pytest.fixture
def data():
    images = torch.stack([torch.full((1, 6, 6), v) for v in (0.25, 0.5, 0.62)])
    return Brightness(), images, torch.tensor([0, 1, 2])


@pytest.fixture
def explorer(data):
    model, images, labels = data
    return widgets.smoothing_explorer(model, images, labels, NAMES, sigmas=(0.12, 0.25, 1.0), n=N, n_show=4)


def _summary_text(box) -> str:
    return "".join(o.get("text", "") for o in box.output.outputs if o["output_type"] == "stream")


def test_explorer_structure_and_first_draw(explorer):
    import ipywidgets

    assert isinstance(explorer, ipywidgets.VBox)
    s, i = explorer.sigma_slider, explorer.index_slider
    assert isinstance(s, ipywidgets.SelectionSlider) and s.continuous_update is False
    assert [label for label, _ in s.options] == ["0.12", "0.25", "1"] and s.value == 0.12
    assert isinstance(i, ipywidgets.IntSlider) and (i.min, i.max, i.value) == (0, 2, 0) and not i.continuous_update
    kinds = [o["output_type"] for o in explorer.output.outputs]
    assert kinds == ["display_data", "stream"] and "image/png" in explorer.output.outputs[0]["data"]
    assert explorer.n_draws == 1 and explorer.error is None
    info = explorer.info
    assert (info["index"], info["label"], info["sigma"]) == (0, 0, 0.12) and int(info["counts"].sum()) == N
    assert info["prediction"] == 0 and "image 0 (true dark), sigma = 0.12: PREDICT dark" in _summary_text(explorer)
    assert plt.get_fignums() == []  # every drawn figure was closed


def test_sigma_slider_redraws_with_the_new_noise(explorer, data):
    model, images, _ = data
    first, text, counts = explorer.output.outputs, _summary_text(explorer), explorer.info["counts"]
    explorer.sigma_slider.value = 1.0
    assert explorer.n_draws == 2 and explorer.info["sigma"] == 1.0
    expected = robustness.smoothing_votes(model, images[0], 1.0, N, num_classes=3, n_show=4)
    assert torch.equal(explorer.info["counts"], expected["counts"]) and not torch.equal(expected["counts"], counts)
    assert explorer.info["prediction"] == expected["prediction"]
    assert "sigma = 1:" in _summary_text(explorer) and _summary_text(explorer) != text
    assert explorer.output.outputs[0]["data"]["image/png"] != first[0]["data"]["image/png"]
    assert plt.get_fignums() == []


def test_index_slider_redraws_another_image(explorer):
    explorer.index_slider.value = 2
    assert explorer.n_draws == 2 and (explorer.info["index"], explorer.info["label"]) == (2, 2)
    assert "image 2 (true light)" in _summary_text(explorer)


def test_explorer_calls_the_pure_functions_once_per_change(data, monkeypatch):
    votes_calls, figure_calls = [], []
    real_votes, real_figure = widgets.smoothing.smoothing_votes, widgets.smoothing.smoothing_votes_figure

    def votes_spy(*args, **kwargs):
        votes_calls.append((args, kwargs))
        return real_votes(*args, **kwargs)

    def figure_spy(*args, **kwargs):
        figure_calls.append(kwargs)
        return real_figure(*args, **kwargs)

    monkeypatch.setattr(widgets.smoothing, "smoothing_votes", votes_spy)
    monkeypatch.setattr(widgets.smoothing, "smoothing_votes_figure", figure_spy)
    model, images, labels = data
    box = widgets.smoothing_explorer(model, images, labels, NAMES, sigmas=(0.25, 0.5), sigma=0.5, index=1, n=N,
                                     alpha=0.01, seed=3)
    box.sigma_slider.value = 0.25
    assert len(votes_calls) == len(figure_calls) == 2
    (m, image, sigma, n), kwargs = votes_calls[-1]
    assert m is model and torch.equal(image, images[1]) and (sigma, n) == (0.25, N)
    assert kwargs == {"num_classes": 3, "alpha": 0.01, "n_show": 8, "seed": 3}
    assert figure_calls[0]["sigma"] == 0.5 and figure_calls[-1] == {"sigma": 0.25, "true_label": 1}


def test_explorer_shows_errors_in_the_output(explorer, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(widgets.smoothing, "smoothing_votes", broken)
    explorer.sigma_slider.value = 0.25
    assert explorer.error == "RuntimeError: boom" and explorer.info is None
    assert explorer.output.outputs[0]["name"] == "stderr" and "boom" in explorer.output.outputs[0]["text"]


def test_uint8_images_model_state_and_input_kept(data):
    model, images, labels = data
    model.train()
    u8 = (images * 255).round().to(torch.uint8)
    u8_before = u8.clone()
    box = widgets.smoothing_explorer(model, u8, labels, NAMES, n=N)
    box.index_slider.value = 1
    assert box.error is None and box.n_draws == 2
    assert model.training and model.centres.requires_grad and model.centres.grad is None
    assert torch.equal(u8, u8_before)


@pytest.mark.parametrize("kwargs, match", [
    ({"sigmas": (0.0, 0.25)}, "sigmas must be distinct positive"),
    ({"sigmas": (0.25, 0.25)}, "sigmas must be distinct positive"),
    ({"sigma": 0.3}, "must be one of sigmas"),
    ({"index": 3}, "index must be an image index in 0..2"),
    ({"labels": torch.tensor([0, 1])}, "labels must be 3 integer class indices"),
    ({"labels": torch.tensor([0, 1, 3])}, "class indices in 0..2"),
    ({"images": torch.full((3, 1, 6, 6), 2.0)}, r"\[0, 1\]"),
])
def test_bad_arguments_are_rejected(data, kwargs, match):
    model, images, labels = data
    call = {"images": images, "labels": labels} | kwargs
    with pytest.raises(ValueError, match=match):
        widgets.smoothing_explorer(model, call.pop("images"), call.pop("labels"), NAMES, **call)


def test_missing_ipywidgets_gives_clear_error(data, no_ipywidgets):
    model, images, labels = data
    with pytest.raises(ImportError, match="pip install"):
        widgets.smoothing_explorer(model, images, labels, NAMES)
