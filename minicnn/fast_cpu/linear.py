"""The fully connected layer on the fast CPU path: the readable op's GEMMs, split over minicnn's threads.

Why at all, when NumPy's BLAS is threaded itself: within a fast-path step every other GEMM runs in minicnn's
threads with the BLAS single-threaded (conv.py), and a multithreaded BLAS call in between leaves its workers
spinning for a while on the same cores as the next layer's threads. With the fc layers as plain ``x @ W`` a
zfnet_small training step (batch 128, 2 threads) took 1.36-1.4x as long (benchmarks/RESULTS.md, issue 15).

The threads split the GEMM along the side that keeps the bigger operand apart: by output features when the
weights are bigger than the batch's rows (AlexNet's fc6 at batch 4: 151 MB of W against 147 KB of x), so that no
thread reads all of W, which on a many-core machine would multiply the layer's memory traffic by the thread count.
"""
from __future__ import annotations

import numpy as np

from ..ops import conv as readable
from .threads import blas_single_threaded, parallel_chunks

__all__ = ["FastLinearCache", "linear_forward", "linear_backward"]


class FastLinearCache(readable.LinearCache):
    """The readable LinearCache (x, W), marked as made by the fast path."""


def _in_threads(fn, n, elements):
    with blas_single_threaded():
        parallel_chunks(fn, n, elements)


def linear_forward(x, W, b=None, name="linear"):
    if type(x) is not np.ndarray or type(W) is not np.ndarray:
        return NotImplemented
    readable.check_linear_args(x, W, b, name)
    y = np.empty((x.shape[0], W.shape[1]), np.result_type(x, W))

    if W.shape[1] > x.shape[0]:                 # W is the bigger operand: each thread reads only its columns of it
        def columns(a, c):
            np.matmul(x, W[:, a:c], out=y[:, a:c])
            if b is not None:
                y[:, a:c] += b[a:c]

        _in_threads(columns, W.shape[1], y.size * 64)
    else:                                       # x is: each thread reads only its rows of it
        def rows(a, c):
            np.matmul(x[a:c], W, out=y[a:c])
            if b is not None:
                y[a:c] += b

        _in_threads(rows, x.shape[0], y.size * 64)
    return y, FastLinearCache(x, W)


def linear_backward(dy, cache, need_dx=True, param_grads=True, name="linear"):
    readable.check_linear_backward(dy, cache, name)
    x, W = cache.x, cache.W
    dx = np.empty((dy.shape[0], W.shape[0]), np.result_type(dy, W)) if need_dx else None
    dW = np.empty((x.shape[1], dy.shape[1]), np.result_type(x, dy)) if param_grads else None
    if need_dx:
        if W.shape[0] > dy.shape[0]:            # as in the forward: split the side whose operand is bigger
            _in_threads(lambda a, c: np.matmul(dy, W[a:c].T, out=dx[:, a:c]), W.shape[0], dx.size * 64)
        else:
            _in_threads(lambda a, c: np.matmul(dy[a:c], W.T, out=dx[a:c]), dy.shape[0], dx.size * 64)
    if param_grads:
        _in_threads(lambda a, c: np.matmul(x.T, dy[:, a:c], out=dW[:, a:c]), dy.shape[1], dW.size * 64)
    return dx, dW, dy.sum(axis=0) if param_grads else None
