"""Metrics, figures and the results report of a run of the series.

Notebooks call :func:`save_metrics` and :func:`save_figure`; the runner
(:mod:`labutils.course.runner`) sets ``LAB_RUN_DIR`` so that they land in
``runs/<profile>/`` and then calls :func:`write_report`, which leads with the
course's findings beside the published figures and their verdicts
(:mod:`labutils.course.findings`, notebook 10), then gives each notebook's run
time and, last, every scalar metric of the run.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

from .. import settings
from ..files import atomic_write_text
from .claims import run_context
from .conditions import KEYS as _CONDITION_KEYS
from .conditions import load_conditions
from .findings import REFERENCES, REPORT_NOTEBOOK, course_comparisons, markdown_table, verdict_counts
from .paths import REPO_ROOT
from .timing import load_timings

__all__ = ["REFERENCES", "RUN_TIME_COLUMNS", "run_dir", "save_metrics", "load_metrics", "save_figure", "write_report",
           "run_time_section", "machine_info"]


def run_dir() -> Path:
    """Where this run's outputs go: ``$LAB_RUN_DIR``, else ``runs/<profile>/`` in the repository (in the
    working directory when labutils is installed without a checkout, as on Colab)."""
    from .profiles import profile_name

    root = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    path = settings.run_dir() or root / "runs" / profile_name()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(value):
    """Make metrics JSON-safe: tensors/numpy scalars to Python numbers, NaN to None."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


def save_metrics(notebook: str, metrics: dict, *, directory: str | os.PathLike | None = None) -> Path:
    """Merge ``metrics`` (name -> number, or nested dict/list) into ``<run dir>/metrics/<notebook>.json``.

    The file's ``run`` entry records the seed offset, training precision and CPU kernels of the run
    (:func:`labutils.course.claims.run_context`).
    """
    folder = Path(directory) if directory is not None else run_dir() / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(_clean(metrics))
    current["run"] = run_context()  # seed offset, precision and CPU kernels the figures were measured with
    return atomic_write_text(json.dumps(current, indent=2, sort_keys=True), path)


def load_metrics(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """All metrics files of a run: ``{notebook stem: metrics}``."""
    folder = Path(directory) if directory is not None else run_dir() / "metrics"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def save_figure(fig, name: str, *, directory: str | os.PathLike | None = None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as ``<run dir>/figures/<name>.png`` and return the path."""
    folder = Path(directory) if directory is not None else run_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def machine_info() -> dict:
    """Processor, core count, torch version and accelerator of this machine."""
    import torch

    from ..runtime import cpu_supports_bf16

    info = {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_bf16": cpu_supports_bf16(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# The run-time table's columns: a notebook's wall time, what it ran under (labutils.course.conditions) and where its
# models came from.  labutils.course.runtimes reads them back by these names; a report without some (an older one)
# leaves them unknown.
RUN_TIME_COLUMNS = ("notebook", "seconds", "device", "precision", "CPU kernels", "trained", "from this run",
                    "from the cache", "handed out")


def _cell(value) -> str:
    return "?" if value is None else str(value)


def run_time_section(timings: dict[str, float], conditions: dict[str, dict]) -> list[str]:
    """The lines of the report's "Run time" section: one row per notebook of ``timings`` with its ``conditions``
    (:mod:`labutils.course.conditions`; ``?`` where not recorded), and the total."""
    lines = ["## Run time", "",
             "Per notebook: wall time in seconds; the device, training precision and CPU kernels it ran with; and its "
             "models: trained by it, loaded after an earlier notebook of this run trained them, loaded from the "
             "checkpoint cache as it was before the run, loaded from handed-out checkpoints (`?`: not recorded). "
             "`python -m labutils.course.runtimes` makes the README's table from such reports.", "",
             "| " + " | ".join(RUN_TIME_COLUMNS) + " |",
             "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for nb, sec in sorted(timings.items()):
        cond = conditions.get(nb, {})
        lines.append(f"| {nb} | {sec:.0f} | " + " | ".join(_cell(cond.get(k)) for k in _CONDITION_KEYS) + " |")
    lines += [f"| total | {sum(timings.values()):.0f} |" + " |" * (len(RUN_TIME_COLUMNS) - 2), ""]
    return lines


def write_report(directory: str | os.PathLike | None = None, *, profile: str | None = None) -> Path:
    """Write ``report.md`` in a run directory: the findings beside the published figures with their verdicts
    (:func:`labutils.course.findings.course_comparisons`), the machine, each notebook's run time and conditions
    (:func:`run_time_section`), then every scalar metric of each notebook (no published figures there: those
    are compared, like with like, in the findings)."""
    folder = Path(directory) if directory is not None else run_dir()
    metrics = load_metrics(folder / "metrics")
    machine = machine_info()
    lines = [f"# CNN Reliability Lab: results ({profile or folder.name} profile)", "",
             f"Machine: {machine['processor']}, {os.cpu_count()} cores. "
             "CIFAR-10 figures are measured on whichever copy the data directory held "
             "(the JPEG re-export in CI).", ""]
    if machine["cuda"]:
        lines += [f"GPU: {machine['cuda']}", ""]
    lines += [f"Measured: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    inputs = {nb: values for nb, values in metrics.items() if nb != REPORT_NOTEBOOK}  # what notebook 10 reads
    if inputs:
        rows = course_comparisons(inputs, profile)
        counts = ", ".join(f"{n} {v}" for v, n in verdict_counts(rows).items())
        lines += ["## Findings beside the published figures", "",
                  f"Verdicts: {counts}. Each verdict follows a rule and a tolerance stated in "
                  "`labutils.course.findings`, the same for every run; notebook 10 (`10_reliability_report`) shows "
                  "each finding with its figure and reads it.", ""]
        lines += markdown_table(rows) + [""]
    timings = load_timings(folder)
    if timings:
        lines += run_time_section(timings, load_conditions(folder))
    if metrics:
        lines += ["## Every metric of the run", ""]
    for notebook, values in metrics.items():
        lines += [f"### {notebook}", "", "| metric | measured |", "| --- | --- |"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in sorted(values.items())
                  if not isinstance(value, (dict, list))]
        lines.append("")
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
