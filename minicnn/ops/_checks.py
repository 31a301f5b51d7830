"""Argument checks shared by the ops: every message names the layer, the expected and the actual value."""
from __future__ import annotations

import numpy as np

from .. import backend


def pair(value, what: str, name: str) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of non-negative ints."""
    if isinstance(value, (int, np.integer)):
        h = w = int(value)
    else:
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: {what} must be an int or an (h, w) pair of ints, got {value!r}") from None
    if h < 0 or w < 0:
        raise ValueError(f"{name}: {what} must be >= 0, got {(h, w)}")
    return h, w


def check_float_array(x, rank: int, name: str, what: str = "input", layout: str = "(N, C, H, W)"):
    """Reject non-arrays, integer dtypes and the wrong rank before any arithmetic can broadcast silently."""
    xp = backend.xp(x)
    if not isinstance(x, xp.ndarray):
        raise TypeError(f"{name}: {what} must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: {what} must be float32 or float64, got dtype {x.dtype}")
    if x.ndim != rank:
        raise ValueError(f"{name}: {what} must have rank {rank} {layout}, got shape {tuple(x.shape)}")


def conv_output_size(size: int, k: int, s: int, p: int, name: str, axis: str, ceil_mode: bool = False) -> int:
    """Output length along one axis: ``(size + 2p - k) // s + 1`` (or rounded up in ceil mode).

    In ceil mode (Caffe/PyTorch), a last window that would start inside the right padding is dropped.
    """
    if s <= 0:
        raise ValueError(f"{name}: stride along {axis} must be >= 1, got {s}")
    span = size + 2 * p - k
    if span < 0:
        raise ValueError(
            f"{name}: kernel {k} along {axis} is larger than the padded input {size} + 2*{p} = {size + 2 * p}; "
            f"the output would be empty")
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
    else:
        out = span // s + 1
    return out
