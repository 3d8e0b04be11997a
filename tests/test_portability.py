"""Seeds, precisions and claims: settings, profile seed offsets, the claims log and table, the cache key,
the run's progress line and time estimates."""
from __future__ import annotations

import dataclasses
import io
import json

import pytest
import torch

from labutils import runtime, settings, training
from labutils.course import claims, profiles, report, runner, seeds, timing


# --------------------------------------------------------------------------- settings
def test_settings_read_the_environment_when_called(monkeypatch, tmp_path):
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert settings.seed() == 0 and settings.precision() is None and settings.claims_log() is None
    monkeypatch.setenv("LAB_SEED", "3")
    monkeypatch.setenv("LAB_PRECISION", "FP32")
    monkeypatch.setenv("LAB_CLAIMS_LOG", str(tmp_path / "c.jsonl"))
    assert settings.seed() == 3 and settings.precision() == "fp32" and settings.claims_log() == tmp_path / "c.jsonl"
    monkeypatch.setenv("LAB_PRECISION", "auto")
    assert settings.precision() is None


@pytest.mark.parametrize("name,value,match", [("LAB_SEED", "-1", "LAB_SEED='-1'"), ("LAB_SEED", "two", "non-negative"),
                                              ("LAB_PRECISION", "fp16", "fp32, bf16 or auto")])
def test_settings_reject_malformed_values(monkeypatch, name, value, match):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        settings.seed() if name == "LAB_SEED" else settings.precision()


def test_lab_precision_overrides_auto_only(monkeypatch):
    monkeypatch.setenv("LAB_PRECISION", "fp32")
    assert runtime.autocast_dtype("cpu") is None
    assert runtime.autocast_dtype("cpu", "bf16") is torch.bfloat16  # an explicit precision wins
    monkeypatch.setenv("LAB_PRECISION", "bf16")
    assert runtime.autocast_dtype("cpu") is torch.bfloat16 and runtime.autocast_dtype("cpu", "fp32") is None


# --------------------------------------------------------------------------- seed offsets
def test_profile_seed_offsets_every_training_config(monkeypatch):
    monkeypatch.delenv("LAB_SEED", raising=False)
    base = profiles.profile("smoke")
    assert base.seed == 0
    monkeypatch.setenv("LAB_SEED", "4")
    shifted = profiles.profile("smoke")
    assert shifted.seed == 4 and profiles.profile("smoke", seed=2).seed == 2  # the argument wins
    configs = [k for k, v in base.items() if isinstance(v, training.TrainConfig)]
    assert len(configs) == 6  # notebooks 00-03 (3) and 06 (MobileNetV2, the hybrid head, the 3D path)
    for k in configs:
        assert shifted[k].seed == base[k].seed + 4
        assert dataclasses.replace(shifted[k], seed=base[k].seed) == base[k]  # nothing else changes
    assert profiles.PROFILES["smoke"].fast_config.seed == base.fast_config.seed  # the table itself is untouched
    with pytest.raises(ValueError, match="non-negative integer"):
        profiles.profile("smoke", seed=-1)


def test_cache_key_holds_the_precision_used_and_the_seed(tiny_train_set, monkeypatch):
    cfg = training.TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=1e-3, schedule="constant", warmup=0.0,
                            precision="auto", seed=0)
    monkeypatch.setenv("LAB_PRECISION", "fp32")
    _, fp32 = training.get_or_train("simple_cnn", cfg, device="cpu", progress=False)
    monkeypatch.setenv("LAB_PRECISION", "bf16")
    _, bf16 = training.get_or_train("simple_cnn", cfg, device="cpu", progress=False)
    assert not bf16["cached"] and bf16["path"] != fp32["path"], "a bf16 model must not be reused by an fp32 run"
    assert training.load(bf16["path"])["meta"]["precision"] == "bf16" and bf16["precision"] == "bfloat16"
    assert training.load(fp32["path"])["meta"]["precision"] == "fp32"
    _, again = training.get_or_train("simple_cnn", cfg, device="cpu", progress=False)
    assert again["cached"] and again["path"] == bf16["path"]
    _, other_seed = training.get_or_train("simple_cnn", dataclasses.replace(cfg, seed=1), device="cpu",
                                             progress=False)
    assert not other_seed["cached"] and other_seed["path"] not in (fp32["path"], bf16["path"])


# --------------------------------------------------------------------------- claims
def test_claims_assert_print_and_log(tmp_path, monkeypatch, capsys):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("LAB_CLAIMS_LOG", str(log))
    monkeypatch.setenv("LAB_SEED", "2")
    c = claims.Claims("nb", profiles.profile("standard"))
    assert c.at_least("accuracy", 0.9, 0.85) == pytest.approx(0.05)
    assert c.at_most("attacked accuracy", torch.tensor(0.01), 0.02) == pytest.approx(0.01)
    with pytest.raises(claims.ClaimFailed, match=r"nb: claim: too strong: 0\.3 <= 0\.2 FAILS.*seed offset 2"):
        c.at_most("too strong", 0.3, 0.2)
    with pytest.raises(AssertionError):  # pytest and nbval report it as an assertion
        c.at_least("not a number", float("nan"), 0.0)
    out = capsys.readouterr().out
    assert "claim: accuracy: 0.9 >= 0.85 holds (margin +0.05)" in out
    records = seeds.read_claims(log)
    assert [r["claim"] for r in records] == ["accuracy", "attacked accuracy", "too strong", "not a number"]
    assert [r["passed"] for r in records] == [True, True, False, False]
    assert all(r["seed"] == 2 and r["where"] == "nb" and r["profile"] == "standard" for r in records)
    assert records[0]["precision"] in ("fp32", "bf16") and records[0]["cpu_capability"]


def test_scale_claims_are_observations_at_smoke_scale(capsys):
    smoke, standard = profiles.profile("smoke"), profiles.profile("standard")
    assert not smoke.assert_scale_claims and standard.assert_scale_claims
    assert claims.Claims("nb", smoke).at_least("needs the standard scale", 0.5, 0.855, scale=True) < 0
    assert "observation" in capsys.readouterr().out
    claims.Claims("nb", smoke).at_least("holds at any scale", 0.5, 0.2)
    with pytest.raises(claims.ClaimFailed):
        claims.Claims("nb", smoke).at_least("not a scale claim", 0.1, 0.2)
    with pytest.raises(claims.ClaimFailed):
        claims.Claims("nb", standard).at_least("needs the standard scale", 0.5, 0.855, scale=True)


def test_claims_table_lists_every_run_and_the_smallest_margin(tmp_path):
    runs = []
    for name, value in [("seed0-default", 0.9), ("seed1-fp32", 0.79)]:
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps({"where": "nb", "claim": "acc", "op": ">=", "bound": 0.8, "value": value,
                                    "margin": value - 0.8, "asserted": True}) + "\n")
        runs.append({"run": name, "claims": str(path)})
    table = seeds.claims_table(runs)
    header, _, row = table.splitlines()
    assert "seed0-default | seed1-fp32" in header
    assert "| nb | acc | 0.9 | 0.79 | >= 0.8 | -0.01 | seed1-fp32 |" == row


def test_seed_runs_emulate_an_avx2_laptop_for_fp32():
    base = {"LAB_PRECISION": "bf16", "PATH": "/bin"}
    env = seeds.run_environment(3, "fp32", base, avx512=True)
    assert env["LAB_SEED"] == "3" and env["LAB_PRECISION"] == "fp32" and env["LAB_PROFILE"] == "smoke"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert "ATEN_CPU_CAPABILITY" not in seeds.run_environment(3, "fp32", base, avx512=False)
    default = seeds.run_environment(0, "default", base, avx512=True)
    assert "LAB_PRECISION" not in default and "ATEN_CPU_CAPABILITY" not in default
    with pytest.raises(ValueError, match="precision"):
        seeds.run_environment(0, "fp16", base)


# --------------------------------------------------------------------------- progress and time estimates
def test_progress_line_names_notebook_cell_and_time_left():
    stream = io.StringIO()
    bar = runner.Progress(["00_setup", "01_ood"], [100.0, 50.0], stream=stream, live=False)
    bar.notebook(0, n_cells=12)
    bar.on_cell_start({"cell_type": "markdown", "source": "# title"}, 0)  # markdown cells are not counted
    bar.on_cell_start({"cell_type": "code", "source": "\nmodel = train(x)\nmore()"}, 1)
    line = stream.getvalue().strip()
    assert line.startswith("[1/2] 00_setup · cell 1/12 `model = train(x)` · elapsed 0:00 · left ~2:")
    bar.notebook(1, n_cells=3)
    assert "left ~0:5" in bar.line()  # only the second notebook's 50 s remain


def test_expected_seconds_prefers_this_machines_earlier_run(tmp_path):
    names = ["00_setup_and_baselines", "01_ood_detection", "99_new"]
    ref = timing.EXPECTED_SECONDS["standard"]
    est = timing.expected_seconds("standard", names, 2.0)
    assert est[:2] == [2 * ref["00"], 2 * ref["01"]] and est[2] == pytest.approx(2 * sum(ref.values()) / len(ref))
    timing.save_timings(tmp_path, {"01_ood_detection": 42.0})
    assert timing.expected_seconds("standard", names, 2.0, timing.load_timings(tmp_path))[1] == 42.0
    assert timing.speed_factor(timing.REFERENCE["step_seconds"] * 3) == pytest.approx(3.0)
    text = report.write_report(tmp_path, profile="standard").read_text()
    assert "| 01_ood_detection | 42 |" in text and "| total | 42 |" in text


def test_calibration_times_a_training_step():
    seconds = timing.calibrate(steps=1, batch_size=8)
    assert 0 < seconds < 60


# --------------------------------------------------------------------------- LAB_DEVICE
@pytest.mark.parametrize("cuda,mps,setting,expected", [
    (False, False, None, "cpu"), (True, False, None, "cuda"), (True, True, "auto", "cuda"),
    (False, True, "auto", "cpu"),  # mps is opt-in: auto never picks it
    (False, True, "mps", "mps"), (True, False, "CPU", "cpu"), (True, False, "cuda", "cuda")])
def test_lab_device_chooses_the_device(monkeypatch, cuda, mps, setting, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    if setting is None:
        monkeypatch.delenv("LAB_DEVICE", raising=False)
    else:
        monkeypatch.setenv("LAB_DEVICE", setting)
    assert runtime.default_device() == torch.device(expected)


@pytest.mark.parametrize("setting,match", [("cuda", "no CUDA GPU"), ("mps", "Metal backend is not available")])
def test_lab_device_missing_hardware_is_an_error_not_a_fallback(monkeypatch, setting, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("LAB_DEVICE", setting)
    with pytest.raises(RuntimeError, match=match) as err:
        runtime.default_device()
    assert "LAB_DEVICE=cpu" in str(err.value)
    monkeypatch.setenv("LAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda or mps"):
        runtime.default_device()
