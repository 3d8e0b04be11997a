"""labutils.data: loading, caching, layouts, errors and the augmenting batch iterator."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from labutils import data


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_cifar10_shapes_dtypes_and_balance():
    x, y = data.load("cifar10", "train")
    xt, yt = data.load("cifar10", "test")
    assert x.shape == (50_000, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (50_000,) and y.dtype == torch.int64
    assert xt.shape == (10_000, 3, 32, 32)
    assert torch.bincount(y).tolist() == [5000] * 10
    assert torch.bincount(yt).tolist() == [1000] * 10
    assert len(set(yt[:50].tolist())) == 10  # any prefix mixes the classes
    # real images: not constant, use the whole 0..255 range
    assert x[:100].float().std() > 30 and int(x.max()) == 255


def test_second_load_reads_the_cache_without_decoding(monkeypatch):
    first = data.load("cifar10", "train")  # make sure the cache exists

    def no_decoding(*args, **kwargs):
        raise AssertionError("load() decoded the images again instead of reading its cache")

    monkeypatch.setitem(data.datasets._DECODERS, "cifar10", no_decoding)
    again = data.load("cifar10", "train")
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_fashion_mnist_and_noise():
    x, y = data.load("fashion_mnist", "test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.uint8 and y.max() == 9
    n, ny = data.load("noise", "test")
    assert n.shape == (10_000, 3, 32, 32) and n.dtype == torch.uint8 and ny.shape == (10_000,)
    # Gaussian noise images: no two alike, roughly centred pixel statistics
    assert not torch.equal(n[0], n[1])
    assert abs(n.float().mean().item() - 127.5) < 40


def test_aliases_and_class_names():
    assert data.class_names("CIFAR-10")[3] == "cat"
    assert data.class_names("fashion-mnist")[9] == "Ankle boot"


@pytest.mark.parametrize("name", ["cifar100", "mnist", ""])
def test_unknown_dataset_name(name):
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load(name, "train")


def test_unknown_split():
    with pytest.raises(ValueError, match="Unknown split"):
        data.load("cifar10", "validation")


def test_data_dir_that_does_not_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(NotADirectoryError, match="LAB_DATA_DIR"):
        data.load("cifar10", "test")


def test_missing_dataset_without_network_says_where_and_how(empty_data_dir, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load("cifar10", "test")
    msg = str(err.value)
    assert str(empty_data_dir / "cifar-10-batches-py") in msg and str(empty_data_dir / "cifar10" / "test") in msg
    assert "network is unreachable" in msg and "LAB_DATA_DIR" in msg and "make data" in msg


def test_missing_fashion_mnist_without_download(empty_data_dir):
    with pytest.raises(data.DatasetNotFoundError, match="FashionMNIST"):
        data.load("fashion_mnist", "train", download=False)


def test_partially_extracted_class_folders(empty_data_dir):
    from PIL import Image

    folder = empty_data_dir / "cifar10" / "test" / "airplane"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "0000.png")
    with pytest.raises(data.DatasetNotFoundError, match="incomplete"):
        data.load("cifar10", "test", download=False)


def test_class_folder_layout_png(empty_data_dir):
    from PIL import Image

    rng = np.random.default_rng(0)
    expected = {}
    for c, cls in enumerate(data.CIFAR10_CLASSES):
        (empty_data_dir / "cifar10" / "test" / cls).mkdir(parents=True)
        arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(arr).save(empty_data_dir / "cifar10" / "test" / cls / "0001.png")
        expected[c] = arr
    x, y = data.load("cifar10", "test", download=False)
    assert x.shape == (10, 3, 32, 32) and sorted(y.tolist()) == list(range(10))
    assert y.tolist() != list(range(10))  # a fixed shuffle, not class by class
    for i, c in enumerate(y.tolist()):  # PNG is lossless: exact pixels, channel-first, label kept with its image
        assert torch.equal(x[i], torch.from_numpy(expected[c]).permute(2, 0, 1))


def test_official_python_batches_layout(empty_data_dir):
    folder = empty_data_dir / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    arrays = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        arr = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        arrays[name] = arr
        with open(folder / name, "wb") as f:
            pickle.dump({"data": arr, "labels": [1, 2, 3, 4]}, f)
    x, y = data.load("cifar10", "train", download=False)
    assert x.shape == (20, 3, 32, 32) and y.tolist() == [1, 2, 3, 4] * 5
    assert torch.equal(x[:4].reshape(4, -1), torch.from_numpy(arrays["data_batch_1"]))


def test_corrupt_idx_file(empty_data_dir):
    raw = empty_data_dir / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(raw / f"{stem}.gz", "wb") as f:
            f.write(b"\x00\x00\x08")  # truncated header
    with pytest.raises(ValueError, match="corrupt or truncated"):
        data.load("fashion_mnist", "test", download=False)


def _write_idx(path, array: np.ndarray) -> None:
    """An unsigned-byte IDX file (the Fashion-MNIST format), gzipped when ``path`` ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_corrupt_cache_is_rebuilt(empty_data_dir, suffix):
    """Written here, plain or gzipped IDX files (both layouts that load accepts): nothing depends on the user's data."""
    raw = empty_data_dir / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(4)
    images, labels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7, dtype=np.uint8)
    _write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", images)
    _write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", labels)
    x1, y1 = data.load("fashion_mnist", "test", download=False)
    assert torch.equal(x1[:, 0], torch.from_numpy(images)) and y1.tolist() == labels.tolist()
    cache = next((empty_data_dir / "cache").glob("fashion_mnist-test-*.pt"))
    cache.write_bytes(b"not a tensor file")
    with pytest.warns(UserWarning, match=r"dataset cache .* is corrupt .*decoding the dataset again"):
        x2, _ = data.load("fashion_mnist", "test", download=False)
    assert torch.equal(x1, x2)
    assert torch.load(cache, weights_only=True)["images"].shape == x1.shape  # the cache was rewritten


def test_to_float_and_check_images():
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    f = data.to_float(x)
    assert f.dtype == torch.float32 and f.min() == 0 and f.max() == 1
    with pytest.raises(TypeError, match="to_float expects uint8"):
        data.to_float(f)
    with pytest.raises(TypeError, match="floating point"):
        data.check_images(x)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.check_images(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        data.check_images(torch.rand(1, 3, 4, 4) * 2)
    data.check_images(torch.rand(1, 3, 4, 4))


def test_match_format():
    x, _ = data.load("fashion_mnist", "test")
    rgb = data.match_format(x[:5])
    assert rgb.shape == (5, 3, 32, 32) and rgb.dtype == torch.uint8
    assert torch.equal(rgb[:, 0], rgb[:, 2])
    with pytest.raises(TypeError):
        data.match_format(x[:5].float())


def test_batches_cover_epoch_in_order_without_shuffle():
    x = torch.arange(10 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(10, 3, 4, 4)
    y = torch.arange(10)
    it = data.Batches(x, y, batch_size=4)
    got = list(it)
    assert len(it) == 3 and [b[0].shape[0] for b in got] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in got]), y)
    assert torch.allclose(torch.cat([b[0] for b in got]), x.float() / 255)


def test_batches_shuffle_is_a_permutation_and_repeatable():
    x = torch.zeros(100, 1, 2, 2, dtype=torch.uint8)
    y = torch.arange(100)
    a = torch.cat([b for _, b in data.Batches(x, y, batch_size=32, shuffle=True, seed=3)])
    b = torch.cat([b for _, b in data.Batches(x, y, batch_size=32, shuffle=True, seed=3)])
    assert sorted(a.tolist()) == list(range(100)) and torch.equal(a, b) and not torch.equal(a, y)


def test_augmentation_is_a_padded_crop_possibly_mirrored():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)  # no zeros: padding is recognisable
    g = torch.Generator().manual_seed(0)
    out = data.random_crop_flip(x, pad=2, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flips = shifts = 0
    for i in range(64):
        candidates = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
                      if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert candidates, f"image {i} is not a crop of its padded original"
        flips += candidates[0][2]
        shifts += (candidates[0][0], candidates[0][1]) != (2, 2)
    assert 10 < flips < 54 and shifts > 32  # both augmentations actually happen
    assert torch.equal(x, x.clone())


def test_batches_validate_input():
    with pytest.raises(TypeError, match="uint8"):
        data.Batches(torch.rand(4, 3, 2, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        data.Batches(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))


def test_unreadable_cache_is_kept_and_the_error_raised(empty_data_dir, monkeypatch):
    """Only a corrupt cache is rebuilt: no permission (or out of memory) is raised as it is, the file kept."""
    cache = empty_data_dir / "cache" / f"noise-test-v{data.CACHE_VERSION}.pt"
    cache.parent.mkdir(parents=True)
    torch.save({"images": torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "labels": torch.zeros(2, dtype=torch.int64)},
               cache)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache))

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(PermissionError):
        data.load("noise", "test")
    assert cache.exists()
