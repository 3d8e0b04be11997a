"""robustness.corruptions: ranges, severities, randomness, reference implementations, accuracy table, RA, Hscore."""
from __future__ import annotations

import colorsys
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from labutils import data, robustness
from labutils.robustness.corruptions import (CORRUPTION_GROUPS, CORRUPTIONS, RANDOM_CORRUPTIONS, SEVERITIES,
                                             SEVERITY_PARAMS, corrupt, corruption_accuracy, hscore, robust_accuracy)

REQUIRED = ("gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "defocus_blur", "contrast",
            "brightness", "pixelate", "jpeg_compression", "fog")
DETERMINISTIC = tuple(n for n in CORRUPTIONS if n not in RANDOM_CORRUPTIONS)


@pytest.fixture(scope="module")
def rgb(cifar_small):
    """16 CIFAR-10 test images, float32 (16, 3, 32, 32) in [0, 1]."""
    _, (x, _) = cifar_small
    return data.to_float(x[:16])


@pytest.fixture(scope="module")
def grey(rgb):
    return rgb.mean(1, keepdim=True)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_table_lists_every_required_corruption_with_five_severities():
    assert set(REQUIRED) <= set(CORRUPTIONS) and len(set(CORRUPTIONS)) == len(CORRUPTIONS)
    assert tuple(SEVERITY_PARAMS) == CORRUPTIONS and SEVERITIES == (1, 2, 3, 4, 5)
    assert all(len(p) == 5 for p in SEVERITY_PARAMS.values())
    assert sorted(sum(CORRUPTION_GROUPS.values(), ())) == sorted(CORRUPTIONS)
    assert RANDOM_CORRUPTIONS <= set(CORRUPTIONS)
    assert {"corrupt", "corruption_accuracy", "robust_accuracy", "hscore", "CORRUPTIONS"} <= set(robustness.__all__)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_range_shape_dtype_kept_input_untouched_and_severity_monotone(rgb, grey, name, channels):
    x = rgb if channels == 3 else grey
    before = x.clone()
    distance = []
    for s in SEVERITIES:
        out = corrupt(x, name, s, generator=_gen(s))
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert not torch.equal(out, x)
        distance.append(float((out - x).abs().mean()))
    assert torch.equal(x, before)
    assert all(a < b for a, b in zip(distance, distance[1:])), (name, distance)


@pytest.mark.parametrize("name", sorted(RANDOM_CORRUPTIONS))
def test_random_corruptions_repeat_with_a_seed_and_change_with_another(rgb, name):
    a = corrupt(rgb, name, 3, generator=_gen(7))
    assert torch.equal(a, corrupt(rgb, name, 3, generator=_gen(7)))
    assert not torch.equal(a, corrupt(rgb, name, 3, generator=_gen(8)))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_ignore_the_generator_and_act_per_channel(grey, name):
    out = corrupt(grey, name, 4)
    assert torch.equal(out, corrupt(grey, name, 4, generator=_gen(3)))
    if name != "jpeg_compression":  # a colour JPEG of a grey image is not a grey JPEG
        rgb_of_grey = corrupt(grey.expand(-1, 3, -1, -1), name, 4)
        torch.testing.assert_close(rgb_of_grey, out.expand(-1, 3, -1, -1), atol=1e-6, rtol=0)


def test_other_sizes_and_dtypes(rgb):
    x = rgb[:2, :, :9, :]  # 9x32: rectangular, odd, small
    for name in CORRUPTIONS:
        assert corrupt(x, name, 5, generator=_gen(0)).shape == x.shape
        out = corrupt(rgb[:2].double(), name, 2, generator=_gen(0))
        assert out.dtype == torch.float64 and 0 <= float(out.min()) and float(out.max()) <= 1
    assert corrupt(rgb[:2].bfloat16(), "fog", 2, generator=_gen(0)).dtype == torch.bfloat16
    assert corrupt(rgb[:0], "fog", 1).shape == (0, 3, 32, 32)


def test_closed_forms_contrast_brightness_noise_statistics():
    x = torch.rand(4, 3, 16, 16, generator=_gen(0)) * 0.8 + 0.1
    mean = x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(corrupt(x, "contrast", 5), (x - mean) * 0.15 + mean)
    g = x.mean(1, keepdim=True)
    torch.testing.assert_close(corrupt(g, "brightness", 5), (g + 0.3).clamp(max=1))
    # brightness raises the HSV value: compare with the standard library's conversion
    out = corrupt(x[:1], "brightness", 3).permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    ref = [colorsys.hsv_to_rgb(h, s, min(v + 0.15, 1))
           for h, s, v in (colorsys.rgb_to_hsv(*p) for p in x[:1].permute(0, 2, 3, 1).reshape(-1, 3).tolist())]
    np.testing.assert_allclose(out, ref, atol=1e-6)
    torch.testing.assert_close(corrupt(torch.zeros(1, 3, 8, 8), "brightness", 2), torch.full((1, 3, 8, 8), 0.1))
    # the noises have the table's sizes (away from clipping)
    flat = torch.full((8, 3, 32, 32), 0.5)
    assert abs(float((corrupt(flat, "gaussian_noise", 5, generator=_gen(0)) - 0.5).std()) - 0.10) < 0.005
    assert abs(float((corrupt(flat, "shot_noise", 5, generator=_gen(0)) - 0.5).std()) - (0.5 / 50) ** 0.5) < 0.005
    hit = corrupt(flat, "impulse_noise", 5, generator=_gen(0)) != 0.5
    assert abs(float(hit.double().mean()) - 0.07) < 0.01


def test_blurs_match_scipy_and_the_defocus_kernel(rgb):
    for s, sigma in enumerate(SEVERITY_PARAMS["gaussian_blur"], 1):
        ref = ndimage.gaussian_filter(rgb[:4].double().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest",
                                      truncate=4.0)
        np.testing.assert_allclose(corrupt(rgb[:4], "gaussian_blur", s).numpy(), ref, atol=1e-5)
    # defocus at severity 5: a 3x3 box (disk of radius 1.5, negligible anti-aliasing), reflected borders
    box = nn.functional.avg_pool2d(nn.functional.pad(rgb[:4], (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    torch.testing.assert_close(corrupt(rgb[:4], "defocus_blur", 5), box, atol=1e-5, rtol=0)
    # zoom blur: the original's recipe with scipy.ndimage.zoom(order=1) on one HWC image
    img = rgb[0].permute(1, 2, 0).numpy()
    for s, stop in enumerate(SEVERITY_PARAMS["zoom_blur"], 1):
        acc = img.copy()
        for z in np.arange(1, stop, 0.01):
            ch = int(np.ceil(32 / z))
            top = (32 - ch) // 2
            big = ndimage.zoom(img[top:top + ch, top:top + ch], (z, z, 1), order=1)
            t = (big.shape[0] - 32) // 2
            acc = acc + big[t:t + 32, t:t + 32]
        ref = acc / (len(np.arange(1, stop, 0.01)) + 1)
        np.testing.assert_allclose(corrupt(rgb[:1], "zoom_blur", s)[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_pixelate_and_jpeg_match_pil(cifar_small):
    _, (xu, _) = cifar_small
    xu = xu[:4]
    x = data.to_float(xu)
    for s in SEVERITIES:
        q, c = SEVERITY_PARAMS["jpeg_compression"][s - 1], SEVERITY_PARAMS["pixelate"][s - 1]
        jpeg, pix = corrupt(x, "jpeg_compression", s), corrupt(x, "pixelate", s)
        for i in range(4):
            im = Image.fromarray(xu[i].permute(1, 2, 0).numpy())
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=q)
            ref = torch.from_numpy(np.asarray(Image.open(buf)).copy()).permute(2, 0, 1).float() / 255
            assert float((jpeg[i] - ref).abs().mean()) < 0.5 / 255  # same libjpeg quality tables
            r = int(32 * c)  # PIL rounds to uint8 after each pass: one grey level at most
            ref = np.asarray(im.resize((r, r), Image.BOX).resize((32, 32), Image.BOX)) / 255
            np.testing.assert_allclose(pix[i].permute(1, 2, 0).numpy(), ref, atol=1.01 / 255)
    # on float images PIL's BOX resize has no rounding: the same numbers, also for rectangles
    g = torch.rand(1, 1, 32, 24, generator=_gen(0))
    im = Image.fromarray(g[0, 0].numpy())
    ref = np.asarray(im.resize((int(24 * 0.65), int(32 * 0.65)), Image.BOX).resize((24, 32), Image.BOX))
    np.testing.assert_allclose(corrupt(g, "pixelate", 5)[0, 0].numpy(), ref, atol=1e-6)


def test_fog_is_a_smooth_pattern_renormalised_by_the_image_maximum():
    flat = torch.full((4, 1, 32, 32), 0.5)
    out = corrupt(flat, "fog", 5, generator=_gen(0))
    fog = (out * (0.5 + 1.5) / 0.5 - 0.5) / 1.5  # undo (x + 1.5 map) * max / (max + 1.5)
    assert float(fog.amin(dim=(1, 2, 3)).max()) < 1e-5 and float(fog.amax(dim=(1, 2, 3)).min()) > 1 - 1e-5
    step = float((fog[..., 1:] - fog[..., :-1]).abs().mean())
    assert step < 0.15  # neighbours are close: low frequency (uniform noise: ~0.33)
    assert not torch.equal(out[0], out[1])  # one map per image
    assert torch.equal(corrupt(torch.zeros(2, 3, 8, 8), "fog", 3, generator=_gen(0)), torch.zeros(2, 3, 8, 8))


def test_bad_inputs_raise_clear_errors(rgb):
    with pytest.raises(ValueError, match="gaussian_noise.*jpeg_compression"):
        corrupt(rgb, "glass_blur", 1)
    assert torch.equal(corrupt(rgb, "Gaussian Blur", 1), corrupt(rgb, "gaussian_blur", 1))
    for bad in (0, 6, -1):
        with pytest.raises(ValueError, match="1..5"):
            corrupt(rgb, "contrast", bad)
    for bad in (2.0, True, "3", None):
        with pytest.raises(TypeError, match="integer"):
            corrupt(rgb, "contrast", bad)
    assert torch.equal(corrupt(rgb, "contrast", np.int64(2)), corrupt(rgb, "contrast", 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(rgb * 255, "contrast", 1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        corrupt(rgb[0], "contrast", 1)
    with pytest.raises(TypeError, match="floating point"):
        corrupt((rgb * 255).to(torch.uint8), "contrast", 1)
    with pytest.raises(ValueError, match="channels"):
        corrupt(rgb[:, :2], "contrast", 1)
    with pytest.raises(ValueError, match="8x8"):
        corrupt(rgb[:, :, :7], "contrast", 1)
    with pytest.raises(TypeError, match="Generator"):
        corrupt(rgb, "fog", 1, generator=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_the_gpu(rgb):
    x = rgb.cuda()
    with pytest.raises(ValueError, match="torch.Generator"):
        corrupt(x, "gaussian_noise", 1, generator=_gen(0))
    for name in CORRUPTIONS:
        g = torch.Generator(device="cuda").manual_seed(0)
        out = corrupt(x, name, 3, generator=g)
        assert out.device == x.device and 0 <= float(out.min()) and float(out.max()) <= 1
        if name not in RANDOM_CORRUPTIONS:
            torch.testing.assert_close(out.cpu(), corrupt(rgb, name, 3), atol=2e-5 if name != "jpeg_compression" else 0,
                                       rtol=0)


class MeanBrightness(nn.Module):
    """Class 1 if an image's mean is above 0.5, else class 0; records the mode it ran in."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(100.0))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], 1) * self.scale


def test_corruption_accuracy_table_modes_and_repeatability(rgb):
    model = MeanBrightness().train()
    y = (rgb.mean(dim=(1, 2, 3)) > 0.5).long()
    names, sev = ("brightness", "contrast", "gaussian_noise"), (1, 3, 5)
    table = corruption_accuracy(model, rgb, y, names=names, severities=sev, batch_size=5, seed=1)
    assert isinstance(table, pd.DataFrame) and table.shape == (3, 3)
    assert list(table.index) == list(names) and list(table.columns) == list(sev)
    assert table.index.name == "corruption" and table.columns.name == "severity"
    assert model.training and model.scale.requires_grad and model.modes and not any(model.modes)
    assert (table.loc["contrast"] == 1.0).all()  # contrast keeps each channel's mean
    bright = table.loc["brightness"].to_numpy()
    assert (np.diff(bright) <= 0).all() and bright[-1] < 1  # brighter images cross the threshold
    pd.testing.assert_frame_equal(table, corruption_accuracy(model, rgb, y, names=names, severities=sev,
                                                             batch_size=5, seed=1))
    same = corruption_accuracy(model, (rgb * 255).round().to(torch.uint8), y, names=names[:2], severities=sev,
                               batch_size=16)
    pd.testing.assert_frame_equal(same, table.loc[list(names[:2])], atol=1 / 16, check_exact=False)
    full = corruption_accuracy(model, rgb, y)
    assert full.shape == (len(CORRUPTIONS), 5) and 0 <= robust_accuracy(full) <= 1


def test_several_models_share_the_corrupted_images(rgb):
    y = (rgb.mean(dim=(1, 2, 3)) > 0.5).long()
    first, second = MeanBrightness(), MeanBrightness()
    with torch.no_grad():
        second.scale.fill_(-100.0)  # the opposite classifier
    names, sev = ("brightness", "shot_noise"), (2, 4)
    tables = corruption_accuracy({"first": first, "second": second}, rgb, y, names=names, severities=sev, seed=3)
    assert set(tables) == {"first", "second"}
    pd.testing.assert_frame_equal(tables["first"], corruption_accuracy(first, rgb, y, names=names, severities=sev,
                                                                       seed=3))
    pd.testing.assert_frame_equal(tables["second"], 1 - tables["first"])  # the same images, each one flipped
    with pytest.raises(TypeError, match="nn.Module"):
        corruption_accuracy({}, rgb, y)


def test_corruption_accuracy_checks_its_arguments(rgb):
    model, y = MeanBrightness(), torch.zeros(16, dtype=torch.long)
    with pytest.raises(ValueError, match="Unknown corruption"):
        corruption_accuracy(model, rgb, y, names=("snow",))
    with pytest.raises(ValueError, match="1..5"):
        corruption_accuracy(model, rgb, y, severities=(0,))
    with pytest.raises(ValueError, match="repeat"):
        corruption_accuracy(model, rgb, y, names=("fog", "Fog"))
    with pytest.raises(ValueError, match="batch_size"):
        corruption_accuracy(model, rgb, y, batch_size=0)
    with pytest.raises(ValueError, match="shape"):
        corruption_accuracy(model, rgb, y[:3])


def test_robust_accuracy_and_hscore():
    table = pd.DataFrame([[0.9, 0.5], [0.7, 0.1]], index=pd.Index(["a", "b"], name="corruption"),
                         columns=pd.Index([1, 2], name="severity"))
    assert robust_accuracy(table) == pytest.approx(0.55)
    assert robust_accuracy(np.array([[0.2, 0.4]])) == pytest.approx(0.3)
    assert hscore(0.8, 0.5) == pytest.approx(0.6153846153846154)
    assert hscore(0.0, 0.0) == 0.0 and hscore(1.0, 1.0) == 1.0 and hscore(0.7, 0.0) == 0.0
    # EntProp (Enomoto 2024), CIFAR-100 ResNet-18 vanilla: SA 78.45, RA 49.96 -> Hscore 61.04
    assert 100 * hscore(0.7845, 0.4996) == pytest.approx(61.04, abs=0.01)
    assert 100 * hscore(0.7892, 0.5716) == pytest.approx(66.30, abs=0.01)
    for bad in ((78.45, 0.5), (0.5, -0.1)):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            hscore(*bad)
    with pytest.raises(TypeError):
        hscore(float("nan"), 0.5)
    with pytest.raises(ValueError, match="fractions"):
        robust_accuracy(table * 100)
    with pytest.raises(ValueError, match="missing"):
        robust_accuracy(table.where(table > 0.2))
    with pytest.raises(ValueError, match="empty"):
        robust_accuracy(pd.DataFrame())
