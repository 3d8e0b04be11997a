"""Environment check: ``python -m labutils.course.doctor`` (``make doctor``).

Prints the PyTorch build and device, the CPU kernels PyTorch uses (AVX2,
AVX-512, ...) and whether bf16 is native, widget and JupyterLab versions, the
registered Jupyter kernels, which datasets are found in the data directory with
a SHA-256 of each loaded tensor (two machines can compare their data), and an
estimate of the standard series' run time on this machine from a short
calibration, each with what to do when something is missing.
"""
from __future__ import annotations

import hashlib
import importlib
import sys

from .. import data as _data
from .. import settings
from . import timing


def _version(module: str) -> str:
    """The module's version; ``MISSING`` when it is not installed, ``BROKEN (...)`` when importing it fails."""
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except ModuleNotFoundError as exc:
        if exc.name == module or module.startswith(f"{exc.name}."):
            return "MISSING"
        return f"BROKEN (it needs {exc.name}, which is missing)"
    except Exception as exc:  # an installed package whose import fails: say how
        return f"BROKEN ({type(exc).__name__}: {exc})"


def checks(*, hashes: bool = True, estimate: bool = True) -> list[tuple[str, str, str]]:
    """Rows ``(item, status, hint)`` describing this environment.

    ``hashes``: a SHA-256 of every dataset found (loads each; seconds once the tensor cache exists).
    ``estimate``: time a few training steps (a few seconds) and estimate the standard series' run time.
    """
    import torch

    from ..runtime import autocast_dtype, cpu_supports_bf16, default_device, malloc_tuned

    rows = [
        ("python", sys.version.split()[0], ""),
        ("torch", torch.__version__, "the course pins torch==2.14.1"),
        ("device", str(default_device()), ""),
        ("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available",
         "" if torch.cuda.is_available() else "CPU is fine for the smoke and standard profiles"),
        ("cpu kernels", torch.backends.cpu.get_cpu_capability(),
         "" if torch.backends.cpu.get_cpu_capability() != "DEFAULT" else "no AVX2: training will be slow"),
        ("cpu bf16", "native" if cpu_supports_bf16() else "no (fp32 training)", ""),
        ("training precision", str(autocast_dtype(default_device()) or "float32").replace("torch.", ""),
         "LAB_PRECISION overrides it" if settings.precision() else ""),
        ("seed offset", str(settings.seed()), "LAB_SEED"),
        ("torch threads", str(torch.get_num_threads()), ""),
        ("malloc settings", "reuse freed memory" if malloc_tuned() else "glibc defaults",
         "" if malloc_tuned() else "start Jupyter with `make lab` for faster CPU training (labutils.runtime.MALLOC_ENV)"),
    ]
    for module in ("torchvision", "ipywidgets", "jupyterlab_widgets", "jupyterlab", "papermill", "torchattacks"):
        v = _version(module)
        hint = "run `make setup`" if v == "MISSING" else ("reinstall it: `make setup`" if v.startswith("BROKEN") else "")
        rows.append((module, v, hint))
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        rows.append(("kernels", ", ".join(sorted(specs)) or "none", "" if "python3" in specs else "run `make setup`"))
    except Exception as exc:
        rows.append(("kernels", f"unknown ({exc})", "run `make setup`"))
    try:
        root = _data.data_dir()
        rows.append(("data dir", str(root), "set LAB_DATA_DIR to use another folder"))
        for name in _data.DATASETS:
            found = _dataset_present(root, name)
            rows.append((f"  {name}", "found" if found else "not found",
                         "" if found else "run `make data` (needs internet) or see data/README.md"))
            if found and hashes:
                for split in _data.SPLITS:
                    rows.append((f"    {split} sha256", dataset_sha256(name, split), "images, then labels"))
    except (OSError, ValueError) as exc:  # no data folder, an unreadable or corrupt dataset file
        rows.append(("data dir", f"error: {type(exc).__name__}: {exc}", "see data/README.md"))
    if estimate:
        step = timing.calibrate()
        factor = timing.speed_factor(step)
        total = sum(timing.expected_seconds("standard", list(timing.EXPECTED_SECONDS["standard"]), factor))
        rows.append(("training step", f"{step:.2f} s (FastNet, 256 images)",
                     f"{factor:.2f}x the reference machine ({timing.REFERENCE['machine']})"))
        rows.append(("standard series", f"about {total / 60:.0f} min", "estimate for `make run`, empty model cache"))
    return rows


def dataset_sha256(name: str, split: str) -> str:
    """SHA-256 (first 16 hex digits) of a loaded dataset: its uint8 image tensor's bytes, then its labels'."""
    images, labels = _data.load(name, split, download=False)
    digest = hashlib.sha256()
    for t in (images, labels):
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _dataset_present(root, name: str) -> bool:
    if any((root / "cache").glob(f"{name}-*.pt")):
        return True
    if name == "cifar10":
        return (root / "cifar-10-batches-py").is_dir() or (root / "cifar10" / "train").is_dir()
    if name == "fashion_mnist":
        return (root / "FashionMNIST" / "raw").is_dir()
    return True  # noise images are generated


def main() -> int:
    rows = checks()
    width = max(len(r[0]) for r in rows)
    for item, status, hint in rows:
        print(f"{item:<{width}}  {status}" + (f"   ({hint})" if hint else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
