"""EntProp benchmark: counted passes and measured time per epoch of EntProp(k, n) against vanilla training, in one run.

Trains the `standard` profile's notebook-08 network (half-width FastNet) for one epoch on ``--images`` CIFAR-10
training images, vanilla and EntProp at both published settings (k, n) = (0.2, 1) and (0.6, 5), with this machine's
default precision, from scratch (nothing is cached).  For each EntProp setting it prints the forward/backward passes
counted per iteration (predicted: ``(1 + k n) N`` for a batch of N) and the time per epoch relative to vanilla's.

Goal (issue 15): the measured time ratio within 20 % of ``1 + k n``, the ratio the pass count predicts.

    python benchmarks/bench_entprop.py             # 10,000 images
    python benchmarks/bench_entprop.py --quick     # 2,000 images (a smoke check, no goal)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from labutils import data, models, runtime, training  # noqa: E402
from labutils.course import profiles  # noqa: E402

GOAL_TOLERANCE = 0.2


def one_epoch(P, key: str, images: int, train):
    cfg = dataclasses.replace(P.entprop_configs[key], epochs=1, train_size=images)
    runtime.seed_everything(cfg.seed)
    model = models.build(P.entprop_model[0], **P.entprop_model[1])
    training.fit(model, train, cfg, progress=False)  # warm-up: first-call allocations and kernel selection
    runtime.seed_everything(cfg.seed)
    model = models.build(P.entprop_model[0], **P.entprop_model[1])
    result = training.fit(model, train, cfg, progress=False)
    batches = -(-images // cfg.batch_size) if images < 2 * cfg.batch_size else images // cfg.batch_size
    return result.train_seconds, result.passes["forward"] / batches, cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images (one epoch)")
    parser.add_argument("--quick", action="store_true", help="2,000 images, no goal")
    args = parser.parse_args()
    images = 2000 if args.quick else args.images
    P = profiles.profile("standard", seed=0)
    train = data.load("cifar10", "train")
    base_seconds, base_passes, base_cfg = one_epoch(P, "vanilla", images, train)
    print(f"vanilla: {base_seconds:.1f} s per epoch, {base_passes:.0f} passes per iteration (batch {base_cfg.batch_size})")
    for key in (k for k in P.entprop_configs if k.startswith("entprop")):
        seconds, passes, cfg = one_epoch(P, key, images, train)
        predicted = 1 + cfg.entprop_k * cfg.attack_steps
        time_ratio, pass_ratio = seconds / base_seconds, passes / base_passes
        off = abs(time_ratio / predicted - 1)
        record(f"entprop_cost_{cfg.entprop_k:g}_{cfg.attack_steps}", value=seconds, unit="s/epoch", peer="vanilla",
               peer_value=base_seconds, ratio=base_seconds / seconds,
               goal=f"time ratio within {GOAL_TOLERANCE:.0%} of 1 + k n = {predicted:g}",
               passed=off <= GOAL_TOLERANCE if not args.quick else None, time_ratio=time_ratio, pass_ratio=pass_ratio,
               passes_per_iteration=passes, predicted=predicted, images=images, precision=P.precision)
        print(f"{key}: {passes:.0f} passes per iteration ({pass_ratio:.3f}x vanilla, predicted {predicted:g}x); "
              f"{seconds:.1f} s per epoch, {time_ratio:.2f}x vanilla ({off:.0%} from the prediction)")


if __name__ == "__main__":
    main()
