"""Shared fixtures: a small CIFAR-10 subset and a small trained classifier.

The tests run offline on the data directory named by ``LAB_DATA_DIR`` (CI
unpacks ``../shared/datasets`` there); a missing dataset is an error, never a skip.

``$LAB_SEED`` (default 0) offsets every seed below, so ``LAB_SEED=3 make test``
trains other models and draws other subsets.  Tests whose assertions depend on
a trained model carry the ``trains`` marker (added here for every test that
uses ``small_model`` and for the notebooks' cells; ``test_train.py`` marks
itself): ``pytest -m trains`` is what CI repeats under another seed and fp32,
and what ``make seeds`` runs under seeds 0-4.
"""
from __future__ import annotations

import builtins
import sys

import pytest
import torch

from labutils import data, models, settings, training
from labutils.course.claims import Claims

SEED = settings.seed()
TRAINED_FIXTURES = {"small_model"}


def pytest_collection_modifyitems(config, items):
    """Mark ``trains``: tests using a trained fixture, and the notebooks' cells (they train the course's models)."""
    for item in items:
        if TRAINED_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.trains)


@pytest.fixture(scope="session")
def cifar_small():
    """(train, test): 3000 training and 500 test CIFAR-10 images, uint8, a subset fixed by the seed."""
    tr = data.subset(*data.load("cifar10", "train"), 3000, seed=1 + SEED)
    te = data.subset(*data.load("cifar10", "test"), 500, seed=2 + SEED)
    return tr, te


@pytest.fixture(scope="session")
def small_model(cifar_small):
    """A SimpleCNN trained for 2 epochs on 3000 images, eval mode, CPU, fp32.

    Clean accuracy 25-34 % on 64 test images over seeds 0-4 and both CPU kernels (``make seeds``).
    """
    tr, _ = cifar_small
    torch.manual_seed(SEED)
    model = models.SimpleCNN()
    cfg = training.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0,
                            schedule="constant", warmup=0.0, precision="fp32", seed=SEED)
    training.fit(model, tr, cfg, device="cpu", progress=False)
    return model.eval().to(memory_format=torch.contiguous_format)


@pytest.fixture
def tiny_train_set(tmp_path, monkeypatch, cifar_small):
    """A data directory whose CIFAR-10 training split is 128 images (written as the tensor cache)."""
    (x, y), _ = cifar_small
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    (tmp_path / "cache").mkdir()
    torch.save({"images": x[:128].clone(), "labels": y[:128].clone()},
               tmp_path / "cache" / f"cifar10-train-v{data.CACHE_VERSION}.pt")
    return tmp_path


@pytest.fixture
def batch(cifar_small):
    """16 test images as float32 in [0, 1] and their labels."""
    _, (x, y) = cifar_small
    return data.to_float(x[:16]), y[:16].clone()


@pytest.fixture(scope="module")
def one_thread(small_model):
    """One intra-op thread for modules that attack a few small images at a time; restored afterwards.

    On a 2-core machine two OpenMP threads spend most of each tiny op waiting for each other
    (measured: 0.45 s vs 0.04 s per SimpleCNN step on 16 images).  ``small_model`` is built first,
    so its training (larger batches) keeps the default thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def single_thread():
    """One intra-op thread for a tiny-model test (like ``one_thread``, without training the small model)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def claims(request):
    """:class:`labutils.course.claims.Claims` for this test: numbers about trained models, checked and logged."""
    return Claims(request.node.nodeid, verbose=False)


@pytest.fixture
def no_ipywidgets(monkeypatch):
    """Make ``import ipywidgets`` fail, as on an install without it."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "ipywidgets" or name.startswith("ipywidgets."):
            raise ImportError("No module named 'ipywidgets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test left open (only where the test imported pyplot)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
