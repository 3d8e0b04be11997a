"""Execute the notebook series headlessly and write the results report.

    python -m labutils.runner --profile standard            # every notebook, in order
    python -m labutils.runner --profile smoke --only 00 02  # a selection

Each notebook runs with papermill (parameter ``PROFILE`` injected after its
``parameters`` cell) into ``runs/<profile>/``: the executed notebook, its
figures under ``figures/`` and its metrics under ``metrics/``.  Finally
``runs/<profile>/report.md`` puts every metric next to its published reference
value.  A failing notebook is reported with the cell that failed; the others
still run, and the exit status is non-zero.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .profiles import PROFILES, profile_name
from .report import REPO_ROOT, write_report
from .train import MALLOC_ENV

__all__ = ["NotebookFailure", "notebooks", "run_series", "main"]

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


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


def notebooks(selection: list[str] | None = None, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in order; ``selection`` keeps those whose name starts with an entry."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if selection:
        chosen = [p for p in found if any(p.name.startswith(s) for s in selection)]
        unknown = [s for s in selection if not any(p.name.startswith(s) for p in found)]
        if unknown:
            raise ValueError(f"No notebook matches {unknown}; available: {[p.name for p in found]}.")
        found = chosen
    return found


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
    except Exception:
        pass
    return NotebookFailure(nb, out, cell, error.strip().splitlines()[0] if error.strip() else error, source)


def run_series(profile: str, *, selection: list[str] | None = None, out_dir: Path | None = None,
               kernel: str = "python3", progress: bool = True,
               folder: Path = NOTEBOOK_DIR) -> tuple[Path, list[NotebookFailure]]:
    """Execute the notebooks of ``folder`` for ``profile``; return ``(report path, failures)``."""
    import papermill
    from tqdm.auto import tqdm

    profile = profile_name(profile)
    out_dir = Path(out_dir) if out_dir is not None else REPO_ROOT / "runs" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["LAB_RUN_DIR"] = str(out_dir)
    os.environ["LAB_PROFILE"] = profile
    os.environ.setdefault("MPLBACKEND", "Agg")
    for key, value in MALLOC_ENV.items():  # the kernels start with the reuse-friendly malloc settings
        os.environ.setdefault(key, value)
    failures: list[NotebookFailure] = []
    todo = notebooks(selection, folder)
    bar = tqdm(todo, desc=f"notebooks ({profile})", unit="nb", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb.name)
        out = out_dir / nb.name
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(str(nb), str(out), parameters={"PROFILE": profile}, kernel_name=kernel,
                                       cwd=str(nb.parent), progress_bar=False, log_output=False)
        except Exception as exc:  # papermill's execution error carries the failing cell
            failures.append(_failure(nb, out, exc))
            tqdm.write(f"FAILED {failures[-1]}")
        else:
            tqdm.write(f"ok     {nb.name} ({time.perf_counter() - t0:.0f} s)")
    report = write_report(out_dir, profile=profile)
    return report, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)} (default: $LAB_PROFILE or standard)")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 00 02")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<profile>)")
    args = parser.parse_args(argv)
    try:
        report, failures = run_series(profile_name(args.profile), selection=args.only, out_dir=args.out)
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
