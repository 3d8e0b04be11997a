"""Training the hybrid CNN: volumes through fit, a phase-1 backbone moved into the hybrid, the cache's init hook,
channels-last layouts by rank, adversarial examples in batches and the selective summary."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from labutils import data, models, robustness, runtime, selective, training
from labutils.models import HybridCNN, MobileNetV2

FP32 = dict(precision="fp32", seed=0)


# ------------------------------------------------------------------------------------ channels-last by rank
def test_channels_last_by_rank():
    img, vol, flat = torch.rand(2, 3, 5, 6), torch.rand(2, 1, 4, 5, 6), torch.rand(2, 7)
    assert runtime.channels_last(img).is_contiguous(memory_format=torch.channels_last)
    assert runtime.channels_last(vol).is_contiguous(memory_format=torch.channels_last_3d)
    assert runtime.channels_last(flat) is flat
    assert torch.equal(runtime.channels_last(vol), vol)  # a layout, not a change of values
    net2d = runtime.model_to_channels_last(nn.Conv2d(3, 4, 3))
    net3d = runtime.model_to_channels_last(nn.Conv3d(2, 4, 3))  # C = 1 would look contiguous either way
    assert net2d.weight.is_contiguous(memory_format=torch.channels_last) and not net2d.weight.is_contiguous()
    assert net3d.weight.is_contiguous(memory_format=torch.channels_last_3d) and not net3d.weight.is_contiguous()
    mixed = runtime.model_to_channels_last(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(1, 4, 3)))
    assert all(p.is_contiguous() for p in mixed.parameters())  # one format cannot serve both: left as it is


# ------------------------------------------------------------------------------------------- volumes in fit
def test_batches_of_volumes_and_their_errors():
    x, y, _ = data.make_shapes_3d(10, size=8, dtype=torch.uint8)
    batches = list(data.Batches(x, y, batch_size=4, channels_last=True))
    assert [b[0].shape for b in batches] == [(4, 1, 8, 8, 8), (4, 1, 8, 8, 8), (2, 1, 8, 8, 8)]
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(torch.cat([b[0] for b in batches]), x.float() / 255)
    with pytest.raises(ValueError, match="augment=False"):
        data.Batches(x, y, augment=True)
    with pytest.raises(TypeError, match=r"\(N, C, D, H, W\)"):
        data.Batches(x[:, 0, 0], y)


def test_a_3d_hybrid_trains_on_volumes_with_fit():
    x, y, names = data.make_shapes_3d(256, size=12, seed=1, dtype=torch.uint8)
    torch.manual_seed(0)
    model = HybridCNN(num_classes=len(names), mode="3d", volume_widths=(8, 16))
    before = [p.detach().clone() for p in model.parameters()]
    cfg = training.TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=3e-3, weight_decay=0.0, augment=False,
                               **FP32)
    result = training.fit(model, (x, y), cfg, progress=False)
    assert len(result.history) == 3 and not model.training
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    logits = training.predict_logits(model, x[:20])
    assert logits.shape == (20, len(names)) and logits.dtype == torch.float32
    assert torch.equal(logits, training.predict_logits(model, x[:20].float() / 255))  # uint8 and float agree
    with pytest.raises(ValueError, match="tta=False"):
        training.predict_logits(model, x[:4], tta="flip")
    with pytest.raises(ValueError, match="augment"):
        training.fit(model, (x, y), training.TrainConfig(epochs=1, augment=True, **FP32), progress=False)


def test_volumes_only_where_asked():
    vol = torch.rand(2, 1, 4, 4, 4)
    data.check_images(vol, volumes=True)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got"):
        data.check_images(vol)  # attacks and image code still refuse volumes
    with pytest.raises(ValueError, match="volumes"):
        data.as_float_images(torch.zeros(2, 4, 4, 4, 4, 4, dtype=torch.uint8), volumes=True)


# ------------------------------------------------------------------------------------ phase-1 backbone reuse
def test_load_backbone_copies_mobilenet_features_and_keeps_them_frozen():
    torch.manual_seed(0)
    mobile = MobileNetV2(width_mult=0.35)
    hybrid = HybridCNN(width_mult=0.35, freeze_backbone=True)
    assert hybrid.load_backbone(mobile) is hybrid
    for (k, a), b in zip(mobile.features.state_dict().items(), hybrid.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in hybrid.backbone.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # the same features, so the backbone computes what phase 1's network computes
        assert torch.allclose(hybrid.backbone(hybrid.normalize(x)), mobile.eval().features(mobile.normalize(x)))
    assert models.count_parameters(HybridCNN(width_mult=0.35)) < models.count_parameters(HybridCNN())


def test_load_backbone_refuses_what_does_not_fit():
    hybrid = HybridCNN(width_mult=0.35)
    with pytest.raises(ValueError, match="width_mult"):
        hybrid.load_backbone(MobileNetV2(width_mult=0.5))
    with pytest.raises(ValueError, match="MobileNetV2"):
        hybrid.load_backbone(models.SimpleCNN())
    with pytest.raises(ValueError, match="3D path"):
        HybridCNN(mode="3d").load_backbone(MobileNetV2())
    with pytest.raises(ValueError, match="width_mult"):
        HybridCNN(mode="3d", width_mult=0.5)
    other_stats = MobileNetV2(width_mult=0.35)
    other_stats.normalize.mean.fill_(0.5)
    with pytest.raises(ValueError, match="statistics"):
        hybrid.load_backbone(other_stats)


def test_get_or_train_init_needs_a_tag_runs_once_and_is_cached(tiny_train_set):
    cfg = training.TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, **FP32)
    mobile, _ = training.get_or_train("mobilenet_v2", cfg, model_kwargs={"width_mult": 0.35}, progress=False)
    kwargs = {"width_mult": 0.35, "freeze_backbone": True}
    calls = []

    def init(model):
        calls.append(type(model).__name__)
        model.load_backbone(mobile)

    with pytest.raises(ValueError, match="tag"):
        training.get_or_train("hybrid_cnn", cfg, model_kwargs=kwargs, init=init, progress=False)
    hybrid, info = training.get_or_train("hybrid_cnn", cfg, model_kwargs=kwargs, tag="backbone=a", init=init,
                                         progress=False)
    again, info2 = training.get_or_train("hybrid_cnn", cfg, model_kwargs=kwargs, tag="backbone=a", init=init,
                                         progress=False)
    assert calls == ["HybridCNN"] and not info["cached"] and info2["cached"]
    for (k, a), b in zip(mobile.features.state_dict().items(), again.backbone.state_dict().values()):
        assert torch.equal(a, b), k  # the frozen backbone came through training and the cache unchanged
    _, other = training.get_or_train("hybrid_cnn", cfg, model_kwargs=kwargs, tag="backbone=b", init=init,
                                     progress=False)
    assert other["path"] != info["path"] and len(calls) == 2  # another backbone, another cache entry


# ------------------------------------------------------------------------------------- adversarial examples
def test_adversarial_examples_in_batches(small_model, batch):
    x, y = batch
    x0 = x.clone()
    small_model.train()
    adv = robustness.adversarial_examples(small_model, x, y, "fgsm", eps=4 / 255, batch_size=7, progress=False)
    assert small_model.training  # the model's mode comes back
    small_model.eval()
    assert torch.equal(x, x0) and adv.shape == x.shape and adv.dtype == x.dtype and adv.device.type == "cpu"
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    from labutils import attacks
    assert torch.allclose(adv, torch.cat([attacks.fgsm(small_model, xb, yb, 4 / 255)
                                          for xb, yb in zip(x.split(7), y.split(7))]))
    g = torch.Generator().manual_seed(0)
    pgd = robustness.adversarial_examples(small_model, x, y, "pgd", eps=4 / 255, steps=3, generator=g, progress=False)
    assert (pgd - x).abs().max() <= 4 / 255 + 1e-6
    assert (training.predict_logits(small_model, pgd).argmax(1) == y).float().mean() <= \
        (training.predict_logits(small_model, x).argmax(1) == y).float().mean()
    with pytest.raises(ValueError, match="eps"):
        robustness.adversarial_examples(small_model, x, y, "fgsm")
    with pytest.raises(ValueError, match="Unknown attack"):
        robustness.adversarial_examples(small_model, x, y, "cw", eps=0.1)


# ---------------------------------------------------------------------------------------- selective summary
def test_selective_summary_agrees_with_the_single_functions():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, generator=g).round(decimals=1)  # many ties
    correct = torch.rand(500, generator=g) < 0.3 + 0.6 * scores  # confidence is informative, imperfectly
    out = selective.selective_summary(scores, correct, (0.5, 0.9))
    assert out["accuracy"] == pytest.approx(correct.float().mean().item())
    assert out["aurc"] == selective.aurc(scores, correct) and out["e_aurc"] == selective.excess_aurc(scores, correct)
    for c in (0.5, 0.9):
        at = out["at_coverage"][c]
        assert at["threshold"] == selective.threshold_for_coverage(scores, c) and at["coverage"] >= c
        assert at["accuracy"] == selective.selective_accuracy_at_coverage(scores, correct, c)
    assert out["at_coverage"][0.5]["accuracy"] > out["accuracy"]
    with pytest.raises(ValueError, match="coverage"):
        selective.selective_summary(scores, correct, (0.0,))
