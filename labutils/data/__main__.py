"""``python -m labutils.data``: download (where needed), decode and cache every dataset of the course."""
from __future__ import annotations

import sys

from .datasets import DATASETS, DatasetNotFoundError, data_dir, load


def main() -> int:
    print(f"data directory: {data_dir()}")
    missing = 0
    for name in DATASETS:
        for split in ("train", "test"):
            try:
                images, labels = load(name, split)
            except DatasetNotFoundError as exc:
                missing += 1
                print(f"{name} {split}: MISSING\n{exc}\n")
                continue
            print(f"{name} {split}: {images.shape[0]} images {tuple(images.shape[1:])}, "
                  f"{int(labels.max()) + 1} classes")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
