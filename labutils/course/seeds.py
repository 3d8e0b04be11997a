"""Do the course's claims hold for every seed and precision?  ``make seeds``.

    python -m labutils.course.seeds                       # seeds 0-4 x (this CPU's default, fp32 as on an AVX2 laptop)
    python -m labutils.course.seeds --seeds 0 3 --precisions fp32
    python -m labutils.course.seeds --paths notebooks/03_pgd_and_norms.ipynb --out runs/seeds-03

For every seed offset and precision it runs the smoke notebooks and the tests
marked ``trains`` (``pytest -m trains tests notebooks --nbval-lax``) in a fresh
process with ``LAB_SEED``, ``LAB_PRECISION`` and ``LAB_CLAIMS_LOG`` set, then
prints one table: each claim (:mod:`labutils.course.claims`), the value it measured
in every run, the bound, the smallest margin and the runs where it failed.  A
test that failed outside a claim is listed below the table.

``fp32`` also sets ``ATEN_CPU_CAPABILITY=avx2`` and ``ONEDNN_MAX_CPU_ISA=AVX2``
when this CPU has AVX-512, so that it runs the kernels of a student's AVX2
laptop (measured: this reproduces an AVX2 machine's failures exactly).
``default`` is whatever this machine uses unasked (bf16 where it is native).

Output: ``runs/seeds/`` holds the claims logs, each run's pytest log and
``claims.md`` (the table).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .report import REPO_ROOT
from ..runtime import MALLOC_ENV

__all__ = ["AVX2_ENV", "run_environment", "claims_table", "main"]

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PRECISIONS = ("default", "fp32")


def _has_avx512() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")


def run_environment(seed: int, precision: str, base: dict | None = None, *, avx512: bool | None = None) -> dict:
    """The environment of one run: ``base`` (default: this process's) with the seed and precision set."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    env = dict(os.environ if base is None else base)
    env.update({"LAB_SEED": str(seed), "LAB_PROFILE": "smoke", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"})
    for key, value in MALLOC_ENV.items():
        env.setdefault(key, value)
    env.pop("LAB_PRECISION", None)
    if precision == "fp32":
        env["LAB_PRECISION"] = "fp32"
        if _has_avx512() if avx512 is None else avx512:
            env.update(AVX2_ENV)
    return env


def _run(seed: int, precision: str, out: Path, paths: list[str], pytest_args: list[str]) -> dict:
    name = f"seed{seed}-{precision}"
    log, junit, claims = out / f"{name}.log", out / f"{name}.xml", out / f"{name}.claims.jsonl"
    claims.unlink(missing_ok=True)
    env = run_environment(seed, precision)
    env["LAB_CLAIMS_LOG"] = str(claims)
    if not any(Path(p).parts[:1] == ("tests",) for p in paths):
        paths = ["tests/conftest.py", *paths]  # it marks what trains (-m trains) and seeds the subsets
    cmd = [sys.executable, "-m", "pytest", "-m", "trains", *paths, "--nbval-lax",
           "--nbval-cell-timeout=900", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *pytest_args]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    return {"run": name, "seed": seed, "precision": precision, "exit": code, "seconds": time.perf_counter() - t0,
            "failed_tests": _failed_tests(junit), "log": str(log), "claims": str(claims)}


def _failed_tests(junit: Path) -> list[str]:
    if not junit.exists():
        return ["(no test report: see the log)"]
    failed = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return failed


def read_claims(path: str | os.PathLike) -> list[dict]:
    """The records of a claims log (:mod:`labutils.course.claims`)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def claims_table(runs: list[dict]) -> str:
    """A markdown table: one row per claim, one column per run, then bound, smallest margin and failures."""
    names = [r["run"] for r in runs]
    rows: dict[tuple, dict] = {}
    for r in runs:
        for c in read_claims(r["claims"]):
            key = (c["where"], c["claim"], c["op"])
            row = rows.setdefault(key, {"bound": c["bound"], "values": {}, "asserted": c["asserted"]})
            row["values"][r["run"]] = c["value"]  # a test that checks a claim twice keeps the last
            row.setdefault("margins", {})[r["run"]] = c["margin"]
    lines = ["| where | claim | " + " | ".join(names) + " | bound | smallest margin | failed in |",
             "| --- | --- | " + " | ".join("---:" for _ in names) + " | --- | ---: | --- |"]
    for (where, claim, op), row in sorted(rows.items()):
        values = [f"{row['values'][n]:.4g}" if n in row["values"] else "–" for n in names]
        margins = row["margins"]
        failed = [n for n, m in margins.items() if m < 0]
        note = "" if row["asserted"] else " (observation)"
        lines.append(f"| {Path(where).name if '::' not in where else where} | {claim}{note} | " + " | ".join(values)
                     + f" | {op} {row['bound']:.4g} | {min(margins.values()):+.4g} | {', '.join(failed)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "seeds")
    parser.add_argument("--paths", nargs="+", default=["tests", "notebooks"],
                        help="what pytest collects (default: tests notebooks), e.g. notebooks/03_pgd_and_norms.ipynb")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the notebooks' kernels run in notebooks/: the claims log needs an absolute path
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        for precision in args.precisions:
            print(f"seed {seed}, {precision}: running ...", flush=True)
            runs.append(_run(seed, precision, args.out, args.paths, args.pytest_args))
            r = runs[-1]
            print(f"seed {seed}, {precision}: exit {r['exit']} in {r['seconds']:.0f} s; "
                  f"failed: {', '.join(r['failed_tests']) or 'none'}", flush=True)
    table = claims_table(runs)
    failed = [(r["run"], t) for r in runs for t in r["failed_tests"]]
    text = table + "\n\n" + ("Failed tests:\n" + "\n".join(f"- {n}: {t}" for n, t in failed) if failed
                             else "Every test passed in every run.") + "\n"
    (args.out / "claims.md").write_text(text)
    (args.out / "runs.json").write_text(json.dumps(runs, indent=2))
    print(text)
    print(f"table: {args.out / 'claims.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
