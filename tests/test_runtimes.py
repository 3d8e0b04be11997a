"""The README's notebooks table: generated from run reports (labutils.course.runtimes), the conditions a run
records (labutils.course.conditions, report.write_report), the Colab / Binder links and the profile a GPU gets.
Fast: no model is trained and no kernel started."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import torch

from labutils.course import conditions, links, profiles, report, runtimes, timing

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted((ROOT / "benchmarks" / "runtimes").glob("*.md"))
TIMING_SOURCE = "labutils/course/timing.py"

OLD_REPORT = """# CNN Reliability Lab: results (standard profile)

Machine: AMD EPYC, 2 cores. CIFAR-10 figures are measured on whichever copy the data directory held.

## Run time

| notebook | seconds |
| --- | ---: |
| 07_randomized_smoothing | 720 |
| total | 720 |

## 07_randomized_smoothing

| metric | measured | reference | source of the reference |
| --- | --- | --- | --- |
| n | 1000 |  |  |
"""


def _new_report(tmp_path: Path, rows: dict[str, tuple[float, dict]], *, profile="standard", name="report.md",
                gpu=None) -> Path:
    """A report written by report.write_report from fake timings and conditions."""
    folder = tmp_path / name.removesuffix(".md")
    folder.mkdir()
    timing.save_timings(folder, {nb: sec for nb, (sec, _) in rows.items()})
    conditions.save_conditions(folder, {nb: cond for nb, (_, cond) in rows.items()})
    path = report.write_report(folder, profile=profile)
    if gpu:  # as write_report writes it on a machine with a GPU
        path.write_text(path.read_text().replace("\nMeasured:", f"\nGPU: {gpu}\n\nMeasured:", 1))
    return path


def _cond(device="cpu", precision="fp32", kernels="AVX2", trained=2, from_run=0, from_cache=0, handed_out=0):
    return {"device": device, "precision": precision, "cpu_capability": kernels, "trained": trained,
            "from_run": from_run, "from_cache": from_cache, "handed_out": handed_out}


# --------------------------------------------------------------------------- the README
def test_readme_table_is_the_scripts_output_on_the_committed_reports():
    assert BENCHMARKS, "benchmarks/runtimes/ holds the reports the README's table is made from"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = runtimes.runtime_table(BENCHMARKS)
    assert runtimes.region(readme) == table, (
        "README.md's notebooks table is out of date: python -m labutils.course.runtimes --write README.md")
    assert runtimes.main(["--check", str(ROOT / "README.md")]) == 0
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for nb in notebooks:  # one row per notebook, with its Colab badge
        assert f"[{nb.stem}](notebooks/{nb.name})" in table and links.colab_url(nb.name) in table
    assert links.binder_url() in readme  # the hand-written link (the notebooks' Colab cell: tests/test_colab.py)


def _stated(seconds: tuple[float, float], text: str) -> bool:
    """Whether ``text`` states these seconds: ``712`` (``712 s``, ``712.0``) or the range ``66-74``."""
    lo, hi = (f"{v:g}" for v in seconds)
    figure = re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}"
    return re.search(rf"(?<![\d.]){figure}(?:\.0)?(?![\d.]\d|\d)", text) is not None


def test_every_committed_report_parses_and_says_where_it_comes_from():
    timing_text = (ROOT / TIMING_SOURCE).read_text(encoding="utf-8")
    for path in BENCHMARKS:
        found = runtimes.parse_report(path)
        assert found, path
        text = path.read_text(encoding="utf-8")
        assert "\nSource: " in text and "\nMeasured: " in text, f"{path.name}: say where the figures come from"
        for m in found:
            assert m.profile in profiles.PROFILES and m.seconds[0] > 0
        source = re.search(r"^Source: `([^`]+)`(.*)$", text, re.M)
        assert source, f"{path.name}: its Source line starts with the cited file in backticks"
        cited, rest = source.groups()
        if cited == TIMING_SOURCE:  # the comment above EXPECTED_SECONDS states every figure
            for m in found:
                assert _stated(m.seconds, timing_text), f"{path.name}: {TIMING_SOURCE} does not state {m.seconds}"
        elif (ROOT / cited).is_file():  # a run's report.md: the same profile and seconds
            theirs = {m.notebook: (m.profile, m.seconds) for m in runtimes.parse_report(ROOT / cited)}
            for m in found:
                assert theirs.get(m.notebook) == (m.profile, m.seconds), f"{path.name}: {cited} says otherwise"
        else:  # a run report under runs/, which git ignores: checked above where this checkout has it
            assert re.fullmatch(r"runs/[\w.-]+/report\.md", cited) and "not committed" in rest, (
                f"{path.name}: {cited} is neither {TIMING_SOURCE} nor a file of this checkout")


# --------------------------------------------------------------------------- parsing
def test_parse_a_report_of_the_older_format(tmp_path):
    path = tmp_path / "old.md"
    path.write_text(OLD_REPORT)
    (m,) = runtimes.parse_report(path)
    assert (m.notebook, m.profile, m.seconds, m.measured) == ("07_randomized_smoothing", "standard", (720, 720), "")
    assert m.machine == "2 cores, device and precision not recorded"
    assert m.condition == "partial"  # nothing says where its models came from
    assert m.details["trained"] is None and m.details["precision"] is None


def test_parse_a_report_with_the_conditions(tmp_path):
    path = _new_report(tmp_path, {
        "04_adversarial_training": (1001.2, _cond(trained=5)),
        "05_entropy_monitoring": (116.0, _cond(trained=0, from_cache=2)),
        "07_randomized_smoothing": (444.0, _cond(precision="bf16", kernels="AVX512", trained=5)),
        "09_robustness_survival_analysis": (900.0, _cond(trained=7, from_cache=3)),
    })
    found = {m.notebook: m for m in runtimes.parse_report(path)}
    assert set(found) == {"04_adversarial_training", "05_entropy_monitoring", "07_randomized_smoothing",
                          "09_robustness_survival_analysis"}  # not the total
    cores = os.cpu_count()
    assert found["04_adversarial_training"].machine == f"{cores}-core CPU, fp32 (AVX2)"
    assert found["04_adversarial_training"].seconds == (1001, 1001)
    assert found["07_randomized_smoothing"].machine == f"{cores}-core CPU, bf16 (AVX-512)"
    assert [found[n].condition for n in sorted(found)] == ["trains", "loaded", "trains", "partial"]
    assert found["05_entropy_monitoring"].details == {"device": "cpu", "precision": "fp32", "cpu_capability": "AVX2",
                                                      "trained": 0, "from_run": 0, "from_cache": 2, "handed_out": 0}
    assert found["04_adversarial_training"].measured.startswith(time.strftime("%Y-%m-%d", time.gmtime()))


def test_machine_labels_and_conditions():
    assert runtimes.machine_label(2, "cuda", "bf16", "AVX2", "NVIDIA H100") == "GPU (NVIDIA H100)"
    assert runtimes.machine_label(2, "cpu", None, None) == "2-core CPU, precision not recorded"
    assert runtimes.checkpoint_condition(0, 0, 0, 5) == "loaded"      # every model handed out
    assert runtimes.checkpoint_condition(0, 2, 0, 0) == "trains"      # an earlier notebook of the run trained them
    assert runtimes.checkpoint_condition(3, None, None, None) == "partial"
    assert [runtimes.format_seconds(s) for s in (41.0, 89.0, 116.0, 1001.0, (47.0, 50.0), (103.0, 139.0))] == \
        ["41 s", "89 s", "2 min", "17 min", "47-50 s", "2 min"]
    assert runtimes.format_seconds((164.0, 300.0)) == "3-5 min"


# --------------------------------------------------------------------------- the table
def test_table_shows_a_dash_where_nothing_was_measured(tmp_path):
    path = _new_report(tmp_path, {"04_adversarial_training": (1001.0, _cond(trained=5))})
    table = runtimes.runtime_table([path])
    header, _, *rows = table.splitlines()
    row = next(r for r in rows if "[04_adversarial_training]" in r)
    other = next(r for r in rows if "[05_entropy_monitoring]" in r)
    cells, columns = row.strip("|").split(" | "), header.strip("|").split(" | ")
    fp32 = columns.index(f"`standard`: {os.cpu_count()}-core CPU, fp32 (AVX2)")
    assert cells[fp32].strip() == "17 min / —"  # trained, not measured with every model loaded
    assert columns.index("`smoke`: 2-core CPU, bf16 (AVX-512)") > 0  # the machines are always shown
    assert other.count(runtimes.MISSING) >= len(columns) - 4  # nothing measured for 05
    assert runtimes.PARTIAL not in table


def test_table_prefers_the_newest_and_complete_measurements(tmp_path):
    def report(name, measured, sec, cond):
        path = _new_report(tmp_path, {"08_entprop": (sec, cond)}, name=name)
        text = path.read_text()
        start = text.index("Measured: ")
        path.write_text(text[:start] + f"Measured: {measured}" + text[text.index("\n", start):])
        return path

    complete = report("a.md", "2026-12-05 02:45 UTC", 855.0, _cond(trained=5))
    partial_same_day = report("b.md", "2026-12-05 03:18 UTC", 576.0, _cond(trained=3, from_cache=2))
    loaded_old = report("c.md", "2026-12-01", 200.0, _cond(trained=0, from_cache=5))
    loaded_new = report("d.md", "2026-12-04", 120.0, _cond(trained=0, from_cache=5))
    row = next(r for r in runtimes.runtime_table([complete, partial_same_day, loaded_old, loaded_new]).splitlines()
               if "[08_entprop]" in r)
    assert "14 min / 2 min" in row  # the complete run of the same day, the newest fully loaded one
    partial_next_day = report("e.md", "2026-12-06", 576.0, _cond(trained=3, from_cache=2))
    table = runtimes.runtime_table([complete, partial_next_day])
    assert f"10 min{runtimes.PARTIAL} / —" in table and "\n\n" + runtimes.PARTIAL + ": some of" in table


def test_gpu_runs_get_their_own_column(tmp_path):
    path = _new_report(tmp_path, {"00_setup_and_baselines": (300.0, _cond(device="cuda", precision="bf16"))},
                       profile="full", gpu="NVIDIA H100 80GB HBM3")
    header = runtimes.runtime_table([path]).splitlines()[0]
    assert header.rstrip(" |").endswith("`full`: GPU (NVIDIA H100 80GB HBM3)")


def test_notebook_summaries_come_from_the_first_cell():
    s = runtimes.notebook_summary(ROOT / "notebooks" / "02_fgsm_and_targeted_attacks.ipynb")
    assert s["question"].startswith("How small a perturbation fools the network")
    assert s["goals"].startswith("**compute** an FGSM adversarial example") and s["goals"].count("**") >= 8
    assert s["prerequisites"] == "00"
    assert runtimes.notebook_summary(ROOT / "notebooks" / "00_setup_and_baselines.ipynb")["prerequisites"] == "none"
    assert runtimes._earlier_notebooks("Notebooks 02-04 (FGSM) and 10,000 images; notebook 01", 9) == [1, 2, 3, 4]
    assert runtimes._ranges([0, 1, 2, 3, 5, 7, 8]) == "00-03, 05, 07-08"


def test_cli_writes_the_region_and_checks_it(tmp_path, capsys):
    rep = _new_report(tmp_path, {"04_adversarial_training": (1001.0, _cond(trained=5))})
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{runtimes.BEGIN}\nstale\n{runtimes.END}\n\nafter\n")
    assert runtimes.main(["--check", str(readme), str(rep)]) == 1
    assert runtimes.main(["--write", str(readme), str(rep)]) == 0
    text = readme.read_text()
    assert "stale" not in text and text.endswith(f"{runtimes.END}\n\nafter\n") and "17 min / —" in text
    assert runtimes.main(["--check", str(readme), str(rep)]) == 0
    capsys.readouterr()
    assert runtimes.main([str(rep)]) == 0 and capsys.readouterr().out == runtimes.runtime_table([rep])
    (tmp_path / "no_markers.md").write_text("nothing")
    assert runtimes.main(["--write", str(tmp_path / "no_markers.md"), str(rep)]) == 2


# --------------------------------------------------------------------------- what a run records
def test_write_report_writes_each_notebooks_conditions(tmp_path):
    timing.save_timings(tmp_path, {"00_setup_and_baselines": 712.4, "01_ood_detection": 157.0})
    conditions.save_conditions(tmp_path, {"00_setup_and_baselines": _cond(trained=2)})
    text = report.write_report(tmp_path, profile="standard").read_text()
    assert "| " + " | ".join(report.RUN_TIME_COLUMNS) + " |" in text
    assert "| 00_setup_and_baselines | 712 | cpu | fp32 | AVX2 | 2 | 0 | 0 | 0 |" in text
    assert "| 01_ood_detection | 157 | ? | ? | ? | ? | ? | ? | ? |" in text  # an older run's notebook: not recorded
    assert "| total | 869 |" in text and "\nMeasured: " in text


def test_the_report_and_its_reader_use_the_conditions_keys():
    assert report._CONDITION_KEYS == conditions.KEYS == conditions.RUN_KEYS + conditions.SOURCES
    assert [runtimes._COLUMNS[c.lower()] for c in report.RUN_TIME_COLUMNS] == ["notebook", "seconds", *conditions.KEYS]


def test_timings_and_conditions_merge_into_their_json_files(tmp_path, capsys):
    timing.save_timings(tmp_path, {"00_setup_and_baselines": 1.0, "01_ood_detection": 2.0})
    timing.save_timings(tmp_path, {"01_ood_detection": 3.0})
    assert timing.load_timings(tmp_path) == {"00_setup_and_baselines": 1.0, "01_ood_detection": 3.0}
    conditions.save_conditions(tmp_path, {"00_setup_and_baselines": _cond()})
    conditions.save_conditions(tmp_path, {"01_ood_detection": _cond(trained=0)})
    assert set(conditions.load_conditions(tmp_path)) == {"00_setup_and_baselines", "01_ood_detection"}
    (tmp_path / "timings.json").write_text("{not json")
    (tmp_path / "conditions.json").write_text("[1, 2]")
    capsys.readouterr()
    assert timing.load_timings(tmp_path) == {} and conditions.load_conditions(tmp_path) == {}
    out = capsys.readouterr().out
    assert "ignoring unreadable" in out and "reference times" in out and "not recorded" in out
    timing.save_timings(tmp_path, {"02_fgsm_and_targeted_attacks": 4.0})  # an unreadable file is replaced
    assert timing.load_timings(tmp_path) == {"02_fgsm_and_targeted_attacks": 4.0}
    assert timing.load_timings(tmp_path / "missing") == {}


def test_model_sources_count_trained_loaded_and_handed_out():
    start = {"a.pt": (1, 10), "h.pt": (1, 10)}                     # the cache when the run started
    before = {**start, "b.pt": (2, 10)}                            # notebook 1 trained b
    after = {**before, "c.pt": (3, 10), "a.pt": (1, 10)}           # this notebook trains c
    logged = ["/d/checkpoints/a.pt\n", "/d/checkpoints/b.pt", "/d/checkpoints/c.pt", "/d/checkpoints/h.pt",
              "/d/checkpoints/a.pt"]
    assert conditions.model_sources(logged, start, before, after, {"h.pt"}) == \
        {"trained": 1, "from_run": 1, "from_cache": 1, "handed_out": 1}
    # retraining over a cached file counts as training it
    assert conditions.model_sources(["/x/a.pt"], start, start, {**start, "a.pt": (9, 10)})["trained"] == 1
    # a get_or_train that logs nothing: only the trained files are known
    assert conditions.model_sources([], start, start, after) == \
        {"trained": 2, "from_run": None, "from_cache": None, "handed_out": None}
    assert conditions.model_sources([], start, start, start) == dict.fromkeys(conditions.SOURCES, 0)
    assert conditions.model_sources(["a.pt"], None, start, start) == dict.fromkeys(conditions.SOURCES)


def test_model_ledger_reads_the_cache_and_the_log(tmp_path):
    import hashlib

    cache, log = tmp_path / "checkpoints", tmp_path / "log.txt"
    cache.mkdir()
    (cache / "old-cifar10-000000000000.pt").write_bytes(b"old")
    (cache / "given-cifar10-111111111111.pt").write_bytes(b"given")
    (cache / "handed_out.json").write_text(json.dumps(
        {"given-cifar10-111111111111.pt": {"sha256": hashlib.sha256(b"given").hexdigest()}}))
    log.write_text("/elsewhere/an-earlier-line.pt\n")
    ledger = conditions.ModelLedger(log, cache)
    ledger.begin()
    (cache / "new-cifar10-222222222222.pt").write_bytes(b"new")
    (cache / "new-cifar10-222222222222.partial.pt").write_bytes(b"state")  # never counted
    with open(log, "a") as f:
        f.write("".join(f"{cache / n}\n" for n in ("old-cifar10-000000000000.pt", "given-cifar10-111111111111.pt",
                                                    "new-cifar10-222222222222.pt")))
    assert ledger.end() == {"trained": 1, "from_run": 0, "from_cache": 1, "handed_out": 1}
    ledger.begin()  # the next notebook loads what the previous one trained
    with open(log, "a") as f:
        f.write(f"{cache / 'new-cifar10-222222222222.pt'}\n")
    assert ledger.end() == {"trained": 0, "from_run": 1, "from_cache": 0, "handed_out": 0}


def test_notebook_conditions_come_from_its_metrics_when_it_wrote_them(tmp_path, monkeypatch):
    metrics = tmp_path / "00.json"
    run = {"device": "cuda", "precision": "bf16", "cpu_capability": "AVX2", "seed": 0}
    metrics.write_text(json.dumps({"run": run}))
    assert conditions.notebook_conditions(metrics, since=time.time() - 60) == \
        {"device": "cuda", "precision": "bf16", "cpu_capability": "AVX2"}
    monkeypatch.setenv("LAB_PRECISION", "fp32")
    own = conditions.notebook_conditions(metrics, since=time.time() + 60)  # stale metrics: this process's
    assert own["precision"] == "fp32" and own["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert conditions.notebook_conditions(tmp_path / "missing.json", since=0)["precision"] == "fp32"


# --------------------------------------------------------------------------- links and the GPU profile
def test_links_come_from_the_repository_url(tmp_path, monkeypatch):
    url = links.repository_url()  # pyproject.toml's [project.urls] Repository, whatever the instructor set
    owner_name = links.github_repository(url)
    assert url.rstrip("/").removesuffix(".git").endswith("/" + owner_name)
    assert links.colab_url("03_pgd_and_norms") == (f"https://colab.research.google.com/github/{owner_name}/blob/main/"
                                                   "notebooks/03_pgd_and_norms.ipynb")
    assert links.binder_url() == f"https://mybinder.org/v2/gh/{owner_name}/HEAD?urlpath=lab"
    assert links.github_repository("https://github.com/o/n.git") == "o/n"
    with pytest.raises(ValueError, match="not a GitHub repository"):
        links.github_repository("https://gitlab.com/a/b")
    # an installed wheel has no pyproject.toml: the package metadata's Project-URL answers
    monkeypatch.setattr(links.metadata, "metadata",
                        lambda name: _Meta(["Homepage, https://x", "Repository, https://github.com/o/n"]))
    assert links.repository_url(tmp_path / "missing.toml") == "https://github.com/o/n"


class _Meta:
    def __init__(self, urls):
        self.urls = urls

    def get_all(self, key):
        return self.urls if key == "Project-URL" else None


@pytest.mark.parametrize("env,cuda,expected", [
    ({}, True, "full"), ({}, False, "standard"), ({"LAB_DEVICE": "cpu"}, True, "standard"),
    ({"LAB_DEVICE": "cuda"}, True, "full"), ({"LAB_PROFILE": "smoke"}, True, "smoke"),
    ({"LAB_PROFILE": "standard"}, True, "standard")])
def test_a_cuda_gpu_picks_the_full_profile_unless_one_is_named(monkeypatch, capsys, env, cuda, expected):
    for name in ("LAB_PROFILE", "LAB_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100")
    monkeypatch.setenv("LAB_PRECISION", "fp32")  # profile() resolves the precision: no real GPU to ask here
    assert profiles.profile_name() == expected
    assert profiles.profile_name("smoke") == "smoke"  # the notebook's PROFILE parameter wins over everything
    name, reason = profiles.choose_profile()
    assert name == expected and reason
    if expected == "full":
        assert "NVIDIA H100" in reason
    capsys.readouterr()
    profiles.profile()
    assert f"profile '{expected}': " in capsys.readouterr().out
