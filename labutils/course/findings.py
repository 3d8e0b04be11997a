"""The course's findings beside the published figures: notebook 10 and the first section of a run's report.

:func:`course_comparisons` turns a run's metrics (``runs/<profile>/metrics/*.json``, :func:`run_metrics`) into
:class:`~labutils.course.verdicts.Comparison` rows, grouped by :data:`FINDINGS`, each with the published figure
it answers (``shared/reference/methods.md``), a rule, a tolerance and, where the two cannot be compared, the
reason.  The rules and tolerances are written here, the same for every run.  Accuracies are in percent,
AUROCs in ``[0, 1]``.  A notebook's figures from the ``smoke`` profile are never compared.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .verdicts import RULES, VERDICTS, Comparison, markdown_table, ranking, verdict, verdict_counts

__all__ = ["VERDICTS", "RULES", "ACCURACY_TOLERANCE", "AUROC_TOLERANCE", "ENTROPY_DEAD_ZONE", "REFERENCES",
           "REPORT_NOTEBOOK", "REFERENCE_RUN", "FINDINGS", "Comparison", "verdict", "ranking", "course_comparisons",
           "run_metrics", "verdict_counts", "markdown_table", "provenance"]

ACCURACY_TOLERANCE = 5.0  # percentage points
AUROC_TOLERANCE = 0.05
ENTROPY_DEAD_ZONE = 0.02  # bits: a smaller change of a layer's batch entropy is "no change"

# metric key -> (reported value, unit, source) of the figures notebooks 01 and 02 print beside their own; keys are
# "<notebook stem>/<metric name>".  The comparisons below use the same values.
_REPORTED = "a reference implementation of this lab reported"
REFERENCES: dict[str, tuple[float, str, str]] = {
    "01_ood_detection/auroc_max_logit_noise": (
        0.79, "AUROC", f"{_REPORTED}: CNN trained 50 epochs, max logit (Hendrycks et al., 2022), CIFAR-10 vs FakeData"),
    "01_ood_detection/auroc_autoencoder_noise": (
        0.82, "AUROC", f"{_REPORTED}: autoencoder reconstruction MSE, CIFAR-10 vs FakeData"),
    "01_ood_detection/auroc_max_softmax_noise": (
        0.97, "AUROC", f"{_REPORTED}: baseline model, max softmax (Hendrycks & Gimpel, 2017), CIFAR-10 vs FakeData"),
    "02_fgsm_and_targeted_attacks/simple_cnn_fgsm_acc": (
        0.015, "fraction", f"{_REPORTED}: simple CNN under FGSM (Goodfellow et al., 2015)"),
}
REPORT_NOTEBOOK = "10_reliability_report"  # reads the others' metrics; its own file is not an input
# The metrics of a standard run of notebooks 00-09 (seed 0, fp32, AVX2 kernels), shipped with the package: the run
# notebook 10's prose quotes, and what it reads before a run of its own exists (reference_run/README.md).
REFERENCE_RUN = Path(__file__).resolve().parent / "reference_run"

FINDINGS = ("Baseline and hybrid CNN under attack", "OOD detection before and after adversarial training",
            "Fast adversarial training", "Entropy monitoring of activations",
            "Attacks and certified robustness on Fashion-MNIST", "EntProp: clean and corruption accuracy",
            "Survival analysis of robustness")

_LAB = "a reference implementation of this lab"
_SMOKE = "smoke profile: each model trains for seconds on a subset, so no figure is a finding (run standard or full)"
_PRETRAINED = ("ours is MobileNetV2 trained from scratch on CIFAR-10 at 32x32; the reference's backbone is frozen and "
               "ImageNet-pretrained at 96x96 (Sandler et al., 2018)")
_MNIST = ("the reference used an MNIST-style CNN, most likely on MNIST (its Linf radius 0.3 is MNIST's usual budget); "
          "ours is trained on Fashion-MNIST, a harder task")
_MNIST_CERT = _MNIST + "; and it states neither sigma nor the sample count n, which set what can be certified"
_WONG = ("published: PreActResNet-18, 15 epochs on a GPU, PGD-50 with 10 restarts; ours: half-width FastNet for a few "
         "epochs (free with fewer replays in standard), PGD-10 with one start")
_CIFAR100 = ("published: ResNet-18 on CIFAR-100, 15 CIFAR-100-C corruptions; ours: FastNet trained a few epochs on "
             "CIFAR-10, 12 corruptions generated on the fly")


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _get(metrics: dict, notebook: str, *keys, scale: float = 1.0):
    """``metrics[notebook][k1][k2]...`` (numbers times ``scale``), or None where any level is missing or null."""
    value = metrics.get(notebook)
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value * scale if _number(value) is not None else value


def _diff(a, b, scale: float = 1.0):
    return None if _number(a) is None or _number(b) is None else (a - b) * scale


def _baseline_hybrid(m: dict) -> list[Comparison]:
    f, nb0, nb6, tol = FINDINGS[0], "00_setup_and_baselines", "06_hybrid_cnn_and_selective_classification", 5.0
    src = f"{_LAB} (simple CNN baseline)"
    hyb = f"{_LAB} (hybrid CNN: MobileNetV2 backbone, SE, grouped-convolution head)"
    budget = "8/255, the usual CIFAR-10 budget (the reference's eps is not stated)"
    rows = [
        Comparison(f, "simple CNN: clean accuracy", _get(m, nb0, "simple_cnn_test_acc", scale=100), 73.7, src,
                   tolerance=tol, unit="%", notebook=nb0, metric="simple_cnn_test_acc"),
        Comparison(f, f"simple CNN: FGSM accuracy at {budget}",
                   _get(m, "02_fgsm_and_targeted_attacks", "simple_cnn_fgsm_acc", scale=100),
                   100 * REFERENCES["02_fgsm_and_targeted_attacks/simple_cnn_fgsm_acc"][0],
                   f"{src}; FGSM: Goodfellow et al. (2015)", rule="at most", tolerance=tol, unit="%",
                   notebook="02_fgsm_and_targeted_attacks", metric="simple_cnn_fgsm_acc"),
        Comparison(f, "simple CNN: PGD accuracy at 8/255", _get(m, "03_pgd_and_norms", "simple_cnn_pgd_acc", scale=100),
                   0.0, f"{src}; PGD: Madry et al. (2018)", rule="at most", tolerance=tol, unit="%",
                   notebook="03_pgd_and_norms", metric="simple_cnn_pgd_acc"),
        Comparison(f, "simple CNN: selective accuracy at 97 % coverage",
                   _get(m, nb6, "simple_cnn_selective_acc_97", scale=100), 73.6, f"{src}; Geifman & El-Yaniv (2017)",
                   tolerance=tol, unit="%", notebook=nb6, metric="simple_cnn_selective_acc_97",
                   note="at 97 % coverage it tracks the clean accuracy: not an independent finding"),
    ]
    for quantity, key, published in (("clean accuracy", "hybrid_test_acc", 85.5),
                                     ("FGSM accuracy", "hybrid_fgsm_acc", 10.0),
                                     ("PGD accuracy", "hybrid_pgd_acc", 10.0),
                                     ("selective accuracy at 98.7 % coverage", "hybrid_selective_acc_98_7", 85.4)):
        rows.append(Comparison(f, f"hybrid CNN: {quantity}", _get(m, nb6, key, scale=100), published, hyb,
                               tolerance=tol, unit="%", not_comparable=_PRETRAINED, notebook=nb6, metric=key))
    return rows


def _ood(m: dict) -> list[Comparison]:
    f, nb1, nb4, tol = FINDINGS[1], "01_ood_detection", "04_adversarial_training", AUROC_TOLERANCE
    src = f"{_LAB} (CNN trained 50 epochs; CIFAR-10 test vs torchvision FakeData noise)"
    std, fgsm = _get(m, nb4, "standard_msp_auroc_noise"), _get(m, nb4, "fgsm_msp_auroc_noise")
    fgsm_pgd, fast_pgd = _get(m, nb4, "fgsm_pgd10_acc", scale=100), _get(m, nb4, "fast_fgsm_pgd10_acc", scale=100)
    fast = _get(m, nb4, "fast_fgsm_msp_auroc_noise")
    robust_note = "" if None in (fgsm_pgd, fast_pgd, fast) else (
        f"this model's PGD-10 accuracy is {fgsm_pgd:.1f} % (catastrophic overfitting); notebook 04's fast-FGSM model "
        f"(PGD-10 {fast_pgd:.1f} %) scored {fast:.2f}")
    ref = {k: REFERENCES[f"{nb1}/auroc_{k}_noise"][0] for k in ("max_logit", "max_softmax", "autoencoder")}
    return [
        Comparison(f, "simple CNN: max-logit AUROC, CIFAR-10 vs noise",
                   _get(m, nb1, "simple_cnn_auroc_max_logit_noise"),
                   ref["max_logit"], f"{src}; max logit: Hendrycks et al. (2022)", rule="at least", tolerance=tol,
                   unit="AUROC", notebook=nb1, metric="simple_cnn_auroc_max_logit_noise"),
        Comparison(f, "simple CNN: max-softmax AUROC, CIFAR-10 vs noise",
                   _get(m, nb1, "simple_cnn_auroc_max_softmax_noise"), ref["max_softmax"],
                   f"{src}; MSP: Hendrycks & Gimpel (2017)", rule="at least", tolerance=tol, unit="AUROC",
                   notebook=nb1, metric="simple_cnn_auroc_max_softmax_noise",
                   note="the same published 0.97 is set beside notebook 04's standard FastNet below"),
        Comparison(f, "autoencoder: reconstruction-error AUROC, CIFAR-10 vs noise",
                   _get(m, nb1, "auroc_autoencoder_noise"),
                   ref["autoencoder"], f"{_LAB} (autoencoder MSE)", rule="at least", tolerance=tol, unit="AUROC",
                   notebook=nb1, metric="auroc_autoencoder_noise"),
        Comparison(f, "FastNet, standard training: max-softmax AUROC vs noise", std, ref["max_softmax"], src,
                   rule="at least", tolerance=tol, unit="AUROC", notebook=nb4, metric="standard_msp_auroc_noise"),
        Comparison(f, "FastNet, FGSM-augmented training: max-softmax AUROC vs noise", fgsm, 0.26,
                   f"{_LAB} (50 epochs with FGSM-augmented batches; the robust model was more confident on noise)",
                   rule="at most", tolerance=tol, unit="AUROC", notebook=nb4, metric="fgsm_msp_auroc_noise",
                   note=robust_note),
        Comparison(f, "change of the max-softmax AUROC vs noise with FGSM-augmented training", _diff(fgsm, std),
                   round(0.26 - ref["max_softmax"], 2), f"{_LAB}: 0.97 -> 0.26", rule="same sign", tolerance=tol,
                   unit="AUROC difference", notebook=nb4, metric="fgsm_msp_auroc_noise - standard_msp_auroc_noise"),
    ]


def _adversarial_training(m: dict) -> list[Comparison]:
    f, nb4 = FINDINGS[2], "04_adversarial_training"
    src = "Wong, Rice & Kolter (2020), CIFAR-10, eps 8/255"
    fast, free = _get(m, nb4, "fast_fgsm_pgd10_acc", scale=100), _get(m, nb4, "free_pgd10_acc", scale=100)
    return [
        Comparison(f, "fast FGSM (random start): clean accuracy", _get(m, nb4, "fast_fgsm_clean_acc", scale=100), 86.1,
                   src, unit="%", not_comparable=_WONG, notebook=nb4, metric="fast_fgsm_clean_acc"),
        Comparison(f, "fast FGSM (random start): PGD accuracy", fast, 46.1, src, unit="%", not_comparable=_WONG,
                   notebook=nb4, metric="fast_fgsm_pgd10_acc"),
        Comparison(f, "free adversarial training: PGD accuracy", free, 46.3, src, unit="%", not_comparable=_WONG,
                   notebook=nb4, metric="free_pgd10_acc"),
        Comparison(f, "PGD accuracy of fast FGSM minus free's (same model and epochs)", _diff(fast, free),
                   round(46.1 - 46.3, 1), f"{src}: fast FGSM about as robust as free (46.1 % vs 46.3 %)",
                   rule="at least", tolerance=ACCURACY_TOLERANCE, unit="points", notebook=nb4,
                   metric="fast_fgsm_pgd10_acc - free_pgd10_acc"),
    ]


def _direction(batch: dict | None) -> str | None:
    if batch is None or _number(batch.get("attacked mean (bits)")) is None \
            or _number(batch.get("clean mean (bits)")) is None:
        return None
    change = batch["attacked mean (bits)"] - batch["clean mean (bits)"]
    return "rises" if change > ENTROPY_DEAD_ZONE else "falls" if change < -ENTROPY_DEAD_ZONE else "no change"


def _entropy(m: dict) -> list[Comparison]:
    f, nb5 = FINDINGS[3], "05_entropy_monitoring"
    src = "Nazeri & Hafez (2025): VGG-16, 368 ImageNet images, FGSM eps 0.2 (51/255), entropy of a batch's activations"
    batches = [b for b in (_get(m, nb5, "batch_level_fgsm") or []) if isinstance(b, dict)]
    largest = max((b["eps (x/255)"] for b in batches if _number(b.get("eps (x/255)")) is not None), default=None)
    at = f"FGSM {largest:g}/255" if largest is not None else "FGSM at the largest eps"
    whitening = [v for k, v in sorted((_get(m, nb5, "control") or {}).items())
                 if isinstance(v, dict) and v.get("signal") == "whitening" and k.startswith("baseline/")]
    control = "" if not whitening else (
        "notebook 05's control, per image: this layer flagged {random sign (%):.0f} % of images with random-sign noise "
        "of the same size, {FGSM (%):.0f} % of FGSM images and {clean (%):.0f} % of clean ones; the batch-level test, "
        "here as in the paper, has no such control").format(**{k.split(": ")[1]: v for k, v in whitening[0].items()
                                                              if k.startswith("flagged: ")})
    rows = []
    for layer, paper, direction, accuracy in (("whitening", "first convolution", "rises (5.05-5.12 -> 5.14-5.20 bits)",
                                               90.0), ("pooled", "second fully connected layer", "falls", 80.0)):
        b = next((b for b in batches if b.get("layer") == layer and b.get("eps (x/255)") == largest), None)
        measured = _direction(b)
        bits = "" if measured is None else (f"clean {b['clean mean (bits)']:.3f} bits, attacked "
                                            f"{b['attacked mean (bits)']:.3f} bits")
        acc = None if b is None else _number(b.get("accuracy, all"))
        rows += [
            Comparison(f, f"{layer} layer (the paper's {paper}): batch entropy under {at}", measured,
                       direction.split(" (")[0], src, rule="same", unit="direction", notebook=nb5,
                       metric=f"batch_level_fgsm[{layer}]", note=bits),
            Comparison(f, f"{layer} layer: batch-level detection accuracy, {at}", None if acc is None else 100 * acc,
                       accuracy, f"{src}; threshold at argmin FPR + FNR, 10 decisions", rule="at least",
                       tolerance=ACCURACY_TOLERANCE, unit="%", notebook=nb5, metric=f"batch_level_fgsm[{layer}]",
                       note=f"{b.get('decisions', '?')} decisions" + (f"; {control}" if control and layer == "whitening"
                                                                     else "") if b else ""),
        ]
    return rows


def _smoothing(m: dict) -> list[Comparison]:
    f, nb7 = FINDINGS[4], "07_randomized_smoothing"
    src = f"{_LAB} (MNIST-style CNN)"
    cohen = f"{src}; randomized smoothing: Cohen, Rosenfeld & Kolter (2019)"
    names = {"standard": "standard", "L2 FGM training": "adversarial", "noise 0.5": "noise"}
    cert = {names[k]: v for k, v in (_get(m, nb7, "certification") or {}).items() if k in names and isinstance(v, dict)}
    counts = {n: _number(cert.get(n, {}).get("per_10k")) for n in names.values()}
    pgd = _get(m, nb7, "l2_adv_pgd_l2_5_acc", scale=100)
    rows = [
        Comparison(f, "standard CNN: accuracy under FGM at L2 radius 5",
                   _get(m, nb7, "standard_fgm_l2_5_acc", scale=100),
                   9.7, src, rule="at most", tolerance=ACCURACY_TOLERANCE, unit="%", notebook=nb7,
                   metric="standard_fgm_l2_5_acc", note="ours on Fashion-MNIST"),
        Comparison(f, "standard CNN: accuracy under FGM at Linf radius 0.3",
                   _get(m, nb7, "standard_fgm_linf_03_acc", scale=100), 2.7, src, rule="at most",
                   tolerance=ACCURACY_TOLERANCE, unit="%", notebook=nb7, metric="standard_fgm_linf_03_acc",
                   note="ours on Fashion-MNIST"),
        Comparison(f, "L2-adversarially trained CNN: clean accuracy", _get(m, nb7, "l2_adv_clean_acc", scale=100),
                   96.53,
                   src, unit="%", not_comparable=_MNIST, notebook=nb7, metric="l2_adv_clean_acc"),
        Comparison(f, "L2-adversarially trained CNN: accuracy under FGM at L2 radius 5",
                   _get(m, nb7, "l2_adv_fgm_l2_5_acc", scale=100), 94.59, src, rule="at least",
                   tolerance=ACCURACY_TOLERANCE, unit="%", notebook=nb7, metric="l2_adv_fgm_l2_5_acc",
                   note="" if pgd is None else f"under PGD-20 at the same radius it keeps {pgd:.1f} %: the FGM figure "
                                               "measures gradient masking, not robustness (notebook 07)"),
    ]
    rows += [Comparison(f, f"{name} model: correct and certified, per 10,000", counts[name], float(value), cohen,
                        unit="count", not_comparable=_MNIST_CERT, notebook=nb7, metric="certification")
             for name, value in (("standard", 974), ("adversarial", 1870), ("noise", 7684))]
    best = ranking(counts)
    rows += [
        Comparison(f, "the model with the most correct-and-certified images",
                   None if best is None else best.split(" >")[0],
                   "noise", cohen, rule="same", unit="model", notebook=nb7, metric="certification",
                   note="" if best is None else f"ours, all three: {best}"),
        Comparison(f, "models ordered by average certified radius",
                   ranking({n: _number(cert.get(n, {}).get("mean_radius_certified_correct")) for n in names.values()}),
                   "standard > noise > adversarial", cohen, rule="same", unit="ordering", notebook=nb7,
                   metric="certification", not_comparable="a radius is sigma * Phi^-1(p_A_lower), capped by n; the "
                                                          "reference states neither, nor which images it averages"),
    ]
    return rows


def _entprop(m: dict) -> list[Comparison]:
    f, nb8 = FINDINGS[5], "08_entprop"
    src = "Enomoto (2024), CIFAR-100, ResNet-18"
    published = {"vanilla": 61.04, "advprop": 64.69, "entprop_0.2_1": 65.15, "entprop_0.6_5": 66.30}
    h = {k: _get(m, nb8, f"{k}_hscore", scale=100) for k in published}
    rows = [Comparison(f, f"{k}: Hscore", h[k], v, src, unit="%", not_comparable=_CIFAR100, notebook=nb8,
                       metric=f"{k}_hscore") for k, v in published.items()]
    rows += [Comparison(f, f"Hscore gain of {k} over vanilla", _diff(h[k], h["vanilla"]),
                        round(published[k] - published["vanilla"], 2), src, rule="same sign", tolerance=1.0,
                        unit="points", notebook=nb8, metric=f"{k}_hscore - vanilla_hscore",
                        note="the three gains share the vanilla model") for k in ("advprop", "entprop_0.2_1",
                                                                                  "entprop_0.6_5")]
    rows.append(Comparison(f, "PGD-20 accuracy change, EntProp (0.6, 5) minus vanilla",
                           _diff(_get(m, nb8, "entprop_0.6_5_pgd20"), _get(m, nb8, "vanilla_pgd20"), 100), -1.4,
                           f"{src}: PGD-20 6.1 % -> 4.7 % (EntProp adds no PGD robustness)", rule="at most",
                           tolerance=2.0, unit="points", notebook=nb8, metric="entprop_0.6_5_pgd20 - vanilla_pgd20"))
    return rows


def _survival(m: dict) -> list[Comparison]:
    f, nb9 = FINDINGS[6], "09_robustness_survival_analysis"
    plain = sorted(((v["depth"], v) for k, v in (_get(m, nb9, "cost") or {}).items()
                    if k.startswith("resnet") and isinstance(v, dict) and v.get("defence") == "none"
                    and _number(v.get("expected_steps")) and _number(v.get("train_seconds_per_sample"))),
                   key=lambda dv: dv[0])
    ratio, note = None, ""
    if len(plain) >= 2 and plain[-1][0] > plain[0][0]:
        (d0, a), (d1, b) = plain[0], plain[-1]
        steps, train = b["expected_steps"] / a["expected_steps"], b["train_seconds_per_sample"] / a[
            "train_seconds_per_sample"]
        ratio = steps / train
        note = (f"ResNet-{d0} -> ResNet-{d1}: expected PGD steps to break an image {a['expected_steps']:.2f} -> "
                f"{b['expected_steps']:.2f} (x{steps:.2f}), training time per sample x{train:.2f}")
    return [
        Comparison(f, "growth of the PGD steps to break an image per growth of training cost, shallowest to deepest "
                      "plain ResNet", ratio, 1.0, "Meyers et al. (2024): deeper ResNets (18 to 152) buy little extra "
                                                 "survival for their larger training cost", rule="at most",
                   unit="ratio", notebook=nb9, metric="cost[resnet*-standard]", note=note),
        Comparison(f, "best AFT family by AIC (Weibull, log-normal, log-logistic)", _get(m, nb9, "best_aft"), None,
                   "Meyers et al. (2024) compare the three families by AIC, BIC and concordance", rule="same",
                   unit="family", not_comparable="the course's reference names no winner, and the paper's durations "
                                                 "are attack wall-clock times, ours per-image attack budgets",
                   notebook=nb9, metric="best_aft"),
    ]


_BUILDERS = (_baseline_hybrid, _ood, _adversarial_training, _entropy, _smoothing, _entprop, _survival)


def course_comparisons(metrics: dict[str, dict], profile: str | None = None) -> list[Comparison]:
    """Every comparison of a run, grouped by :data:`FINDINGS`.

    ``metrics``: ``{notebook stem: metrics dict}`` (:func:`run_metrics`).  A comparison whose notebook's metrics
    come from the ``smoke`` profile (its file's ``profile``, or ``profile`` when given) is not comparable.
    """
    rows = [row for build in _BUILDERS for row in build(metrics)]
    return [replace(r, not_comparable=_SMOKE) if (profile or metrics.get(r.notebook, {}).get("profile")) == "smoke"
            else r for r in rows]


def provenance(metrics: dict[str, dict]) -> dict[str, dict]:
    """Per notebook: the profile, seed offset, precision, device and CPU kernels its metrics were measured with."""
    out = {}
    for nb, values in metrics.items():
        run = values.get("run") or {}
        out[nb] = {"profile": values.get("profile"), "seed": run.get("seed"), "precision": run.get("precision"),
                   "device": run.get("device"), "CPU kernels": run.get("cpu_capability")}
    return out


def run_metrics(folder) -> dict[str, dict]:
    """The metrics files ``NN_<notebook>.json`` of a run's metrics folder (``runs/<profile>/metrics``), the
    report notebook's own left out: ``{notebook stem: metrics}``.

    Raises FileNotFoundError, saying how to make them, when the folder holds none.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob("[0-9][0-9]_*.json") if p.stem != REPORT_NOTEBOOK)
    if not files:
        raise FileNotFoundError(
            f"No notebook metrics (NN_*.json) in {folder}. Run the series first (`make run PROFILE=standard`, or "
            "`python -m labutils.course.runner --profile standard --only 00 01` for some notebooks), or set RUN_DIR "
            "in the parameters cell to the folder of a run (e.g. runs/standard).")
    return {p.stem: json.loads(p.read_text()) for p in files}
