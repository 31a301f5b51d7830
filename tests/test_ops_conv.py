"""Convolution and linear ops: naive equality, gradients against central differences, exact properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import ops
from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_op, conv_configs, distinct_values

# every test here runs on both CPU paths, the readable ops and the fast C path (conftest.each_cpu_path)
pytestmark = pytest.mark.usefixtures("each_cpu_path")


def _conv_inputs(cfg, rng, dtype=np.float64):
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dtype)
    W = rng.standard_normal((cfg["F"], cfg["C"], cfg["kh"], cfg["kw"])).astype(dtype)
    b = rng.standard_normal(cfg["F"]).astype(dtype)
    return x, W, b


@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv_forward_equals_naive(cfg, seed):
    rng = np.random.default_rng(seed)
    x, W, b = _conv_inputs(cfg, rng)
    y, _ = ops.conv2d_forward(x, W, b, cfg["stride"], cfg["pad"])
    np.testing.assert_allclose(y, ops.conv2d_forward_naive(x, W, b, cfg["stride"], cfg["pad"]), rtol=1e-12, atol=1e-12)


@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv_backward_equals_naive(cfg, seed):
    rng = np.random.default_rng(seed)
    x, W, b = _conv_inputs(cfg, rng)
    y, cache = ops.conv2d_forward(x, W, b, cfg["stride"], cfg["pad"])
    dy = rng.standard_normal(y.shape)
    for got, want in zip(ops.conv2d_backward(dy, cache), ops.conv2d_backward_naive(dy, x, W, cfg["stride"], cfg["pad"])):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv_gradients_numerical(cfg, seed):
    rng = np.random.default_rng(seed)
    x, W, b = _conv_inputs(cfg, rng)
    err = check_op(ops.conv2d_forward, ops.conv2d_backward, (x, W, b), wrt=(0, 1, 2),
                   kwargs=dict(stride=cfg["stride"], pad=cfg["pad"]), rng=rng)
    assert err <= GRADCHECK_TOLERANCE


@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_col2im_is_adjoint_of_im2col(cfg, seed):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: the defining property of the adjoint.
    rng = np.random.default_rng(seed)
    x, _, _ = _conv_inputs(cfg, rng)
    k, s, p = (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["pad"]
    cols = ops.im2col(x, k, s, p)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * ops.col2im(c, x.shape, k, s, p)), rtol=1e-10)


def test_im2col_layout_is_documented_one(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    cols = ops.im2col(x, (2, 3), (1, 1), (1, 0))
    oh, ow = 6, 2
    assert cols.shape == (3 * 2 * 3, 2 * oh * ow)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    c, ky, kx, n, oy, ox = 2, 1, 2, 1, 3, 1
    assert cols[(c * 2 + ky) * 3 + kx, (n * oh + oy) * ow + ox] == xp[n, c, oy + ky, ox + kx]


def test_conv_is_linear_in_input(rng):
    x1, x2 = rng.standard_normal((2, 2, 3, 7, 6))
    W = rng.standard_normal((4, 3, 3, 3))
    y = lambda x: ops.conv2d_forward(x, W, None, 2, 1)[0]
    np.testing.assert_allclose(y(2.5 * x1 - x2), 2.5 * y(x1) - y(x2), atol=1e-12)


def test_conv_float32_stays_float32(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    y, cache = ops.conv2d_forward(x, W, b, 1, 1)
    dx, dW, db = ops.conv2d_backward(np.ones_like(y), cache)
    assert {a.dtype for a in (y, dx, dW, db)} == {np.dtype(np.float32)}


def test_conv_backward_skips_what_is_not_needed(rng):
    x, W = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    y, cache = ops.conv2d_forward(x, W, None)
    dy = rng.standard_normal(y.shape)
    dx, dW, db = ops.conv2d_backward(dy, cache, need_dx=False)
    assert dx is None and dW is not None
    dx, dW, db = ops.conv2d_backward(dy, cache, param_grads=False)
    assert dW is None and db is None and dx.shape == x.shape


def test_zf_and_alexnet_first_layer_sizes(rng):
    assert ops.conv_output_shape((224, 224), 7, 2, 1) == (110, 110)
    assert ops.conv_output_shape((227, 227), 11, 4, 0) == (55, 55)
    assert ops.conv_output_shape((55, 55), 5, 2, 0) == (26, 26)


def test_linear_gradients(rng):
    x, W, b = distinct_values((4, 6), rng), rng.standard_normal((6, 3)), rng.standard_normal(3)
    assert check_op(ops.linear_forward, ops.linear_backward, (x, W, b), wrt=(0, 1, 2), rng=rng) <= GRADCHECK_TOLERANCE


def test_backward_does_not_write_into_dy(rng):
    x, W = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    y, cache = ops.conv2d_forward(x, W, None, 1, 1)
    dy = rng.standard_normal(y.shape)
    before = dy.copy()
    ops.conv2d_backward(dy, cache)
    np.testing.assert_array_equal(dy, before)
