"""Entropy monitoring, the measuring half: histogram entropies, predictive entropy, the activation monitor.

Checked by hand on fixed arrays, against NumPy / SciPy, against the activations computed directly,
and for the monitor's hooks (gone after the ``with`` block, also after an error).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from labutils import data, models, uncertainty
from labutils.uncertainty import scores
from labutils.uncertainty.activation_entropy import (ActivationMonitor, activation_entropies, calibrate_edges, check_edges,
                                          default_monitor_layers, edges_from_values, entropy_from_counts,
                                          group_entropies, histogram_counts, histogram_entropy,
                                          histogram_entropy_per_sample, predictive_entropy, run_monitor)

EDGES4 = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture(autouse=True)
def _one_thread_here(single_thread):
    """These tiny batches run on one intra-op thread (conftest's ``single_thread``)."""


@pytest.fixture(scope="module")
def simple_cnn():
    torch.manual_seed(0)
    return models.SimpleCNN().eval()


@pytest.fixture(scope="module")
def tiny_fastnet():
    torch.manual_seed(0)
    net = models.FastNet(widths=(8, 16, 16))
    net.init_whitening(torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    return net.eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(2))


# --------------------------------------------------------------------------- histogram entropy
def test_histogram_entropy_by_hand():
    # positives 0.5 | 1.5 1.5 | 2.5 | 3.5 and 9 (above the last edge: last bin); -1 and 0 are ignored
    v = torch.tensor([0.5, 1.5, 1.5, 2.5, 3.5, 9.0, -1.0, 0.0])
    p = np.array([1, 2, 1, 2]) / 6
    assert histogram_entropy(v, EDGES4) == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-12)
    assert histogram_entropy(torch.tensor([0.5, 1.5, 2.5, 3.5]), EDGES4) == pytest.approx(2.0, abs=1e-12)  # uniform
    assert histogram_entropy(torch.tensor([1.2, 1.9, 1.0]), EDGES4) == 0.0  # one bin
    assert histogram_entropy(torch.tensor([-1.0, 0.0, -3.0]), EDGES4) == 0.0  # nothing positive
    assert histogram_entropy(torch.tensor([0.5, 3.0]), EDGES4) == pytest.approx(1.0)  # 3.0 = e_3: last bin
    # a positive value below the first edge counts in the first bin
    assert histogram_counts(torch.tensor([[0.1, 1.5, 2.5]]), [0.5, 1.0, 2.0]).tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("seed", range(4))
def test_histogram_matches_numpy_and_scipy(seed):
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(2, 40))
    edges = np.sort(rng.uniform(0, 3, bins - 1))
    edges = np.r_[0.0, edges, 3.0]
    v = rng.normal(0.5, 1.0, 2000).clip(-2, 2.999)  # inside [.., last edge): numpy's bins are the same
    counts, _ = np.histogram(v[v > 0], bins=edges)
    mine = histogram_counts(torch.tensor(v)[None], torch.tensor(edges))[0].numpy()
    np.testing.assert_array_equal(mine, counts)
    assert histogram_entropy(torch.tensor(v), edges) == pytest.approx(scipy.stats.entropy(counts, base=2), abs=1e-12)


def test_per_sample_and_batch_entropies_match_the_pooled_histogram():
    g = torch.Generator().manual_seed(3)
    acts = torch.randn(7, 4, 5, 5, generator=g) * 2
    per_sample = histogram_entropy_per_sample(acts, EDGES4)
    assert per_sample.shape == (7,) and per_sample.dtype == torch.float64
    for i in range(7):
        assert float(per_sample[i]) == pytest.approx(histogram_entropy(acts[i], EDGES4), abs=1e-12)
        assert float(histogram_entropy_per_sample(acts[i: i + 1], EDGES4)[0]) == histogram_entropy(acts[i], EDGES4)
    counts = histogram_counts(acts, EDGES4)
    grouped = group_entropies(counts, 3)  # groups 0-2, 3-5; sample 6 dropped
    assert grouped.shape == (2,)
    assert float(grouped[1]) == pytest.approx(histogram_entropy(acts[3:6], EDGES4), abs=1e-12)
    assert torch.equal(group_entropies(counts, 1), per_sample)
    with pytest.raises(ValueError, match="group_size"):
        group_entropies(counts, 0)


def test_histogram_entropy_properties():
    g = torch.Generator().manual_seed(4)
    acts = torch.randn(20, 300, generator=g).abs() * 3 - 0.5
    h = histogram_entropy_per_sample(acts, EDGES4)
    assert bool((h >= 0).all()) and bool((h <= 2 + 1e-12).all())  # [0, log2 B]
    assert torch.equal(histogram_counts(acts, EDGES4).sum(1), (acts > 0).sum(1).double())  # nothing dropped
    perm = torch.randperm(300, generator=g)
    assert torch.equal(histogram_entropy_per_sample(acts[:, perm], EDGES4), h)
    assert torch.equal(histogram_entropy_per_sample(acts * 4, EDGES4 * 4), h)  # exact: a power of two
    padded = torch.cat([acts, -torch.rand(20, 50, generator=g), torch.zeros(20, 10)], 1)
    assert torch.equal(histogram_entropy_per_sample(padded, EDGES4), h)
    assert torch.equal(entropy_from_counts(torch.zeros(3, 4)), torch.zeros(3, dtype=torch.float64))


def test_edges_checks_and_edges_from_values():
    for bad in ([1.0], [[0.0, 1.0]], [0.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, float("nan")], [0.0, math.inf]):
        with pytest.raises(ValueError, match="edges"):
            check_edges(bad)
    v = torch.cat([torch.arange(1, 101, dtype=torch.float64), -torch.ones(50)])
    e = edges_from_values(v, bins=4, quantile=0.5)
    high = float(torch.quantile(torch.arange(1, 101, dtype=torch.float64), 0.5))
    np.testing.assert_allclose(e.numpy(), np.linspace(0, high, 5))
    assert edges_from_values(v, bins=3, quantile=1.0)[-1] == 100
    with pytest.raises(ValueError, match="no positive value"):
        edges_from_values(-torch.ones(10))
    with pytest.raises(ValueError, match="bins"):
        edges_from_values(v, bins=0)
    with pytest.raises(ValueError, match="quantile"):
        edges_from_values(v, quantile=1.5)


def test_predictive_entropy_in_bits_and_nats():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(9, 10, generator=g) * 3
    nats = scores.entropy(logits)
    torch.testing.assert_close(predictive_entropy(logits), nats / math.log(2))
    torch.testing.assert_close(predictive_entropy(logits, base=math.e), nats)
    assert predictive_entropy(torch.zeros(2, 8)).tolist() == pytest.approx([3.0, 3.0])  # uniform: log2 K
    assert float(predictive_entropy(torch.tensor([[1000.0, 0.0, 0.0]]))[0]) == pytest.approx(0.0, abs=1e-9)
    for base in (1, 0, -2, math.inf):
        with pytest.raises(ValueError, match="base"):
            predictive_entropy(logits, base=base)


def test_package_keeps_entropy_as_the_score_function():
    """``uncertainty.entropy`` stays the predictive-entropy score function (nats) of notebook 01."""
    assert uncertainty.entropy is scores.entropy
    assert uncertainty.histogram_entropy is histogram_entropy


# --------------------------------------------------------------------------- the monitor
def test_monitor_removes_its_hooks_after_the_block_and_after_an_error(simple_cnn, images):
    before = _hooks(simple_cnn)
    edges = {"net.2": EDGES4, "net.15": EDGES4}
    with ActivationMonitor(simple_cnn, ["net.2", "net.15"], edges=edges) as mon:
        assert _hooks(simple_cnn) == before + 2
        with torch.no_grad():
            simple_cnn(images[:3])
            simple_cnn(images[3:5])
    assert _hooks(simple_cnn) == before
    assert mon.counts("net.2").shape == (5, 4) and mon.entropies("net.15").shape == (5,)
    with pytest.raises(RuntimeError, match="boom"):
        with ActivationMonitor(simple_cnn, "net.2", edges=edges):
            assert _hooks(simple_cnn) == before + 1
            raise RuntimeError("boom")
    assert _hooks(simple_cnn) == before
    # an error raised inside a hook also leaves no hook behind
    with pytest.raises(ValueError):
        with ActivationMonitor(simple_cnn, "net.2", callback=lambda name, out: (_ for _ in ()).throw(ValueError())):
            simple_cnn(images[:1])
    assert _hooks(simple_cnn) == before
    mon.remove()  # idempotent
    mon.reset()
    assert mon.counts("net.2").shape == (0, 4)


def test_unknown_layer_names_are_listed(simple_cnn, tiny_fastnet):
    with pytest.raises(ValueError, match=r"unknown layer.*'net\.99'.*net\.2, net\.3.*net\.17"):
        ActivationMonitor(simple_cnn, ["net.2", "net.99"])
    with pytest.raises(ValueError, match=r"features\.1\.6.*head"):
        ActivationMonitor(tiny_fastnet, "conv1")
    with pytest.raises(ValueError, match="empty"):
        ActivationMonitor(simple_cnn, [])
    with pytest.raises(ValueError, match="twice"):
        ActivationMonitor(simple_cnn, ["net.2", "net.2"])
    with pytest.raises(ValueError, match="no bin edges for layer"):
        ActivationMonitor(simple_cnn, ["net.2", "net.15"], edges={"net.2": EDGES4})
    with pytest.raises(ValueError, match="unknown layer"):
        run_monitor(simple_cnn, torch.rand(2, 3, 32, 32), {"fc2": EDGES4})
    assert _hooks(simple_cnn) == 0


def test_default_monitor_layers():
    cnn, fast = models.SimpleCNN(), models.FastNet(widths=(8, 8, 8))
    assert default_monitor_layers(cnn) == ["net.2", "net.15"]
    mods = dict(cnn.named_modules())
    assert isinstance(mods["net.1"], nn.Conv2d) and isinstance(mods["net.2"], nn.ReLU)
    assert isinstance(mods["net.14"], nn.Linear) and isinstance(mods["net.15"], nn.ReLU)
    assert isinstance(mods["net.17"], nn.Linear)  # net.15 feeds the last layer (through dropout)
    assert default_monitor_layers(fast) == ["features.0", "features.5"]
    generic = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    assert default_monitor_layers(generic) == ["1", "3"]
    with pytest.raises(ValueError, match="no activation module"):
        default_monitor_layers(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))


def _direct_activations(model, x):
    """The default layers' outputs computed without hooks."""
    with torch.no_grad():
        if isinstance(model, models.SimpleCNN):
            return {"net.2": model.net[:3](x), "net.15": model.net[:16](x)}
        first = model.features[0](model.whiten(model.normalize(x)) + model.whiten_bias)
        return {"features.0": first, "features.5": model.features[1:](first)}


@pytest.mark.parametrize("which", ["simple_cnn", "tiny_fastnet"])
def test_run_monitor_equals_entropies_of_the_activations(which, images, request):
    model = request.getfixturevalue(which)
    layers = default_monitor_layers(model)
    edges = calibrate_edges(model, images, layers, bins=16)
    direct = _direct_activations(model, images)
    for k in layers:
        assert edges[k].shape == (17,) and edges[k][0] == 0
        # few values: the sample holds every positive value, so the edges are those of all of them
        torch.testing.assert_close(edges[k], edges_from_values(direct[k], bins=16), rtol=1e-6, atol=0)
    readout = run_monitor(model, images, edges, batch_size=len(images))
    for k in layers:
        torch.testing.assert_close(readout.counts[k], histogram_counts(direct[k], edges[k]))
        assert readout.counts[k].sum(1).tolist() == (direct[k] > 0).flatten(1).sum(1).double().tolist()
    torch.testing.assert_close(readout.logits, model(images).detach())
    sig = readout.signals()
    assert list(sig) == layers + ["predictive"]
    torch.testing.assert_close(sig["predictive"], predictive_entropy(readout.logits).double())
    grouped = readout.batch_entropies(4)
    assert all(v.shape == (3,) for v in grouped.values())
    torch.testing.assert_close(grouped, activation_entropies(model, images, edges, group_size=4))
    assert _hooks(model) == 0


def test_run_monitor_batches_uint8_and_model_state(simple_cnn):
    x8 = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    edges = calibrate_edges(simple_cnn, x8, ["net.2", "net.15"], bins=8)
    whole = run_monitor(simple_cnn, x8, edges, batch_size=10)
    as_float = run_monitor(simple_cnn, data.to_float(x8), edges, batch_size=10)
    split = run_monitor(simple_cnn, x8, edges, batch_size=3)
    for k in edges:
        torch.testing.assert_close(whole.counts[k], as_float.counts[k])
        # other batch sizes may round a convolution differently: a value on a bin edge can move one bin
        assert float((split.counts[k] - whole.counts[k]).abs().sum()) <= 4
    simple_cnn.train()
    simple_cnn.net[1].weight.requires_grad_(False)
    try:
        run_monitor(simple_cnn, x8[:2], edges)
        assert simple_cnn.training and all(m.training for m in simple_cnn.modules())
        assert not simple_cnn.net[1].weight.requires_grad and simple_cnn.net[3].weight.requires_grad
    finally:
        simple_cnn.eval()
        simple_cnn.net[1].weight.requires_grad_(True)
    with pytest.raises(ValueError, match="non-empty dict"):
        run_monitor(simple_cnn, x8, {})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run_monitor(simple_cnn, data.to_float(x8) * 255, edges)
