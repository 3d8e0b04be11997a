"""What each notebook of a run ran under: the record behind the run-time table of ``report.md``.

Per notebook the runner (:mod:`labutils.course.runner`) records

* ``device``, ``precision``, ``cpu_capability``: where its models ran, the precision they trained
  and attacked in, and PyTorch's CPU kernels (``AVX2``, ``AVX512``, ...), read from the ``run`` entry
  the notebook's kernel wrote into its metrics (:func:`labutils.course.claims.run_context`), else
  the runner's own;
* where its models came from, counted over the checkpoints :func:`labutils.training.get_or_train`
  returned (listed in ``$LAB_CHECKPOINT_LOG``) and the files that appeared or changed in the
  checkpoint cache while it ran: ``trained`` (by this notebook), ``from_run`` (trained by an earlier
  notebook of the same run), ``from_cache`` (already in the cache when the run started) and
  ``handed_out`` (placed by :func:`labutils.training.load_checkpoints`; see its ``handed_out.json``).
  None where it was not recorded, e.g. an older labutils whose ``get_or_train`` logs nothing.

They are kept in ``<run dir>/conditions.json`` beside ``timings.json``; :func:`labutils.course.report.write_report`
puts them into the run-time table, which :mod:`labutils.course.runtimes` turns into the README's table.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..files import load_json_dict, merge_json_dict

__all__ = ["RUN_KEYS", "SOURCES", "KEYS", "cache_snapshot", "model_sources", "ModelLedger", "notebook_conditions",
           "save_conditions", "load_conditions"]

RUN_KEYS = ("device", "precision", "cpu_capability")  # what a notebook ran under
SOURCES = ("trained", "from_run", "from_cache", "handed_out")  # where a notebook's models came from
KEYS = RUN_KEYS + SOURCES  # a notebook's conditions, in the order of the report's run-time table
FILE = "conditions.json"


def cache_snapshot(folder: str | os.PathLike | None = None) -> dict[str, tuple[int, int]] | None:
    """``{file name: (mtime in ns, size)}`` of the trained models in the checkpoint cache (partial training states
    left out), or None when the cache cannot be read."""
    try:
        if folder is None:
            from ..training.checkpoints import checkpoint_dir

            folder = checkpoint_dir()
        found = {}
        for path in Path(folder).glob("*.pt"):
            if not path.name.endswith(".partial.pt"):
                st = path.stat()
                found[path.name] = (st.st_mtime_ns, st.st_size)
        return found
    except OSError:  # no data directory, no permission: the sources stay unrecorded
        return None


def model_sources(logged, start: dict | None, before: dict | None, after: dict | None,
                  handed_out: set[str] | frozenset = frozenset()) -> dict[str, int | None]:
    """Count a notebook's models by where they came from (:data:`SOURCES`).

    Args:
        logged: the checkpoint paths ``get_or_train`` returned while the notebook ran (its log lines).
        start, before, after: :func:`cache_snapshot` when the run started, before and after the notebook.
        handed_out: names of the cache's files that are handed-out checkpoints, as handed out.

    A file that appeared or changed while the notebook ran was trained by it; a logged file that changed
    since the run started was trained by an earlier notebook of the run; any other logged file was in the
    cache already.  Without snapshots every count is None; with no log line although files changed (a
    ``get_or_train`` that does not log), only ``trained`` is known.
    """
    if start is None or before is None or after is None:
        return dict.fromkeys(SOURCES)
    changed = {name for name, stat in after.items() if before.get(name) != stat}
    names = {Path(str(p).strip()).name for p in logged if str(p).strip()}
    if not names and changed:
        return {"trained": len(changed - set(handed_out)), "from_run": None, "from_cache": None, "handed_out": None}
    counts = dict.fromkeys(SOURCES, 0)
    for name in names | changed:
        if name in handed_out:
            counts["handed_out"] += 1
        elif name in changed:
            counts["trained"] += 1
        elif after.get(name) != start.get(name):
            counts["from_run"] += 1
        else:
            counts["from_cache"] += 1
    return counts


def _handed_out(folder: Path, names: set[str]) -> set[str]:
    """Those of ``names`` that the cache's ``handed_out.json`` lists and that are still the bytes handed out."""
    from ..training.archive import handed_out_index, is_handed_out

    index = handed_out_index(folder)
    return {name for name in names & set(index) if is_handed_out(folder / name, index[name])}


class ModelLedger:
    """Where each notebook of a run got its models: call :meth:`begin` before and :meth:`end` after each one.

    ``log``: the file ``$LAB_CHECKPOINT_LOG`` names for the notebooks' kernels (lines are appended; earlier
    lines are ignored).  ``folder``: the checkpoint cache (default: the data directory's).
    """

    def __init__(self, log: Path, folder: Path | None = None):
        self.log = Path(log)
        self.folder = folder
        self.start = cache_snapshot(folder)
        self.before, self.offset = self.start, 0

    def begin(self) -> None:
        self.before = cache_snapshot(self.folder)
        self.offset = self.log.stat().st_size if self.log.exists() else 0

    def end(self) -> dict[str, int | None]:
        after = cache_snapshot(self.folder)
        logged = []
        if self.log.exists():
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                logged = f.read().decode("utf-8", errors="replace").splitlines()
        handed_out = set()
        if after is not None and self.before is not None:
            from ..training.checkpoints import checkpoint_dir

            folder = Path(self.folder) if self.folder is not None else checkpoint_dir()
            used = {Path(p.strip()).name for p in logged if p.strip()}
            handed_out = _handed_out(folder, used | {n for n, st in after.items() if self.before.get(n) != st})
        return model_sources(logged, self.start, self.before, after, handed_out)


def notebook_conditions(metrics_file: Path, since: float) -> dict:
    """``device``, ``precision`` and ``cpu_capability`` of a notebook: the ``run`` entry of its metrics file when
    the notebook wrote it (modified at or after ``since``, a ``time.time()``), else this process's."""
    run = None
    try:
        if metrics_file.stat().st_mtime >= since:
            run = json.loads(metrics_file.read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        run = None
    if not isinstance(run, dict):
        from .claims import run_context

        run = run_context()
    return {k: run.get(k) for k in RUN_KEYS}


def load_conditions(folder: str | os.PathLike) -> dict[str, dict]:
    """``{notebook name: conditions}`` recorded in ``folder/conditions.json``, or an empty dict."""
    data = load_json_dict(Path(folder) / FILE,
                          unreadable="the report lists the run's conditions as not recorded")
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def save_conditions(folder: str | os.PathLike, conditions: dict[str, dict]) -> Path:
    """Merge ``conditions`` (notebook name -> conditions) into ``folder/conditions.json``."""
    return merge_json_dict(Path(folder) / FILE, conditions)
