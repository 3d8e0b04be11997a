"""Training benchmark: FastNet on CIFAR-10 with the `standard` profile's recipe, on this machine.

Trains from scratch (no cache) and prints test accuracy (flip TTA) and training wall time.
Goal: >= 85.5 % (the published hybrid CNN's figure) within 10 minutes on a 2-core CPU; 90 % is the
stretch goal. Where the CPU has native bf16 (the default then), the same recipe is also trained in
fp32 for --compare-epochs epochs (default 3), next to a bf16 run of the same length, to show the
speed-up and that accuracy holds (skip with --no-fp32).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from common import record  # noqa: E402
from labutils import data, models, profiles, train  # noqa: E402

REFERENCE = 0.855


def _run(cfg, tr, te):
    train.seed_everything(cfg.seed)
    model = models.FastNet()
    result = train.fit(model, tr, cfg, device="cpu")
    return result, train.evaluate(model, *te, tta=True), train.evaluate(model, *te)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-fp32", action="store_true", help="skip the fp32 comparison run")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--compare-epochs", type=int, default=3, help="length of the bf16-vs-fp32 comparison")
    args = parser.parse_args(argv)
    cfg = profiles.profile("standard").fast_config
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    tr, te = data.load("cifar10", "train"), data.load("cifar10", "test")
    auto = train.autocast_dtype("cpu", cfg.precision)
    res, acc, acc_plain = _run(cfg, tr, te)
    minutes = res.train_seconds / 60
    record("fastnet_cifar10_standard", value=100 * acc, unit="% test acc", peer="published hybrid CNN (85.5 %)",
           peer_value=100 * REFERENCE, ratio=acc / REFERENCE, goal=">= 85.5 % in <= 10 min (stretch 90 %)",
           passed=acc >= REFERENCE and minutes <= 10, train_minutes=minutes, precision=res.precision,
           epochs=cfg.epochs, acc_no_tta=acc_plain,
           dataset="CIFAR-10 from the data directory (JPEG re-export in CI/offline mirrors)")
    print(f"    trained {cfg.epochs} epochs in {minutes:.1f} min ({res.precision}); "
          f"test accuracy {acc:.2%} with flip TTA, {acc_plain:.2%} without")
    if auto is not None and not args.no_fp32:
        short = dataclasses.replace(cfg, epochs=args.compare_epochs)
        res16, acc16, _ = _run(short, tr, te)
        res32, acc32, _ = _run(dataclasses.replace(short, precision="fp32"), tr, te)
        speedup = res32.train_seconds / res16.train_seconds
        record("fastnet_bf16_vs_fp32", value=speedup, unit="x faster", peer="same recipe in fp32",
               peer_value=res32.train_seconds / 60, ratio=speedup,
               goal="bf16 faster, accuracy within 0.5 points", passed=speedup > 1 and abs(acc16 - acc32) <= 0.005,
               epochs=short.epochs, acc_bf16=acc16, acc_fp32=acc32, minutes_bf16=res16.train_seconds / 60,
               minutes_fp32=res32.train_seconds / 60)
        print(f"    {short.epochs} epochs: bf16 {res16.train_seconds / 60:.1f} min, {acc16:.2%}; "
              f"fp32 {res32.train_seconds / 60:.1f} min, {acc32:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
