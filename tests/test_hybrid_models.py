"""Issue 12's model code: layers (shapes, parameter formulas), MobileNetV2 (CIFAR strides, resize, ImageNet
weights from a test-written file, the offline error), HybridCNN (2D/3D shapes, gradient flow, frozen backbone,
bad inputs) and the cost helpers (parameters, FLOPs, latency).  No test touches the network."""
from __future__ import annotations

import json
import urllib.error

import pytest
import torch
from torch import nn

from labutils import models, runtime
from labutils.models import cost, mobilenet
from labutils.models.hybrid import HybridCNN
from labutils.models.layers import DepthwiseSeparableConv, GroupedConvBlock, SqueezeExcitation


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------- layers

@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("cin,cout,k", [(8, 12, 3), (16, 16, 5), (4, 32, 1)])
def test_layer_parameter_formulas_match_the_modules(dims, cin, cout, k):
    assert _n(DepthwiseSeparableConv(cin, cout, kernel_size=k, dims=dims)) == \
        DepthwiseSeparableConv.parameter_count(cin, cout, k, dims)
    assert _n(GroupedConvBlock(cin, cout, groups=4, kernel_size=k, dims=dims)) == \
        GroupedConvBlock.parameter_count(cin, cout, 4, k, dims)
    for r in (1, 4, 16, 64):
        assert _n(SqueezeExcitation(cout, r, dims=dims)) == SqueezeExcitation.parameter_count(cout, r)


def test_layer_parameter_formulas_by_hand():
    """The docstrings' worked examples, computed by hand."""
    assert _n(DepthwiseSeparableConv(256, 128)) == 256 * 9 + 256 * 128 + 2 * (256 + 128) == 35_840
    assert _n(GroupedConvBlock(256, 128, groups=4)) == 9 * 64 * 128 + 2 * 128 == 73_984
    assert _n(SqueezeExcitation(128, 16)) == 128 * 8 + 8 + 8 * 128 + 128 == 2_184
    assert _n(DepthwiseSeparableConv(16, 32, dims=3)) == 16 * 27 + 16 * 32 + 2 * 48


@pytest.mark.parametrize("dims,size,out", [(2, (9, 9), (5, 5)), (3, (5, 6, 7), (3, 3, 4))])
def test_layer_shapes(dims, size, out):
    x = torch.rand(2, 8, *size)
    assert DepthwiseSeparableConv(8, 12, stride=2, dims=dims)(x).shape == (2, 12, *out)
    assert GroupedConvBlock(8, 12, groups=4, stride=2, dims=dims)(x).shape == (2, 12, *out)
    assert DepthwiseSeparableConv(8, 12, dims=dims)(x).shape == (2, 12, *size)
    assert SqueezeExcitation(8, 4, dims=dims)(x).shape == x.shape
    with pytest.raises(ValueError, match="expects input of shape"):
        DepthwiseSeparableConv(8, 12, dims=dims)(torch.rand(2, 8, 4))


def test_layers_are_what_they_say():
    dw = DepthwiseSeparableConv(8, 12)
    assert dw.depthwise[0].groups == 8 and dw.pointwise[0].kernel_size == (1, 1)
    assert GroupedConvBlock(8, 12).block[0].groups == 4
    with pytest.raises(ValueError, match="multiples of groups"):
        GroupedConvBlock(6, 12, groups=4)
    with pytest.raises(ValueError, match="dims"):
        SqueezeExcitation(8, dims=1)
    se = SqueezeExcitation(8, 4)
    with torch.no_grad():  # zero weights and biases: every gate is sigmoid(0) = 0.5
        for p in se.parameters():
            p.zero_()
    x = torch.rand(2, 8, 3, 3)
    torch.testing.assert_close(se(x), 0.5 * x)
    # on an all-ones input the output is the gate itself: one value in (0, 1) per image and channel
    se = SqueezeExcitation(8, 4)
    gate = se(torch.ones(2, 8, 3, 3))[:, :, 0, 0]
    assert ((gate > 0) & (gate < 1)).all()


# ----------------------------------------------------------------------------------------------- MobileNetV2

def test_mobilenet_strides_for_32_and_resize_for_96():
    torch.manual_seed(0)
    native = models.build("mobilenet_v2")
    resized = models.build("mobilenet_v2", input_size=96)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert native.features(native.resize(native.normalize(x))).shape == (2, 1280, 4, 4)  # total stride 8
        assert resized.features(resized.resize(resized.normalize(x))).shape == (2, 1280, 3, 3)  # 96 / 32
        assert native.eval()(x).shape == resized.eval()(x).shape == (2, 10)
    assert isinstance(resized.resize, nn.Upsample) and isinstance(native.resize, nn.Identity)
    assert native.features[0][0].stride == (1, 1) and native.features[2].conv[1][0].stride == (1, 1)
    assert resized.features[0][0].stride == (2, 2)
    torch.testing.assert_close(native.normalize.mean.flatten(), torch.tensor(models.CIFAR10_MEAN))
    with pytest.raises(ValueError, match="input_size"):
        models.build("mobilenet_v2", input_size=16)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME; any download attempt raises URLError (and is recorded)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    path = mobilenet.imagenet_weights_path()
    assert path.parent == tmp_path / "hub" / "checkpoints" and path.name == "mobilenet_v2-b0353104.pth"
    return path, calls


def test_pretrained_loads_a_weight_file_from_torch_cache(torch_home):
    path, calls = torch_home
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    torch.manual_seed(1)
    reference = tv_mobilenet_v2(weights=None)
    with torch.no_grad():  # distinctive BN statistics, so they are checked too
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    expected = {k: v for k, v in reference.state_dict().items() if k.startswith("features.")}

    torch.manual_seed(2)
    model = models.build("mobilenet_v2", pretrained=True)
    got = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    torch.testing.assert_close(model.normalize.mean.flatten(), torch.tensor(mobilenet.IMAGENET_MEAN))

    hybrid = HybridCNN(pretrained=True, freeze_backbone=True)
    backbone = hybrid.backbone.state_dict()
    for k in expected:
        assert torch.equal(backbone[k.removeprefix("features.")], expected[k]), k
    assert calls == []  # read from the cache, never downloaded


def test_pretrained_offline_error_names_the_cache_file(torch_home):
    path, calls = torch_home
    with pytest.raises(mobilenet.PretrainedWeightsMissing) as err:
        models.build("mobilenet_v2", pretrained=True)
    assert isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    assert str(path) in message and "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth" in message
    assert "TORCH_HOME" in message
    assert len(calls) == 1
    with pytest.raises(FileNotFoundError, match="Expected file"):
        HybridCNN(pretrained=True)


# ----------------------------------------------------------------------------------------------- HybridCNN

def _assert_every_trainable_parameter_gets_a_gradient(model, x):
    model.train()
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3][: len(x)])).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # every part learns (a single tensor may get an exact zero: an SE bottleneck of 1-2 ReLU units can be dead)
    for name, part in model.named_children():
        grads = [p.grad.abs().sum() for p in part.parameters() if p.requires_grad]
        assert not grads or sum(grads) > 0, name


@pytest.mark.parametrize("block,input_size", [("grouped", 32), ("depthwise", 32), ("grouped", 96)])
def test_hybrid_2d_shapes_and_gradient_flow(block, input_size):
    torch.manual_seed(0)
    model = models.build("hybrid_cnn", block=block, input_size=input_size)
    assert isinstance(model.blocks[4], GroupedConvBlock if block == "grouped" else DepthwiseSeparableConv)
    assert model.blocks[4].out_channels == 128
    _assert_every_trainable_parameter_gets_a_gradient(model, torch.rand(2, 3, 32, 32))
    assert model.eval()(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    # the head's parameters: adapter conv + BN, SE(256), the block, SE(128), linear
    block_params = (GroupedConvBlock.parameter_count(256, 128, 4) if block == "grouped"
                    else DepthwiseSeparableConv.parameter_count(256, 128))
    assert cost.count_parameters(model.blocks) == (1280 * 256 + 2 * 256 + SqueezeExcitation.parameter_count(256)
                                                   + block_params + SqueezeExcitation.parameter_count(128))


@pytest.mark.parametrize("block", ["grouped", "depthwise"])
def test_hybrid_3d_shapes_and_gradient_flow(block):
    torch.manual_seed(0)
    kwargs = json.loads(json.dumps({"mode": "3d", "block": block, "volume_widths": (8, 16, 32), "num_classes": 4}))
    model = models.build("hybrid_cnn", **kwargs)  # kwargs as the checkpoint cache stores them (JSON)
    assert not any(isinstance(m, nn.Conv2d) for m in model.modules())
    _assert_every_trainable_parameter_gets_a_gradient(model, torch.rand(2, 1, 8, 10, 12))
    assert model.eval()(torch.rand(3, 1, 8, 8, 8)).shape == (3, 4)


def test_hybrid_refuses_inputs_of_the_other_mode():
    image_model, volume_model = HybridCNN(), HybridCNN(mode="3d")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*mode='3d'"):
        image_model(torch.rand(2, 1, 8, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\).*mode='2d'"):
        volume_model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="2D MobileNetV2 backbone only"):
        HybridCNN(mode="3d", freeze_backbone=True)
    with pytest.raises(ValueError, match="block"):
        HybridCNN(block="dense")
    with pytest.raises(ValueError, match="mode"):
        HybridCNN(mode="4d")


def test_frozen_backbone_does_not_change_in_a_training_step():
    torch.manual_seed(0)
    model = models.build("hybrid_cnn", freeze_backbone=True)
    assert cost.count_parameters(model.backbone, trainable_only=True) == 0
    assert cost.count_parameters(model, trainable_only=True) == cost.count_parameters(model.blocks) + \
        cost.count_parameters(model.classifier)
    model.train()
    assert model.training and not any(m.training for m in model.backbone.modules())
    assert model.blocks.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9,
                                weight_decay=5e-4)
    loss = nn.functional.cross_entropy(model(torch.rand(3, 3, 32, 32)), torch.tensor([0, 1, 2]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    for k in before:
        if k.startswith("backbone."):  # weights AND BatchNorm running statistics
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["blocks.0.weight"], after["blocks.0.weight"])  # the head did learn
    assert not torch.equal(before["blocks.1.running_mean"], after["blocks.1.running_mean"])
    assert all(p.grad is None for p in model.backbone.parameters())
    # eval/train and frozen_eval round trips keep the backbone frozen and in eval mode
    with runtime.frozen_eval(model):
        pass
    model.eval().train()
    assert not any(m.training for m in model.backbone.modules()) and model.blocks.training
    assert not any(p.requires_grad for p in model.backbone.parameters())


# ----------------------------------------------------------------------------------------------- cost

def test_count_parameters_and_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    model[0].weight.requires_grad_(False)
    assert cost.count_parameters(model) == 3 * 4 * 9 + 4 + 256 * 5 + 5
    assert cost.count_parameters(model, trainable_only=True) == 4 + 256 * 5 + 5
    # FLOPs = 2 x multiply-adds: conv 2 * (3*9) * 4 * 64 output values, linear 2 * 256 * 5 (biases not counted)
    assert cost.flops_per_image(model, (3, 8, 8)) == 2 * 27 * 4 * 64 + 2 * 256 * 5
    assert model[0].weight.requires_grad is False and model[2].weight.requires_grad and model.training


def _mixed_mode_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    model[1].eval()  # a deliberately frozen BatchNorm
    model[6].bias.requires_grad_(False)
    return model


def _modes(model):
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def test_latency_numbers_are_positive_and_ordered_and_modes_come_back():
    model = _mixed_mode_model()
    modes = _modes(model)
    one = cost.measure_latency(model, (3, 8, 8), batch_size=1, warmup=1, repeats=3)
    four = cost.measure_latency(model, (3, 8, 8), batch_size=4, warmup=1, repeats=3)
    assert _modes(model) == modes
    for r in (one, four):
        assert 0 < r.min_seconds_per_batch <= r.seconds_per_batch
        assert 0 < r.seconds_per_image <= r.seconds_per_batch and r.images_per_second > 0
        assert r.images_per_second * r.seconds_per_batch == pytest.approx(r.batch_size)
        assert r.device == "cpu" and r.precision == "fp32" and r.threads >= 1 and r.repeats == 3
    assert one.seconds_per_image == one.seconds_per_batch and four.seconds_per_image < four.seconds_per_batch
    assert four.to_dict()["batch_size"] == 4 and json.dumps(four.to_dict())
    cost.flops_per_image(model, (3, 8, 8))
    assert _modes(model) == modes
    with pytest.raises(ValueError, match="batch_size"):
        cost.measure_latency(model, (3, 8, 8), batch_size=0)


def test_cost_of_a_3d_hybrid():
    model = HybridCNN(mode="3d", volume_widths=(8, 16))
    # stem 1->8 on 6^3 voxels, grouped 8->16 stride 2 on 3^3 outputs, SE and linear (matrix products)
    stem = 2 * 27 * 8 * 6 ** 3
    grouped = 2 * 27 * 2 * 16 * 3 ** 3
    se_and_head = 2 * (16 * 1 + 1 * 16) + 2 * 16 * 10
    assert cost.flops_per_image(model, (1, 6, 6, 6)) == stem + grouped + se_and_head
    r = cost.measure_latency(model, (1, 6, 6, 6), batch_size=2, warmup=0, repeats=2)
    assert r.seconds_per_batch > 0 and model.training
