"""LRN on the fast CPU path: the readable op's formula in fewer, cheaper NumPy passes, images over the threads.

No C here: LRN is a few elementwise passes and a sum over a channel window, which NumPy runs at memory speed
when it is fed long runs. Three changes from the readable op: the channel window is summed by shifted in-place adds
(no zero-padded copy); ``d ** -0.75`` is taken as ``1 / (sqrt(d) * sqrt(sqrt(d)))``, ~5x cheaper than ``pow``; and
that scale is kept in the cache (``FastLRNCache``), so the backward needs no power at all. Kept because it pays on a
whole training step: with the readable LRN, a zfnet_small training step (batch 128, 2 threads) took 1.14x as long
(its two LRN layers 19 ms more per 139 ms step; benchmarks/RESULTS.md, issue 15).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import normalization as readable
from .threads import parallel_chunks, scratch

__all__ = ["FastLRNCache", "lrn_forward", "lrn_backward"]

# NumPy copies a non-contiguous ufunc operand into buffers of np.getbufsize() (8192) elements whenever its rows are
# shorter than that; for the channel-shifted views here that copy costs more than the add. With 1024-element buffers
# NumPy takes the rows as they are.
_SHORT_ROW_BUFFER = 1024


@dataclass
class FastLRNCache(readable.LRNCache):
    """The readable LRNCache plus ``scale`` = d ** -beta, marked as made by the fast path."""
    scale: object = None


def _window_sum(a, n, out):
    """out[:, c] = sum of a[:, c'] over |c' - c| <= n//2, by shifted in-place adds."""
    np.copyto(out, a)
    old = np.setbufsize(_SHORT_ROW_BUFFER)     # per thread (a context variable): restored before returning
    try:
        for offset in range(1, n // 2 + 1):
            out[:, offset:] += a[:, :-offset]
            out[:, :-offset] += a[:, offset:]
    finally:
        np.setbufsize(old)
    return out


def _neg_power(d, beta, out):
    """out = d ** -beta; for beta = 0.75 as 1 / (sqrt(d) * sqrt(sqrt(d)))."""
    if beta == 0.75:
        r = np.sqrt(d, out=out)
        q = np.sqrt(r, out=scratch("lrn_fourth_root", d.shape, d.dtype))
        np.multiply(r, q, out=out)
        return np.reciprocal(out, out=out)
    return np.power(d, -beta, out=out)


def lrn_forward(x, n=5, k=2.0, alpha=1e-4, beta=0.75, name="lrn"):
    if type(x) is not np.ndarray:
        return NotImplemented
    readable.check_lrn_args(x, n, k, alpha, beta, name)
    y, d, scale = (np.empty(x.shape, x.dtype) for _ in range(3))

    def images(n0, n1):
        xs, ds = x[n0:n1], d[n0:n1]
        sq = scratch("lrn_sq", xs.shape, x.dtype)
        np.multiply(xs, xs, out=sq)
        _window_sum(sq, n, out=ds)
        ds *= x.dtype.type(alpha)
        ds += x.dtype.type(k)
        _neg_power(ds, beta, out=scale[n0:n1])
        np.multiply(xs, scale[n0:n1], out=y[n0:n1])

    parallel_chunks(images, x.shape[0], x.size // 2)
    return y, FastLRNCache(x, y, d, n, alpha, beta, scale)


def lrn_backward(dy, cache, name="lrn"):
    readable.check_lrn_backward(dy, cache, name)
    x, y, d, scale = cache.x, cache.y, cache.d, cache.scale
    if not (type(dy) is np.ndarray and dy.dtype == x.dtype and isinstance(scale, np.ndarray)
            and scale.shape == x.shape and scale.dtype == x.dtype):
        return readable.lrn_backward.readable(dy, cache, name)
    dx = np.empty(dy.shape, dy.dtype)
    c = dy.dtype.type(-2 * cache.alpha * cache.beta)

    def images(n0, n1):            # dx = dy * scale - 2 alpha beta x * window_sum(dy * y / d)
        t = scratch("lrn_t", dy[n0:n1].shape, dy.dtype)
        coupling = scratch("lrn_coupling", dy[n0:n1].shape, dy.dtype)
        np.multiply(dy[n0:n1], y[n0:n1], out=t)
        np.divide(t, d[n0:n1], out=t)
        _window_sum(t, cache.n, out=coupling)
        coupling *= x[n0:n1]
        coupling *= c
        np.multiply(dy[n0:n1], scale[n0:n1], out=dx[n0:n1])
        dx[n0:n1] += coupling

    parallel_chunks(images, dy.shape[0], dy.size // 2)
    return dx
