"""ReLU on the fast CPU path: the same bits as the readable op, without ``np.where``, over the threads.

Forward: ``np.maximum(x, 0)`` (NaN propagates), split over the threads. Backward: ``where(gate, dy, 0)`` as an
integer AND of dy's bits with an all-ones/all-zeros mask made from the gate -- exact for every dy, NaN and inf
included (a closed gate gives +0.0, as ``where`` does) -- in blocks of ``_BLOCK`` elements, whose temporaries stay
in the L2 cache. ``np.where`` was ~7x slower than one plain ufunc pass. Kept because it pays on a whole training
step: with the readable ReLU a zfnet_small training step (batch 128, 2 threads) took 1.12x as long (17 ms more
per 139 ms step, most of it relu1's backward; benchmarks/RESULTS.md, issue 15). The switch decides which path a
backward takes: ReLU's cache is the forward input itself.
"""
from __future__ import annotations

import numpy as np

from ..ops import activation as readable
from ..ops._checks import check_array
from .threads import parallel_chunks, scratch

__all__ = ["relu_forward", "relu_backward"]

_SAME_SIZE_INT = {4: np.int32, 8: np.int64}
_BLOCK = 1 << 16          # elements per block: ~20 us of ufunc calls a block, its temporaries in L2


def relu_forward(x, name="relu"):
    if type(x) is not np.ndarray:
        return NotImplemented
    check_array(x, name)
    if x.dtype.kind != "f" or not x.flags.c_contiguous or x.ndim == 0:
        return NotImplemented
    y = np.empty(x.shape, x.dtype)
    xf, yf = x.reshape(-1), y.reshape(-1)
    parallel_chunks(lambda a, b: np.maximum(xf[a:b], 0, out=yf[a:b]), xf.size, xf.size // 4)
    return y, x


def relu_backward(dy, cache, rule="backprop", name="relu"):
    if type(dy) is not np.ndarray or type(cache) is not np.ndarray:
        return NotImplemented
    readable.check_relu_backward(dy, cache, rule, name)
    x = cache
    if dy.dtype != x.dtype or dy.itemsize not in _SAME_SIZE_INT or dy.dtype.kind != "f" or dy.size == 0:
        return NotImplemented
    ints = _SAME_SIZE_INT[dy.itemsize]
    dyf, xf = dy.reshape(-1), x.reshape(-1)
    out = np.empty(dy.shape, dy.dtype)
    outf = out.reshape(-1).view(ints)

    def blocks(a, b):
        n = min(b - a, _BLOCK)
        gate, mask = scratch("relu_gate", (n,), np.bool_), scratch("relu_mask", (n,), ints)
        both = scratch("relu_gate2", (n,), np.bool_) if rule == "guided" else None
        for a0 in range(a, b, n):
            a1 = min(b, a0 + n)
            g, m = gate[:a1 - a0], mask[:a1 - a0]
            np.greater(dyf[a0:a1] if rule == "deconvnet" else xf[a0:a1], 0, out=g)
            if rule == "guided":
                np.greater(dyf[a0:a1], 0, out=both[:a1 - a0])
                np.logical_and(g, both[:a1 - a0], out=g)
            np.subtract(0, g, out=m, dtype=ints)                 # True -> -1 (all bits set), False -> 0
            np.bitwise_and(dyf[a0:a1].view(ints), m, out=outf[a0:a1])

    parallel_chunks(blocks, dyf.size, dyf.size // 4)
    return out
