"""A procedural RGB dataset of simple shapes, where every feature a network learns can be explained.

``make_shapes(n, image_size=32, seed=0)`` draws ``n`` images, the classes in equal numbers:

==========  ====================================================================================
circle      a filled disk of radius ``r``
square      a filled square of half-side ``0.8 r``, rotated by any angle
triangle    a filled equilateral triangle of circumradius ``1.1 r``, rotated by any angle
cross       a plus sign: two bars of half-length ``r`` and half-width ``0.28 r``, rotated by any angle
ring        an annulus between radii ``0.55 r`` and ``r``
stripes     a disk of radius ``r`` filled with three periods of a grating, at any orientation
==========  ====================================================================================

Each image has a random background colour with a gentle linear gradient, a random foreground colour whose
luminance differs from the background's by at least 0.3, a random size ``r`` in ``[0.2, 0.34] * image_size``,
a random position (the whole shape stays inside the frame; the margin does not depend on the class, so
position says nothing about the class), and Gaussian pixel noise (sigma 0.03). There is no diamond class,
so a rotated square is never ambiguous. Shapes are drawn at twice the resolution and averaged down
(anti-aliased edges). Everything is vectorised with NumPy and seeded: the same arguments give the same
arrays.
"""
from __future__ import annotations

import numpy as np

from ._common import check_size

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "stripes")

_R_RANGE = (0.2, 0.34)   # radius r as a fraction of image_size
_MARGIN = 1.15           # the shape fits in a disk of radius 1.15 r (square corners 1.13 r, triangle 1.1 r)
_SUPERSAMPLE = 2
_CHUNK = 512             # images rendered at once, to bound memory


def _mask(kind: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape class in its own rotated frame.

    u, v : ``(n, S, S)`` pixel coordinates relative to the shape centre, rotated by the shape's angle.
    r : ``(n, 1, 1)`` radius in pixels.
    """
    if kind == "circle":
        return u * u + v * v <= r * r
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    if kind == "triangle":
        inradius = 0.55 * r  # half of the circumradius 1.1 r
        inside = np.ones(u.shape, dtype=bool)
        for phi in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):  # outward normals of the three edges
            inside &= u * np.cos(phi) + v * np.sin(phi) <= inradius
        return inside
    if kind == "cross":
        au, av = np.abs(u), np.abs(v)
        half_w = 0.28 * r
        return ((au <= r) & (av <= half_w)) | ((av <= r) & (au <= half_w))
    if kind == "ring":
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if kind == "stripes":
        period = 2 * r / 3
        return (u * u + v * v <= r * r) & (np.cos(2 * np.pi * u / period) > 0)
    raise ValueError(f"make_shapes: unknown shape class {kind!r}; choose from {SHAPE_CLASSES}")


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _colours(rng: np.random.Generator, n: int, min_contrast: float = 0.3):
    """Background and foreground colours ``(n, 3)`` whose luminances differ by at least ``min_contrast``."""
    bg = rng.random((n, 3))
    fg = rng.random((n, 3))
    bad = np.abs(_luminance(fg) - _luminance(bg)) < min_contrast
    while bad.any():  # redraw only the failures; about half pass each round
        fg[bad] = rng.random((int(bad.sum()), 3))
        bad = np.abs(_luminance(fg) - _luminance(bg)) < min_contrast
    return bg, fg


def make_shapes(n: int, image_size: int = 32, seed: int = 0, classes=None):
    """Draw ``n`` shape images.

    n : number of images (classes in equal numbers, in a seeded random order).
    image_size : ``H = W`` in pixels, at least 12.
    seed : the same seed gives identical arrays.
    classes : None for all of :data:`SHAPE_CLASSES`, or a sequence of names from it (label ``k`` is
        ``classes[k]``).

    Returns ``(x, y, class_names)``: x float32 ``(n, 3, H, W)`` in [0, 1], C-contiguous; y int64 ``(n,)``;
    class_names a list of str.
    """
    n = check_size("make_shapes", "n", n)
    size = check_size("make_shapes", "image_size", image_size, minimum=12)
    if classes is None:
        classes = list(SHAPE_CLASSES)
    else:
        if isinstance(classes, str):
            raise TypeError("make_shapes: classes must be a sequence of names, not one string")
        classes = list(classes)
        unknown = [c for c in classes if c not in SHAPE_CLASSES]
        if unknown or not classes or len(set(classes)) != len(classes):
            raise ValueError(f"make_shapes: classes must be distinct names from {SHAPE_CLASSES}, got {classes}")
    k = len(classes)
    rng = np.random.default_rng(seed)

    y = rng.permutation(np.arange(n) % k).astype(np.int64)
    r = rng.uniform(*_R_RANGE, size=n) * size
    margin = _MARGIN * r + 1.0
    cy = margin + rng.random(n) * (size - 2 * margin)
    cx = margin + rng.random(n) * (size - 2 * margin)
    theta = rng.uniform(0, 2 * np.pi, size=n)
    bg, fg = _colours(rng, n)
    grad_dir = rng.uniform(0, 2 * np.pi, size=n)
    grad_amp = rng.uniform(0, 0.15, size=n)
    noise = rng.standard_normal((n, 3, size, size), dtype=np.float32) * np.float32(0.03)

    s = _SUPERSAMPLE
    fine = (np.arange(size * s, dtype=np.float32) + 0.5) / s      # supersampled pixel centres
    coarse = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5  # [-0.5, 0.5] for the gradient
    x = np.empty((n, 3, size, size), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        m = sl.stop - sl.start
        dy = fine[None, :, None] - cy[sl, None, None].astype(np.float32)
        dx = fine[None, None, :] - cx[sl, None, None].astype(np.float32)
        c, sn = np.cos(theta[sl]).astype(np.float32)[:, None, None], np.sin(theta[sl]).astype(np.float32)[:, None, None]
        u = c * dx + sn * dy
        v = -sn * dx + c * dy
        rr = r[sl, None, None].astype(np.float32)
        mask = np.zeros((m, size * s, size * s), dtype=np.float32)
        for label, kind in enumerate(classes):
            sel = np.flatnonzero(y[sl] == label)
            if sel.size:
                mask[sel] = _mask(kind, u[sel], v[sel], rr[sel])
        cover = mask.reshape(m, size, s, size, s).mean(axis=(2, 4))[:, None]  # (m, 1, H, W) coverage in [0, 1]
        ramp = (np.cos(grad_dir[sl])[:, None, None] * coarse[None, None, :]
                + np.sin(grad_dir[sl])[:, None, None] * coarse[None, :, None]) * grad_amp[sl, None, None]
        back = bg[sl, :, None, None] + ramp[:, None].astype(np.float32)
        img = back + cover * (fg[sl, :, None, None] - back) + noise[sl]
        x[sl] = np.clip(img, 0.0, 1.0)
    return np.ascontiguousarray(x), y, list(classes)
