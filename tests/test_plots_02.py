"""Figures of notebook 02: targeted-attack rates against the budget and against the number of steps."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labutils.viz import plots  # noqa: E402

EPS = (0.0, 2 / 255, 8 / 255)


def test_rates_vs_eps_one_colour_per_attack_solid_and_dashed():
    hit = {"FGSM": [0.0, 0.2, 0.1], "iterative": torch.tensor([0.0, 0.4, 0.7])}
    wrong = {"FGSM": [0.0, 0.5, 0.8], "iterative": np.array([0.0, 0.6, 0.9])}
    fig = plots.rates_vs_eps(EPS, hit, wrong, title="targeted")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["FGSM: target hit", "FGSM: misclassified", "iterative: target hit", "iterative: misclassified"]
    assert [line.get_linestyle() for line in ax.lines] == ["-", "--", "-", "--"]
    colours = [to_hex(line.get_color()) for line in ax.lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 2, 8])
    np.testing.assert_allclose(ax.lines[3].get_ydata(), [0, 60, 90])
    assert ax.get_xlabel() == "epsilon (x/255)" and ax.get_ylabel() == "attacked pairs (%)"
    assert ax.get_ylim() == (-2, 102) and ax.get_title() == "targeted"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels


def test_rates_vs_eps_without_dashed_curves_and_into_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    out = plots.rates_vs_eps(EPS, {"FGSM": [0, 0.1, 0.2]}, ax=b, solid_name="fooled", ylabel="pairs (%)")
    assert out is fig and not a.lines and [line.get_label() for line in b.lines] == ["FGSM: fooled"]
    assert b.get_ylabel() == "pairs (%)"


@pytest.mark.parametrize("kwargs, match", [
    (dict(solid={"a": [0, 0.5]}), "2 values for 3"),
    (dict(solid={"a": [0, 50, 90]}), r"fractions in \[0, 1\]"),
    (dict(solid={"a": [0, 0.1, 0.2]}, dashed={"b": [0, 0.1, 0.2]}), "no solid curve"),
    (dict(solid={}), "at least one solid curve"),
    (dict(eps_values=(0, 2, 8), solid={"a": [0, 0.1, 0.2]}), r"\[0, 1\] pixel scale"),
])
def test_rates_vs_eps_rejects_bad_input(kwargs, match):
    kwargs = {"eps_values": EPS, **kwargs}
    with pytest.raises(ValueError, match=match):
        plots.rates_vs_eps(**kwargs)


def test_rate_vs_steps_log_axis_ticked_at_the_steps_with_a_reference_line():
    fig = plots.rate_vs_steps((1, 2, 5, 10), {"iterative": [0.1, 0.3, 0.6, 0.7]},
                              reference={"targeted FGSM (1 step)": 0.1}, title="at 8/255")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "5", "10"]
    line, ref = ax.lines
    np.testing.assert_allclose(line.get_ydata(), [10, 30, 60, 70])
    assert ref.get_linestyle() == ":" and np.allclose(ref.get_ydata(), 10)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["iterative", "targeted FGSM (1 step)"]
    assert "steps" in ax.get_xlabel() and ax.get_ylabel() == "target hit (%)" and ax.get_title() == "at 8/255"


@pytest.mark.parametrize("steps, curves, match", [
    ((0, 1), {"a": [0, 0.1]}, "positive step counts"),
    ((1, 2), {}, "at least one curve"),
    ((1, 2), {"a": [0.1]}, "1 values for 2"),
    ((1, 2), {"a": [0.1, 1.5]}, r"fractions in \[0, 1\]"),
])
def test_rate_vs_steps_rejects_bad_input(steps, curves, match):
    with pytest.raises(ValueError, match=match):
        plots.rate_vs_steps(steps, curves)
