"""Thin wrappers that run the hand-written CUDA kernels of ``kernels/`` on CuPy arrays.

The public ops (``ops.conv.im2col``, ``ops.pool.max_pool2d_forward``, ...) call these when their input is a
CuPy array of float32 or float64 (``handles(x)``); NumPy arrays stay on the readable NumPy code. Each wrapper
makes its inputs C-contiguous (the kernels index flat memory), allocates the outputs with the array module of
the input and hands C-typed scalars to ``_run``. ``_run`` is the only place that touches CuPy, so the tests can
swap it for a runner that calls the same kernels compiled as C++ on NumPy buffers (tests/test_kernels.py):
the Python side below is then exercised on every machine, too.

Scalar arguments: ``int`` parameters get np.int32, ``long long`` np.int64 and ``double`` np.float64; a raw
kernel reads its arguments by their C types, so a Python int (passed as 64-bit) would be misread.
"""
from __future__ import annotations

import numpy as np

from .. import backend

__all__ = ["handles", "im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward", "lrn_forward",
           "lrn_backward", "relu_backward"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
RELU_RULE_CODES = {"backprop": 0, "deconvnet": 1, "guided": 2}   # must match kernels/relu.cu


def handles(x) -> bool:
    """True where the kernels apply: a CuPy array of float32 or float64."""
    return backend.is_gpu_array(x) and x.dtype in _DTYPES


def _run(filename, name, dtype, total, args):
    backend.launch(backend.get_kernel(filename, name, dtype), total, args)


def _ints(*values):
    return tuple(np.int32(v) for v in values)


def im2col(x, kernel, stride, pad, out):
    """x (N, C, H, W) -> cols (C*kh*kw, N*oh*ow); the layout of ``ops.conv.im2col``."""
    xp = backend.xp(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    (kh, kw), (sy, sx), (ph, pw), (oh, ow) = kernel, stride, pad, out
    cols = xp.empty((C * kh * kw, N * oh * ow), dtype=x.dtype)
    _run("im2col.cu", "im2col", x.dtype, cols.size, (x, cols) + _ints(N, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow))
    return cols


def col2im(cols, x_shape, kernel, stride, pad, out):
    """cols (C*kh*kw, N*oh*ow) -> dx of shape x_shape; overlapping receptive fields add (gather, no atomics)."""
    xp = backend.xp(cols)
    cols = xp.ascontiguousarray(cols)
    N, C, H, W = x_shape
    (kh, kw), (sy, sx), (ph, pw), (oh, ow) = kernel, stride, pad, out
    dx = xp.empty((N, C, H, W), dtype=cols.dtype)
    _run("im2col.cu", "col2im", cols.dtype, dx.size, (cols, dx) + _ints(N, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow))
    return dx


def max_pool2d_forward(x, kernel, stride, pad, out):
    """x (N, C, H, W) -> y (N, C, oh, ow), switches (N, C, oh, ow) int32 (window-local ky*kw + kx)."""
    xp = backend.xp(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    (kh, kw), (sy, sx), (ph, pw), (oh, ow) = kernel, stride, pad, out
    y = xp.empty((N, C, oh, ow), dtype=x.dtype)
    switches = xp.empty((N, C, oh, ow), dtype=np.int32)
    _run("pool.cu", "max_pool_forward", x.dtype, y.size,
         (x, y, switches) + _ints(N, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow))
    return y, switches


def max_pool2d_backward(dy, switches, x_shape, kernel, stride, pad):
    """dy (N, C, oh, ow) -> dx (N, C, H, W): each value goes to its switch; overlapping windows add."""
    xp = backend.xp(dy)
    dy = xp.ascontiguousarray(dy)
    switches = xp.ascontiguousarray(switches, dtype=np.int32)
    N, C, H, W = x_shape
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = dy.shape[2:]
    dx = xp.empty((N, C, H, W), dtype=dy.dtype)
    _run("pool.cu", "max_pool_backward", dy.dtype, dx.size,
         (dy, switches, dx) + _ints(N, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow))
    return dx


def lrn_forward(x, n, k, alpha, beta):
    """x (N, C, H, W) -> y, d (the denominators k + alpha * window sum of squares), both shaped like x."""
    xp = backend.xp(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    y = xp.empty_like(x)
    d = xp.empty_like(x)
    _run("lrn.cu", "lrn_forward", x.dtype, x.size,
         (x, y, d) + _ints(N, C, H, W, n) + (np.float64(k), np.float64(alpha), np.float64(beta)))
    return y, d


def lrn_backward(dy, x, y, d, n, alpha, beta):
    """dy (N, C, H, W) -> dx, from the forward's x, y and d."""
    xp = backend.xp(dy)
    dy = xp.ascontiguousarray(dy)
    x, y, d = (xp.ascontiguousarray(a, dtype=dy.dtype) for a in (x, y, d))
    N, C, H, W = dy.shape
    dx = xp.empty_like(dy)
    _run("lrn.cu", "lrn_backward", dy.dtype, dx.size,
         (x, y, d, dy, dx) + _ints(N, C, H, W, n) + (np.float64(alpha), np.float64(beta)))
    return dx


def relu_backward(dy, x, rule):
    """dy, x (any shape) -> dx = dy where ``rule`` lets it through, 0 elsewhere (see kernels/relu.cu)."""
    xp = backend.xp(dy)
    shape = dy.shape
    dy = xp.ascontiguousarray(dy).reshape(-1)           # flat: the kernel sees elements, any rank (0-d included)
    x = xp.ascontiguousarray(x, dtype=dy.dtype).reshape(-1)
    dx = xp.empty_like(dy)
    _run("relu.cu", "relu_backward", dy.dtype, dx.size,
         (x, dy, dx, np.int64(dx.size), np.int32(RELU_RULE_CODES[rule])))
    return dx.reshape(shape)
