"""OOD scores and metrics: checked against scikit-learn, brute force and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from labutils import data, models, training, uncertainty


# --------------------------------------------------------------------------- data
def _tied_scores(n_id: int, n_ood: int, seed: int):
    """Overlapping normal scores rounded to 0.1, so that many values are tied within and across sets."""
    rng = np.random.default_rng(seed)
    s_id = np.round(rng.normal(1.0, 1.0, n_id), 1)
    s_ood = np.round(rng.normal(0.0, 1.2, n_ood), 1)
    return s_id, s_ood


def _labels_and_scores(s_id, s_ood):
    """scikit-learn's view: ID labelled 1 (positive), OOD 0."""
    y = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
    return y, np.r_[s_id, s_ood]


def _brute_force_fpr(s_id, s_ood, tpr):
    """Try every candidate threshold: the largest t with mean(id >= t) >= tpr, then mean(ood >= t)."""
    candidates = np.unique(np.r_[s_id, s_ood])
    ok = [t for t in candidates if np.sum(s_id >= t) >= tpr * len(s_id) - 1e-9]
    t = max(ok)
    return float(np.mean(s_ood >= t)), t


IMBALANCES = [(300, 1000, 0), (1000, 300, 1), (300, 1000, 2), (37, 5, 3)]


# --------------------------------------------------------------------------- metrics vs scikit-learn
@pytest.mark.parametrize("n_id,n_ood,seed", IMBALANCES)
def test_metrics_match_sklearn_with_ties(n_id, n_ood, seed):
    s_id, s_ood = _tied_scores(n_id, n_ood, seed)
    assert len(np.unique(np.r_[s_id, s_ood])) < 0.7 * (n_id + n_ood)  # the data really has ties
    y, s = _labels_and_scores(s_id, s_ood)
    a = uncertainty.auroc(s_id, s_ood)
    assert 0.5 < a < 1  # overlapping, imperfect data
    assert a == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert uncertainty.aupr_in(s_id, s_ood) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert uncertainty.aupr_out(s_id, s_ood) == pytest.approx(skm.average_precision_score(1 - y, -s), abs=1e-12)


@pytest.mark.parametrize("n_id,n_ood,seed", IMBALANCES)
def test_roc_curve_matches_sklearn(n_id, n_ood, seed):
    s_id, s_ood = _tied_scores(n_id, n_ood, seed)
    y, s = _labels_and_scores(s_id, s_ood)
    fpr, tpr, thr = uncertainty.roc_curve(torch.tensor(s_id), torch.tensor(s_ood))
    ref_fpr, ref_tpr, ref_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(thr, ref_thr)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-15)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    # trapezoidal area under the curve = the rank-based AUROC
    assert np.trapezoid(tpr, fpr) == pytest.approx(uncertainty.auroc(s_id, s_ood), abs=1e-12)


@pytest.mark.parametrize("n_id,n_ood,seed", IMBALANCES)
@pytest.mark.parametrize("target", [0.95, 0.9, 0.5, 1.0])
def test_fpr_at_tpr_matches_brute_force_and_sklearn_curve(n_id, n_ood, seed, target):
    s_id, s_ood = _tied_scores(n_id, n_ood, seed)
    got = uncertainty.fpr_at_tpr(s_id, s_ood, tpr=target)
    expected, t_expected = _brute_force_fpr(s_id, s_ood, target)
    assert got == expected
    assert uncertainty.threshold_at_tpr(s_id, target) == t_expected
    # scikit-learn's un-interpolated curve: the first point (largest threshold) reaching the target TPR
    y, s = _labels_and_scores(s_id, s_ood)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    first = int(np.argmax(np.round(tpr * n_id) >= math.ceil(round(target * n_id, 9))))
    assert got == pytest.approx(fpr[first], abs=1e-15)
    if target < 1:
        assert 0 < got < 1  # imperfect data: neither trivial end


@pytest.mark.parametrize("target", [0.95, 0.8, 0.5, 1.0])
def test_threshold_at_tpr_is_the_largest_keeping_the_target(target):
    s_id, _ = _tied_scores(333, 1, 7)
    t = uncertainty.threshold_at_tpr(s_id, target)
    assert t in s_id
    assert np.mean(s_id >= t) >= target
    larger = s_id[s_id > t]
    if larger.size:
        assert np.mean(s_id >= larger.min()) < target


def test_fpr_at_tpr_counts_ood_ties_at_the_threshold_as_accepted():
    s_id = np.arange(20.0)  # tpr 0.95 keeps 19 of 20: threshold = 1.0
    assert uncertainty.threshold_at_tpr(s_id, 0.95) == 1.0
    s_ood = np.array([1.0, 1.0, 0.5, 0.0, -3.0])
    assert uncertainty.fpr_at_tpr(s_id, s_ood) == pytest.approx(2 / 5)
    # ties inside the ID set: the achieved TPR may exceed the target, the threshold stays the m-th largest
    s_id_tied = np.array([0.0] * 5 + [1.0] * 15)
    assert uncertainty.threshold_at_tpr(s_id_tied, 0.95) == 0.0
    assert uncertainty.fpr_at_tpr(s_id_tied, np.array([0.0, -1.0])) == pytest.approx(0.5)


# --------------------------------------------------------------------------- metric properties
def test_perfect_and_reversed_separation():
    s_id = np.linspace(1.0, 2.0, 50)
    s_ood = np.linspace(-2.0, 0.5, 80)
    assert uncertainty.auroc(s_id, s_ood) == 1.0
    assert uncertainty.fpr_at_tpr(s_id, s_ood) == 0.0
    assert uncertainty.aupr_in(s_id, s_ood) == pytest.approx(1.0)
    assert uncertainty.aupr_out(s_id, s_ood) == pytest.approx(1.0)
    assert uncertainty.auroc(-s_id, -s_ood) == 0.0
    assert uncertainty.fpr_at_tpr(-s_id, -s_ood) == 1.0


def test_metric_symmetries_and_invariances():
    s_id, s_ood = _tied_scores(300, 1000, 11)
    a = uncertainty.auroc(s_id, s_ood)
    assert uncertainty.auroc(s_ood, s_id) == pytest.approx(1 - a, abs=1e-12)
    assert uncertainty.auroc(-s_ood, -s_id) == pytest.approx(a, abs=1e-12)
    # strictly increasing transforms change no metric
    f = lambda x: np.exp(0.7 * x) + 3  # noqa: E731
    for metric in (uncertainty.auroc, uncertainty.aupr_in, uncertainty.aupr_out, uncertainty.fpr_at_tpr):
        assert metric(f(s_id), f(s_ood)) == pytest.approx(metric(s_id, s_ood), abs=1e-12)
    # aupr_out is aupr_in of the swapped, negated problem
    assert uncertainty.aupr_out(s_id, s_ood) == pytest.approx(uncertainty.aupr_in(-s_ood, -s_id), abs=1e-12)
    # all scores equal: chance AUROC, every OOD sample accepted, AP = class fraction
    c_id, c_ood = np.zeros(30), np.zeros(90)
    assert uncertainty.auroc(c_id, c_ood) == 0.5
    assert uncertainty.fpr_at_tpr(c_id, c_ood) == 1.0
    assert uncertainty.aupr_in(c_id, c_ood) == pytest.approx(30 / 120)


def test_metrics_accept_tensors_lists_and_infinite_scores():
    s_id, s_ood = _tied_scores(50, 70, 5)
    ref = uncertainty.auroc(s_id, s_ood)
    assert uncertainty.auroc(torch.tensor(s_id, requires_grad=True), list(s_ood)) == pytest.approx(ref)
    with_inf = uncertainty.auroc(np.r_[s_id, np.inf], np.r_[s_ood, -np.inf])
    assert with_inf > ref - 0.02 and math.isfinite(with_inf)


def test_evaluate_scores_rows_flat_and_nested():
    s_id, s_ood = _tied_scores(200, 300, 3)
    ids = {"a": torch.tensor(s_id), "b": torch.tensor(-s_id)}
    oods = {"a": torch.tensor(s_ood), "b": torch.tensor(-s_ood)}
    rows = uncertainty.evaluate_scores(ids, oods)
    assert [r["score"] for r in rows] == ["a", "b"]
    assert set(rows[0]) == {"score", "auroc", "fpr95", "aupr_in", "aupr_out"}
    assert rows[0]["auroc"] == pytest.approx(uncertainty.auroc(s_id, s_ood))
    assert rows[0]["fpr95"] == pytest.approx(uncertainty.fpr_at_tpr(s_id, s_ood))
    assert rows[0]["aupr_in"] == pytest.approx(uncertainty.aupr_in(s_id, s_ood))
    assert rows[0]["aupr_out"] == pytest.approx(uncertainty.aupr_out(s_id, s_ood))
    assert rows[1]["auroc"] == pytest.approx(1 - rows[0]["auroc"])
    nested = uncertainty.evaluate_scores(ids, {"noise": oods, "other": {"a": s_ood[:10], "b": s_ood[:10]}})
    assert [(r["ood"], r["score"]) for r in nested] == [("noise", "a"), ("noise", "b"), ("other", "a"), ("other", "b")]
    assert nested[1]["auroc"] == rows[1]["auroc"]


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("metric", [uncertainty.auroc, uncertainty.aupr_in, uncertainty.aupr_out, uncertainty.fpr_at_tpr, uncertainty.roc_curve])
def test_metrics_reject_bad_inputs(metric):
    good = np.array([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="scores_id is empty"):
        metric(np.array([]), good)
    with pytest.raises(ValueError, match="scores_ood is empty"):
        metric(good, torch.empty(0))
    with pytest.raises(ValueError, match=r"scores_ood contains 1 NaN"):
        metric(good, np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match=r"scores_id must be 1-D.*\(3, 2\)"):
        metric(np.zeros((3, 2)), good)
    with pytest.raises(ValueError, match="scores_ood must be 1-D"):
        metric(good, np.float64(0.3))


def test_tpr_and_evaluate_scores_validation():
    good = np.array([0.1, 0.2, 0.3])
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"tpr must be in \(0, 1\]"):
            uncertainty.fpr_at_tpr(good, good, tpr=bad)
    with pytest.raises(ValueError, match="same names"):
        uncertainty.evaluate_scores({"a": good}, {"b": good})
    with pytest.raises(ValueError, match="id_scores is empty"):
        uncertainty.evaluate_scores({}, {"a": good})
    with pytest.raises(ValueError, match="mixes"):
        uncertainty.evaluate_scores({"a": good}, {"a": good, "set": {"a": good}})
    with pytest.raises(ValueError, match=r"ood_scores\['a'\] contains 1 NaN"):
        uncertainty.evaluate_scores({"a": good}, {"a": np.array([np.nan])})


# --------------------------------------------------------------------------- scores from logits
def test_scores_point_in_distribution_for_a_confident_row():
    logits = torch.tensor([[8.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
    for name, fn in uncertainty.SCORES.items():
        s = fn(logits)
        assert s.shape == (3,) and s.dtype == torch.float32, name
        assert s[0] > s[1], name  # confident > uniform
    # entropy and energy point the other way (higher = more OOD)
    assert uncertainty.entropy(logits)[0] < uncertainty.entropy(logits)[1]
    assert uncertainty.energy(logits)[0] < uncertainty.energy(logits)[1]
    # uniform rows: MSP 1/K, entropy log K whatever the offset; max_logit/energy see the offset
    torch.testing.assert_close(uncertainty.max_softmax(logits)[1:], torch.full((2,), 0.25))
    torch.testing.assert_close(uncertainty.entropy(logits)[1:], torch.full((2,), math.log(4)))
    assert uncertainty.max_logit(logits)[2] > uncertainty.max_logit(logits)[1]
    assert uncertainty.neg_energy(logits)[2] > uncertainty.neg_energy(logits)[1]


@pytest.mark.parametrize("T", [1.0, 2.5, 0.5])
def test_score_numerics_match_float64_formulas(T):
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(64, 10, generator=g)
    z = logits.double().numpy()
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ent = -(p * np.log(p)).sum(1)
    en = -T * np.log(np.exp(z / T).sum(1))
    np.testing.assert_allclose(uncertainty.entropy(logits).numpy(), ent, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(uncertainty.neg_entropy(logits).numpy(), -ent, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(uncertainty.energy(logits, T=T).numpy(), en, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(uncertainty.neg_energy(logits, T=T).numpy(), -en, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(uncertainty.max_softmax(logits).numpy(), p.max(1), rtol=1e-5)
    np.testing.assert_allclose(uncertainty.max_logit(logits).numpy(), z.max(1))
    ent_range = uncertainty.entropy(logits)
    assert bool((ent_range >= 0).all()) and bool((ent_range <= math.log(10) + 1e-5).all())


def test_scores_are_stable_for_huge_logits():
    big = 1e4
    logits = torch.tensor([[big, 0.0, 0.0], [big, big, 0.0], [-big, -big, -big], [big, -big, 0.0]])
    scores = uncertainty.scores_from_logits(logits)
    for name, s in scores.items():
        assert bool(torch.isfinite(s).all()), name
    torch.testing.assert_close(scores["max_softmax"], torch.tensor([1.0, 0.5, 1 / 3, 1.0]))
    torch.testing.assert_close(uncertainty.entropy(logits), torch.tensor([0.0, math.log(2), math.log(3), 0.0]),
                               atol=1e-6, rtol=0)
    expected_energy = torch.tensor([-big, -(big + math.log(2)), big - math.log(3), -big])
    torch.testing.assert_close(uncertainty.energy(logits), expected_energy, atol=2e-3, rtol=0)
    # half-precision logits are computed in float32
    half = uncertainty.energy(logits[:2].to(torch.bfloat16))
    assert half.dtype == torch.float32 and bool(torch.isfinite(half).all())


def test_score_input_validation():
    with pytest.raises(ValueError, match=r"logits must have shape \(N, K\)"):
        uncertainty.max_logit(torch.zeros(10))
    with pytest.raises(ValueError, match="NaN or infinite"):
        uncertainty.entropy(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="temperature T must be"):
        uncertainty.energy(torch.zeros(2, 3), T=0)


def test_classifier_scores_one_pass_equals_scores_of_predicted_logits():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5)).train()
    images = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8)
    got = uncertainty.classifier_scores(model, images, batch_size=3)
    assert model.training  # mode restored
    assert list(got) == list(uncertainty.SCORES)
    logits = training.predict_logits(model, images)
    for name, fn in uncertainty.SCORES.items():
        assert got[name].shape == (7,)
        torch.testing.assert_close(got[name], fn(logits))
    empty = uncertainty.classifier_scores(model, images[:0])
    assert all(v.shape == (0,) for v in empty.values())


# --------------------------------------------------------------------------- autoencoder
@pytest.fixture
def tiny_autoencoder():
    torch.manual_seed(0)
    return models.ConvAutoencoder(width=4, latent=8)


@pytest.mark.parametrize("start_training", [True, False])
def test_reconstruction_error_shape_range_and_mode(tiny_autoencoder, start_training):
    ae = tiny_autoencoder.train(start_training)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    err = uncertainty.reconstruction_error(ae, images, batch_size=4)
    assert ae.training is start_training
    assert err.shape == (6,) and err.dtype == torch.float32
    assert bool((err > 0).all()) and bool((err <= 1).all())
    # same value from float input, in one batch, and from the definition
    x = images.float() / 255
    torch.testing.assert_close(uncertainty.reconstruction_error(ae, x), err)
    ae.eval()
    with torch.no_grad():
        direct = (ae(x) - x).square().mean(dim=(1, 2, 3))
    torch.testing.assert_close(err, direct)
    torch.testing.assert_close(uncertainty.reconstruction_score(ae, images), -err)


def test_reconstruction_error_rejects_bad_images(tiny_autoencoder):
    with pytest.raises(ValueError, match=r"must have shape \(N, C, H, W\)"):
        uncertainty.reconstruction_error(tiny_autoencoder, torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        uncertainty.reconstruction_error(tiny_autoencoder, torch.full((1, 3, 32, 32), 2.0))
    assert uncertainty.reconstruction_error(tiny_autoencoder, torch.zeros(0, 3, 32, 32, dtype=torch.uint8)).shape == (0,)


def test_train_autoencoder_delegates_to_checkpoint_cache(monkeypatch):
    calls = []

    def fake_get_or_train(name, config, **kwargs):
        calls.append((name, config, kwargs))
        return "model", {"cached": True}

    monkeypatch.setattr(uncertainty.reconstruction, "get_or_train", fake_get_or_train)
    cfg = training.TrainConfig(epochs=1, objective="reconstruct", augment=False)
    assert uncertainty.train_autoencoder(cfg, dataset="cifar10", progress=False) == ("model", {"cached": True})
    assert calls == [("autoencoder", cfg, {"dataset": "cifar10", "progress": False})]
    with pytest.raises(ValueError, match="objective='reconstruct'"):
        uncertainty.train_autoencoder(training.TrainConfig(epochs=1))


# --------------------------------------------------------------------------- optional SVHN loader
class _FakeSVHN:
    """Stands in for torchvision.datasets.SVHN: data (N, 3, 32, 32) uint8 and labels, as torchvision builds them."""

    calls: list = []

    def __init__(self, root, split, download):
        type(self).calls.append((root, split, download))
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8)
        self.labels = np.arange(12, dtype=np.int64) % 10


def test_load_svhn_returns_uint8_images_and_leaves_the_socket_timeout_alone(monkeypatch, tmp_path):
    import socket

    import torchvision

    _FakeSVHN.calls = []
    monkeypatch.setattr(torchvision.datasets, "SVHN", _FakeSVHN)
    monkeypatch.setattr(data.ood_sets, "_reachable", lambda url, timeout: None)
    before = socket.getdefaulttimeout()
    images, labels = data.load_svhn("test", n=5, root=tmp_path)
    assert socket.getdefaulttimeout() == before
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 1, 2, 3, 4] and labels.dtype == torch.int64
    assert _FakeSVHN.calls == [(str(tmp_path), "test", True)]
    full, _ = data.load_svhn("test", root=tmp_path, download=False)
    assert full.shape[0] == 12 and torch.equal(full[:5], images)


def test_load_svhn_without_network_raises_a_clear_dataset_error(monkeypatch, tmp_path):
    import socket
    import urllib.error

    import torchvision

    def offline(root, split, download):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "SVHN", offline)
    monkeypatch.setattr(data.ood_sets, "_reachable", lambda url, timeout: None)
    before = socket.getdefaulttimeout()
    with pytest.raises(data.DatasetNotFoundError, match=r"(?s)SVHN \(test\).*could not be downloaded.*URLError"
                                                        r".*optional.*test_32x32\.mat"):
        data.load_svhn("test", root=tmp_path)
    assert socket.getdefaulttimeout() == before
    with pytest.raises(ValueError, match="Unknown SVHN split"):
        data.load_svhn("validation", root=tmp_path)
    with pytest.raises(ValueError, match="n must be"):
        data.load_svhn("test", n=-1, root=tmp_path)


def test_load_svhn_gives_up_quickly_when_the_server_does_not_answer(monkeypatch, tmp_path):
    import socket

    import torchvision

    def never(*args, **kwargs):
        raise AssertionError("the download must not start when the server is unreachable")

    def silent(address, timeout):
        assert timeout == 3.0  # the caller's timeout reaches the connection, not a process-wide setting
        raise socket.timeout("timed out")

    monkeypatch.setattr(torchvision.datasets, "SVHN", never)
    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(data.DatasetNotFoundError, match=r"(?s)could not be downloaded.*timed out.*test_32x32\.mat"):
        data.load_svhn("test", root=tmp_path, timeout=3.0)
    assert socket.getdefaulttimeout() is None
