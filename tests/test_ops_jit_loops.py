"""The compiled loops of ops/_jit_loops.py: compiled == the same Python source run as plain Python, and both ==
the readable op. (ops/_cpu_fast.py's callers are tested against the readable ops in test_ops_speedpaths.py.)"""
import numpy as np
import pytest

from minicnn import ops
from minicnn.ops import _cpu_fast, _jit_loops

pytestmark = pytest.mark.skipif(not _jit_loops.available(),
                                reason="compiled loops off: Numba is not importable here, or MINICNN_JIT=0")


def _source(name):
    """The plain-Python function behind a compiled loop (what a reader of _jit_loops.py sees)."""
    fn = _jit_loops.compiled(name)
    return fn.py_func


def _awkward_input(rng, shape, dtype):
    """Values with ties, signed zeros, NaN and -inf, where max pooling's rules show."""
    x = rng.choice(np.array([-1.5, -0.0, 0.0, 0.25, 2.0, np.nan, -np.inf], dtype=dtype), size=shape)
    x[..., ::3] = rng.standard_normal(x[..., ::3].shape).astype(dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, stride, pad, ceil", [((2, 2), (2, 2), (0, 0), False), ((3, 3), (2, 2), (0, 0), True),
                                                       ((3, 2), (1, 2), (1, 1), False), ((2, 3), (3, 1), (1, 0), True)])
def test_pool_loops_compiled_equal_their_python_source_and_the_readable_op(dtype, kernel, stride, pad, ceil):
    rng = np.random.default_rng(3)
    x = _awkward_input(rng, (2, 3, 7, 8), dtype)
    y, cache = ops.max_pool2d_forward(x, kernel, stride, pad, ceil)          # the compiled loop
    with _cpu_fast.reference_paths():
        y_ref, cache_ref = ops.max_pool2d_forward(x, kernel, stride, pad, ceil)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.switches, cache_ref.switches)
    assert np.array_equal(np.signbit(y), np.signbit(y_ref))

    # the same loop, uncompiled
    N, C, H, W = x.shape
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = y.shape[2:]
    Hp, Wp = _cpu_fast.pool_read_extent(x.shape, kernel, stride, pad, (oh, ow))
    y_py, s_py = np.empty((N * C, oh, ow), dtype), np.empty((N * C, oh, ow), np.int32)
    offsets = tuple(ky * Wp + kx for ky in range(kh) for kx in range(kw))
    _source("max_pool_forward")(x.reshape(N * C, H, W), y_py, s_py, offsets, sy, sx, ph, pw, Hp, Wp,
                                dtype(-np.inf), 0, N * C)
    np.testing.assert_array_equal(y_py.reshape(y.shape), y)
    np.testing.assert_array_equal(s_py.reshape(y.shape), cache.switches)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.max_pool2d_backward(dy, cache)
    with _cpu_fast.reference_paths():
        dx_ref = ops.max_pool2d_backward(dy, cache_ref)
    np.testing.assert_array_equal(dx, dx_ref)                 # bit for bit: the reverse order of the sums
    assert np.array_equal(np.signbit(dx), np.signbit(dx_ref))


def test_disabled_switches_the_loops_off_and_back():
    assert _jit_loops.available()
    with _jit_loops.disabled():
        assert not _jit_loops.available()
    assert _jit_loops.available()
