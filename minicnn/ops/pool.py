"""Max pooling with switches, unpooling, and average pooling.

Notation as in ``ops/conv.py``: x (N, C, H, W) -> y (N, C, oh, ow), window kh x kw, stride sy, sx, padding ph, pw.

Max pooling records, for every output cell, which position of its window won: the **switches**, int32, local
to the window (``ky * kw + kx``); on ties the first maximum in row-major window order wins. Unpooling puts each
value back at its switch; where windows overlap (3x3 stride 2) contributions add. Max-pool backward and
Zeiler-Fergus unpooling are the same function, ``max_pool2d_backward``.

Padding is -inf for max pooling (a padded cell never wins). In ceil mode the output size rounds up
(Caffe/PyTorch), dropping a last window that would start inside the right padding; the extra cells a last
window reaches past the padded input are -inf too.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import backend
from . import _cpu_fast
from . import _gpu
from ._checks import check_float_array, conv_output_size, pair

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


def _pool_geometry(x, kernel, stride, pad, ceil_mode, name):
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


def max_pool2d_forward(x, kernel, stride=None, pad=0, ceil_mode=False, name="max_pool2d"):
    """Max pooling that remembers where each maximum came from.

    x: (N, C, H, W) -> y: (N, C, oh, ow), cache with ``cache.switches`` (N, C, oh, ow) int32 in [0, kh*kw).
    ``stride`` defaults to the kernel size (non-overlapping windows).
    """
    xp = backend.xp(x)
    kernel, stride, pad, out = _pool_geometry(x, kernel, stride, pad, ceil_mode, name)
    if _gpu.handles(x):  # CuPy array: the kernel in kernels/pool.cu
        y, switches = _gpu.max_pool2d_forward(x, kernel, stride, pad, out)
        return y, PoolCache(tuple(x.shape), kernel, stride, pad, tuple(y.shape), switches)
    (kh, kw), (sy, sx), (oh, ow) = kernel, stride, out
    if _cpu_fast.use_pool_forward(x):    # NumPy: same result without the padded copy, threaded (ops/_cpu_fast.py)
        y, switches = _cpu_fast.max_pool2d_forward(x, kernel, stride, pad, out)
        return y, PoolCache(tuple(x.shape), kernel, stride, pad, tuple(y.shape), switches)
    x_pad = _padded(x, -xp.inf, kernel, stride, pad, out)
    N, C = x.shape[:2]
    y = xp.full((N, C, oh, ow), -xp.inf, dtype=x.dtype)
    switches = xp.zeros((N, C, oh, ow), dtype=xp.int32)
    # Visit the window taps in row-major order; a strictly greater value takes over, so the first maximum wins.
    for ky in range(kh):
        for kx in range(kw):
            v = x_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx]
            wins = v > y
            y = xp.where(wins, v, y)
            switches[wins] = ky * kw + kx
    return y, PoolCache(tuple(x.shape), kernel, stride, pad, (N, C, oh, ow), switches)


def max_pool2d_backward(dy, cache: PoolCache, name="max_pool2d"):
    """Gradient of max pooling = Zeiler-Fergus unpooling.

    dy: (N, C, oh, ow) -> dx: (N, C, H, W). Each dy value goes to its switch position; overlapping windows add.
    """
    if tuple(dy.shape) != cache.out_shape:
        raise ValueError(f"{name}: upstream gradient must have the output shape {cache.out_shape}, got {tuple(dy.shape)}")
    if _gpu.handles(dy):  # CuPy array: the gather kernel in kernels/pool.cu
        return _gpu.max_pool2d_backward(dy, cache.switches, cache.x_shape, cache.kernel, cache.stride, cache.pad)
    if _cpu_fast.use_pool_backward(dy, cache.switches, cache.kernel):    # NumPy: one scatter, threaded
        return _cpu_fast.max_pool2d_backward(dy, cache.switches, cache.x_shape, cache.kernel, cache.stride, cache.pad)
    xp = backend.xp(dy)
    N, C, H, W = cache.x_shape
    (kh, kw), (sy, sx), (ph, pw) = cache.kernel, cache.stride, cache.pad
    oh, ow = cache.out_shape[2:]
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
unpool2d.__doc__ = max_pool2d_backward.__doc__


def avg_pool2d_forward(x, kernel, stride=None, pad=0, name="avg_pool2d"):
    """Average pooling; zero padding counts in the divisor (every window divides by kh*kw).

    x: (N, C, H, W) -> y: (N, C, oh, ow), cache.
    """
    xp = backend.xp(x)
    kernel, stride, pad, out = _pool_geometry(x, kernel, stride, pad, False, name)
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
    if tuple(dy.shape) != cache.out_shape:
        raise ValueError(f"{name}: upstream gradient must have the output shape {cache.out_shape}, got {tuple(dy.shape)}")
    xp = backend.xp(dy)
    N, C, H, W = cache.x_shape
    (kh, kw), (sy, sx), (ph, pw) = cache.kernel, cache.stride, cache.pad
    oh, ow = cache.out_shape[2:]
    dx_pad = xp.zeros((N, C, max(H + 2 * ph, (oh - 1) * sy + kh), max(W + 2 * pw, (ow - 1) * sx + kw)), dtype=dy.dtype)
    share = dy / (kh * kw)
    for ky in range(kh):
        for kx in range(kw):
            dx_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx] += share
    return xp.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W])
