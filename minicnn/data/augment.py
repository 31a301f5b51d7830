"""Augmentation: random crops, random horizontal flips, rotation, zoom, and ZF's ten-crop test-time averaging.

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


# --- rotation and scale -------------------------------------------------------------------------------------
#
# Both are one resampling: output pixel p = (row, col) takes the input at the point q that the transform maps
# onto p. With the image centre c = ((H - 1) / 2, (W - 1) / 2), d = p - c, an angle t (counter-clockwise as the
# image is shown, rows going down) and a zoom factor s (> 1 magnifies):
#
#     q_col = c_col + ( cos t * d_col - sin t * d_row) / s
#     q_row = c_row + ( sin t * d_col + cos t * d_row) / s
#
# q is rarely on the pixel grid, so the value is interpolated bilinearly from the four pixels around it: a
# weighted mean, so the output never leaves the range of the input (and the fill value). Points outside the image
# read ``fill``: 0 by default (what random_crop pads with; the mean pixel on mean-subtracted data), or "edge"
# (the nearest border pixel).

def _check_float_batch(func: str, x):
    _check_batch(func, x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{func}: images must be float32 or float64, got dtype {x.dtype}")


def _check_fill(func: str, fill):
    if isinstance(fill, str):
        if fill != "edge":
            raise ValueError(f"{func}: fill must be a number or 'edge', got {fill!r}")
        return fill
    if isinstance(fill, bool) or not isinstance(fill, (int, float, np.integer, np.floating)) or not np.isfinite(fill):
        raise ValueError(f"{func}: fill must be a finite number or 'edge', got {fill!r}")
    return float(fill)


def _per_image(func: str, what: str, value, n: int) -> np.ndarray:
    """A scalar or an (N,) sequence of finite numbers -> float64 array (N,)."""
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, (str, bytes)) else np.array([np.nan])
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise ValueError(f"{func}: {what} must be one finite number or {n} of them (one per image), got {value!r}")
    return arr


def _rotate_scale(x, degrees: np.ndarray, scale: np.ndarray, fill):
    """Resample each image n of ``x`` (N, C, H, W), rotated by degrees[n] and zoomed by scale[n] (see above)."""
    xp = backend.xp(x)
    n, c, h, w = x.shape
    t = np.deg2rad(degrees)[:, None, None]
    cos, sin, s = np.cos(t), np.sin(t), scale[:, None, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    d_row, d_col = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")     # (H, W) each
    q_col = cx + (cos * d_col - sin * d_row) / s                                         # (N, H, W)
    q_row = cy + (sin * d_col + cos * d_row) / s
    r0, c0 = np.floor(q_row), np.floor(q_col)
    fr, fc = q_row - r0, q_col - c0                                   # fractional parts: the bilinear weights
    image = xp.asarray(np.arange(n)[:, None, None])
    out = xp.zeros((n, h, w, c), dtype=np.float64)
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rows, cols = (r0 + dr).astype(np.int64), (c0 + dc).astype(np.int64)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        rows_c, cols_c = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
        values = x[image, :, xp.asarray(rows_c), xp.asarray(cols_c)].astype(np.float64)   # (N, H, W, C)
        if fill != "edge":
            values = xp.where(xp.asarray(inside)[..., None], values, fill)
        used = weight > 0          # a neighbour with weight 0 is not read: a NaN or inf there must not leak in
        out += xp.where(xp.asarray(used)[..., None], values * xp.asarray(weight)[..., None], 0.0)
    return xp.ascontiguousarray(out.transpose(0, 3, 1, 2)).astype(x.dtype)


def rotate(x, degrees, fill=0.0):
    """Rotate each image by ``degrees`` counter-clockwise (as displayed) about its centre, with bilinear sampling.

    x : ``(N, C, H, W)`` float32/float64. degrees : one number, or ``(N,)`` (one per image).
    fill : value for points that come from outside the image, or "edge". Returns a new ``(N, C, H, W)`` array of
    x's dtype. ``rotate(x, 0)`` is an exact copy; ``rotate(x, 90)`` of a square image is ``np.rot90`` on (H, W).
    """
    _check_float_batch("rotate", x)
    n = x.shape[0]
    return _rotate_scale(x, _per_image("rotate", "degrees", degrees, n), np.ones(n), _check_fill("rotate", fill))


def zoom(x, scale, fill=0.0):
    """Scale each image about its centre by ``scale`` (> 1 zooms in and crops; < 1 zooms out, padding with
    ``fill``), keeping the size ``H x W``. Bilinear sampling; ``zoom(x, 1)`` is an exact copy.

    x : ``(N, C, H, W)`` float32/float64. scale : one number > 0, or ``(N,)``. Returns a new array of x's dtype.
    """
    _check_float_batch("zoom", x)
    n = x.shape[0]
    scale = _per_image("zoom", "scale", scale, n)
    if (scale <= 0).any():
        raise ValueError(f"zoom: scale must be > 0, got {scale.min()}")
    return _rotate_scale(x, np.zeros(n), scale, _check_fill("zoom", fill))


def random_rotate(x, max_degrees: float, rng=None, fill=0.0):
    """Rotate each image by an angle drawn uniformly in ``[-max_degrees, max_degrees]`` (one draw per image).

    max_degrees : in [0, 180]; 0 gives copies (the draws are still made, so the stream of ``rng`` does not
    depend on it). See :func:`rotate` for the convention and ``fill``.
    """
    _check_float_batch("random_rotate", x)
    if isinstance(max_degrees, bool) or not isinstance(max_degrees, (int, float, np.integer, np.floating)) \
            or not 0 <= max_degrees <= 180:
        raise ValueError(f"random_rotate: max_degrees must be a number in [0, 180], got {max_degrees!r}")
    rng = as_generator(rng, "random_rotate")
    degrees = rng.uniform(-max_degrees, max_degrees, size=x.shape[0])
    return _rotate_scale(x, degrees, np.ones(x.shape[0]), _check_fill("random_rotate", fill))


def random_zoom(x, scale_range=(0.9, 1.1), rng=None, fill=0.0):
    """Zoom each image by a factor drawn uniformly in ``scale_range = (low, high)``, ``0 < low <= high``.

    ``(1, 1)`` gives copies. See :func:`zoom`.
    """
    _check_float_batch("random_zoom", x)
    try:
        low, high = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise ValueError(f"random_zoom: scale_range must be a pair (low, high), got {scale_range!r}") from None
    if not (0 < low <= high < np.inf):
        raise ValueError(f"random_zoom: scale_range must satisfy 0 < low <= high (finite), got {scale_range!r}")
    rng = as_generator(rng, "random_zoom")
    scale = rng.uniform(low, high, size=x.shape[0])
    return _rotate_scale(x, np.zeros(x.shape[0]), scale, _check_fill("random_zoom", fill))


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


def _check_degrees(func: str, what: str, value) -> float:
    """A maximum rotation in degrees: a finite number in [0, 180]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value <= 180:
        raise ValueError(f"{func}: {what} must be a number of degrees in [0, 180], got {value!r}")
    return float(value)


def _check_zoom_fraction(func: str, what: str, value) -> float:
    """A zoom range as a fraction: scales are drawn in [1 - value, 1 + value], so value is in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < 1:
        raise ValueError(f"{func}: {what} must be a fraction in [0, 1) (scales drawn in [1 - {what}, 1 + {what}]), "
                         f"got {value!r}")
    return float(value)


class Augment:
    """Training-time augmentation as a callable ``(xb, rng) -> xb`` for :func:`iterate_batches`.

    crop_pad : None or 0 for no cropping, else pad by this many pixels and crop back (:func:`random_crop`).
    hflip : flip half the images left-right (:func:`random_hflip`); leave it off for digits.
    rotate : the largest rotation in degrees, in [0, 180]; each image turns by an angle drawn uniformly in
        ``[-rotate, rotate]`` (0: off).
    zoom : a fraction in [0, 1); each image is scaled about its centre by a factor drawn uniformly in
        ``[1 - zoom, 1 + zoom]`` (0: off). Rotation and zoom are one bilinear resampling (:func:`rotate`,
        :func:`zoom`); points from outside the image are 0, the mean pixel on mean-subtracted data.
    colour : strength of :func:`colour_jitter` (0: off; 0.2 is a mild setting for colour photographs).

    Crop first, then flip, then rotate and zoom, then colour. Whatever is off draws nothing from ``rng``, so adding
    an option that stays off changes no run. ``Augment.for_splits(splits, crop_pad=2)`` turns flips on only when
    ``splits.hflip`` says they keep labels. Only the training batches are augmented (``Trainer`` hands it to
    :func:`iterate_batches` for the training set alone); evaluation sees the images as they are.
    """

    def __init__(self, crop_pad: int | None = None, hflip: bool = False, colour: float = 0.0, rotate: float = 0.0,
                 zoom: float = 0.0):
        if crop_pad is not None:
            crop_pad = check_size("Augment", "crop_pad", crop_pad, minimum=0)
        if not 0.0 <= float(colour) < 1.0:
            raise ValueError(f"Augment: colour must be in [0, 1), got {colour}")
        self.crop_pad = crop_pad or None
        self.hflip = bool(hflip)
        self.colour = float(colour)
        self.rotate = _check_degrees("Augment", "rotate", rotate)
        self.zoom = _check_zoom_fraction("Augment", "zoom", zoom)

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
        if self.rotate or self.zoom:
            _check_float_batch("Augment", xb)
            n = xb.shape[0]
            degrees = rng.uniform(-self.rotate, self.rotate, size=n) if self.rotate else np.zeros(n)
            scale = rng.uniform(1 - self.zoom, 1 + self.zoom, size=n) if self.zoom else np.ones(n)
            xb = _rotate_scale(xb, degrees, scale, 0.0)      # both in one resampling: one interpolation, not two
        if self.colour:             # no draws when off: runs without it keep their random streams
            xb = colour_jitter(xb, self.colour, rng)
        return xb

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value}" for name, value in
                        (("rotate", self.rotate), ("zoom", self.zoom), ("colour", self.colour)) if value)
        return f"Augment(crop_pad={self.crop_pad}, hflip={self.hflip}{extra})"
