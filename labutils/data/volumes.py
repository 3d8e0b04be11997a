"""A synthetic volumetric classification task: noisy 3D shapes in a small cube of voxels (notebook 06's 3D path).

:func:`make_shapes_3d` draws ``n`` volumes ``(1, D, H, W)`` with ``D = H = W = size``, each holding
one solid shape of a random size, position (and, for the cylinder and the torus, axis) and
brightness, on a dark background, plus Gaussian noise, clipped to ``[0, 1]``.  It is generated in
a fraction of a second (no files, no download), so a notebook can make it on the fly.

**The classes** (:data:`SHAPES_3D`):

* ``"sphere"``: a solid ball;
* ``"cube"``: a solid axis-aligned cube;
* ``"cylinder"``: a solid circular cylinder along one of the three axes (chosen at random);
* ``"shell"``: a hollow sphere (a ball with a concentric empty ball removed), at least 1 voxel thick;
* ``"torus"``: a solid ring around one of the three axes.

**What tells them apart** is shape, not size: the size ranges are chosen so that the classes'
volumes overlap, so the number of bright voxels alone is a weak cue.  In 3D the cues are how much
of its bounding box a shape fills (cube 1, cylinder ~pi/4, sphere ~pi/6, shell less than the
sphere), flat faces and corners (cube), one long axis (cylinder), and an empty centre (shell,
torus).  **A single 2D slice is less informative**: a slice across a cylinder's axis is a disk,
as is every slice of a sphere, and a shell cut beyond its hollow (near a pole) is a filled disk
too, so sphere, cylinder and shell slices are often the same disk (cube slices stay squares, as
the cubes are axis-aligned).  A model that sees the whole volume (``Conv3d``) can use all of it.

Coordinates are voxel indices; a voxel belongs to a shape when its centre does.  Noise is
``N(0, noise^2)`` added to every voxel, background 0, shape brightness uniform in ``[0.6, 1]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["SHAPES_3D", "make_shapes_3d"]

#: Class names :func:`make_shapes_3d` can draw.
SHAPES_3D = ("sphere", "cube", "cylinder", "shell", "torus")
_DEFAULT = ("sphere", "cube", "cylinder", "shell")
_DTYPES = (torch.float32, torch.float64, torch.uint8)


def _u(g: torch.Generator, m: int, lo: float, hi: float) -> torch.Tensor:
    """``m`` uniform draws in ``[lo, hi)``, shaped ``(m, 1, 1, 1)`` to broadcast over a volume."""
    return (lo + (hi - lo) * torch.rand(m, generator=g, dtype=torch.float64)).view(m, 1, 1, 1)


def _place(g: torch.Generator, m: int, size: int, extent: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Random centres (z, y, x) such that a shape reaching ``extent`` voxels from its centre stays inside."""
    room = (size - 1 - 2 * extent).clamp(min=0)
    return tuple(extent + room * _u(g, m, 0.0, 1.0) for _ in range(3))


def _axis_parts(g: torch.Generator, m: int, dz, dy, dx) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample a random axis (z, y or x): the offset along it and the squared distance from it."""
    axis = torch.randint(0, 3, (m,), generator=g)
    along = torch.stack(torch.broadcast_tensors(dz, dy, dx))[axis, torch.arange(m)]
    return along, dz ** 2 + dy ** 2 + dx ** 2 - along ** 2


def _masks(name: str, g: torch.Generator, m: int, size: int) -> torch.Tensor:
    """Boolean ``(m, size, size, size)`` masks of ``m`` random shapes of one class."""
    s = float(size)
    grid = torch.arange(size, dtype=torch.float64)
    z, y, x = grid.view(1, -1, 1, 1), grid.view(1, 1, -1, 1), grid.view(1, 1, 1, -1)

    if name in ("sphere", "cube", "shell"):
        lo, hi = {"sphere": (0.22, 0.38), "cube": (0.18, 0.30), "shell": (0.28, 0.42)}[name]
        r = _u(g, m, lo, hi) * s
        cz, cy, cx = _place(g, m, size, r)
        dz, dy, dx = z - cz, y - cy, x - cx
        if name == "cube":
            return torch.maximum(torch.maximum(dz.abs(), dy.abs()), dx.abs()) <= r
        d2 = dz ** 2 + dy ** 2 + dx ** 2
        if name == "sphere":
            return d2 <= r ** 2
        inner = r - torch.maximum(torch.ones_like(r), r * _u(g, m, 0.3, 0.45))
        return (d2 <= r ** 2) & (d2 > inner ** 2)
    if name == "cylinder":
        radius = torch.clamp(_u(g, m, 0.12, 0.22) * s, min=1.0)
        half = _u(g, m, 0.28, 0.42) * s
        cz, cy, cx = _place(g, m, size, torch.maximum(radius, half))
        along, radial2 = _axis_parts(g, m, z - cz, y - cy, x - cx)
        return (along.abs() <= half) & (radial2 <= radius ** 2)
    # torus: a ring of tube radius `tube` at distance `ring` from the axis through its centre
    tube = torch.clamp(_u(g, m, 0.08, 0.13) * s, min=1.0)
    ring = _u(g, m, 0.22, 0.30) * s
    cz, cy, cx = _place(g, m, size, ring + tube)
    along, radial2 = _axis_parts(g, m, z - cz, y - cy, x - cx)
    return (radial2.clamp(min=0).sqrt() - ring) ** 2 + along ** 2 <= tube ** 2


def _check(n, size, classes, noise, dtype) -> tuple[int, int, tuple[str, ...], float]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 (the number of volumes), got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be a whole number >= 8 (voxels per side; 16 is the usual choice), got {size!r}.")
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of names from {SHAPES_3D}, got the string {classes!r}.")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPES_3D]
    if unknown or not classes:
        raise ValueError(f"classes must be names from {SHAPES_3D} (at least one), got {list(classes)}"
                         + (f"; unknown: {unknown}." if unknown else "."))
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a name, got {list(classes)}.")
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a standard deviation >= 0 (on the [0, 1] scale), got {noise}.")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}.")
    return n, size, classes, noise


def make_shapes_3d(n: int, size: int = 16, classes: Sequence[str] = _DEFAULT, *, noise: float = 0.1, seed: int = 0,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Synthetic 3D shapes to classify: ``n`` noisy volumes, balanced over ``classes``.

    Args:
        n: number of volumes, ``>= 1``.
        size: voxels per side ``D = H = W``, ``>= 8`` (16: 4096 voxels per volume).
        classes: shape names from :data:`SHAPES_3D`; label ``k`` is ``classes[k]`` (default: sphere,
            cube, cylinder, shell).
        noise: standard deviation of the Gaussian noise added to every voxel, on the ``[0, 1]`` scale
            (0: clean volumes; the result is clipped to ``[0, 1]`` either way).
        seed: seeds a private ``torch.Generator``: the same arguments give the same data; the global
            random state is neither used nor changed.
        dtype: ``torch.float32`` (default) or ``torch.float64``, values in ``[0, 1]``; or
            ``torch.uint8``, values ``round(255 x)`` in ``0..255`` (the course's storage format).

    Returns:
        ``(x, y, class_names)``: ``x`` of shape ``(n, 1, size, size, size)`` (N, C, D, H, W) in
        ``[0, 1]`` (or uint8), ``y`` int64 ``(n,)`` labels in ``0..K-1``, each class appearing
        ``n // K`` or ``n // K + 1`` times in a random order, and ``class_names`` the list of ``K`` names.

    Raises:
        ValueError: ``n < 1``, ``size < 8``, an unknown or repeated class name (the message lists
            :data:`SHAPES_3D`), negative noise or an unsupported dtype.
    """
    n, size, classes, noise = _check(n, size, classes, noise, dtype)
    g = torch.Generator().manual_seed(int(seed))
    k = len(classes)
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    x = torch.zeros(n, size, size, size, dtype=torch.float32)
    for label, name in enumerate(classes):  # a loop over classes; every class is drawn in one batch
        idx = torch.nonzero(y == label).flatten()
        if idx.numel():
            brightness = _u(g, idx.numel(), 0.6, 1.0).float()
            x[idx] = _masks(name, g, idx.numel(), size).float() * brightness
    if noise > 0:
        x += noise * torch.randn(x.shape, generator=g)
    x = x.clamp_(0.0, 1.0).unsqueeze(1)
    if dtype == torch.uint8:
        x = (x * 255).round_().to(torch.uint8)
    else:
        x = x.to(dtype)
    return x, y.to(torch.int64), list(classes)
