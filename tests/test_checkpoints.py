"""labutils.checkpoints: caching, atomic writes, corrupt and mismatched files, resume after interruption."""
from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from labutils import checkpoints, data, train

CFG = train.TrainConfig(epochs=3, batch_size=64, optimizer="sgd", lr=0.05, schedule="triangular", warmup=0.2,
                        precision="fp32", seed=3)


@pytest.fixture
def tiny_data_dir(tmp_path, monkeypatch, cifar_small):
    """A data directory whose CIFAR-10 'train' split is 192 images (written as the tensor cache)."""
    (x, y), _ = cifar_small
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    (tmp_path / "cache").mkdir()
    torch.save({"images": x[:192].clone(), "labels": y[:192].clone()}, tmp_path / "cache" / f"cifar10-train-v{data._CACHE_VERSION}.pt")
    return tmp_path


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_once_then_load_from_cache(tiny_data_dir):
    m1, info1 = checkpoints.get_or_train("simple_cnn", CFG, progress=False)
    m2, info2 = checkpoints.get_or_train("simple_cnn", CFG, progress=False)
    assert not info1["cached"] and info2["cached"] and info1["path"] == info2["path"]
    assert _same_weights(m1, m2) and not m2.training
    assert info2["history"] == info1["history"] and info2["train_seconds"] == info1["train_seconds"]
    files = sorted(p.name for p in (tiny_data_dir / "checkpoints").iterdir())
    assert files == [info1["path"].name]  # no temporary or partial files left behind
    raw = torch.load(info1["path"], weights_only=True)  # loadable with weights_only
    assert raw["meta"]["model"] == "simple_cnn"


def test_different_config_gets_its_own_entry(tiny_data_dir):
    _, a = checkpoints.get_or_train("simple_cnn", CFG, progress=False)
    _, b = checkpoints.get_or_train("simple_cnn", dataclasses.replace(CFG, epochs=1), progress=False)
    assert a["path"] != b["path"]


def test_corrupt_checkpoint_is_moved_aside_and_retrained(tiny_data_dir):
    _, info = checkpoints.get_or_train("simple_cnn", dataclasses.replace(CFG, epochs=1), progress=False)
    info["path"].write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="cannot be read"):
        model, info2 = checkpoints.get_or_train("simple_cnn", dataclasses.replace(CFG, epochs=1), progress=False)
    assert not info2["cached"]
    assert info["path"].with_name(info["path"].name + ".corrupt").read_bytes() == b"\x00garbage"
    checkpoints.load(info2["path"])  # the new file is valid


def test_mismatched_checkpoint_is_refused_and_kept(tiny_data_dir):
    cfg1 = dataclasses.replace(CFG, epochs=1)
    _, info = checkpoints.get_or_train("simple_cnn", cfg1, progress=False)
    _, info_other = checkpoints.get_or_train("simple_cnn", dataclasses.replace(cfg1, lr=0.01), progress=False)
    before = info["path"].read_bytes()
    info_other["path"].replace(info["path"])  # someone put the other run's file under this key
    moved = info["path"].read_bytes()
    with pytest.raises(checkpoints.CheckpointMismatchError, match="lr"):
        checkpoints.get_or_train("simple_cnn", cfg1, progress=False)
    assert info["path"].read_bytes() == moved != before


def test_weights_of_another_architecture(tmp_path):
    from labutils import models

    path = tmp_path / "x.pt"
    checkpoints.save({"meta": {"model": "fastnet", "model_kwargs": {}},
                      "state_dict": models.SimpleCNN().state_dict()}, path)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="do not fit architecture 'fastnet'"):
        checkpoints.load_model(path)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="model"):
        checkpoints.load_model(path, expected_meta={"model": "simple_cnn", "model_kwargs": {}})


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(checkpoints.CheckpointCorruptError, match="not a labutils checkpoint"):
        checkpoints.load(path)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_and_matches_uninterrupted(tiny_data_dir):
    calls = {"n": 0}
    steps_per_epoch = 3  # 192 images / 64

    def dies_in_epoch_3(model, x, y):
        calls["n"] += 1
        if calls["n"] == 2 * steps_per_epoch + 1:
            raise _Interrupt
        return x, y

    def passthrough(model, x, y):
        return x, y

    with pytest.raises(_Interrupt):
        checkpoints.get_or_train("simple_cnn", CFG, tag="resume-test", batch_hook=dies_in_epoch_3, progress=False)
    partial = list((tiny_data_dir / "checkpoints").glob("*.partial.pt"))
    assert len(partial) == 1
    resumed, info = checkpoints.get_or_train("simple_cnn", CFG, tag="resume-test", batch_hook=passthrough,
                                             progress=False)
    assert info["resumed_from_epoch"] == 2 and [h["epoch"] for h in info["history"]] == [1, 2, 3]
    assert not list((tiny_data_dir / "checkpoints").glob("*.partial.pt"))
    # the same run without interruption gives the same weights
    straight, _ = checkpoints.get_or_train("simple_cnn", CFG, tag="straight", batch_hook=passthrough, progress=False)
    for p, q in zip(resumed.state_dict().values(), straight.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6)


def test_hooked_run_needs_a_tag(tiny_data_dir):
    with pytest.raises(ValueError, match="tag"):
        checkpoints.get_or_train("simple_cnn", CFG, batch_hook=lambda m, x, y: (x, y))


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "a.pt"
    checkpoints.save({"meta": {}, "v": torch.ones(1)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        checkpoints.save({"meta": {}, "v": Unpicklable()}, path)
    assert torch.equal(checkpoints.load(path)["v"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
