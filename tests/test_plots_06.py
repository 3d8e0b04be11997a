"""plots.risk_coverage_curves and plots.reliability_diagram: notebook 06's selective-classification and calibration figures.

Synthetic scores (no model): each test takes well under a second.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import re  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labutils import selective  # noqa: E402
from labutils.uncertainty import (apply_temperature, confidence_and_correct, expected_calibration_error,  # noqa: E402
                                  fit_temperature, reliability_table)
from labutils.viz import plots  # noqa: E402


def _scored(n, skill, seed, ties=False):
    """Scores that rank right predictions higher by ``skill``; ``ties`` rounds them so groups share a score."""
    rng = np.random.default_rng(seed)
    correct = rng.random(n) < 0.8
    scores = rng.normal(0, 1, n) + skill * correct
    return (np.round(scores, 1) if ties else scores), correct


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _number(text: str, key: str) -> float:
    return float(re.search(re.escape(key) + r"\s*=\s*([-0-9.]+)", text).group(1))


def test_risk_coverage_curves_lines_axes_and_aurc_in_the_legend():
    clean, attacked = _scored(300, 2.0, 0, ties=True), _scored(200, 0.5, 1)
    curves = {"clean": (torch.tensor(clean[0]), torch.tensor(clean[1])), "PGD 8/255": attacked}
    fig = plots.risk_coverage_curves(curves, show_eaurc=True, title="hybrid")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "coverage (%)" and ax.get_ylabel() == "selective risk (%)"
    assert ax.get_xlim() == (0, 100) and ax.get_ylim()[0] == 0 and ax.get_title() == "hybrid"
    for line, (scores, correct) in zip(ax.lines[:2], (clean, attacked)):
        coverage, risk, _ = selective.risk_coverage_curve(scores, correct)
        assert np.allclose(line.get_xdata(), 100 * coverage) and np.allclose(line.get_ydata(), 100 * risk)
    texts = _legend(ax)
    assert [t.split(" (")[0] for t in texts] == ["clean", "PGD 8/255"]
    for text, (scores, correct) in zip(texts, (clean, attacked)):
        assert _number(text, "AURC ×1000") == pytest.approx(1000 * selective.aurc(scores, correct), abs=0.05)
        assert _number(text, "E-AURC ×1000") == pytest.approx(1000 * selective.excess_aurc(scores, correct), abs=0.05)
    # the worse ranking has the larger AURC in the legend
    assert _number(texts[1], "AURC ×1000") > _number(texts[0], "AURC ×1000")


def test_risk_coverage_markers_at_thresholds_and_target_coverages():
    clean, attacked = _scored(300, 2.0, 0), _scored(200, 0.5, 1)
    t = selective.threshold_for_coverage(clean[0], 0.8)  # chosen on clean data, applied to both
    fig = plots.risk_coverage_curves({"clean": clean, "attacked": attacked}, thresholds={"clean": t, "attacked": [t]},
                                     coverages=[0.5, 0.9])
    ax = fig.axes[0]
    markers = {line.get_label(): line for line in ax.lines[2:] if line.get_marker() in ("o", "s")}
    for label, (scores, correct) in (("clean", clean), ("attacked", attacked)):
        cov, risk = selective.selective_risk(scores, correct, t)
        line = markers[f"_{label} thresholds"]
        assert np.allclose(line.get_xdata(), [100 * cov]) and np.allclose(line.get_ydata(), [100 * risk])
        squares = markers[f"_{label} at target coverages"]
        expected = [selective.selective_risk(scores, correct, selective.threshold_for_coverage(scores, c))
                    for c in (0.5, 0.9)]
        assert np.allclose(squares.get_xdata(), [100 * c for c, _ in expected])
        assert np.allclose(squares.get_ydata(), [100 * r for _, r in expected])
    assert markers["_clean thresholds"].get_xdata()[0] == pytest.approx(80, abs=0.5)
    vlines = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert sorted(line.get_xdata()[0] for line in vlines) == pytest.approx([50, 90])
    assert "target coverage" in _legend(ax) and any(f"t = {t:.3g}" == a.get_text() for a in ax.texts)


def test_risk_coverage_curves_errors():
    with pytest.raises(ValueError, match="non-empty mapping"):
        plots.risk_coverage_curves({})
    with pytest.raises(ValueError, match="pair"):
        plots.risk_coverage_curves({"a": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="same length"):
        plots.risk_coverage_curves({"a": ([0.1, 0.2], [True])})
    with pytest.raises(ValueError, match="not in curves"):
        plots.risk_coverage_curves({"a": ([0.1, 0.2], [True, False])}, thresholds={"b": 0.1})
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        plots.risk_coverage_curves({"a": ([0.1, 0.2], [True, False])}, coverages=[1.5])
    # a threshold above every score accepts nothing: no marker, no error
    fig = plots.risk_coverage_curves({"a": ([0.1, 0.2], [True, False])}, thresholds={"a": 5.0})
    assert len(fig.axes[0].lines) == 1


def _logits(n=600, k=5, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), labels] += 1.5
    return scale * logits, labels  # scale > 1: over-confident


@pytest.mark.parametrize("style", ["bars", "lines"])
def test_reliability_diagram_before_and_after_temperature_scaling(style):
    logits, labels = _logits()
    T = fit_temperature(logits, labels)
    before = confidence_and_correct(logits, labels)
    after = confidence_and_correct(apply_temperature(logits, T), labels)
    fig = plots.reliability_diagram({"before": before, f"T = {T:.2f}": after}, n_bins=10, style=style)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "confidence (%)" and ax.get_ylabel() == "accuracy (%)"
    assert ax.get_xlim() == (0, 100) and ax.get_ylim() == (0, 100) and "10 equal-width bins" in ax.get_title()
    diagonal = ax.lines[0]
    assert list(diagonal.get_xdata()) == [0, 100] and list(diagonal.get_ydata()) == [0, 100]
    texts = _legend(ax)
    assert texts[0] == "perfect calibration"
    eces = [expected_calibration_error(*pair, n_bins=10) for pair in (before, after)]
    assert [_number(t, "ECE") for t in texts[1:]] == pytest.approx([100 * e for e in eces], abs=0.005)
    assert eces[1] < eces[0]  # temperature scaling helps this over-confident model
    tables = [reliability_table(*pair, n_bins=10) for pair in (before, after)]
    full = [tab["count"] > 0 for tab in tables]
    if style == "bars":
        heights = [p.get_height() for p in ax.patches]
        expected = np.concatenate([100 * tab["accuracy"][f] for tab, f in zip(tables, full)])
        assert heights == pytest.approx(expected.tolist())
    else:
        for line, tab, f in zip(ax.lines[1:], tables, full):
            assert np.allclose(line.get_xdata(), 100 * tab["confidence"][f])
            assert np.allclose(line.get_ydata(), 100 * tab["accuracy"][f])


def test_reliability_diagram_errors_and_into_given_axes():
    with pytest.raises(ValueError, match="style"):
        plots.reliability_diagram({"a": ([0.5], [True])}, style="dots")
    with pytest.raises(ValueError, match="n_bins"):
        plots.reliability_diagram({"a": ([0.5], [True])}, n_bins=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.reliability_diagram({"a": ([1.5], [True])})
    with pytest.raises(ValueError, match="non-empty mapping"):
        plots.reliability_diagram({})
    fig, (a0, a1) = plt.subplots(1, 2)
    out = plots.reliability_diagram({"a": ([0.95, 0.95, 0.55], [True, False, True])}, n_bins=5, ax=a1, title="x")
    assert out is fig and a1.get_title() == "x" and not a0.patches
    assert [p.get_height() for p in a1.patches] == pytest.approx([100.0, 50.0])  # empty bins draw nothing
