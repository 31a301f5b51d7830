"""The C loops of the fast CPU path (minicnn/fast_cpu/build.py): building, caching, falling back; their results are
held to the readable ops in test_ops_speedpaths.py and below on the cases where vector lanes could go wrong."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import ops
from minicnn.fast_cpu import FastConvCache
from minicnn.fast_cpu import build as _native
from minicnn.fast_cpu import conv as fast_conv
from minicnn.fast_cpu import threads as fast_threads
from minicnn.fast_cpu.tuning import tuned


def available(dtype=np.float32):
    return _native.library(dtype) is not None


needs_c = pytest.mark.skipif(not available(), reason=f"C loops unavailable: {_native.build_error()}")


@pytest.fixture
def fresh_builds(monkeypatch, tmp_path):
    """An empty cache directory and no library loaded yet, restored afterwards."""
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_native, "_libraries", {})
    monkeypatch.setattr(_native, "_errors", {})
    return tmp_path


@needs_c
def test_a_build_is_cached_and_reused(fresh_builds, monkeypatch):
    lib = _native.library(np.float32)
    built = sorted(p.name for p in fresh_builds.iterdir())
    assert lib is not None and len(built) == 3 and built[0].startswith("cpu_loops_float_")
    assert [name[len(built[0]):] for name in built] == ["", ".lock", ".sha256"]    # the library, lock, sidecar
    monkeypatch.setattr(_native, "_libraries", {})
    runs = []
    real_run = subprocess.run
    monkeypatch.setattr(_native.subprocess, "run", lambda cmd, **kw: runs.append(cmd) or real_run(cmd, **kw))
    assert _native.library(np.float32) is not None
    assert all("-shared" not in cmd for cmd in runs)              # found in the cache: no second compile
    assert sorted(p.name for p in fresh_builds.iterdir()) == built  # and no temporary file left behind


@needs_c
def test_an_unknown_arch_flag_falls_back_to_a_plain_build(fresh_builds, monkeypatch):
    monkeypatch.setattr(_native, "ARCH_FLAGS", ("-march=no-such-cpu",))
    assert _native.library(np.float64) is not None
    assert len(list(fresh_builds.glob("*.so"))) == 1 and not list(fresh_builds.glob("*.partial"))


def test_without_a_compiler_the_readable_path_runs_and_says_why(fresh_builds, monkeypatch):
    monkeypatch.setenv("PATH", str(fresh_builds))               # nothing to run there
    monkeypatch.delenv("CC", raising=False)
    assert not available(np.float32)
    assert "no C compiler" in _native.build_error(np.float32)
    path, why = minicnn.active_cpu_path()
    assert path == "readable" and "no C compiler" in why, why
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7)).astype(np.float32)
    y, cache = ops.max_pool2d_forward(x, 3, 2, 0, True)             # the readable path instead
    assert type(cache) is ops.pool.PoolCache
    with minicnn.cpu_path("readable"):
        y_ref, cache_ref = ops.max_pool2d_forward(x, 3, 2, 0, True)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.switches, cache_ref.switches)


def test_a_failing_build_says_why(fresh_builds, monkeypatch):
    monkeypatch.setattr(_native, "FLAGS", _native.FLAGS + ("-include", "/no/such/header.h"))
    if not available(np.float32) and _native.build_error(np.float32).startswith("no C compiler"):
        pytest.skip("no C compiler here")
    assert not available(np.float32)
    assert "building the C loops failed (they need GCC >= 12 or clang)" in _native.build_error(np.float32)
    assert [p.suffix for p in fresh_builds.iterdir()] == [".lock"]   # no half-written library left


def test_an_allocation_failure_is_a_memory_error():
    class Loop:
        __name__ = "max_pool_forward"

        def __call__(self, *args):
            return -1
    with pytest.raises(MemoryError, match="max_pool_forward"):
        _native.call(Loop())


def test_minicnn_cpu_path_readable_switches_the_fast_path_off_in_a_fresh_process():
    code = ("import minicnn, sys, numpy as np; from minicnn import ops; "
            "assert minicnn.active_cpu_path() == ('readable', 'switched off by MINICNN_CPU_PATH=readable'); "
            "c = ops.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))[1]; "
            "assert type(c) is ops.conv.ConvCache, c; assert 'minicnn.fast_cpu' not in sys.modules")
    env = dict(os.environ, MINICNN_CPU_PATH="readable")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow", [1, 3, 4, 7, 8, 9, 17])
def test_pool_lanes_and_tails_match_the_readable_op(dtype, ow):
    """Output rows shorter, equal and longer than a vector, ties, -0.0 against +0.0, NaN and -inf in every lane;
    even and odd widths, windows that tile the input and windows that overlap."""
    rng = np.random.default_rng(ow)
    x = rng.integers(-2, 3, size=(2, 3, 8, 2 * ow + 1)).astype(dtype)
    x[x == 0] = rng.choice(np.array([0.0, -0.0], dtype), size=int((x == 0).sum()))
    x[x == 2] = rng.choice(np.array([2.0, np.nan, -np.inf], dtype), size=int((x == 2).sum()))
    cases = [(x, 3, 2, 1, True), (x, 2, 2, 0, False), (x, 3, 1, 1, False), (x[..., :-1], 2, 2, 0, False),
             (x[..., :-1].copy(), 2, 2, 0, False)]
    for x, kernel, stride, pad, ceil in cases:
        y, cache = ops.max_pool2d_forward(x, kernel, stride, pad, ceil)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dy[rng.random(y.shape) < 0.3] = -0.0                  # unpooled as +0.0, as the readable op's 0 + dy
        dx = ops.max_pool2d_backward(dy, cache)
        with minicnn.cpu_path("readable"):
            y_ref, cache_ref = ops.max_pool2d_forward(x, kernel, stride, pad, ceil)
            dx_ref = ops.max_pool2d_backward(dy, cache_ref)
        np.testing.assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))
        np.testing.assert_array_equal(cache.switches, cache_ref.switches)
        np.testing.assert_array_equal(dx.view(np.uint8), dx_ref.view(np.uint8))


@needs_c
@pytest.mark.parametrize("fused", [True, False], ids=["one-C-call-per-chunk", "no-BLAS-pointer"])
def test_conv_with_and_without_the_blas_pointer_match_the_readable_op(monkeypatch, fused):
    """With NumPy's BLAS found (``build.gemm``) each chunk is one C call; without it (another BLAS) a layer that the
    direct convolution does not take runs the readable op. Both against the readable op, with padding, stride 2
    and several chunks."""
    if not fused:
        monkeypatch.setattr(_native, "gemm", lambda dtype: None)
    elif _native.gemm(np.float32) is None:
        pytest.skip("NumPy's BLAS has no ILP64 cblas_sgemm here")
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x, W, b = (rng.standard_normal(s).astype(dtype) for s in [(6, 3, 11, 9), (5, 3, 3, 3), (5,)])
        for stride, pad in [(1, 1), (2, 0)]:
            with tuned(direct_image_bytes=0, chunk_bytes=2000):   # the GEMM way, several chunks
                y, cache = ops.conv2d_forward(x, W, b, stride, pad)
            assert isinstance(cache, FastConvCache) == fused
            dy = rng.standard_normal(y.shape).astype(dtype)
            grads = ops.conv2d_backward(dy, cache)
            with minicnn.cpu_path("readable"):
                y_ref, cache_ref = ops.conv2d_forward(x, W, b, stride, pad)
                grads_ref = ops.conv2d_backward(dy, cache_ref)
            tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
            np.testing.assert_allclose(y, y_ref, **tol)
            for g, r in zip(grads, grads_ref):
                np.testing.assert_allclose(g, r, **tol)


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("F", [4, 8, 11])
def test_direct_convolution_matches_the_readable_op(dtype, F):
    """Stride-1 convolutions small enough for the C direct convolution: filters fewer than, equal to and more than
    a block of 8, output rows shorter than a vector and with a tail, padding (the backward is the direct one too:
    see the next test). Non-square kernels and paddings: a kh/kw mix-up in the C loops shows only there."""
    rng = np.random.default_rng(F)
    for C, H, W, k, pad in [(3, 5, 6, (3, 3), 1), (2, 12, 13, (5, 5), 2), (1, 4, 4, (1, 1), 0), (4, 9, 20, (3, 3), 0),
                            (3, 6, 9, (3, 5), (1, 2)), (2, 11, 7, (5, 2), (2, 0)), (2, 5, 12, (1, 4), (0, 1))]:
        x = rng.standard_normal((3, C, H, W)).astype(dtype)
        w = rng.standard_normal((F, C) + k).astype(dtype)
        b = rng.standard_normal(F).astype(dtype)
        y, cache = ops.conv2d_forward(x, w, b, 1, pad)
        assert isinstance(cache, FastConvCache) and cache.cols is None   # the direct way ran (no columns kept)
        dy = rng.standard_normal(y.shape).astype(dtype)
        grads = ops.conv2d_backward(dy, cache)
        with minicnn.cpu_path("readable"):
            y_ref, cache_ref = ops.conv2d_forward(x, w, b, 1, pad)
            grads_ref = ops.conv2d_backward(dy, cache_ref)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(y, y_ref, **tol)
        for g, r in zip(grads, grads_ref):
            np.testing.assert_allclose(g, r, **tol)
        y_nobias, _ = ops.conv2d_forward(x, w, None, 1, pad)
        np.testing.assert_allclose(y_nobias, y_ref - b[:, None, None], **tol)


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_direct_backward_matches_the_readable_op(monkeypatch, dtype, threads):
    """The C direct backward on the cases where its blocks could go wrong: kernel widths 5 and 3 (their own dW
    loops) and 1, 2, 4, 7 (one tap at a time); input rows of one, two and four vectors and a tail (dx's column
    blocks); 1 to 11 channels (dx's channel blocks of 8, 6 and 3 and their remainders); filters not a multiple of
    dW's block; padding up to and past the kernel; dx or the parameter gradients alone; images split over threads."""
    ran = []
    real = fast_conv._plan
    monkeypatch.setattr(fast_conv, "_plan", lambda *a: ran.append(real(*a)[1]) or real(*a))
    old_threads = fast_threads.get_num_threads()
    fast_threads.set_num_threads(threads)
    rng = np.random.default_rng(threads)
    cases = [  # N, C, F, H, W, k, pad (an int: square; non-square kernels and pads catch a kh/kw mix-up)
        (3, 6, 16, 12, 12, 5, 0), (2, 1, 6, 11, 28, 5, 0), (2, 3, 5, 7, 9, 3, 1), (2, 8, 3, 6, 5, 3, 0),
        (2, 11, 9, 5, 13, 1, 0), (2, 2, 7, 6, 6, 2, 0), (2, 4, 4, 9, 10, 4, 1), (1, 5, 2, 8, 17, 7, 3),
        (3, 7, 1, 6, 33, 3, 4), (2, 9, 10, 8, 8, 3, 1),
        (2, 3, 5, 9, 8, (3, 5), (1, 2)), (2, 4, 6, 7, 11, (5, 3), (2, 0)), (2, 2, 3, 8, 6, (2, 7), (0, 3)),
        (1, 3, 4, 6, 10, (1, 3), (0, 1))]
    try:
        for N, C, F, H, W, k, pad in cases:
            x = rng.standard_normal((N, C, H, W)).astype(dtype)
            w = rng.standard_normal((F, C) + ((k, k) if isinstance(k, int) else k)).astype(dtype)
            with tuned(min_elements_per_thread=1, parallel_conv_flops=0):
                y, cache = ops.conv2d_forward(x, w, None, 1, pad)
            dy = rng.standard_normal(y.shape).astype(dtype)
            with minicnn.cpu_path("readable"):
                _, cache_ref = ops.conv2d_forward(x, w, None, 1, pad)
                want = ops.conv2d_backward(dy, cache_ref)
            tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
            for need_dx, param_grads in [(True, True), (True, False), (False, True)]:
                with tuned(min_elements_per_thread=1):
                    got = ops.conv2d_backward(dy, cache, need_dx=need_dx, param_grads=param_grads)
                for g, r, wanted in zip(got, want, (need_dx, param_grads, param_grads)):
                    if wanted:
                        np.testing.assert_allclose(g, r, **tol, err_msg=f"{(N, C, F, H, W, k, pad)}")
                    else:
                        assert g is None
    finally:
        fast_threads.set_num_threads(old_threads)
    assert all(ran) and len(ran) >= 4 * len(cases)           # every forward and backward took the direct way


@needs_c
def test_direct_backward_float32_dw_sums_stay_close_to_float64_over_a_large_batch():
    """dW of issue 7's 28x28 conv at batch 128: 73728 terms per weight. Summed in float32 running sums over the
    whole batch (no move into double totals), the C direct backward's dW was 8e-7 off float64 (relative to its
    largest entry), against 1.3e-7 with the totals; the bound sits between."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32) + 0.5       # offsets: sums that grow
    W = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    y, cache = ops.conv2d_forward(x, W, None, 1, 0)
    assert isinstance(cache, FastConvCache) and cache.cols is None          # the direct way
    dy = rng.standard_normal(y.shape).astype(np.float32) + 0.3
    _, dW, db = ops.conv2d_backward(dy, cache)
    with minicnn.cpu_path("readable"):
        _, cache64 = ops.conv2d_forward(x.astype(np.float64), W.astype(np.float64), None, 1, 0)
        _, dW64, db64 = ops.conv2d_backward(dy.astype(np.float64), cache64)
    assert np.abs(dW - dW64).max() / np.abs(dW64).max() < 4e-7
    assert np.abs(db - db64).max() / np.abs(db64).max() < 4e-7


def _direct(x_shape, W_shape, stride, pad, dtype):
    return fast_conv._plan(x_shape, W_shape, (stride, stride), (pad, pad), dtype)


@pytest.mark.parametrize("which", [0, 1], ids=["forward", "backward"])
def test_direct_convolution_is_for_stride_1_and_images_that_fit_the_l1_cache(which):
    assert _direct((64, 6, 12, 12), (16, 6, 5, 5), 1, 0, np.float32)[which]
    assert not _direct((64, 6, 12, 12), (16, 6, 5, 5), 2, 0, np.float32)[which]
    # issue 7's 32x32x16x16 3x3 conv: 41 KB padded images; in float64 the 26 KB of zfnet_small's conv2 are 51 KB
    assert not _direct((32, 32, 16, 16), (64, 32, 3, 3), 1, 1, np.float32)[which]
    assert _direct((128, 16, 16, 16), (32, 16, 5, 5), 1, 2, np.float32)[which]
    assert not _direct((128, 16, 16, 16), (32, 16, 5, 5), 1, 2, np.float64)[which]


def test_the_direct_forward_wants_filled_blocks_of_8_and_the_backward_sums_that_fit_the_l2_cache():
    assert _direct((64, 6, 12, 12), (1, 6, 5, 5), 1, 0, np.float32) == (False, True)     # 1 filter: 1 lane in 8
    assert _direct((4, 64, 8, 8), (256, 64, 3, 3), 1, 1, np.float32) == (True, False)    # 256x64x3x3 sums: 4.7 MB


def test_the_c_loops_load_wherever_a_compiler_is_found():
    """With a C compiler on the PATH, a C file that fails to compile must fail the suite: the other C tests skip
    and the readable path keeps every result right, so nothing else would notice."""
    try:
        _native._compiler()
    except RuntimeError:
        pytest.skip("no C compiler here: the fallback paths run")
    for dtype in (np.float32, np.float64):
        assert available(dtype), f"a C compiler is here but the C loops did not build:\n{_native.build_error(dtype)}"


# --- the build cache: damaged files, killed builds, concurrent processes (issue 14) ----------------------------------
#
# Compiling the loops takes 3-4 s of CPU a dtype, so the children below "compile" by copying the library this process
# already built (valid, for this compiler and CPU): everything else -- cache key, validation, lock, publishing,
# clean-up -- is the real code. Each child logs its compiles into a directory, one file each.

FAKE_COMPILER = """
import os, shutil, subprocess, sys, time
from minicnn.fast_cpu import build as _native
real_run = subprocess.run
def fake_run(cmd, **kw):
    if "-shared" in cmd:
        open(os.path.join({log!r}, f"compile-{{os.getpid()}}-{{time.time_ns()}}"), "w").close()
        time.sleep({delay})
        shutil.copyfile({good!r}, cmd[cmd.index("-o") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return real_run(cmd, **kw)
_native.subprocess.run = fake_run
import numpy as np
print("available", _native.library(np.float32) is not None, _native.build_error(np.float32))
"""


def _child(cache, log, delay=0.0):
    good = _native.library(np.float32)._name
    code = FAKE_COMPILER.format(log=str(log), delay=delay, good=good)
    env = dict(os.environ, MINICNN_CACHE_DIR=str(cache),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"child died with return code {proc.returncode}\n{out}\n{err}"
    assert "available True None" in out, out + err
    return err


@pytest.fixture
def cache_dirs(tmp_path):
    if not available(np.float32):
        pytest.skip(f"C loops unavailable: {_native.build_error()}")
    (tmp_path / "cache").mkdir()
    (tmp_path / "log").mkdir()
    return tmp_path / "cache", tmp_path / "log"


def _library(cache):
    (lib,) = cache.glob("cpu_loops_float_*.so")
    return lib


@needs_c
def test_a_damaged_cached_library_is_rebuilt_not_loaded(cache_dirs):
    """A crash or power loss during a build can leave a truncated library: loading it killed every later process
    with SIGBUS; a zero-byte one left the C loops off for ever, silently."""
    cache, log = cache_dirs
    _finish(_child(cache, log))
    lib = _library(cache)
    data = lib.read_bytes()
    assert _native.valid_library(lib)
    damages = {"truncated": lambda: lib.write_bytes(data[:len(data) // 2]),
               "zero bytes": lambda: lib.write_bytes(b""),
               "no sidecar": lambda: lib.with_name(lib.name + ".sha256").unlink(),
               "overwritten": lambda: lib.write_bytes(data[:100] + bytes(len(data) - 100))}
    for compiles, (damage, do) in enumerate(damages.items(), start=2):
        do()
        assert not _native.valid_library(lib), damage
        err = _finish(_child(cache, log))
        assert "compiling the C loops" in err, damage                  # rebuilt, with the one-line notice
        assert len(list(log.iterdir())) == compiles, damage
        assert lib.read_bytes() == data and _native.valid_library(lib), damage


@needs_c
def test_temporaries_of_killed_builds_are_removed(cache_dirs):
    cache, log = cache_dirs
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    leftovers = [cache / f"cpu_loops_float_0123456789abcdef.so.{dead}.partial", cache / "tmpk3j4h5.so"]
    for path in leftovers:
        path.write_bytes(b"half a library")
    old = os.path.getmtime(leftovers[1]) - 2 * _native.LEGACY_TEMP_AGE
    os.utime(leftovers[1], (old, old))
    young = cache / "tmpyoung.so"                                  # possibly an old version building right now
    young.write_bytes(b"")
    _finish(_child(cache, log))
    assert not any(path.exists() for path in leftovers) and young.exists()


@needs_c
def test_concurrent_processes_build_once(cache_dirs):
    cache, log = cache_dirs
    children = [_child(cache, log, delay=1.5) for _ in range(3)]
    notices = sum(_finish(child).count("compiling the C loops") for child in children)
    assert notices == 1 and len(list(log.iterdir())) == 1
    assert not list(cache.glob("*.partial"))


@needs_c
@pytest.mark.parametrize("shape", [(2, 64, 8, 8, 128), (2, 3, 9, 9, 1)], ids=["direct-forward", "direct-backward"])
def test_a_caller_reusing_its_input_buffer_after_the_forward_changes_no_gradient(shape):
    """A layer whose forward and backward take different ways (a direct forward with dW sums too big for the direct
    backward; one filter: a GEMM forward with a direct backward) must still keep its own copy of the input."""
    N, C, H, W, F = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((F, C, 3, 3)).astype(np.float32)
    forward, backward = fast_conv._plan(x.shape, w.shape, (1, 1), (1, 1), np.float32)
    assert forward != backward                                  # the two ways differ, as the case needs
    with minicnn.cpu_path("readable"):
        _, cache_ref = ops.conv2d_forward(x, w, None, 1, 1)
    y, cache = ops.conv2d_forward(x, w, None, 1, 1)
    x[...] = 7.0                                                # the caller reuses its buffer
    dy = rng.standard_normal(y.shape).astype(np.float32)
    with minicnn.cpu_path("readable"):
        want = ops.conv2d_backward(dy, cache_ref)
    for g, r in zip(ops.conv2d_backward(dy, cache), want):
        np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-4)


@needs_c
@pytest.mark.parametrize("stride", [1, 2], ids=["direct", "gemm-chunks"])
def test_the_parameter_gradients_are_the_same_bits_on_every_run(stride):
    """Four threads on one batch, many shares of images or chunks: however the threads are scheduled, dW and db come
    out bit for bit the same (the shares' sums are added in a fixed order), so a training run reproduces."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    old_threads = fast_threads.get_num_threads()
    fast_threads.set_num_threads(4)
    try:
        with tuned(min_elements_per_thread=1, parallel_conv_flops=0, chunk_bytes=1):
            y, cache = ops.conv2d_forward(x, w, None, stride, 1)
            assert fast_conv._plan(x.shape, w.shape, (stride,) * 2, (1, 1), np.float32)[1] == (stride == 1)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            first = ops.conv2d_backward(dy, cache, need_dx=False)
            for _ in range(25):
                again = ops.conv2d_backward(dy, cache, need_dx=False)
                np.testing.assert_array_equal(again[1], first[1])
                np.testing.assert_array_equal(again[2], first[2])
    finally:
        fast_threads.set_num_threads(old_threads)
