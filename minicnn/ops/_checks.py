"""Argument checks shared by the ops: every message names the layer, the expected and the actual value.

Every path runs these before it computes (the readable NumPy ops, the fast CPU path of ``minicnn.fast_cpu`` with
its C loops, the CUDA kernels), so that every path accepts and rejects exactly the same input, and nothing that
reaches C or a kernel can read or write outside its arrays.
"""
from __future__ import annotations

import numpy as np

from .. import backend

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def pair(value, what: str, name: str) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of non-negative ints (not floats, which would be truncated, nor bools)."""
    if _is_int(value):
        h = w = int(value)
    else:
        try:
            items = tuple(value) if not isinstance(value, (str, bytes)) else ()
        except TypeError:
            items = ()
        if len(items) != 2 or not all(_is_int(v) for v in items):
            raise TypeError(f"{name}: {what} must be an int or an (h, w) pair of ints, got {value!r}")
        h, w = (int(v) for v in items)
    if h < 0 or w < 0:
        raise ValueError(f"{name}: {what} must be >= 0, got {(h, w)}")
    return h, w


def check_real(value, name: str, what: str):
    """A finite real number (a NaN or inf hyper-parameter would turn every output into NaN or 0 silently)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{name}: {what} must be a finite number, got {value!r}")


def check_array(x, name: str, what: str = "input"):
    """A NumPy or CuPy array of float32 or float64 (the dtypes every path supports), of any rank."""
    xp = backend.xp(x)
    if xp is None or not isinstance(x, xp.ndarray):
        raise TypeError(f"{name}: {what} must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: {what} must be float32 or float64, got dtype {x.dtype}")


def check_float_array(x, rank: int, name: str, what: str = "input", layout: str = "(N, C, H, W)"):
    """Reject non-arrays, dtypes other than float32/float64 and the wrong rank before any arithmetic can
    broadcast silently."""
    check_array(x, name, what)
    if x.ndim != rank:
        raise ValueError(f"{name}: {what} must have rank {rank} {layout}, got shape {tuple(x.shape)}")


def check_shape(x, shape, name: str, what: str = "upstream gradient", of: str = "the output shape"):
    """x has exactly ``shape`` (the message says what that shape is: ``of``)."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: {what} must have {of} {tuple(shape)}, got {tuple(x.shape)}")


def check_same_device(a, b, name: str, what: str):
    """``b`` lives where ``a`` does (both NumPy, or both CuPy): a kernel cannot read a host array, nor C a device one."""
    if backend.is_gpu_array(a) != backend.is_gpu_array(b):
        where = "GPU (CuPy)" if backend.is_gpu_array(a) else "CPU (NumPy)"
        raise TypeError(f"{name}: {what} must be on the {where} like the upstream gradient, got {type(b).__module__}.{type(b).__name__}")


def check_shape_tuple(shape, rank: int, name: str, what: str):
    """A cached shape: ``rank`` non-negative ints."""
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: {what} must be a tuple of {rank} ints, got {shape!r}") from None
    if len(dims) != rank or any(d < 0 for d in dims):
        raise ValueError(f"{name}: {what} must be {rank} non-negative ints, got {shape!r}")
    return dims


def conv_output_size(size: int, k: int, s: int, p: int, name: str, axis: str, ceil_mode: bool = False) -> int:
    """Output length along one axis: ``(size + 2p - k) // s + 1`` (or rounded up in ceil mode).

    In ceil mode (Caffe/PyTorch), a last window that would start inside the right padding is dropped.
    """
    if s <= 0:
        raise ValueError(f"{name}: stride along {axis} must be >= 1, got {s}")
    if k <= 0:
        raise ValueError(f"{name}: kernel along {axis} must be >= 1, got {k}")
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
