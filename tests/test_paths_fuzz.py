"""Every public op through every path, on hostile input (issue 14).

The paths: the readable NumPy bodies (``minicnn.cpu_path("readable")``), the fast CPU path (minicnn/fast_cpu: the C
loops on two threads, every array split), and the CUDA kernels
compiled for the CPU (tests/test_kernels.py's shim, the ops routed down their GPU branch). Each example runs one
op family on every path and holds each to the readable one:

* an input the readable op accepts, every path accepts, with the same answer: same shape, same dtype, the same
  values (bit for bit where no sum is involved; NaN and inf in the same places);
* an input it rejects, every path rejects with the same exception and message, which names the op.

The inputs: empty batches (N = 0), batch 1, 1x1 images, kernels wider than the input with padding, non-square
kernels/strides/pads, NaN and +-inf, ties, non-contiguous, Fortran-ordered and negatively strided arrays,
unsupported dtypes (float16, int32), and caches that belong to another call.
"""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import ops
import minicnn
from test_kernels import cpu_kernels, on_cpu_kernels  # noqa: F401  (a fixture, used through `paths`)
from test_ops_speedpaths import copy_threads

OP_NAMES = ("conv2d", "linear", "im2col", "col2im", "max_pool2d", "avg_pool2d", "relu", "lrn", "dropout",
            "softmax", "log_softmax")
SUM_TOL = {np.dtype(np.float32): dict(rtol=3e-5, atol=3e-5), np.dtype(np.float64): dict(rtol=1e-11, atol=1e-11)}


@pytest.fixture(scope="module")
def paths(request):
    """name -> a function returning the context in which the public ops take that path."""
    found = {"readable": lambda: minicnn.cpu_path("readable")}
    from minicnn import fast_cpu
    if fast_cpu.available():                           # else not on this machine (test_ops_native says why)
        found["2thread-fast"] = lambda: copy_threads(2)
    try:
        libs = request.getfixturevalue("cpu_kernels")
    except pytest.skip.Exception:
        libs = None                                    # no C++ compiler: no kernel path
    if libs is not None:
        found["kernels"] = lambda: on_cpu_kernels(libs, route_ops=True)
    return found


# --- drawing hostile arrays --------------------------------------------------------------------------------------

DTYPES = st.sampled_from([np.float32, np.float64, np.float32, np.float64, np.float16, np.int32])
VALUES = st.sampled_from(["normal", "ties", "nonfinite"])
LAYOUTS = st.sampled_from(["c", "c", "strided", "negative", "fortran", "readonly"])


def values(rng, shape, kind, dtype):
    with np.errstate(invalid="ignore"):                # NaN cast to int32 (that dtype is rejected anyway)
        return _values(rng, shape, kind).astype(dtype)


def _values(rng, shape, kind):
    if kind == "ties":
        a = rng.integers(-2, 3, shape).astype(np.float64)
    else:
        a = rng.standard_normal(shape)
        if kind == "nonfinite":
            a[rng.random(shape) < 0.12] = np.nan
            a[rng.random(shape) < 0.06] = np.inf
            a[rng.random(shape) < 0.06] = -np.inf
    return a


def laid_out(a, layout):
    """The same values in another memory layout: a strided view, a negatively strided view, Fortran order."""
    if a.ndim == 0 or layout == "c":
        return a
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "negative":
        return a[..., ::-1].copy()[..., ::-1]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    return np.asfortranarray(a)


class Draw:
    """Arrays for one example: values from ``seed`` (so every path sees the same), dtype and layout drawn."""

    def __init__(self, data, dtype):
        self.data, self.dtype = data, dtype
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        self.kind = data.draw(VALUES, label="values")

    def array(self, shape, label, kind=None, dtype=None):
        a = values(self.rng, shape, kind or self.kind, dtype or self.dtype)
        return laid_out(a, self.data.draw(LAYOUTS, label=f"{label} layout"))


# --- running one call on every path and comparing ------------------------------------------------------------------

def outcome(fn):
    try:
        return "ok", fn()
    except (ValueError, TypeError) as e:
        return "error", f"{type(e).__name__}: {e}"


def assert_same(got, want, exact, where):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, exact, f"{where}[{i}]")
        return
    if want is None:
        assert got is None, where
        return
    assert isinstance(got, np.ndarray), f"{where}: {type(got).__name__}"
    assert got.shape == want.shape and got.dtype == want.dtype, f"{where}: {got.shape} {got.dtype} vs {want.shape} {want.dtype}"
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=where, **SUM_TOL[want.dtype])


def on_every_path(paths, call, exact=False, named=rf"({'|'.join(OP_NAMES)}):", writeable=True):
    """``call()`` on every path; each path's outcome equal to the readable one's. Returns the readable outcome.

    named: a regex that a readable error's message must start with (the op's name). writeable: every output array
    must be writeable (ops return new arrays; a layer that is the identity may hand back the caller's own)."""
    results = {}
    for name, context in paths.items():
        with context():
            results[name] = outcome(call)
    want = results["readable"]
    if want[0] == "error":
        assert re.match(rf"\w+Error: {named}", want[1]), f"a vague error: {want[1]}"
    for name, got in results.items():
        assert got[0] == want[0], f"{name}: {got[1] if got[0] == 'error' else 'no error'}; readable: " \
                                  f"{want[1] if want[0] == 'error' else 'no error'}"
        if want[0] == "error":
            assert got[1] == want[1], f"{name}"
        else:
            assert_same(got[1], want[1], exact, name)
            for a in (got[1] if isinstance(got[1], tuple) else (got[1],)) if writeable else ():
                assert not isinstance(a, np.ndarray) or a.flags.writeable
    return want


# --- the ops ------------------------------------------------------------------------------------------------------

SIZE = st.one_of(st.integers(1, 6), st.just(0))       # a zero-sized channel or image axis now and then

geometry = st.fixed_dictionaries(dict(
    N=st.sampled_from([0, 1, 1, 2, 3]), C=st.one_of(st.integers(1, 3), st.just(0)), H=SIZE, W=SIZE,
    kh=st.integers(0, 4), kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2)))


@given(g=geometry, F=st.integers(1, 4), bias=st.booleans(), flags=st.sampled_from([(True, True), (True, False), (False, True), (False, False)]),
       wrong_cache=st.booleans(), dtype=DTYPES, data=st.data())
def test_conv2d(paths, g, F, bias, flags, wrong_cache, dtype, data):
    d = Draw(data, dtype)
    x = d.array((g["N"], g["C"], g["H"], g["W"]), "x")
    W = d.array((F, g["C"], g["kh"], g["kw"]), "W")
    b = d.array((F,), "b") if bias else None
    stride, pad = (g["sy"], g["sx"]), (g["ph"], g["pw"])

    def call():
        y, cache = ops.conv2d_forward(x, W, b, stride, pad)
        if wrong_cache:                                # a cache of another call: one more image
            _, cache = ops.conv2d_forward(np.zeros((x.shape[0] + 1,) + x.shape[1:], x.dtype), W, b, stride, pad)
        dy = laid_out(values(np.random.default_rng(1), y.shape, d.kind, y.dtype), "negative")
        return (y,) + ops.conv2d_backward(dy, cache, need_dx=flags[0], param_grads=flags[1])

    on_every_path(paths, call)


@given(N=st.sampled_from([0, 1, 3]), fin=st.integers(0, 5), fout=st.integers(0, 4), bias=st.booleans(),
       dtype=DTYPES, data=st.data())
def test_linear(paths, N, fin, fout, bias, dtype, data):
    d = Draw(data, dtype)
    x, W = d.array((N, fin), "x"), d.array((fin, fout), "W")
    b = d.array((fout,), "b") if bias else None

    def call():
        y, cache = ops.linear_forward(x, W, b)
        dy = laid_out(values(np.random.default_rng(2), y.shape, d.kind, y.dtype), "strided")
        return (y,) + ops.linear_backward(dy, cache)

    on_every_path(paths, call)


@given(g=geometry, dtype=DTYPES, data=st.data())
def test_im2col_and_col2im(paths, g, dtype, data):
    d = Draw(data, dtype)
    x = d.array((g["N"], g["C"], g["H"], g["W"]), "x")
    k, s, p = (g["kh"], g["kw"]), (g["sy"], g["sx"]), (g["ph"], g["pw"])
    if on_every_path(paths, lambda: ops.im2col(x, k, s, p), exact=True)[0] == "error":
        return
    oh, ow = ops.conv_output_shape(x.shape, k, s, p)
    cols = d.array((g["C"] * k[0] * k[1], g["N"] * oh * ow), "cols", dtype=x.dtype)
    on_every_path(paths, lambda: ops.col2im(cols, x.shape, k, s, p))
    wrong = d.array((g["C"] * k[0] * k[1] + 1, g["N"] * oh * ow), "wrong cols", dtype=x.dtype)
    on_every_path(paths, lambda: ops.col2im(wrong, x.shape, k, s, p))


pool_geometry = st.fixed_dictionaries(dict(
    N=st.sampled_from([0, 1, 1, 2]), C=st.one_of(st.integers(1, 3), st.just(0)), H=SIZE, W=SIZE,
    kh=st.integers(1, 4), kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), ceil=st.booleans()))


@given(g=pool_geometry, wrong_cache=st.sampled_from([None, None, "other-input", "switches", "foreign", "avg"]), dtype=DTYPES,
       data=st.data())
def test_max_pool_and_unpool(paths, g, wrong_cache, dtype, data):
    d = Draw(data, dtype)
    x = d.array((g["N"], g["C"], g["H"], g["W"]), "x")
    args = ((g["kh"], g["kw"]), (g["sy"], g["sx"]), (g["ph"], g["pw"]), g["ceil"])

    def call():
        y, cache = ops.max_pool2d_forward(x, *args)
        if wrong_cache == "other-input":
            _, cache = ops.max_pool2d_forward(np.zeros((x.shape[0] + 1,) + x.shape[1:], x.dtype), *args)
        elif wrong_cache == "switches":
            cache.switches = cache.switches[..., :1]
        elif wrong_cache == "foreign":             # switches not from a forward pass: some match no tap
            k = g["kh"] * g["kw"]
            cache.switches = np.random.default_rng(7).integers(-1, k + 2, cache.switches.shape).astype(np.int32)
        elif wrong_cache == "avg":
            _, cache = ops.avg_pool2d_forward(x, *args[:3])
        dy = laid_out(values(np.random.default_rng(3), y.shape, d.kind, y.dtype), "strided")
        return y, cache.switches, ops.max_pool2d_backward(dy, cache)

    on_every_path(paths, call, exact=True)


@given(g=pool_geometry, dtype=DTYPES, data=st.data())
def test_avg_pool(paths, g, dtype, data):
    d = Draw(data, dtype)
    x = d.array((g["N"], g["C"], g["H"], g["W"]), "x")

    def call():
        y, cache = ops.avg_pool2d_forward(x, (g["kh"], g["kw"]), (g["sy"], g["sx"]), (g["ph"], g["pw"]))
        dy = laid_out(values(np.random.default_rng(4), y.shape, d.kind, y.dtype), "negative")
        return y, ops.avg_pool2d_backward(dy, cache)

    on_every_path(paths, call)


shapes = st.sampled_from([(0, 3), (1, 1), (2, 3, 4, 5), (0, 2, 3, 3), (1, 1, 1, 1), (3, 7), (5,), ()])


@given(shape=shapes, rule=st.sampled_from(ops.RELU_RULES), dtype=DTYPES, dy_dtype=DTYPES,
       wrong_shape=st.booleans(), data=st.data())
def test_relu(paths, shape, rule, dtype, dy_dtype, wrong_shape, data):
    d = Draw(data, dtype)
    x = d.array(shape, "x")
    dy = d.array((2, 3) if wrong_shape else shape, "dy", dtype=dy_dtype)

    def call():
        y, cache = ops.relu_forward(x)
        return y, ops.relu_backward(dy, cache, rule)

    on_every_path(paths, call, exact=True)


@given(N=st.sampled_from([0, 1, 2]), C=st.integers(1, 7), H=st.integers(1, 3), W=st.integers(1, 3),
       n=st.sampled_from([1, 3, 5, 2]), k=st.sampled_from([2.0, 0.5, 1e-3]), alpha=st.sampled_from([1e-4, 0.9]),
       beta=st.sampled_from([0.75, 0.5]), wrong_shape=st.booleans(), dtype=DTYPES, data=st.data())
def test_lrn(paths, N, C, H, W, n, k, alpha, beta, wrong_shape, dtype, data):
    d = Draw(data, dtype)
    x = d.array((N, C, H, W), "x")
    dy = d.array((N, C + wrong_shape, H, W), "dy")

    def call():
        y, cache = ops.lrn_forward(x, n, k, alpha, beta)
        return y, cache.d, ops.lrn_backward(dy, cache)

    on_every_path(paths, call)


@given(shape=shapes, p=st.sampled_from([0.0, 0.5, 0.9, 1.0, -0.1, float("nan")]), wrong_shape=st.booleans(),
       dtype=DTYPES, data=st.data())
def test_dropout(paths, shape, p, wrong_shape, dtype, data):
    d = Draw(data, dtype)
    x, dy = d.array(shape, "x"), d.array((2, 3) if wrong_shape else shape, "dy")

    def call():
        y, mask = ops.dropout_forward(x, p, np.random.default_rng(5))
        return y, mask, ops.dropout_backward(dy, mask)

    on_every_path(paths, call, exact=True)


@given(shape=st.sampled_from([(0, 4), (1, 1), (3, 5), (2, 3, 4), (3, 0)]), axis=st.sampled_from([-1, 0, 1]),
       dtype=DTYPES, data=st.data())
def test_softmax(paths, shape, axis, dtype, data):
    d = Draw(data, dtype)
    z = d.array(shape, "z")
    on_every_path(paths, lambda: (ops.softmax(z, axis), ops.log_softmax(z, axis)))


def test_every_path_is_driven(paths):
    """The suite above would pass vacuously with one path: on this machine, say which ran."""
    assert "readable" in paths and len(paths) >= 2, sorted(paths)
