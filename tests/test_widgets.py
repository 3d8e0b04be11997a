"""Tests of labutils.viz.widgets without a browser: attack_figure's numbers and figure, and the explorer's wiring.

Runs on the session's small SimpleCNN (``small_model``) and one test image from ``batch``.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend


import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labutils import attacks, data  # noqa: E402
from labutils.viz import widgets  # noqa: E402

NAMES = data.class_names("cifar10")
EPS = 8 / 255


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def one(batch):
    """One float image (3, H, W) in [0, 1] and its label (int)."""
    x, y = batch
    return x[0], int(y[0])


def _modes(model):
    return [m.training for m in model.modules()]


# --------------------------------------------------------------------------- attack_figure
def test_fgsm_info_matches_attacks_fgsm(small_model, one):
    image, label = one
    fig, info = widgets.attack_figure(small_model, image, label, attack="fgsm", eps=EPS, class_names=NAMES)
    x = image.unsqueeze(0)
    ref = attacks.fgsm(small_model, x, torch.tensor([label]), EPS)
    assert torch.equal(info["x_adv"], ref)
    with torch.no_grad():
        p0 = torch.softmax(small_model(x), 1)[0]
        p1 = torch.softmax(small_model(ref), 1)[0]
    assert info["pred_before"] == int(p0.argmax()) and info["pred_after"] == int(p1.argmax())
    assert info["conf_before"] == pytest.approx(float(p0.max()), abs=1e-6)
    assert info["conf_after"] == pytest.approx(float(p1.max()), abs=1e-6)
    assert info["p_label_after"] == pytest.approx(float(p1[label]), abs=1e-6)
    assert info["fooled"] == (info["pred_after"] != label)
    assert info["target"] is None and info["target_hit"] is None
    assert info["name_after"] == NAMES[info["pred_after"]]


@pytest.mark.parametrize("attack", ["fgsm", "targeted_fgsm", "pgd"])
@pytest.mark.parametrize("eps", [0.0, 2 / 255, EPS])
def test_perturbation_within_eps_and_norms_reported(small_model, one, attack, eps):
    image, label = one
    _, info = widgets.attack_figure(small_model, image, label, attack=attack, eps=eps, target=(label + 1) % 10,
                                    class_names=NAMES, pgd_steps=3)
    delta = info["x_adv"] - image.unsqueeze(0)
    assert info["linf"] <= eps + 1e-6
    assert info["linf"] == pytest.approx(float(delta.abs().max()), abs=1e-7)
    assert info["l2"] == pytest.approx(float(delta.norm()), rel=1e-5, abs=1e-7)
    assert 0 <= float(info["x_adv"].min()) and float(info["x_adv"].max()) <= 1
    if eps == 0:
        assert info["linf"] == 0 and info["pred_after"] == info["pred_before"]


def test_targeted_info_matches_targeted_fgsm(small_model, one):
    image, label = one
    target = (label + 3) % 10
    _, info = widgets.attack_figure(small_model, image, label, attack="targeted_fgsm", eps=EPS, target=target,
                                    class_names=NAMES)
    ref = attacks.fgsm(small_model, image.unsqueeze(0), torch.tensor([target]), EPS, targeted=True)
    assert torch.equal(info["x_adv"], ref)
    with torch.no_grad():
        pred = int(small_model(ref).argmax())
    assert info["target"] == target and info["target_hit"] == (pred == target)
    assert info["p_target_after"] is not None and info["p_target_before"] is not None


def test_pgd_matches_attacks_pgd_and_is_repeatable(small_model, one):
    image, label = one
    _, a = widgets.attack_figure(small_model, image, label, attack="pgd", eps=EPS, class_names=NAMES, pgd_steps=4)
    _, b = widgets.attack_figure(small_model, image, label, attack="pgd", eps=EPS, class_names=NAMES, pgd_steps=4)
    assert torch.equal(a["x_adv"], b["x_adv"])  # seeded random start
    ref = attacks.pgd(small_model, image.unsqueeze(0), torch.tensor([label]), EPS, 2.5 * EPS / 4, 4,
                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(a["x_adv"], ref)


def test_figure_has_titled_axes_and_percent_bars(small_model, one):
    image, label = one
    fig, info = widgets.attack_figure(small_model, image, label, attack="targeted_fgsm", eps=4 / 255,
                                      target=(label + 1) % 10, class_names=NAMES, amplify=10)
    assert len(fig.axes) >= 4
    assert all(ax.get_title().strip() for ax in fig.axes)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "x10" in titles and "4.0/255" in fig.get_suptitle()
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(bar_axes) == 2
    for ax in bar_axes:
        assert "%" in ax.get_xlabel()
        shown = [t.get_text() for t in ax.get_yticklabels()]
        assert NAMES[label] in shown and NAMES[(label + 1) % 10] in shown  # true class and target always shown
        assert len(shown) >= 5
        widths = [p.get_width() for p in ax.patches]
        assert max(widths) <= 100 + 1e-6 and widths == sorted(widths, reverse=True)
    assert info["amplify"] == 10


def test_default_amplification_makes_largest_change_half_grey(small_model, one):
    image, label = one
    fig, info = widgets.attack_figure(small_model, image, label, eps=2 / 255, class_names=NAMES)
    assert info["amplify"] == pytest.approx(0.5 / info["linf"])
    assert f"x{info['amplify']:.3g}" in fig.axes[1].get_title()


def test_model_mode_and_flags_restored(small_model, one):
    image, label = one
    small_model.train()
    small_model.net[1].eval()  # a mixed state must come back exactly
    before = _modes(small_model)
    flags = [p.requires_grad for p in small_model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in small_model.parameters()]
    try:
        for attack in ("fgsm", "targeted_fgsm", "pgd"):
            widgets.attack_figure(small_model, image, label, attack=attack, eps=EPS, target=(label + 1) % 10,
                                  class_names=NAMES, pgd_steps=2)
            assert _modes(small_model) == before
            assert [p.requires_grad for p in small_model.parameters()] == flags
            for p, g in zip(small_model.parameters(), grads):  # no gradient reaches the weights
                assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    finally:
        small_model.eval()


def test_batched_and_uint8_image_accepted_and_input_untouched(small_model, one):
    image, label = one
    copy = image.clone()
    _, a = widgets.attack_figure(small_model, image, label, eps=EPS, class_names=NAMES)
    _, b = widgets.attack_figure(small_model, image.unsqueeze(0), torch.tensor(label), eps=EPS, class_names=NAMES)
    assert torch.equal(image, copy) and torch.equal(a["x_adv"], b["x_adv"])
    u8 = (image * 255).round().to(torch.uint8)
    _, c = widgets.attack_figure(small_model, u8, label, eps=EPS, class_names=NAMES)
    assert c["linf"] <= EPS + 1e-6


@pytest.mark.parametrize("kwargs,match", [
    (dict(attack="cw"), "Unknown attack"),
    (dict(attack="targeted_fgsm"), "needs a target"),
    (dict(eps=8.0), "pixel scale"),
    (dict(amplify=0), "amplify"),
    (dict(class_names=NAMES[:5]), "class"),
])
def test_clear_errors(small_model, one, kwargs, match):
    image, label = one
    call = dict(attack="fgsm", eps=EPS, class_names=NAMES) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        widgets.attack_figure(small_model, image, label, **call)


def test_target_equal_to_label_and_batch_of_two_rejected(small_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="true label"):
        widgets.attack_figure(small_model, x[0], int(y[0]), attack="targeted_fgsm", eps=EPS, target=int(y[0]),
                              class_names=NAMES)
    with pytest.raises(ValueError, match="ONE image"):
        widgets.attack_figure(small_model, x[:2], int(y[0]), eps=EPS, class_names=NAMES)


# --------------------------------------------------------------------------- epsilon_explorer
@pytest.fixture
def explorer(small_model, one):
    image, label = one
    return widgets.epsilon_explorer(small_model, image, label, NAMES, eps=2 / 255, pgd_steps=2)


def _summary_text(box) -> str:
    return "".join(o.get("text", "") for o in box.output.outputs if o["output_type"] == "stream")


def test_explorer_structure(explorer):
    import ipywidgets

    assert isinstance(explorer, ipywidgets.Box)
    s = explorer.eps_slider
    assert isinstance(s, ipywidgets.FloatSlider) and s.continuous_update is False
    assert s.value == pytest.approx(2.0) and s.max == pytest.approx(32.0) and "255" in s.description
    assert format(8.0, s.readout_format) == "8.0"
    labels = [o[0] for o in explorer.attack_dropdown.options]
    assert labels == ["FGSM", "targeted FGSM", "PGD"]
    assert isinstance(explorer.output, ipywidgets.Output)
    # the initial draw: a PNG and a summary, no figure left open
    kinds = [o["output_type"] for o in explorer.output.outputs]
    assert kinds == ["display_data", "stream"] and "image/png" in explorer.output.outputs[0]["data"]
    assert explorer.n_draws == 1 and explorer.error is None
    assert plt.get_fignums() == []


def test_slider_redraws_with_new_eps(explorer):
    first, text = explorer.output.outputs, _summary_text(explorer)
    explorer.eps_slider.value = 8.0
    assert explorer.n_draws == 2
    assert explorer.info["eps"] == pytest.approx(EPS) and explorer.info["linf"] <= EPS + 1e-6
    assert explorer.output.outputs != first
    assert "8.0/255" in _summary_text(explorer) and _summary_text(explorer) != text
    assert plt.get_fignums() == []


def test_dropdowns_redraw_and_target_enabled_only_for_targeted_fgsm(explorer):
    assert explorer.target_dropdown.disabled
    explorer.attack_dropdown.value = "targeted_fgsm"
    assert not explorer.target_dropdown.disabled
    assert explorer.n_draws == 2 and explorer.info["attack"] == "targeted_fgsm"
    assert explorer.info["target"] == explorer.target_dropdown.value
    new_target = next(v for _, v in explorer.target_dropdown.options if v != explorer.target_dropdown.value)
    explorer.target_dropdown.value = new_target
    assert explorer.n_draws == 3 and explorer.info["target"] == new_target
    assert "target " + NAMES[new_target] in _summary_text(explorer)
    explorer.attack_dropdown.value = "pgd"
    assert explorer.target_dropdown.disabled and explorer.n_draws == 4 and explorer.info["target"] is None
    # a disabled target does not matter: changing it draws nothing new
    explorer.target_dropdown.value = next(v for _, v in explorer.target_dropdown.options if v != new_target)
    assert explorer.n_draws == 4
    assert plt.get_fignums() == []


def test_target_choices_exclude_the_true_label(small_model, one):
    image, label = one
    box = widgets.epsilon_explorer(small_model, image, label, NAMES, attack="targeted_fgsm")
    values = [v for _, v in box.target_dropdown.options]
    assert label not in values and len(values) == len(NAMES) - 1
    assert not box.target_dropdown.disabled and box.info["target_hit"] is not None


def test_explorer_calls_attack_figure_once_per_change(small_model, one, monkeypatch):
    calls = []
    real = widgets.attack_figure

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(widgets.epsilon, "attack_figure", spy)
    image, label = one
    box = widgets.epsilon_explorer(small_model, image, label, NAMES)
    box.eps_slider.value = 1.0
    box.attack_dropdown.value = "pgd"
    assert len(calls) == 3
    assert calls[-1]["attack"] == "pgd" and calls[-1]["eps"] == pytest.approx(1 / 255)


def test_explorer_shows_errors_in_the_output(small_model, one, monkeypatch):
    image, label = one
    box = widgets.epsilon_explorer(small_model, image, label, NAMES)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(widgets.epsilon, "attack_figure", broken)
    box.eps_slider.value = 3.0
    assert box.error == "RuntimeError: boom" and box.info is None
    assert box.output.outputs[0]["name"] == "stderr" and "boom" in box.output.outputs[0]["text"]


def test_explorer_restores_model_mode(small_model, one):
    image, label = one
    small_model.train()
    try:
        box = widgets.epsilon_explorer(small_model, image, label, NAMES)
        box.attack_dropdown.value = "targeted_fgsm"
        assert all(m.training for m in small_model.modules())
    finally:
        small_model.eval()


def test_missing_ipywidgets_gives_clear_error(small_model, one, no_ipywidgets):
    image, label = one
    with pytest.raises(ImportError, match="pip install"):
        widgets.epsilon_explorer(small_model, image, label, NAMES)
    fig, _ = widgets.attack_figure(small_model, image, label, eps=EPS, class_names=NAMES)  # still works
    assert len(fig.axes) == 5


def test_explorer_rejects_bad_eps(small_model, one):
    image, label = one
    with pytest.raises(ValueError, match="eps_max"):
        widgets.epsilon_explorer(small_model, image, label, NAMES, eps_max=8.0)
    with pytest.raises(ValueError, match="eps="):
        widgets.epsilon_explorer(small_model, image, label, NAMES, eps=0.5, eps_max=8 / 255)
