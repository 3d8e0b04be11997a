"""Tests of the robustness-curve helpers of labutils.attacks (notebook 03): PGD grids over steps /
step sizes / restarts, per-image correctness curves, and the gradient-masking sanity checks.

Everything runs on the CPU on the session's small SimpleCNN (``small_model``) with 16 images.
"""
from __future__ import annotations

import pytest
import torch

from labutils import attacks, robustness


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- pgd_accuracy_grid
def test_grid_records_order_and_alpha(small_model, batch):
    x, y = batch
    recs = robustness.pgd_accuracy_grid(small_model, x, y, [4 / 255, 8 / 255], [1, 3], alpha_factors=[1.0, 2.5],
                                     progress=False)
    assert len(recs) == 8
    assert [(r["eps"], r["steps"], r["alpha_factor"]) for r in recs[:4]] == [
        (4 / 255, 1, 1.0), (4 / 255, 1, 2.5), (4 / 255, 3, 1.0), (4 / 255, 3, 2.5)]
    for r in recs:
        assert set(r) == {"eps", "steps", "alpha_factor", "alpha", "restarts", "accuracy", "n"}
        assert r["alpha"] == pytest.approx(r["alpha_factor"] * r["eps"] / r["steps"])
        assert 0 <= r["accuracy"] <= 1 and r["n"] == 16 and r["restarts"] == 1


def test_grid_equals_pgd_without_random_start(small_model, batch):
    x, y = batch
    (rec,) = robustness.pgd_accuracy_grid(small_model, x, y, [8 / 255], [3], progress=False)
    expected = robustness.adversarial_accuracy(small_model, x, y, "pgd", eps=8 / 255, alpha=2.5 * (8 / 255) / 3,
                                            steps=3, random_start=False)
    assert rec["accuracy"] == expected


def test_grid_restarts_share_starts_and_never_weaken(small_model, batch):
    x, y = batch
    kw = dict(restarts_values=[1, 2, 3], random_start=True, seed=5, batch_size=8, progress=False)
    recs = robustness.pgd_accuracy_grid(small_model, x, y, [2 / 255], [2], **kw)
    accs = [r["accuracy"] for r in recs]
    assert all(b <= a for a, b in zip(accs, accs[1:])), accs  # exact: restarts keep earlier successes
    assert accs == [r["accuracy"] for r in robustness.pgd_accuracy_grid(small_model, x, y, [2 / 255], [2], **kw)]
    # restarts=r is pgd(..., restarts=r) with the generator seeded with seed + batch index for each
    # batch (the grid computes all r in one run of the most restarts)
    for k, restarts in enumerate([1, 2, 3]):
        correct = 0
        for b, i in enumerate(range(0, 16, 8)):
            g = torch.Generator().manual_seed(5 + b)
            x_adv = attacks.pgd(small_model, x[i:i + 8], y[i:i + 8], 2 / 255, 2.5 * (2 / 255) / 2, 2,
                                restarts=restarts, generator=g)
            correct += int((small_model(x_adv).argmax(1) == y[i:i + 8]).sum())
        assert accs[k] == correct / 16, (restarts, accs)


def test_grid_input_checks(small_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="random_start"):
        robustness.pgd_accuracy_grid(small_model, x, y, [8 / 255], [2], restarts_values=[2], progress=False)
    with pytest.raises(ValueError, match="steps"):
        robustness.pgd_accuracy_grid(small_model, x, y, [8 / 255], [0], progress=False)
    with pytest.raises(ValueError, match="8/255"):
        robustness.pgd_accuracy_grid(small_model, x, y, [8.0], [2], progress=False)


# --------------------------------------------------------------------------- correct_vs_eps
def test_correct_vs_eps_matches_accuracy_curve(small_model, batch):
    x, y = batch
    eps = [0.0, 2 / 255, 8 / 255]
    ok = robustness.correct_vs_eps(small_model, x, y, eps, attack="fgsm", batch_size=5, progress=False)
    assert ok.shape == (3, 16) and ok.dtype == torch.bool
    assert ok.float().mean(1).tolist() == pytest.approx(
        robustness.accuracy_curve(small_model, x, y, eps, attack="fgsm", progress=False))
    assert torch.equal(ok[0], small_model(x).argmax(1) == y)  # eps 0: clean correctness
    ok_pgd = robustness.correct_vs_eps(small_model, x, y, eps, attack="pgd", steps=2, random_start=False, progress=False)
    assert ok_pgd.float().mean(1).tolist() == pytest.approx(
        robustness.accuracy_curve(small_model, x, y, eps, attack="pgd", steps=2, random_start=False, progress=False))
    nested = ok_pgd.int().cummin(0).values.bool()
    assert torch.all(nested[1:] <= nested[:-1]) and torch.all(nested <= ok_pgd)


# --------------------------------------------------------------------------- gradient_masking_checks
def _passed(rows):
    return {r["check"]: r["passed"] for r in rows}


def test_masking_checks_pass_on_a_healthy_evaluation():
    rows = robustness.gradient_masking_checks([0, 4 / 255, 8 / 255], [0.8, 0.1, 0.0], 100, fgsm_acc=[0.8, 0.3, 0.1],
                                           steps_curves={"a": [0.3, 0.2, 0.21]}, restarts_curves={"a": [0.2, 0.2]})
    assert len(rows) == 5 and all(_passed(rows).values())
    assert all(set(r) == {"check", "passed", "detail", "value", "bound"} for r in rows)
    assert all(r["passed"] == (r["value"] <= r["bound"]) for r in rows)


def test_masking_checks_flag_each_symptom():
    eps = [0, 4 / 255, 8 / 255]
    # PGD weaker than FGSM by two images of 100
    rows = robustness.gradient_masking_checks(eps, [0.8, 0.32, 0.0], 100, fgsm_acc=[0.8, 0.3, 0.0])
    assert not _passed(rows)["PGD at least as strong as FGSM at every budget"]
    # accuracy rises with the budget, and stays high at the largest one
    rows = _passed(robustness.gradient_masking_checks(eps, [0.8, 0.1, 0.3], 100))
    assert not rows["PGD accuracy never rises with the budget"]
    assert not rows["PGD accuracy <= 2% at the largest budget"]
    # more steps weaker by more than one image; restarts weaker by one image (no slack)
    rows = _passed(robustness.gradient_masking_checks(eps, [0.8, 0.1, 0.0], 100, steps_curves={"s": [0.2, 0.22]},
                                                   restarts_curves={"r": [0.2, 0.21]}))
    assert not rows["more steps never weaker (s)"] and not rows["more restarts never weaker (r)"]
    # one image of slack is allowed for steps
    rows = _passed(robustness.gradient_masking_checks(eps, [0.8, 0.1, 0.0], 100, steps_curves={"s": [0.2, 0.21]}))
    assert rows["more steps never weaker (s)"]


def test_masking_checks_validate_inputs():
    with pytest.raises(ValueError, match="same non-zero length"):
        robustness.gradient_masking_checks([0, 1 / 255], [0.5], 10)
    with pytest.raises(ValueError, match="fgsm_acc"):
        robustness.gradient_masking_checks([0, 1 / 255], [0.5, 0.4], 10, fgsm_acc=[0.5])
    with pytest.raises(ValueError, match="increasing"):
        robustness.gradient_masking_checks([1 / 255, 0], [0.5, 0.4], 10)
    with pytest.raises(ValueError, match="n must"):
        robustness.gradient_masking_checks([0, 1 / 255], [0.5, 0.4], 0)
