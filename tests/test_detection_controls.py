"""The detector's controls and the adaptive attacker's score (labutils.uncertainty.controls).

Harmless perturbations of an attack's size: their norms (Linf for random signs, per-image L2
matched to a reference for Gaussian noise), the [0, 1] range, no mutation of the inputs, dtype and
device kept, the same draw for the same seed, roughly half the signs each way; "fooled and
unflagged" against a loop by hand, both directions, restarts (any restart wins), and its errors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labutils import models
from labutils.uncertainty import (Threshold, default_monitor_layers, fooled_and_unflagged, gaussian_noise_like,
                                  random_sign_noise, run_monitor)


def _images(seed, n=6, shape=(3, 8, 8), dtype=torch.float32, interior=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g, dtype=dtype)
    if interior:  # away from 0 and 1, so that no clipping happens for budgets up to 0.2
        x = 0.25 + 0.5 * x
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0.0, 1.0  # border pixels
    return x


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- random signs
@pytest.mark.parametrize("seed,eps", [(0, 8 / 255), (1, 2 / 255), (2, 16 / 255), (3, 0.0), (4, 0.2)])
def test_random_sign_noise_has_the_attack_linf_norm_and_stays_in_range(seed, eps):
    x = _images(seed)
    before = x.clone()
    out = random_sign_noise(x, eps, _gen(seed))
    assert torch.equal(x, before), "the input must not be modified"
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    delta = out - x
    assert float(delta.abs().max()) <= eps + 1e-6
    inside = (x - eps >= 0) & (x + eps <= 1)  # no clipping there: every such entry moves by exactly eps
    assert torch.allclose(delta[inside].abs(), torch.full_like(delta[inside], eps), atol=1e-6)


def test_random_sign_noise_in_the_interior_has_fgsm_l2_norm_and_balanced_signs():
    x = _images(5, n=4, shape=(3, 32, 32), interior=True)
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0.5, 0.5
    eps = 8 / 255
    delta = random_sign_noise(x, eps, _gen(5)) - x
    d = x[0].numel()
    assert torch.allclose(delta.flatten(1).norm(dim=1), torch.full((4,), eps * math.sqrt(d)), rtol=1e-4)
    share_up = float((delta > 0).double().mean())
    assert abs(share_up - 0.5) < 0.05  # 12,288 fair coin flips: 0.05 is about 11 standard deviations


def test_random_sign_noise_per_sample_eps_and_seeded_repeatability():
    x = _images(6, interior=True)
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0.5, 0.5
    eps = torch.tensor([0.0, 0.01, 0.02, 0.05, 0.1, 0.2])
    a, b = random_sign_noise(x, eps, _gen(7)), random_sign_noise(x, eps, _gen(7))
    assert torch.equal(a, b), "the same seed must give the same noise"
    assert not torch.equal(a, random_sign_noise(x, eps, _gen(8)))
    per_image = (a - x).flatten(1).abs().amax(dim=1)
    assert torch.allclose(per_image, eps, atol=1e-6)
    assert torch.equal(eps, torch.tensor([0.0, 0.01, 0.02, 0.05, 0.1, 0.2])), "eps must not be modified"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_random_sign_noise_keeps_dtype(dtype):
    x = _images(9).to(dtype)
    out = random_sign_noise(x, 4 / 255, _gen(9))
    assert out.dtype == dtype and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), torch.tensor([0.1, 0.2])])
def test_random_sign_noise_rejects_bad_eps(bad):
    with pytest.raises(ValueError):
        random_sign_noise(_images(0), bad)


def test_random_sign_noise_rejects_integer_images():
    with pytest.raises(TypeError):
        random_sign_noise(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 0.1)


# --------------------------------------------------------------------------- Gaussian, norm-matched
@pytest.mark.parametrize("seed", range(5))
def test_gaussian_noise_matches_the_reference_l2_norm_before_clipping(seed):
    x = _images(seed, interior=True)
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0.5, 0.5
    g = _gen(100 + seed)
    reference = (torch.rand(x.shape, generator=g) * 2 - 1) * torch.linspace(0, 0.02, len(x)).reshape(-1, 1, 1, 1)
    ref_before, x_before = reference.clone(), x.clone()
    out = gaussian_noise_like(x, reference, _gen(seed))
    assert torch.equal(x, x_before) and torch.equal(reference, ref_before), "inputs must not be modified"
    norms = (out - x).flatten(1).norm(dim=1)
    assert torch.allclose(norms, reference.flatten(1).norm(dim=1), rtol=1e-4, atol=1e-7)
    assert float(norms[0]) == 0.0, "a zero reference leaves the image unchanged"


@pytest.mark.parametrize("seed", range(5))
def test_gaussian_noise_after_clipping_is_in_range_and_no_larger(seed):
    x = _images(seed)  # values near 0 and 1: clipping bites
    reference = torch.full_like(x, 0.3)
    out = gaussian_noise_like(x, reference, _gen(seed))
    assert out.dtype == x.dtype and out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    norms = (out - x).flatten(1).norm(dim=1)
    assert bool((norms <= reference.flatten(1).norm(dim=1) * (1 + 1e-6)).all())
    assert bool((norms > 0).all())


def test_gaussian_noise_is_repeatable_for_a_seed_and_looks_gaussian():
    x = torch.full((2, 3, 32, 32), 0.5)
    reference = torch.full_like(x, 0.01)
    a, b = gaussian_noise_like(x, reference, _gen(3)), gaussian_noise_like(x, reference, _gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, gaussian_noise_like(x, reference, _gen(4)))
    z = ((a - x) / 0.01).flatten()  # per-entry noise in units of the reference's per-entry size
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.05
    assert float((z.abs() > 2).double().mean()) == pytest.approx(0.0455, abs=0.02)  # normal tails, not signs


def test_gaussian_noise_checks_its_reference():
    x = _images(0)
    with pytest.raises(ValueError):
        gaussian_noise_like(x, torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError):
        gaussian_noise_like(x, torch.full_like(x, float("inf")))


def test_controls_follow_the_images_device_and_move_through_a_monitor():
    torch.manual_seed(0)
    model = models.SimpleCNN().eval()
    device = next(model.parameters()).device
    x = torch.rand(4, 3, 32, 32, device=device)
    layer = default_monitor_layers(model)[0]
    edges = {layer: torch.linspace(0, 2, 17)}
    for out in (random_sign_noise(x, 8 / 255, _gen(0)), gaussian_noise_like(x, x - x.flip(0), _gen(0))):
        assert out.device == x.device  # drawn with a CPU generator, moved to the images' device
        r = run_monitor(model, out, edges)
        assert r.counts[layer].shape == (4, 16)


# --------------------------------------------------------------------------- fooled and unflagged
def _by_hand(pred, labels, scores, thr, direction):
    pred, scores = np.atleast_2d(pred), np.atleast_2d(scores)
    out = np.zeros(len(labels), bool)
    for r in range(pred.shape[0]):
        for i in range(len(labels)):
            flagged = scores[r, i] > thr if direction == "above" else scores[r, i] < thr
            out[i] |= pred[r, i] != labels[i] and not flagged
    return out


@pytest.mark.parametrize("seed,restarts,direction", [(0, 1, "above"), (1, 1, "below"), (2, 2, "above"),
                                                     (3, 3, "below"), (4, 2, "below")])
def test_fooled_and_unflagged_is_the_loop_by_hand(seed, restarts, direction):
    rng = np.random.default_rng(seed)
    n = 50
    labels = rng.integers(0, 3, n)
    pred = rng.integers(0, 3, (restarts, n))
    scores = np.round(rng.normal(0, 1, (restarts, n)), 1)  # ties with the threshold happen
    thr = 0.2
    args = (pred[0], labels, scores[0]) if restarts == 1 else (pred, labels, scores)
    got = fooled_and_unflagged(torch.as_tensor(args[0]), torch.as_tensor(labels), torch.as_tensor(args[2]), thr,
                               direction=direction)
    assert got.dtype == torch.bool and got.shape == (n,)
    assert np.array_equal(got.numpy(), _by_hand(pred, labels, scores, thr, direction))


def test_fooled_and_unflagged_agrees_with_threshold_flags_and_any_restart_wins():
    labels = torch.tensor([0, 1, 2, 3])
    pred = torch.tensor([[1, 1, 0, 3], [0, 0, 0, 0]])  # restart 0 fools images 0, 2; restart 1 fools 1, 2, 3
    scores = torch.tensor([[0.1, 0.9, 0.9, 0.1], [0.9, 0.1, 0.1, 0.5]])
    t = Threshold(0.5, "above", 0.0, 0.0)  # flags > 0.5; a score equal to the threshold is not flagged
    got = fooled_and_unflagged(pred, labels, scores, t.value, direction=t.direction)
    assert got.tolist() == [True, True, True, True]
    for r in range(2):  # restart by restart, as Threshold.flags sees it
        alone = fooled_and_unflagged(pred[r], labels, scores[r], t.value, direction=t.direction)
        assert alone.tolist() == ((pred[r] != labels).numpy() & ~t.flags(scores[r])).tolist()
    assert fooled_and_unflagged(pred[0], labels, scores[0], -math.inf).sum() == 0  # flag everything: nothing lost
    assert fooled_and_unflagged(pred[0], labels, scores[0], math.inf).tolist() == [True, False, True, False]
    before = pred.clone()
    fooled_and_unflagged(pred, labels, scores, 0.5)
    assert torch.equal(pred, before)


def test_fooled_and_unflagged_checks_its_arguments():
    labels = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError):
        fooled_and_unflagged(torch.zeros(3), labels, torch.zeros(3), 0.0, direction="up")
    with pytest.raises(ValueError):
        fooled_and_unflagged(torch.zeros(2, 3), labels, torch.zeros(3), 0.0)
    with pytest.raises(ValueError):
        fooled_and_unflagged(torch.zeros(4), labels, torch.zeros(4), 0.0)
    with pytest.raises(ValueError):
        fooled_and_unflagged(torch.zeros(3), labels, torch.tensor([0.0, float("nan"), 1.0]), 0.0)
    with pytest.raises(ValueError):
        fooled_and_unflagged(torch.zeros(3), labels, torch.zeros(3), float("nan"))
