"""Figures of notebook 09 (robustness as survival)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402

from labutils.robustness import acceleration_factors, fit_aft  # noqa: E402
from labutils.viz import plots  # noqa: E402


def test_kaplan_meier_curves_follow_the_product_limit_estimate():
    d = np.array([1, 2, 2, 3, 4, 4, 4, 5], float)
    e = np.array([1, 1, 0, 1, 0, 1, 1, 0])
    fig = plots.kaplan_meier_curves({"a": (d, e), "b": (d + 1, np.ones(8))}, xlabel="eps (x 1/255)")
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    # by hand: S(1) = 7/8, S(2) = 7/8 * 6/7, S(3) = that * 4/5, S(4) = that * 2/4 (4 at risk, 2 events)
    s1 = 7 / 8
    s2 = s1 * 6 / 7
    s3 = s2 * 4 / 5
    s4 = s3 * 2 / 4
    ys = dict(zip(line.get_xdata(), line.get_ydata()))
    assert np.allclose([ys[1.0], ys[2.0], ys[3.0], ys[4.0]], [s1, s2, s3, s4])
    km = KaplanMeierFitter().fit(d, e)
    assert np.isclose(ys[4.0], float(km.survival_function_at_times(4.0).iloc[0]))
    assert ax.get_xlabel() == "eps (x 1/255)" and "not yet flipped" in ax.get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="durations > 0"):
        plots.kaplan_meier_curves({"a": (np.array([0.0, 1.0]), np.array([1, 1]))})


def _frame(seed=0, n=300):
    rng = np.random.default_rng(seed)
    depth = rng.choice([8.0, 14.0, 20.0], n)
    adv = rng.integers(0, 2, n).astype(float)
    t = np.exp(-3 + 0.01 * depth + 0.8 * adv) * rng.weibull(2.0, n)
    cap = np.quantile(t, 0.85)
    return pd.DataFrame({"duration": np.minimum(t, cap), "event": t <= cap, "depth": depth, "adversarial": adv})


def test_acceleration_factor_and_predicted_survival_plots():
    df = _frame()
    fits = fit_aft(df, models=("weibull", "lognormal"))
    factors = {name: acceleration_factors(fit) for name, fit in fits.items()}
    fig = plots.acceleration_factor_plot(factors, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["adversarial", "depth"]  # lifelines sorts covariates
    assert ax.get_xscale() == "log" and "time ratio" in ax.get_xlabel()
    plt.close(fig)
    rows = pd.DataFrame({"depth": [8.0, 20.0], "adversarial": [0.0, 1.0]}, index=["r8", "r20 adv"])
    fig = plots.predicted_survival_curves(fits["weibull"], rows, xlabel="eps")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and all(np.all(np.diff(ln.get_ydata()) <= 1e-12) for ln in lines)  # non-increasing
    assert lines[1].get_ydata()[50] > lines[0].get_ydata()[50]  # adversarial + deeper survives longer
    plt.close(fig)


def test_cost_vs_survival_labels_points_and_names_missing_columns():
    table = pd.DataFrame({"model": ["a", "b"], "train_seconds_per_sample": [1e-3, 3e-3],
                          "expected_seconds_to_failure": [2e-3, 2.5e-3]})
    fig = plots.cost_vs_survival(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["a", "b"] and ax.get_xscale() == "log"
    assert "(s)" in ax.get_xlabel() and "(s)" in ax.get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="no column 'cost'"):
        plots.cost_vs_survival(table, x="cost")
