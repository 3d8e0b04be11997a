"""Optional out-of-distribution sets that are not in the course's offline data mirror."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .datasets import DatasetNotFoundError, data_dir

__all__ = ["load_svhn", "SVHN_URL"]

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"


def _reachable(url: str, timeout: float) -> None:
    """Raise ``OSError`` unless a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=timeout):
        pass


def load_svhn(split: str = "test", n: int | None = None, *, root=None, download: bool = True,
              timeout: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """SVHN (street-view house numbers) as an optional OOD set, via ``torchvision.datasets.SVHN``.

    SVHN is not part of the course's offline data mirror: the first call
    downloads ``<split>_32x32.mat`` (64 MB for ``"test"``) into ``root``; later
    calls read it from there.  Needs ``scipy`` (``scipy.io.loadmat``).

    Args:
        split: ``"train"``, ``"test"`` or ``"extra"``.
        n: keep only the first ``n`` images (default: all; the test split has 26,032).
        root: folder of the ``.mat`` file (default :func:`labutils.data.data_dir`).
        download: try the download when the file is missing.
        timeout: seconds to wait for the download server to answer before giving up (checked
            with one connection before the download starts; no process-wide setting changes).

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` in 0..255 and int64
        ``(N,)`` digits ``0..9`` (torchvision maps SVHN's label 10 to 0).

    Raises:
        labutils.data.DatasetNotFoundError: the file is missing and could not be
            downloaded (no network, no ``scipy``, a corrupt file); the message
            says why and how to provide the file.
    """
    if split not in ("train", "test", "extra"):
        raise ValueError(f"Unknown SVHN split {split!r}: use 'train', 'test' or 'extra'.")
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}.")
    root = Path(root) if root is not None else data_dir()
    mat = root / f"{split}_32x32.mat"
    try:
        if download and not mat.exists():
            _reachable(SVHN_URL, timeout)
        import torchvision

        ds = torchvision.datasets.SVHN(root=str(root), split=split, download=download)
    except Exception as exc:  # no network, no scipy, a corrupt or partial file: all mean "not available"
        raise DatasetNotFoundError(
            f"SVHN ({split}) is not in {root} (looked for {mat}) and could not be "
            f"{'downloaded' if download else 'loaded (download=False)'}: {type(exc).__name__}: {exc}\n"
            f"SVHN is optional. To use it, connect to the internet once, or copy {split}_32x32.mat from "
            f"{SVHN_URL} into {root}."
        ) from exc
    images = torch.as_tensor(np.asarray(ds.data, dtype=np.uint8))
    labels = torch.as_tensor(np.asarray(ds.labels, dtype=np.int64))
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32) or labels.shape != (images.shape[0],):
        raise DatasetNotFoundError(f"SVHN ({split}) in {root} has unexpected shapes {tuple(images.shape)} "
                                   f"and {tuple(labels.shape)}; delete {mat} and download it again.")
    if n is not None:
        images, labels = images[:n], labels[:n]
    return images.contiguous(), labels.contiguous()
