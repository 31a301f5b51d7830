"""Exercises of notebook 01 (backpropagation through a convolution): col2im, the input gradient with the flipped
kernel, and a layer's output size and parameter count."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..gradcheck import numerical_gradient, relative_error
from . import register
from ._compare import as_array, assert_close

# (N, C, H, W), kernel, stride, pad: the first does not overlap (a `=` instead of `+=` passes it), the rest do
COL2IM_CASES = [((1, 2, 6, 6), 2, 2, 0), ((1, 1, 4, 4), 3, 1, 0), ((2, 3, 7, 6), 3, 2, 1), ((1, 2, 5, 8), 2, 1, 1)]


def check_col2im(col2im):
    rng = np.random.default_rng(1)
    for x_shape, k, s, p in COL2IM_CASES:
        cols = rng.standard_normal(ops.im2col(np.zeros(x_shape), k, s, p).shape)
        before = cols.copy()
        case = f"x_shape {x_shape}, kernel {k}, stride {s}, pad {p}"
        got = as_array(col2im(cols, x_shape, k, s, p), "your col2im's result")
        if not np.array_equal(cols, before):
            raise AssertionError(f"col2im wrote into cols ({case}): work on a new array")
        want = ops.col2im(cols, x_shape, k, s, p)
        hint = (" Windows overlap here (kernel > stride): a pixel in several windows must receive the SUM of "
                "their entries (+=, not =)." if k > s else "")
        assert_close(got, want, "col2im(cols)", case, tol=1e-12, hint=hint)
    return f"{len(COL2IM_CASES)} configurations, overlapping windows and padding included"


def solution_col2im(cols, x_shape, k, stride, pad):
    N, C, H, W = x_shape
    oh, ow = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    cols6 = cols.reshape(C, k, k, N, oh, ow)                  # rows (c, ky, kx), columns (n, oy, ox)
    dx = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for ky in range(k):
        for kx in range(k):                                   # tap (ky, kx) of every window, added back
            dx[:, :, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride] += \
                cols6[:, ky, kx].transpose(1, 0, 2, 3)
    return dx[:, :, pad:pad + H, pad:pad + W]


def check_conv_dx(conv_dx):
    rng = np.random.default_rng(2)
    for N, C, F, H, W, kh, kw in [(1, 1, 1, 5, 5, 3, 3), (2, 3, 4, 6, 7, 3, 2), (1, 2, 3, 7, 5, 4, 3)]:
        x = rng.standard_normal((N, C, H, W))
        Wt = rng.standard_normal((F, C, kh, kw))               # random, so not symmetric: a missing flip shows
        y, _ = ops.conv2d_forward(x, Wt)
        dy = rng.standard_normal(y.shape)                      # random upstream gradient, not all ones
        case = f"x {x.shape}, W {Wt.shape}, stride 1, no padding"
        got = as_array(conv_dx(dy.copy(), Wt.copy()), "your conv_dx's result")
        numeric = numerical_gradient(lambda: ops.conv2d_forward(x, Wt)[0], x, dy)
        try:
            assert_close(got, numeric, "dx", case, tol=1e-7)
        except AssertionError as error:
            d_pad = np.pad(dy, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
            unflipped = ops.conv2d_forward(d_pad, Wt.transpose(1, 0, 2, 3).copy())[0]
            if got.shape == unflipped.shape and relative_error(got, unflipped) < 1e-9:
                raise AssertionError(f"{error}. Your dx is the correlation with the filters NOT rotated by 180°: "
                                     "flip them (W[:, :, ::-1, ::-1])") from None
            raise
    return "matches central differences on three shapes"


def solution_conv_dx(dy, W):
    F, C, kh, kw = W.shape
    d_pad = np.pad(dy, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))    # full correlation
    W_flip = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))     # (C, F, kh, kw), rotated 180°
    dx, _ = ops.conv2d_forward(d_pad, W_flip)
    return dx


# name, (H, C, F, k, stride, pad): the layers the seeds ask about, and one where the stride does not divide
CONV_NUMBERS_CASES = [("AlexNet conv1", (227, 3, 96, 11, 4, 0)), ("ZF conv1", (224, 3, 96, 7, 2, 1)),
                      ("VGG-16 conv1_2", (224, 64, 64, 3, 1, 1)), ("LeNet-5 C1", (32, 1, 6, 5, 1, 0)),
                      ("3x3 stride 2 on 10x10", (10, 1, 4, 3, 2, 0))]


def check_conv_numbers(conv_numbers):
    for label, (H, C, F, k, s, p) in CONV_NUMBERS_CASES:
        result = conv_numbers(H, C, F, k, s, p)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(f"conv_numbers should return a pair (output side, parameters), got {result!r}")
        side, params = result
        want_side = ops.conv_output_shape((1, C, H, H), k, s, p)[0]
        want_params = F * C * k * k + F
        where = f"{label} (H=W={H}, C={C}, F={F}, k={k}, stride {s}, pad {p})"
        if side != want_side:
            raise AssertionError(f"{where}: output side {side} is too {'large' if side > want_side else 'small'}; "
                                 "(H + 2p - k) / s, rounded down, plus one")
        if params != want_params:
            hint = " (did you count the F biases?)" if params == want_params - F else ""
            raise AssertionError(f"{where}: {params} parameters is wrong{hint}; every filter has C*k*k weights")
    return f"{len(CONV_NUMBERS_CASES)} layers, AlexNet's conv1 among them"


def solution_conv_numbers(H, C, F, k, stride, pad):
    return (H + 2 * pad - k) // stride + 1, F * C * k * k + F


register("01.col2im", "col2im, the adjoint of im2col", "col2im", check_col2im, solution_col2im)
register("01.conv_dx", "the input gradient with the flipped kernel", "conv_dx", check_conv_dx, solution_conv_dx)
register("01.conv_numbers", "a layer's output size and parameter count", "conv_numbers", check_conv_numbers,
         solution_conv_numbers)
