"""Small helpers shared by the dataset builders: optional imports, image conversion, resizing.

Notation: ``N`` images, ``C`` channels, ``H x W`` pixels; image batches are NCHW float32 in [0, 1].
"""
from __future__ import annotations

import importlib

import numpy as np

INSTALL_HINT = 'pip install "minicnn[data]"'


def require(module: str, package: str, needed_by: str):
    """Import an optional dependency, or raise an ImportError that says how to install it.

    ``module`` is the import name (``"sklearn"``), ``package`` the name on PyPI (``"scikit-learn"``),
    ``needed_by`` what asked for it (``'load_dataset("digits")'``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also raised when sys.modules[module] is None
        raise ImportError(f"{needed_by} needs {package}, which is not installed; install the data extra with: "
                          f"{INSTALL_HINT}") from exc


def check_size(func: str, name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``, or raise a ValueError/TypeError naming ``func`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{func}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {value}")
    return int(value)


def to_unit_float(images, scale: float) -> np.ndarray:
    """Any numeric array divided by ``scale``, clipped to [0, 1], as C-contiguous float32."""
    out = np.asarray(images, dtype=np.float32) / np.float32(scale)
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def resize_images(x: np.ndarray, size) -> np.ndarray:
    """Resize a batch ``(N, C, H, W)`` to ``(N, C, size, size)`` (or ``(N, C, h, w)`` for ``size=(h, w)``).

    Bilinear interpolation (``scipy.ndimage.zoom``, order 1). When shrinking, each image is first blurred
    with a Gaussian of sigma ``(1/zoom - 1)/2`` so that fine detail does not alias into the smaller image.
    Returns float32 in [0, 1], C-contiguous.
    """
    from scipy import ndimage

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"resize_images: expected (N, C, H, W), got shape {x.shape}")
    if isinstance(size, (tuple, list)):
        h_out, w_out = (check_size("resize_images", "size", s) for s in size)
    else:
        h_out = w_out = check_size("resize_images", "size", size)
    n, c, h, w = x.shape
    if (h, w) == (h_out, w_out):
        return np.ascontiguousarray(x)
    zy, zx = h_out / h, w_out / w
    if zy < 1 or zx < 1:
        sigma = (0, 0, max(0.0, (1 / zy - 1) / 2), max(0.0, (1 / zx - 1) / 2))
        x = ndimage.gaussian_filter(x, sigma=sigma, mode="nearest")
    out = ndimage.zoom(x, (1, 1, zy, zx), order=1, mode="nearest", grid_mode=True)
    if out.shape != (n, c, h_out, w_out):  # zoom rounds the output size; never off by more than one pixel
        out = np.pad(out, ((0, 0), (0, 0), (0, max(0, h_out - out.shape[2])), (0, max(0, w_out - out.shape[3]))),
                     mode="edge")[:, :, :h_out, :w_out]
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def to_nchw(image: np.ndarray, channels: int) -> np.ndarray:
    """One image ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` -> ``(channels, H, W)``.

    Grey images are replicated to 3 channels when ``channels == 3``; an alpha channel is dropped; colour
    to 1 channel uses the ITU-R 601 luma weights.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"to_nchw: expected an image (H, W) or (H, W, 1|3|4), got shape {image.shape}")
    image = image[:, :, :3]
    if channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 1 and image.shape[2] == 3:
        image = (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    return np.ascontiguousarray(np.transpose(image, (2, 0, 1)))
