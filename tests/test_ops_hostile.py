"""Hostile but fair input to the public ops (issue 14): wrong caches, empty batches, unsupported dtypes, caller
buffers reused between forward and backward, a damaged build cache. Whatever could kill the interpreter runs
in a subprocess, so that a regression fails one test instead of taking pytest down with it."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minicnn import ops
import minicnn


def run_isolated(code, env=None, timeout=300):
    """Run ``code`` in a fresh interpreter with this worktree first on the path; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full_env["PYTHONPATH"] = root + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_survived(proc):
    """The child exited by itself (a negative return code is a signal: SIGSEGV, SIGBUS)."""
    assert proc.returncode == 0, f"child died with return code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


# --- item 1: a cache whose switches do not belong to dy -----------------------------------------------------------

WRONG_SWITCHES = """
import numpy as np
from minicnn import ops
from minicnn.ops.pool import PoolCache
rng = np.random.default_rng(0)
for shape, k, s in [((4, 8, 64, 64), 2, 2), ((4, 8, 63, 63), 3, 2), ((2, 3, 9, 9), 3, 1)]:
    x = rng.standard_normal(shape).astype(np.float32)
    y, cache = ops.max_pool2d_forward(x, k, s)
    for switches in (cache.switches[:1, :1], cache.switches[:, :, :1], cache.switches.reshape(-1)):
        bad = PoolCache(cache.x_shape, cache.kernel, cache.stride, cache.pad, cache.out_shape, switches)
        try:
            ops.unpool2d(np.ones(cache.out_shape, np.float32), bad)
        except ValueError as e:
            assert "switches" in str(e) and str(cache.out_shape) in str(e), e
        else:
            raise SystemExit(f"no error for switches of shape {switches.shape}")
print("ok")
"""


@pytest.mark.parametrize("native", ["fast", "readable"], ids=["C", "no-C"])
def test_unpool_with_switches_of_the_wrong_shape_is_an_error_not_a_crash(native):
    proc = run_isolated(WRONG_SWITCHES, env={"MINICNN_CPU_PATH": native})
    assert_survived(proc)
    assert "ok" in proc.stdout


WRONG_CACHES = """
import dataclasses
import numpy as np
from minicnn import ops
rng = np.random.default_rng(1)
x = rng.standard_normal((3, 4, 10, 10)).astype(np.float32)
W = rng.standard_normal((5, 4, 3, 2)).astype(np.float32)
y, conv = ops.conv2d_forward(x, W, None, 1, 1)
_, pool = ops.max_pool2d_forward(x, 3, 2)
_, avg = ops.avg_pool2d_forward(x, 2)
dy_conv, dy_pool = np.ones(y.shape, np.float32), np.ones(pool.out_shape, np.float32)
bad = [
    (ops.conv2d_backward, dy_conv, dataclasses.replace(conv, W=W[:, :, :2])),
    (ops.conv2d_backward, dy_conv, dataclasses.replace(conv, x_shape=(3, 4, 40, 40))),
    (ops.conv2d_backward, dy_conv, dataclasses.replace(conv, **({"x": x[:1]} if hasattr(conv, "x") else {"cols": conv.cols[:1]}))),
    (ops.conv2d_backward, dy_conv, dataclasses.replace(conv, W=W.astype(np.float64))),
    (ops.max_pool2d_backward, dy_pool, dataclasses.replace(pool, x_shape=(3, 4, 100, 100))),
    (ops.max_pool2d_backward, dy_pool, dataclasses.replace(pool, x_shape=(3, 5, 10, 10))),
    (ops.max_pool2d_backward, dy_pool, dataclasses.replace(pool, kernel=(2, 2))),
    (ops.max_pool2d_backward, dy_pool, dataclasses.replace(pool, switches=pool.switches.astype(np.float32))),
    (ops.max_pool2d_backward, dy_pool, dataclasses.replace(pool, switches=None)),
    (ops.max_pool2d_backward, dy_pool, avg),
    (ops.avg_pool2d_backward, np.ones(avg.out_shape, np.float32), dataclasses.replace(avg, x_shape=(3, 4, 50, 50))),
    (ops.max_pool2d_backward, dy_pool, conv),
    (ops.conv2d_backward, dy_conv, pool),
]
for i, (fn, dy, cache) in enumerate(bad):
    try:
        fn(dy, cache)
    except (ValueError, TypeError) as e:
        assert fn.__name__.split("_backward")[0].replace("unpool2d", "max_pool2d") in str(e), (i, e)
        print(i, type(e).__name__, e)
    else:
        raise SystemExit(f"case {i}: no error")
print("ok")
"""


@pytest.mark.parametrize("native", ["fast", "readable"], ids=["C", "no-C"])
def test_caches_that_do_not_belong_to_dy_are_errors_naming_the_op(native):
    proc = run_isolated(WRONG_CACHES, env={"MINICNN_CPU_PATH": native})
    assert_survived(proc)
    assert proc.stdout.rstrip().endswith("ok"), proc.stdout


# --- item 3: the caller reuses its input buffer between forward and backward ----------------------------------------

PATHS = [1, 2, "readable"]
PATH_IDS = ["1thread-fast", "2thread-fast", "readable"]


def on_path(path):
    """The context in which the public ops take ``path``: the fast path on that many threads (test_ops_speedpaths'
    ``copy_threads``), or the readable NumPy bodies."""
    from test_ops_speedpaths import copy_threads
    return minicnn.cpu_path("readable") if path == "readable" else copy_threads(path)


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0)], ids=["direct", "gemm"])
def test_conv_gradients_do_not_change_when_the_caller_overwrites_its_input_after_forward(path, dtype, stride, pad):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 7, 6)).astype(dtype)
    W = rng.standard_normal((4, 2, 3, 2)).astype(dtype)
    with on_path(path):
        y, cache = ops.conv2d_forward(x.copy(), W, None, stride, pad)
        dy = rng.standard_normal(y.shape).astype(dtype)
        want = ops.conv2d_backward(dy, cache)
        buffer = x.copy()
        _, cache = ops.conv2d_forward(buffer, W, None, stride, pad)
        buffer[...] = 0                                   # the next batch goes into the same buffer
        got = ops.conv2d_backward(dy, cache)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# --- item 6: narrow inputs under wide padded kernels, on the paths without the C loops -------------------------------

@pytest.mark.parametrize("path", [1, 2], ids=["1thread-fast", "2thread-fast"])
@pytest.mark.parametrize("x_shape, w_shape, stride, pad", [
    ((2, 3, 1, 1), (4, 3, 5, 5), 1, 2), ((1, 2, 1, 3), (2, 2, 3, 5), 1, (1, 2)), ((2, 1, 2, 1), (3, 1, 5, 5), (1, 2), 2),
    ((1, 1, 1, 1), (1, 1, 1, 5), 1, (0, 2)), ((2, 2, 3, 2), (2, 2, 1, 6), (2, 1), (0, 3))])
def test_conv_on_narrow_inputs_with_wide_padded_kernels_matches_readable(path, x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(6)
    x, W = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    with minicnn.cpu_path("readable"):
        y_ref, cache_ref = ops.conv2d_forward(x, W, None, stride, pad)
        dy = rng.standard_normal(y_ref.shape)
        want = ops.conv2d_backward(dy, cache_ref)
    with on_path(path):
        y, cache = ops.conv2d_forward(x, W, None, stride, pad)
        got = ops.conv2d_backward(dy, cache)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# --- items 5 and 7: unsupported dtypes, empty batches, vague errors --------------------------------------------------

def _public_calls(x):
    """Every public op on a (N, C, H, W) input x (forward, then backward where the forward passed)."""
    return {
        "max_pool2d": lambda: ops.max_pool2d_forward(x, 2),
        "avg_pool2d": lambda: ops.avg_pool2d_forward(x, 2),
        "conv2d": lambda: ops.conv2d_forward(x, np.ones((2,) + x.shape[1:2] + (3, 2), x.dtype), None, 1, 1),
        "im2col": lambda: ops.im2col(x, 2),
        "lrn": lambda: ops.lrn_forward(x, 3),
        "relu": lambda: ops.relu_forward(x),
        "dropout": lambda: ops.dropout_forward(x, 0.5, np.random.default_rng(0)),
        "softmax": lambda: ops.softmax(x.reshape(x.shape[0], -1)),
        "log_softmax": lambda: ops.log_softmax(x.reshape(x.shape[0], -1)),
        "linear": lambda: ops.linear_forward(x.reshape(x.shape[0], -1), np.ones((x[0].size, 3), x.dtype)),
    }


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.bool_, np.complex64])
def test_unsupported_dtypes_are_rejected_by_every_op_on_every_path(path, dtype):
    x = np.ones((2, 3, 4, 4), dtype=dtype)
    with on_path(path):
        for op, call in _public_calls(x).items():
            with pytest.raises(TypeError, match=rf"{op}: \w+.* must be float32 or float64, got dtype {np.dtype(dtype)}"):
                call()


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("rule", ops.RELU_RULES)
def test_relu_backward_on_an_empty_batch_is_empty(path, rule):
    for dtype in (np.float32, np.float64):
        x = np.zeros((0, 3, 4, 4), dtype)
        with on_path(path):
            dx = ops.relu_backward(np.zeros_like(x), ops.relu_forward(x)[1], rule)
        assert dx.shape == x.shape and dx.dtype == dtype


def test_vague_errors_now_name_the_op():
    with pytest.raises(ValueError, match=r"im2col: input must have rank 4 \(N, C, H, W\), got shape \(3, 4, 4\)"):
        ops.im2col(np.zeros((3, 4, 4)), 2)
    with pytest.raises(ValueError, match=r"col2im: cols must have the shape"):
        ops.col2im(np.zeros((8, 5)), (1, 2, 3, 3), 2)
    with pytest.raises(ValueError, match="softmax: the class axis"):
        ops.softmax(np.zeros((3, 0)))
    with pytest.raises(TypeError, match="relu: input must be a NumPy or CuPy array, got list"):
        ops.relu_forward([1.0, -1.0])
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(3,\)"):
        ops.linear_forward(np.ones((2, 4)), np.ones((4, 3)), np.ones(4))
    with pytest.raises(TypeError, match="conv2d: bias must be float32 or float64"):
        ops.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2)), np.ones(2, np.int64))
    x = np.ones((1, 2, 3, 3))
    _, cache = ops.lrn_forward(x, 3)
    with pytest.raises(ValueError, match=r"lrn: upstream gradient must have the input shape \(1, 2, 3, 3\)"):
        ops.lrn_backward(np.ones((1, 2, 3, 4)), cache)


# --- item 4: max pooling propagates NaN ---------------------------------------------------------------------------

def _pool_by_definition(x, k, s, p):
    """y and switches window by window: the first NaN wins, else the first maximum (padding is -inf)."""
    (kh, kw), (sy, sx), (ph, pw) = k, s, p
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    N, C = x.shape[:2]
    oh, ow = (xp.shape[2] - kh) // sy + 1, (xp.shape[3] - kw) // sx + 1
    y, sw = np.empty((N, C, oh, ow), x.dtype), np.empty((N, C, oh, ow), np.int32)
    for n, c, oy, ox in np.ndindex(N, C, oh, ow):
        window = xp[n, c, oy * sy:oy * sy + kh, ox * sx:ox * sx + kw].reshape(-1)
        nan = np.flatnonzero(np.isnan(window))
        t = nan[0] if nan.size else int(np.argmax(window))
        y[n, c, oy, ox], sw[n, c, oy, ox] = window[t], t
    return y, sw


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))])
def test_max_pool_propagates_nan_and_its_switch_points_at_the_first_nan(path, dtype, k, s, p):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 8, 10)).astype(dtype)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[1, 2] = np.nan                                   # all-NaN windows: NaN, switch 0
    x[0, 1, :, ::2] = np.inf
    want_y, want_s = _pool_by_definition(x, k, s, p)
    with on_path(path):
        y, cache = ops.max_pool2d_forward(x, k, s, p)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = ops.max_pool2d_backward(dy, cache)
    np.testing.assert_array_equal(y, want_y)           # NaN where the window holds one
    np.testing.assert_array_equal(cache.switches, want_s)
    assert np.isnan(y[1, 2]).all() and (cache.switches[1, 2] == 0).all() or any(p)
    with minicnn.cpu_path("readable"):
        np.testing.assert_array_equal(dx, ops.max_pool2d_backward(dy, cache))


def test_max_pool_with_nan_gives_pytorchs_values():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 9, 8))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[0, 0, :3, :3] = np.nan
    for k, s, p in [(2, 2, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))]:
        y, _ = ops.max_pool2d_forward(x, k, s, p)
        np.testing.assert_array_equal(y, torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p).numpy())


def test_hyper_parameters_that_would_be_truncated_or_poison_every_output_are_errors():
    x = np.ones((1, 2, 5, 5))
    for bad in [(2.7, 2), True, 2.0, (2, 2, 2), "22"]:
        with pytest.raises(TypeError, match=r"max_pool2d: kernel must be an int or an \(h, w\) pair of ints"):
            ops.max_pool2d_forward(x, bad)
    with pytest.raises(ValueError, match=r"im2col: kernel along height must be >= 1, got 0"):
        ops.im2col(x, (0, 2))
    with pytest.raises(ValueError, match=r"conv2d: kernel along width must be >= 1, got 0"):
        ops.conv2d_forward(x, np.ones((1, 2, 2, 0)))
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int"):
        ops.conv2d_forward(x, np.ones((1, 2, 2, 2)), None, (1.5, 1))
    for what in ("k", "alpha", "beta"):
        for value in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match=rf"lrn: {what} must be a finite number"):
                ops.lrn_forward(x, 3, **{what: value})
    np.testing.assert_array_equal(ops.lrn_forward(x, np.int64(3))[0], ops.lrn_forward(x, 3)[0])
    with pytest.raises(TypeError, match="dropout: rng must be a numpy.random.Generator"):
        ops.dropout_forward(x, 0.5, 3)
