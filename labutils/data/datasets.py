"""The course's datasets, held in memory as uint8 tensors and cached after the first decode.

Every dataset is returned by :func:`load` as ``(images, labels)``:

* ``images``: ``torch.uint8`` tensor of shape ``(N, C, H, W)``, values 0..255;
* ``labels``: ``torch.int64`` tensor of shape ``(N,)``.

The data directory is ``$LAB_DATA_DIR`` when set, else the repository's
``data/`` folder.  The first load of a dataset decodes it once and writes a
tensor cache under ``<data dir>/cache/``; later loads read that cache.  Without
the files and without a network, :class:`DatasetNotFoundError` lists the paths
searched, the layouts accepted and how to provide the data.
"""
from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import settings
from ..files import atomic_save, error_summary, is_corrupt_file_error

__all__ = ["DATASETS", "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "DatasetNotFoundError", "data_dir", "load",
           "class_names", "CACHE_VERSION", "SPLITS"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


SPLITS = ("train", "test")


# Number of noise images per split: the size of CIFAR-10's test set, as in the
# reference OOD experiment (torchvision FakeData, 32x32 RGB).
NOISE_SIZES = {"train": 10_000, "test": 10_000}


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


CACHE_VERSION = 2  # of the tensor cache (and part of every checkpoint key); 2: class-folder images shuffled


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and could not be downloaded."""


def data_dir() -> Path:
    """Directory holding downloads and caches: ``$LAB_DATA_DIR`` or the repository's ``data/``."""
    path = settings.data_dir()
    if path is not None:
        env = str(path)
        if not path.is_dir():
            raise NotADirectoryError(
                f"LAB_DATA_DIR={env!r} is not an existing directory. Create it "
                f"(mkdir -p {env}) or point LAB_DATA_DIR at the folder that holds the datasets."
            )
        return path
    repo_data = Path(__file__).resolve().parents[2] / "data"
    path = repo_data if repo_data.parent.joinpath("pyproject.toml").exists() else Path("data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


_ALIASES = {
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
    "fashion_mnist": "fashion_mnist", "fashion-mnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist",
    "noise": "noise", "fakedata": "noise",
}


DATASETS = ("cifar10", "fashion_mnist", "noise")


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}.")
    return _ALIASES[key]


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
    return split


def class_names(name: str) -> tuple[str, ...]:
    """Class names of a dataset, indexed by label."""
    name = _canonical(name)
    if name == "cifar10":
        return CIFAR10_CLASSES
    if name == "fashion_mnist":
        return FASHION_MNIST_CLASSES
    return tuple(str(i) for i in range(10))


def load(name: str, split: str = "train", *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split into memory.

    Args:
        name: ``"cifar10"``, ``"fashion_mnist"`` or ``"noise"`` (torchvision
            ``FakeData``-style Gaussian noise images, 3x32x32, random labels).
        split: ``"train"`` or ``"test"``.
        download: try torchvision's download when the files are not on disk.

    Returns:
        ``(images, labels)``: uint8 ``(N, C, H, W)`` and int64 ``(N,)``.

    Raises:
        DatasetNotFoundError: the files are missing and cannot be downloaded;
            the message lists the paths searched and the layouts accepted.
    """
    name, split = _canonical(name), _check_split(split)
    root = data_dir()
    cache = root / "cache" / f"{name}-{split}-v{CACHE_VERSION}.pt"
    if cache.exists():
        cached = _read_cache(cache)
        if cached is not None:
            return cached
    images, labels = _DECODERS[name](root, split, download)
    images, labels = images.contiguous(), labels.to(torch.int64).contiguous()
    _validate_decoded(name, images, labels)
    atomic_save({"images": images, "labels": labels}, cache)
    return images, labels


def _validate_decoded(name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or labels.shape != (images.shape[0],):
        raise RuntimeError(f"Decoder for {name} returned images {tuple(images.shape)} {images.dtype} "
                           f"and labels {tuple(labels.shape)}; this is a bug in labutils.data.")


def _read_cache(cache: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached ``(images, labels)``; None (with a warning, the file removed) when it is corrupt.

    Only a file that is unreadable as a tensor cache counts as corrupt; any other error (no
    permission, out of memory) is raised as it is, and the cache is kept.
    """
    try:
        blob = torch.load(cache, weights_only=True)
    except Exception as exc:
        if not is_corrupt_file_error(exc):
            raise
        reason = error_summary(exc)
    else:
        if isinstance(blob, dict) and all(isinstance(blob.get(k), torch.Tensor) for k in ("images", "labels")):
            return blob["images"], blob["labels"]
        reason = "it does not hold 'images' and 'labels' tensors"
    warnings.warn(f"The dataset cache {cache} is corrupt ({reason}); removing it and decoding the dataset again.",
                  stacklevel=3)
    cache.unlink(missing_ok=True)
    return None


def _not_found(name: str, searched: list[Path], layouts: str, fix: str, cause: Exception | None) -> DatasetNotFoundError:
    lines = [f"Dataset {name!r} was not found and could not be downloaded."]
    if cause is not None:
        lines.append(f"Download attempt failed with: {type(cause).__name__}: {cause}")
    lines.append("Searched:")
    lines += [f"  - {p}" for p in searched]
    lines.append("Accepted layouts:")
    lines += [f"  - {line}" for line in layouts.strip().splitlines()]
    lines.append(f"To fix: {fix}")
    return DatasetNotFoundError("\n".join(lines))


# CIFAR-10 --------------------------------------------------------------------
def _decode_cifar10(root: Path, split: str, download: bool):
    batches = root / "cifar-10-batches-py"
    folder = root / "cifar10" / split
    if _cifar_batches_complete(batches):
        return _read_cifar_batches(batches, split)
    if folder.is_dir():
        return _read_class_folders(folder, CIFAR10_CLASSES)
    cause = None
    if download:
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            return _read_cifar_batches(batches, split)
        except Exception as exc:  # no network, or a broken archive
            cause = exc
    raise _not_found(
        "cifar10",
        [batches, folder],
        f"""
{batches}/data_batch_1..5 and test_batch (official python batches, what torchvision downloads)
{root / 'cifar10'}/{{train,test}}/<class name>/*.png|jpg (class-per-folder images, e.g. a Kaggle export)""",
        "connect to the internet and run `make data`, or unpack an offline copy, e.g. "
        f"`tar -xzf cifar10-jpeg.tar.gz -C {root}`, or set LAB_DATA_DIR to the folder that holds it.",
        cause,
    )


def _cifar_batches_complete(folder: Path) -> bool:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return all((folder / n).exists() for n in names)


def _read_cifar_batches(folder: Path, split: str):
    import pickle

    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for n in names:
        with open(folder / n, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry["labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _read_class_folders(folder: Path, classes: tuple[str, ...]):
    from PIL import Image

    missing = [c for c in classes if not (folder / c).is_dir()]
    if missing:
        raise DatasetNotFoundError(
            f"{folder} is incomplete: class folders {missing} are missing "
            f"(expected one folder per class: {', '.join(classes)}). "
            "The archive was probably only partly extracted: delete the folder and extract it again."
        )
    files, labels = [], []
    for label, cls in enumerate(classes):
        found = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not found:
            raise DatasetNotFoundError(f"{folder / cls} holds no images (.png/.jpg): extract the dataset again.")
        files += found
        labels += [label] * len(found)
    out = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(_progress(files, f"decoding {folder}")):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        if arr.shape != (32, 32, 3):
            raise ValueError(f"{path} is {arr.shape[1]}x{arr.shape[0]}, expected a 32x32 RGB image.")
        out[i] = arr
    # Folders list the images class by class; put them in a fixed pseudo-random order (as in the official
    # batches) so that any prefix, e.g. the first 1000 test images, mixes all classes.
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))
    return torch.from_numpy(out).permute(0, 3, 1, 2)[order], torch.tensor(labels)[order]


# Fashion-MNIST ---------------------------------------------------------------
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _decode_fashion_mnist(root: Path, split: str, download: bool):
    raw = root / "FashionMNIST" / "raw"
    paths = [_find_idx(raw, f) for f in _FMNIST_FILES[split]]
    cause = None
    if None in paths and download:
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(root), train=split == "train", download=True)
            paths = [_find_idx(raw, f) for f in _FMNIST_FILES[split]]
        except Exception as exc:
            cause = exc
    if None in paths:
        raise _not_found(
            "fashion_mnist",
            [raw / f for f in _FMNIST_FILES[split]],
            f"{raw}/<name> or <name>.gz for the four IDX files (torchvision's FashionMNIST raw layout)",
            "connect to the internet and run `make data`, or copy the four *-ubyte.gz files into "
            f"{raw}, or set LAB_DATA_DIR to a folder that holds FashionMNIST/raw/.",
            cause,
        )
    images = _read_idx(paths[0])
    labels = _read_idx(paths[1])
    if images.ndim != 3 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{paths[0]} and {paths[1]} do not match: {images.shape} images, {labels.shape} labels.")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _find_idx(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return arr.reshape(shape).copy()
    except (OSError, EOFError, ValueError, struct.error) as exc:
        raise ValueError(f"{path} is corrupt or truncated ({exc}); delete it and download it again.") from exc


# Noise -----------------------------------------------------------------------
def _decode_noise(root: Path, split: str, download: bool):
    """Gaussian noise images as torchvision's ``FakeData`` makes them (seeded per index)."""
    import torchvision
    from torchvision.transforms.functional import pil_to_tensor

    n = NOISE_SIZES[split]
    offset = 0 if split == "test" else 1_000_000
    fake = torchvision.datasets.FakeData(size=n, image_size=(3, 32, 32), num_classes=10, random_offset=offset)
    images = torch.empty((n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    for i in _progress(range(n), "generating noise images"):
        img, label = fake[i]
        images[i] = pil_to_tensor(img)
        labels[i] = int(label)
    return images, labels


_DECODERS = {"cifar10": _decode_cifar10, "fashion_mnist": _decode_fashion_mnist, "noise": _decode_noise}


def _progress(iterable, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, mininterval=1.0)
