"""Verdicts on measured figures beside published ones: the rules, one comparison, and its table.

A :class:`Comparison` is one measured quantity beside the figure a paper (or a reference implementation of
these labs) reported, with a rule and a tolerance that give its verdict:

* ``reproduces``: the rule holds within the stated tolerance;
* ``contradicts``: it does not;
* ``not comparable``: the two figures measure different things (the reason says what differs, e.g. a
  network trained from scratch beside an ImageNet-pretrained one, or another dataset);
* ``not measured``: the run has no value for it.

Rules: ``close`` (``|measured - published| <= tolerance``), ``at least`` (``measured >= published -
tolerance``), ``at most`` (``measured <= published + tolerance``), ``same sign`` (an effect of at least
``tolerance`` in the published direction) and ``same`` (a category, an ordering or a direction, compared as
text).  The course's comparisons are in :mod:`labutils.course.findings`.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

__all__ = ["VERDICTS", "RULES", "Comparison", "verdict", "ranking", "verdict_counts", "markdown_table", "threshold"]

VERDICTS = ("reproduces", "contradicts", "not comparable", "not measured")
RULES = ("close", "at least", "at most", "same sign", "same")


def _is_nan(value) -> bool:
    try:
        return not isinstance(value, str) and math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def verdict(measured, published, rule: str = "close", tolerance: float = 0.0, not_comparable: str = "") -> str:
    """The verdict of one comparison (one of :data:`VERDICTS`); see the module's docstring for the rules.

    ``measured`` is None or NaN (Python or NumPy) when the run did not measure it; ``not_comparable`` (a reason)
    wins over everything.  A numeric rule without a published figure is a ValueError: give the reason instead.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")
    if not_comparable:
        return "not comparable"
    if published is None:
        raise ValueError("no published figure to compare with: pass not_comparable='<why>' instead.")
    if measured is None or _is_nan(measured):
        return "not measured"
    if rule == "same":
        ok = str(measured) == str(published)
    elif rule == "close":
        ok = abs(measured - published) <= tolerance
    elif rule == "at least":
        ok = measured >= published - tolerance
    elif rule == "at most":
        ok = measured <= published + tolerance
    else:  # same sign: an effect of at least `tolerance` in the published direction
        ok = measured * math.copysign(1.0, published) >= tolerance
    return "reproduces" if ok else "contradicts"


def threshold(published: float, rule: str, tolerance: float) -> float | None:
    """Where a one-sided rule's verdict flips: ``published - tolerance`` (at least), ``published + tolerance``
    (at most), ``+-tolerance`` on the published side (same sign); None for ``close`` and ``same``."""
    if rule == "at least":
        return published - tolerance
    if rule == "at most":
        return published + tolerance
    if rule == "same sign":
        return math.copysign(tolerance, published)
    return None


def ranking(values: dict[str, float]) -> str | None:
    """Names ordered by value, highest first, ties joined by ``=``: ``{"a": 1, "b": 3, "c": 1} -> "b > a = c"``
    (tied names in alphabetical order).  None when a value is missing (None or NaN)."""
    if any(v is None or _is_nan(v) for v in values.values()):
        return None
    levels = sorted(set(values.values()), reverse=True)
    return " > ".join(" = ".join(sorted(k for k, v in values.items() if v == level)) for level in levels)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


@dataclass(frozen=True)
class Comparison:
    """One measured quantity beside a published figure.  ``measured`` is None when the run lacks it;
    ``published`` is None when there is no published figure (then ``not_comparable`` says why); ``notebook``
    is the notebook whose metrics ``measured`` comes from, ``metric`` the key(s) there."""

    finding: str
    quantity: str
    measured: float | str | None
    published: float | str | None
    source: str
    rule: str = "close"
    tolerance: float = 0.0
    unit: str = ""
    not_comparable: str = ""
    notebook: str = ""
    metric: str = ""
    note: str = ""  # what a reader must know beside the verdict (a missing control, a shared published figure)

    @property
    def verdict(self) -> str:
        return verdict(self.measured, self.published, self.rule, self.tolerance, self.not_comparable)

    @property
    def criterion(self) -> str:
        """The rule in words, e.g. ``within 5 of 73.7`` or ``at least 90 - 5``; empty when not comparable."""
        if self.published is None or self.not_comparable:
            return ""
        tol, pub = f"{self.tolerance:g}", _fmt(self.published)
        if self.rule == "same sign":
            return f"{'+' if self.published > 0 else '-'}, at least {tol} in size"
        return {"close": f"within {tol} of {pub}", "at least": f"at least {pub} - {tol}",
                "at most": f"at most {pub} + {tol}", "same": "the same"}[self.rule]

    def as_row(self) -> dict:
        """A plain dict for a table or a figure (:func:`labutils.viz.plots.findings_figure`)."""
        why = self.not_comparable
        if not why and self.verdict == "not measured":
            why = f"no value for {self.notebook}/{self.metric} in this run"
        return {"finding": self.finding, "quantity": self.quantity, "unit": self.unit,
                "measured": self.measured, "published": self.published, "rule": self.rule,
                "tolerance": self.tolerance, "criterion": self.criterion, "verdict": self.verdict,
                "why not comparable": why, "note": self.note, "source": self.source}


def verdict_counts(rows: list[Comparison]) -> dict[str, int]:
    """How many comparisons got each verdict, in the order of :data:`VERDICTS` (zeros included)."""
    counts = Counter(r.verdict for r in rows)
    return {v: counts.get(v, 0) for v in VERDICTS}


def markdown_table(rows: list[Comparison]) -> list[str]:
    """The comparisons as Markdown lines: quantity, measured, published, criterion, verdict, why / note / source."""
    lines = ["| finding | quantity | measured | published | criterion | verdict | why not comparable, note, source |",
             "| --- | --- | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        row = r.as_row()
        unit = f" {r.unit}" if r.unit in ("%", "points") else ""
        measured = _fmt(r.measured) + (unit if r.measured is not None else "")
        published = _fmt(r.published) + (unit if r.published is not None else "")
        why = "; ".join(x for x in (row["why not comparable"], r.note) if x) or r.source
        lines.append(f"| {r.finding} | {r.quantity} | {measured} | {published} | {row['criterion']} | "
                     f"**{row['verdict']}** | {why} |")
    return lines
