"""Metrics, figures and the results report of a run of the series.

Notebooks call :func:`save_metrics` and :func:`save_figure`; the runner
(:mod:`labutils.course.runner`) sets ``LAB_RUN_DIR`` so that they land in
``runs/<profile>/`` and then calls :func:`write_report`, which lists every
metric next to the published reference value (:data:`REFERENCES`) where the
course has one.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

from .. import settings
from ..files import atomic_write_text
from .claims import run_context
from .conditions import KEYS as _CONDITION_KEYS
from .conditions import load_conditions
from .paths import REPO_ROOT
from .timing import load_timings

__all__ = ["REFERENCES", "RUN_TIME_COLUMNS", "run_dir", "save_metrics", "load_metrics", "save_figure", "write_report",
           "run_time_section", "machine_info"]


# metric key -> (reported value, unit, source).  Keys are "<notebook stem>/<metric name>".  Sources: a reference
# implementation of these labs (its write-up is not public) and the paper behind each method.
_REF_LAB = "a reference implementation of this lab reported"
_HYBRID = (f"{_REF_LAB}: hybrid CNN, frozen ImageNet-pretrained MobileNetV2 backbone (Sandler et al., 2018) at 96x96 "
           "inputs, SE (Hu et al., 2018) and grouped-convolution head")
REFERENCES: dict[str, tuple[float, str, str]] = {
    "00_setup_and_baselines/simple_cnn_test_acc": (0.737, "fraction", f"{_REF_LAB}: simple CNN baseline, clean accuracy"),
    "00_setup_and_baselines/fastnet_test_acc": (
        0.855, "fraction", f"{_REF_LAB}: hybrid CNN with a frozen ImageNet-pretrained MobileNetV2 backbone at 96x96 "
                           "inputs (Sandler et al., 2018), clean accuracy; not a from-scratch network like FastNet"),
    "01_ood_detection/auroc_max_logit_noise": (
        0.79, "AUROC", f"{_REF_LAB}: CNN trained 50 epochs, max logit (Hendrycks et al., 2022), CIFAR-10 vs FakeData"),
    "01_ood_detection/auroc_autoencoder_noise": (
        0.82, "AUROC", f"{_REF_LAB}: autoencoder reconstruction MSE, CIFAR-10 vs FakeData"),
    "01_ood_detection/auroc_max_softmax_noise": (
        0.97, "AUROC", f"{_REF_LAB}: baseline model, max softmax (Hendrycks & Gimpel, 2017), CIFAR-10 vs FakeData"),
    "02_fgsm_and_targeted_attacks/simple_cnn_fgsm_acc": (
        0.015, "fraction", f"{_REF_LAB}: simple CNN under FGSM (Goodfellow et al., 2015)"),
    "03_pgd_and_norms/simple_cnn_pgd_acc": (0.0, "fraction", f"{_REF_LAB}: simple CNN under PGD (Madry et al., 2018)"),
    "04_adversarial_training/fast_fgsm_clean_acc": (
        0.861, "fraction", "Wong, Rice & Kolter (2020): fast FGSM, PreActResNet-18, clean accuracy"),
    "04_adversarial_training/fast_fgsm_pgd10_acc": (
        0.461, "fraction", "Wong, Rice & Kolter (2020): fast FGSM, PreActResNet-18, PGD-50 with 10 restarts at 8/255 "
                           "(ours: PGD-10, one start)"),
    "04_adversarial_training/free_pgd10_acc": (
        0.463, "fraction", "Wong, Rice & Kolter (2020): free (m = 8), PreActResNet-18, PGD-50 with 10 restarts at "
                           "8/255 (ours: PGD-10, one start)"),
    "04_adversarial_training/standard_msp_auroc_noise": (
        0.97, "AUROC", f"{_REF_LAB}: baseline model, max softmax, CIFAR-10 vs FakeData"),
    "04_adversarial_training/fgsm_msp_auroc_noise": (
        0.26, "AUROC", f"{_REF_LAB}: model trained 50 epochs with FGSM-augmented batches, max softmax, CIFAR-10 vs "
                       "FakeData"),
    "06_hybrid_cnn_and_selective_classification/simple_cnn_test_acc": (
        0.737, "fraction", f"{_REF_LAB}: simple CNN baseline, clean accuracy"),
    "06_hybrid_cnn_and_selective_classification/simple_cnn_selective_acc_97": (
        0.736, "fraction", f"{_REF_LAB}: simple CNN, selective accuracy at 97 % coverage (Geifman & El-Yaniv, 2017)"),
    "06_hybrid_cnn_and_selective_classification/hybrid_test_acc": (
        0.855, "fraction", f"{_HYBRID}, clean accuracy (ours: the backbone is our MobileNetV2 trained from scratch on "
                           "CIFAR-10 at 32x32)"),
    "06_hybrid_cnn_and_selective_classification/hybrid_fgsm_acc": (0.10, "fraction", f"{_HYBRID}, FGSM accuracy"),
    "06_hybrid_cnn_and_selective_classification/hybrid_pgd_acc": (0.10, "fraction", f"{_HYBRID}, PGD accuracy"),
    "06_hybrid_cnn_and_selective_classification/hybrid_selective_acc_98_7": (
        0.854, "fraction", f"{_HYBRID}, selective accuracy at 98.7 % coverage"),
    "07_randomized_smoothing/standard_fgm_l2_5_acc": (
        0.097, "fraction", f"{_REF_LAB}: MNIST-style CNN on MNIST, FGM at L2 radius 5 (ours: Fashion-MNIST)"),
    "07_randomized_smoothing/standard_fgm_linf_03_acc": (
        0.027, "fraction", f"{_REF_LAB}: MNIST-style CNN on MNIST, FGM at Linf radius 0.3 (ours: Fashion-MNIST)"),
    "07_randomized_smoothing/l2_adv_clean_acc": (
        0.9653, "fraction", f"{_REF_LAB}: the same CNN after L2 adversarial training, clean (MNIST)"),
    "07_randomized_smoothing/l2_adv_fgm_l2_5_acc": (
        0.9459, "fraction", f"{_REF_LAB}: the same CNN after L2 adversarial training, FGM at L2 radius 5 (MNIST)"),
    "07_randomized_smoothing/standard_certified_per_10k": (
        974, "count of 10,000", f"{_REF_LAB}: standard model, correct and certified by randomized smoothing (Cohen et "
                                "al., 2019); sigma and n not stated"),
    "07_randomized_smoothing/l2_adv_certified_per_10k": (
        1870, "count of 10,000", f"{_REF_LAB}: adversarially trained model, correct and certified"),
    "07_randomized_smoothing/noise_certified_per_10k": (
        7684, "count of 10,000", f"{_REF_LAB}: noise-trained model, correct and certified"),
}


def run_dir() -> Path:
    """Where this run's outputs go: ``$LAB_RUN_DIR``, else ``runs/<profile>/`` in the repository (in the
    working directory when labutils is installed without a checkout, as on Colab)."""
    from .profiles import profile_name

    root = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    path = settings.run_dir() or root / "runs" / profile_name()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(value):
    """Make metrics JSON-safe: tensors/numpy scalars to Python numbers, NaN to None."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


def save_metrics(notebook: str, metrics: dict, *, directory: str | os.PathLike | None = None) -> Path:
    """Merge ``metrics`` (name -> number, or nested dict/list) into ``<run dir>/metrics/<notebook>.json``.

    The file's ``run`` entry records the seed offset, training precision and CPU kernels of the run
    (:func:`labutils.course.claims.run_context`).
    """
    folder = Path(directory) if directory is not None else run_dir() / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(_clean(metrics))
    current["run"] = run_context()  # seed offset, precision and CPU kernels the figures were measured with
    return atomic_write_text(json.dumps(current, indent=2, sort_keys=True), path)


def load_metrics(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """All metrics files of a run: ``{notebook stem: metrics}``."""
    folder = Path(directory) if directory is not None else run_dir() / "metrics"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def save_figure(fig, name: str, *, directory: str | os.PathLike | None = None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as ``<run dir>/figures/<name>.png`` and return the path."""
    folder = Path(directory) if directory is not None else run_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def machine_info() -> dict:
    """Processor, core count, torch version and accelerator of this machine."""
    import torch

    from ..runtime import cpu_supports_bf16

    info = {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_bf16": cpu_supports_bf16(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# The run-time table's columns: a notebook's wall time, what it ran under (labutils.course.conditions) and where its
# models came from.  labutils.course.runtimes reads them back by these names; a report without some (an older one)
# leaves them unknown.
RUN_TIME_COLUMNS = ("notebook", "seconds", "device", "precision", "CPU kernels", "trained", "from this run",
                    "from the cache", "handed out")


def _cell(value) -> str:
    return "?" if value is None else str(value)


def run_time_section(timings: dict[str, float], conditions: dict[str, dict]) -> list[str]:
    """The lines of the report's "Run time" section: one row per notebook of ``timings`` with its ``conditions``
    (:mod:`labutils.course.conditions`; ``?`` where not recorded), and the total."""
    lines = ["## Run time", "",
             "Per notebook: wall time in seconds; the device, training precision and CPU kernels it ran with; and its "
             "models: trained by it, loaded after an earlier notebook of this run trained them, loaded from the "
             "checkpoint cache as it was before the run, loaded from handed-out checkpoints (`?`: not recorded). "
             "`python -m labutils.course.runtimes` makes the README's table from such reports.", "",
             "| " + " | ".join(RUN_TIME_COLUMNS) + " |",
             "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for nb, sec in sorted(timings.items()):
        cond = conditions.get(nb, {})
        lines.append(f"| {nb} | {sec:.0f} | " + " | ".join(_cell(cond.get(k)) for k in _CONDITION_KEYS) + " |")
    lines += [f"| total | {sum(timings.values()):.0f} |" + " |" * (len(RUN_TIME_COLUMNS) - 2), ""]
    return lines


def write_report(directory: str | os.PathLike | None = None, *, profile: str | None = None) -> Path:
    """Write ``report.md`` in a run directory: the machine, each notebook's run time and conditions
    (:func:`run_time_section`), every scalar metric with the reference value where one exists."""
    folder = Path(directory) if directory is not None else run_dir()
    metrics = load_metrics(folder / "metrics")
    machine = machine_info()
    lines = [f"# CNN Reliability Lab: results ({profile or folder.name} profile)", "",
             f"Machine: {machine['processor']}, {os.cpu_count()} cores. "
             "CIFAR-10 figures are measured on whichever copy the data directory held "
             "(the JPEG re-export in CI).", ""]
    if machine["cuda"]:
        lines += [f"GPU: {machine['cuda']}", ""]
    lines += [f"Measured: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    timings = load_timings(folder)
    if timings:
        lines += run_time_section(timings, load_conditions(folder))
    for notebook, values in metrics.items():
        lines += [f"## {notebook}", "", "| metric | measured | reference | source of the reference |",
                  "| --- | --- | --- | --- |"]
        for key, value in sorted(values.items()):
            if isinstance(value, (dict, list)):
                continue
            ref = REFERENCES.get(f"{notebook}/{key}")
            ref_cells = (f"{_fmt(ref[0])} ({ref[1]})", ref[2]) if ref else ("", "")
            lines.append(f"| {key} | {_fmt(value)} | {ref_cells[0]} | {ref_cells[1]} |")
        lines.append("")
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
