"""Max pooling with switches, unpooling, and average pooling.

Notation as in ``ops/conv.py``: x (N, C, H, W) -> y (N, C, oh, ow), window kh x kw, stride sy, sx, padding ph, pw.

Max pooling records, for every output cell, which position of its window won: the **switches**, int32, local
to the window (``ky * kw + kx``); on ties the first maximum in row-major window order wins. NaN propagates (as
in PyTorch): a window that holds a NaN outputs NaN, and its switch points at the first NaN in row-major order,
so a diverged activation is never hidden by its neighbours. Unpooling puts each
value back at its switch; where windows overlap (3x3 stride 2) contributions add. Max-pool backward and
Zeiler-Fergus unpooling are the same function, ``max_pool2d_backward``.

Padding is -inf for max pooling (a padded cell never wins). In ceil mode the output size rounds up
(Caffe/PyTorch), dropping a last window that would start inside the right padding; the extra cells a last
window reaches past the padded input are -inf too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from . import _gpu
from ._checks import (check_float_array, check_same_device, check_shape, check_shape_tuple, conv_output_size,
                      pair)
from .dispatch import fast_cpu_alternative

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "unpool2d", "avg_pool2d_forward", "avg_pool2d_backward",
           "pool_output_shape", "PoolCache"]


@dataclass
class PoolCache:
    """Geometry of a pooling forward pass; ``switches`` (N, C, oh, ow) int32 for max pooling, None for average."""
    x_shape: tuple
    kernel: tuple
    stride: tuple
    pad: tuple
    out_shape: tuple
    switches: object = None


def pool_geometry(x, kernel, stride, pad, ceil_mode, name):
    check_float_array(x, 4, name)
    kh, kw = pair(kernel, "kernel", name)
    if kh < 1 or kw < 1:
        raise ValueError(f"{name}: kernel must be >= 1, got {(kh, kw)}")
    sy, sx = (kh, kw) if stride is None else pair(stride, "stride", name)
    ph, pw = pair(pad, "pad", name)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{name}: padding {(ph, pw)} must be at most half the kernel {(kh, kw)}")
    H, W = x.shape[2:]
    oh = conv_output_size(H, kh, sy, ph, name, "height", ceil_mode)
    ow = conv_output_size(W, kw, sx, pw, name, "width", ceil_mode)
    return (kh, kw), (sy, sx), (ph, pw), (oh, ow)


def check_pool_backward(dy, cache, name, max_pool):
    """Everything a pooling backward reads, checked before any path runs: a cache that does not belong to
    ``dy`` must raise here, not send C or a kernel past the end of an array."""
    if not isinstance(cache, PoolCache):
        raise TypeError(f"{name}: cache must be the PoolCache of the forward pass, got {type(cache).__name__}")
    check_float_array(dy, 4, name, what="upstream gradient")
    x_shape = check_shape_tuple(cache.x_shape, 4, name, "cache.x_shape")
    out_shape = check_shape_tuple(cache.out_shape, 4, name, "cache.out_shape")
    check_shape(dy, out_shape, name)
    kernel, stride, pad = (pair(v, what, name) for v, what in
                           ((cache.kernel, "cache.kernel"), (cache.stride, "cache.stride"), (cache.pad, "cache.pad")))
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{name}: cache.kernel and cache.stride must be >= 1, got {kernel} and {stride}")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{name}: cache.pad {pad} must be at most half the kernel {kernel}")
    possible = {(conv_output_size(x_shape[2], kernel[0], stride[0], pad[0], name, "height", ceil),
                 conv_output_size(x_shape[3], kernel[1], stride[1], pad[1], name, "width", ceil))
                for ceil in (False, True)} if min(x_shape[2] + 2 * pad[0] - kernel[0],
                                                  x_shape[3] + 2 * pad[1] - kernel[1]) >= 0 else set()
    if out_shape[:2] != x_shape[:2] or out_shape[2:] not in possible:
        raise ValueError(f"{name}: cache.out_shape {out_shape} is not what a {kernel} window, stride {stride}, "
                         f"pad {pad} gives on cache.x_shape {x_shape} (expected (N, C) = {x_shape[:2]} and "
                         f"(oh, ow) in {sorted(possible)})")
    if max_pool:
        switches = cache.switches
        if not (isinstance(switches, np.ndarray) or backend.is_gpu_array(switches)):
            raise TypeError(f"{name}: cache.switches must be an integer array of shape {out_shape}, "
                            f"got {type(switches).__name__}")
        check_same_device(dy, switches, name, "cache.switches")
        if switches.dtype != np.int32:               # what the forward makes; a wider int would wrap in a kernel
            raise TypeError(f"{name}: cache.switches must be int32 (as max_pool2d_forward makes them), "
                            f"got dtype {switches.dtype}")
        check_shape(switches, out_shape, name, what="cache.switches", of="the shape of the upstream gradient")
    return tuple(x_shape), kernel, stride, pad


def pool_output_shape(x_shape, kernel, stride=None, pad=0, ceil_mode=False, name="pool"):
    """(oh, ow) of a pooling layer on an input of shape (N, C, H, W)."""
    kh, kw = pair(kernel, "kernel", name)
    sy, sx = (kh, kw) if stride is None else pair(stride, "stride", name)
    ph, pw = pair(pad, "pad", name)
    H, W = x_shape[-2:]
    return (conv_output_size(H, kh, sy, ph, name, "height", ceil_mode),
            conv_output_size(W, kw, sx, pw, name, "width", ceil_mode))


def _padded(x, fill, kernel, stride, pad, out):
    """x padded on all sides by ``pad`` and, on the bottom/right, as far as the last window reaches."""
    xp = backend.xp(x)
    N, C, H, W = x.shape
    (kh, kw), (sy, sx), (ph, pw), (oh, ow) = kernel, stride, pad, out
    Hp = max(H + 2 * ph, (oh - 1) * sy + kh)
    Wp = max(W + 2 * pw, (ow - 1) * sx + kw)
    if (Hp, Wp) == (H, W):
        return x
    x_pad = xp.full((N, C, Hp, Wp), fill, dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    return x_pad


@fast_cpu_alternative
def max_pool2d_forward(x, kernel, stride=None, pad=0, ceil_mode=False, name="max_pool2d"):
    """Max pooling that remembers where each maximum came from.

    x: (N, C, H, W) -> y: (N, C, oh, ow), cache with ``cache.switches`` (N, C, oh, ow) int32 in [0, kh*kw).
    ``stride`` defaults to the kernel size (non-overlapping windows). The first maximum wins a tie; a window
    holding a NaN outputs NaN, its switch at the first NaN (NaN propagates, as in PyTorch).
    """
    xp = backend.xp(x)
    kernel, stride, pad, out = pool_geometry(x, kernel, stride, pad, ceil_mode, name)
    if _gpu.handles(x):  # CuPy array: the kernel in kernels/pool.cu
        y, switches = _gpu.max_pool2d_forward(x, kernel, stride, pad, out)
        return y, PoolCache(tuple(x.shape), kernel, stride, pad, tuple(y.shape), switches)
    (kh, kw), (sy, sx), (oh, ow) = kernel, stride, out
    x_pad = _padded(x, -xp.inf, kernel, stride, pad, out)
    N, C = x.shape[:2]
    y = xp.full((N, C, oh, ow), -xp.inf, dtype=x.dtype)
    switches = xp.zeros((N, C, oh, ow), dtype=xp.int32)
    # Visit the window taps in row-major order; a strictly greater value takes over, so the first maximum wins.
    # A NaN takes over from any number and then stays (nothing compares greater than NaN): the first NaN wins.
    for ky in range(kh):
        for kx in range(kw):
            v = x_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx]
            wins = (v > y) | (xp.isnan(v) & ~xp.isnan(y))
            y = xp.where(wins, v, y)
            switches[wins] = ky * kw + kx
    return y, PoolCache(tuple(x.shape), kernel, stride, pad, (N, C, oh, ow), switches)


@fast_cpu_alternative
def max_pool2d_backward(dy, cache: PoolCache, name="max_pool2d"):
    """Gradient of max pooling = Zeiler-Fergus unpooling.

    dy: (N, C, oh, ow) -> dx: (N, C, H, W). Each dy value goes to its switch position; overlapping windows add.
    """
    x_shape, kernel, stride, pad = check_pool_backward(dy, cache, name, max_pool=True)
    if _gpu.handles(dy):  # CuPy array: the gather kernel in kernels/pool.cu
        return _gpu.max_pool2d_backward(dy, cache.switches, x_shape, kernel, stride, pad)
    xp = backend.xp(dy)
    N, C, H, W = x_shape
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = dy.shape[2:]
    Hp = max(H + 2 * ph, (oh - 1) * sy + kh)
    Wp = max(W + 2 * pw, (ow - 1) * sx + kw)
    dx_pad = xp.zeros((N, C, Hp, Wp), dtype=dy.dtype)
    zero = dy.dtype.type(0)
    for ky in range(kh):
        for kx in range(kw):
            dx_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx] += \
                xp.where(cache.switches == ky * kw + kx, dy, zero)
    return xp.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W])


unpool2d = max_pool2d_backward


def avg_pool2d_forward(x, kernel, stride=None, pad=0, name="avg_pool2d"):
    """Average pooling; zero padding counts in the divisor (every window divides by kh*kw).

    x: (N, C, H, W) -> y: (N, C, oh, ow), cache.
    """
    xp = backend.xp(x)
    kernel, stride, pad, out = pool_geometry(x, kernel, stride, pad, False, name)
    (kh, kw), (sy, sx), (oh, ow) = kernel, stride, out
    x_pad = _padded(x, 0, kernel, stride, pad, out)
    N, C = x.shape[:2]
    y = xp.zeros((N, C, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            y += x_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx]
    y /= kh * kw
    return y, PoolCache(tuple(x.shape), kernel, stride, pad, (N, C, oh, ow))


def avg_pool2d_backward(dy, cache: PoolCache, name="avg_pool2d"):
    """dy: (N, C, oh, ow) -> dx: (N, C, H, W); every window spreads dy / (kh*kw) evenly."""
    x_shape, (kh, kw), (sy, sx), (ph, pw) = check_pool_backward(dy, cache, name, max_pool=False)
    xp = backend.xp(dy)
    N, C, H, W = x_shape
    oh, ow = dy.shape[2:]
    dx_pad = xp.zeros((N, C, max(H + 2 * ph, (oh - 1) * sy + kh), max(W + 2 * pw, (ow - 1) * sx + kw)), dtype=dy.dtype)
    share = dy / (kh * kw)
    for ky in range(kh):
        for kx in range(kw):
            dx_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx] += share
    return xp.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W])
