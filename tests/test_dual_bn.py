"""Dual BatchNorm (models/dual_bn.py): conversion is exact, each route touches only its own BatchNorm
(statistics and gradients), eval uses the main BN only, and the single-BN export loads into the original."""
from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labutils.models import (DualBatchNorm, FastNet, GrayscaleCNN, auxiliary_bn, convert_to_dual_bn, dual_bn_layers,
                             main_bn_state_dict, to_single_bn)


def _scramble_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial affine parameters, running statistics and counters (so a copy that misses one shows)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, m in enumerate(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            m.weight.copy_(1 + 0.5 * torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            m.num_batches_tracked.fill_(7 + i)
    return model


def small_cnn() -> nn.Module:
    """conv-BN2d-ReLU-pool-linear-BN1d-linear: (N, 3, 8, 8) -> (N, 3)."""
    torch.manual_seed(0)
    return _scramble_bn(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6),
                                      nn.ReLU(), nn.Linear(6, 3)))


def small_3d() -> nn.Module:
    """conv3d-BN3d-ReLU-pool-linear: (N, 3, 4, 8, 8) -> (N, 3)."""
    torch.manual_seed(0)
    return _scramble_bn(nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4, momentum=None), nn.ReLU(),
                                      nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3)))


def fastnet() -> nn.Module:
    torch.manual_seed(0)
    return _scramble_bn(FastNet(widths=(8, 16, 16)))


MODELS = {"small_cnn": (small_cnn, (3, 8, 8)), "small_3d": (small_3d, (3, 4, 8, 8)), "fastnet": (fastnet, (3, 32, 32))}


def _batch(shape, n=6, seed=1):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def _labels(n=6, seed=2):
    return torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))


def _buffers(bn: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in bn.named_buffers()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _n_bn(model):
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", MODELS)
def test_converted_model_computes_what_the_original_did(name):
    make, shape = MODELS[name]
    original, x = make(), _batch(shape)
    n_bn = _n_bn(original)
    dual = convert_to_dual_bn(copy.deepcopy(original))
    assert len(dual_bn_layers(dual)) == n_bn and n_bn > 0
    for layer in dual_bn_layers(dual):
        assert type(layer.main) is type(layer.aux) and _same(_buffers(layer.main), _buffers(layer.aux))
        assert (layer.aux.num_features, layer.aux.eps, layer.aux.momentum, layer.aux.affine) == \
               (layer.main.num_features, layer.main.eps, layer.main.momentum, layer.main.affine)
    original.eval(), dual.eval()
    with torch.no_grad():
        assert torch.equal(dual(x), original(x))
    original.train(), dual.train()
    with torch.no_grad():
        expected = original(x)
        aux_copy = copy.deepcopy(dual)
        assert torch.equal(dual(x), expected)  # main route, batch statistics
        with auxiliary_bn(aux_copy):
            assert torch.equal(aux_copy(x), expected)  # the aux half starts as the same BatchNorm
    # the main route's running statistics moved exactly as the original's did
    bns = [m for m in original.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn, layer in zip(bns, dual_bn_layers(dual)):
        assert _same(_buffers(bn), _buffers(layer.main))


@pytest.mark.parametrize("route", ["main", "aux"])
def test_a_training_pass_moves_only_its_own_statistics(route):
    dual = convert_to_dual_bn(small_cnn()).train()
    layers = dual_bn_layers(dual)
    before = [(_buffers(m.main), _buffers(m.aux)) for m in layers]
    with torch.no_grad(), auxiliary_bn(dual, enabled=route == "aux"):
        dual(_batch((3, 8, 8)))
    for m, (main, aux) in zip(layers, before):
        moved, kept = (m.aux, m.main) if route == "aux" else (m.main, m.aux)
        moved_before, kept_before = (aux, main) if route == "aux" else (main, aux)
        assert _same(_buffers(kept), kept_before)
        assert int(moved.num_batches_tracked) == int(moved_before["num_batches_tracked"]) + 1
        assert not torch.equal(moved.running_mean, moved_before["running_mean"])


@pytest.mark.parametrize("name", ["small_cnn", "fastnet"])
@pytest.mark.parametrize("route", ["main", "aux"])
def test_gradients_reach_only_the_active_bn_and_the_shared_weights(name, route):
    make, shape = MODELS[name]
    dual = convert_to_dual_bn(make()).train()
    with auxiliary_bn(dual, enabled=route == "aux"):
        F.cross_entropy(dual(_batch(shape))[:, :3], _labels()).backward()
    for m in dual_bn_layers(dual):
        used, unused = (m.aux, m.main) if route == "aux" else (m.main, m.aux)
        assert used.weight.grad is not None and used.weight.grad.abs().sum() > 0 and used.bias.grad is not None
        assert unused.weight.grad is None and unused.bias.grad is None
    shared = [m for m in dual.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad]
    assert shared and all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in shared)


def test_eval_uses_the_main_bn_only():
    dual, x = convert_to_dual_bn(small_cnn()).eval(), _batch((3, 8, 8))
    with torch.no_grad():
        expected = dual(x)
        for m in dual_bn_layers(dual):  # wreck the aux halves
            m.aux.running_mean.add_(5.0), m.aux.running_var.mul_(9.0), m.aux.weight.mul_(-3.0)
        assert torch.equal(dual(x), expected)
        with auxiliary_bn(dual):  # the aux route is not honoured in eval mode
            assert torch.equal(dual(x), expected)
            assert all(m.active is m.main for m in dual_bn_layers(dual))
            dual.train()
            assert all(m.active is m.aux for m in dual_bn_layers(dual))
            dual[1].eval()  # a layer deliberately left in eval mode (a frozen backbone) keeps MBN
            assert dual[1].active is dual[1].main and dual[6].active is dual[6].aux


@pytest.mark.parametrize("name", MODELS)
def test_single_bn_export_loads_strictly_into_the_original_architecture(name):
    make, shape = MODELS[name]
    dual, x = convert_to_dual_bn(make()).train(), _batch(shape)
    with torch.no_grad():  # let main and aux drift apart
        dual(x)
        with auxiliary_bn(dual):
            dual(_batch(shape, seed=5) * 2)
        for m in dual_bn_layers(dual):
            m.aux.weight.mul_(2.0)
    dual.eval()
    single = to_single_bn(dual)
    assert not dual_bn_layers(single) and len(dual_bn_layers(dual)) == _n_bn(single)
    for state in (single.state_dict(), main_bn_state_dict(dual)):
        fresh = make()
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        fresh.load_state_dict(torch.load(buf, weights_only=True), strict=True)
        with torch.no_grad():
            assert torch.equal(fresh.eval()(x), dual(x))
    assert main_bn_state_dict(dual).keys() == make().state_dict().keys()
    # the aux network is the other export; the copies do not share tensors with the dual model
    aux = to_single_bn(dual, which="aux").eval()
    with torch.no_grad():
        assert not torch.allclose(aux(x), dual(x))
        next(single.parameters()).add_(1.0)
        assert torch.equal(fresh(x), dual(x))
    with pytest.raises(ValueError, match="'main' or 'aux'"):
        to_single_bn(dual, which="abn")


def test_the_route_comes_back_after_an_exception_and_blocks_nest():
    dual = convert_to_dual_bn(small_cnn())
    routes = lambda: {m.use_aux for m in dual_bn_layers(dual)}  # noqa: E731
    with pytest.raises(RuntimeError, match="boom"):
        with auxiliary_bn(dual) as same:
            assert same is dual and routes() == {True}
            raise RuntimeError("boom")
    assert routes() == {False}
    with auxiliary_bn(dual):
        with auxiliary_bn(dual, enabled=False):
            assert routes() == {False}
        assert routes() == {True}
    assert routes() == {False}


def test_conversion_keeps_the_layer_objects_and_is_idempotent():
    bn = nn.BatchNorm2d(2)
    hook_calls = []
    bn.register_forward_hook(lambda *_: hook_calls.append(1))
    model = nn.Sequential(nn.Conv2d(1, 2, 1), bn, nn.ReLU(), bn)  # one layer used twice
    assert convert_to_dual_bn(model) is model
    assert model[1] is model[3] and isinstance(model[1], DualBatchNorm) and model[1].main is bn
    assert not model[1].aux._forward_hooks  # hooks stay with the original layer (main) only
    convert_to_dual_bn(model)
    assert len(dual_bn_layers(model)) == 1 and isinstance(model[1].main, nn.BatchNorm2d)
    model.train()
    with auxiliary_bn(model):
        model(torch.rand(4, 1, 3, 3))
    assert not hook_calls
    assert isinstance(convert_to_dual_bn(nn.BatchNorm1d(3)), DualBatchNorm)


def test_a_model_without_batchnorm_is_refused_clearly():
    with pytest.raises(ValueError, match=r"GrayscaleCNN has no BatchNorm layer \(looked for nn.BatchNorm1d/2d/3d"):
        convert_to_dual_bn(GrayscaleCNN(widths=(2, 2), hidden=4))
    plain = small_cnn()
    for call in (lambda: auxiliary_bn(plain).__enter__(), lambda: to_single_bn(plain),
                 lambda: main_bn_state_dict(plain)):
        with pytest.raises(ValueError, match=r"Sequential has no DualBatchNorm layer: call convert_to_dual_bn"):
            call()
    with pytest.raises(TypeError, match="wraps a BatchNorm"):
        DualBatchNorm(nn.Conv2d(1, 1, 1))
