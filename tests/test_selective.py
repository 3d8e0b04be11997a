"""labutils.selective: risk-coverage and AURC against brute force (with ties), AURC*, coverage thresholds, SGR."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom
from sklearn.metrics import precision_recall_curve, roc_curve

from labutils import selective
from labutils.uncertainty import scores as unc_scores


def _tied_data(seed: int, n: int = 9, levels: int = 4):
    """Scores with many ties (few distinct values), imperfect and asymmetric correctness."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, levels, n).astype(np.float64) * 0.25
    p_right = 0.35 + 0.5 * s  # more confident -> more often right, but not always
    ok = rng.random(n) < p_right
    return s, ok


def _aurc_of_order(ok_in_order: np.ndarray) -> float:
    err = np.cumsum(~ok_in_order)
    return float(np.mean(err / np.arange(1, len(err) + 1)))


def _brute_force_aurc(s: np.ndarray, ok: np.ndarray) -> float:
    """Mean AURC over every order of the tied samples (all permutations inside each tied group)."""
    groups = [np.flatnonzero(s == v) for v in sorted(set(s.tolist()), reverse=True)]
    per_group = [list(itertools.permutations(g)) for g in groups]
    values = [_aurc_of_order(ok[np.concatenate(choice)]) for choice in itertools.product(*per_group)]
    return float(np.mean(values))


@pytest.mark.parametrize("seed", range(6))
def test_risk_coverage_curve_matches_brute_force_with_ties(seed):
    s, ok = _tied_data(seed, n=25)
    cov, risk, thr = selective.risk_coverage_curve(torch.as_tensor(s), torch.as_tensor(ok))
    distinct = np.unique(s)[::-1]
    np.testing.assert_array_equal(thr, distinct)
    for c, r, t in zip(cov, risk, thr):
        acc = s >= t
        assert c == pytest.approx(acc.mean())
        assert r == pytest.approx((~ok[acc]).mean())
    assert cov[-1] == 1.0 and risk[-1] == pytest.approx((~ok).mean())
    assert np.all(np.diff(cov) > 0)


def test_risk_coverage_curve_agrees_with_scikit_learn():
    """Risk = 1 - precision (correct = positive class); coverage = accepted fraction from the ROC counts."""
    rng = np.random.default_rng(7)
    s = np.round(rng.random(300), 2)  # ties
    ok = rng.random(300) < 0.3 + 0.6 * s
    cov, risk, thr = selective.risk_coverage_curve(s, ok)
    prec, _, sk_thr = precision_recall_curve(ok, s)
    for p, t in zip(prec[:-1], sk_thr):  # the last precision is sklearn's (recall 0, precision 1) end point
        assert risk[thr == t][0] == pytest.approx(1 - p)
    fpr, tpr, roc_thr = roc_curve(ok, s, drop_intermediate=False)
    accepted = (tpr * ok.sum() + fpr * (~ok).sum()) / len(s)
    np.testing.assert_allclose(cov, accepted[1:])  # sklearn starts with +inf (nothing accepted)
    np.testing.assert_array_equal(thr, roc_thr[1:])


@pytest.mark.parametrize("seed", range(8))
def test_aurc_is_the_expected_value_over_orders_of_ties(seed):
    s, ok = _tied_data(seed, n=9, levels=4)
    assert selective.aurc(s, ok) == pytest.approx(_brute_force_aurc(s, ok), abs=1e-12)


def test_aurc_with_distinct_scores_is_the_plain_formula_and_order_free():
    rng = np.random.default_rng(3)
    s = rng.normal(size=200)
    ok = rng.random(200) < 0.8
    order = np.argsort(-s)
    expected = _aurc_of_order(ok[order])
    assert selective.aurc(s, ok) == pytest.approx(expected, abs=1e-12)
    perm = rng.permutation(200)
    assert selective.aurc(s[perm], ok[perm]) == pytest.approx(expected, abs=1e-12)
    # mean of the risks at coverages 1/N..1 = mean of the curve's risks when all scores differ
    _, risk, _ = selective.risk_coverage_curve(s, ok)
    assert selective.aurc(s, ok) == pytest.approx(risk.mean(), abs=1e-12)


def test_aurc_of_one_tied_group_is_the_error_rate():
    ok = np.array([True, False, True, True, False])
    assert selective.aurc(np.ones(5), ok) == pytest.approx(0.4)


def test_optimal_aurc_formula_and_perfect_ranking():
    assert selective.optimal_aurc(0.0) == 0.0
    assert selective.optimal_aurc(1.0) == 1.0
    r = 0.2
    assert selective.optimal_aurc(r) == pytest.approx(r + (1 - r) * math.log(1 - r))
    for n, k in [(10, 1), (50, 10), (1000, 73), (7, 7)]:
        ok = np.arange(n) >= k  # the k errors get the lowest scores
        s = np.arange(n, dtype=np.float64)
        exact = selective.aurc(s, ok)
        # the exact optimum for N samples, written out
        assert exact == pytest.approx(sum((i - (n - k)) / i for i in range(n - k + 1, n + 1)) / n)
        assert selective.optimal_aurc(k / n, n_samples=n) == pytest.approx(exact)
        # the formula is the large-N limit: below the exact value by at most r / (2N)
        gap = exact - selective.optimal_aurc(k / n)
        assert -1e-12 <= gap <= (k / n) / (2 * n) + 1e-12
        assert 0 <= selective.excess_aurc(s, ok) == pytest.approx(gap)
    # a large perfect ranking: AURC = AURC* to within 1e-4
    ok = np.arange(20000) >= 3000
    assert selective.aurc(np.arange(20000.0), ok) == pytest.approx(selective.optimal_aurc(0.15), abs=1e-4)


def test_excess_aurc_is_larger_for_a_worse_ranking():
    rng = np.random.default_rng(1)
    ok = rng.random(500) < 0.7
    good = ok + 0.8 * rng.random(500)  # mostly right ordering
    bad = rng.random(500)  # random ordering
    assert 0 <= selective.excess_aurc(good, ok) < selective.excess_aurc(bad, ok)


def test_threshold_for_coverage_and_tie_rule():
    s = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.1])
    assert selective.threshold_for_coverage(s, 1 / 6) == 0.9
    # 2 of 6 wanted: the tied 0.8s come in together -> coverage 4/6
    t = selective.threshold_for_coverage(s, 2 / 6)
    assert t == 0.8 and np.mean(s >= t) == pytest.approx(4 / 6)
    assert selective.threshold_for_coverage(s, 1.0) == 0.1
    assert selective.threshold_for_coverage(s, 0.95 * 6 / 6) == 0.1
    rng = np.random.default_rng(0)
    x = np.round(rng.random(301), 1)
    for c in (0.05, 0.3, 0.5, 0.95, 1.0):
        t = selective.threshold_for_coverage(x, c)
        assert np.mean(x >= t) >= c - 1e-12
        bigger = x[x > t]
        if len(bigger):
            assert np.mean(x >= bigger.min()) < c


def test_selective_risk_and_accuracy_at_coverage():
    s = torch.tensor([0.9, 0.8, 0.8, 0.8, 0.5, 0.1])
    ok = torch.tensor([True, True, False, True, False, False])
    assert selective.selective_risk(s, ok, 0.8) == (pytest.approx(4 / 6), pytest.approx(1 / 4))
    cov, risk = selective.selective_risk(s, ok, math.inf)
    assert cov == 0.0 and math.isnan(risk)
    assert selective.selective_risk(s, ok, -math.inf) == (1.0, pytest.approx(0.5))
    assert selective.selective_accuracy_at_coverage(s, ok, 0.3) == pytest.approx(0.75)
    assert selective.selective_accuracy_at_coverage(s, ok, 1.0) == pytest.approx(0.5)
    assert selective.selective_accuracy_at_coverage(s.numpy(), ok.numpy().astype(int), 0.1) == 1.0


def test_confidence_scores_reuse_uncertainty_scores():
    z = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(selective.confidence_scores(z), unc_scores.max_softmax(z))
    torch.testing.assert_close(selective.confidence_scores(z, "neg_entropy"), unc_scores.neg_entropy(z))
    torch.testing.assert_close(selective.confidence_scores(z.numpy(), "max_logit"), unc_scores.max_logit(z))
    torch.testing.assert_close(selective.confidence_scores(z, lambda t: -t[:, 0]), -z[:, 0])
    with pytest.raises(ValueError, match="kind must be one of"):
        selective.confidence_scores(z, "msp2")
    with pytest.raises(ValueError, match="one score per row"):
        selective.confidence_scores(z, lambda t: t)


def test_risk_upper_bound_is_clopper_pearson():
    for k, n, d in [(0, 10, 0.05), (3, 40, 0.01), (17, 200, 0.001), (5, 5, 0.1)]:
        b = selective.risk_upper_bound(k, n, d)
        assert k / n <= b <= 1
        if k < n:
            assert binom.cdf(k, n, b) == pytest.approx(d, rel=1e-6)
    assert selective.risk_upper_bound(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert selective.risk_upper_bound(2, 50, 0.05) < selective.risk_upper_bound(3, 50, 0.05)


def _draw(rng, n):
    """Scores U(0, 1), P(error | s) = 0.6 (1 - s): true selective risk at threshold t is 0.3 (1 - t)."""
    s = rng.random(n)
    return s, rng.random(n) >= 0.6 * (1 - s)


def _true_risk(t: float) -> float:
    return 0.3 * (1 - min(max(t, 0.0), 1.0))


def test_sgr_guarantee_holds_in_at_least_1_minus_delta_of_draws():
    target, delta, draws = 0.15, 0.1, 200
    rng = np.random.default_rng(2024)
    held, found, naive_held = 0, 0, 0
    for _ in range(draws):
        s, ok = _draw(rng, 1000)
        res = selective.guaranteed_risk_threshold(s, ok, target, delta)
        found += res.found
        held += (not res.found) or _true_risk(res.threshold) <= target
        if res.found:
            assert res.risk <= res.risk_bound <= target and 0 < res.coverage <= 1
            assert res.n_tests <= math.ceil(math.log2(1000 + 1))
            assert res.delta_per_test == pytest.approx(delta / math.ceil(math.log2(1001)))
        # the test can fail: the largest coverage with empirical risk <= target, with no bound
        cov, risk, thr = selective.risk_coverage_curve(s, ok)
        naive_held += _true_risk(thr[np.flatnonzero(risk <= target).max()]) <= target
    assert held >= (1 - delta) * draws
    assert found >= 0.95 * draws  # not vacuous: it does find a threshold
    assert naive_held < 0.8 * draws  # without the bound the target is missed often


def test_sgr_edge_cases():
    s = np.linspace(0, 1, 1000)
    res = selective.guaranteed_risk_threshold(s, np.ones(1000, bool), 0.05, 0.1)
    assert res.found and res.coverage == 1.0 and res.risk == 0.0 and res.threshold == 0.0
    res = selective.guaranteed_risk_threshold(s, np.zeros(1000, bool), 0.5, 0.1)
    assert not res.found and res.threshold == math.inf and res.coverage == 0.0 and math.isnan(res.risk_bound)
    assert "no tested threshold" in res.note
    # too few samples to guarantee 1 % even with no error
    res = selective.guaranteed_risk_threshold(np.arange(20.0), np.ones(20, bool), 0.01, 0.05)
    assert not res.found
    # all scores tied: one candidate, one test
    res = selective.guaranteed_risk_threshold(np.ones(500), np.arange(500) % 10 != 0, 0.2, 0.05)
    assert res.found and res.n_tests == 1 and res.coverage == 1.0 and res.risk == pytest.approx(0.1)


@pytest.mark.parametrize("call", [
    lambda s, ok: selective.risk_coverage_curve(s, ok[:-1]),
    lambda s, ok: selective.aurc(s, ok[:-1]),
    lambda s, ok: selective.guaranteed_risk_threshold(s, ok[:-1], 0.1, 0.1),
])
def test_lengths_must_match(call):
    s, ok = np.arange(5.0), np.ones(5, bool)
    with pytest.raises(ValueError, match="same length"):
        call(s, ok)


def test_bad_inputs():
    s, ok = np.arange(5.0), np.ones(5, bool)
    with pytest.raises(ValueError, match="NaN"):
        selective.aurc(np.array([0.1, np.nan, 0.3, 0.2, 0.5]), ok)
    with pytest.raises(ValueError, match="empty"):
        selective.risk_coverage_curve([], [])
    with pytest.raises(ValueError, match="1-D"):
        selective.aurc(np.ones((5, 2)), ok)
    with pytest.raises(ValueError, match="booleans"):
        selective.aurc(s, np.array([0, 1, 2, 1, 0]))
    for bad in (0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\]"):
            selective.threshold_for_coverage(s, bad)
        with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\]"):
            selective.selective_accuracy_at_coverage(s, ok, bad)
        with pytest.raises(ValueError, match=r"delta must be in \(0, 1\]"):
            selective.guaranteed_risk_threshold(s, ok, 0.1, bad)
        with pytest.raises(ValueError, match=r"target_risk must be in \(0, 1\]"):
            selective.guaranteed_risk_threshold(s, ok, bad, 0.1)
    with pytest.raises(ValueError, match="threshold is NaN"):
        selective.selective_risk(s, ok, math.nan)
    with pytest.raises(ValueError, match="error_rate"):
        selective.optimal_aurc(1.2)
    with pytest.raises(ValueError, match="whole number"):
        selective.optimal_aurc(0.15, n_samples=10)


@pytest.mark.parametrize("m", [1000, 1024, 37])
def test_sgr_union_bound_counts_the_samples_not_the_distinct_scores(m):
    """Geifman & El-Yaniv divide delta by ceil(log2 m) for m samples; ties (max-softmax rounding to 1.0) must not
    shrink the divisor.  Here m samples with only three distinct scores."""
    rng = np.random.default_rng(m)
    s = rng.choice([0.5, 0.9, 1.0], size=m, p=[0.1, 0.2, 0.7])
    ok = rng.random(m) > np.where(s == 1.0, 0.01, 0.3)
    res = selective.guaranteed_risk_threshold(s, ok, 0.2, 0.01)
    assert res.delta_per_test == pytest.approx(0.01 / math.ceil(math.log2(m + 1)))
    assert res.delta_per_test <= 0.01 / math.ceil(math.log2(m))  # never less conservative than the paper
    assert res.n_tests <= 2  # the search over three candidates is short; the bound still covers m


def test_guarantee_failure_rate_repeats_sgr_on_the_documented_splits():
    """Split i is the i-th permutation of np.random.default_rng(seed); a split fails when SGR found a threshold and
    the evaluation part's risk is above the target.  A loose delta on a small pool makes some splits fail."""
    s, ok = _draw(np.random.default_rng(5), 200)
    res = selective.guarantee_failure_rate(s, ok, 0.15, 1.0, n_splits=50, calibration_fraction=0.5, seed=1)
    rng = np.random.default_rng(1)
    failed, found = 0, 0
    for i in range(50):
        perm = rng.permutation(200)
        cal, ev = perm[:100], perm[100:]
        g = selective.guaranteed_risk_threshold(s[cal], ok[cal], 0.15, 1.0)
        cov, risk = selective.selective_risk(s[ev], ok[ev], g.threshold)
        assert res.thresholds[i] == g.threshold and res.coverages[i] == pytest.approx(cov)
        assert (math.isnan(res.risks[i]) and math.isnan(risk)) or res.risks[i] == pytest.approx(risk)
        found += g.found
        failed += g.found and cov > 0 and risk > 0.15
    assert res.found_rate == pytest.approx(found / 50) and res.failure_rate == pytest.approx(failed / 50)
    assert 0 < failed < found  # the counting is exercised: some splits fail, some hold
    assert (res.n_calibration, res.n_evaluation, res.target_risk, res.delta) == (100, 100, 0.15, 1.0)
    assert np.all(res.coverages[np.isinf(res.thresholds)] == 0)  # nothing found: nothing accepted


def test_guarantee_failure_rate_on_a_distribution_with_known_risk():
    """_draw's true selective risk at t is 0.3 (1 - t): target 0.15 needs t >= 0.5, so no threshold that keeps the
    guarantee covers more than half.  The failure rate stays within delta, on held-out data and on the true risk."""
    target, delta = 0.15, 0.1
    s, ok = _draw(np.random.default_rng(11), 40_000)
    res = selective.guarantee_failure_rate(s, ok, target, delta, n_splits=100, calibration_fraction=0.05, seed=0)
    assert (res.n_calibration, res.n_evaluation) == (2000, 38_000) and len(res.coverages) == 100
    assert res.found_rate >= 0.95  # not vacuous
    assert res.failure_rate <= delta
    assert np.mean([_true_risk(t) > target for t in res.thresholds[np.isfinite(res.thresholds)]]) <= delta
    assert 0.2 < res.coverages.mean() < 0.5 + 0.01  # below the oracle's coverage (0.5), plus sampling noise
    # the same splits with a target far below any achievable risk: nothing is found, nothing fails
    none = selective.guarantee_failure_rate(s, ok, 1e-4, delta, n_splits=5, calibration_fraction=0.05, seed=0)
    assert none.found_rate == 0 and none.failure_rate == 0 and np.all(none.coverages == 0)
    assert np.all(np.isnan(none.risks))


def test_guarantee_failure_rate_bad_inputs():
    s, ok = np.arange(10.0), np.ones(10, bool)
    for bad in (0, 1, 1.5, -0.2, 0.01, 0.99):  # 0.01 and 0.99 of 10 samples leave a part empty
        with pytest.raises(ValueError, match="calibration_fraction"):
            selective.guarantee_failure_rate(s, ok, 0.1, 0.1, calibration_fraction=bad)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_splits"):
            selective.guarantee_failure_rate(s, ok, 0.1, 0.1, n_splits=bad)
    with pytest.raises(ValueError, match="target_risk"):
        selective.guarantee_failure_rate(s, ok, 0.0, 0.1)
    with pytest.raises(ValueError, match="delta"):
        selective.guarantee_failure_rate(s, ok, 0.1, 1.5)
