"""labutils.uncertainty.calibration: ECE and reliability table by hand and against scikit-learn, temperature scaling."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from labutils.uncertainty import calibration as cal


def test_reliability_table_and_ece_by_hand():
    # 5 bins: [0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    conf = [0.1, 0.3, 0.4, 0.9, 0.95, 1.0, 0.2]
    right = [False, True, False, True, True, False, True]
    t = cal.reliability_table(conf, right, n_bins=5)
    np.testing.assert_allclose(t["lower"], [0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(t["upper"], [0.2, 0.4, 0.6, 0.8, 1.0])
    # 0.2 sits on an edge -> bin [0, .2]; 0.4 -> bin (.2, .4]
    np.testing.assert_array_equal(t["count"], [2, 2, 0, 0, 3])
    np.testing.assert_allclose(t["confidence"][[0, 1, 4]], [0.15, 0.35, 0.95])
    np.testing.assert_allclose(t["accuracy"][[0, 1, 4]], [0.5, 0.5, 2 / 3])
    assert np.isnan(t["confidence"][2]) and np.isnan(t["accuracy"][3])
    # ECE = 2/7 |0.5 - 0.15| + 2/7 |0.5 - 0.35| + 3/7 |2/3 - 0.95|
    #     = 2/7 * 0.35 + 2/7 * 0.15 + 3/7 * 0.28333... = 0.1 + 0.042857 + 0.121429 = 0.264286
    expected = (2 * 0.35 + 2 * 0.15 + 3 * (0.95 - 2 / 3)) / 7
    assert expected == pytest.approx(0.264286, abs=1e-6)
    assert cal.expected_calibration_error(conf, right, n_bins=5) == pytest.approx(expected)
    # one bin: |accuracy - mean confidence| = |4/7 - 3.85/7|
    assert cal.expected_calibration_error(conf, right, n_bins=1) == pytest.approx(abs(4 - 3.85) / 7)


def test_reliability_table_agrees_with_scikit_learn():
    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.random(500), np.linspace(0, 1, 16)])  # includes every bin edge for 15 bins
    right = rng.random(len(conf)) < conf
    t = cal.reliability_table(torch.as_tensor(conf), torch.as_tensor(right), n_bins=15)
    prob_true, prob_pred = calibration_curve(right, conf, n_bins=15, strategy="uniform")
    full = t["count"] > 0
    np.testing.assert_allclose(t["accuracy"][full], prob_true)
    np.testing.assert_allclose(t["confidence"][full], prob_pred)
    assert t["count"].sum() == len(conf)


def test_ece_of_calibrated_and_overconfident_samples():
    rng = np.random.default_rng(1)
    conf = rng.random(50_000)
    right = rng.random(50_000) < conf  # P(right | confidence c) = c: calibrated
    assert cal.expected_calibration_error(conf, right) < 0.015
    over = rng.random(50_000) < conf - 0.1  # 10 points less accurate than it claims
    assert cal.expected_calibration_error(conf, over) == pytest.approx(0.1, abs=0.02)


def _overconfident_logits(n=6000, k=10, temperature=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    true_logits = 1.5 * torch.randn(n, k, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    return true_logits * temperature, labels


def test_fit_temperature_recovers_a_known_temperature_and_lowers_nll():
    logits, labels = _overconfident_logits()
    T = cal.fit_temperature(logits.float(), labels)
    assert T == pytest.approx(3.0, rel=0.08)
    before = cal.negative_log_likelihood(logits, labels)
    after = cal.negative_log_likelihood(cal.apply_temperature(logits, T), labels)
    assert after < before - 0.1
    assert after == pytest.approx(cal.negative_log_likelihood(logits, labels, T=T))
    for other in (T * 0.9, T * 1.1):  # T is the minimum on its fitting split
        assert after <= cal.negative_log_likelihood(logits, labels, T=other)
    conf, right = cal.confidence_and_correct(logits, labels)
    conf_t, right_t = cal.confidence_and_correct(cal.apply_temperature(logits, T), labels)
    assert torch.equal(right, right_t)  # predictions unchanged
    assert cal.expected_calibration_error(conf_t, right_t) < cal.expected_calibration_error(conf, right)


def test_fit_temperature_at_the_end_of_its_range_and_with_nothing_to_fit():
    logits = -torch.eye(4) * 5  # the label always has the lowest logit: flatter is always better
    with pytest.warns(RuntimeWarning, match="end of the searched range"):
        T = cal.fit_temperature(logits, torch.arange(4))
    assert T == pytest.approx(cal.TEMPERATURE_RANGE[1], rel=0.01)
    with pytest.raises(ValueError, match="at least one misclassified"):
        cal.fit_temperature(torch.eye(4) * 5, torch.arange(4))  # every sample right: T -> 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal.fit_temperature(*_overconfident_logits(n=500))


def test_nll_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    # p(label) = 1/2 and 3/4
    assert cal.negative_log_likelihood(logits, [0, 0]) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        cal.expected_calibration_error([0.5, 1.2], [True, False])
    with pytest.raises(ValueError, match="same length"):
        cal.expected_calibration_error([0.5, 0.7], [True])
    with pytest.raises(ValueError, match="NaN"):
        cal.reliability_table([0.5, math.nan], [True, False])
    with pytest.raises(ValueError, match="empty"):
        cal.expected_calibration_error([], [])
    with pytest.raises(ValueError, match="n_bins"):
        cal.expected_calibration_error([0.5], [True], n_bins=0)
    with pytest.raises(ValueError, match="booleans"):
        cal.expected_calibration_error([0.5, 0.6], [0.5, 1])
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"class indices in 0..2"):
        cal.fit_temperature(z, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        cal.fit_temperature(z, [0, 1])
    with pytest.raises(ValueError, match="integer"):
        cal.negative_log_likelihood(z, torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        cal.fit_temperature(torch.randn(4), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        cal.fit_temperature(torch.tensor([[0.0, math.nan]]), [0])
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="temperature"):
            cal.apply_temperature(z, bad)
