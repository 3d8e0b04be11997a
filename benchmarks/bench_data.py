"""Data pipeline benchmarks.

1. Images per second of ``labutils.data.Batches`` (uint8 tensors in memory, crop+flip on whole
   batches) against torchvision's ``DataLoader`` over PIL images with the same augmentation
   (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``), same batch size,
   2 workers, measured in the same run. Goal: at least 10x.
2. Seconds to load the cached CIFAR-10 training split. Goal: under 1 s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import record  # noqa: E402
from labutils import data  # noqa: E402


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images, labels, transform):
        from PIL import Image

        self.pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.pil)

    def __getitem__(self, i):
        return self.transform(self.pil[i]), self.labels[i]


def _throughput(iterable, n_images: int) -> float:
    t0 = time.perf_counter()
    seen = 0
    for x, _ in iterable:
        seen += x.shape[0]
    assert seen == n_images
    return seen / (time.perf_counter() - t0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 images instead of 50,000")
    args = parser.parse_args(argv)
    from torchvision import transforms

    data.load("cifar10", "train")  # make sure the cache exists
    t0 = time.perf_counter()
    x, y = data.load("cifar10", "train")
    load_s = time.perf_counter() - t0
    record("cifar10_cached_load", value=load_s, unit="s", peer="goal", peer_value=1.0, ratio=1.0 / load_s,
           goal="< 1 s", passed=load_s < 1.0)

    n = 10_000 if args.quick else 50_000
    x, y = x[:n], y[:n]
    bs = 512
    ours = data.Batches(x, y, batch_size=bs, shuffle=True, augment=True, pad=4, seed=0)
    _throughput(ours, n)  # warm-up
    ours_ips = max(_throughput(ours, n) for _ in range(3))

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(_PILDataset(x, y, tf), batch_size=bs, shuffle=True, num_workers=2,
                                         persistent_workers=True)
    _throughput(loader, n)  # warm-up (starts the workers)
    peer_ips = max(_throughput(loader, n) for _ in range(3))  # best of 3, as for ours
    ratio = ours_ips / peer_ips
    record("batch_iterator_throughput", value=ours_ips, unit="images/s",
           peer="torchvision DataLoader (PIL, 2 workers)", peer_value=peer_ips, ratio=ratio, goal=">= 10x",
           passed=ratio >= 10, batch_size=bs, n_images=n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
