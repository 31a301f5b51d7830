"""Max pooling with switches, unpooling and average pooling."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import ops
from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_op, distinct_values, pool_configs

# every test here runs on both CPU paths, the readable ops and the fast C path (conftest.each_cpu_path)
pytestmark = pytest.mark.usefixtures("each_cpu_path")


def _x(cfg, rng):
    return distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), rng)


def _reference_max_pool(x, kernel, stride, pad, ceil_mode):
    """Window by window with explicit bounds: value and window-local first argmax."""
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = ops.pool_output_shape(x.shape, kernel, stride, pad, ceil_mode)
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow))
    sw = np.empty((N, C, oh, ow), dtype=np.int32)
    for oy in range(oh):
        for ox in range(ow):
            best = np.full((N, C), -np.inf)
            arg = np.zeros((N, C), dtype=np.int32)
            for ky in range(kh):
                for kx in range(kw):
                    r, c = oy * sy + ky - ph, ox * sx + kx - pw
                    if 0 <= r < H and 0 <= c < W:
                        better = x[:, :, r, c] > best
                        best = np.where(better, x[:, :, r, c], best)
                        arg = np.where(better, ky * kw + kx, arg)
            y[:, :, oy, ox], sw[:, :, oy, ox] = best, arg
    return y, sw


@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_max_pool_matches_reference(cfg, seed):
    rng = np.random.default_rng(seed)
    x = _x(cfg, rng)
    y, cache = ops.max_pool2d_forward(x, cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
    y_ref, sw_ref = _reference_max_pool(x, cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.switches, sw_ref)
    assert cache.switches.dtype == np.int32


@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_max_pool_gradient_numerical(cfg, seed):
    rng = np.random.default_rng(seed)
    err = check_op(ops.max_pool2d_forward, ops.max_pool2d_backward, (_x(cfg, rng),),
                   kwargs=dict(kernel=cfg["kernel"], stride=cfg["stride"], pad=cfg["pad"], ceil_mode=cfg["ceil_mode"]),
                   rng=rng)
    assert err <= GRADCHECK_TOLERANCE


@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_unpool_puts_mass_only_at_switches(cfg, seed):
    rng = np.random.default_rng(seed)
    x = _x(cfg, rng)
    y, cache = ops.max_pool2d_forward(x, cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
    dy = rng.random(y.shape) + 0.5          # positive, so no cancellation can hide a misplaced value
    dx = ops.unpool2d(dy, cache)
    # Every output's maximum sits at a pixel of x equal to y: only those pixels may receive mass.
    winners = np.isin(x, y)
    assert np.all(dx[~winners] == 0)
    assert np.all(dx[winners] > 0)
    np.testing.assert_allclose(dx.sum(), dy.sum())  # mass is moved, never created or lost


@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_avg_pool_gradient_numerical(cfg, seed):
    rng = np.random.default_rng(seed)
    err = check_op(ops.avg_pool2d_forward, ops.avg_pool2d_backward, (_x(cfg, rng),),
                   kwargs=dict(kernel=cfg["kernel"], stride=cfg["stride"], pad=cfg["pad"]), rng=rng)
    assert err <= GRADCHECK_TOLERANCE


def test_first_maximum_wins_on_ties():
    x = np.zeros((1, 1, 2, 2))
    _, cache = ops.max_pool2d_forward(x, 2)
    assert cache.switches[0, 0, 0, 0] == 0
    x[0, 0, 1, 0] = x[0, 0, 1, 1] = 5.0
    _, cache = ops.max_pool2d_forward(x, 2)
    assert cache.switches[0, 0, 0, 0] == 2


def test_overlapping_windows_add_in_unpooling():
    # 3x3 stride 2 on 5x5: the centre pixel is in all four windows and wins all of them.
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5) * 0.01
    x[0, 0, 2, 2] = 10.0
    y, cache = ops.max_pool2d_forward(x, 3, 2)
    assert y.shape == (1, 1, 2, 2) and np.all(y == 10.0)
    dx = ops.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    assert dx[0, 0, 2, 2] == 10.0 and np.count_nonzero(dx) == 1


@pytest.mark.parametrize("size,kernel,stride,ceil,expected", [
    (110, 3, 2, True, 55), (110, 3, 2, False, 54), (26, 3, 2, True, 13), (26, 3, 2, False, 12),
    (13, 3, 2, True, 6), (55, 3, 2, False, 27), (6, 2, 2, True, 3), (5, 2, 2, True, 3),
])
def test_pool_output_sizes(size, kernel, stride, ceil, expected):
    assert ops.pool_output_shape((size, size), kernel, stride, 0, ceil) == (expected, expected)


def test_ceil_mode_drops_window_starting_in_padding():
    # H=4, k=2, s=2, pad=1: ceil((4+2-2)/2)+1 = 3; the 3rd window starts at 4 < H + pad = 5 -> kept
    assert ops.pool_output_shape((4, 4), 2, 2, 1, True) == (3, 3)
    # H=5, k=3, s=3, pad=1: span 4 -> ceil(4/3)+1 = 3 windows; the 3rd starts at 6 >= H + pad = 6 -> dropped
    assert ops.pool_output_shape((5, 5), 3, 3, 1, True) == (2, 2)
