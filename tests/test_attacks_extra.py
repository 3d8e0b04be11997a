"""Tests of the targeted-attack helpers of labutils.attacks (correct_per_class, targeted_success_matrix)."""
from __future__ import annotations

import pytest
import torch

from labutils import attacks, data, robustness, training

EPS = 8 / 255
K = 10


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def test100(cifar_small):
    _, (x, y) = cifar_small
    return x[:100], y[:100].clone()


@pytest.fixture(scope="module")
def six(small_model, test100):
    """Six correctly classified float images and their labels."""
    x, y = test100
    pred = training.predict_logits(small_model, x).argmax(1)
    idx = torch.nonzero(pred == y).flatten()[:6]
    assert idx.numel() == 6
    return data.to_float(x[idx]), y[idx]


# --------------------------------------------------------------------------- correct_per_class
def test_correct_per_class_picks_first_correct_images(small_model, test100):
    x, y = test100
    pred = training.predict_logits(small_model, x).argmax(1)
    idx = robustness.correct_per_class(small_model, x, y, 2, K)
    assert idx.dtype == torch.int64
    assert bool((pred[idx] == y[idx]).all())
    for c in range(K):
        expected = torch.nonzero((pred == y) & (y == c)).flatten()[:2]
        assert torch.equal(idx[y[idx] == c], expected)
    assert torch.equal(y[idx], torch.sort(y[idx]).values)  # grouped by class
    assert torch.equal(robustness.correct_per_class(small_model, data.to_float(x), y, 2, K), idx)


def test_correct_per_class_restores_mode(small_model, test100):
    x, y = test100
    small_model.train()
    try:
        robustness.correct_per_class(small_model, x[:20], y[:20], 1)
        assert all(m.training for m in small_model.modules())
    finally:
        small_model.eval()


# --------------------------------------------------------------------------- targeted_success_matrix
def test_all_pairs_matrix_matches_direct_attacks(small_model, six):
    x, y = six
    r = robustness.targeted_success_matrix(small_model, x, y, "fgsm", eps=EPS, num_classes=K, progress=False)
    m = x.shape[0] * (K - 1)
    assert r["pred"].shape == r["source"].shape == r["target"].shape == r["index"].shape == (m,)
    assert bool((r["target"] != r["source"]).all())
    # every image is paired with every other class exactly once
    for i in range(x.shape[0]):
        assert sorted(r["target"][r["index"] == i].tolist()) == [c for c in range(K) if c != int(y[i])]
    # the predictions are those of targeted FGSM run directly on each pair
    x_adv = attacks.fgsm(small_model, x[r["index"]], r["target"], EPS, targeted=True)
    with torch.no_grad():
        pred = small_model(x_adv).argmax(1)
    assert torch.equal(r["pred"], pred)
    hit, fooled = pred == r["target"], pred != r["source"]
    assert r["success_rate"] == pytest.approx(float(hit.double().mean()))
    assert r["fooled_rate"] == pytest.approx(float(fooled.double().mean()))
    # matrix layout: rows = source, columns = target, NaN where nothing was attacked
    s, f, n = r["success"], r["fooled"], r["count"]
    assert s.shape == f.shape == n.shape == (K, K)
    assert bool(torch.isnan(s.diagonal()).all()) and bool((n.diagonal() == 0).all())
    per_class = torch.bincount(y, minlength=K)
    for a in range(K):
        for b in range(K):
            if a == b or per_class[a] == 0:
                assert torch.isnan(s[a, b]) and n[a, b] == 0
                continue
            sel = (r["source"] == a) & (r["target"] == b)
            assert n[a, b] == per_class[a] == int(sel.sum())
            assert s[a, b] == pytest.approx(float(hit[sel].double().mean()))
            assert f[a, b] == pytest.approx(float(fooled[sel].double().mean()))
    finite = ~torch.isnan(s)
    assert bool((f[finite] >= s[finite]).all())  # hitting another class always fools the model


def test_one_target_per_image(small_model, six):
    x, y = six
    t = (y + 1 + torch.arange(len(y)) % (K - 1)) % K
    r = robustness.targeted_success_matrix(small_model, x, y, "fgsm", targets=t, eps=EPS, num_classes=K,
                                        progress=False)
    assert torch.equal(r["target"], t) and torch.equal(r["index"], torch.arange(len(y)))
    assert int(r["count"].sum()) == len(y)


def test_batches_do_not_change_the_result(small_model, six):
    x, y = six
    a = robustness.targeted_success_matrix(small_model, x, y, eps=EPS, num_classes=K, progress=False)
    b = robustness.targeted_success_matrix(small_model, x, y, eps=EPS, num_classes=K, batch_size=7, progress=False)
    assert torch.equal(a["pred"], b["pred"])


def test_eps_zero_hits_nothing(small_model, six):
    x, y = six
    r = robustness.targeted_success_matrix(small_model, x, y, eps=0.0, num_classes=K, progress=False)
    assert r["success_rate"] == 0 and r["fooled_rate"] == 0  # the images are classified correctly


def test_pgd_defaults_and_kwargs_pass_through(small_model, six):
    x, y = six
    t = (y + 2) % K
    g = torch.Generator().manual_seed(0)
    r = robustness.targeted_success_matrix(small_model, x, y, "pgd", targets=t, eps=EPS, steps=3,
                                        random_start=False, progress=False, generator=g)
    x_adv = attacks.pgd(small_model, x, t, EPS, 2.5 * EPS / 3, 3, random_start=False, targeted=True)
    with torch.no_grad():
        assert torch.equal(r["pred"], small_model(x_adv).argmax(1))


def test_iterative_beats_one_step(small_model, six, claims):
    x, y = six
    one = robustness.targeted_success_matrix(small_model, x, y, "fgsm", eps=EPS, num_classes=K, progress=False)
    many = robustness.targeted_success_matrix(small_model, x, y, "pgd", eps=EPS, steps=10, alpha=1 / 255,
                                           random_start=False, num_classes=K, progress=False)
    claims.at_least("targeted success rate, iterative - one step", many["success_rate"] - one["success_rate"], 0)


def test_callable_attack_gets_targeted_flag(small_model, six):
    x, y = six
    seen = []

    def attack(model, xb, tb, *, targeted, eps):
        seen.append((targeted, eps, tb.clone()))
        return xb

    r = robustness.targeted_success_matrix(small_model, x, y, attack, targets=(y + 1) % K, eps=0.1, progress=False)
    assert seen[0][0] is True and seen[0][1] == 0.1 and torch.equal(seen[0][2], (y + 1) % K)
    assert r["success_rate"] == 0


def test_model_mode_restored(small_model, six):
    x, y = six
    small_model.train()
    try:
        robustness.targeted_success_matrix(small_model, x, y, eps=EPS, num_classes=K, progress=False)
        assert all(m.training for m in small_model.modules())
    finally:
        small_model.eval()


def test_input_checks(small_model, six):
    x, y = six
    with pytest.raises(ValueError, match="differ from the labels"):
        robustness.targeted_success_matrix(small_model, x, y, targets=y.clone(), eps=EPS, progress=False)
    with pytest.raises(ValueError, match="0..4"):
        robustness.targeted_success_matrix(small_model, x, y % 5, targets=(y % 5 + 7), eps=EPS, num_classes=5,
                                        progress=False)
    with pytest.raises(ValueError, match="at least 2 classes"):
        robustness.targeted_success_matrix(small_model, x, torch.zeros_like(y), eps=EPS, progress=False)
    with pytest.raises(TypeError):
        robustness.targeted_success_matrix(small_model, x, y.float(), eps=EPS, progress=False)
