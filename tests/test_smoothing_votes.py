"""robustness.smoothing_votes: one image's votes under noise, against closed forms.

The base classifiers are tiny hand-made modules whose vote shares under ``N(0, sigma^2 I)`` noise are
known exactly, so the counts can be checked against the binomial distribution; each test takes well
under a second.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from labutils import robustness
from labutils.robustness import ABSTAIN, SmoothedClassifier, clopper_pearson_lower, smoothing_votes

SHAPE = (1, 4, 4)
D = math.prod(SHAPE)


class MeanTwoClass(nn.Module):
    """Class 1 where the image's pixel mean exceeds ``threshold``.  With noise of standard deviation sigma per
    pixel the mean's noise has standard deviation ``sigma / sqrt(D)``, so class 1's share is
    ``Phi((mean - threshold) / (sigma / sqrt(D)))``."""

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(threshold))

    def forward(self, x):
        s = x.flatten(1).mean(1) - self.threshold
        return torch.stack([-s, s], dim=1)


class FirstPixelBuckets(nn.Module):
    """Class ``i`` where the (noisy) first pixel falls in the i-th interval cut by ``cuts``: ``len(cuts) + 1``
    classes, with shares given by the normal CDF at the cuts."""

    def __init__(self, cuts):
        super().__init__()
        self.register_buffer("cuts", torch.tensor(cuts, dtype=torch.float32))

    def forward(self, x):
        bucket = torch.bucketize(x[:, 0, 0, 0].contiguous(), self.cuts)
        return nn.functional.one_hot(bucket, len(self.cuts) + 1).float()


def constant_image(value: float) -> torch.Tensor:
    return torch.full(SHAPE, float(value))


@pytest.mark.parametrize("sigma, mean", [(0.25, 0.55), (0.5, 0.62)])
def test_vote_share_matches_the_normal_cdf_and_the_radius_follows(sigma, mean):
    n, alpha = 3000, 0.001
    image = constant_image(mean)
    votes = smoothing_votes(MeanTwoClass(0.5), image, sigma, n, num_classes=2, alpha=alpha, seed=1)
    counts = votes["counts"]
    assert counts.dtype == torch.int64 and counts.shape == (2,) and int(counts.sum()) == n == votes["n"]
    p = stats.norm.cdf((mean - 0.5) / (sigma / math.sqrt(D)))
    assert abs(int(counts[1]) / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
    assert votes["top"] == 1 and votes["prediction"] == 1
    assert votes["p_lower"] == pytest.approx(float(clopper_pearson_lower(int(counts[1]), n, alpha)), abs=1e-15)
    assert votes["p_lower"] <= p  # a 1 - alpha bound (deterministic under the seed)
    assert votes["radius"] == pytest.approx(sigma * stats.norm.ppf(votes["p_lower"]), rel=1e-12)
    # the smoothed classifier's true radius is the L2 distance to the hyperplane {mean = 0.5}: (mean - 0.5) * sqrt(D)
    assert 0 < votes["radius"] <= (mean - 0.5) * math.sqrt(D)


def test_the_same_votes_as_predict_and_sample_counts():
    model, image, sigma, n, alpha = MeanTwoClass(0.5), constant_image(0.52), 0.5, 400, 0.01
    votes = smoothing_votes(model, image, sigma, n, num_classes=2, alpha=alpha, seed=5)
    smoothed = SmoothedClassifier(model, 2, sigma, seed=5)
    assert torch.equal(votes["counts"], smoothed.sample_counts(image[None], n, stage="predict")[0])
    assert votes["prediction"] == int(smoothed.predict(image[None], n, alpha)[0])
    again = smoothing_votes(model, image, sigma, n, num_classes=2, alpha=alpha, seed=5)
    assert torch.equal(again["counts"], votes["counts"]) and torch.equal(again["copies"], votes["copies"])
    other = smoothing_votes(model, image, sigma, n, num_classes=2, alpha=alpha, seed=6)
    assert not torch.equal(other["copies"], votes["copies"])


def test_copies_are_the_first_inputs_the_base_classifier_votes_on():
    seen = []

    class Spy(MeanTwoClass):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    image, sigma = constant_image(0.5), 0.5
    votes = smoothing_votes(Spy(0.5), image, sigma, 300, num_classes=2, n_show=6)
    copies = votes["copies"]
    assert copies.dtype == torch.float32 and copies.shape == (6, *SHAPE)
    assert torch.equal(copies, seen[0][:6])
    assert (copies < 0).any() or (copies > 1).any()  # not clipped
    assert float((copies - image).std()) == pytest.approx(sigma, rel=0.25)


def test_balanced_votes_abstain_with_radius_zero():
    n = 1000
    votes = smoothing_votes(FirstPixelBuckets([0.5]), constant_image(0.5), 0.25, n, num_classes=2, alpha=0.001)
    share = int(votes["counts"][0]) / n
    assert abs(share - 0.5) <= 5 * math.sqrt(0.25 / n)
    assert votes["prediction"] == ABSTAIN
    assert votes["p_lower"] < 0.5 and votes["radius"] == 0.0


def test_predict_may_name_a_class_whose_share_gives_no_radius():
    """Votes split 45 / 30 / 25 %: PREDICT's top-two test names class 0, but its share is below one half."""
    sigma, n = 0.25, 2000
    cuts = [0.5 + sigma * stats.norm.ppf(0.45), 0.5 + sigma * stats.norm.ppf(0.75)]
    votes = smoothing_votes(FirstPixelBuckets(cuts), constant_image(0.5), sigma, n, num_classes=3, seed=2)
    shares = votes["counts"].numpy() / n
    assert np.all(np.abs(shares - [0.45, 0.30, 0.25]) <= 5 * np.sqrt(0.25 / n))
    assert votes["prediction"] == votes["top"] == 0
    assert votes["p_lower"] < 0.5 and votes["radius"] == 0.0


def test_input_and_model_state_are_kept():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(2 * 4, 3))
    model.train()
    model[0].weight.requires_grad_(False)
    image = torch.rand(SHAPE)
    image0, running0 = image.clone(), model[1].running_mean.clone()
    a = smoothing_votes(model, image, 0.25, 100, num_classes=3)
    b = smoothing_votes(model, image, 0.25, 100, num_classes=3)
    assert torch.equal(a["counts"], b["counts"])  # eval mode while voting: dropout off
    assert model.training and model[1].training and model[3].training
    assert not model[0].weight.requires_grad and model[4].weight.requires_grad
    assert torch.equal(image, image0) and torch.equal(model[1].running_mean, running0)
    assert all(p.grad is None for p in model.parameters())


def test_exported_from_robustness():
    assert robustness.smoothing_votes is smoothing_votes and "smoothing_votes" in robustness.__all__


@pytest.mark.parametrize("change, error, match", [
    ({"sigma": 0.0}, ValueError, "sigma must be a positive"),
    ({"sigma": -0.5}, ValueError, "sigma must be a positive"),
    ({"sigma": float("nan")}, ValueError, "sigma must be a positive"),
    ({"image": torch.full((1, *SHAPE), 0.5)}, ValueError, r"ONE image \(C, H, W\)"),
    ({"image": torch.full(SHAPE, 2.0)}, ValueError, r"\[0, 1\]"),
    ({"image": torch.full(SHAPE, 128, dtype=torch.uint8)}, TypeError, "floating point"),
    ({"n": 0}, ValueError, "n must be a positive integer"),
    ({"n_show": 0}, ValueError, "n_show must be a positive integer"),
    ({"n": 5, "n_show": 8}, ValueError, r"n_show must be at most min\(n, 128\) = 5"),
    ({"alpha": 1.5}, ValueError, "alpha"),
    ({"num_classes": 1}, ValueError, "num_classes"),
])
def test_bad_arguments_are_rejected(change, error, match):
    call = {"image": constant_image(0.5), "sigma": 0.25, "n": 50, "num_classes": 2, "n_show": 4} | change
    with pytest.raises(error, match=match):
        smoothing_votes(MeanTwoClass(), call.pop("image"), call.pop("sigma"), call.pop("n"), **call)
