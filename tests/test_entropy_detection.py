"""Entropy monitoring, the deciding half: thresholds, AUROC with a direction, fusion, the adaptive attacker.

Thresholds against brute force and by hand across two splits; AUROC against scikit-learn; the
fusion's calibration guarantee over random data sets and in a case built to make the regression
lose; the adaptive PGD against the library's PGD (weight 0), its conventions, and on the trained
small model: it lowers the monitor's AUROC while still fooling the model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from labutils import attacks, models
from labutils.uncertainty import (FusedDetector, Threshold, adaptive_pgd, best_orientation_auroc, calibrate_edges,
                                  choose_threshold, default_monitor_layers, detection_auroc, detection_report,
                                  evaluate_threshold, histogram_entropy_per_sample, margin_loss,
                                  misclassification_auroc, run_monitor, soft_histogram_counts, soft_histogram_entropy,
                                  split_indices)


def _tied(n, m, seed, shift=1.0):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 1, n), 1), np.round(rng.normal(shift, 1.3, m), 1)


@pytest.fixture(scope="module")
def tiny_cnn():
    torch.manual_seed(0)
    return models.SimpleCNN().eval()


# --------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize("seed,shift", [(0, 1.0), (1, -0.8), (2, 0.0), (3, 2.5)])
def test_choose_threshold_is_the_brute_force_argmin(seed, shift):
    clean, susp = _tied(120, 80, seed, shift)
    t = choose_threshold(clean, susp)
    values = np.unique(np.r_[clean, susp])
    candidates = np.r_[-np.inf, (values[:-1] + values[1:]) / 2, np.inf]
    best = min(min(np.mean(clean > c) + np.mean(susp <= c), np.mean(clean < c) + np.mean(susp >= c))
               for c in candidates)
    assert t.error == pytest.approx(best, abs=1e-12)
    assert t.direction == ("below" if shift < 0 else "above") or shift == 0.0
    again = evaluate_threshold(t, clean, susp)  # the flags reproduce the reported calibration rates
    assert (again["fpr"], again["fnr"]) == pytest.approx((t.fpr, t.fnr), abs=1e-12)
    fixed = choose_threshold(clean, susp, direction="below" if t.direction == "above" else "above")
    assert fixed.error >= t.error and fixed.direction != t.direction


def test_threshold_direction_and_edge_cases():
    assert choose_threshold([0, 1, 2], [5, 6]) == Threshold(3.5, "above", 0.0, 0.0)
    assert choose_threshold([5, 6], [0, 1, 2]) == Threshold(3.5, "below", 0.0, 0.0)
    same = choose_threshold([1.0, 1.0], [1.0, 1.0])  # nothing to separate: flag nothing (FPR 0 first)
    assert (same.fpr, same.fnr, same.direction) == (0.0, 1.0, "above") and same.value == np.inf
    lo, hi = 1.0, np.nextafter(1.0, 2.0)  # neighbouring floats: the midpoint rounds onto one of them
    up, down = choose_threshold([lo], [hi]), choose_threshold([hi], [lo])
    assert (up.direction, up.error, up.flags([lo, hi]).tolist()) == ("above", 0.0, [False, True])
    assert (down.direction, down.error, down.flags([hi, lo]).tolist()) == ("below", 0.0, [False, True])
    with pytest.raises(ValueError, match="direction"):
        choose_threshold([0, 1], [2, 3], direction="up")
    with pytest.raises(ValueError, match="infinite"):
        choose_threshold([0, np.inf], [2, 3])
    with pytest.raises(ValueError, match="empty"):
        choose_threshold([], [1.0])
    with pytest.raises(TypeError, match="Threshold"):
        evaluate_threshold(0.5, [0], [1])


def test_threshold_chosen_on_calibration_is_evaluated_on_another_split():
    # calibration: cutting at 2.25 (FPR 1/4, FNR 0) or at 3.5 (FPR 0, FNR 1/4) ties; the lower FPR wins
    t = choose_threshold([0, 1, 2, 3], [2.5, 4, 5, 6])
    assert t == Threshold(3.5, "above", 0.0, 0.25)
    # evaluation split: 3.6 (clean) is flagged, 3.4 (adversarial) is missed
    r = evaluate_threshold(t, [3.6, 0, 1, 2], [3.4, 10])
    assert r == pytest.approx({"fpr": 0.25, "fnr": 0.5, "balanced_accuracy": 0.625, "accuracy": 4 / 6,
                               "n_clean": 4, "n_suspicious": 2})
    assert choose_threshold([3.6, 0, 1, 2], [3.4, 10]).value != t.value  # the split matters
    # the report does the same per signal, with indices shared by clean and attacked copies
    clean = {"a": np.array([0, 1, 2, 3, 3.6, 0, 1, 2.0]), "b": -np.arange(8.0)}
    adv = {"a": np.array([2.5, 4, 5, 6, 3.4, 10, 11, 12.0]), "b": -np.arange(8.0) - 100}
    cal, ev = np.arange(4), np.arange(4, 8)
    rows = detection_report(clean, adv, cal, ev)
    assert [r["signal"] for r in rows] == ["a", "b"]
    assert rows[0]["threshold"] == 3.5 and rows[0]["fpr"] == 0.25 and rows[0]["fnr"] == 0.25  # 3.6; 3.4
    assert rows[0]["auroc"] == pytest.approx(detection_auroc(clean["a"][ev], adv["a"][ev]))
    assert rows[1]["direction"] == "below" and rows[1]["balanced_accuracy"] == 1.0 and rows[1]["auroc"] == 1.0


def test_split_indices():
    cal, ev = split_indices(101, 0.3, seed=4)
    assert len(cal) == 30 and len(ev) == 71 and cal.dtype == torch.int64
    assert sorted(torch.cat([cal, ev]).tolist()) == list(range(101))
    again = split_indices(101, 0.3, seed=4)
    assert torch.equal(again[0], cal) and torch.equal(again[1], ev)
    assert not torch.equal(split_indices(101, 0.3, seed=5)[0], cal)
    assert [len(s) for s in split_indices(2, 0.01)] == [1, 1]
    for n, f in ((1, 0.5), (10, 0.0), (10, 1.0)):
        with pytest.raises(ValueError):
            split_indices(n, f)


def test_detection_auroc_has_a_stated_direction():
    clean, susp = _tied(90, 60, 7)
    labels = np.r_[np.zeros(90), np.ones(60)]
    above = detection_auroc(clean, susp)
    assert above == pytest.approx(roc_auc_score(labels, np.r_[clean, susp]), abs=1e-12)
    below = detection_auroc(torch.tensor(clean), torch.tensor(susp), direction="below")
    assert below == pytest.approx(roc_auc_score(labels, -np.r_[clean, susp]), abs=1e-12)
    assert above + below == pytest.approx(1.0) and above > 0.5
    assert best_orientation_auroc(clean, susp) == (above, "above")
    assert best_orientation_auroc(susp, clean) == pytest.approx((above, "below"))
    scores = np.r_[clean, susp]
    correct = np.r_[np.ones(90, bool), np.zeros(60, bool)]
    assert misclassification_auroc(scores, correct) == above
    assert misclassification_auroc(scores, torch.tensor(correct), direction="below") == below
    with pytest.raises(ValueError, match="both"):
        misclassification_auroc(scores, np.ones(150, bool))
    with pytest.raises(ValueError, match="shape"):
        misclassification_auroc(scores, correct[:10])
    with pytest.raises(ValueError, match="direction"):
        detection_auroc(clean, susp, direction="higher")


# --------------------------------------------------------------------------- fusion
def _features(seed, n=150):
    """Clean and adversarial features: informative columns in both directions, noise, an outlier column."""
    rng = np.random.default_rng(seed)
    f = int(rng.integers(1, 5))
    shift = rng.normal(0, 1.0, f)
    clean = rng.normal(0, 1, (n, f))
    adv = rng.normal(shift, rng.uniform(0.5, 2, f), (n, f))
    if seed % 2:
        clean[rng.random(n) < 0.1, 0] += 40  # rare huge values pull the regression's coefficient
    return clean, adv


@pytest.mark.parametrize("seed", range(8))
def test_fusion_is_never_worse_than_its_best_input_on_calibration(seed):
    clean, adv = _features(seed)
    det = FusedDetector().fit(clean, adv)
    best = max(a for a, _ in det.feature_aurocs.values())
    assert det.calib_auroc >= best
    s = det.score(np.r_[clean, adv])
    assert detection_auroc(s[: len(clean)], s[len(clean):]) == pytest.approx(det.calib_auroc, abs=1e-12)
    assert det.fell_back == (det.uses != "logistic regression")


def test_fusion_combines_signals_and_reports_a_fallback():
    rng = np.random.default_rng(0)
    # two signals each half informative: together (sum) they separate better than either
    clean = {"conv": rng.normal(0, 1, 300), "fc": rng.normal(0, 1, 300)}
    adv = {"conv": rng.normal(1, 1, 300), "fc": rng.normal(-1, 1, 300)}
    det = FusedDetector().fit(clean, adv)
    assert not det.fell_back and det.uses == "logistic regression" and det.names == ["conv", "fc"]
    assert det.coefficients["conv"] > 0 > det.coefficients["fc"]  # entropy up in one layer, down in the other
    assert det.feature_aurocs["fc"][1] == "below"
    assert det.calib_auroc > max(a for a, _ in det.feature_aurocs.values()) + 0.03
    # one feature whose clean values are mostly low but sometimes huge: the regression turns the
    # wrong way (AUROC 0.1) and the detector uses the feature itself (AUROC 0.9)
    c = np.r_[rng.normal(0, 0.1, 180), rng.normal(100, 1, 20)]
    a = rng.uniform(1, 2, 200)
    det = FusedDetector().fit({"x": c}, {"x": a})
    assert det.fell_back and det.uses == "x" and det.lr_auroc < 0.5
    assert det.calib_auroc == pytest.approx(0.9) == det.feature_aurocs["x"][0]
    np.testing.assert_array_equal(det.score({"x": a}), a)


def test_fusion_input_checks():
    with pytest.raises(RuntimeError, match="fit"):
        FusedDetector().score(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="columns"):
        FusedDetector().fit(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        FusedDetector().fit(np.array([[0.0], [np.nan]]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="same length"):
        FusedDetector().fit({"a": np.zeros(3), "b": np.zeros(4)}, {"a": np.ones(3), "b": np.ones(3)})
    with pytest.raises(ValueError, match="C must be"):
        FusedDetector(C=0)


# --------------------------------------------------------------------------- the adaptive attacker
def test_soft_histogram_is_the_hard_one_on_bin_centres_and_differentiable():
    edges = torch.tensor([0.0, 1.0, 2.0, 4.0, 8.0])
    centres = torch.tensor([0.5, 1.5, 3.0, 6.0])
    g = torch.Generator().manual_seed(0)
    on_centres = centres[torch.randint(0, 4, (5, 40), generator=g)] * (torch.rand(5, 40, generator=g) > 0.3)
    torch.testing.assert_close(soft_histogram_entropy(on_centres.double(), edges),
                               histogram_entropy_per_sample(on_centres, edges))
    acts = (torch.randn(5, 200, generator=g, dtype=torch.float64) * 4).requires_grad_(True)
    counts = soft_histogram_counts(acts, edges)
    torch.testing.assert_close(counts.sum(1), (acts > 0).sum(1).double())  # every positive value, once
    assert bool((counts >= 0).all())
    h = soft_histogram_entropy(acts, edges)
    (grad,) = torch.autograd.grad(h.sum(), acts)
    inside = (acts > 0.5) & (acts < 6)
    assert bool(torch.isfinite(grad).all()) and bool((grad[inside] != 0).any()) and bool((grad[acts <= 0] == 0).all())
    # halfway between two centres the mass is split in two halves
    torch.testing.assert_close(soft_histogram_counts(torch.tensor([[1.0, 0.0]]), edges), torch.tensor([[0.5, 0.5, 0, 0]]))
    assert soft_histogram_entropy(torch.tensor([[1.0, 2.0]]), [0.0, 3.0]).tolist() == [0.0]  # one bin


def test_margin_loss_by_hand():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    y = torch.tensor([0, 0])
    assert margin_loss(z, y, kappa=10).tolist() == [-1.0, 5.0]
    assert margin_loss(z, y, kappa=2).tolist() == [-1.0, 2.0]


@pytest.mark.parametrize("random_start", [False, True])
def test_adaptive_pgd_without_the_entropy_term_is_pgd(tiny_cnn, batch, single_thread, random_start):
    x, y = batch
    edges = {"net.2": torch.linspace(0, 1, 9)}
    ours = adaptive_pgd(tiny_cnn, x, y, 8 / 255, 2 / 255, 3, edges=edges, weight=0, random_start=random_start,
                        generator=torch.Generator().manual_seed(1))
    ref = attacks.pgd(tiny_cnn, x, y, 8 / 255, 2 / 255, 3, random_start=random_start,
                      generator=torch.Generator().manual_seed(1))
    assert torch.equal(ours, ref)


def test_adaptive_pgd_conventions_and_bad_inputs(tiny_cnn, batch, single_thread):
    x, y = batch
    x, y = x[:6].double(), y[:6]
    x0 = x.clone()
    edges = {"net.2": torch.linspace(0, 1, 17), "net.15": torch.linspace(0, 0.1, 17)}
    tiny_cnn.train()
    tiny_cnn.net[1].weight.requires_grad_(False)
    try:
        eps = torch.full((6,), 4 / 255).index_fill_(0, torch.tensor([0]), 0.0)  # per-sample, one of them 0
        out = adaptive_pgd(tiny_cnn, x, y, eps, 1 / 255, 2, edges=edges, weight=5.0, loss="margin",
                           predictive_weight=1.0, generator=torch.Generator().manual_seed(0))
        assert all(m.training for m in tiny_cnn.modules())
        assert not tiny_cnn.net[1].weight.requires_grad and tiny_cnn.net[3].weight.requires_grad
        assert all(p.grad is None for p in tiny_cnn.parameters())
    finally:
        tiny_cnn.eval()
        tiny_cnn.net[1].weight.requires_grad_(True)
    assert torch.equal(x, x0)
    assert out.dtype == x.dtype and out.shape == x.shape and out.device == x.device
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert bool(((out - x).abs().flatten(1).amax(1) <= eps.double() + 1e-12).all()) and torch.equal(out[0], x[0])
    assert sum(len(m._forward_hooks) for m in tiny_cnn.modules()) == 0
    xf = x.float()
    with pytest.raises(ValueError, match="pixel scale"):
        adaptive_pgd(tiny_cnn, xf, y, 8, 2 / 255, 1, edges=edges)
    with pytest.raises(ValueError, match="outside"):
        adaptive_pgd(tiny_cnn, xf, y, -0.1, 2 / 255, 1, edges=edges)
    with pytest.raises(ValueError, match=r"unknown layer.*net\.2, net\.3"):
        adaptive_pgd(tiny_cnn, xf, y, 0.03, 0.01, 1, edges={"conv1": edges["net.2"]})
    with pytest.raises(ValueError, match="loss"):
        adaptive_pgd(tiny_cnn, xf, y, 0.03, 0.01, 1, edges=edges, loss="hinge")
    with pytest.raises(ValueError, match="weight"):
        adaptive_pgd(tiny_cnn, xf, y, 0.03, 0.01, 1, edges=edges, weight=-1)
    with pytest.raises(ValueError, match="edges"):
        adaptive_pgd(tiny_cnn, xf, y, 0.03, 0.01, 1, edges={})
    assert sum(len(m._forward_hooks) for m in tiny_cnn.modules()) == 0


def test_adaptive_pgd_on_fastnet_layers(single_thread):
    torch.manual_seed(0)
    net = models.FastNet(widths=(8, 16, 16))
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 32, 32, generator=g)
    net.init_whitening(x)
    net.eval()
    y = torch.tensor([0, 1, 2, 3])
    edges = calibrate_edges(net, x, default_monitor_layers(net), bins=16)
    out = adaptive_pgd(net, x, y, 8 / 255, 2 / 255, 2, edges=edges, weight=10.0, random_start=False)
    plain = adaptive_pgd(net, x, y, 8 / 255, 2 / 255, 2, edges=edges, weight=0.0, random_start=False)
    assert float((out - x).abs().max()) <= 8 / 255 + 1e-6 and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x) and not torch.equal(out, plain)  # the entropy term changes the steps
    assert sum(len(m._forward_hooks) for m in net.modules()) == 0


def test_adaptive_attack_lowers_the_monitor_auroc(small_model, cifar_small, one_thread, claims):
    """PGD at 32/255 raises the first conv layer's entropy (the paper's signal, AUROC well above 0.5);
    PGD that also keeps that entropy near its clean value still fools the model but hides from it."""
    _, (x8, y) = cifar_small
    x = x8.float() / 255
    layer = default_monitor_layers(small_model)[0]
    edges = calibrate_edges(small_model, x[100:300], [layer])  # clean calibration images
    xs, ys = x[:64], y[:64]
    eps, steps = 32 / 255, 10
    alpha = attacks.default_pgd_alpha(eps, steps)
    x_pgd = attacks.pgd(small_model, xs, ys, eps, alpha, steps, random_start=False)
    x_ada = adaptive_pgd(small_model, xs, ys, eps, alpha, steps, edges=edges, weight=100.0, random_start=False)
    clean, pgd, ada = (run_monitor(small_model, z, edges) for z in (xs, x_pgd, x_ada))
    auroc_pgd = detection_auroc(clean.entropies()[layer], pgd.entropies()[layer], direction="above")
    auroc_ada, _ = best_orientation_auroc(clean.entropies()[layer], ada.entropies()[layer])
    claims.at_least(f"AUROC of the {layer} entropy against PGD-10 at 32/255 (higher = attacked)", auroc_pgd, 0.62)
    claims.at_most("AUROC of the same monitor against the adaptive attack (either direction)", auroc_ada, 0.62)
    claims.at_least("AUROC drop from PGD to the adaptive attack", auroc_pgd - auroc_ada, 0.08)
    accuracy = float((ada.predictions == ys).float().mean())
    claims.at_most("accuracy under the adaptive attack", accuracy, 0.15)


def test_adaptive_pgd_on_a_layer_followed_by_an_in_place_op(single_thread):
    """A hooked BatchNorm followed by ReLU(inplace=True) (SimpleCNN, the grouped block, MobileNetV2): the surrogate is
    computed on a copy, so the attack runs and gives what the same network with an out-of-place ReLU gives."""
    def net(inplace):
        torch.manual_seed(3)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                   torch.nn.ReLU(inplace=inplace), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(8, 4)).eval()

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8, generator=gen), torch.randint(0, 4, (6,), generator=gen)
    edges = {"1": torch.linspace(-1, 1, 9)}
    out = {inplace: adaptive_pgd(net(inplace), x, y, 8 / 255, 2 / 255, 3, edges=edges, weight=5.0,
                                 generator=torch.Generator().manual_seed(1)) for inplace in (True, False)}
    assert torch.equal(out[True], out[False])
    assert not torch.equal(out[True], x)
