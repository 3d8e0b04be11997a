"""plots.training_curves (notebook 00): two labelled panels, one line per model, an optional loss floor."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labutils.viz import plots  # noqa: E402


def _history(n, acc0=0.3):
    return [{"epoch": e + 1, "seconds": 10.0 * (e + 1), "loss": 2.0 / (e + 1), "train_acc": acc0 + 0.1 * e, "lr": 0.1}
            for e in range(n)]


def test_training_curves_panels_lines_and_floor():
    fig = plots.training_curves({"a": _history(3), "b": _history(1, 0.5)}, loss_floors={"b": 0.87})
    assert isinstance(fig, Figure)
    ax_acc, ax_loss = fig.axes
    assert ax_acc.get_xlabel() == "training time (s)" and "accuracy (%)" in ax_acc.get_ylabel()
    assert ax_loss.get_xlabel() == "epoch" and "loss" in ax_loss.get_ylabel()
    x, y = ax_acc.lines[0].get_data()
    np.testing.assert_allclose(x, [10, 20, 30])
    np.testing.assert_allclose(y, [30, 40, 50])  # fractions shown in %
    np.testing.assert_allclose(ax_loss.lines[0].get_ydata(), [2.0, 1.0, 2 / 3])
    floor = ax_loss.lines[-1]
    assert floor.get_linestyle() == "--" and np.allclose(floor.get_ydata(), 0.87)
    assert floor.get_color() == ax_loss.lines[1].get_color()  # the floor in its model's colour
    assert [t.get_text() for t in ax_acc.get_legend().get_texts()] == ["a", "b"]


def test_training_curves_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert plots.training_curves({"m": _history(2)}, axes=axes) is fig
    assert all(len(ax.lines) == 1 for ax in axes)


@pytest.mark.parametrize("histories, match", [({}, "empty"), ({"m": []}, "no epochs"),
                                               ({"m": [{"epoch": 1, "seconds": 1.0, "loss": 1.0}]}, "train_acc")])
def test_training_curves_rejects_bad_histories(histories, match):
    with pytest.raises(ValueError, match=match):
        plots.training_curves(histories)
