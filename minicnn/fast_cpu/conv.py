"""conv2d on the fast CPU path: the same results as ``ops.conv2d_forward`` / ``conv2d_backward``, in C.

Two ways, both in ``kernels/``, chosen per layer:

* **Direct** (``cpu_conv_direct.c``): stride-1 layers whose padded input image fits a core's L1 cache
  (``TUNING.direct_image_bytes``), forward and backward, no column matrix. The running sums of 8 filters stay in
  vector registers and one image's planes in L1, so threads scale as compute does; im2col + GEMM would stream a
  column matrix 25x the input through memory. The backward also needs dW's running sums to fit L2
  (``TUNING.direct_sums_bytes``). Kept beside the other way because it pays on a whole training step: with it
  off, a zfnet_small training step (batch 128, 2 threads) took 1.3x as long (benchmarks/RESULTS.md, issue 15).
* **im2col + GEMM by batch chunk** (``cpu_im2col.c``): each chunk of images is one C call -- im2col into a
  buffer, NumPy's own BLAS GEMM (``build.gemm``), bias and NCHW layout -- so that minicnn's threads take whole
  chunks and hand the GIL over once per chunk. The columns are kept for the backward when they are small
  (``TUNING.keep_cols_bytes``), else rebuilt from the cached input. Kept for the larger shapes of
  benchmarks/bench_ops.py: with it off (``im2col_chunks=False``) its worst conv was 2.24x PyTorch (bar 1.6).

A layer neither way can take (no compiler, no ILP64 cblas gemm in NumPy's BLAS for a layer that is not direct,
an empty batch, CuPy arrays) returns ``NotImplemented`` and the readable op runs. So does a backward whose dy,
weights or input hold NaN or inf: the C loops multiply the zeros of the padding by every value, and 0 * inf is NaN
where the definition has no term at all.

The forward's cache is a ``FastConvCache``: the input (a private copy where the caller could overwrite it before
the backward) and, when kept, the chunks' column matrices. ``ops.conv2d_backward`` sends it here by its type.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ops import conv as readable
from ..ops._checks import pair
from . import build
from .threads import blas_single_threaded, get_num_threads, parallel_chunks, scratch, serial
from .tuning import TUNING

__all__ = ["FastConvCache", "conv2d_forward", "conv2d_backward"]


@dataclass
class FastConvCache:
    """What the fast conv2d_backward needs: the geometry, the weights, the input x (N, C, H, W) and, when the
    forward kept them, its column matrices by batch chunk ``{(n0, n1): (C*kh*kw, (n1-n0)*oh*ow)}``."""
    x_shape: tuple
    W: object
    x: object
    stride: tuple
    pad: tuple
    y_shape: tuple
    cols: dict | None
    threads: int


def _plan(x_shape, W_shape, stride, pad, dtype):
    """(direct forward?, direct backward?) for this layer (see the module docstring)."""
    N, C, H, Wd = x_shape
    F, _, kh, kw = W_shape
    image = C * (H + 2 * pad[0]) * (Wd + 2 * pad[1]) * np.dtype(dtype).itemsize
    fits = tuple(stride) == (1, 1) and image <= TUNING.direct_image_bytes
    # forward: at least half of each block of 8 filters filled (a 1-filter layer would use 1 lane in 8)
    forward = fits and F * 2 >= -(-F // 8) * 8
    backward = fits and -(-F // 4) * 4 * C * kh * kw * 32 <= TUNING.direct_sums_bytes
    return forward, backward


def _chunks(N, bytes_per_image, threads):
    """Batch ranges of about TUNING.chunk_bytes of columns each, at least one per thread."""
    count = -(-N * bytes_per_image // max(1, TUNING.chunk_bytes))
    count = min(N, -(-count // threads) * threads)
    return [(N * i // count, N * (i + 1) // count) for i in range(count)]


def _run(threads, fn, n, elements):
    """fn(a, b) over range(n) on ``threads`` threads (1: in this thread), the BLAS as threads.py explains."""
    with blas_single_threaded():
        if threads == 1:
            with serial():
                fn(0, n)
        else:
            parallel_chunks(fn, n, elements)


def conv2d_forward(x, W, b=None, stride=1, pad=0, name="conv2d"):
    if type(x) is not np.ndarray or type(W) is not np.ndarray:
        return NotImplemented
    readable.check_conv_args(x, W, b, name)            # the readable op's checks: the same errors on every path
    stride, pad = pair(stride, "stride", name), pair(pad, "pad", name)
    oh, ow = readable.conv_output_shape(x.shape, W.shape[2:], stride, pad, name)
    lib = build.library(x.dtype)
    direct, direct_backward = _plan(x.shape, W.shape, stride, pad, x.dtype)
    gemm = build.gemm(x.dtype) if TUNING.im2col_chunks else None
    if x.size == 0 or W.size == 0 or lib is None or not (direct or gemm):
        return NotImplemented
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    K, L = C * kh * kw, oh * ow
    given, x = x, np.ascontiguousarray(x)
    b = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    y = np.empty((N, F, oh, ow), x.dtype)
    threads = 1 if 2.0 * F * K * N * L < TUNING.parallel_conv_flops else get_num_threads()
    # columns only where both ways are GEMMs: a direct backward reads x, and a direct forward makes no columns
    keep = not (direct or direct_backward) and K * L * N * x.itemsize <= TUNING.keep_cols_bytes
    cache = FastConvCache(tuple(x.shape), W, x, stride, pad, (N, F, oh, ow), {} if keep else None, threads)
    sizes = (C, H, Wd, F, kh, kw, *pad, oh, ow)
    if direct:
        w8 = _weights_by_8(W)
        _run(threads, lambda n0, n1: build.call(lib.conv_direct, x.ctypes.data, w8.ctypes.data,
                                                None if b is None else b.ctypes.data, y.ctypes.data, *sizes, n0, n1),
             N, y.size * K // 8)
    else:
        W2 = np.ascontiguousarray(W).reshape(F, K)
        chunks = _chunks(N, K * L * x.itemsize, threads)

        def run_chunks(i0, i1):
            for n0, n1 in chunks[i0:i1]:
                shape = (K, (n1 - n0) * L)
                cols = np.empty(shape, x.dtype) if keep else scratch("conv_cols", shape, x.dtype)
                lib.conv_forward_chunk(gemm, x[n0:].ctypes.data, W2.ctypes.data, None if b is None else b.ctypes.data,
                                       y[n0:].ctypes.data, cols.ctypes.data,
                                       scratch("conv_rows", (F, shape[1]), x.dtype).ctypes.data, n1 - n0,
                                       C, H, Wd, kh, kw, *stride, *pad, oh, ow, F)
                if keep:
                    cache.cols[n0, n1] = cols

        _run(threads, run_chunks, len(chunks), K * N * L)
    if not keep and x is given:
        cache.x = x.copy()             # the backward reads x: a private copy, the caller may reuse its buffer
    return y, cache


def _weights_by_8(W):
    """(F, C, kh, kw) -> (ceil(F/8), C*kh*kw, 8): the direct convolution's weights, 8 filters side by side."""
    F, K = W.shape[0], W[0].size
    w8 = np.zeros((-(-F // 8) * 8, K), W.dtype)
    w8[:F] = W.reshape(F, K)
    return np.ascontiguousarray(w8.reshape(-1, 8, K).transpose(0, 2, 1))


def _finite(*arrays):
    """True when no array holds NaN or inf (None skipped): their sum is finite exactly then, unless it overflows,
    and then the caller takes the readable path, which is right in any case."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(a is None or math.isfinite(np.add.reduce(a, axis=None)) for a in arrays)


def conv2d_backward(dy, cache, need_dx=True, param_grads=True, name="conv2d"):
    dy = readable.check_conv_backward(dy, cache, name, FastConvCache)
    x, W = cache.x, cache.W
    if not (isinstance(x, np.ndarray) and tuple(x.shape) == cache.x_shape and x.dtype == W.dtype):
        raise ValueError(f"{name}: the cache's input does not match its shape {cache.x_shape} and dtype {W.dtype}")
    _, direct = _plan(x.shape, W.shape, cache.stride, cache.pad, x.dtype)
    lib, gemm = build.library(dy.dtype), build.gemm(dy.dtype) if TUNING.im2col_chunks else None
    if not (_finite(dy, W, x if param_grads else None) and lib is not None and (direct or gemm)):
        cols = readable.im2col(x, W.shape[2:], cache.stride, cache.pad)
        cache = readable.ConvCache(cache.x_shape, W, cols, cache.stride, cache.pad, cache.y_shape)
        return readable.conv2d_backward(dy, cache, need_dx, param_grads, name)
    if not (need_dx or param_grads):
        return None, None, None
    dy, W = np.ascontiguousarray(dy), np.ascontiguousarray(W)
    (N, F, oh, ow), (_, C, H, Wd), (kh, kw) = dy.shape, x.shape, W.shape[2:]
    K, L = C * kh * kw, oh * ow
    dx = np.empty(x.shape, dy.dtype) if need_dx else None
    # Each share of the work (a fixed range of images or chunks) sums its own dW (F, K) and db (F,); the shares'
    # sums are added in the order of their ranges, so the result does not depend on which thread ran what first:
    # the same bits on every run with the same thread count (a training run reproduces exactly).
    parts = {}

    def sums(share):
        if not param_grads:
            return None, None
        parts[share] = (np.zeros((F, K), dy.dtype), np.zeros(F, dy.dtype))
        return parts[share]

    def address(a, offset=0):
        return None if a is None else a[offset:].ctypes.data

    if direct:
        def images(n0, n1):
            dW, db = sums(n0)
            build.call(lib.conv_direct_backward, dy.ctypes.data, x.ctypes.data, W.ctypes.data, address(dx),
                       address(dW), address(db), C, H, Wd, F, kh, kw, *cache.pad, oh, ow, n0, n1)

        _run(cache.threads, images, N, dy.size * K // 8)
    else:
        W2 = W.reshape(F, K)
        chunks = sorted(cache.cols) if cache.cols else _chunks(N, K * L * dy.itemsize, cache.threads)

        def run_chunks(i0, i1):
            dW, db = sums(i0)
            for n0, n1 in chunks[i0:i1]:
                P = (n1 - n0) * L
                kept = cache.cols.get((n0, n1)) if cache.cols else None
                cols = kept if kept is not None or not param_grads else scratch("conv_cols", (K, P), dy.dtype)
                lib.conv_backward_chunk(gemm, address(dy, n0), address(x, n0), W2.ctypes.data, address(cols),
                                        scratch("conv_rows", (F, P), dy.dtype).ctypes.data,
                                        address(scratch("conv_dcols", (K, P), dy.dtype) if need_dx else None),
                                        address(dW), address(db), address(dx, n0), int(kept is None), n1 - n0,
                                        C, H, Wd, kh, kw, *cache.stride, *cache.pad, oh, ow, F)

        _run(cache.threads, run_chunks, len(chunks), K * N * L)
    if not param_grads:
        return dx, None, None
    shares = [parts[k] for k in sorted(parts)]
    return dx, sum(dW for dW, _ in shares).reshape(W.shape), sum(db for _, db in shares)
