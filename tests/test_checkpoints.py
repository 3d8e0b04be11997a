"""labutils.training.checkpoints: caching, atomic writes, corrupt and mismatched files, resume after interruption."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from labutils import data, models, training

CFG = training.TrainConfig(epochs=3, batch_size=64, optimizer="sgd", lr=0.05, schedule="triangular", warmup=0.2,
                        precision="fp32", seed=3)


@pytest.fixture
def tiny_data_dir(tmp_path, monkeypatch, cifar_small):
    """A data directory whose CIFAR-10 'train' split is 192 images (written as the tensor cache)."""
    (x, y), _ = cifar_small
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    (tmp_path / "cache").mkdir()
    torch.save({"images": x[:192].clone(), "labels": y[:192].clone()}, tmp_path / "cache" / f"cifar10-train-v{data.CACHE_VERSION}.pt")
    return tmp_path


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_once_then_load_from_cache(tiny_data_dir):
    m1, info1 = training.get_or_train("simple_cnn", CFG, progress=False)
    m2, info2 = training.get_or_train("simple_cnn", CFG, progress=False)
    assert not info1["cached"] and info2["cached"] and info1["path"] == info2["path"]
    assert _same_weights(m1, m2) and not m2.training
    assert info2["history"] == info1["history"] and info2["train_seconds"] == info1["train_seconds"]
    files = sorted(p.name for p in (tiny_data_dir / "checkpoints").iterdir())
    assert files == [info1["path"].name]  # no temporary or partial files left behind
    raw = torch.load(info1["path"], weights_only=True)  # loadable with weights_only
    assert raw["meta"]["model"] == "simple_cnn"


def test_different_config_gets_its_own_entry(tiny_data_dir):
    _, a = training.get_or_train("simple_cnn", CFG, progress=False)
    _, b = training.get_or_train("simple_cnn", dataclasses.replace(CFG, epochs=1), progress=False)
    assert a["path"] != b["path"]


def test_corrupt_checkpoint_is_moved_aside_and_retrained(tiny_data_dir):
    _, info = training.get_or_train("simple_cnn", dataclasses.replace(CFG, epochs=1), progress=False)
    info["path"].write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="cannot be read"):
        model, info2 = training.get_or_train("simple_cnn", dataclasses.replace(CFG, epochs=1), progress=False)
    assert not info2["cached"]
    assert info["path"].with_name(info["path"].name + ".corrupt").read_bytes() == b"\x00garbage"
    training.load(info2["path"])  # the new file is valid


def test_mismatched_checkpoint_is_refused_and_kept(tiny_data_dir):
    cfg1 = dataclasses.replace(CFG, epochs=1)
    _, info = training.get_or_train("simple_cnn", cfg1, progress=False)
    _, info_other = training.get_or_train("simple_cnn", dataclasses.replace(cfg1, lr=0.01), progress=False)
    before = info["path"].read_bytes()
    info_other["path"].replace(info["path"])  # someone put the other run's file under this key
    moved = info["path"].read_bytes()
    with pytest.raises(training.CheckpointMismatchError, match="lr"):
        training.get_or_train("simple_cnn", cfg1, progress=False)
    assert info["path"].read_bytes() == moved != before


def test_weights_of_another_architecture(tmp_path):

    path = tmp_path / "x.pt"
    training.save({"meta": {"model": "fastnet", "model_kwargs": {}},
                      "state_dict": models.SimpleCNN().state_dict()}, path)
    with pytest.raises(training.CheckpointMismatchError, match="do not fit architecture 'fastnet'"):
        training.load_model(path)
    with pytest.raises(training.CheckpointMismatchError, match="model"):
        training.load_model(path, expected_meta={"model": "simple_cnn", "model_kwargs": {}})


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(training.CheckpointCorruptError, match="not a labutils checkpoint"):
        training.load(path)


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
        training.get_or_train("simple_cnn", CFG, tag="resume-test", batch_hook=dies_in_epoch_3, progress=False)
    partial = list((tiny_data_dir / "checkpoints").glob("*.partial.pt"))
    assert len(partial) == 1
    resumed, info = training.get_or_train("simple_cnn", CFG, tag="resume-test", batch_hook=passthrough,
                                             progress=False)
    assert info["resumed_from_epoch"] == 2 and [h["epoch"] for h in info["history"]] == [1, 2, 3]
    assert not list((tiny_data_dir / "checkpoints").glob("*.partial.pt"))
    # the same run without interruption gives the same weights
    # (bit for bit on a CPU: weights, optimiser, schedule, shuffling and dropout streams all resume)
    straight, straight_info = training.get_or_train("simple_cnn", CFG, tag="straight", batch_hook=passthrough,
                                                    progress=False)
    assert _same_weights(resumed, straight)
    assert [h["loss"] for h in info["history"]] == [h["loss"] for h in straight_info["history"]]


def test_retrain_starts_from_scratch_not_from_a_leftover_partial_run(tiny_data_dir):
    calls = {"n": 0}

    def dies_in_epoch_2(model, x, y):
        calls["n"] += 1
        if calls["n"] == 4:  # 3 steps per epoch
            raise _Interrupt
        return x, y

    with pytest.raises(_Interrupt):
        training.get_or_train("simple_cnn", CFG, tag="retrain-test", batch_hook=dies_in_epoch_2, progress=False)
    assert len(list((tiny_data_dir / "checkpoints").glob("*.partial.pt"))) == 1
    fresh, info = training.get_or_train("simple_cnn", CFG, tag="retrain-test", batch_hook=lambda m, x, y: (x, y),
                                        retrain=True, progress=False)
    assert info["resumed_from_epoch"] == 0 and not info["cached"]
    straight, _ = training.get_or_train("simple_cnn", CFG, tag="straight", batch_hook=lambda m, x, y: (x, y),
                                        progress=False)
    assert _same_weights(fresh, straight)


def test_an_unreadable_checkpoint_is_not_retrained(tiny_data_dir, monkeypatch):
    """No permission (or out of memory) is not corruption: raised with its cause, the file kept, nothing trained."""
    cfg = dataclasses.replace(CFG, epochs=1)
    _, info = training.get_or_train("simple_cnn", cfg, progress=False)
    content = info["path"].read_bytes()
    real_load = torch.load

    def denied(path, *args, **kwargs):
        if str(path) == str(info["path"]):
            raise PermissionError(13, "Permission denied", str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", denied)
    monkeypatch.setattr(training.cache, "fit", lambda *a, **k: pytest.fail("must not train"))
    with pytest.raises(PermissionError):
        training.get_or_train("simple_cnn", cfg, progress=False)
    assert info["path"].read_bytes() == content


class _NotAWeight:
    pass


def test_a_file_weights_only_refuses_is_kept_with_an_explanation(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"meta": {}, "obj": _NotAWeight()}, path)
    import pickle

    with pytest.raises(pickle.UnpicklingError, match="intact but torch.load\\(weights_only=True\\) refuses it"):
        training.load(path)
    assert path.exists()
    assert not training.checkpoints.is_corrupt_file_error(pickle.UnpicklingError("Weights only load failed ... "
                                                                                 "Unsupported global: GLOBAL x.Y"))


@pytest.mark.parametrize("content", [b"", b"\x00garbage", b"PK\x03\x04truncated zip"])
def test_truncated_or_garbage_files_are_corrupt(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(training.CheckpointCorruptError, match="cannot be read"):
        training.load(path)


def test_hooked_run_needs_a_tag(tiny_data_dir):
    with pytest.raises(ValueError, match="tag"):
        training.get_or_train("simple_cnn", CFG, batch_hook=lambda m, x, y: (x, y))


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "a.pt"
    training.save({"meta": {}, "v": torch.ones(1)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        training.save({"meta": {}, "v": Unpicklable()}, path)
    assert torch.equal(training.load(path)["v"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_a_corrupt_partial_run_is_ignored_with_a_warning(tiny_data_dir):
    """A training state that cannot be read (cut off mid-write by a crash of the disk) restarts from epoch 0."""
    cfg = dataclasses.replace(CFG, epochs=1)
    _, straight = training.get_or_train("simple_cnn", cfg, progress=False)
    partial = training.checkpoints.partial_path(straight["path"])
    straight["path"].unlink()
    partial.write_bytes(b"")
    with pytest.warns(UserWarning, match="Ignoring unreadable training state"):
        _, info = training.get_or_train("simple_cnn", cfg, progress=False)
    assert info["resumed_from_epoch"] == 0 and not partial.exists()
