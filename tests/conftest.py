"""Shared fixtures: a small CIFAR-10 subset and a small trained classifier.

The tests run offline on the data directory named by ``LAB_DATA_DIR`` (CI
unpacks ``../shared/datasets`` there); a missing dataset is an error, never a skip.
"""
from __future__ import annotations

import pytest
import torch

from labutils import data, models, train


@pytest.fixture(scope="session")
def cifar_small():
    """(train, test): 3000 training and 500 test CIFAR-10 images, uint8, fixed subset."""
    tr = train.subset(*data.load("cifar10", "train"), 3000, seed=1)
    te = train.subset(*data.load("cifar10", "test"), 500, seed=2)
    return tr, te


@pytest.fixture(scope="session")
def small_model(cifar_small):
    """A SimpleCNN trained for 2 epochs on 3000 images (about 35-40 % test accuracy), eval mode, CPU, fp32."""
    tr, _ = cifar_small
    torch.manual_seed(0)
    model = models.SimpleCNN()
    cfg = train.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0,
                            schedule="constant", warmup=0.0, precision="fp32", seed=0)
    train.fit(model, tr, cfg, device="cpu", progress=False)
    return model.eval().to(memory_format=torch.contiguous_format)


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
