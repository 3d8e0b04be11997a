"""The README's table of notebooks, with the run times measured by the series runner.

    python -m labutils.course.runtimes                      # print the table made from benchmarks/runtimes/*.md
    python -m labutils.course.runtimes --write README.md    # replace the table between the README's markers
    python -m labutils.course.runtimes --check README.md    # exit 1 when the README's table is out of date
    python -m labutils.course.runtimes runs/standard/report.md runs/smoke/report.md   # other reports

Each report is a run's ``report.md`` (:func:`labutils.course.report.write_report`; only its header and
"Run time" section are read).  A notebook's time is filed under its profile, the machine it ran on
("2-core CPU, fp32 (AVX2)", "2-core CPU, bf16 (AVX-512)", "GPU (...)": cores, device, precision and CPU
kernels, :func:`machine_label`) and whether it trained its models or loaded them all from checkpoints
(:func:`checkpoint_condition`).  Where several reports measured the same cell the newest (``Measured:``)
wins, except that a time measured with some models already cached (marked ``*``) replaces a complete one
only when it is from a later day.  A report of the older format (notebook and seconds only) still parses:
what it lacks is unknown.

The notebook columns come from each notebook's first markdown cell: its question (``**Question.**``),
its learning objectives shortened to their verb and object, and the earlier notebooks its prerequisites
name.  The committed reports behind the README live in ``benchmarks/runtimes/``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .conditions import KEYS, RUN_KEYS, SOURCES
from .links import colab_badge
from .paths import REPO_ROOT, notebook_paths
from .profiles import PROFILES
from .report import RUN_TIME_COLUMNS

__all__ = ["Measurement", "parse_report", "machine_label", "checkpoint_condition", "notebook_summary",
           "format_seconds", "runtime_table", "replace_region", "BEGIN", "END", "DEFAULT_REPORTS", "main"]

DEFAULT_REPORTS = REPO_ROOT / "benchmarks" / "runtimes"
BEGIN, END = "<!-- runtimes:begin -->", "<!-- runtimes:end -->"
MISSING = "—"
PARTIAL = "\\*"  # an escaped asterisk: Markdown shows "*"
# the machines every profile column is shown for, measured or not (a laptop without and one with native bf16)
CPU_MACHINES = ("2-core CPU, fp32 (AVX2)", "2-core CPU, bf16 (AVX-512)")
SHOWN_PROFILES = ("smoke", "standard")
KERNELS = {"AVX512": "AVX-512", "AVX512_BF16": "AVX-512 BF16", "DEFAULT": "no AVX", "NO AVX": "no AVX"}
# report column (lower case) -> field, as report.run_time_section writes them; "seconds" may be a range "66-74"
# (several runs, e.g. over seeds)
_COLUMNS = dict(zip((c.lower() for c in RUN_TIME_COLUMNS), ("notebook", "seconds", *KEYS), strict=True))


@dataclass(frozen=True)
class Measurement:
    """One notebook's wall time in one report."""

    notebook: str                      # stem, e.g. "04_adversarial_training"
    profile: str
    machine: str                       # machine_label()
    condition: str                     # checkpoint_condition(): "trains", "loaded" or "partial"
    seconds: tuple[float, float]       # (lowest, highest); equal for one run
    measured: str = ""                 # "YYYY-MM-DD[ HH:MM]" from the report, "" when it has none
    source: str = ""                   # the report's path
    details: dict = field(default_factory=dict, compare=False)


def machine_label(cores: int | None, device: str | None, precision: str | None, kernels: str | None,
                  gpu: str | None = None) -> str:
    """``"2-core CPU, fp32 (AVX2)"``, ``"2-core CPU, bf16 (AVX-512)"``, ``"GPU (name)"``; what is unknown is
    said to be unknown."""
    if device == "cuda":
        return f"GPU ({gpu})" if gpu else "GPU"
    if device == "mps":
        return "Apple GPU (MPS)"
    cpu = f"{cores}-core CPU" if cores else "CPU"
    if device is None:
        return f"{cores} cores, device and precision not recorded" if cores else "device and precision not recorded"
    if precision is None:
        return f"{cpu}, precision not recorded"
    kernel = KERNELS.get(kernels.upper(), kernels) if kernels else None
    return f"{cpu}, {precision}" + (f" ({kernel})" if kernel else "")


def checkpoint_condition(trained: int | None, from_run: int | None, from_cache: int | None,
                         handed_out: int | None) -> str:
    """``"trains"``: nothing came from checkpoints that existed before the run (the notebook, or an earlier one of
    the same run, trained every model it used); ``"loaded"``: it trained nothing; ``"partial"``: both, or unknown."""
    if from_cache == 0 and handed_out == 0:
        return "trains"
    if trained == 0:
        return "loaded"
    return "partial"


def _number(cell: str) -> int | None:
    cell = cell.strip()
    return int(cell) if cell.isdigit() else None


def _seconds(cell: str) -> tuple[float, float] | None:
    parts = [p.strip() for p in re.split(r"[-–]", cell.strip()) if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    return (min(values), max(values)) if values and len(values) <= 2 else None


def parse_report(path: str | Path) -> list[Measurement]:
    """The measurements of one ``report.md``: one per row of its "Run time" table."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    title = re.search(r"^# .*\((\w+) profile\)", text, re.M)
    profile = title.group(1) if title else None
    machine = re.search(r"^Machine: .*, (\d+) cores\b", text, re.M)
    cores = int(machine.group(1)) if machine else None
    gpu = re.search(r"^GPU: (.+?)\s*$", text, re.M)
    measured = re.search(r"^Measured: (\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2})?)", text, re.M)
    section = re.search(r"^## Run time\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if profile is None or section is None:
        raise ValueError(f"{path}: not a run report (needs a '# ... (<profile> profile)' title and a '## Run time' "
                         "section with a '| notebook | seconds |' table).")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.group(1).splitlines() if line.strip().startswith("|")]
    if not rows or rows[0][:2] != ["notebook", "seconds"]:
        raise ValueError(f"{path}: its Run time section has no '| notebook | seconds | ...' table.")
    keys = [_COLUMNS.get(c.lower()) for c in rows[0]]
    found = []
    for row in rows[2:]:  # after the header and the alignment row
        cells = {k: v for k, v in zip(keys, row) if k}
        seconds = _seconds(cells.get("seconds", ""))
        if cells.get("notebook") in (None, "", "total") or seconds is None:
            continue
        known = {k: (None if cells.get(k, "?") in ("?", "") else cells[k])
                 for k in RUN_KEYS}
        counts = {k: _number(cells.get(k, "?")) for k in SOURCES}
        found.append(Measurement(
            notebook=cells["notebook"], profile=profile,
            machine=machine_label(cores, known["device"], known["precision"], known["cpu_capability"],
                                  gpu.group(1) if gpu else None),
            condition=checkpoint_condition(**counts), seconds=seconds,
            measured=measured.group(1) if measured else "", source=str(path), details={**known, **counts}))
    return found


def format_seconds(seconds: tuple[float, float] | float) -> str:
    """``"45 s"`` under 90 s, else whole minutes (``"16 min"``); a range as ``"47-50 s"`` or ``"2-3 min"``."""
    lo, hi = seconds if isinstance(seconds, tuple) else (seconds, seconds)
    if hi < 89.5:
        a, b, unit = round(lo), round(hi), "s"
    else:
        a, b, unit = round(lo / 60), round(hi / 60), "min"
    return f"{a} {unit}" if a == b else f"{a}-{b} {unit}"


# ------------------------------------------------------------------ the notebooks' own description
def _first_markdown(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _paragraph_after(text: str, heading: str) -> str:
    """The text after ``heading`` (a ``### Heading`` line or a bold ``**Heading.**`` lead) up to the next blank
    line (for a heading line: the first paragraph after it)."""
    match = re.search(rf"^### {heading}\s*\n+(.*?)(?:\n\s*\n|\Z)", text, re.M | re.S) or \
        re.search(rf"\*\*{heading}\.\*\*\s*(.*?)(?:\n\s*\n|\Z)", text, re.S)
    return " ".join(match.group(1).split()) if match else ""


def _objectives(text: str) -> list[str]:
    """The learning objectives: the list after "Learning objectives", one entry per item."""
    match = re.search(r"Learning objectives.*?\n(.*?)(?:\n\s*\n|\Z)", text, re.S)
    if not match:
        return []
    items: list[str] = []
    for line in match.group(1).splitlines():
        item = re.match(r"\s*(?:[-*]|\d+\.)\s+(.*)", line)
        if item:
            items.append(item.group(1).strip())
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return [i for i in items if "**" in i] or items


_TRAILING = {"a", "an", "the", "of", "on", "in", "to", "from", "as", "and", "or", "for", "with", "by", "that", "how",
             "why", "what", "which", "whether", "before", "after", "at", "its", "their", "one", "between", "is", "are",
             "where", "when"}


def _short_goal(item: str, words: int = 7) -> str:
    """An objective cut to its first clause and a few words: ``"**compute** an FGSM adversarial example…"``."""
    clause = re.split(r"[;:(]| — ", item, maxsplit=1)[0].strip().rstrip(",")
    parts = clause.split()
    kept = parts[:words]
    while len(kept) > 1 and kept[-1].lower().strip(",") in _TRAILING:
        kept.pop()
    short = " ".join(kept).rstrip(",")
    if short.count("**") % 2:  # never cut a bold verb in half
        short += "**"
    if short.count("`") % 2:
        short += "`"
    return short + ("…" if len(kept) < len(parts) else "")


def _earlier_notebooks(prerequisites: str, own: int) -> list[int]:
    """Notebook numbers (``02``, ``02-04``) the prerequisites name, below ``own``."""
    found: set[int] = set()
    for a, b in re.findall(r"(?<![\d,.])(\d\d)(?:\s*-\s*(\d\d))?(?![\d,.]\d)", prerequisites):
        lo, hi = int(a), int(b or a)
        found.update(n for n in range(lo, hi + 1) if n < own)
    return sorted(found)


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    runs, start = [], numbers[0]
    for prev, cur in zip(numbers, numbers[1:] + [None]):
        if cur != prev + 1:
            runs.append(f"{start:02d}" if start == prev else f"{start:02d}-{prev:02d}")
            start = cur
    return ", ".join(runs)


def notebook_summary(path: str | Path) -> dict[str, str]:
    """``question``, ``goals`` and ``prerequisites`` (earlier notebooks) of a notebook, from its first markdown cell."""
    path = Path(path)
    text = _first_markdown(path)
    question = _paragraph_after(text, "Question")
    goals = "; ".join(_short_goal(i) for i in _objectives(text))
    own = int(path.name[:2]) if path.name[:2].isdigit() else 100
    return {"question": question, "goals": goals,
            "prerequisites": _ranges(_earlier_notebooks(_paragraph_after(text, "Prerequisites"), own))}


# ------------------------------------------------------------------ the table
def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _columns(measurements: list[Measurement]) -> list[tuple[str, str]]:
    order = {name: i for i, name in enumerate(PROFILES)}
    columns = [(p, m) for p in SHOWN_PROFILES for m in CPU_MACHINES]
    extra = sorted({(m.profile, m.machine) for m in measurements} - set(columns),
                   key=lambda c: (order.get(c[0], len(order)), c[0], c[1]))
    return sorted(columns + extra, key=lambda c: order.get(c[0], len(order)))


def _newest(candidates: list[tuple[int, Measurement]]) -> Measurement | None:
    return max(candidates, key=lambda im: (im[1].measured, im[0]))[1] if candidates else None


def _training_time(mine: list[tuple[int, Measurement]]) -> Measurement | None:
    """The newest measurement in which nothing came from earlier checkpoints; a newer one in which some did
    (``partial``) stands in only when it is from a later day (the notebook has changed since)."""
    complete = _newest([(i, m) for i, m in mine if m.condition == "trains"])
    partial = _newest([(i, m) for i, m in mine if m.condition == "partial"])
    if complete is None or (partial is not None and partial.measured[:10] > complete.measured[:10]):
        return partial or complete
    return complete


def runtime_table(reports, notebooks=None) -> str:
    """The README's table: one row per notebook (question, learning goals, earlier notebooks it builds on, the
    measured time per profile and machine) from the reports at ``reports`` and the notebooks at ``notebooks``
    (default: ``notebooks/*.ipynb``).  Each time cell reads "trains / loads": the notebook training its own
    models, and loading every model from checkpoints; ``—`` where not measured."""
    measurements = [m for r in reports for m in parse_report(r)]
    paths = sorted(Path(p) for p in notebooks) if notebooks is not None else notebook_paths()
    columns = _columns(measurements)
    header = ["notebook", "question", "learning goals", "builds on"] + [f"`{p}`: {m}" for p, m in columns]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * 4 + ["---:"] * len(columns)) + " |"]
    any_partial = False
    indexed = list(enumerate(measurements))
    for path in paths:
        info = notebook_summary(path)
        cells = [f"[{path.stem}](notebooks/{path.name})<br>{colab_badge(path.name)}",
                 _escape(info["question"]), _escape(info["goals"]), info["prerequisites"]]
        for profile, machine in columns:
            mine = [(i, m) for i, m in indexed if m.notebook == path.stem and m.profile == profile
                    and m.machine == machine]
            trains = _training_time(mine)
            loads = _newest([(i, m) for i, m in mine if m.condition == "loaded"])
            if trains is None and loads is None:
                cells.append(MISSING)
                continue
            left = MISSING if trains is None else format_seconds(trains.seconds)
            if trains is not None and trains.condition == "partial":
                left, any_partial = left + PARTIAL, True
            cells.append(f"{left} / {MISSING if loads is None else format_seconds(loads.seconds)}")
        lines.append("| " + " | ".join(cells) + " |")
    if any_partial:
        lines += ["", f"{PARTIAL}: some of the notebook's models came from checkpoints that were there before the "
                      "run, or the run did not record where they came from; from scratch it may take longer."]
    return "\n".join(lines) + "\n"


def replace_region(text: str, table: str) -> str:
    """``text`` with everything between the :data:`BEGIN` and :data:`END` markers replaced by ``table``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{BEGIN}' ... '{END}' region to replace")
    return text[:start + len(BEGIN)] + "\n" + table + text[end:]


def region(text: str) -> str:
    """What lies between the markers (as :func:`replace_region` writes it: the table after one newline)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{BEGIN}' ... '{END}' region")
    return text[start + len(BEGIN):end].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="*", type=Path,
                        help=f"report.md files (default: {DEFAULT_REPORTS.relative_to(REPO_ROOT)}/*.md)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--write", type=Path, metavar="README", help="replace the table between the markers there")
    target.add_argument("--check", type=Path, metavar="README", help="exit 1 when the table there is out of date")
    args = parser.parse_args(argv)
    reports = args.reports or sorted(DEFAULT_REPORTS.glob("*.md"))
    try:
        table = runtime_table(reports)
        if args.write:
            args.write.write_text(replace_region(args.write.read_text(encoding="utf-8"), table), encoding="utf-8")
            print(f"{args.write}: table rewritten from {len(reports)} report(s)")
        elif args.check:
            if region(args.check.read_text(encoding="utf-8")) != table:
                print(f"{args.check}: the runtimes table is out of date; run python -m labutils.course.runtimes "
                      f"--write {args.check}", file=sys.stderr)
                return 1
        else:
            print(table, end="")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
