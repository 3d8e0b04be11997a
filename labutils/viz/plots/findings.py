"""The figure of one finding of the reliability report (notebook 10): what a run measured beside the published
figure, with the tolerance and the verdict of each comparison (:mod:`labutils.course.findings`).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

__all__ = ["VERDICT_COLOURS", "findings_figure"]

VERDICT_COLOURS = {"reproduces": "tab:green", "contradicts": "tab:red", "not comparable": "tab:gray",
                   "not measured": "lightgray"}
_AXIS_LABELS = {"%": "accuracy (%)", "AUROC": "AUROC (0.5 = chance)", "AUROC difference": "change of the AUROC",
                "points": "difference (percentage points)", "count": "images per 10,000",
                "ratio": "ratio (1 = grows as fast as the cost)"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def findings_figure(rows: Sequence[dict], *, title: str | None = None):
    """Measured (filled dot) and published (open diamond) value of each comparison, one panel per unit.

    Args:
        rows: dicts with ``quantity``, ``unit``, ``measured``, ``published``, ``verdict`` and, for numbers,
            ``criterion`` (:meth:`labutils.course.findings.Comparison.as_row`).  Numbers go into a panel per
            unit with the quantities on the y axis; text comparisons (orderings, directions) are written out
            in a last panel as "ours | published".
        title: the figure's title.

    Returns the Figure.  Dots are coloured by verdict (:data:`VERDICT_COLOURS`); a grey bar marks the tolerance
    around the published figure where the rule is ``close``, a grey tick the threshold of a one-sided rule
    (``at least``, ``at most``, ``same sign``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not rows:
        raise ValueError("rows is empty: pass the comparisons of one finding.")
    numeric: dict[str, list[dict]] = {}
    text = []
    for r in rows:
        if _is_number(r.get("measured")) or _is_number(r.get("published")):
            numeric.setdefault(r.get("unit", ""), []).append(r)
        else:
            text.append(r)
    heights = [0.55 * len(v) + 0.9 for v in numeric.values()] + ([0.5 * len(text) + 0.7] if text else [])
    fig, axes = plt.subplots(len(heights), 1, figsize=(9.5, sum(heights) + 0.6), squeeze=False,
                             height_ratios=heights, layout="constrained")
    axes = list(axes[:, 0])
    for ax, (unit, group) in zip(axes, numeric.items()):
        for y, r in enumerate(group):
            colour = VERDICT_COLOURS.get(r["verdict"], "black")
            pub, meas = r.get("published"), r.get("measured")
            if _is_number(pub):
                tol, rule, judged = r.get("tolerance") or 0, r.get("rule", "close"), r["verdict"] != "not comparable"
                if rule == "close" and tol and judged:
                    ax.plot([pub - tol, pub + tol], [y, y], color="0.75", lw=6, solid_capstyle="butt", zorder=1)
                edge = {"at least": pub - tol, "at most": pub + tol, "same sign": math.copysign(tol, pub)}.get(rule)
                if edge is not None and judged:  # where a one-sided rule's verdict flips
                    ax.scatter([edge], [y], marker="|", s=260, linewidths=2, color="0.45", zorder=2)
                ax.scatter([pub], [y], marker="D", s=60, facecolor="white", edgecolor="black", zorder=3)
            if _is_number(meas):
                ax.scatter([meas], [y], s=60, color=colour, zorder=4)
        ax.set_yticks(range(len(group)), ["\n".join(textwrap.wrap(r["quantity"], 48)) for r in group], fontsize=8)
        ax.set_ylim(len(group) - 0.5, -0.5)
        ax.set_xlabel(_AXIS_LABELS.get(unit, unit))
        ax.grid(axis="x", alpha=0.3)
    if text:
        ax = axes[-1]
        ax.axis("off")
        for y, r in enumerate(text):
            ax.text(0.0, 1 - (y + 0.5) / len(text), f"{r['quantity']}:\n  ours: {r.get('measured') or '-'}   |   "
                    f"published: {r.get('published') or '-'}   ->  {r['verdict']}", transform=ax.transAxes,
                    va="center", fontsize=8, color=VERDICT_COLOURS.get(r["verdict"], "black"))
    handles = [Line2D([], [], marker="D", ls="", mfc="white", mec="black", label="published"),
               Line2D([], [], color="0.75", lw=6, label="tolerance (within)"),
               Line2D([], [], marker="|", ms=12, mew=2, ls="", color="0.45", label="threshold (at least / at most)")]
    handles += [Line2D([], [], marker="o", ls="", color=c, label=f"ours: {v}") for v, c in VERDICT_COLOURS.items()
                if any(r["verdict"] == v for r in rows)]
    axes[0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    return fig
