"""Tests of labutils.attacks: threat-model properties, model-state hygiene, input checks,
and a differential comparison with torchattacks (FGSM, PGD, PGDL2) on the same model and images.

Everything runs on the CPU on the session's small SimpleCNN (``small_model``) with 16-64 images.
"""
from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

from labutils import attacks, data, robustness, training

EPS = 8 / 255
ALPHA = 2 / 255


# --------------------------------------------------------------------------- helpers
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def test64(cifar_small):
    """64 float test images in [0, 1] and their labels."""
    _, (x, y) = cifar_small
    return data.to_float(x[:64]), y[:64].clone()


def _accuracy(model, x, y) -> float:
    return training.evaluate(model, x, y)


def _linf(x, x_adv):
    return attacks.perturbation_norms(x, x_adv, "linf")


def _l2(x, x_adv):
    return attacks.perturbation_norms(x, x_adv, "l2")


def _frac_close(a, b, atol=1e-6) -> float:
    return float(((a - b).abs() <= atol).float().mean())


ALL_ATTACKS = {
    "fgsm": lambda m, x, y, **kw: attacks.fgsm(m, x, y, EPS, **kw),
    "pgd_linf": lambda m, x, y, **kw: attacks.pgd(m, x, y, EPS, ALPHA, 3, **kw),
    "pgd_l2": lambda m, x, y, **kw: attacks.pgd(m, x, y, 0.5, 0.2, 3, norm="l2", **kw),
}


# --------------------------------------------------------------------------- threat model
@pytest.mark.parametrize("norm,eps,alpha", [("linf", EPS, ALPHA), ("linf", 0.3, 0.1), ("l2", 0.5, 0.2),
                                            ("l2", 2.0, 0.8)])
def test_pgd_stays_in_ball_and_image_range(small_model, batch, norm, eps, alpha):
    x, y = batch
    g = torch.Generator().manual_seed(0)
    x_adv = attacks.pgd(small_model, x, y, eps, alpha, 3, norm=norm, random_start=True, generator=g)
    size = _linf(x, x_adv) if norm == "linf" else _l2(x, x_adv)
    assert float(size.max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert float(size.min()) > 0  # it moved


def test_fgsm_is_a_sign_step_of_size_eps(small_model, batch):
    x, y = batch
    x_adv = attacks.fgsm(small_model, x, y, EPS)
    assert float(_linf(x, x_adv).max()) <= EPS + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    # Where the step is not clipped by [0, 1] (and the gradient is non-zero), every pixel moves by exactly eps.
    d = (x_adv - x).abs()
    inside = (x > EPS + 1e-6) & (x < 1 - EPS - 1e-6) & (d > 0)
    assert inside.float().mean() > 0.5
    assert torch.allclose(d[inside], torch.full_like(d[inside], EPS), atol=1e-6)


def test_eps_zero_returns_the_input(small_model, batch):
    x, y = batch
    assert torch.equal(attacks.fgsm(small_model, x, y, 0.0), x)
    assert torch.equal(attacks.pgd(small_model, x, y, 0.0, ALPHA, 2, random_start=False), x)
    assert torch.equal(attacks.pgd(small_model, x, y, 0.0, 0.5, 2, norm="l2", random_start=False), x)
    same = attacks.pgd(small_model, x, y, EPS, ALPHA, 0, random_start=False)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()  # a copy, never x itself


@pytest.mark.parametrize("name", list(ALL_ATTACKS))
def test_input_not_modified_and_output_is_new(small_model, batch, name):
    x, y = batch
    x0, y0 = x.clone(), y.clone()
    x_adv = ALL_ATTACKS[name](small_model, x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert x_adv.data_ptr() != x.data_ptr()
    assert not x_adv.requires_grad


# --------------------------------------------------------------------------- model state hygiene
def _modes(model):
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("name", list(ALL_ATTACKS))
def test_train_mode_restored_and_attack_runs_in_eval(small_model, batch, name):
    x, y = batch
    model = copy.deepcopy(small_model).train()
    seen = []
    handle = model.net[-1].register_forward_pre_hook(lambda mod, inp: seen.append(_modes(model)))
    x_adv = ALL_ATTACKS[name](model, x, y, **({} if name == "fgsm" else {"random_start": False}))
    handle.remove()
    assert seen and all(not any(s) for s in seen), "the attack must run the model in eval mode"
    assert all(_modes(model)), "train mode must be restored on every submodule"
    # Dropout is off during the attack, so a train-mode model gives the eval-mode result.
    ref = ALL_ATTACKS[name](small_model, x, y, **({} if name == "fgsm" else {"random_start": False}))
    assert torch.equal(x_adv, ref)


def test_mixed_submodule_modes_restored_exactly(small_model, batch):
    x, y = batch
    model = copy.deepcopy(small_model).eval()
    model.net[5].train()  # a Dropout left in train mode (e.g. for MC dropout)
    model.net[2].train()
    before = _modes(model)
    assert any(before) and not all(before)
    attacks.pgd(model, x, y, EPS, ALPHA, 2)
    assert _modes(model) == before
    attacks.fgsm(model, x, y, EPS)
    assert _modes(model) == before
    # ... also when the attack fails half-way (here: the model raises during its forward pass).
    model.net[0].register_forward_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        attacks.pgd(model, x, y, EPS, ALPHA, 2)
    assert _modes(model) == before


@pytest.mark.parametrize("name", list(ALL_ATTACKS))
def test_parameters_untouched(small_model, batch, name):
    x, y = batch
    model = copy.deepcopy(small_model)
    params = list(model.parameters())
    params[0].requires_grad_(False)  # a frozen layer stays frozen, the others stay trainable
    flags = [p.requires_grad for p in params]
    values = [p.detach().clone() for p in params]
    ALL_ATTACKS[name](model, x, y)
    assert [p.requires_grad for p in params] == flags
    assert all(p.grad is None for p in params), "attacks must not leave gradients on parameters"
    assert all(torch.equal(p, v) for p, v in zip(params, values))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ALL_ATTACKS))
def test_output_dtype_device_and_layout_follow_input(small_model, batch, name, dtype):
    x, y = batch
    x = x.to(dtype)
    x_adv = ALL_ATTACKS[name](small_model, x, y)
    assert x_adv.dtype == dtype and x_adv.device == x.device and x_adv.shape == x.shape
    assert x_adv.is_contiguous()
    if name == "pgd_l2":
        assert float(_l2(x, x_adv).max()) <= 0.5 + 1e-6
    else:
        assert float(_linf(x, x_adv).max()) <= EPS + (1e-12 if dtype == torch.float64 else 1e-6)
    if dtype == torch.float64:  # the attack itself is the same as on float32 images
        ref = ALL_ATTACKS[name](small_model, x.float(), y, **({} if name == "fgsm" else {"random_start": False}))
        again = ALL_ATTACKS[name](small_model, x, y, **({} if name == "fgsm" else {"random_start": False}))
        assert _frac_close(again.float(), ref, atol=1e-5) >= 0.99


# --------------------------------------------------------------------------- batch and per-sample consistency
@pytest.mark.parametrize("norm,eps,alpha", [("linf", EPS, ALPHA), ("l2", 0.5, 0.2)])
def test_batch_equals_per_sample(small_model, batch, norm, eps, alpha):
    """Attacking a batch equals attacking each image alone (no random start, model in eval mode).

    Per-image gradients of the mean loss differ from the single-image ones only by the factor 1/N
    (sign and L2-normalised steps do not see it); the convolution may round differently for
    different batch sizes, which can flip the sign of a near-zero gradient component on a rare
    pixel, hence the robust criterion.  L2 steps are not signs, so a rounding difference carries into
    the step itself and grows over the steps: in the seed sweep (``make seeds``) one image of 8
    differed by up to 1.9e-4 (seed 3, AVX-512), hence a tolerance of 1e-3 there.
    """
    x, y = batch
    x, y = x[:8], y[:8]
    whole = attacks.pgd(small_model, x, y, eps, alpha, 3, norm=norm, random_start=False)
    single = torch.cat([attacks.pgd(small_model, x[i:i + 1], y[i:i + 1], eps, alpha, 3, norm=norm,
                                    random_start=False) for i in range(len(x))])
    assert _frac_close(whole, single, atol=1e-5 if norm == "linf" else 1e-3) >= 0.999


@pytest.mark.parametrize("norm,eps,alpha", [("linf", EPS, ALPHA), ("l2", 0.5, 0.2)])
def test_per_sample_eps_equals_scalar(small_model, batch, norm, eps, alpha):
    x, y = batch
    n = len(x)
    scalar = attacks.pgd(small_model, x, y, eps, alpha, 3, norm=norm, random_start=False)
    tensor = attacks.pgd(small_model, x, y, torch.full((n,), eps), torch.full((n,), alpha), 3, norm=norm,
                         random_start=False)
    assert torch.equal(scalar, tensor)
    f_scalar = attacks.fgsm(small_model, x, y, eps if norm == "linf" else EPS)
    f_tensor = attacks.fgsm(small_model, x, y, torch.full((n,), eps if norm == "linf" else EPS))
    assert torch.equal(f_scalar, f_tensor)


def test_mixed_per_sample_eps_and_alpha(small_model, batch):
    """Images with budget eps_i behave as if attacked with the scalar eps_i."""
    x, y = batch
    n = len(x)
    small, large = 2 / 255, 16 / 255
    eps = torch.where(torch.arange(n) % 2 == 0, torch.tensor(small), torch.tensor(large))
    alpha = eps / 4
    mixed = attacks.pgd(small_model, x, y, eps, alpha, 3, random_start=False)
    ref_small = attacks.pgd(small_model, x, y, small, small / 4, 3, random_start=False)
    ref_large = attacks.pgd(small_model, x, y, large, large / 4, 3, random_start=False)
    even = torch.arange(n) % 2 == 0
    assert _frac_close(mixed[even], ref_small[even]) >= 0.999
    assert _frac_close(mixed[~even], ref_large[~even]) >= 0.999
    size = _linf(x, mixed)
    assert bool((size <= eps + 1e-6).all())
    assert float(size[~even].max()) > small + 1e-3  # the large budget was used


# --------------------------------------------------------------------------- attack strength
def test_pgd_at_large_eps_drives_accuracy_to_zero(small_model, test64, claims):
    x, y = test64
    claims.at_least("clean accuracy of the small model", _accuracy(small_model, x, y), 0.2)
    x_adv = attacks.pgd(small_model, x, y, 32 / 255, 8 / 255, 10, random_start=False)
    claims.at_most("PGD-10 accuracy at 32/255", _accuracy(small_model, x_adv, y), 0.05)


def test_pgd_at_least_as_strong_as_fgsm(small_model, test64, claims):
    """At eps 8/255 PGD-10 reaches a higher loss than FGSM on every image on average and fools at
    least as many images (up to one image of 64: on this weak model both are near 0 %), and one
    PGD step of size eps from x *is* FGSM."""
    x, y = test64
    clean = _accuracy(small_model, x, y)
    x_fgsm = attacks.fgsm(small_model, x, y, EPS)
    x_pgd = attacks.pgd(small_model, x, y, EPS, ALPHA, 10, random_start=False)
    acc_fgsm, acc_pgd = _accuracy(small_model, x_fgsm, y), _accuracy(small_model, x_pgd, y)
    claims.at_least("FGSM 8/255 fools at least one image (clean - FGSM accuracy)", clean - acc_fgsm, 1 / len(x))
    claims.at_most("PGD-10 accuracy - FGSM accuracy at 8/255", acc_pgd - acc_fgsm, 1 / len(x) + 1e-9)
    with torch.no_grad():
        loss = (lambda z: nn.functional.cross_entropy(small_model(z), y, reduction="none"))
        claims.at_least("mean loss PGD-10 - FGSM at 8/255", float(loss(x_pgd).mean() - loss(x_fgsm).mean()), 1e-6)
        claims.at_least("fraction of images whose PGD loss >= FGSM loss",
                        float((loss(x_pgd) >= loss(x_fgsm) - 1e-4).float().mean()), 0.8)
    assert torch.equal(attacks.pgd(small_model, x, y, EPS, EPS, 1, random_start=False), x_fgsm)


def test_targeted_attack_hits_the_target(small_model, test64, claims):
    """Targeted success is measured separately from untargeted success: an untargeted attack fools
    the model as well, but only a targeted one lands on the chosen class."""
    x, y = test64
    x, y = x[:32], y[:32]
    target = (y + 3) % 10

    @torch.no_grad()
    def hit(z):
        return float((small_model(z).argmax(1) == target).float().mean())

    x_t = attacks.pgd(small_model, x, target, 32 / 255, 4 / 255, 10, targeted=True, random_start=False)
    x_u = attacks.pgd(small_model, x, y, 32 / 255, 4 / 255, 10, random_start=False)
    claims.at_least("targeted PGD-10 at 32/255: target hit rate", hit(x_t), 0.6)
    claims.at_most("untargeted PGD-10 at 32/255: rate of landing on the target", hit(x_u), 0.5)
    claims.at_least("target hit rate, targeted - untargeted", hit(x_t) - hit(x_u), 0.3)
    assert float(_linf(x, x_t).max()) <= 32 / 255 + 1e-6
    # Restarts keep, per image, a start that reached the target.
    x_r = attacks.pgd(small_model, x, target, 8 / 255, 2 / 255, 3, targeted=True, restarts=2,
                      generator=torch.Generator().manual_seed(0))
    x_1 = attacks.pgd(small_model, x, target, 8 / 255, 2 / 255, 3, targeted=True,
                      generator=torch.Generator().manual_seed(0))
    assert hit(x_r) >= hit(x_1)
    # FGSM targeted moves towards the target class too.
    x_ft = attacks.fgsm(small_model, x, target, 8 / 255, targeted=True)
    claims.at_least("target hit rate, targeted FGSM - clean", hit(x_ft) - hit(x), 1 / len(x))


def test_restarts_keep_every_success(small_model, batch):
    x, y = batch
    one = attacks.pgd(small_model, x, y, 4 / 255, 1 / 255, 3, restarts=1, generator=torch.Generator().manual_seed(3))
    three = attacks.pgd(small_model, x, y, 4 / 255, 1 / 255, 3, restarts=3,
                        generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        fooled_one = small_model(one).argmax(1) != y
        fooled_three = small_model(three).argmax(1) != y
    assert bool((fooled_three | ~fooled_one).all()), "an image fooled by the first restart must stay fooled"
    assert int(fooled_three.sum()) >= int(fooled_one.sum())
    assert float(_linf(x, three).max()) <= 4 / 255 + 1e-6
    # The first restart draws the same start as the single run: fooled images keep that result.
    assert torch.equal(three[fooled_one], one[fooled_one])


def test_random_start_uses_the_generator(small_model, batch):
    x, y = batch
    run = (lambda seed: attacks.pgd(small_model, x, y, EPS, ALPHA, 1, generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_bf16_precision_runs_and_is_as_strong(small_model, test64, claims):
    x, y = test64
    x, y = x[:32], y[:32]
    x16 = attacks.pgd(small_model, x, y, EPS, ALPHA, 5, random_start=False, precision="bf16")
    x32 = attacks.pgd(small_model, x, y, EPS, ALPHA, 5, random_start=False)
    assert x16.dtype == torch.float32 and float(_linf(x, x16).max()) <= EPS + 1e-6
    claims.at_most("|PGD-5 accuracy bf16 - fp32|", abs(_accuracy(small_model, x16, y) - _accuracy(small_model, x32, y)),
                   0.1)
    xf = attacks.fgsm(small_model, x, y, EPS, precision="auto")
    assert float(_linf(x, xf).max()) <= EPS + 1e-6


# --------------------------------------------------------------------------- differential vs torchattacks
def _ta():
    import torchattacks

    return torchattacks


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_matches_torchattacks(small_model, test64, targeted):
    x, y = test64
    labels = (y + 1) % 10 if targeted else y
    ours = attacks.fgsm(small_model, x, labels, EPS, targeted=targeted)
    atk = _ta().FGSM(small_model, eps=EPS)
    if targeted:
        atk.set_mode_targeted_by_label(quiet=True)
    theirs = atk(x, labels)
    assert _frac_close(ours, theirs) >= 0.999
    assert _frac_close(ours, theirs, atol=1e-5) >= 0.999


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_linf_matches_torchattacks(small_model, test64, targeted):
    """Same update as torchattacks.PGD(random_start=False): the fp32 computation is the same operation
    sequence, so results agree bit for bit on this machine; a sign tie (gradient component exactly
    at a rounding boundary) could flip a rare pixel by alpha on other hardware, hence >= 99.9 %."""
    x, y = test64
    x, y = x[:32], y[:32]
    labels = (y + 1) % 10 if targeted else y
    ours = attacks.pgd(small_model, x, labels, EPS, ALPHA, 5, random_start=False, targeted=targeted)
    atk = _ta().PGD(small_model, eps=EPS, alpha=ALPHA, steps=5, random_start=False)
    if targeted:
        atk.set_mode_targeted_by_label(quiet=True)
    theirs = atk(x, labels)
    assert _frac_close(ours, theirs) >= 0.999
    assert float((ours - theirs).abs().max()) <= 2 * ALPHA + 1e-6


def test_pgd_l2_matches_torchattacks(small_model, test64):
    """torchattacks.PGDL2 normalises the mean-loss gradient by ``||g||_2 + eps_for_division`` (1e-10)
    and rescales the perturbation by ``min(eps / ||delta||_2, 1)``; pgd(norm="l2") does the same, so
    the difference is fp32 rounding only (no sign ties in L2 steps): max abs diff <= 1e-5."""
    x, y = test64
    x, y = x[:32], y[:32]
    ours = attacks.pgd(small_model, x, y, 0.5, 0.1, 5, norm="l2", random_start=False)
    theirs = _ta().PGDL2(small_model, eps=0.5, alpha=0.1, steps=5, random_start=False)(x, y)
    assert float((ours - theirs).abs().max()) <= 1e-5


# --------------------------------------------------------------------------- helpers for notebooks
def test_accuracy_vs_eps_curve(small_model, test64, claims):
    x, y = test64
    x8 = (x * 255).round().to(torch.uint8)  # uint8 images are accepted too
    clean = _accuracy(small_model, data.to_float(x8), y)
    curve = robustness.accuracy_curve(small_model, x8, y, [0.0, 2 / 255, 32 / 255], attack="pgd", steps=5,
                                    batch_size=32, progress=False)
    assert len(curve) == 3 and all(0 <= a <= 1 for a in curve)
    assert curve[0] == pytest.approx(clean)
    claims.at_most("PGD-5 accuracy rise from 0 to 2/255", curve[1] - curve[0], 0)
    claims.at_most("PGD-5 accuracy rise from 2/255 to 32/255", curve[2] - curve[1], 0)
    claims.at_most("PGD-5 accuracy at 32/255", curve[2], 0.05)
    fg = robustness.accuracy_curve(small_model, x[:32], y[:32], [0.0, 8 / 255], progress=False)
    claims.at_least("FGSM 8/255 accuracy drop", fg[0] - fg[1], 1 / 32)


def test_adversarial_accuracy_batches_and_per_sample_eps(small_model, batch):
    x, y = batch
    n = len(x)
    eps = torch.linspace(0, 16 / 255, n)
    whole = robustness.adversarial_accuracy(small_model, x, y, "fgsm", batch_size=n, eps=eps)
    split = robustness.adversarial_accuracy(small_model, x, y, attacks.fgsm, batch_size=5, eps=eps)
    assert whole == pytest.approx(split)
    direct = _accuracy(small_model, attacks.fgsm(small_model, x, y, eps), y)
    assert whole == pytest.approx(direct)


def test_perturbation_norms_values():
    x = torch.zeros(2, 3, 4, 4)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.5
    x_adv[1] = 0.1
    assert torch.allclose(attacks.perturbation_norms(x, x_adv, "linf"), torch.tensor([0.5, 0.1]))
    assert torch.allclose(attacks.perturbation_norms(x, x_adv, "l2"), torch.tensor([0.5, 0.1 * 48 ** 0.5]))
    assert torch.allclose(attacks.perturbation_norms(x, x_adv, "l1"), torch.tensor([0.5, 4.8]))
    with pytest.raises(ValueError, match="same shape"):
        attacks.perturbation_norms(x, x_adv[:1])


# --------------------------------------------------------------------------- torchattacks wrapper
def test_torchattacks_wrapper_keeps_the_contract(small_model, batch):
    x, y = batch
    x, y = x[:4].double(), y[:4]
    model = copy.deepcopy(small_model).train()
    model.net[5].eval()
    before = _modes(model)
    x0 = x.clone()
    # DeepFool and CW call .backward(): without frozen parameters they would leave .grad behind.
    for name, kw in [("DeepFool", {"steps": 3}), ("cw", {"steps": 3, "c": 1.0}),
                     ("Square", {"eps": EPS, "n_queries": 20, "seed": 0})]:
        x_adv = attacks.torchattacks_attack(name, model, x, y, **kw)
        assert x_adv.dtype == torch.float64 and x_adv.shape == x.shape
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
        assert _modes(model) == before
        assert all(p.grad is None and p.requires_grad for p in model.parameters())
        assert torch.equal(x, x0)
    assert float(_linf(x, x_adv).max()) <= EPS + 1e-6  # Square's budget


def test_torchattacks_wrapper_errors(small_model, batch, monkeypatch):
    x, y = batch
    with pytest.raises(ValueError, match="Unknown torchattacks attack 'NoSuchAttack'"):
        attacks.torchattacks_attack("NoSuchAttack", small_model, x, y)
    with pytest.raises(ValueError, match="pixel scale"):
        attacks.torchattacks_attack("AutoAttack", small_model, x, y, eps=8)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        attacks.torchattacks_attack("Square", small_model, x * 255, y)
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install torchattacks==3.5.1 --no-deps"):
        attacks.torchattacks_attack("DeepFool", small_model, x, y)


# --------------------------------------------------------------------------- input checks
class _Probabilities(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), dim=1)


@pytest.mark.parametrize("call", [
    lambda m, x, y: attacks.fgsm(m, x, y, EPS),
    lambda m, x, y: attacks.pgd(m, x, y, EPS, ALPHA, 2),
])
def test_bad_inputs_raise_clear_errors(small_model, batch, call):
    x, y = batch
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\].*un-normalised"):
        call(small_model, x * 255, y)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        call(small_model, x - 0.5, y)
    with pytest.raises(TypeError, match="floating point.*to_float"):
        call(small_model, (x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        call(small_model, x[0], y)
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) = \(16,\)"):
        call(small_model, x, y[:-1])
    with pytest.raises(ValueError, match=r"y must have shape"):
        call(small_model, x, y[:, None])
    with pytest.raises(TypeError, match="integer class indices"):
        call(small_model, x, y.float())
    with pytest.raises(TypeError, match="integer class indices"):
        call(small_model, x, nn.functional.one_hot(y, 10).float())
    with pytest.raises(ValueError, match="model has 10 classes"):
        call(small_model, x, y + 10)
    prob_model = _Probabilities(copy.deepcopy(small_model)).train()
    with pytest.raises(ValueError, match="remove the final softmax"):
        call(prob_model, x, y)
    assert all(_modes(prob_model))  # modes restored after the error
    assert all(p.requires_grad for p in prob_model.parameters())


@pytest.mark.parametrize("bad_eps", [8, 8.0, -0.01, 1.5, float("nan")])
def test_eps_outside_pixel_scale(small_model, batch, bad_eps):
    x, y = batch
    with pytest.raises(ValueError, match=r"eps.*outside \[0, 1\].*pixel scale.*8/255"):
        attacks.fgsm(small_model, x, y, bad_eps)
    with pytest.raises(ValueError, match=r"eps.*outside \[0, 1\].*pixel scale.*8/255"):
        attacks.pgd(small_model, x, y, bad_eps, ALPHA, 2)


def test_other_parameter_errors(small_model, batch):
    x, y = batch
    n = len(x)
    with pytest.raises(ValueError, match=r"eps must be a number or a tensor of shape \(N,\) = \(16,\)"):
        attacks.fgsm(small_model, x, y, torch.full((n + 1,), EPS))
    with pytest.raises(ValueError, match=r"values in \[.*\] is outside \[0, 1\]"):
        attacks.pgd(small_model, x, y, torch.full((n,), 8.0), ALPHA, 2)
    with pytest.raises(ValueError, match="Unknown norm 'l3'"):
        attacks.pgd(small_model, x, y, EPS, ALPHA, 2, norm="l3")
    with pytest.raises(ValueError, match=r"L2 eps.*sqrt\(C\*H\*W\) = 55.43"):
        attacks.pgd(small_model, x, y, 100.0, 0.1, 2, norm="l2")
    with pytest.raises(ValueError, match="alpha"):
        attacks.pgd(small_model, x, y, EPS, -ALPHA, 2)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        attacks.pgd(small_model, x, y, EPS, ALPHA, -1)
    with pytest.raises(ValueError, match="restarts > 1 needs random_start=True"):
        attacks.pgd(small_model, x, y, EPS, ALPHA, 2, restarts=2, random_start=False)
    with pytest.raises(ValueError, match="precision must be"):
        attacks.fgsm(small_model, x, y, EPS, precision="fp16")
    with pytest.raises(ValueError, match="Unknown attack 'deepfool'"):
        robustness.adversarial_accuracy(small_model, x, y, "deepfool", eps=EPS)
    with pytest.raises(TypeError, match="nn.Module"):
        attacks.fgsm(lambda z: z, x, y, EPS)
