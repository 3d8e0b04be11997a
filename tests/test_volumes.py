"""labutils.data.make_shapes_3d: the synthetic volumetric task of notebook 06 (shapes, ranges, seeding, class cues)."""
from __future__ import annotations

import pytest
import torch

from labutils.data import SHAPES_3D, make_shapes_3d


def test_shapes_dtype_range_and_balance():
    x, y, names = make_shapes_3d(50, size=12, seed=3)
    assert x.shape == (50, 1, 12, 12, 12) and x.dtype == torch.float32
    assert y.shape == (50,) and y.dtype == torch.int64
    assert names == ["sphere", "cube", "cylinder", "shell"]
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    counts = torch.bincount(y, minlength=4)
    assert counts.sum() == 50 and int(counts.max() - counts.min()) <= 1  # 13, 13, 12, 12
    assert not torch.equal(y, y.sort().values)  # shuffled, not in class blocks


def test_dtypes_and_all_classes():
    x8, y8, names = make_shapes_3d(10, size=8, classes=SHAPES_3D, seed=1, dtype=torch.uint8)
    xf, yf, _ = make_shapes_3d(10, size=8, classes=SHAPES_3D, seed=1, dtype=torch.float64)
    assert x8.dtype == torch.uint8 and xf.dtype == torch.float64 and names == list(SHAPES_3D)
    assert torch.equal(y8, yf) and torch.equal(x8, (xf.float() * 255).round().to(torch.uint8))
    assert torch.bincount(yf).tolist() == [2] * 5


def test_seeding_is_reproducible_and_private():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = make_shapes_3d(20, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is untouched
    b = make_shapes_3d(20, seed=7)
    c = make_shapes_3d(20, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def _bbox_fill(volume: torch.Tensor) -> float:
    """Fraction of its bounding box that a clean (noise-free) shape occupies."""
    idx = torch.nonzero(volume > 0)
    extent = (idx.max(0).values - idx.min(0).values + 1).prod()
    return float((volume > 0).sum() / extent)


def test_clean_shapes_are_inside_and_classes_differ_by_shape_not_size():
    x, y, names = make_shapes_3d(200, size=16, noise=0.0, seed=0)
    occupied = (x > 0).flatten(1)
    assert bool(occupied.any(1).all())  # every volume holds its shape
    lit = x[x > 0]
    assert float(lit.min()) >= 0.6 - 1e-6 and float(lit.max()) <= 1.0  # brightness in [0.6, 1]
    faces = torch.cat([x[:, 0, 0].flatten(1), x[:, 0, -1].flatten(1), x[:, 0, :, 0].flatten(1),
                       x[:, 0, :, -1].flatten(1), x[:, 0, :, :, 0].flatten(1), x[:, 0, :, :, -1].flatten(1)], 1)
    assert float((faces > 0).float().mean()) < 0.02  # shapes (almost) never touch the border
    fill = torch.tensor([_bbox_fill(v[0]) for v in x])
    mean_fill = {name: float(fill[y == k].mean()) for k, name in enumerate(names)}
    # cube 1 > cylinder ~pi/4 > sphere ~pi/6 > shell (hollow): a cheap 3D cue per class
    assert mean_fill["cube"] == pytest.approx(1.0)
    assert mean_fill["cube"] > mean_fill["cylinder"] + 0.1 > mean_fill["sphere"] + 0.2 > mean_fill["shell"] + 0.3
    # the volumes overlap: the voxel count alone is a weak cue
    size = occupied.sum(1).float()
    ranges = [(float(size[y == k].min()), float(size[y == k].max())) for k in range(len(names))]
    assert max(lo for lo, _ in ranges) < min(hi for _, hi in ranges)


def test_shell_is_hollow_and_noise_spreads_values():
    x, y, names = make_shapes_3d(40, size=16, classes=("shell",), noise=0.0, seed=2)
    assert names == ["shell"] and bool((y == 0).all())
    for v in x[:, 0]:
        idx = torch.nonzero(v > 0).double()
        centre = torch.round(idx.mean(0)).long()  # a shell's centre voxel is empty
        assert float(v[tuple(centre)]) == 0.0
    noisy, _, _ = make_shapes_3d(40, size=16, classes=("shell",), noise=0.2, seed=2)
    assert float((noisy - x).abs().mean()) > 0.05 and 0 < float(noisy.mean()) < 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be"), (dict(n=2.5), "n must be"), (dict(n=True), "n must be"),
    (dict(n=4, size=7), "size must be"), (dict(n=4, classes=("sphere", "pyramid")), "pyramid"),
    (dict(n=4, classes=()), "at least one"), (dict(n=4, classes="sphere"), "sequence"),
    (dict(n=4, classes=("cube", "cube")), "repeat"), (dict(n=4, noise=-0.1), "noise"),
    (dict(n=4, dtype=torch.int32), "dtype"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        make_shapes_3d(**kwargs)
    if match == "pyramid":
        assert all(name in str(err.value) for name in SHAPES_3D)  # the message lists what is allowed
