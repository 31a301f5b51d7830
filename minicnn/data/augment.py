"""Augmentation: random crops, random horizontal flips, and ZF's ten-crop test-time averaging.

Notation: a batch ``x`` is ``(N, C, H, W)``; ``rng`` a ``numpy.random.Generator``. Every function returns a
new array and never writes into ``x``. They work on NumPy and CuPy arrays alike (the random draws are made
on the CPU with ``rng``, so a seed gives the same result on either).

Zeiler & Fergus (2014, section 3) train on random 224x224 crops of 256x256 images with random horizontal
flips, and at test time average the softmax over the 4 corner crops and the centre crop and their flips.
For small images we crop after zero padding (pad by ``p``, crop back to ``H x W``), which keeps the size.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ._common import check_size
from .batching import as_generator


def _check_batch(func: str, x):
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{func}: expected a batch (N, C, H, W), got shape {getattr(x, 'shape', None)}")


def random_crop(x, pad: int, rng=None):
    """Zero-pad every image by ``pad`` pixels on each side, then crop ``H x W`` at a random offset.

    x : ``(N, C, H, W)``. pad : int >= 0. Offsets ``(oy, ox)`` are drawn per image uniformly in
    ``0..2*pad``; ``(pad, pad)`` gives the image back unchanged. Returns ``(N, C, H, W)``, a new array.
    """
    _check_batch("random_crop", x)
    pad = check_size("random_crop", "pad", pad, minimum=0)
    rng = as_generator(rng, "random_crop")
    xp = backend.xp(x)
    n, c, h, w = x.shape
    oy = rng.integers(0, 2 * pad + 1, size=n)
    ox = rng.integers(0, 2 * pad + 1, size=n)
    if pad == 0:
        return x.copy()
    padded = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = xp.empty_like(x)
    for i in range(n):  # N slices: cheap, and clearer than a gather
        out[i] = padded[i, :, oy[i]:oy[i] + h, ox[i]:ox[i] + w]
    return out


def random_hflip(x, rng=None, p: float = 0.5):
    """Flip each image left-right with probability ``p`` (one draw per image). Returns ``(N, C, H, W)``.

    With the same ``rng`` state, applying it twice gives ``x`` back (a flip is its own inverse).
    """
    _check_batch("random_hflip", x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_hflip: p must be in [0, 1], got {p}")
    rng = as_generator(rng, "random_hflip")
    xp = backend.xp(x)
    flip = rng.random(x.shape[0]) < p
    out = x.copy()
    if flip.any():
        idx = xp.asarray(np.flatnonzero(flip))
        out[idx] = x[idx][..., ::-1]
    return out


def colour_jitter(x, strength: float, rng=None):
    """Random per-image colour changes: each channel ``c`` of image ``n`` becomes ``x * g + o`` with a gain
    ``g = 1 + strength * u`` and an offset ``o = strength / 2 * v``, ``u, v`` uniform in [-1, 1] per image and
    channel. On mean-subtracted images that changes contrast, brightness and colour balance together.

    x : ``(N, C, H, W)``; strength : in [0, 1) (0: unchanged copy). Returns a new array.
    """
    _check_batch("colour_jitter", x)
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"colour_jitter: strength must be in [0, 1), got {strength}")
    rng = as_generator(rng, "colour_jitter")
    xp = backend.xp(x)
    n, c = x.shape[:2]
    gain = 1.0 + strength * rng.uniform(-1.0, 1.0, size=(n, c, 1, 1))
    offset = 0.5 * strength * rng.uniform(-1.0, 1.0, size=(n, c, 1, 1))
    return (x * xp.asarray(gain, dtype=x.dtype) + xp.asarray(offset, dtype=x.dtype)).astype(x.dtype, copy=False)


def hflip(x):
    """Every image flipped left-right (``x[..., ::-1]``), as a new C-contiguous array."""
    return backend.xp(x).ascontiguousarray(x[..., ::-1])


def ten_crop(x, size: int):
    """ZF test-time crops: ``(N, C, H, W)`` -> ``(10, N, C, size, size)``.

    Order: top-left, top-right, bottom-left, bottom-right, centre, then the same five flipped left-right.
    The centre crop starts at ``((H - size) // 2, (W - size) // 2)``. Average a network's softmax over the
    first axis to get the ten-crop prediction.
    """
    _check_batch("ten_crop", x)
    size = check_size("ten_crop", "size", size)
    n, c, h, w = x.shape
    if size > h or size > w:
        raise ValueError(f"ten_crop: crop size {size} is larger than the images ({h}x{w})")
    xp = backend.xp(x)
    cy, cx = (h - size) // 2, (w - size) // 2
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (cy, cx)]
    crops = [x[:, :, r:r + size, q:q + size] for r, q in corners]
    crops += [cr[..., ::-1] for cr in crops]
    return xp.ascontiguousarray(xp.stack(crops))


class Augment:
    """Training-time augmentation as a callable ``(xb, rng) -> xb`` for :func:`iterate_batches`.

    crop_pad : None or 0 for no cropping, else pad by this many pixels and crop back (:func:`random_crop`).
    hflip : flip half the images left-right (:func:`random_hflip`); leave it off for digits.
    colour : strength of :func:`colour_jitter` (0: off; 0.2 is a mild setting for colour photographs).
    Crop first, then flip, then colour. ``Augment.for_splits(splits, crop_pad=2)`` turns flips on only when
    ``splits.hflip`` says they keep labels.
    """

    def __init__(self, crop_pad: int | None = None, hflip: bool = False, colour: float = 0.0):
        if crop_pad is not None:
            crop_pad = check_size("Augment", "crop_pad", crop_pad, minimum=0)
        if not 0.0 <= float(colour) < 1.0:
            raise ValueError(f"Augment: colour must be in [0, 1), got {colour}")
        self.crop_pad = crop_pad or None
        self.hflip = bool(hflip)
        self.colour = float(colour)

    @classmethod
    def for_splits(cls, splits, crop_pad: int | None = None) -> "Augment":
        """An Augment for a :class:`Splits`: flips only where they keep labels."""
        return cls(crop_pad=crop_pad, hflip=splits.hflip)

    def __call__(self, xb, rng=None):
        rng = as_generator(rng, "Augment")
        if self.crop_pad:
            xb = random_crop(xb, self.crop_pad, rng)
        if self.hflip:
            xb = random_hflip(xb, rng)
        if self.colour:             # no draws when off: runs without it keep their random streams
            xb = colour_jitter(xb, self.colour, rng)
        return xb

    def __repr__(self) -> str:
        colour = f", colour={self.colour}" if self.colour else ""
        return f"Augment(crop_pad={self.crop_pad}, hflip={self.hflip}{colour})"
