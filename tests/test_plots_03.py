"""plots.pgd_settings: notebook 03's steps / step-size / restarts figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: the library itself never picks a backend

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labutils.viz import plots  # noqa: E402


def _records(key, values, eps_values=(2 / 255, 8 / 255)):
    return [{"eps": e, key: v, "accuracy": 0.5 / (1 + i) - 0.1 * j}
            for j, e in enumerate(eps_values) for i, v in enumerate(values)]


def test_pgd_settings_one_panel_per_setting_one_line_per_budget():
    steps = _records("steps", [1, 2, 5])
    alpha = pd.DataFrame(_records("alpha_factor", [0.5, 1.0, 2.5, 10.0]))  # a DataFrame works too
    restarts = _records("restarts", [1, 2])
    fig = plots.pgd_settings({"steps": steps, "alpha_factor": alpha, "restarts": restarts},
                             xlabels={"steps": "PGD steps"}, title="PGD study")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "PGD study"
    axes = fig.axes
    assert len(axes) == 3
    assert [ax.get_xlabel() for ax in axes] == ["PGD steps", "alpha_factor", "restarts"]
    assert axes[0].get_ylabel() == "accuracy under attack (%)"
    assert [ax.get_xscale() for ax in axes] == ["log", "log", "linear"]
    for ax in axes:
        assert len(ax.lines) == 2  # one line per budget
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["eps 2/255", "eps 8/255"]
    x, y = axes[0].lines[0].get_data()
    assert list(x) == [1, 2, 5] and np.allclose(y, [50.0, 25.0, 50 / 3])  # percent, sorted by the setting
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["0.5", "1", "2.5", "10"]
    assert axes[0].get_ylim()[0] == 0


def test_pgd_settings_unsorted_records_and_errors():
    rows = _records("steps", [5, 1, 2], eps_values=(4 / 255,))
    fig = plots.pgd_settings({"steps": rows})
    x, _ = fig.axes[0].lines[0].get_data()
    assert list(x) == [1, 2, 5]
    with pytest.raises(ValueError, match="panels is empty"):
        plots.pgd_settings({})
    with pytest.raises(ValueError, match="needs the keys"):
        plots.pgd_settings({"restarts": rows})
