"""Figures of notebook 08 (EntProp)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from labutils.viz import plots  # noqa: E402


def test_selection_entropy_histograms_one_panel_per_epoch():
    edges = np.linspace(0, np.log(10), 6)
    fig = plots.selection_entropy_histograms({"epoch 1": ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]),
                                              "epoch 4": ([0, 0, 1, 2, 7], [9, 1, 0, 0, 0])}, edges, title="k 0.2")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "predictive entropy (nats)"
    assert "share" in fig.axes[0].get_ylabel()
    heights = [p.get_height() for p in fig.axes[0].patches[:5]]
    assert np.isclose(sum(heights), 1.0)  # shares, not counts
    assert any("selected (10)" == t.get_text() for t in fig.axes[0].get_legend().get_texts())
    plt.close(fig)
    with pytest.raises(ValueError, match="needs 5 non-negative counts"):
        plots.selection_entropy_histograms({"e": ([1, 2], [1, 2])}, edges)
    with pytest.raises(ValueError, match="increasing"):
        plots.selection_entropy_histograms({"e": ([1], [1])}, [1.0, 0.0])
