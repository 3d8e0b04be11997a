"""Feature squeezing (labutils.robustness.defences), the CIFAR ResNet family and notebook 09's grid specs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from labutils import data
from labutils.course import survival_grid as sg
from labutils.models import CifarResNet, build, count_parameters
from labutils.robustness import FeatureSqueezing, squeeze_bit_depth
from labutils.training import TrainConfig


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(single_thread):
    yield


@pytest.mark.parametrize("bits", [1, 3, 4, 8])
def test_squeeze_bit_depth_keeps_levels_dtype_and_input(bits):
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(bits))
    x0 = x.clone()
    s = squeeze_bit_depth(x, bits)
    levels = 2 ** bits - 1
    assert torch.equal(x, x0) and s.dtype == x.dtype and s.shape == x.shape
    assert torch.allclose(s * levels, torch.round(s * levels), atol=1e-5)  # on the grid of 2**bits levels
    assert float((s - x).abs().max()) <= 0.5 / levels + 1e-6  # the nearest level
    assert torch.equal(squeeze_bit_depth(s, bits), s)  # idempotent
    assert 0 <= float(s.min()) and float(s.max()) <= 1


def test_eight_bits_leave_uint8_images_unchanged_and_bad_bits_are_named():
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    x = u.float() / 255
    assert torch.equal(squeeze_bit_depth(x, 8), x)
    for bad in (0, 9, 2.5, True):
        with pytest.raises(ValueError, match="bits"):
            squeeze_bit_depth(x, bad)
    with pytest.raises(TypeError, match="float"):
        squeeze_bit_depth(u, 4)


def test_feature_squeezing_gradient_is_straight_through_or_masked():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3)).eval()
    x = torch.rand(5, 3, 4, 4)
    bpda, masked = FeatureSqueezing(model, 3), FeatureSqueezing(model, 3, straight_through=False)
    expected = model(squeeze_bit_depth(x, 3))
    assert torch.allclose(bpda(x), expected) and torch.allclose(masked(x), expected)
    grads = []
    for m in (bpda, masked):
        xg = x.clone().requires_grad_(True)
        m(xg)[:, 0].sum().backward()
        grads.append(xg.grad)
    w = model[1].weight[0].detach().view(1, 3, 4, 4).expand_as(x)
    assert torch.allclose(grads[0], w)  # linear model: the identity's gradient is the weight row
    assert torch.count_nonzero(grads[1]) == 0  # rounding masks the gradient
    assert "bits=3" in repr(bpda)


def test_resnet_family_depths_parameters_and_shapes():
    counts = {d: count_parameters(build("resnet", depth=d)) for d in (8, 14, 20, 32)}
    assert counts[8] < counts[14] < counts[20] < counts[32]
    assert abs(counts[20] - 0.27e6) < 0.01e6  # He et al. (2016), table 6: ResNet-20 has 0.27 M parameters
    model = CifarResNet(depth=14, width=8).eval()
    x = torch.rand(3, 3, 32, 32)
    assert model(x).shape == (3, 10)
    assert CifarResNet(depth=8, in_channels=1, mean=(0.5,), std=(0.5,))(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    for bad in (7, 10, 0, 20.0):
        with pytest.raises(ValueError, match="6 n \\+ 2"):
            CifarResNet(depth=bad)
    with pytest.raises(ValueError, match="width"):
        CifarResNet(depth=8, width=4)


def test_model_specs_and_cells_are_json_and_name_their_defences():
    configs = {"standard": TrainConfig(epochs=1), "noise": TrainConfig(mode="gaussian", noise_sigma=0.1, epochs=1),
               "adversarial": TrainConfig(mode="fast_fgsm", eps=4 / 255, epochs=1)}
    specs = sg.model_specs("resnet", (8, 14), configs, width=8, squeeze_bits=(4,))
    assert [s["name"] for s in specs] == ["resnet8-standard", "resnet8-noise", "resnet8-adversarial", "resnet8-squeeze4",
                                          "resnet14-standard", "resnet14-noise", "resnet14-adversarial",
                                          "resnet14-squeeze4"]
    by_name = {s["name"]: s for s in specs}
    assert by_name["resnet8-noise"]["defence"] == "noise" and by_name["resnet8-noise"]["defence_strength"] == 0.1
    assert by_name["resnet8-adversarial"]["defence_strength"] == pytest.approx(4.0)
    assert by_name["resnet14-squeeze4"]["defence"] == "squeeze" and by_name["resnet14-squeeze4"]["squeeze_bits"] == 4
    assert by_name["resnet14-squeeze4"]["config"] == by_name["resnet14-standard"]["config"]
    assert TrainConfig(**by_name["resnet8-adversarial"]["config"]).to_dict() == configs["adversarial"].to_dict()
    attacks = {"fgsm": {"budgets": [1 / 255, 2 / 255]}, "deepfool": {"max_norm": 1.0}}
    cells = sg.survival_cells(specs, attacks, n_images=10)
    assert len(cells) == 16 and json.loads(json.dumps(cells)) == cells
    with pytest.raises(ValueError, match="unknown attack"):
        sg.survival_cells(specs, {"cw": {}}, n_images=10)
    with pytest.raises(ValueError, match="mode"):
        sg.model_specs("resnet", (8,), {"mix": TrainConfig(mode="mixup", epochs=1)})
    with pytest.raises(ValueError, match="standard"):
        sg.model_specs("resnet", (8,), {"noise": configs["noise"]}, squeeze_bits=(4,))


def test_survival_cell_measures_every_attack_on_a_cached_model(tiny_train_set, cifar_small):
    """End to end on a 128-image training set: rows per correctly classified image, in each attack's unit."""
    cfg = TrainConfig(epochs=1, batch_size=64, precision="fp32", augment=False, seed=0)
    specs = sg.model_specs("resnet", (8,), {"standard": cfg}, width=8, squeeze_bits=(4,))
    trained = sg.train_models(specs, progress=False)
    assert len(trained) == 1 and trained["samples"].iloc[0] == 128 and trained["train_seconds_per_sample"].iloc[0] > 0
    # the test split, labelled with the trained model's own predictions: every image starts correctly classified
    model, _ = sg._load(specs[0])
    _, (xt, _) = cifar_small
    with torch.no_grad():
        yt = model(data.to_float(xt[:12])).argmax(1)
    torch.save({"images": xt[:12].clone(), "labels": yt}, tiny_train_set / "cache" / f"cifar10-test-v{data.CACHE_VERSION}.pt")
    attacks = {"fgsm": {"budgets": [2 / 255, 8 / 255]}, "pgd_l2": {"budgets": [0.1, 0.5], "steps": 2},
               "deepfool": {"max_norm": 0.5, "steps": 5}, "pgd_steps": {"eps": 4 / 255, "max_steps": 3}}
    for cell in sg.survival_cells(specs, attacks, n_images=12):
        rows = sg.survival_cell(cell)
        r = rows[0]
        assert len(rows) == 12 and r["clean_accuracy"] == 1.0
        assert sum(x["event"] for x in rows) == r["n_events"]
        assert r["adv_accuracy"] == pytest.approx((len(rows) - r["n_events"]) / 12)
        assert all(0 < x["duration"] <= x["budget_max"] for x in rows)
        assert all(x["duration"] == x["budget_max"] for x in rows if not x["event"])
        assert r["params"] == count_parameters(CifarResNet(depth=8, width=8))
        assert r["gradient_seconds"] > 0 and r["predict_seconds"] > 0 and r["attack_seconds"] > 0
        json.dumps(rows)


def _grid_table():
    """A hand-made grid table: two models x two attacks, three images each, durations in each attack's unit."""
    import pandas as pd

    rows = []
    for name, depth, defence, strength in (("r8", 8, "none", 0.0), ("r8a", 8, "adversarial", 4.0),
                                            ("r14n", 14, "noise", 0.1), ("r14n2", 14, "noise", 0.05)):
        for attack, top, durations in (("fgsm", 16 / 255, (2 / 255, 8 / 255, 16 / 255)), ("pgd_l2", 1.5, (0.3, 0.6, 1.5))):
            for image, d in enumerate(durations):
                rows.append({"cell": f"{name}-{attack}", "name": name, "arch": "fastnet" if name == "r14n2" else "resnet",
                             "depth": depth, "defence": defence,
                             "defence_strength": strength, "attack": attack, "image": image, "duration": d,
                             "event": int(image < 2), "budget_max": top})
    return pd.DataFrame(rows)


def test_scaled_strengths_and_aft_frame_put_attacks_and_defences_on_one_scale():
    table = _grid_table()
    scaled = sg.scaled_strengths(table)
    assert np.allclose(scaled.attack_strength[table.attack == "fgsm"].to_numpy()[:3], [0.125, 0.5, 1.0])
    assert np.allclose(scaled.attack_strength[table.attack == "pgd_l2"].to_numpy()[:3], [0.2, 0.4, 1.0])
    by_name = scaled.groupby("name").defence_strength_scaled.first()
    assert by_name.to_dict() == {"r14n": 1.0, "r14n2": 0.5, "r8": 0.0, "r8a": 1.0}
    assert "attack_strength" not in table.columns  # a copy
    frame = sg.aft_frame(table)
    assert list(frame.columns) == ["duration", "event", "depth", "noise", "adversarial", "pgd_l2", "fastnet"]
    assert frame.fastnet.sum() == 6 and frame.loc["r14n2-fgsm/0", "fastnet"] == 1.0  # the rarer architecture
    assert frame.index[0] == "r8-fgsm/0" and frame.event.dtype == bool
    assert np.allclose(frame.duration, scaled.attack_strength) and (frame.duration > 0).all()
    row = frame.loc["r14n2-pgd_l2/1"]
    assert (row.noise, row.adversarial, row.pgd_l2, row.depth) == (0.5, 0.0, 1.0, 14.0)
    raw = sg.aft_frame(table, attacks=["pgd_l2"], scale=False)
    assert list(raw.columns) == ["duration", "event", "depth", "noise", "adversarial", "fastnet"]  # no attack indicator
    assert np.allclose(raw.duration.to_numpy()[:3], [0.3, 0.6, 1.5])
    with pytest.raises(ValueError, match="no rows"):
        sg.aft_frame(table, attacks=["deepfool"])


def test_median_survival_matches_lifelines_and_reports_inf_when_most_survive():
    from lifelines import KaplanMeierFitter

    table = _grid_table()
    table.loc[(table.name == "r8") & (table.attack == "fgsm"), "event"] = [1, 0, 0]  # 2 of 3 survive
    med = sg.median_survival(table)
    assert med.loc[("r8", "fgsm"), "median"] == np.inf and med.loc[("r8", "fgsm"), "events"] == 1
    g = table[(table.name == "r8a") & (table.attack == "pgd_l2")]
    expected = KaplanMeierFitter().fit(g.duration, g.event).median_survival_time_
    assert med.loc[("r8a", "pgd_l2"), "median"] == pytest.approx(expected) == pytest.approx(0.6)
    assert med.loc[("r8a", "pgd_l2"), "images"] == 3 and med.loc[("r8a", "pgd_l2"), "budget_max"] == 1.5
