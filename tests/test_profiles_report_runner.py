"""Profiles table, metrics/report files and the notebook runner."""
from __future__ import annotations

import json

import nbformat
import pytest
import torch

from labutils import runtime, training
from labutils.course import profiles, report, runner


def test_profiles_share_the_same_knobs(monkeypatch):
    keys = {name: set(p) for name, p in profiles.PROFILES.items()}
    assert set(keys) == {"smoke", "standard", "full"}
    assert keys["smoke"] == keys["standard"] == keys["full"]
    for precision in ("bf16", "fp32"):  # a recipe may be given per precision; profile() resolves it
        monkeypatch.setenv("LAB_PRECISION", precision)
        for name in profiles.PROFILES:
            p = profiles.profile(name)
            assert p.precision == precision and p.fast_config.precision in (precision, "auto")
            assert isinstance(p.fast_config, training.TrainConfig) and isinstance(p.simple_config, training.TrainConfig)
            assert not [k for k, v in p.items() if isinstance(v, profiles.ByPrecision)]  # every value resolved
        # smoke is the cheapest, full the most thorough
        s, d, f = (profiles.profile(n) for n in ("smoke", "standard", "full"))
        assert s.n_attack <= d.n_attack <= f.n_attack and s.fast_config.epochs <= d.fast_config.epochs <= f.fast_config.epochs


def test_profile_selection(monkeypatch):
    monkeypatch.delenv("LAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the default on a GPU machine is "full"
    assert profiles.profile().name == "standard"
    monkeypatch.setenv("LAB_PROFILE", "smoke")
    assert profiles.profile().name == "smoke"
    assert profiles.profile("full").name == "full"  # the notebook parameter wins over the environment
    with pytest.raises(ValueError, match="Unknown profile 'quick'"):
        profiles.profile("quick")
    with pytest.raises(AttributeError, match="no setting 'n_tests'"):
        profiles.profile("smoke").n_tests


def test_metrics_merge_and_report(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_SEED", raising=False)
    report.save_metrics("00_setup_and_baselines", {"simple_cnn_test_acc": 0.5, "nan_value": float("nan")},
                        directory=tmp_path / "metrics")
    report.save_metrics("00_setup_and_baselines", {"fastnet_test_acc": 0.9, "curve": [1, 2]},
                        directory=tmp_path / "metrics")
    got = json.loads((tmp_path / "metrics" / "00_setup_and_baselines.json").read_text())
    run = got.pop("run")  # what the figures were measured with
    assert got == {"simple_cnn_test_acc": 0.5, "nan_value": None, "fastnet_test_acc": 0.9, "curve": [1, 2]}
    assert run["seed"] == 0 and run["precision"] in ("fp32", "bf16") and run["cpu_capability"]
    text = report.write_report(tmp_path, profile="smoke").read_text()
    # findings first (a smoke run compares nothing), then every scalar metric without published figures beside it
    assert "| simple CNN: clean accuracy | 50.0 % | 73.7 % |  | **not comparable** | smoke profile" in text
    assert "| simple_cnn_test_acc | 0.5 |" in text and "| fastnet_test_acc | 0.9 |" in text and "curve" not in text
    assert "Verdicts: 0 reproduces, 0 contradicts" in text and "design documents" not in text


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, (src, tags) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)


def test_runner_executes_notebooks_and_reports_failures(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_SEED", raising=False)
    for key in runtime.MALLOC_ENV:  # as when the runner is started outside make
        monkeypatch.delenv(key, raising=False)
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "00_setup_and_baselines.ipynb", [
        ("PROFILE = None", ["parameters"]),
        ("from labutils import runtime\n"
         "from labutils.course import report, profiles\n"
         "report.save_metrics('00_setup_and_baselines', {'simple_cnn_test_acc': 0.7, 'profile': profiles.profile(PROFILE).name,\n"
         "                                               'malloc_tuned': runtime.malloc_tuned()})", []),
    ])
    _notebook(nbdir / "01_broken.ipynb", [
        ("PROFILE = None", ["parameters"]),
        ("x = 1", []),
        ("assert x == 2, 'the claim does not hold'", []),
    ])
    out = tmp_path / "runs"
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))  # an empty checkpoint cache of its own
    monkeypatch.delenv("LAB_CHECKPOINT_LOG", raising=False)
    monkeypatch.chdir(tmp_path)  # a relative output folder still collects the kernels' metrics
    rep, failures = runner.run_series("smoke", out_dir="runs", folder=nbdir, progress=False)
    assert (out / "00_setup_and_baselines.ipynb").exists() and (out / "01_broken.ipynb").exists()
    metrics = json.loads((out / "metrics" / "00_setup_and_baselines.json").read_text())
    assert metrics.pop("run")["seed"] == 0
    # the kernel started with the reuse-friendly malloc settings
    assert metrics == {"simple_cnn_test_acc": 0.7, "profile": "smoke", "malloc_tuned": True}
    assert len(failures) == 1 and failures[0].notebook.name == "01_broken.ipynb"
    # papermill injects a parameters cell, so the failing cell is the fourth executed
    assert failures[0].cell == 4 and failures[0].source.startswith("assert x == 2")
    assert "`assert x == 2" in str(failures[0]) and "the claim does not hold" in str(failures[0])
    assert "| simple_cnn_test_acc | 0.7 |" in rep.read_text() and "| simple CNN: clean accuracy | 70.0 % |" in rep.read_text()
    # what the notebook ran under, from its metrics' run entry, and its models (none): in the report's run-time table
    cond = json.loads((out / "conditions.json").read_text())
    assert set(cond) == {"00_setup_and_baselines"}  # the failed notebook has no time
    ran = cond["00_setup_and_baselines"]
    assert ran["device"] in ("cpu", "cuda") and ran["precision"] in ("fp32", "bf16") and ran["cpu_capability"]
    assert {k: ran[k] for k in ("trained", "from_run", "from_cache", "handed_out")} == dict.fromkeys(
        ("trained", "from_run", "from_cache", "handed_out"), 0)
    assert "| 00_setup_and_baselines | " in rep.read_text() and f" | {ran['device']} | " in rep.read_text()


def test_runner_selection_errors():
    with pytest.raises(ValueError, match=r"No notebook matches \['99'\]"):  # names the unknown entry
        runner.notebooks(["00", "99"])
    assert [p.name[:2] for p in runner.notebooks()] == sorted(p.name[:2] for p in runner.notebooks())
