"""A resumable grid of experiment cells (notebook 09: model x defence x attack x strength), on any joblib backend.

A *cell* is a dict of JSON parameters; ``cell_fn(params) -> dict | list[dict]`` computes its result rows.
:func:`run_grid` runs every cell, the main process stores each finished one as ``out_dir/cells/<key>.json``
(atomically, as results arrive) and returns the rows of all cells as one table (``out_dir/grid.csv``).

Resuming: a rerun loads the cells whose file says ``"ok"``, and runs again those that failed
(``retry_failed=True``) or keeps them failed.  A cell file that is unreadable, not JSON or for other
parameters is warned about and its cell run again.  An interruption loses only the cells in progress.

Errors: an ``Exception`` in ``cell_fn`` (not ``KeyboardInterrupt``: it stops the grid) fails only its cell:
its message and traceback are stored, the other cells go on, :attr:`GridResult.failed` lists it.  Rows
whose values are not JSON scalars, or whose fields repeat a parameter name, fail the cell the same way.

Three ways to run the same grid, with the same table (compare them with :func:`comparable`)::

    run_grid(cells, fn, "runs/grid")                                   # serial, in this process
    with joblib.parallel_config(backend="loky", n_jobs=2):             # worker processes on this machine
        run_grid(cells, fn, "runs/grid")
    with dask_client(), joblib.parallel_config(backend="dask"):       # a Dask cluster: local, or
        run_grid(cells, fn, "runs/grid")                               # dask_client("tcp://host:8786")

Worker processes import ``cell_fn`` by its module: define it in an importable module, or in ``__main__`` /
a notebook (pickled by value).  Parallel workers run torch with one thread each unless ``worker_threads`` says.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from ..extras import require
from ..files import atomic_write_text, error_summary

__all__ = ["GridResult", "run_grid", "cell_key", "SchedulerUnreachable", "dask_client", "minmax_within",
           "comparable"]

_SCALARS = (str, int, float, bool, type(None))


def _pandas():
    return require("pandas", "labutils.course.grid (its tables)")


def _canonical(params: Mapping) -> str:
    return json.dumps(params, sort_keys=True)


def cell_key(params: Mapping) -> str:
    """The cell's file name stem: a readable slug of its scalar values (sorted by name) and 12 hex digits of
    the SHA-1 of ``json.dumps(params, sort_keys=True)``, e.g. ``"fgsm_16_3-1f0c9a2b7d41"``."""
    parts = [re.sub(r"[^A-Za-z0-9.]+", "-", str(params[k])).strip("-.")
             for k in sorted(params) if isinstance(params[k], (str, int, float, bool))]
    slug = "_".join(p for p in parts if p)[:40].strip("_-.")
    digest = hashlib.sha1(_canonical(params).encode()).hexdigest()[:12]
    return f"{slug}-{digest}" if slug else digest


def _check_cells(cells) -> tuple[list[dict], list[str]]:
    """The cells as plain JSON (tuples become lists) and their keys; TypeError / ValueError on bad ones."""
    if isinstance(cells, Mapping) or not isinstance(cells, Sequence) or len(cells) == 0:
        raise ValueError("cells must be a non-empty sequence of dicts (one dict of JSON parameters per cell).")
    plain, keys, seen = [], [], {}
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise TypeError(f"cell {i} is a {type(cell).__name__}, not a dict of parameters: {cell!r}.")
        for name, value in cell.items():
            if not isinstance(name, str) or name == "cell":
                raise TypeError(f"cell {i} ({cell!r}): parameter names must be str other than 'cell' (the table's "
                                f"column of cell keys), got {name!r}.")
            try:
                json.dumps(value)
            except (TypeError, ValueError) as err:
                raise TypeError(f"cell {i} ({cell!r}): parameter {name!r} = {value!r} ({type(value).__name__}) is not "
                                f"JSON-serialisable; use str, int, float, bool, None, lists or dicts of these "
                                f"(numpy: .item() / .tolist()).") from err
        text = _canonical(dict(cell))
        if text in seen:
            raise ValueError(f"duplicate cells: cell {i} repeats cell {seen[text]} ({dict(cell)!r}); "
                             f"each cell must differ in at least one parameter.")
        seen[text] = i
        plain.append(json.loads(json.dumps(dict(cell))))  # tuples become lists, the given order stays
        keys.append(cell_key(plain[-1]))
    if len(set(keys)) < len(keys):  # two different cells with one hash: astronomically unlikely
        raise ValueError("two different cells have the same key (a hash collision); add a parameter to tell "
                         "them apart.")
    return plain, keys


def _scalar(value, where: str):
    if type(value) in _SCALARS:
        return value
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):  # numpy scalar, 0-d tensor
        value = value.item()
        if isinstance(value, _SCALARS):
            return value
    raise TypeError(f"{where} = {value!r} ({type(value).__name__}) is not a JSON scalar (str, int, float, bool, None); "
                    f"convert it (numpy / torch: .item()) or give one row per element.")


def _check_rows(out, params: Mapping) -> list[dict]:
    """``cell_fn``'s output as a list of rows of plain scalars; TypeError / ValueError names what is wrong."""
    rows = [out] if isinstance(out, Mapping) else out
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise TypeError(f"cell_fn must return a dict or a list of dicts (rows), got {type(out).__name__}.")
    checked = []
    for i, row in enumerate(rows):
        clash = sorted(str(k) for k in row if k in params or k == "cell" or not isinstance(k, str))
        if clash:
            raise ValueError(f"row {i} has field(s) {clash} that clash with the cell's parameters (or the 'cell' "
                             f"column) or are not str; rename them.")
        checked.append({k: _scalar(v, f"row {i} field {k!r}") for k, v in row.items()})
    return checked


def _run_cell(cell_fn: Callable, params: dict, worker_threads: int | None = None) -> dict:
    """Run one cell in a worker: its record (status, rows or error and traceback, seconds), never raising an Exception.

    With ``worker_threads``, torch runs on that many threads for the cell, then on as many as before.
    """
    previous = None
    if worker_threads is not None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(worker_threads)
    t0 = time.perf_counter()
    try:
        rows = _check_rows(cell_fn(copy.deepcopy(params)), params)
        record = {"status": "ok", "rows": rows, "error": None, "traceback": None}
    except Exception as err:  # noqa: BLE001 - a failed cell is recorded; KeyboardInterrupt stops the grid
        record = {"status": "error", "rows": [], "error": f"{type(err).__name__}: {err}",
                  "traceback": traceback.format_exc()}
    finally:
        if previous is not None:
            torch.set_num_threads(previous)
    return {"cell": params, **record, "seconds": time.perf_counter() - t0}


def _problem(record, params: dict) -> str | None:
    """Why a parsed cell file cannot stand for the cell ``params`` (None: it can)."""
    if not (isinstance(record, dict) and record.get("status") in ("ok", "error")
            and isinstance(record.get("rows"), list) and all(isinstance(r, dict) for r in record["rows"])
            and type(record.get("attempts")) is int):
        return "not a cell record"
    return "holds other parameters" if _canonical(record.get("cell")) != _canonical(params) else None


def _load_record(path: Path, params: dict) -> dict | None:
    """The stored record of the cell ``params``, or None (with a warning when the file exists but is unusable)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        reason = _problem(record, params)
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        reason = error_summary(err)
    if reason is None:
        return record
    warnings.warn(f"cell file {path} is unusable ({reason}); running its cell again.", stacklevel=3)
    return None


def _worker_threads(worker_threads: int | None, n_jobs: int | None) -> int | None:
    """``worker_threads``, or 1 when cells run in parallel in other processes (None: keep torch's thread count)."""
    if worker_threads is not None:
        if not isinstance(worker_threads, int) or isinstance(worker_threads, bool) or worker_threads < 1:
            raise ValueError(f"worker_threads must be an int >= 1 or None, got {worker_threads!r}.")
        return worker_threads
    backend, _ = joblib.parallel.get_active_backend()
    if getattr(backend, "uses_threads", False):  # threads share this process's torch: leave its setting alone
        return None
    return 1 if joblib.effective_n_jobs(n_jobs) > 1 else None


@dataclass(frozen=True, eq=False)
class GridResult:
    """The outcome of :func:`run_grid`.

    table: one row per result row of every ok cell, in the order of ``cells`` then of the rows; columns
        ``cell`` (key), the parameters (lists / dicts as JSON text), then the row fields.
    failed: one row per failed cell: ``cell``, the parameters, ``error`` ("Type: message"), ``attempts``.
    n_run: cells run by this call.  n_reused: cells loaded from their files (ok, or failed and not retried).
    path: the table's CSV, ``out_dir/grid.csv``.
    """

    table: Any
    failed: Any
    n_run: int
    n_reused: int
    path: Path

    def __repr__(self) -> str:
        return (f"GridResult({len(self.table)} rows, {len(self.failed)} failed cells, n_run={self.n_run}, "
                f"n_reused={self.n_reused}, path={str(self.path)!r})")


def _frame(pd, rows: list[dict], param_names: list[str], extra: Sequence[str] = ()):
    """Rows as a DataFrame: ``cell``, the parameters, the other fields in order of appearance, then ``extra``."""
    names = ["cell", *param_names]
    names += [k for k in dict.fromkeys(k for row in rows for k in row) if k not in names and k not in extra]
    frame = pd.DataFrame(rows, columns=[*names, *extra])
    for name in param_names:  # lists / dicts as JSON text: hashable, groupable, the same in the CSV
        if frame[name].map(lambda v: isinstance(v, (list, dict))).any():
            frame[name] = frame[name].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v)
    return frame


def run_grid(cells: Sequence[Mapping], cell_fn: Callable[[dict], dict | list[dict]], out_dir, *,
             n_jobs: int | None = None, retry_failed: bool = True, progress: bool = True, desc: str = "grid",
             worker_threads: int | None = None) -> GridResult:
    """Run ``cell_fn`` on every cell not already done in ``out_dir``; the rows of all cells as one table.

    Args:
        cells: dicts of JSON parameters (str, int, float, bool, None, lists / dicts of these), all different.
        cell_fn: ``params -> row dict or list of row dicts``; row values are JSON scalars (numpy / torch
            scalars are converted with ``.item()``, NaN allowed), row fields must not repeat parameter names.
        out_dir: folder of ``cells/<key>.json`` (one per finished cell), ``grid.csv`` and ``failed.csv``.
        n_jobs: joblib's ``n_jobs``; None: the active ``joblib.parallel_config`` decides (serial by default).
        retry_failed: run the cells whose file records an error again (True) or keep them failed.
        progress: a tqdm bar over all cells.  desc: its label.
        worker_threads: torch threads while a cell runs (restored after); None: 1 when cells run in
            parallel in other processes, else torch's current setting.

    Returns :class:`GridResult`.  Raises TypeError / ValueError for bad cells, NotADirectoryError when
    ``out_dir`` is a file; errors of ``cell_fn`` are recorded, not raised.
    """
    from tqdm.auto import tqdm

    pd = _pandas()
    params, keys = _check_cells(cells)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"out_dir {out_dir} is a file, not a folder; give a folder for the grid's results.")
    cell_dir = out_dir / "cells"
    records, pending, attempts = {}, [], {}
    for key, p in zip(keys, params):
        record = _load_record(cell_dir / f"{key}.json", p)
        if record is not None and (record["status"] == "ok" or not retry_failed):
            records[key] = record
        else:
            pending.append(p)
            attempts[key] = record["attempts"] + 1 if record is not None else 1
    n_reused = len(records)
    if pending:
        threads = _worker_threads(worker_threads, n_jobs)
        results = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            joblib.delayed(_run_cell)(cell_fn, p, threads) for p in pending)
        with tqdm(total=len(params), initial=n_reused, desc=desc, disable=not progress) as bar:
            for result in results:
                key = cell_key(result["cell"])
                text = json.dumps({**result, "attempts": attempts[key]})
                atomic_write_text(text, cell_dir / f"{key}.json")
                records[key] = json.loads(text)  # as a rerun will read it back
                bar.update(1)
                bar.set_postfix(failed=sum(r["status"] != "ok" for r in records.values()), refresh=False)
    names = list(dict.fromkeys(name for p in params for name in p))
    rows = [{"cell": key, **p, **row} for key, p in zip(keys, params) if records[key]["status"] == "ok"
            for row in records[key]["rows"]]
    fails = [{"cell": key, **p, "error": records[key]["error"], "attempts": records[key]["attempts"]}
             for key, p in zip(keys, params) if records[key]["status"] != "ok"]
    table, failed = _frame(pd, rows, names), _frame(pd, fails, names, ("error", "attempts"))
    path = atomic_write_text(table.to_csv(index=False), out_dir / "grid.csv")
    if fails:
        atomic_write_text(failed.to_csv(index=False), out_dir / "failed.csv")
    else:
        (out_dir / "failed.csv").unlink(missing_ok=True)
    return GridResult(table=table, failed=failed, n_run=len(pending), n_reused=n_reused, path=path)


class SchedulerUnreachable(ConnectionError):
    """:func:`dask_client` could not connect to the Dask scheduler at the address it was given."""


def _unreachable(address: str, timeout: float, reason: str) -> SchedulerUnreachable:
    return SchedulerUnreachable(
        f"Cannot reach a Dask scheduler at {address} within {timeout:g} s ({reason}). Start one there with "
        f"`dask scheduler` and its workers with `dask worker {address}`, call dask_client() without an address "
        f"to start a local cluster, or drop joblib.parallel_config(backend='dask') to run the grid serially.")


def _connect(distributed, address: str, timeout: float):
    """``distributed.Client(address)``, or SchedulerUnreachable.  In a thread with a deadline: the client
    waits without limit for the handshake of a server that accepts the connection but never answers."""
    box = {}

    def connect():
        try:
            box["client"] = distributed.Client(address, timeout=timeout)
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread
            box["error"] = err

    thread = threading.Thread(target=connect, name=f"dask-connect {address}", daemon=True)
    thread.start()
    thread.join(2 * timeout + 3)
    if thread.is_alive():
        raise _unreachable(address, timeout, "the address accepted the connection but never answered as a Dask "
                                             "scheduler; the scheduler's port is usually 8786, its dashboard's 8787")
    err = box.get("error")
    if isinstance(err, (OSError, TimeoutError, EOFError, MemoryError)):  # MemoryError: another protocol's bytes
        reason = "the address answered, but not as a Dask scheduler" if isinstance(err, MemoryError) else None
        raise _unreachable(address, timeout, reason or error_summary(err)) from err
    if err is not None:
        raise err
    return box["client"]


@contextlib.contextmanager
def dask_client(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
                timeout: float = 10.0):
    """A ``distributed.Client`` for ``joblib.parallel_config(backend="dask")``; closed (with its cluster) on exit.

    address: a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``: connect within ``timeout`` seconds, or
        raise :class:`SchedulerUnreachable` (never a silent serial run).  None: start a local cluster of
        ``n_workers`` processes with ``threads_per_worker`` threads each (no dashboard).
    """
    distributed = require("distributed", "dask_client (Dask's distributed scheduler)", pip="dask[distributed]")
    with contextlib.ExitStack() as stack:  # closes the client, then the cluster
        if address is None:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, dashboard_address=None))
            client = stack.enter_context(distributed.Client(cluster, timeout=timeout))
        else:
            client = stack.enter_context(_connect(distributed, str(address), float(timeout)))
        yield client


def minmax_within(df, value: str, by: str | Sequence[str], *, name: str | None = None, invert: bool = False):
    """A copy of ``df`` with column ``name`` (default ``f"{value}_scaled"``): ``value`` min-max scaled to [0, 1]
    within each group of the column(s) ``by``.

    ``(v - min) / (max - min)``, or ``(max - v) / (max - min)`` with ``invert=True`` (for strengths where
    smaller is stronger, e.g. bit depth); a group whose values are all equal gets 0.0; NaN stays NaN.
    """
    pd = _pandas()
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [value, *by] if c not in df.columns]
    if missing or not by:
        raise KeyError(f"minmax_within: column(s) {missing or 'by (none given)'} not in the frame; "
                       f"its columns: {list(df.columns)}.")
    out = df.copy()
    try:
        v = pd.to_numeric(out[value]).astype(float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"minmax_within: column {value!r} is not numeric ({out[value].dtype}).") from err
    groups = v.groupby([out[c] for c in by], dropna=False)
    lo, hi = groups.transform("min"), groups.transform("max")
    span = hi - lo
    scaled = ((hi - v) if invert else (v - lo)) / span.where(span > 0)
    out[name or f"{value}_scaled"] = scaled.where(span > 0, 0.0).where(v.notna())
    return out


def comparable(table, timing_columns: Sequence[str] = ()):
    """``table`` without its wall-clock columns (``seconds``, names ending in ``_seconds``, ``timing_columns``),
    sorted by ``cell`` (rows of a cell in their order), index reset: equal for serial, parallel and Dask runs."""
    if "cell" not in table.columns:
        raise KeyError("comparable needs the 'cell' column of a run_grid table.")
    drop = [c for c in table.columns if c == "seconds" or str(c).endswith("_seconds") or c in set(timing_columns)]
    return table.drop(columns=drop).sort_values("cell", kind="stable").reset_index(drop=True)
