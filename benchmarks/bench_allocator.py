"""Allocator benchmark: the course's glibc malloc settings (``labutils.runtime.MALLOC_ENV``) against glibc's defaults.

The same workload runs in fresh Python processes, alternately with glibc's default settings (the peer)
and with ``MALLOC_ENV`` (what ``make`` and the runner use): one epoch of FastNet training with the
``standard`` recipe on the first ``--train-size`` CIFAR-10 training images, then PGD-10 (Linf 8/255) on
256 test images with ``labutils.attacks.pgd``.  Each variant runs ``--reps`` times; the best time of
each phase and the peak resident memory are compared.

Goal: faster training and attacks, with peak memory at most 1.3x the default's.

Usage: ``LAB_DATA_DIR=... python benchmarks/bench_allocator.py [--quick]``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402
from labutils.runtime import MALLOC_ENV  # noqa: E402


def _workload(train_size: int) -> dict:
    """Run the workload in this process; times in seconds, peak RSS in MiB."""
    import torch

    from labutils import attacks, data, models, runtime, training
    from labutils.course import profiles

    cfg = dataclasses.replace(profiles.profile("standard").fast_config, epochs=1, train_size=train_size)
    tr, (xt, yt) = data.load("cifar10", "train"), data.load("cifar10", "test")
    runtime.seed_everything(0)
    model = models.FastNet()
    t0 = time.perf_counter()
    training.fit(model, tr, cfg, device="cpu", progress=False)
    t_train = time.perf_counter() - t0
    x, y = data.to_float(xt[:256]), yt[:256].clone()
    model = model.eval().to(memory_format=torch.channels_last)
    attacks.pgd(model, x[:32], y[:32], 8 / 255, 2 / 255, 2, random_start=False)  # warm-up
    t0 = time.perf_counter()
    attacks.pgd(model, x, y, 8 / 255, 2 / 255, 10, random_start=False)
    t_attack = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"train_s": t_train, "attack_s": t_attack, "peak_rss_mib": rss}


def _run(tuned: bool, train_size: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    if tuned:
        env.update(MALLOC_ENV)
    out = subprocess.run([sys.executable, __file__, "--worker", "--train-size", str(train_size)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and one repetition")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default 8192, quick 2048)")
    parser.add_argument("--reps", type=int, default=None, help="runs of each variant (default 2, quick 1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    train_size = args.train_size or (2048 if args.quick else 8192)
    if args.worker:
        print(json.dumps(_workload(train_size)))
        return 0
    reps = args.reps or (1 if args.quick else 2)
    runs: dict[str, list[dict]] = {"glibc defaults": [], "MALLOC_ENV": []}
    for _ in range(reps):
        for name in runs:
            runs[name].append(_run(name == "MALLOC_ENV", train_size))
            r = runs[name][-1]
            print(f"    {name:<15} training {r['train_s']:6.2f} s, PGD-10 {r['attack_s']:5.2f} s, "
                  f"peak RSS {r['peak_rss_mib']:6.0f} MiB", flush=True)
    best = {name: {k: min(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    base, tuned = best["glibc defaults"], best["MALLOC_ENV"]
    memory_ratio = tuned["peak_rss_mib"] / base["peak_rss_mib"]
    common = {"train_size": train_size, "reps": reps, "settings": MALLOC_ENV, "runs": runs}
    record("malloc_env_training", value=tuned["train_s"], unit="s", peer="glibc default malloc",
           peer_value=base["train_s"], ratio=base["train_s"] / tuned["train_s"],
           goal="faster; peak RSS <= 1.3x", passed=tuned["train_s"] < base["train_s"] and memory_ratio <= 1.3,
           peak_rss_mib=tuned["peak_rss_mib"], peer_peak_rss_mib=base["peak_rss_mib"], memory_ratio=memory_ratio,
           **common)
    record("malloc_env_pgd10", value=tuned["attack_s"], unit="s", peer="glibc default malloc",
           peer_value=base["attack_s"], ratio=base["attack_s"] / tuned["attack_s"], goal="faster",
           passed=tuned["attack_s"] < base["attack_s"], **common)
    print(f"    peak RSS {tuned['peak_rss_mib']:.0f} MiB vs {base['peak_rss_mib']:.0f} MiB ({memory_ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
