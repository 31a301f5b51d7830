"""Exercises of notebook 02 (pooling switches and the ReLU rules): the guided ReLU backward, and unpooling with
switches."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..gradcheck import distinct_values
from . import register
from ._compare import as_array, assert_close


def check_guided_relu(guided_relu_backward):
    rng = np.random.default_rng(3)
    for shape in [(2, 3, 4, 5), (7,)]:
        x = distinct_values(shape, rng)                   # no ties, nothing exactly 0: every gate is unambiguous
        dy = rng.permutation(distinct_values(shape, rng).ravel()).reshape(shape)     # signs unrelated to x's
        before = dy.copy()
        got = as_array(guided_relu_backward(dy, x), "your guided_relu_backward's result")
        if not np.array_equal(dy, before):
            raise AssertionError("guided_relu_backward wrote into dy: a backward must return a new array")
        want = ops.relu_backward(dy, x, "guided")
        if got.shape == want.shape and not np.array_equal(got, want):
            for rule, says in (("backprop", "only where x > 0 (the backprop rule)"),
                               ("deconvnet", "only where dy > 0 (the deconvnet rule)")):
                if np.array_equal(got, ops.relu_backward(dy, x, rule)):
                    raise AssertionError(f"your result passes dy {says}; guided backprop needs both gates, "
                                         "x > 0 and dy > 0")
        assert_close(got, want, "dx", f"shape {shape}", tol=0.0)
    return "both gates, on a 4-d and a 1-d array"


def solution_guided_relu(dy, x):
    return np.where((x > 0) & (dy > 0), dy, 0.0)          # forward gate and backward gate together


# (N, C, H, W), k, stride: no overlap; overlap (AlexNet/ZF's 3x3 stride 2); a size the stride does not divide
UNPOOL_CASES = [((1, 2, 6, 6), 2, 2), ((2, 1, 7, 7), 3, 2), ((1, 3, 9, 8), 3, 2), ((1, 1, 5, 7), 2, 2)]


def check_unpool(unpool):
    rng = np.random.default_rng(4)
    for x_shape, k, s in UNPOOL_CASES:
        x = distinct_values(x_shape, rng)
        y, cache = ops.max_pool2d_forward(x, k, s)
        dy = rng.standard_normal(y.shape)
        case = f"x_shape {x_shape}, {k}x{k} windows, stride {s}"
        got = unpool(dy.copy(), cache.switches.copy(), x_shape, k, s)
        want = ops.unpool2d(dy, cache)
        hint = (" Windows overlap here: when two windows' switches point at the same pixel, both values "
                "land there and add." if k > s else "")
        assert_close(got, want, "unpooled", case, tol=1e-12, hint=hint)
    return f"{len(UNPOOL_CASES)} configurations, overlapping windows included"


def solution_unpool(y, switches, x_shape, k, stride):
    N, C, H, W = x_shape
    oh, ow = y.shape[2:]
    out = np.zeros(x_shape, dtype=y.dtype)
    for i in range(oh):
        for j in range(ow):
            u, v = switches[:, :, i, j] // k, switches[:, :, i, j] % k       # winner inside window (i, j)
            n, c = np.indices((N, C))
            np.add.at(out, (n, c, i * stride + u, j * stride + v), y[:, :, i, j])
    return out


register("02.guided_relu", "the guided ReLU backward", "guided_relu_backward", check_guided_relu,
         solution_guided_relu)
register("02.unpool", "unpooling with switches", "unpool", check_unpool, solution_unpool)
