"""Model state: a deliberately frozen BatchNorm stays frozen, and requires_grad flags come back, through
every operation of labutils that runs a model (prediction, attacks, curves, scores, a hooked training step)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from labutils import attacks, robustness, runtime, training, uncertainty
from labutils.viz import widgets


class FrozenBackboneNet(nn.Module):
    """A tiny classifier whose 'backbone' BatchNorm is frozen (eval mode, fixed weights) while the rest trains.

    As torchvision's detection models do, it keeps the backbone in eval mode in ``train()``, so
    ``model.train()`` alone cannot unfreeze it; a library that calls ``model.train(flag)`` on the
    way out of an evaluation can.
    """

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = FrozenBackboneNet()
    m.train()
    assert m.training and not m.backbone[1].training and m.head[0].training
    return m


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g)


OPERATIONS = {
    "evaluate": lambda m, x, y: training.evaluate(m, x, y),
    "predict_logits with TTA": lambda m, x, y: training.predict_logits(m, x, tta="flip+shift"),
    "fgsm": lambda m, x, y: attacks.fgsm(m, x, y, 4 / 255),
    "pgd with restarts": lambda m, x, y: attacks.pgd(m, x, y, 4 / 255, 1 / 255, 2, restarts=2),
    "torchattacks": lambda m, x, y: attacks.torchattacks_attack("FGSM", m, x, y, eps=4 / 255),
    "correct_vs_eps": lambda m, x, y: robustness.correct_vs_eps(m, x, y, [0, 2 / 255], attack="pgd", steps=2,
                                                                progress=False),
    "targeted matrix": lambda m, x, y: robustness.targeted_success_matrix(m, x, y, "fgsm", eps=4 / 255,
                                                                          num_classes=10, progress=False),
    "classifier scores": lambda m, x, y: uncertainty.classifier_scores(m, x),
    "smoothing votes": lambda m, x, y: robustness.smoothing_votes(m, x[0], 0.25, 64, num_classes=10),
    "widget figure": lambda m, x, y: widgets.attack_figure(m, x[0], int(y[0]), eps=4 / 255,
                                                               class_names=[str(k) for k in range(10)]),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_operations_keep_each_submodules_mode_and_flags(model, batch, name):
    import matplotlib.pyplot as plt

    before = _state(model)
    OPERATIONS[name](model, *batch)
    plt.close("all")
    assert _state(model) == before, name
    assert all(p.grad is None for p in model.parameters())


def test_mixed_modes_set_by_hand_survive_evaluation(model, batch):
    """Without a train() override too: a BatchNorm put in eval mode by hand stays there."""
    model.eval()
    model.head[0].train()  # an odd but legal state: only this BN in training mode
    before = _state(model)
    training.evaluate(model, *batch)
    attacks.pgd(model, *batch, 4 / 255, 1 / 255, 2)
    uncertainty.reconstruction_error(nn.Sequential(model.backbone, nn.Conv2d(8, 3, 1), nn.Sigmoid()), batch[0])
    assert _state(model) == before


def test_frozen_eval_restores_after_an_error(model):
    before = _state(model)
    with pytest.raises(RuntimeError, match="boom"):
        with runtime.frozen_eval(model):
            assert not any(m.training for m in model.modules())
            assert not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("boom")
    assert _state(model) == before


def test_a_hooked_training_step_keeps_the_backbone_frozen(model, cifar_small):
    (x, y), _ = cifar_small
    seen = []

    def fgsm_hook(m, xb, yb):
        x_adv = attacks.fgsm(m, xb, yb, 2 / 255)  # switches to eval mode and back
        seen.append(_state(m))
        return x_adv, yb

    bn_before = model.backbone[1].running_mean.clone()
    frozen_before = [p.clone() for p in model.backbone.parameters()]
    cfg = training.TrainConfig(epochs=1, batch_size=32, train_size=64, lr=0.01, precision="fp32", augment=False)
    states = []

    class Spy(nn.Module):  # records the modes in every training forward pass (the attack's passes freeze the head)
        def forward(self, z):
            if model.head[3].weight.requires_grad:
                states.append([m.training for m in model.modules()])
            return z

    model.backbone.insert(0, Spy())
    training.fit(model, (x, y), cfg, batch_hook=fgsm_hook, progress=False)
    train_modes = [True if m is not model.backbone and not _in(m, model.backbone) else False for m in model.modules()]
    assert len(states) == len(seen) == 2  # 64 images, batches of 32
    assert all(s == train_modes for s in states)  # in every training step the backbone stays frozen
    assert torch.equal(model.backbone[2].running_mean, bn_before)  # its statistics never updated
    assert all(torch.equal(p, q) for p, q in zip(model.backbone.parameters(), frozen_before))
    assert not model.training  # fit leaves the model in eval mode


def _in(module, parent):
    return any(module is m for m in parent.modules())
