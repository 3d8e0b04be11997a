"""Execute the notebook series headlessly and write the results report.

    python -m labutils.course.runner --profile standard            # every notebook, in order
    python -m labutils.course.runner --profile smoke --only 00 02  # a selection

Each notebook runs with papermill (parameter ``PROFILE`` injected after its
``parameters`` cell) into ``runs/<profile>/``: the executed notebook, its
figures under ``figures/`` and its metrics under ``metrics/``.  Finally
``runs/<profile>/report.md`` leads with the course's findings beside the
published figures and their verdicts (:mod:`labutils.course.findings`), then
gives each notebook's run time with what it ran under: device, precision, CPU
kernels, and how many of its models it trained or loaded (from this run, the
cache or handed-out checkpoints; :mod:`labutils.course.conditions`), and every
metric.  The last notebook, ``10_reliability_report``, reads the others'
metrics; when it ran, it is also exported as ``10_reliability_report.html``.  A
failing notebook is reported with the cell that failed; the others still run,
and the exit status is non-zero.

Without ``--profile`` (and ``$LAB_PROFILE``) the profile is ``full`` where a
CUDA GPU is in use, else ``standard`` (:func:`labutils.course.profiles.choose_profile`).

While it runs, the terminal shows the notebook, the cell being executed (its
number and first line), the elapsed time and an estimate of the time left:
from this machine's earlier run of the profile when there is one, else from
the reference machine's times scaled by a short calibration
(:mod:`labutils.course.timing`).  Kernels talk to the runner over local IPC sockets
(POSIX), not TCP.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..files import atomic_write_text
from ..runtime import MALLOC_ENV
from . import timing
from .conditions import ModelLedger, notebook_conditions, save_conditions
from .findings import REPORT_NOTEBOOK
from .paths import NOTEBOOK_DIR, REPO_ROOT
from .paths import notebook_paths as notebooks  # the runner's name for it: runner.notebooks(["00", "02"])
from .profiles import PROFILES, choose_profile, profile_name
from .report import write_report

__all__ = ["NotebookFailure", "notebooks", "run_series", "export_html", "main"]


@dataclass
class NotebookFailure:
    notebook: Path
    output: Path
    cell: int | None
    error: str
    source: str = ""

    def __str__(self) -> str:
        where = f"cell [{self.cell}]" if self.cell is not None else "an unknown cell"
        first_line = self.source.strip().splitlines()[0] if self.source.strip() else ""
        code = f" `{first_line[:80]}`" if first_line else ""
        return f"{self.notebook.name} failed in {where}{code}: {self.error}\n    executed copy: {self.output}"


def _failure(nb: Path, out: Path, exc: Exception) -> NotebookFailure:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    error = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    source = ""
    try:  # the executed copy marks the failing cell with an error output
        import nbformat

        for c in nbformat.read(out, as_version=4).cells:
            if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", [])):
                source, cell = c.source, c.get("execution_count") or cell
                break
    except (OSError, ValueError) as read_error:  # no executed copy, or a truncated one (nbformat's errors are ValueErrors)
        source = f"(the executed copy {out} could not be read: {type(read_error).__name__}: {read_error})"
    return NotebookFailure(nb, out, cell, error.strip().splitlines()[0] if error.strip() else error, source)


def _minutes(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """One status line for a series run: notebook, current cell, elapsed time, estimate of the time left.

    On a terminal the line is redrawn in place every ``interval`` seconds (so the clock moves during a
    long training cell); elsewhere (CI logs) one line is printed per cell.
    """

    def __init__(self, names: list[str], expected: list[float], *, stream=None, interval: float = 1.0,
                 live: bool | None = None):
        self.names, self.expected = names, expected
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval
        self.t_start = self.t_nb = time.perf_counter()
        self.index, self.cell, self.n_cells, self.source = 0, 0, 0, ""
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the redraw thread and messages share one terminal line
        self._thread = None

    def line(self) -> str:
        now = time.perf_counter()
        left = max(self.expected[self.index] - (now - self.t_nb), 0) + sum(self.expected[self.index + 1:])
        first = self.source.strip().splitlines()[0][:60] if self.source.strip() else ""
        return (f"[{self.index + 1}/{len(self.names)}] {self.names[self.index]} · cell {self.cell}/{self.n_cells}"
                f" `{first}` · elapsed {_minutes(now - self.t_start)} · left ~{_minutes(left)}")

    def notebook(self, index: int, n_cells: int) -> None:
        self.index, self.n_cells, self.cell, self.source = index, n_cells, 0, ""
        self.t_nb = time.perf_counter()

    def on_cell_start(self, cell, cell_index: int, **_) -> None:
        if cell.get("cell_type") != "code":
            return
        self.cell, self.source = self.cell + 1, cell.get("source", "")
        if not self.live:
            print(self.line(), file=self.stream, flush=True)

    def write(self, text: str) -> None:
        """Print a message above the status line."""
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K")
            print(text, file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                width = os.get_terminal_size(self.stream.fileno()).columns - 1
            except (OSError, ValueError):
                width = 120
            with self._lock:
                self.stream.write("\r\033[K" + self.line()[:width])
                self.stream.flush()

    def __enter__(self):
        if self.live:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\033[K")
            self.stream.flush()


def _ipc_kernel_manager():
    """A kernel manager class whose kernels use local IPC sockets (POSIX); None where TCP is the only choice."""
    if os.name != "posix":
        return None
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """Kernels on Unix-domain sockets: no TCP port, nothing to encrypt."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"

    return IPCKernelManager


def run_series(profile: str, *, selection: list[str] | None = None, out_dir: Path | None = None,
               kernel: str = "python3", progress: bool = True,
               folder: Path = NOTEBOOK_DIR) -> tuple[Path, list[NotebookFailure]]:
    """Execute the notebooks of ``folder`` for ``profile``; return ``(report path, failures)``."""
    profile = profile_name(profile)
    # absolute: the kernels run in the notebooks' folder and write metrics and figures under LAB_RUN_DIR
    out_dir = Path(out_dir).resolve() if out_dir is not None else REPO_ROOT / "runs" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    # the checkpoint log that tells which models each notebook loaded: the caller's $LAB_CHECKPOINT_LOG (absolute,
    # as the kernels run in the notebooks' folder; `make checkpoints` packs it), else a temporary file
    log = settings.checkpoint_log()
    own_log = log is None
    if own_log:
        fd, name = tempfile.mkstemp(prefix="lab-checkpoint-log-", suffix=".txt")
        os.close(fd)
        log = Path(name)
    # what the kernels inherit (the reuse-friendly malloc settings among it); restored when the run ends
    kernel_env = {"LAB_RUN_DIR": str(out_dir), "LAB_PROFILE": profile, "LAB_CHECKPOINT_LOG": str(log.resolve()),
                  **{k: os.environ.get(k, v) for k, v in {"MPLBACKEND": "Agg", **MALLOC_ENV}.items()}}
    try:
        with _environment(kernel_env):
            return _run_notebooks(profile, selection, out_dir, kernel, progress, folder, ModelLedger(log.resolve()))
    finally:
        if own_log:
            log.unlink(missing_ok=True)


@contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the length of a ``with`` block, then put back what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_notebooks(profile: str, selection, out_dir: Path, kernel: str, progress: bool,
                   folder: Path, ledger: ModelLedger) -> tuple[Path, list[NotebookFailure]]:
    import nbformat
    import papermill

    failures: list[NotebookFailure] = []
    todo = notebooks(selection, folder)
    names = [nb.stem for nb in todo]
    measured = timing.load_timings(out_dir)
    factor = 1.0 if all(n in measured for n in names) or not progress else timing.speed_factor(timing.calibrate())
    expected = timing.expected_seconds(profile, names, factor, measured)
    engine = {"kernel_manager_class": km} if (km := _ipc_kernel_manager()) is not None else {}
    timings: dict[str, float] = {}
    conditions: dict[str, dict] = {}
    stream = sys.stderr if progress else io.StringIO()
    with Progress(names, expected, stream=stream, live=None if progress else False) as bar:
        bar.write(f"{len(todo)} notebook(s), profile {profile}: about {_minutes(sum(expected))} expected on this "
                  f"machine ({'its earlier run' if measured else f'reference times x {factor:.2f}'})")
        for i, nb in enumerate(todo):
            bar.notebook(i, sum(c.cell_type == "code" for c in nbformat.read(nb, as_version=4).cells) + 1)
            out = out_dir / nb.name
            ledger.begin()
            t0, started = time.perf_counter(), time.time()
            try:
                papermill.execute_notebook(str(nb), str(out), parameters={"PROFILE": profile}, kernel_name=kernel,
                                           cwd=str(nb.parent), progress_bar=False, log_output=False,
                                           on_cell_start=bar.on_cell_start, **engine)
            except Exception as exc:  # papermill's execution error carries the failing cell
                failures.append(_failure(nb, out, exc))
                bar.write(f"FAILED {failures[-1]}")
            else:
                timings[nb.stem] = time.perf_counter() - t0
                conditions[nb.stem] = {**notebook_conditions(out_dir / "metrics" / f"{nb.stem}.json", started),
                                       **ledger.end()}
                bar.write(f"ok     {nb.name} ({timings[nb.stem]:.0f} s)")
    if timings:
        timing.save_timings(out_dir, timings)
        save_conditions(out_dir, conditions)
    report = write_report(out_dir, profile=profile)
    executed = out_dir / f"{REPORT_NOTEBOOK}.ipynb"
    if REPORT_NOTEBOOK in timings:  # the reliability report ran this time: also as one HTML page to hand round
        try:
            bar.write(f"report: {report}; findings: {export_html(executed)}")
        except Exception as exc:  # nbconvert's template or a malformed notebook: the run's results stay reported
            failures.append(NotebookFailure(executed, executed.with_suffix(".html"), None,
                                            f"HTML export failed: {type(exc).__name__}: {exc}"))
            bar.write(f"FAILED {failures[-1]}")
    return report, failures


def export_html(executed: Path) -> Path:
    """Write an executed notebook as a self-contained HTML page beside it (figures embedded); return its path."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(executed))
    return atomic_write_text(body, executed.with_suffix(".html"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)} (default: $LAB_PROFILE, else "
                                                         "full where a CUDA GPU is in use, else standard)")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 00 02")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<profile>)")
    args = parser.parse_args(argv)
    try:
        profile, reason = choose_profile(args.profile)
        print(f"profile {profile!r}: {'given by --profile' if args.profile else reason}", file=sys.stderr)
        report, failures = run_series(profile, selection=args.only, out_dir=args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    if failures:
        print(f"{len(failures)} notebook(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
