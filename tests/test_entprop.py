"""labutils.training's MixUp, AdvProp and EntProp modes: entropy selection, counted passes (1 + k n per image for
EntProp), the dual BatchNorms' statistics, the model handed back, resuming, bad settings."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from labutils import data, models, settings, training
from labutils.models import DualBatchNorm, convert_to_dual_bn
from labutils.training import entprop

SEED = settings.seed()
# 256 training images in batches of 64 (4 batches per epoch), nothing held out
TINY = training.TrainConfig(epochs=1, batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                            schedule="triangular", warmup=0.25, precision="fp32", augment=False, seed=13 + SEED)


class _Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def tiny_set(cifar_small):
    (x, y), _ = cifar_small
    return x[:256], y[:256]


def _net():
    torch.manual_seed(SEED)
    return models.FastNet(widths=(8, 16, 16))


def _fit(mode, tiny_set, **kw):
    model = _net()
    return model, training.fit(model, tiny_set, dataclasses.replace(TINY, mode=mode, **kw), device="cpu",
                               progress=False)


def _step(cls, cfg, model):
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    return cls(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), cfg, None, torch.device("cpu"))


# --- the pieces -----------------------------------------------------------------------------------------------------

def test_selection_takes_the_highest_entropy_rows():
    logits = torch.tensor([[9.0, 0, 0], [1.0, 1, 1], [3.0, 0, 0], [0.5, 0.4, 0.0], [0.0, 8, 0]])
    entropy = entprop.predictive_entropy(logits)
    assert torch.allclose(entropy[1], torch.log(torch.tensor(3.0)))  # uniform: log K nats
    assert set(entprop.select_highest_entropy(logits, 0.4).tolist()) == {1, 3}
    assert entprop.select_highest_entropy(logits, 0.01).tolist() == [1]  # at least one image
    assert len(entprop.select_highest_entropy(logits, 1.0)) == 5
    with pytest.raises(ValueError, match="k must be in \\(0, 1\\]"):
        entprop.select_highest_entropy(logits, 0.0)


def test_mixup_mixes_pairs_with_one_weight():
    torch.manual_seed(SEED)
    x, y = torch.rand(8, 3, 4, 4), torch.arange(8)
    x_before = x.clone()
    xm, y_a, y_b, lam = entprop.mixup_batch(x, y, 1.0)
    assert torch.equal(x, x_before) and torch.equal(y_a, y) and sorted(y_b.tolist()) == list(range(8))
    assert torch.allclose(xm, lam * x + (1 - lam) * x[y_b])
    logits = torch.randn(8, 8)
    expected = lam * torch.nn.functional.cross_entropy(logits, y_a) + (1 - lam) * torch.nn.functional.cross_entropy(
        logits, y_b)
    assert torch.allclose(entprop.mixed_cross_entropy(logits, y_a, y_b, lam), expected)
    smoothed = lam * torch.nn.functional.cross_entropy(logits, y_a, label_smoothing=0.2) + (1 - lam) * \
        torch.nn.functional.cross_entropy(logits, y_b, label_smoothing=0.2)
    assert torch.allclose(entprop.mixed_cross_entropy(logits, y_a, y_b, lam, label_smoothing=0.2), smoothed)


def test_entprop_step_selects_by_entropy_stays_in_the_ball_and_counts_its_passes(tiny_set):
    cfg = dataclasses.replace(TINY, mode="entprop", entprop_k=0.25, attack_steps=3, eps=4 / 255)
    model = convert_to_dual_bn(_net().train())
    step = _step(entprop.EntPropStep, cfg, model)
    seen = []
    for layer in model.modules():
        if isinstance(layer, DualBatchNorm):
            layer.register_forward_pre_hook(lambda m, inp: seen.append(("aux" if m.use_aux else "main", inp[0].shape[0])))
            break
    aux_inputs = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad)
    first_conv.register_forward_pre_hook(lambda m, inp: aux_inputs.append(inp[0].detach().clone()))
    x = data.to_float(tiny_set[0][:64])
    x_before = x.clone()
    step(x, tiny_set[1][:64])
    assert torch.equal(x, x_before)
    assert seen == [("main", 64)] + [("aux", 16)] * 3  # 1 + k n passes per image: 64 + 3 x 16
    assert step.passes.as_dict() == {"forward": 64 + 3 * 16, "backward": 64 + 3 * 16}
    sel = step.last_selection
    others = torch.ones(64, dtype=torch.bool)
    others[sel["selected"]] = False
    assert sel["entropy"][sel["selected"]].min() >= sel["entropy"][others].max()


def test_auxiliary_passes_leave_the_main_statistics_alone(tiny_set):
    cfg = dataclasses.replace(TINY, mode="entprop", entprop_k=0.5, attack_steps=2)
    model = convert_to_dual_bn(_net().train())
    step = _step(entprop.EntPropStep, cfg, model)
    duals = [m for m in model.modules() if isinstance(m, DualBatchNorm)]
    step(data.to_float(tiny_set[0][:32]), tiny_set[1][:32])
    assert all(int(d.main.num_batches_tracked) == 1 and int(d.aux.num_batches_tracked) == 2 for d in duals)
    adv = _step(entprop.AdvPropStep, dataclasses.replace(TINY, mode="advprop", attack_steps=2), model)
    adv(data.to_float(tiny_set[0][:32]), tiny_set[1][:32])
    # AdvProp: one clean main pass; two attack passes and one training pass through the auxiliary set
    assert all(int(d.main.num_batches_tracked) == 2 and int(d.aux.num_batches_tracked) == 5 for d in duals)


# --- through fit ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, extra, per_image", [
    ("mixup", {}, 1.0),
    ("advprop", {"attack_steps": 2}, 2 + 2),
    ("entprop", {"entprop_k": 0.25, "attack_steps": 2}, 1 + 0.25 * 2),
    ("entprop", {"entprop_k": 0.5, "attack_steps": 3}, 1 + 0.5 * 3),
])
def test_counted_passes_per_image(tiny_set, mode, extra, per_image):
    model, result = _fit(mode, tiny_set, **extra)
    assert result.passes["forward"] == result.passes["backward"] == round(per_image * 256)
    if mode == "entprop":  # the epoch's entropy record: every selected and unselected image counted once
        h = result.history[0]
        selected = round(extra["entprop_k"] * 64) * 4
        assert sum(h["entropy_hist_selected"]) == selected and sum(h["entropy_hist_unselected"]) == 256 - selected
        assert h["entropy_selected"] >= h["entropy_unselected"]
    assert not any(isinstance(m, DualBatchNorm) for m in model.modules())  # the main set is the model
    fresh = models.FastNet(widths=(8, 16, 16))
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert not model.training


def test_interrupted_entprop_run_resumes_with_both_batchnorm_sets(tmp_path, tiny_set):
    cfg = dataclasses.replace(TINY, mode="entprop", epochs=2, entprop_k=0.5, attack_steps=1)
    path = tmp_path / "run.partial.pt"
    calls = {"n": 0}

    def dies_in_second_epoch(model, x, y):
        calls["n"] += 1
        if calls["n"] == 6:
            raise _Interrupt
        return x, y

    interrupted = _net()
    with pytest.raises(_Interrupt):
        training.fit(interrupted, tiny_set, cfg, device="cpu", progress=False, checkpoint=path,
                     batch_hook=dies_in_second_epoch)
    state = torch.load(path, weights_only=True)
    assert any(".aux." in k for k in state["model"])  # the auxiliary statistics were saved with the run
    resumed = _net()
    result = training.fit(resumed, tiny_set, cfg, device="cpu", progress=False, checkpoint=path)
    straight = _net()
    expected = training.fit(straight, tiny_set, cfg, device="cpu", progress=False)
    assert result.resumed_from_epoch == 1 and result.passes == expected.passes
    assert all(torch.equal(p, q) for p, q in zip(resumed.state_dict().values(), straight.state_dict().values()))


# --- bad settings ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("entprop_k", 0.0, "entprop_k must be in \\(0, 1\\]"),
    ("entprop_k", 1.5, "entprop_k must be in \\(0, 1\\]"),
    ("attack_steps", 0, "attack_steps must be >= 1"),
    ("mixup_alpha", -1.0, "mixup_alpha must be a positive number"),
])
def test_bad_entprop_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        training.TrainConfig(mode="entprop", **{field: value})


def test_settings_belong_to_their_modes():
    with pytest.raises(ValueError, match="mode 'standard' does not read entprop_k"):
        training.TrainConfig(entprop_k=0.5)
    with pytest.raises(ValueError, match="mode 'advprop' does not read mixup_alpha"):
        training.TrainConfig(mode="advprop", mixup_alpha=0.5)
    assert "entprop_k" not in training.TrainConfig().to_dict()  # earlier runs keep their cache keys
    cfg = training.TrainConfig(mode="entprop", entprop_k=0.6, attack_steps=5, eps=6 / 255)
    assert cfg.step_size() == 1 / 255 and cfg.to_dict()["entprop_k"] == 0.6


def test_a_model_without_batchnorm_is_refused_with_a_clear_error(tiny_set):
    x, y = data.load("fashion_mnist", "train")
    with pytest.raises(ValueError, match="has no BatchNorm layer"):
        training.fit(models.GrayscaleCNN(), (x[:128], y[:128]), dataclasses.replace(TINY, mode="entprop"),
                     device="cpu", progress=False)
