"""Randomized smoothing (labutils.smoothing) against closed forms, scipy, statsmodels and ART.

The base classifier of most tests is linear: class 1 where ``w . x + b > 0``.  Under noise
``N(0, sigma^2 I)`` its class-1 probability is ``Phi((w . x + b) / (sigma ||w||))`` exactly, so the
smoothed classifier's true radius is the distance to the hyperplane, ``|w . x + b| / ||w||``, and
``certify`` must return it up to the Clopper-Pearson tolerance of ``n`` samples.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from labutils.robustness import smoothing
from labutils.robustness.smoothing import ABSTAIN, SmoothedClassifier

SHAPE = (1, 4, 4)
D = math.prod(SHAPE)


class LinearTwoClass(nn.Module):
    """Logits ``(-s, s)`` with ``s = w . x + b``: class 1 on the positive side of a hyperplane."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w = nn.Parameter(w.flatten().clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], dim=1)


def linear_case(offsets):
    """Images ``c * 1`` (constant pixels c in [0, 1]) and a hyperplane through ``0.5 * 1``: signed distance
    ``(c - 0.5) * sqrt(D)``."""
    w = torch.ones(D) / math.sqrt(D)  # unit normal
    model = LinearTwoClass(w, -0.5 * math.sqrt(D))
    c = 0.5 + torch.as_tensor(offsets, dtype=torch.float32) / math.sqrt(D)
    x = c.view(-1, 1, 1, 1).expand(-1, *SHAPE).contiguous()
    distance = (c - 0.5) * math.sqrt(D)
    return model, x, distance


def test_clopper_pearson_matches_scipy_and_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for count, n, alpha in [(0, 10, 0.05), (1, 10, 0.05), (57, 100, 0.001), (99_000, 100_000, 0.001), (10, 10, 0.01),
                            (4_321, 10_000, 0.2)]:
        ours = float(smoothing.clopper_pearson_lower(count, n, alpha))
        # The one-sided bound at 1 - alpha is the lower end of the two-sided exact interval at 1 - 2 alpha.
        scipy_low = stats.binomtest(count, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
        sm_low = proportion_confint(count, n, alpha=2 * alpha, method="beta")[0]
        assert ours == pytest.approx(scipy_low, abs=1e-12), (count, n)
        assert ours == pytest.approx(0.0 if count == 0 else sm_low, abs=1e-12), (count, n)
    vec = smoothing.clopper_pearson_lower(np.array([0, 5, 10]), np.array([10, 10, 10]), 0.05)
    assert vec.shape == (3,) and np.all(np.diff(vec) > 0)


def test_radius_is_monotone_in_the_vote_share():
    n = 1000
    p = smoothing.clopper_pearson_lower(np.arange(n + 1), n, 0.001)
    r = smoothing.certified_radius(p, 0.5)
    assert np.all(np.diff(p) > 0)
    assert np.all(np.diff(r) >= 0)
    assert np.all(r[p < 0.5] == 0) and np.all(r[p > 0.5] > 0)
    # sigma scales the radius linearly
    np.testing.assert_allclose(smoothing.certified_radius(p, 1.0), 2 * r)
    assert float(smoothing.certified_radius(0.5, 0.25)) == 0.0


@pytest.mark.parametrize("sigma", [0.25, 0.5])
def test_certify_returns_the_distance_to_the_hyperplane(sigma):
    offsets = [-1.2, -0.6, -0.3, 0.2, 0.5, 0.9, 1.5]
    model, x, distance = linear_case(offsets)
    n, alpha = 4000, 0.001
    cert = SmoothedClassifier(model, 2, sigma, seed=1).certify(x, n0=100, n=n, alpha=alpha, batch_size=2048)
    true_p = stats.norm.cdf(np.abs(distance.numpy()) / sigma)
    true_class = (distance > 0).long()
    assert torch.equal(cert.prediction, true_class)  # far enough from 0.5 that none abstains
    sd = np.sqrt(true_p * (1 - true_p) / n)
    # p_lower sits below the true probability (a 1 - alpha bound; the seed makes this deterministic) and
    # no further below it than the bound's width at a count 5 standard deviations low.
    worst = smoothing.clopper_pearson_lower(np.floor(n * (true_p - 5 * sd)).clip(0), n, alpha)
    p_lower = cert.p_lower.numpy()
    assert np.all(p_lower <= true_p + 1e-12) and np.all(p_lower >= worst)
    radius = cert.radius.numpy()
    assert np.all(radius <= np.abs(distance.numpy()) + 1e-9)
    np.testing.assert_allclose(radius, sigma * stats.norm.ppf(p_lower))
    assert np.all(radius >= sigma * stats.norm.ppf(np.maximum(worst, 0.5)) - 1e-9)
    assert cert.counts.sum(1).tolist() == [n] * len(offsets)
    assert cert.counts.dtype == torch.int64 and cert.radius.dtype == torch.float64


def test_certify_abstains_at_the_boundary_and_with_too_few_samples():
    model, x, _ = linear_case([0.0, 0.01, 2.0])
    cert = SmoothedClassifier(model, 2, 0.5, seed=0).certify(x, n0=50, n=500, alpha=0.001)
    assert cert.abstained[:2].all() and not cert.abstained[2]
    assert torch.all(cert.radius[:2] == 0) and cert.radius[2] > 0
    # n = 5 copies can never certify at alpha = 0.001: even 5/5 votes give p_lower = 0.001^(1/5) < 0.5
    few = SmoothedClassifier(model, 2, 0.5).certify(x, n0=5, n=5, alpha=0.001)
    assert few.abstained.all()
    assert float(smoothing.clopper_pearson_lower(5, 5, 0.001)) == pytest.approx(0.001 ** 0.2)


def test_predict_uses_the_binomial_test():
    model, x, distance = linear_case([-1.5, 0.0, 0.02, 1.0])
    sc = SmoothedClassifier(model, 2, 0.5, seed=3)
    pred = sc.predict(x, n=400, alpha=0.01)
    counts = sc.sample_counts(x, 400, stage="predict")
    for i in range(len(x)):
        a, b = sorted(counts[i].tolist(), reverse=True)
        expected = int(counts[i].argmax()) if stats.binomtest(a, a + b, 0.5).pvalue <= 0.01 else ABSTAIN
        assert int(pred[i]) == expected
    assert pred[0] == 0 and pred[3] == 1 and pred[1] == ABSTAIN


def test_batched_equals_one_image_at_a_time():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * D, 3))
    x = torch.rand(6, *SHAPE)
    sc = SmoothedClassifier(model, 3, 0.5, seed=7)
    together = sc.certify(x, n0=60, n=700, alpha=0.01, batch_size=4096)
    for i in range(len(x)):
        alone = sc.certify(x[i:i + 1], n0=60, n=700, alpha=0.01, batch_size=200)
        assert torch.equal(alone.counts[0], together.counts[i])
        assert alone.prediction[0] == together.prediction[i] and alone.radius[0] == together.radius[i]
    again = SmoothedClassifier(model, 3, 0.5, seed=7).certify(x, n0=60, n=700, alpha=0.01)
    assert torch.equal(again.counts, together.counts)
    other = SmoothedClassifier(model, 3, 0.5, seed=8).certify(x, n0=60, n=700, alpha=0.01)
    assert not torch.equal(other.counts, together.counts)
    # selection and estimation use independent noise
    assert not torch.equal(sc.sample_counts(x, 128, stage="select"), sc.sample_counts(x, 128, stage="estimate"))


def test_model_state_and_input_are_kept():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(2 * 4, 2))
    model.train()
    model[0].weight.requires_grad_(False)
    x = torch.rand(3, *SHAPE)
    x0 = x.clone()
    stats_before = model[1].running_mean.clone()
    c1 = SmoothedClassifier(model, 2, 0.25).certify(x, 10, 100, 0.01)
    c2 = SmoothedClassifier(model, 2, 0.25).certify(x, 10, 100, 0.01)
    assert torch.equal(c1.counts, c2.counts)  # eval mode: dropout off, so the votes are repeatable
    assert model.training and model[1].training and not model[0].weight.requires_grad and model[4].weight.requires_grad
    assert torch.equal(model[1].running_mean, stats_before) and torch.equal(x, x0)
    assert all(p.grad is None for p in model.parameters())


def test_float64_images_and_model():
    model, x, _ = linear_case([0.8])
    model = model.double()
    cert = SmoothedClassifier(model, 2, 0.25).certify(x.double(), 20, 200, 0.01)
    assert cert.prediction.tolist() == [1]


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": 0}, "sigma must be a positive"), ({"sigma": -1}, "sigma"), ({"num_classes": 1}, "num_classes"),
    ({"precision": "fp16"}, "precision"),
])
def test_bad_settings_are_rejected(kwargs, match):
    model, _, _ = linear_case([0.5])
    settings = {"num_classes": 2, "sigma": 0.25, **kwargs}
    with pytest.raises(ValueError, match=match):
        SmoothedClassifier(model, settings["num_classes"], settings["sigma"], precision=settings.get("precision", "fp32"))


def test_bad_calls_are_rejected():
    model, x, _ = linear_case([0.5])
    sc = SmoothedClassifier(model, 2, 0.25)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sc.certify(x * 300, 10, 100, 0.01)
    with pytest.raises(ValueError, match="shape"):
        sc.certify(x[0], 10, 100, 0.01)
    with pytest.raises(TypeError, match="floating point"):
        sc.certify((x * 255).to(torch.uint8), 10, 100, 0.01)
    with pytest.raises(ValueError, match="alpha"):
        sc.certify(x, 10, 100, 1.5)
    with pytest.raises(ValueError, match="n0 must be a positive integer"):
        sc.certify(x, 0, 100, 0.01)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sc.predict(x, 2.5, 0.01)
    with pytest.raises(ValueError, match="stage"):
        sc.sample_counts(x, 10, stage="train")


def test_certified_accuracy_and_both_average_radii():
    # imperfect, asymmetric data: correct with radii, wrong, abstained
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 1])
    prediction = torch.tensor([0, 1, 0, ABSTAIN, 0, 2, 2])
    radius = torch.tensor([0.3, 1.2, 0.8, 0.0, 0.05, 2.0, 0.4], dtype=torch.float64)
    radii = [0.0, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0]
    ca = smoothing.certified_accuracy(prediction, radius, labels, radii)
    np.testing.assert_allclose(ca, np.array([4, 3, 2, 2, 1, 1, 0]) / 7)
    correct_radii = np.array([0.3, 1.2, 0.05, 2.0])
    assert smoothing.average_certified_radius(prediction, radius, labels) == pytest.approx(correct_radii.sum() / 7)
    assert smoothing.average_certified_radius(prediction, radius, labels, over="certified_correct") == \
        pytest.approx(correct_radii.mean())
    # ACR is the area under the certified-accuracy curve
    grid = np.linspace(0, 3, 30001)
    area = np.trapezoid(smoothing.certified_accuracy(prediction, radius, labels, grid), grid)
    assert area == pytest.approx(smoothing.average_certified_radius(prediction, radius, labels), abs=1e-3)
    table = smoothing.radius_definitions(prediction, radius, labels)
    assert table["certified_correct"] == 4 and table["abstained"] == 1 and table["n"] == 7
    with pytest.raises(ValueError, match="over"):
        smoothing.average_certified_radius(prediction, radius, labels, over="some")
    with pytest.raises(ValueError, match="1-D"):
        smoothing.certified_accuracy(prediction[:3], radius, labels, radii)
    assert math.isnan(smoothing.average_certified_radius(torch.tensor([ABSTAIN]), torch.zeros(1), torch.tensor([0]),
                                                         over="certified_correct"))


def test_agrees_with_art_randomized_smoothing():
    """ART's PyTorchRandomizedSmoothing with the same base model, sigma, n0 and n certifies the same classes and
    radii within the sampling tolerance (different random noise, so not bit for bit)."""
    from art.estimators.certification import randomized_smoothing as art_rs

    model, x, distance = linear_case([-1.0, -0.4, 0.3, 0.7, 1.4])
    sigma, n, alpha = 0.5, 3000, 0.001
    ours = SmoothedClassifier(model, 2, sigma).certify(x, n0=100, n=n, alpha=alpha)
    np.random.seed(0)
    art = art_rs.PyTorchRandomizedSmoothing(model=model, loss=nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=2,
                                            clip_values=(0.0, 1.0), sample_size=100, scale=sigma, alpha=alpha,
                                            device_type="cpu")
    art_pred, art_radius = art.certify(x.numpy(), n=n, batch_size=1000)
    assert art_pred.tolist() == ours.prediction.tolist()
    true_p = stats.norm.cdf(np.abs(distance.numpy()) / sigma)
    sd = np.sqrt(true_p * (1 - true_p) / n)
    # both radii estimate the same quantity from n samples: within 2 x 5 sd of vote share of each other
    band = sigma * (stats.norm.ppf(np.minimum(true_p + 5 * sd, 1 - 1e-9)) - stats.norm.ppf(true_p - 5 * sd))
    assert np.all(np.abs(art_radius - ours.radius.numpy()) <= band)
