"""labutils.viz.widgets.compare without a browser: the side-by-side figure's numbers and the explorer's wiring.

Runs on the session's small SimpleCNN (``small_model``), a second copy with other weights, and one test image.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import copy  # noqa: E402

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
    x, y = batch
    return x[0], int(y[0])


@pytest.fixture(scope="module")
def pair(small_model):
    """Two different models: the trained one and a copy with its last layer's weights scaled down."""
    other = copy.deepcopy(small_model)
    with torch.no_grad():
        last = [m for m in other.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(0.1)
    return {"trained": small_model, "damped": other.eval()}


def test_each_model_gets_its_own_attack(pair, one):
    image, label = one
    fig, info = widgets.robustness_comparison_figure(pair, image, label, eps=EPS, attack="fgsm", class_names=NAMES)
    assert list(info) == ["trained", "damped"]
    for name, model in pair.items():
        ref = attacks.fgsm(model, image.unsqueeze(0), torch.tensor([label]), EPS)
        assert torch.equal(info[name]["x_adv"], ref)
        with torch.no_grad():
            p0, p1 = torch.softmax(model(image.unsqueeze(0)), 1)[0], torch.softmax(model(ref), 1)[0]
        r = info[name]
        assert r["pred_before"] == int(p0.argmax()) and r["pred_after"] == int(p1.argmax())
        assert r["conf_after"] == pytest.approx(float(p1.max()), abs=1e-6)
        assert r["p_label_before"] == pytest.approx(float(p0[label]), abs=1e-6)
        assert r["fooled"] == (r["pred_after"] != label) and r["name_after"] == NAMES[r["pred_after"]]
        assert r["linf"] <= EPS + 1e-6
    # one row per model: image, probabilities before, after; titled, percent bars with the true class
    assert len(fig.axes) == 6 and all(ax.get_title().strip() for ax in fig.axes)
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(bar_axes) == 4
    for ax in bar_axes:
        assert "%" in ax.get_xlabel() and NAMES[label] in [t.get_text() for t in ax.get_yticklabels()]
    assert "8.0/255" in fig.get_suptitle()


def test_pgd_matches_attacks_pgd_and_is_repeatable(pair, one):
    image, label = one
    _, a = widgets.robustness_comparison_figure(pair, image, label, eps=EPS, class_names=NAMES, pgd_steps=3)
    _, b = widgets.robustness_comparison_figure(pair, image, label, eps=EPS, class_names=NAMES, pgd_steps=3)
    ref = attacks.pgd(pair["trained"], image.unsqueeze(0), torch.tensor([label]), EPS, 2.5 * EPS / 3, 3,
                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(a["trained"]["x_adv"], ref) and torch.equal(a["damped"]["x_adv"], b["damped"]["x_adv"])


def test_zero_budget_changes_nothing_and_input_untouched(pair, one):
    image, label = one
    copy_ = image.clone()
    _, info = widgets.robustness_comparison_figure(pair, image, label, eps=0.0, class_names=NAMES, pgd_steps=2)
    assert torch.equal(image, copy_)
    for r in info.values():
        assert r["linf"] == 0 and r["pred_after"] == r["pred_before"]


def test_model_modes_restored(pair, one):
    image, label = one
    model = pair["trained"]
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    try:
        widgets.robustness_comparison_figure(pair, image, label, eps=EPS, class_names=NAMES, pgd_steps=2)
        assert all(m.training for m in model.modules())
        assert [p.requires_grad for p in model.parameters()] == flags
        for p, g in zip(model.parameters(), grads):  # no gradient reaches the weights
            assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    finally:
        model.eval()


@pytest.mark.parametrize("kwargs,match", [
    (dict(attack="cw"), "Unknown attack"), (dict(eps=8.0), "pixel scale"), (dict(models={}), "non-empty"),
    (dict(class_names=NAMES[:5]), "class"), (dict(top_k=0), "top_k"),
])
def test_clear_errors(pair, one, kwargs, match):
    image, label = one
    call = dict(models=pair, eps=EPS, class_names=NAMES) | kwargs
    models = call.pop("models")
    with pytest.raises((ValueError, TypeError), match=match):
        widgets.robustness_comparison_figure(models, image, label, **call)


def test_explorer_structure_and_redraw(pair, one):
    import ipywidgets

    image, label = one
    box = widgets.comparison_explorer(pair, image, label, NAMES, eps=2 / 255, pgd_steps=2)
    assert isinstance(box, ipywidgets.Box) and isinstance(box.eps_slider, ipywidgets.FloatSlider)
    assert box.eps_slider.continuous_update is False and box.eps_slider.value == pytest.approx(2.0)
    assert [o[0] for o in box.attack_dropdown.options] == ["FGSM", "PGD"]
    kinds = [o["output_type"] for o in box.output.outputs]
    assert kinds == ["display_data", "stream"] and box.n_draws == 1 and box.error is None
    box.eps_slider.value = 8.0
    assert box.n_draws == 2 and all(r["linf"] <= EPS + 1e-6 for r in box.info.values())
    assert "8.0/255" in box.output.outputs[1]["text"] and "trained:" in box.output.outputs[1]["text"]
    box.attack_dropdown.value = "fgsm"
    assert box.n_draws == 3 and box.output.outputs[1]["text"].startswith("FGSM")
    assert plt.get_fignums() == []


def test_explorer_shows_errors_and_needs_ipywidgets(pair, one, monkeypatch, request):
    image, label = one
    box = widgets.comparison_explorer(pair, image, label, NAMES, pgd_steps=2)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(widgets.compare, "robustness_comparison_figure", broken)
    box.eps_slider.value = 3.0
    assert box.error == "RuntimeError: boom" and box.info is None
    monkeypatch.undo()
    request.getfixturevalue("no_ipywidgets")
    with pytest.raises(ImportError, match="pip install"):
        widgets.comparison_explorer(pair, image, label, NAMES)
    with pytest.raises(ValueError, match="eps="):
        monkeypatch.undo()
        widgets.comparison_explorer(pair, image, label, NAMES, eps=0.5, eps_max=8 / 255)
