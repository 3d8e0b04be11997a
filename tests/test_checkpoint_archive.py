"""labutils.training.archive: the checkpoint log, packing, verified loading and handed-out models in get_or_train.

Nothing trains here: ``fit`` is replaced by a stub that returns a history, so get_or_train writes real
checkpoint files (its own meta and file names) of an untrained SimpleCNN in milliseconds.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch

from labutils import data, training
from labutils.training import archive
from labutils.training.config import TrainResult


def _cfg(seed=0):
    """precision="auto", as the profiles' configs: the device (here ``$LAB_PRECISION``) picks bf16 or fp32."""
    return training.TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=1e-3, schedule="constant", warmup=0.0,
                                seed=seed)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A data directory of its own (``tmp_path/instructor``), an fp32 machine, no dataset needed, and a ``fit``
    that trains nothing (the list of its calls' configs is returned)."""
    calls = []

    def fake_fit(model, train, cfg, **kwargs):
        calls.append(cfg)
        return TrainResult(history=[{"epoch": 1, "loss": 2.0, "test_acc": 0.42}], train_seconds=0.5,
                           precision="float32", passes={"forward": 64, "backward": 64})

    (tmp_path / "instructor").mkdir()
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "instructor"))
    monkeypatch.delenv("LAB_CHECKPOINT_LOG", raising=False)
    monkeypatch.setenv("LAB_PRECISION", "fp32")
    monkeypatch.setattr(training.cache, "load", lambda name, split: None)
    monkeypatch.setattr(training.cache, "fit", fake_fit)
    return calls


def _get(seed=0):
    return training.get_or_train("simple_cnn", _cfg(seed), device="cpu", progress=False)


def _no_training(monkeypatch):
    monkeypatch.setattr(training.cache, "fit", lambda *a, **k: pytest.fail("must not train"))


@pytest.fixture
def packed(lab, tmp_path):
    """An archive of two fp32 checkpoints (seeds 0 and 1) made in the instructor's data directory."""
    paths = [_get(seed=s)[1]["path"] for s in (0, 1)]
    return archive.pack_checkpoints(paths, tmp_path / "ckpts.tar", profile="smoke"), paths


def _student(tmp_path, monkeypatch):
    (tmp_path / "student").mkdir()
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "student"))
    return tmp_path / "student" / "checkpoints"


def _placed(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _rewrite(src, dst, edit=None, extra=()):
    """Copy the archive ``src`` to ``dst``, applying ``edit(manifest)`` and adding ``extra`` (name, bytes) members."""
    with tarfile.open(src) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(dst, "w") as tar:
        for name, blob in members + list(extra):
            if name == "manifest.json" and edit is not None:
                manifest = json.loads(blob)
                edit(manifest)
                blob = json.dumps(manifest).encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return dst


def test_the_log_records_every_checkpoint_returned(lab, tmp_path, monkeypatch):
    log = tmp_path / "logs" / "used.txt"
    monkeypatch.setenv("LAB_CHECKPOINT_LOG", str(log))
    _, trained = _get()
    _, cached = _get()
    assert cached["cached"] and not cached["handed_out"] and not trained["handed_out"]
    assert log.read_text().splitlines() == [str(trained["path"].resolve())] * 2


def test_pack_then_load_on_a_clean_data_dir(packed, tmp_path, monkeypatch, capsys):
    tar_path, paths = packed
    with tarfile.open(tar_path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert sorted(tar.getnames()) == sorted(["manifest.json"] + [p.name for p in paths])
    entry = manifest["files"][0]
    assert manifest["profile"] == "smoke" and manifest["data_version"] == data.CACHE_VERSION
    assert {"labutils", "torch", "created"} <= set(manifest)
    assert entry["name"] == paths[0].name and paths[0].stem.endswith(entry["key"])
    assert entry["meta"]["precision"] == "fp32" and entry["meta"]["config"]["seed"] == 0
    assert entry["accuracy"] == 0.42 and entry["size"] == paths[0].stat().st_size and len(entry["sha256"]) == 64

    folder = _student(tmp_path, monkeypatch)
    placed = training.load_checkpoints(tar_path)
    assert [p.name for p in placed] == [p.name for p in paths]
    assert all((folder / p.name).read_bytes() == p.read_bytes() for p in paths)
    assert _placed(folder) == sorted([p.name for p in paths] + ["handed_out.json"])  # no temporary files left

    _no_training(monkeypatch)
    capsys.readouterr()
    model, info = _get()
    assert info["cached"] and info["handed_out"] and info["path"] == folder / paths[0].name
    assert capsys.readouterr().out.strip() == (f"Using the handed-out model {paths[0].name} (trained in fp32): "
                                               "skipping training.")
    expected = training.load_model(paths[0])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))


def test_a_flipped_byte_is_refused_and_nothing_placed(packed, tmp_path, monkeypatch):
    tar_path, paths = packed
    with tarfile.open(tar_path) as tar:
        member = tar.getmember(paths[1].name)
    blob = bytearray(tar_path.read_bytes())
    blob[member.offset_data + member.size // 2] ^= 0x01
    tar_path.write_bytes(bytes(blob))
    folder = _student(tmp_path, monkeypatch)
    with pytest.raises(training.ArchiveError, match=rf"{paths[1].name} is corrupt: expected SHA-256 [0-9a-f]{{64}} "
                                                    rf".*found [0-9a-f]{{64}}.*Download the archive again"):
        training.load_checkpoints(tar_path)
    assert _placed(folder) == []  # not even the intact first file


def test_a_tampered_manifest_is_refused(packed, tmp_path, monkeypatch):
    tar_path, paths = packed

    def wrong_sum(manifest):
        manifest["files"][0]["sha256"] = "0" * 64

    bad = _rewrite(tar_path, tmp_path / "bad.tar", wrong_sum)
    folder = _student(tmp_path, monkeypatch)
    with pytest.raises(training.ArchiveError, match=f"{paths[0].name} is corrupt: expected SHA-256 {'0' * 64}"):
        training.load_checkpoints(bad)
    assert _placed(folder) == []


def test_an_archive_for_another_data_version_is_refused(packed, tmp_path, monkeypatch):
    def old_data(manifest):
        for e in manifest["files"]:
            e["meta"]["data_version"] = data.CACHE_VERSION - 1

    bad = _rewrite(packed[0], tmp_path / "old.tar", old_data)
    folder = _student(tmp_path, monkeypatch)
    with pytest.raises(training.ArchiveError, match=f"made for data version {data.CACHE_VERSION - 1}"):
        training.load_checkpoints(bad)
    assert _placed(folder) == []


@pytest.mark.parametrize("name", ["../evil.pt", "/tmp/evil.pt", "sub/simple_cnn-cifar10-0123456789ab.pt", "notes.txt"])
def test_unexpected_members_are_refused(packed, tmp_path, monkeypatch, name):
    bad = _rewrite(packed[0], tmp_path / "evil.tar", extra=[(name, b"x")])
    folder = _student(tmp_path, monkeypatch)
    with pytest.raises(training.ArchiveError, match="unexpected member"):
        training.load_checkpoints(bad)
    assert _placed(folder) == [] and not (tmp_path / "evil.pt").exists()


def test_a_truncated_archive_is_refused(packed, tmp_path, monkeypatch):
    tar_path = packed[0]
    tar_path.write_bytes(tar_path.read_bytes()[:700])
    folder = _student(tmp_path, monkeypatch)
    with pytest.raises(training.ArchiveError, match="Download the archive again"):
        training.load_checkpoints(tar_path)
    assert _placed(folder) == []


def test_a_handed_out_fp32_model_serves_a_bf16_request(packed, tmp_path, monkeypatch, capsys):
    tar_path, paths = packed
    folder = _student(tmp_path, monkeypatch)
    training.load_checkpoints(tar_path)
    _no_training(monkeypatch)
    monkeypatch.setenv("LAB_PRECISION", "bf16")  # a student whose CPU trains in bf16
    capsys.readouterr()
    _, info = _get()
    assert info["cached"] and info["handed_out"] and info["path"] == folder / paths[0].name
    assert "(trained in fp32): skipping training." in capsys.readouterr().out


def test_a_local_fp32_model_does_not_serve_a_bf16_request(lab, monkeypatch):
    _, fp32 = _get()
    monkeypatch.setenv("LAB_PRECISION", "bf16")
    _, bf16 = _get()
    assert not bf16["cached"] and not bf16["handed_out"] and bf16["path"] != fp32["path"] and len(lab) == 2
    assert training.load(bf16["path"])["meta"]["precision"] == "bf16"


def test_a_retrained_handed_out_file_is_no_longer_handed_out(packed, tmp_path, monkeypatch):
    _student(tmp_path, monkeypatch)
    training.load_checkpoints(packed[0])
    monkeypatch.setattr(training.cache, "fit", lambda *a, **k: TrainResult(history=[{"epoch": 1, "loss": 1.0}],
                                                                          train_seconds=9.0, precision="float32"))
    training.get_or_train("simple_cnn", _cfg(), device="cpu", progress=False, retrain=True)
    _, info = _get()
    assert info["cached"] and not info["handed_out"]
    monkeypatch.setenv("LAB_PRECISION", "bf16")  # nor does the retrained fp32 file serve the other precision
    calls = []
    monkeypatch.setattr(training.cache, "fit", lambda *a, **k: calls.append(1) or TrainResult(
        history=[], train_seconds=1.0, precision="bfloat16"))
    _, other = _get()
    assert calls and not other["cached"] and not other["handed_out"]


def test_pack_can_measure_each_classifiers_test_accuracy(lab, tmp_path, monkeypatch):
    _, info = _get()
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=gen), torch.arange(40) % 10
    monkeypatch.setattr("labutils.data.load", lambda name, split: (images, labels))
    logits = training.predict_logits(training.load_model(info["path"]), images, device="cpu")
    expected = float((logits.argmax(1) == labels).float().mean())
    assert archive.checkpoint_accuracy(info["path"], n=40) == pytest.approx(expected)
    tar_path = training.pack_checkpoints([info["path"]], tmp_path / "acc.tar", profile="smoke", evaluate=True)
    with tarfile.open(tar_path) as tar:
        entry = json.loads(tar.extractfile("manifest.json").read())["files"][0]
    assert entry["accuracy"] == pytest.approx(archive.checkpoint_accuracy(info["path"])) and \
        entry["accuracy_from"].startswith("test set")


def test_cli_packs_from_the_log_and_refuses_a_corrupt_archive(lab, tmp_path, monkeypatch, capsys):
    log = tmp_path / "used.txt"
    monkeypatch.setenv("LAB_CHECKPOINT_LOG", str(log))
    _get()
    _get()
    out = tmp_path / "cli.tar"
    assert archive.main(["pack", "--profile", "smoke", "--log", str(log), "--out", str(out), "--no-evaluate"]) == 0
    assert "packed 1 checkpoint(s)" in capsys.readouterr().out
    with tarfile.open(out) as tar:
        member = tar.getmembers()[-1]
    blob = bytearray(out.read_bytes())
    blob[member.offset_data + member.size // 2] ^= 0xFF
    out.write_bytes(bytes(blob))
    student = tmp_path / "student"
    student.mkdir()
    proc = subprocess.run([sys.executable, "-m", "labutils.training.archive", "load", str(out)], capture_output=True,
                          text=True, env={**os.environ, "LAB_DATA_DIR": str(student)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "is corrupt: expected SHA-256" in proc.stderr
    assert "Traceback" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    assert _placed(student / "checkpoints") == []


def test_an_unreadable_index_is_ignored_with_a_warning(packed, tmp_path, monkeypatch):
    folder = _student(tmp_path, monkeypatch)
    training.load_checkpoints(packed[0])
    (folder / "handed_out.json").write_text("{not json")
    _no_training(monkeypatch)
    with pytest.warns(UserWarning, match="Load the archive again"):
        _, info = _get()
    assert info["cached"] and not info["handed_out"]
