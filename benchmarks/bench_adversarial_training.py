"""Adversarial-training benchmark: fast FGSM (Wong et al. 2020) against standard training of the same network.

Trains both from scratch with the `standard` profile's notebook-04 recipe (``adv_configs``), in one run, on
this machine's default precision (a cached checkpoint is ignored; the new one is stored in the checkpoint
cache, so notebook 04's standard profile reuses both models), and attacks the same test images with PGD-10 (eps 8/255, step
2/255, one random start) through :func:`labutils.attacks.pgd`.

Goals (issue 11): fast FGSM trains in at most 2x the time of standard training, and its PGD-10 accuracy is at
least 25 points above the standard model's.  Prints clean and PGD-10 accuracy of both, the training times and
the counted forward / backward passes (fast FGSM's predicted cost is 2x).

    python benchmarks/bench_adversarial_training.py            # the standard profile's recipe
    python benchmarks/bench_adversarial_training.py --quick    # a fifth of the data, for a quick look (no goal)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import record  # noqa: E402

from labutils import attacks, data, training  # noqa: E402
from labutils.course import profiles  # noqa: E402

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10
GOAL_TIME_RATIO, GOAL_PGD_GAIN = 2.0, 0.25


def train(mode: str, P, quick: bool):
    cfg = P.adv_configs[mode]
    if quick:
        cfg = dataclasses.replace(cfg, train_size=10_000)
    name, kwargs = P.adv_model
    return training.get_or_train(name, cfg, model_kwargs=kwargs, retrain=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train on 10,000 images (no goal is checked)")
    parser.add_argument("--n-test", type=int, default=1000, help="test images attacked (default 1000)")
    args = parser.parse_args()
    P = profiles.profile("standard", seed=0)
    x_test, y_test = data.subset(*data.load("cifar10", "test"), args.n_test, seed=0)
    x = data.to_float(x_test)
    rows = {}
    for mode in ("standard", "fast_fgsm"):
        model, info = train(mode, P, args.quick)
        clean = training.evaluate(model, x_test, y_test)
        x_adv = attacks.pgd(model, x, y_test, EPS, ALPHA, STEPS, generator=torch.Generator().manual_seed(0))
        robust = float((training.predict_logits(model, x_adv).argmax(1) == y_test).float().mean())
        rows[mode] = {"clean": clean, "pgd10": robust, "seconds": info["train_seconds"], "passes": info["passes"],
                      "catastrophic_overfitting": info["catastrophic_overfitting"]}
        print(f"{mode:<10} clean {clean:.1%}  PGD-10 {robust:.1%}  training {info['train_seconds']:.0f} s  "
              f"passes {info['passes']}  catastrophic overfitting: {info['catastrophic_overfitting']}", flush=True)
    std, fast = rows["standard"], rows["fast_fgsm"]
    time_ratio = fast["seconds"] / std["seconds"]
    pass_ratio = fast["passes"]["forward"] / std["passes"]["forward"]
    gain = fast["pgd10"] - std["pgd10"]
    goal = not args.quick
    record("adv_training_time", value=fast["seconds"], unit="s", peer="standard training", peer_value=std["seconds"],
           ratio=std["seconds"] / fast["seconds"], goal=f"fast FGSM <= {GOAL_TIME_RATIO:g}x standard's time",
           passed=time_ratio <= GOAL_TIME_RATIO if goal else None, time_ratio=time_ratio, pass_ratio=pass_ratio,
           rows=rows, quick=args.quick)
    record("adv_training_pgd10_gain", value=fast["pgd10"], unit="accuracy", peer="standard training",
           peer_value=std["pgd10"], ratio=None, goal=f"PGD-10 accuracy >= {GOAL_PGD_GAIN:.0%} above standard's",
           passed=gain >= GOAL_PGD_GAIN if goal else None, gain=gain, quick=args.quick)
    print(f"fast FGSM / standard: time {time_ratio:.2f}x (counted passes {pass_ratio:.2f}x), "
          f"PGD-10 gain {gain:+.1%} (clean {fast['clean']:.1%} vs {std['clean']:.1%})")


if __name__ == "__main__":
    main()
