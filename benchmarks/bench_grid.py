"""Grid benchmark: one grid of time-to-failure cells run serially, on two loky workers and on a local Dask cluster.

Each cell (``seed`` x ``attack`` x ``n`` images) builds a seeded, untrained SimpleCNN, draws ``n`` seeded random
32x32 images, labels them with the model's own predictions (so every image starts correctly classified) and
measures each image's time to failure on an Linf ladder (:func:`labutils.robustness.survival.time_to_failure`,
FGSM or PGD): CPU-bound real work, no dataset files.  The same cells run three ways, each in a fresh folder:
serially (torch's default thread count), with ``joblib.parallel_config(backend="loky", n_jobs=2)`` (one torch
thread per worker) and on ``dask_client(n_workers=2, threads_per_worker=1)``.  The times are of ``run_grid``
alone: worker start-up (warmed with a task that imports torch and labutils) is printed apart.

Goal: each parallel mode gives a table identical to the serial one (:func:`labutils.course.grid.comparable`,
which drops the ``*_seconds`` columns); the speed-ups are reported, with no target: on a 2-core CPU a serial run
already uses both cores through torch's intra-op threads, so two one-thread workers gain little there (measured
2026-12-05, 10 cells of 64 images: loky 1.06x, Dask 0.68x); the backends pay off across machines.

    python benchmarks/bench_grid.py              # 10 cells (5 seeds x FGSM, PGD) of 64 images: ~1-3 s each
    python benchmarks/bench_grid.py --n 16       # a smoke check (start-up costs dominate)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import joblib  # noqa: E402
import torch  # noqa: E402
from common import record  # noqa: E402

from labutils import models  # noqa: E402
from labutils.course.grid import comparable, dask_client, run_grid  # noqa: E402
from labutils.robustness import survival  # noqa: E402

BUDGETS = [k / 255 for k in (0.1, 0.25, 0.5, 1, 2, 4, 8)]  # Linf, [0, 1] pixel scale
PGD_STEPS = 5


def survival_cell(params: dict) -> list[dict]:
    """One row per image: ``image``, ``duration`` (eps of the first flip), ``event`` (1 flipped, 0 censored)."""
    torch.manual_seed(params["seed"])
    model = models.build("simple_cnn").eval()
    g = torch.Generator().manual_seed(10_000 + params["seed"])
    x = torch.rand(params["n"], 3, 32, 32, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    data = survival.time_to_failure(model, x, y, BUDGETS, attack=params["attack"], steps=PGD_STEPS, progress=False)
    return [{"image": int(i), "duration": float(d), "event": int(e), "n_events": data.n_events,
             "attack_seconds": data.seconds} for i, d, e in zip(data.index, data.duration, data.event)]


def _warm(seconds: float = 0.5) -> int:
    """Import what the cells need in a worker (held a moment, so each worker of the pool gets one)."""
    import labutils.course.grid  # noqa: F401
    import labutils.robustness.survival  # noqa: F401

    time.sleep(seconds)
    return torch.get_num_threads()


def timed_grid(cells: list[dict], label: str) -> tuple[float, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench_grid_{label}_") as out:
        t0 = time.perf_counter()
        result = run_grid(cells, survival_cell, out, progress=False)
        seconds = time.perf_counter() - t0
    if len(result.failed):
        raise RuntimeError(f"{label}: cells failed:\n{result.failed.to_string()}")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images per cell")
    parser.add_argument("--seeds", type=int, default=5, help="seeds (models); cells = seeds x 2 attacks")
    args = parser.parse_args()
    cells = [{"seed": seed, "attack": attack, "n": args.n} for seed in range(args.seeds) for attack in ("fgsm", "pgd")]
    threads = torch.get_num_threads()

    serial_s, serial = timed_grid(cells, "serial")
    print(f"serial: {serial_s:.2f} s for {len(cells)} cells of {args.n} images ({threads} torch threads), "
          f"{serial_s / len(cells):.2f} s per cell; {len(serial.table)} rows", flush=True)
    reference = comparable(serial.table)
    runs = {}
    with joblib.parallel_config(backend="loky", n_jobs=2):
        t0 = time.perf_counter()
        joblib.Parallel()(joblib.delayed(_warm)() for _ in range(2))
        print(f"loky: 2 workers started in {time.perf_counter() - t0:.2f} s", flush=True)
        runs["loky"] = timed_grid(cells, "loky")
    t0 = time.perf_counter()
    with dask_client(n_workers=2, threads_per_worker=1) as client, joblib.parallel_config(backend="dask"):
        client.run(_warm)
        print(f"dask: local cluster of 2 workers x 1 thread started in {time.perf_counter() - t0:.2f} s", flush=True)
        runs["dask"] = timed_grid(cells, "dask")

    identical = {mode: comparable(result.table).equals(reference) for mode, (_, result) in runs.items()}
    for mode, (seconds, _) in runs.items():
        speedup = serial_s / seconds
        print(f"{mode}: {seconds:.2f} s, speed-up {speedup:.2f}x vs serial; table identical: {identical[mode]}")
        record(f"grid_{mode}_2x1", value=seconds, unit="s", peer="serial run_grid, same cells, same run",
               peer_value=serial_s, ratio=speedup, goal="the serial table (speed-up reported, no target)",
               passed=identical[mode], cells=len(cells), images_per_cell=args.n,
               serial_threads=threads, table_identical=identical[mode])
    print(f"tables identical: {all(identical.values())}")


if __name__ == "__main__":
    main()
