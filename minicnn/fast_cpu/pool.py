"""Max pooling with switches and unpooling on the fast CPU path: ``kernels/cpu_pool.c``, planes over the threads.

The forward first splits each image plane by stride phase into a small grid that stays in the L1 cache:
``P[qy*sx + qx][a][b] = xpad[a*sy + qy][b*sx + qx]`` with ``Hq = oh + (kh-1)//sy + 1`` rows and
``Wq = ow + (kw-1)//sx`` columns a phase. Window tap ``(ky, kx)`` of output ``(oy, ox)`` then reads
``P[(ky % sy)*sx + kx % sx][oy + ky//sy][ox + kx//sx]``, so over all outputs of a plane, taken on an (oh, Wq)
grid, each tap is ONE contiguous run starting at ``runs[t]``: a vector instruction compares 8 float32 outputs at
once. The columns ow..Wq-1 are junk, dropped when the outputs are copied out. Results are bit for bit the
readable op's: taps in row-major order, a strictly greater value wins, the first NaN wins, -inf padding. The
backward is a plain scatter of dy to the switches' pixels, in the order that adds each pixel's shares as the
readable op does (``cpu_pool.c`` says why that order).
"""
from __future__ import annotations

import functools

import numpy as np

from ..ops import pool as readable
from . import build
from .threads import parallel_chunks

__all__ = ["FastPoolCache", "max_pool2d_forward", "max_pool2d_backward"]


class FastPoolCache(readable.PoolCache):
    """The readable PoolCache (same fields, same switches), marked as made by the fast path, so that
    ``ops.max_pool2d_backward`` sends it here."""


@functools.lru_cache(maxsize=64)
def _runs(x_shape, kernel, stride, pad, out):
    """(Hq, Wq, runs): the phase grid's size and where each tap's run starts in it (int64, read-only)."""
    (kh, kw), (sy, sx), (oh, ow) = kernel, stride, out
    Hq, Wq = oh + (kh - 1) // sy + 1, ow + (kw - 1) // sx
    runs = np.array([((ky % sy) * sx + kx % sx) * Hq * Wq + (ky // sy) * Wq + kx // sx
                     for ky in range(kh) for kx in range(kw)], dtype=np.int64)
    runs.flags.writeable = False
    return Hq, Wq, runs


def _arguments(x_shape, kernel, stride, pad, out):
    Hq, Wq, runs = _runs(tuple(x_shape), kernel, stride, pad, tuple(out))
    return runs, (len(runs), x_shape[2], x_shape[3], *out, *stride, *pad, Hq, Wq)


def max_pool2d_forward(x, kernel, stride=None, pad=0, ceil_mode=False, name="max_pool2d"):
    if type(x) is not np.ndarray:
        return NotImplemented
    kernel, stride, pad, out = readable.pool_geometry(x, kernel, stride, pad, ceil_mode, name)
    lib = build.library(x.dtype)
    if x.size == 0 or lib is None:
        return NotImplemented
    N, C = x.shape[:2]
    x = np.ascontiguousarray(x)
    y = np.empty((N, C) + out, x.dtype)
    switches = np.empty((N, C) + out, np.int32)
    runs, sizes = _arguments(x.shape, kernel, stride, pad, out)
    pointers = (x.ctypes.data, y.ctypes.data, switches.ctypes.data, runs.ctypes.data)
    parallel_chunks(lambda r0, r1: build.call(lib.max_pool_forward, *pointers, *sizes, r0, r1), N * C, x.size)
    return y, FastPoolCache(tuple(x.shape), kernel, stride, pad, tuple(y.shape), switches)


def max_pool2d_backward(dy, cache, name="max_pool2d"):
    x_shape, kernel, stride, pad = readable.check_pool_backward(dy, cache, name, max_pool=True)
    lib = build.library(dy.dtype)
    s = cache.switches
    # the C loops read every switch as a tap of its window; the readable op ignores any other value
    if lib is None or dy.size == 0 or not (s.size == 0 or int(s.view(np.uint32).max()) < kernel[0] * kernel[1]):
        return max_pool2d_backward_readable(dy, cache, name)
    dy, s = np.ascontiguousarray(dy), np.ascontiguousarray(s)
    dx = np.empty(x_shape, dy.dtype)
    sizes = (*kernel, *x_shape[2:], *dy.shape[2:], *stride, *pad)
    pointers = (dy.ctypes.data, s.ctypes.data, dx.ctypes.data)
    parallel_chunks(lambda r0, r1: build.call(lib.max_pool_backward, *pointers, *sizes, r0, r1),
                    x_shape[0] * x_shape[1], dx.size)
    return dx


def max_pool2d_backward_readable(dy, cache, name):
    return readable.max_pool2d_backward.readable(dy, cache, name)
