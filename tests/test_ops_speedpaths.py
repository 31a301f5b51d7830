"""The fast CPU path (minicnn/fast_cpu/) against the readable ops it stands in for.

Every public op that the fast path computes is run twice: as is, and inside ``minicnn.cpu_path("readable")``
(the readable body). Both dtypes, one and two threads (with the thresholds lowered through
``fast_cpu.tuning.tuned`` so that even tiny arrays are split and a convolution runs one image per batch chunk),
and every call repeated on fresh data of the same shape so that a stale reused scratch buffer, or a returned
array that aliases one, shows up as a wrong or changed result.
"""
import contextlib
import itertools
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn
from minicnn import ops
from minicnn.fast_cpu import FastConvCache, build, threads as fast_threads
from minicnn.fast_cpu.tuning import Tuning, tuned
from minicnn.gradcheck import conv_configs, distinct_values, pool_configs

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


@contextlib.contextmanager
def copy_threads(n):
    """The fast path on ``n`` threads that split even the smallest test arrays; with 2 threads a convolution also
    runs one image per batch chunk and even the tiniest one in parallel (with 1, the whole small test batch is
    one chunk), so both ways are covered."""
    if build.library(np.float32) is None:
        pytest.skip(f"the fast path is unavailable: {build.build_error()}")
    old = fast_threads.get_num_threads()
    fast_threads.set_num_threads(n)
    changes = dict(min_elements_per_thread=1)
    if n == 2:
        changes.update(chunk_bytes=1, parallel_conv_flops=0)
    try:
        with minicnn.cpu_path("fast"), tuned(**changes):
            yield
    finally:
        fast_threads.set_num_threads(old)


threads_param = pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "2thread"])
pool_threads_param = threads_param


def reference(fn, *args, **kwargs):
    with minicnn.cpu_path("readable"):
        return fn(*args, **kwargs)


def test_the_switch_picks_the_path_and_restores_it():
    x = np.ones((1, 1, 4, 4), np.float32)
    W = np.ones((1, 1, 3, 3), np.float32)
    if build.library(np.float32) is not None:
        assert isinstance(ops.conv2d_forward(x, W)[1], FastConvCache)
    with minicnn.cpu_path("readable"):
        assert minicnn.active_cpu_path() == ("readable", "switched off by cpu_path('readable')")
        assert type(ops.conv2d_forward(x, W)[1]) is ops.conv.ConvCache
        with minicnn.cpu_path("fast"):
            assert minicnn.active_cpu_path()[0] == ("fast" if build.library(np.float32) is not None else "readable")
        assert minicnn.active_cpu_path()[0] == "readable"
    with pytest.raises(ValueError, match="cpu_path: expected one of"):
        minicnn.cpu_path("numba")


def _conv_data(cfg, rng, dtype):
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dtype)
    W = rng.standard_normal((cfg["F"], cfg["C"], cfg["kh"], cfg["kw"])).astype(dtype)
    b = rng.standard_normal(cfg["F"]).astype(dtype)
    return x, W, b


@threads_param
@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=conv_configs(max_batch=3, max_channels=4, max_filters=4), seed=st.integers(0, 2**31 - 1))
def test_conv_forward_matches_readable(threads, dtype, cfg, seed):
    with copy_threads(threads):
        rng = np.random.default_rng(seed)
        k, s, p = (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["pad"]
        results = []
        for _ in range(2):                       # second call: same shapes, new data, reused workspaces
            x, W, b = _conv_data(cfg, rng, dtype)
            y, cache = ops.conv2d_forward(x, W, b, s, p)
            y_ref, cache_ref = reference(ops.conv2d_forward, x, W, b, s, p)
            np.testing.assert_allclose(y, y_ref, **TOL[dtype])
            np.testing.assert_array_equal(cache_ref.cols, ops.im2col(x, k, s, p))
            assert y.dtype == dtype and y.flags.c_contiguous
            y_nobias, _ = ops.conv2d_forward(x, W, None, s, p)
            np.testing.assert_allclose(y_nobias, reference(ops.conv2d_forward, x, W, None, s, p)[0], **TOL[dtype])
            results.append((y, y.copy()))
        for y, y_copy in results:                # nothing returned was overwritten by a later call
            np.testing.assert_array_equal(y, y_copy)
        assert not np.shares_memory(results[0][0], results[1][0])


@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=conv_configs(max_batch=3, max_channels=4, max_filters=4), seed=st.integers(0, 2**31 - 1),
       need_dx=st.booleans(), param_grads=st.booleans())
@threads_param
def test_conv_backward_matches_readable_and_naive(threads, dtype, cfg, seed, need_dx, param_grads):
    with copy_threads(threads):
        rng = np.random.default_rng(seed)
        s, p = cfg["stride"], cfg["pad"]
        kept = []
        for _ in range(2):
            x, W, b = _conv_data(cfg, rng, dtype)
            y, cache = ops.conv2d_forward(x, W, b, s, p)
            dy = rng.standard_normal(y.shape).astype(dtype)
            dy_before = dy.copy()
            got = ops.conv2d_backward(dy, cache, need_dx=need_dx, param_grads=param_grads)
            np.testing.assert_array_equal(dy, dy_before)                         # backward never writes into dy
            _, cache_ref = reference(ops.conv2d_forward, x, W, b, s, p)
            want = reference(ops.conv2d_backward, dy, cache_ref, need_dx=need_dx, param_grads=param_grads)
            naive = ops.conv2d_backward_naive(dy, x, W, s, p)
            for g, w, n, wanted in zip(got, want, naive, (need_dx, param_grads, param_grads)):
                if not wanted:
                    assert g is None and w is None
                    continue
                assert g.shape == w.shape and g.dtype == w.dtype
                np.testing.assert_allclose(g, w, **TOL[dtype])
                np.testing.assert_allclose(g, n, rtol=1e-10 if dtype == np.float64 else 1e-4,
                                           atol=1e-10 if dtype == np.float64 else 1e-4)
            kept.append([(g, g.copy()) for g in got if g is not None])
        for pairs in kept:
            for g, g_copy in pairs:
                np.testing.assert_array_equal(g, g_copy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1)])
def test_conv_one_chunk_per_thread_keeps_each_chunks_columns(dtype, stride, pad):
    """2 threads, columns small enough to keep: the batch runs as one chunk per thread and the backward finds
    each chunk's columns by its batch range; the results are the readable op's."""
    rng = np.random.default_rng(3)
    x, W, b = (rng.standard_normal(shape).astype(dtype) for shape in [(5, 3, 9, 9), (4, 3, 3, 3), (4,)])
    with copy_threads(2), tuned(direct_image_bytes=0, chunk_bytes=Tuning().chunk_bytes):
        y, cache = ops.conv2d_forward(x, W, b, stride, pad)
        if build.gemm(dtype):
            assert sorted(cache.cols) == [(0, 2), (2, 5)]
        dy = rng.standard_normal(y.shape).astype(dtype)
        got = ops.conv2d_backward(dy, cache)
    y_ref, cache_ref = reference(ops.conv2d_forward, x, W, b, stride, pad)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    for g, w in zip(got, reference(ops.conv2d_backward, dy, cache_ref)):
        np.testing.assert_allclose(g, w, **TOL[dtype])


def test_small_convolutions_run_in_one_thread(monkeypatch):
    """Below TUNING.parallel_conv_flops a convolution runs start to end in the calling thread."""
    seen = set()
    real = fast_threads.parallel_chunks
    monkeypatch.setattr(fast_threads, "parallel_chunks", lambda fn, n, e: real(
        lambda a, b: seen.add(threading.get_ident()) or fn(a, b), n, e))
    x = np.ones((2, 1, 12, 12), np.float32)
    W = np.ones((6, 1, 5, 5), np.float32)
    with copy_threads(2), tuned(parallel_conv_flops=15e6, direct_image_bytes=0):
        from minicnn.fast_cpu import conv as fast_conv
        monkeypatch.setattr(fast_conv, "parallel_chunks", fast_threads.parallel_chunks)
        y, cache = ops.conv2d_forward(x, W)
        assert cache.threads == 1
        ops.conv2d_backward(y, cache)
    assert seen <= {threading.get_ident()}
    with fast_threads.serial():
        seen.clear()
        fast_threads.parallel_chunks(lambda a, b: seen.add(threading.get_ident()), 4, 10**9)
    assert seen == {threading.get_ident()}


def _pool_input(cfg, rng, dtype, ties):
    shape = (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
    if ties:    # few distinct values: windows with several equal maxima (the first one must win)
        return rng.integers(-2, 3, shape).astype(dtype)
    return distinct_values(shape, rng).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=pool_configs(max_batch=2, max_channels=4, max_size=10), seed=st.integers(0, 2**31 - 1),
       ties=st.booleans())
@pool_threads_param
def test_max_pool_matches_readable(threads, dtype, cfg, seed, ties):
    with copy_threads(threads):
        rng = np.random.default_rng(seed)
        args = (cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
        kept = []
        for _ in range(2):
            x = _pool_input(cfg, rng, dtype, ties)
            y, cache = ops.max_pool2d_forward(x, *args)
            y_ref, cache_ref = reference(ops.max_pool2d_forward, x, *args)
            np.testing.assert_array_equal(y, y_ref)
            np.testing.assert_array_equal(cache.switches, cache_ref.switches)
            assert cache.switches.dtype == np.int32 and cache.out_shape == cache_ref.out_shape
            dy = rng.standard_normal(y.shape).astype(dtype)
            dx = ops.max_pool2d_backward(dy, cache)
            # bit for bit: the scatter adds overlapping windows in the readable path's tap order
            np.testing.assert_array_equal(dx, reference(ops.max_pool2d_backward, dy, cache_ref))
            assert dx.dtype == dtype and dx.shape == x.shape and dx.flags.c_contiguous
            kept.append([(a, a.copy()) for a in (y, cache.switches, dx)])
        for pairs in kept:
            for a, a_copy in pairs:
                np.testing.assert_array_equal(a, a_copy)


@pool_threads_param
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_non_finite_values_match_readable(threads, dtype):
    with copy_threads(threads):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 3, 7, 7)).astype(dtype)
        x[0, 0, 0, 0], x[0, 1, 3, 3], x[1, 2, 5, 6], x[1, 0, 2, 2] = np.nan, np.inf, -np.inf, np.nan
        for args in [(3, 2, 0, True), (3, 2, 1, False), (2, 2, 0, False), (3, 1, 1, False)]:
            y, cache = ops.max_pool2d_forward(x, *args)
            y_ref, cache_ref = reference(ops.max_pool2d_forward, x, *args)
            np.testing.assert_array_equal(y, y_ref)
            np.testing.assert_array_equal(cache.switches, cache_ref.switches)
            dy = rng.standard_normal(y.shape).astype(dtype)
            dy[0, 0, 0, 0] = np.inf         # goes to the readable path: inf reaches its switch cell only
            np.testing.assert_array_equal(ops.max_pool2d_backward(dy, cache),
                                          reference(ops.max_pool2d_backward, dy, cache_ref))


@pool_threads_param
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("args", [(2, 2, 0, False), (3, 2, 0, True), (3, 2, 1, False), (3, 1, 1, True), (2, 3, 1, True)])
def test_max_pool_all_ties_padding_and_signed_zeros_match_readable(threads, dtype, args):
    """Windows that are all equal, all -inf or all NaN (the switch is 0 even where tap 0 is padding), -0.0 beside
    +0.0, and a dy of -0.0: values, switches and dx bit for bit."""
    with copy_threads(threads):
        rng = np.random.default_rng(3)
        for fill, shape in itertools.product((1.0, -np.inf, np.nan, None), [(2, 3, 7, 8), (2, 3, 6, 6)]):
            x = rng.choice(np.array([0.0, -0.0], dtype=dtype), shape) if fill is None else \
                np.full(shape, fill, dtype=dtype)
            y, cache = ops.max_pool2d_forward(x, *args)
            y_ref, cache_ref = reference(ops.max_pool2d_forward, x, *args)
            np.testing.assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))
            np.testing.assert_array_equal(cache.switches, cache_ref.switches)
            dy = rng.choice(np.array([-0.0, 0.0, 1.5, -2.0], dtype=dtype), y.shape)
            dx = ops.max_pool2d_backward(dy, cache)
            np.testing.assert_array_equal(dx.view(np.uint8), reference(ops.max_pool2d_backward, dy, cache_ref).view(np.uint8))


@pool_threads_param
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", [(2, 2), (3, 2), (1, 1)])
def test_max_pool_tiling_windows_match_readable(threads, dtype, kernel):
    """stride = kernel on divisible sizes (windows that tile the input), with ties, and with a NaN."""
    with copy_threads(threads):
        rng = np.random.default_rng(11)
        for ties, nan in [(False, False), (True, False), (True, True)]:
            shape = (3, 2, 2 * kernel[0] * 2, 3 * kernel[1])
            x = rng.integers(-2, 3, shape).astype(dtype) if ties else rng.standard_normal(shape).astype(dtype)
            if nan:
                x[1, 1, 0, 0] = np.nan
            y, cache = ops.max_pool2d_forward(x, kernel)
            y_ref, cache_ref = reference(ops.max_pool2d_forward, x, kernel)
            np.testing.assert_array_equal(y, y_ref)
            np.testing.assert_array_equal(cache.switches, cache_ref.switches)
            dy = rng.standard_normal(y.shape).astype(dtype)
            np.testing.assert_array_equal(ops.max_pool2d_backward(dy, cache), reference(ops.max_pool2d_backward, dy, cache_ref))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_backward_with_foreign_switches_matches_readable(dtype):
    """Switches outside [0, kh*kw) (not from a forward pass) match no tap in the readable path: the fast path
    hands such switches to it."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
    _, cache = ops.max_pool2d_forward(x, 3, 2, 0, True)
    cache.switches[0, 0, 0, 0], cache.switches[1, 1, 1, 1] = -1, 9
    dy = rng.standard_normal(cache.out_shape).astype(dtype)
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, cache), reference(ops.max_pool2d_backward, dy, cache))


@threads_param
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_forward_matches_readable_bit_for_bit(threads, dtype):
    with copy_threads(threads):
        rng = np.random.default_rng(8)
        for shape in [(2, 3, 5, 4), (7,), (3, 11)]:
            x = rng.standard_normal(shape).astype(dtype)
            x.reshape(-1)[:5] = [0.0, -0.0, np.nan, np.inf, -np.inf]
            y, cache = ops.relu_forward(x)
            y_ref, _ = reference(ops.relu_forward, x)
            np.testing.assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))
            assert cache is x and y.dtype == dtype and not np.shares_memory(y, x)
            y2, _ = ops.relu_forward(-x)
            np.testing.assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))        # not overwritten
            assert not np.shares_memory(y, y2)
        xt = rng.standard_normal((4, 6)).astype(dtype).T                                 # not contiguous
        np.testing.assert_array_equal(ops.relu_forward(xt)[0], np.maximum(xt, 0))


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 3), C=st.integers(1, 9), H=st.integers(1, 5), W=st.integers(1, 5),
       n=st.sampled_from([1, 3, 5, 7]), k=st.sampled_from([0.5, 2.0]), alpha=st.sampled_from([1e-4, 0.9]),
       beta=st.sampled_from([0.75, 0.6]), seed=st.integers(0, 2**31 - 1))
@threads_param
def test_lrn_matches_readable(threads, dtype, N, C, H, W, n, k, alpha, beta, seed):
    with copy_threads(threads):
        rng = np.random.default_rng(seed)
        kept = []
        for _ in range(2):
            x = rng.standard_normal((N, C, H, W)).astype(dtype)
            y, cache = ops.lrn_forward(x, n, k, alpha, beta)
            y_ref, cache_ref = reference(ops.lrn_forward, x, n, k, alpha, beta)
            np.testing.assert_allclose(y, y_ref, **TOL[dtype])
            np.testing.assert_allclose(cache.d, cache_ref.d, **TOL[dtype])
            dy = rng.standard_normal(x.shape).astype(dtype)
            dx = ops.lrn_backward(dy, cache)
            np.testing.assert_allclose(dx, reference(ops.lrn_backward, dy, cache_ref), **TOL[dtype])
            assert type(cache).__name__ == "FastLRNCache" and type(cache_ref) is ops.normalization.LRNCache
            assert y.dtype == dx.dtype == dtype
            kept.append([(a, a.copy()) for a in (y, cache.d, cache.scale, dx)])
        for pairs in kept:
            for a, a_copy in pairs:
                np.testing.assert_array_equal(a, a_copy)


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
@pytest.mark.parametrize("dtype", DTYPES)
@threads_param
def test_relu_backward_matches_readable_bit_for_bit(threads, dtype, rule):
    with copy_threads(threads):
        rng = np.random.default_rng(7)
        for shape in [(2, 3, 5, 4), (7,), (3, 11)]:
            x = rng.standard_normal(shape).astype(dtype)
            dy = rng.standard_normal(shape).astype(dtype)
            flat_x, flat_dy = x.reshape(-1), dy.reshape(-1)
            flat_x[:3] = [0.0, -0.0, np.nan]
            flat_dy[:5] = [np.inf, -np.inf, np.nan, -0.0, 0.0]
            dy_before = dy.copy()
            got = ops.relu_backward(dy, x, rule)
            want = reference(ops.relu_backward, dy, x, rule)
            np.testing.assert_array_equal(dy, dy_before)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))    # same bits: signed zeros, NaN
            second = ops.relu_backward(-dy, x, rule)
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))    # not overwritten
            assert not np.shares_memory(got, second)


def test_lrn_gradient_numerical():
    from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_op
    rng = np.random.default_rng(3)
    x = distinct_values((2, 6, 3, 3), rng, spacing=0.02)
    for kwargs in [dict(n=3, k=0.5, alpha=0.9, beta=0.75), dict(n=5, k=2.0, alpha=1e-4, beta=0.75)]:
        assert check_op(ops.lrn_forward, ops.lrn_backward, (x,), kwargs=kwargs, rng=rng) <= GRADCHECK_TOLERANCE


@threads_param
def test_training_step_of_a_small_zfnet_matches_readable(threads):
    with copy_threads(threads):
        # A whole network's forward and backward, fast paths against readable paths, in float64.
        from minicnn.models import zfnet_small
        rng = np.random.default_rng(5)
        x = rng.standard_normal((3, 3, 32, 32))
        labels = np.array([1, 4, 7], dtype=np.int64)

        def run():
            net = zfnet_small(num_classes=10, input_shape=(3, 32, 32), width=4, dropout=0.0).astype(np.float64)
            logits = net.forward(x, train=True)
            _, dlogits = ops.softmax_cross_entropy(logits, labels)
            dx = net.backward(dlogits)
            return logits, dx, net.named_grads()

        logits, dx, grads = run()
        logits_ref, dx_ref, grads_ref = reference(run)
        np.testing.assert_allclose(logits, logits_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
        for key in grads_ref:
            np.testing.assert_allclose(grads[key], grads_ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_parallel_chunks_cover_the_range_once_and_reraise():
    old = fast_threads.get_num_threads()
    fast_threads.set_num_threads(2)
    try:
        hits = np.zeros(7, dtype=np.int64)

        def mark(a, b):
            hits[a:b] += 1
        with tuned(min_elements_per_thread=1):
            fast_threads.parallel_chunks(mark, 7, 7)
        np.testing.assert_array_equal(hits, np.ones(7, dtype=np.int64))

        def fail(a, b):
            if a > 0:
                raise RuntimeError("worker failed")
        with pytest.raises(RuntimeError, match="worker failed"), tuned(min_elements_per_thread=1):
            fast_threads.parallel_chunks(fail, 4, 4)
    finally:
        fast_threads.set_num_threads(old)


def test_scratch_is_reused_and_returned_arrays_are_not_scratch():
    a = fast_threads.scratch("test_tag", (4, 5), np.float32)
    b = fast_threads.scratch("test_tag", (2, 3), np.float32)
    assert np.shares_memory(a, b)                    # the same memory comes back for the same tag
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    W = np.ones((4, 3, 3, 3), dtype=np.float32)
    with tuned(direct_image_bytes=0):             # im2col + GEMM: the path that uses scratch buffers
        y, cache = ops.conv2d_forward(x, W, None, 1, 1)
        dx, dW, db = ops.conv2d_backward(np.ones_like(y), cache)
    for buf in fast_threads._scratch.__dict__.values():
        for arr in (y, dx, dW, db):
            assert not np.shares_memory(arr, buf)


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 9), fin=st.integers(1, 12), fout=st.integers(1, 12), bias=st.booleans(),
       need_dx=st.booleans(), param_grads=st.booleans(), seed=st.integers(0, 2**31 - 1))
@threads_param
def test_linear_matches_readable(threads, dtype, N, fin, fout, bias, need_dx, param_grads, seed):
    with copy_threads(threads):
        rng = np.random.default_rng(seed)
        kept = []
        for _ in range(2):
            x = rng.standard_normal((N, fin)).astype(dtype)
            W = rng.standard_normal((fin, fout)).astype(dtype)
            b = rng.standard_normal(fout).astype(dtype) if bias else None
            y, cache = ops.linear_forward(x, W, b)
            y_ref, cache_ref = reference(ops.linear_forward, x, W, b)
            np.testing.assert_allclose(y, y_ref, **TOL[dtype])
            dy = rng.standard_normal(y.shape).astype(dtype)
            got = ops.linear_backward(dy, cache, need_dx=need_dx, param_grads=param_grads)
            want = reference(ops.linear_backward, dy, cache_ref, need_dx=need_dx, param_grads=param_grads)
            for g, w in zip(got, want):
                assert (g is None) == (w is None)
                if g is not None:
                    assert g.dtype == w.dtype and g.shape == w.shape
                    np.testing.assert_allclose(g, w, **TOL[dtype])
            kept.append([(a, a.copy()) for a in (y,) + got if a is not None])
        for pairs in kept:
            for a, a_copy in pairs:
                np.testing.assert_array_equal(a, a_copy)
