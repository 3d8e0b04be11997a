"""Randomized-smoothing benchmark: certifying Fashion-MNIST test images, labutils against the Adversarial
Robustness Toolbox (ART), with the same base model, sigma, n0, n and alpha, in one run, on the CPU.

The base model is ``GrayscaleCNN`` trained with Gaussian noise augmentation (``TrainConfig(mode="gaussian",
noise_sigma=SIGMA)``, cached under ``$LAB_DATA_DIR/checkpoints`` after the first run).  Both sides certify
the same ``--n-images`` test images with Cohen et al.'s CERTIFY (``n0`` selection copies, ``n``
estimation copies, one-sided Clopper-Pearson bound at ``alpha``):

* labutils: ``robustness.SmoothedClassifier.certify`` (noisy copies of several images in one forward
  pass, votes counted with ``bincount``);
* ART: ``PyTorchRandomizedSmoothing.certify`` (``art.estimators.certification.randomized_smoothing``).

Figures (one ``runs/bench/<name>.json`` each):

* ``smoothing_certify_speed``: images certified per second, labutils vs ART (goal >= 3x);
* ``smoothing_certify_bound``: labutils' images/s against the compute bound, the base model's raw forward
  throughput (batch ``BATCH``, inference mode) divided by the ``n0 + n`` copies per image: no implementation
  that classifies every noisy copy can certify faster in fp32 (the peer's ratio is printed too);
* ``smoothing_certify_bf16``: labutils with ``precision="auto"`` (bf16 autocast where the CPU computes bf16
  natively; on an fp32-only CPU it is the fp32 figure again) against ART;
* ``smoothing_certify_agreement``: share of images with the same certified prediction (goal >= 99 %),
  with every disagreement listed with both sides' p_lower and whether the two estimates of the
  top-class probability are within their confidence bounds of each other (both are Monte Carlo
  estimates from different noise, so an image near p = 0.5 may be certified by one side only).

Usage: ``LAB_DATA_DIR=... python benchmarks/bench_smoothing.py [--quick] [--n-images K] [--n N]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from common import record  # noqa: E402
from labutils import data, runtime, training  # noqa: E402
from labutils.robustness import ABSTAIN, SmoothedClassifier, clopper_pearson_lower  # noqa: E402

SIGMA, N0, ALPHA, BATCH = 0.25, 100, 0.001, 1000
BASE_CONFIG = training.TrainConfig(mode="gaussian", noise_sigma=SIGMA, epochs=3, batch_size=128, optimizer="adam",
                                   lr=1e-3, weight_decay=0.0, schedule="triangular", warmup=0.1, augment=False,
                                   precision="fp32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-images", type=int, default=100, help="test images certified by each side")
    ap.add_argument("--n", type=int, default=10_000, help="estimation copies per image (Cohen et al.: 100,000)")
    ap.add_argument("--quick", action="store_true", help="20 images, n = 1000 (a smoke check, not a figure)")
    args = ap.parse_args()
    n_images, n = (20, 1000) if args.quick else (args.n_images, args.n)
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    runtime.seed_everything(0)
    model, info = training.get_or_train("grayscale_cnn", BASE_CONFIG, dataset="fashion_mnist", device="cpu")
    x_test, y_test = data.load("fashion_mnist", "test")
    x, y = data.to_float(x_test[:n_images]), y_test[:n_images]
    print(f"base model: GrayscaleCNN, Gaussian noise sigma {SIGMA}, {info['train_seconds']:.0f} s of training; "
          f"{n_images} test images, n0 {N0}, n {n}, alpha {ALPHA}, {torch.get_num_threads()} threads", flush=True)

    ours = SmoothedClassifier(model, 10, SIGMA, seed=0)
    ours.certify(x[:2], N0, 200, ALPHA, BATCH)  # warm-up
    t0 = time.perf_counter()
    cert = ours.certify(x, N0, n, ALPHA, BATCH)
    t_ours = time.perf_counter() - t0

    np.random.seed(0)  # ART draws its noise from torch's global generator and numpy's
    torch.manual_seed(0)
    art = PyTorchRandomizedSmoothing(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                     nb_classes=10, clip_values=(0.0, 1.0), sample_size=N0, scale=SIGMA, alpha=ALPHA,
                                     device_type="cpu")
    t0 = time.perf_counter()
    art_pred, art_radius = art.certify(x.numpy(), n=n, batch_size=BATCH)
    t_art = time.perf_counter() - t0

    xb = torch.rand(BATCH, *x.shape[1:])
    with torch.inference_mode(), runtime.frozen_eval(model):
        model(xb)
        t0 = time.perf_counter()
        for _ in range(5):
            model(xb)
        forward_rate = 5 * BATCH / (time.perf_counter() - t0)
    bound = forward_rate / (N0 + n)
    fast = SmoothedClassifier(model, 10, SIGMA, seed=0, precision="auto")
    fast.certify(x[:2], N0, 200, ALPHA, BATCH)
    t0 = time.perf_counter()
    fast.certify(x, N0, n, ALPHA, BATCH)
    t_fast = time.perf_counter() - t0

    ours_pred = cert.prediction.numpy()
    art_pred = np.asarray(art_pred)  # -1 where ART abstained, as ABSTAIN
    same = ours_pred == art_pred
    rate_ours, rate_art = n_images / t_ours, n_images / t_art
    record("smoothing_certify_speed", value=rate_ours, unit="images/s", peer="ART PyTorchRandomizedSmoothing",
           peer_value=rate_art, ratio=rate_ours / rate_art, goal=">= 3x ART's images/s", passed=rate_ours >= 3 * rate_art,
           n_images=n_images, n=n, n0=N0, sigma=SIGMA, alpha=ALPHA, seconds_ours=t_ours, seconds_art=t_art)
    record("smoothing_certify_bound", value=rate_ours, unit="images/s", peer="compute bound (raw forward / copies)",
           peer_value=bound, ratio=rate_ours / bound, goal="near 1 (ART's ratio: %.2f)" % (rate_art / bound),
           passed=None, forward_images_per_s=forward_rate)
    rate_fast = n_images / t_fast
    record("smoothing_certify_bf16", value=rate_fast, unit="images/s", peer="ART PyTorchRandomizedSmoothing (fp32)",
           peer_value=rate_art, ratio=rate_fast / rate_art, goal=">= 3x ART's images/s", passed=rate_fast >= 3 * rate_art,
           precision=str(runtime.autocast_dtype(torch.device("cpu"), "auto")))
    # ART's p_lower is not returned: recover it from its radius (radius = sigma * Phi^-1(p_lower) where certified)
    p_art = np.where(art_pred != ABSTAIN, stats.norm.cdf(np.asarray(art_radius) / SIGMA), np.nan)
    disagreements = []
    for i in np.flatnonzero(~same):
        p_hat = cert.counts[i].max().item() / n  # our estimate of the top-class probability
        half_width = p_hat - float(clopper_pearson_lower(cert.counts[i].max().item(), n, ALPHA))
        disagreements.append({"image": int(i), "label": int(y[i]), "ours": int(ours_pred[i]), "art": int(art_pred[i]),
                              "ours_p_lower": float(cert.p_lower[i]), "art_p_lower": float(p_art[i]),
                              "near_the_abstention_bound": bool(p_hat - half_width < 0.5 <= p_hat + half_width)})
    record("smoothing_certify_agreement", value=float(same.mean()), unit="fraction", peer="ART", peer_value=None,
           ratio=None, goal=">= 0.99 of the certified predictions equal", passed=float(same.mean()) >= 0.99,
           disagreements=disagreements,
           certified_correct_ours=int((ours_pred == y.numpy()).sum()),
           certified_correct_art=int((art_pred == y.numpy()).sum()))
    for d in disagreements:
        print(f"  image {d['image']}: ours {d['ours']} (p_lower {d['ours_p_lower']:.4f}), ART {d['art']} "
              f"(p_lower {d['art_p_lower']:.4f}); within the confidence bound of 0.5: {d['near_the_abstention_bound']}")


if __name__ == "__main__":
    main()
