"""plots.attack_accuracy_bars, plots.training_cost and plots.overfitting_checks: notebook 04's figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labutils.viz import plots  # noqa: E402

METHODS = ["standard", "fgsm", "fast_fgsm", "free"]


def _history(pgd, fgsm):
    return [{"epoch": i + 1, "check_clean_acc": 0.5, "check_fgsm_acc": f, "check_pgd_acc": p}
            for i, (p, f) in enumerate(zip(pgd, fgsm))]


def test_attack_accuracy_bars_one_bar_per_method_and_evaluation():
    acc = {"clean": [0.8, 0.7, 0.7, 0.6], "FGSM": [0.1, 0.4, 0.4, 0.3], "PGD-10": [0.0, 0.3, 0.35, 0.3]}
    fig = plots.attack_accuracy_bars(METHODS, acc, title="t")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.patches) == 12 and ax.get_ylabel() == "accuracy (%)" and ax.get_xlabel() == "training method"
    assert [t.get_text() for t in ax.get_xticklabels()] == METHODS
    assert np.allclose([p.get_height() for p in ax.patches[:4]], [80, 70, 70, 60])  # percent
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(acc)
    with pytest.raises(ValueError, match="4 points"):
        plots.attack_accuracy_bars(METHODS, {"clean": [0.5, 0.5]})
    with pytest.raises(ValueError, match="fractions"):
        plots.attack_accuracy_bars(METHODS, {"clean": [50, 50, 50, 50]})


def test_training_cost_bars_and_reference_line():
    fig = plots.training_cost(METHODS, {"counted passes": [1, 1.5, 2, 1], "measured time": [1, 1.6, 2.2, 1.1]})
    (ax,) = fig.axes
    assert len(ax.patches) == 8 and "relative to standard" in ax.get_ylabel()
    assert any(np.allclose(line.get_ydata(), 1.0) for line in ax.lines)  # the standard-training line
    assert np.allclose([p.get_height() for p in ax.patches[4:]], [1, 1.6, 2.2, 1.1])
    with pytest.raises(ValueError, match="non-negative"):
        plots.training_cost(METHODS, {"x": [1, -1, 1, 1]})
    with pytest.raises(ValueError, match="ratios is empty"):
        plots.training_cost(METHODS, {})


def test_overfitting_checks_one_panel_per_model_and_detection_marked():
    histories = {"fast_fgsm": _history([0.3, 0.35, 0.05], [0.4, 0.45, 0.6]),
                 "free": [{"epoch": 1, "loss": 2.0}] + _history([0.2, 0.25], [0.3, 0.32])}
    found = {"fast_fgsm": {"epoch": 3, "pgd_acc": 0.05}, "free": None}
    fig = plots.overfitting_checks(histories, detected=found, title="check")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "check"
    a, b = fig.axes
    assert a.get_title() == "fast_fgsm" and "%" in a.get_ylabel() and "epoch" in a.get_xlabel()
    labels = [t.get_text() for t in a.get_legend().get_texts()]
    assert labels[:3] == ["clean", "FGSM", "PGD-10"] and "epoch 3" in labels[3]
    x, y = a.lines[2].get_data()
    assert list(x) == [1, 2, 3] and np.allclose(y, [30, 35, 5])
    assert len(b.lines) == 3  # no detection line; the record without a check is skipped
    assert list(b.lines[0].get_data()[0]) == [1, 2]


def test_overfitting_checks_errors():
    with pytest.raises(ValueError, match="histories is empty"):
        plots.overfitting_checks({})
    with pytest.raises(ValueError, match="no per-epoch check"):
        plots.overfitting_checks({"standard": [{"epoch": 1, "loss": 2.0}]})
