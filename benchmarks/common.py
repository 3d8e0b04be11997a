"""Shared helpers of the benchmarks: one JSON file per benchmark under runs/bench/ and a printed table row."""
from __future__ import annotations

import json
import os
from pathlib import Path

from labutils.course.report import REPO_ROOT, machine_info

BENCH_DIR = Path(os.environ.get("LAB_BENCH_DIR", REPO_ROOT / "runs" / "bench"))


def record(benchmark: str, *, value: float, unit: str, peer: str, peer_value: float | None, ratio: float | None,
           goal: str, passed: bool | None, **extra) -> dict:
    """Print one result line and write ``runs/bench/<benchmark>.json``.

    ``value``/``peer_value`` are the measured figure of labutils and of the named peer, in ``unit``;
    ``ratio`` is labutils relative to the peer (higher is better); ``goal`` states the target in words.
    """
    entry = {"benchmark": benchmark, "value": value, "unit": unit, "peer": peer, "peer_value": peer_value,
             "ratio": ratio, "goal": goal, "passed": passed, "machine": machine_info(), **extra}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / f"{benchmark}.json").write_text(json.dumps(entry, indent=2, default=str))
    ratio_s = f"{ratio:.2f}x" if ratio is not None else "-"
    peer_s = f"{peer_value:.4g}" if peer_value is not None else "-"
    verdict = {True: "PASS", False: "FAIL", None: "-"}[passed]
    print(f"{benchmark:<34} {value:>10.4g} {unit:<10} vs {peer} {peer_s:>10}  ratio {ratio_s:>7}  goal: {goal}  [{verdict}]",
          flush=True)
    return entry
