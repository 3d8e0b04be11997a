"""The reliability report's comparisons (labutils.course.findings), its figure, report.md and notebook 10's prose."""
from __future__ import annotations

import json
import math
import re

import matplotlib
import numpy as np
import pytest

from labutils.course import findings, report, runner
from labutils.course.paths import NOTEBOOK_DIR
from labutils.viz import plots

matplotlib.use("Agg")
ROOT = NOTEBOOK_DIR.parent


# --------------------------------------------------------------------------- the verdict rules
@pytest.mark.parametrize("measured,published,rule,tol,expected", [
    (68.7, 73.7, "close", 5.0, "reproduces"), (68.6, 73.7, "close", 5.0, "contradicts"),  # the boundary is inclusive
    (78.8, 73.7, "close", 5.0, "contradicts"), (0.0, 0.0, "close", 0.0, "reproduces"),
    (85.0, 90.0, "at least", 5.0, "reproduces"), (84.9, 90.0, "at least", 5.0, "contradicts"),
    (100.0, 90.0, "at least", 5.0, "reproduces"),  # better than published is not a contradiction
    (0.6, -1.4, "at most", 2.0, "reproduces"), (0.7, -1.4, "at most", 2.0, "contradicts"),
    (-0.06, -0.71, "same sign", 0.05, "reproduces"), (-0.04, -0.71, "same sign", 0.05, "contradicts"),
    (0.195, -0.71, "same sign", 0.05, "contradicts"), (1.0, 5.26, "same sign", 1.0, "reproduces"),
    (-6.65, 5.26, "same sign", 1.0, "contradicts"),
    ("a > b", "a > b", "same", 0, "reproduces"), ("b > a", "a > b", "same", 0, "contradicts"),
    (None, 73.7, "close", 5.0, "not measured"), (math.nan, 73.7, "close", 5.0, "not measured"),
])
def test_verdict_rules(measured, published, rule, tol, expected):
    assert findings.verdict(measured, published, rule, tol) == expected


def test_not_comparable_wins_and_unknown_rules_are_refused():
    assert findings.verdict(73.7, 73.7, "close", 5, not_comparable="other dataset") == "not comparable"
    assert findings.verdict(None, 73.7, "close", 5, not_comparable="other dataset") == "not comparable"
    with pytest.raises(ValueError, match="unknown rule 'near'.*close"):
        findings.verdict(1.0, 1.0, "near", 0.1)


def test_ranking_orders_highest_first():
    assert findings.ranking({"standard": 3010, "adversarial": 2610, "noise": 8520}) == "noise > standard > adversarial"


# --------------------------------------------------------------------------- comparisons from a run's metrics
def _metrics(profile="standard", **over):
    """A small, made-up run: numbers chosen so each finding has rows of different verdicts."""
    m = {
        "00_setup_and_baselines": {"simple_cnn_test_acc": 0.70, "fastnet_test_acc": 0.9, "n_test": 1000},
        "01_ood_detection": {"simple_cnn_auroc_max_logit_noise": 0.80, "simple_cnn_auroc_max_softmax_noise": 0.5,
                             "auroc_autoencoder_noise": 0.99},
        "02_fgsm_and_targeted_attacks": {"simple_cnn_fgsm_acc": 0.10},
        "04_adversarial_training": {"standard_msp_auroc_noise": 0.9, "fgsm_msp_auroc_noise": 0.3,
                                    "fast_fgsm_pgd10_acc": 0.30, "free_pgd10_acc": 0.40},
        "05_entropy_monitoring": {"batch_level_fgsm": [
            {"layer": "whitening", "eps (x/255)": 2, "clean mean (bits)": 5.0, "attacked mean (bits)": 4.0,
             "accuracy, all": 0.5, "decisions": 50},
            {"layer": "whitening", "eps (x/255)": 8, "clean mean (bits)": 5.0, "attacked mean (bits)": 5.1,
             "accuracy, all": 0.86, "decisions": 50},
            {"layer": "pooled", "eps (x/255)": 8, "clean mean (bits)": 5.0, "attacked mean (bits)": 4.99,
             "accuracy, all": None, "decisions": 50}]},
        "07_randomized_smoothing": {"standard_fgm_l2_5_acc": 0.2, "l2_adv_fgm_l2_5_acc": 0.9, "certification": {
            "standard": {"per_10k": 7000.0, "mean_radius_certified_correct": 2.0},
            "L2 FGM training": {"per_10k": 2000.0, "mean_radius_certified_correct": None},
            "noise 0.5": {"per_10k": 7000.0, "mean_radius_certified_correct": 0.9}}},
        "08_entprop": {"vanilla_hscore": 0.60, "advprop_hscore": 0.62, "entprop_0.2_1_hscore": 0.605,
                       "entprop_0.6_5_hscore": 0.55, "vanilla_pgd20": 0.05, "entprop_0.6_5_pgd20": 0.08},
        "09_robustness_survival_analysis": {"best_aft": "weibull", "cost": {
            "resnet8-standard": {"depth": 8, "defence": "none", "expected_steps": 4.0, "train_seconds_per_sample": 1.0},
            "resnet20-standard": {"depth": 20, "defence": "none", "expected_steps": 12.0,
                                  "train_seconds_per_sample": 2.0},
            "resnet20-adversarial": {"depth": 20, "defence": "adversarial", "expected_steps": 99.0,
                                     "train_seconds_per_sample": 2.0},
            "fastnet-standard": {"depth": 8, "defence": "none", "expected_steps": 1.0,
                                 "train_seconds_per_sample": 9.0}}},
    }
    for nb in m.values():
        nb["profile"] = profile
    m.update(over)
    return m


def _by_quantity(rows):
    return {r.quantity: r for r in rows}


def test_comparisons_of_a_made_up_run():
    rows = findings.course_comparisons(_metrics())
    assert list(findings.FINDINGS) == list(dict.fromkeys(r.finding for r in rows))  # every finding, in order
    q = _by_quantity(rows)
    fgsm = "simple CNN: FGSM accuracy at 8/255, the usual CIFAR-10 budget (the reference's eps is not stated)"
    expect = {
        "simple CNN: clean accuracy": ("reproduces", 70.0),  # 3.7 points from 73.7
        fgsm: ("contradicts", 10.0),  # more than 1.5 + 5
        "simple CNN: PGD accuracy at 8/255": ("not measured", None),  # notebook 03 left out of this run
        "simple CNN: max-softmax AUROC, CIFAR-10 vs noise": ("contradicts", 0.5),
        # a better detector is no contradiction
        "autoencoder: reconstruction-error AUROC, CIFAR-10 vs noise": ("reproduces", 0.99),
        "change of the max-softmax AUROC vs noise with FGSM-augmented training": ("reproduces", pytest.approx(-0.6)),
        "PGD accuracy of fast FGSM minus free's (same model and epochs)": ("contradicts", pytest.approx(-10.0)),
        "whitening layer (the paper's first convolution): batch entropy under FGSM 8/255": ("reproduces", "rises"),
        "whitening layer: batch-level detection accuracy, FGSM 8/255": ("reproduces", 86.0),
        # -0.01 bits is inside the dead zone; a null accuracy is not measured
        "pooled layer (the paper's second fully connected layer): batch entropy under FGSM 8/255": ("contradicts",
                                                                                                    "no change"),
        "pooled layer: batch-level detection accuracy, FGSM 8/255": ("not measured", None),
        "standard CNN: accuracy under FGM at L2 radius 5": ("contradicts", 20.0),
        "standard CNN: accuracy under FGM at Linf radius 0.3": ("not measured", None),
        "L2-adversarially trained CNN: accuracy under FGM at L2 radius 5": ("reproduces", 90.0),
        "the model with the most correct-and-certified images": ("contradicts", "noise = standard"),  # a tie
        "Hscore gain of advprop over vanilla": ("reproduces", pytest.approx(2.0)),
        "Hscore gain of entprop_0.2_1 over vanilla": ("contradicts", pytest.approx(0.5)),  # below the 1-point effect
        "PGD-20 accuracy change, EntProp (0.6, 5) minus vanilla": ("contradicts", pytest.approx(3.0)),
        # steps x3 for training x2 between the plain ResNet-8 and ResNet-20 (FastNet and the defended models apart)
        "growth of the PGD steps to break an image per growth of training cost, shallowest to deepest plain ResNet":
            ("contradicts", pytest.approx(1.5)),
    }
    for quantity, (verdict, measured) in expect.items():
        assert (q[quantity].verdict, q[quantity].measured) == (verdict, measured), quantity
    # like with like: the hybrid, Wong et al.'s absolute figures, the certified counts and radii, absolute Hscores
    # and the AFT winner are never judged
    for r in rows:
        if r.quantity.startswith(("hybrid CNN", "fast FGSM (", "free adversarial", "best AFT", "models ordered")) \
                or r.unit == "count" or r.quantity.endswith(": Hscore"):
            assert r.verdict == "not comparable" and r.not_comparable, r.quantity
    assert q["models ordered by average certified radius"].measured is None  # a missing radius: no ordering
    assert not any("FastNet" in r.quantity and r.published == 85.5 for r in rows)
    missing = q["simple CNN: PGD accuracy at 8/255"].as_row()
    assert missing["why not comparable"] == "no value for 03_pgd_and_norms/simple_cnn_pgd_acc in this run"


def test_smoke_figures_are_never_compared_even_beside_standard_ones():
    smoke = _metrics(profile="smoke")
    rows = findings.course_comparisons(smoke)
    assert all("smoke profile" in r.not_comparable for r in rows if r.notebook in smoke)
    assert {r.verdict for r in rows if r.notebook not in smoke and not r.not_comparable} == {"not measured"}
    assert {r.verdict for r in findings.course_comparisons(smoke, "smoke")} == {"not comparable"}
    mixed = _metrics()
    mixed["00_setup_and_baselines"]["profile"] = "smoke"  # one notebook rerun in smoke into a standard run's folder
    q = _by_quantity(findings.course_comparisons(mixed))
    assert "smoke profile" in q["simple CNN: clean accuracy"].not_comparable
    assert q["simple CNN: selective accuracy at 97 % coverage"].verdict == "not measured"  # notebook 06: standard
    assert q["autoencoder: reconstruction-error AUROC, CIFAR-10 vs noise"].verdict == "reproduces"


def test_a_missing_notebook_is_not_measured_and_counts_cover_every_row():
    partial = _metrics()
    del partial["07_randomized_smoothing"], partial["05_entropy_monitoring"]
    rows = findings.course_comparisons(partial)
    for finding in findings.FINDINGS[3:5]:
        assert {r.verdict for r in rows if r.finding == finding and not r.not_comparable} == {"not measured"}
    assert any("FGSM at the largest eps" in r.quantity for r in rows)  # no "None/255" in a label
    counts = findings.verdict_counts(rows)
    assert list(counts) == list(findings.VERDICTS) and sum(counts.values()) == len(rows)


def test_ranking_ties_and_missing_values():
    assert findings.ranking({"a": 1.0, "b": 2.0, "c": 1.0}) == "b > a = c"
    assert findings.ranking({"a": 1.0, "b": None}) is None and findings.ranking({"a": float("nan")}) is None
    assert findings.verdict(np.float32("nan"), 0.5, "at least", 0.05) == "not measured"
    with pytest.raises(ValueError, match="no published figure"):
        findings.verdict(1.0, None, "close", 0.1)


def test_published_figures_are_the_reference_documents():
    """Every published figure a comparison quotes appears in shared/reference/methods.md (differences excepted)."""
    methods = ROOT.parent / "shared" / "reference" / "methods.md"
    if not methods.exists():
        pytest.skip(f"{methods} is not beside this checkout (CI and the course's machines have it)")
    text = methods.read_text()
    rows = findings.course_comparisons(findings.run_metrics(findings.REFERENCE_RUN))
    quoted = [r for r in rows if isinstance(r.published, float) and r.rule != "same sign"
              and r.unit not in ("points", "ratio", "AUROC difference")]
    assert len(quoted) >= 25
    for r in quoted:
        forms = {f"{r.published:g}", f"{r.published:.1f}", f"{r.published:.2f}", f"{r.published:.0f}"}
        if r.unit == "%":  # methods.md writes some accuracies as fractions (0.90)
            forms.add(f"{r.published / 100:.2f}")
        assert any(re.search(rf"(?<![\d.]){re.escape(x)}(?![\d])", text) for x in forms), (r.quantity, r.published)


def test_markdown_table_and_figure():
    rows = findings.course_comparisons(_metrics())
    lines = findings.markdown_table(rows)
    assert len(lines) == len(rows) + 2 and all(line.count("|") >= 8 for line in lines)
    assert "| simple CNN: clean accuracy | 70.0 % | 73.7 % | within 5 of 73.7 | **reproduces** |" in lines[2]
    part = [r.as_row() for r in rows if r.finding == findings.FINDINGS[4]]
    fig = plots.findings_figure(part, title=findings.FINDINGS[4])
    assert [ax.get_xlabel() for ax in fig.axes] == ["accuracy (%)", "images per 10,000", ""]  # + the text panel
    ood = plots.findings_figure([r.as_row() for r in rows if r.finding == findings.FINDINGS[1]])
    assert [ax.get_xlabel() for ax in ood.axes] == ["AUROC (0.5 = chance)", "change of the AUROC"]
    with pytest.raises(ValueError, match="rows is empty"):
        plots.findings_figure([])


# --------------------------------------------------------------------------- report.md and the HTML export
def test_report_leads_with_the_findings(tmp_path):
    for nb, values in _metrics().items():
        report.save_metrics(nb, values, directory=tmp_path / "metrics")
    text = report.write_report(tmp_path, profile="standard").read_text()
    assert text.index("## Findings beside the published figures") < text.index("## Every metric of the run")
    counts = findings.verdict_counts(findings.course_comparisons(report.load_metrics(tmp_path / "metrics")))
    assert "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) in text
    # the metrics appendix lists FastNet's accuracy alone: the pretrained hybrid's 85.5 % is only in its own row
    assert "| fastnet_test_acc | 0.9 |" in text
    assert [line.split(" | ")[1] for line in text.splitlines() if "85.5 %" in line] == ["hybrid CNN: clean accuracy"]


def test_runner_exports_an_executed_notebook_as_html(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('cell-source-7f3a')")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="cell-output-9b2c\n")]
    path = tmp_path / "10_reliability_report.ipynb"
    nbformat.write(nb, path)
    html = runner.export_html(path)
    assert html == path.with_suffix(".html")
    text = html.read_text()
    assert "cell-source-7f3a" in text and "cell-output-9b2c" in text


# --------------------------------------------------------------------------- notebook 10 quotes the course's run
def _prose() -> str:
    cells = json.loads((NOTEBOOK_DIR / f"{findings.REPORT_NOTEBOOK}.ipynb").read_text())["cells"]
    return re.sub(r"\s+", " ", " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"))


def test_notebook_10_prose_quotes_the_shipped_standard_run():
    metrics = findings.run_metrics(findings.REFERENCE_RUN)
    assert sorted(metrics) == sorted(p.stem for p in NOTEBOOK_DIR.glob("0[0-9]_*.ipynb"))
    assert {(v["profile"], v["run"]["seed"], v["run"]["precision"], v["run"]["cpu_capability"])
            for v in metrics.values()} == {("standard", 0, "fp32", "AVX2")}
    rows = findings.course_comparisons(metrics)
    counts = findings.verdict_counts(rows)
    prose = _prose()
    assert (f"{counts['reproduces']} comparisons reproduce, {counts['contradicts']} contradict and "
            f"{counts['not comparable']} are not comparable") in prose
    q = {r.quantity: r.measured for r in rows}
    m = metrics
    n1, n4, n7 = m["01_ood_detection"], m["04_adversarial_training"], m["07_randomized_smoothing"]
    n9 = m["09_robustness_survival_analysis"]
    aic = {k: v["AIC"] for k, v in n9["aft_comparison"].items()}
    fgsm = "simple CNN: FGSM accuracy at 8/255, the usual CIFAR-10 budget (the reference's eps is not stated)"
    steps = "growth of the PGD steps to break an image per growth of training cost, shallowest to deepest plain ResNet"
    quoted = [  # (a value of this run, how the prose writes it)
        (q["simple CNN: clean accuracy"], "reached {:.1f} % clean"), (73.7 - q["simple CNN: clean accuracy"],
                                                                       "{:.1f} points below the reference"),
        (q[fgsm], "({:.1f} % under FGSM"), (q["simple CNN: PGD accuracy at 8/255"], "{:.1f} % under PGD)"),
        (q["simple CNN: selective accuracy at 97 % coverage"], "coverage ({:.1f} %)"),
        (q["hybrid CNN: clean accuracy"], "{:.1f} % clean from scratch"),
        (q["simple CNN: max-logit AUROC, CIFAR-10 vs noise"], "max-logit AUROC was {:.2f}"),
        (q["simple CNN: max-softmax AUROC, CIFAR-10 vs noise"], "max-softmax AUROC {:.2f}"),
        (n4["standard_msp_auroc_noise"], "AUROC from {:.2f}"), (n4["fgsm_msp_auroc_noise"], "to {:.2f}, the opposite"),
        (100 * n4["fgsm_pgd10_acc"], "({:.1f} % under PGD-10)"), (n4["fast_fgsm_msp_auroc_noise"], "scored {:.2f}, so"),
        (n1["auroc_max_softmax_noise"], "scored {:.2f} (notebook 01)"),
        (n1["simple_cnn_auroc_max_logit_fashion_mnist"], "(max-logit AUROC {:.2f} for the simple CNN"),
        (n1["auroc_max_logit_fashion_mnist"], "{:.2f} for FastNet"),
        (100 * n4["fast_fgsm_pgd10_acc"], "fast FGSM kept {:.1f} %"),
        (100 * n4["free_pgd10_acc"], "free training {:.1f} %"),
        (q["pooled layer: batch-level detection accuracy, FGSM 16/255"], "({:.0f} % against 80 %)"),
        (100 * n7["standard_fgm_l2_5_acc"], "({:.1f} % at L2"),
        (100 * n7["standard_fgm_linf_03_acc"], "{:.1f} % at Linf"),
        (100 * n7["l2_adv_fgm_l2_5_acc"], "kept {:.1f} % under FGM"),
        (100 * n7["l2_adv_pgd_l2_5_acc"], "kept {:.1f} % under PGD-20"),
        (n7["noise_certified_per_10k"], "({:.0f} per 10,000)"),
        (n7["standard_certified_per_10k"], "({:.0f}) certified"),
        (n7["l2_adv_certified_per_10k"], "L2-trained one ({:.0f})"),
        (q["Hscore gain of advprop over vanilla"], "AdvProp {:.2f} points"),
        (q["Hscore gain of entprop_0.2_1 over vanilla"], "EntProp (0.2, 1) {:.2f}"),
        (q["Hscore gain of entprop_0.6_5 over vanilla"], "EntProp (0.6, 5) {:.2f}, against"),
        (n9["cost"]["resnet8-standard"]["expected_steps"], "*fell* from {:.2f}"),
        (n9["cost"]["resnet20-standard"]["expected_steps"], "to {:.2f} while"), (q[steps], "(a ratio of {:.2f})"),
        (aic["lognormal"] - aic["loglogistic"], "AIC ({:.1f} below the log-normal"),
        (aic["weibull"] - aic["loglogistic"], "{:.1f} below the Weibull"),
        (100 * (m["08_entprop"]["mixup_hscore"] - m["08_entprop"]["vanilla_hscore"]), "lost {:.2f} points"),
    ]
    for value, form in quoted:
        assert form.format(value) in prose, (form, value)
    assert q["the model with the most correct-and-certified images"] == "noise"
