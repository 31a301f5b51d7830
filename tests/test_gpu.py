"""GPU: behaviour without one (every machine) and parity with NumPy on one (``requires_gpu``, skipped elsewhere).

Without a GPU: importing minicnn and asking ``gpu_available()`` must work with CuPy absent and with CuPy
installed but no device answering -- False with a reason, never an exception -- and every GPU entry point says
why it cannot run. On a GPU: each windowed op on CuPy arrays (the hand-written kernels) against the NumPy op on
hypothesis-drawn shapes in both dtypes, float64 gradient checks whose central differences are taken on the
GPU, and a whole network forward/backward staying on the device.
"""
from __future__ import annotations

import copy
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import backend, layers, ops
from minicnn.gradcheck import (GRADCHECK_TOLERANCE, conv_configs, distinct_values, numerical_gradient,
                               pool_configs, relative_error)
from minicnn.net import Sequential
from minicnn.ops import _gpu

from conftest import requires_gpu

DTYPES = (np.float32, np.float64)
SUM_TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


# --- without a GPU ---------------------------------------------------------------------------------------------

@pytest.fixture
def fresh_cupy_probe(monkeypatch):
    """Let a test fake the cupy module; the cached probe is cleared before and after."""
    backend._import_cupy.cache_clear()
    backend._kernel_module.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    backend._import_cupy.cache_clear()
    backend._kernel_module.cache_clear()


def _fake_cupy(get_device_count):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return cupy


def _no_device():
    raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


def _assert_gpu_refused(reason_part):
    assert backend.gpu_available() is False
    reason = backend.gpu_unavailable_reason()
    assert reason_part in reason
    assert backend.cupy() is None
    x = np.ones((1, 1, 2, 2), dtype=np.float32)
    with pytest.raises(RuntimeError, match="no GPU is usable here") as info:
        backend.to_device(x, "gpu")
    assert reason in str(info.value)
    net = Sequential([layers.Conv2D(1, 2, 1, rng=np.random.default_rng(0), name="c"), layers.ReLU(name="r")])
    with pytest.raises(RuntimeError, match=reason_part):
        net.to("gpu")
    with pytest.raises(RuntimeError, match="CUDA kernels need a GPU"):
        backend.get_kernel("relu.cu", "relu_backward", np.float32)
    assert not _gpu.handles(x)
    # The NumPy path is untouched.
    y = net.to("cpu").forward(x)
    assert isinstance(y, np.ndarray) and y.shape == (1, 2, 2, 2)


def test_cupy_absent(fresh_cupy_probe):
    fresh_cupy_probe.setitem(sys.modules, "cupy", None)     # `import cupy` raises ImportError
    _assert_gpu_refused("CuPy is not importable")


def test_cupy_installed_but_no_device(fresh_cupy_probe):
    fresh_cupy_probe.setitem(sys.modules, "cupy", _fake_cupy(_no_device))
    _assert_gpu_refused("no CUDA device answers")
    assert "cudaErrorNoDevice" in backend.gpu_unavailable_reason()


def test_cupy_reports_zero_devices(fresh_cupy_probe):
    fresh_cupy_probe.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    _assert_gpu_refused("reports no CUDA device")


def test_import_and_numpy_path_without_cupy():
    """A fresh interpreter where `import cupy` fails: minicnn imports, trains a step's worth of ops on NumPy."""
    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "import numpy as np, minicnn\n"
        "from minicnn import backend, layers\n"
        "from minicnn.net import Sequential\n"
        "assert backend.gpu_available() is False, 'gpu_available'\n"
        "net = Sequential([layers.Conv2D(1, 2, 3, rng=np.random.default_rng(0), name='c'), layers.ReLU(name='r'),\n"
        "                  layers.LRN(n=3, name='n'), layers.MaxPool2D(2, name='p'), layers.Dropout(0.5, seed=0, name='d')])\n"
        "y = net.forward(np.ones((1, 1, 6, 6), np.float32), train=True)\n"
        "net.backward(np.ones_like(y))\n"
        "print(backend.gpu_unavailable_reason())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CuPy is not importable" in proc.stdout


def test_gpu_extras_are_declared():
    """`pip install .[gpu]` (CUDA 12 driver) and `.[gpu-cuda13]` (CUDA 13 driver), as the README says."""
    import configparser
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert "cupy-cuda12x" in extras["gpu"] and "cupy-cuda13x" in extras["gpu-cuda13"]
    readme = (root / "README.md").read_text()
    assert ".[gpu]" in readme and ".[gpu-cuda13]" in readme



def test_kernel_loading_compiles_once_per_file_and_dtype(fresh_cupy_probe):
    """The loader with a stand-in for cupy.RawModule: the source it gets, the caching, the launch geometry."""
    compiled, launches = [], []

    class FakeModule:
        def __init__(self, code, options=()):
            compiled.append((code, options))

        def get_function(self, name):
            return lambda grid, block, args: launches.append((name, grid, block, args))

    fake = _fake_cupy(lambda: 1)
    fake.RawModule = FakeModule
    fresh_cupy_probe.setitem(sys.modules, "cupy", fake)
    assert backend.gpu_available() and backend.gpu_unavailable_reason() == ""
    for _ in range(3):
        backend.get_kernel("pool.cu", "max_pool_forward", np.float32)
        backend.get_kernel("pool.cu", "max_pool_backward", np.float32)
    backend.get_kernel("pool.cu", "max_pool_forward", np.float64)
    assert len(compiled) == 2                                 # once per (file, dtype)
    assert compiled[0][0].startswith("#define T float\n") and compiled[1][0].startswith("#define T double\n")
    assert all("-DT" not in " ".join(options) for _, options in compiled)   # see backend: it would break NVRTC
    kernel = backend.get_kernel("relu.cu", "relu_backward", np.float32)
    backend.launch(kernel, 1000, ("args",))
    backend.launch(kernel, 10**9, ("args",))
    backend.launch(kernel, 0, ("args",))                      # nothing to do: no launch (a 0-block grid is an error)
    assert launches == [("relu_backward", (4,), (backend.BLOCK,), ("args",)),
                        ("relu_backward", (backend.MAX_BLOCKS,), (backend.BLOCK,), ("args",))]

# --- on a GPU: parity with NumPy -----------------------------------------------------------------------------

def _dev(a):
    return backend.to_device(a, "gpu")


def _host(a):
    assert backend.is_gpu_array(a), f"expected a CuPy array, got {type(a).__name__}"
    return backend.to_numpy(a)


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=conv_configs(max_channels=3, max_size=9, max_kernel=4))
def test_gpu_conv_ops_match_numpy(dtype, cfg):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dtype)
    W = rng.standard_normal((cfg["F"], cfg["C"], cfg["kh"], cfg["kw"])).astype(dtype)
    b = rng.standard_normal(cfg["F"]).astype(dtype)
    kernel, stride, pad = (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["pad"]
    np.testing.assert_array_equal(_host(ops.im2col(_dev(x), kernel, stride, pad)), ops.im2col(x, kernel, stride, pad))
    y, cache = ops.conv2d_forward(x, W, b, stride, pad)
    y_g, cache_g = ops.conv2d_forward(_dev(x), _dev(W), _dev(b), stride, pad)
    dy = rng.standard_normal(y.shape).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else SUM_TOL[dtype]
    np.testing.assert_allclose(_host(y_g), y, **tol)
    for got, want in zip(ops.conv2d_backward(_dev(dy), cache_g), ops.conv2d_backward(dy, cache)):
        np.testing.assert_allclose(_host(got), want, **tol)


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=pool_configs())
def test_gpu_max_pool_matches_numpy(dtype, cfg):
    rng = np.random.default_rng(1)
    x = distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), rng).astype(dtype)
    args = (cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
    y, cache = ops.max_pool2d_forward(x, *args)
    y_g, cache_g = ops.max_pool2d_forward(_dev(x), *args)
    np.testing.assert_array_equal(_host(y_g), y)
    np.testing.assert_array_equal(_host(cache_g.switches), cache.switches)
    assert cache_g.switches.dtype == np.int32
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(_host(ops.max_pool2d_backward(_dev(dy), cache_g)), ops.max_pool2d_backward(dy, cache),
                               **SUM_TOL[dtype])


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5)),
       n=st.sampled_from([1, 3, 5]), alpha=st.sampled_from([1e-4, 0.9]), k=st.sampled_from([0.5, 2.0]))
def test_gpu_lrn_matches_numpy(dtype, shape, n, alpha, k):
    rng = np.random.default_rng(2)
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    y, cache = ops.lrn_forward(x, n, k, alpha, 0.75)
    y_g, cache_g = ops.lrn_forward(_dev(x), n, k, alpha, 0.75)
    np.testing.assert_allclose(_host(y_g), y, **SUM_TOL[dtype])
    np.testing.assert_allclose(_host(ops.lrn_backward(_dev(dy), cache_g)), ops.lrn_backward(dy, cache), **SUM_TOL[dtype])


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ops.RELU_RULES)
def test_gpu_relu_rules_match_numpy(dtype, rule):
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (3, 4, 5, 6)).astype(dtype)
    dy = rng.integers(-2, 3, (3, 4, 5, 6)).astype(dtype)
    dy_g = _dev(dy)
    got = ops.relu_backward(dy_g, _dev(x), rule)
    np.testing.assert_array_equal(_host(got), ops.relu_backward(dy, x, rule))
    np.testing.assert_array_equal(_host(dy_g), dy)          # never writes into dy


@requires_gpu
def test_gpu_kernels_take_non_contiguous_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 9, 8)).transpose(1, 0, 3, 2)[:, :, ::2]
    x_g = _dev(x)
    assert not x_g.flags.c_contiguous
    np.testing.assert_array_equal(_host(ops.im2col(x_g, 3, 2, 1)), ops.im2col(x, 3, 2, 1))
    np.testing.assert_array_equal(_host(ops.max_pool2d_forward(x_g, 2)[0]), ops.max_pool2d_forward(x, 2)[0])


# --- on a GPU: gradient checks with the differences taken on the device ---------------------------------------

def gpu_check_layer(layer, x, rng, rule="backprop"):
    """Like gradcheck.check_layer, but forward and backward run on the GPU (float64); the host only perturbs."""
    layer = copy.deepcopy(layer).astype(np.float64).to("gpu")
    host = {key: backend.to_numpy(value).copy() for key, value in layer.params.items()}

    def run():
        for key, value in host.items():
            layer.params[key] = _dev(value)
        return _host(layer.forward(_dev(x)))

    dy = rng.standard_normal(run().shape)
    dx = _host(layer.backward(_dev(dy), rule=rule))
    grads = {key: _host(value) for key, value in layer.grads.items()}
    errors = {"x": relative_error(dx, numerical_gradient(run, x, dy))}
    for key in host:
        errors[key] = relative_error(grads[key], numerical_gradient(run, host[key], dy))
    return errors


@requires_gpu
@pytest.mark.parametrize("layer, shape", [
    (layers.Conv2D(2, 3, 3, stride=2, pad=1, rng=np.random.default_rng(0)), (2, 2, 7, 6)),
    (layers.Conv2D(3, 2, (3, 2), stride=(2, 1), pad=(0, 1), rng=np.random.default_rng(1)), (1, 3, 7, 5)),
    (layers.MaxPool2D(3, 2), (2, 2, 7, 7)),
    (layers.MaxPool2D(3, 2, pad=1, ceil_mode=True), (1, 2, 8, 8)),
    (layers.LRN(n=3, k=0.5, alpha=0.9, beta=0.75), (2, 6, 3, 3)),
    (layers.LRN(), (2, 7, 3, 3)),
    (layers.ReLU(), (2, 3, 4, 4)),
], ids=["conv", "conv-rect", "maxpool-overlap", "maxpool-pad-ceil", "lrn-strong", "lrn-default", "relu"])
def test_gpu_layer_gradients(layer, shape):
    rng = np.random.default_rng(5)
    x = distinct_values(shape, rng, spacing=0.02 if isinstance(layer, layers.LRN) else 0.05)
    errors = gpu_check_layer(layer, x, rng)
    assert max(errors.values()) < GRADCHECK_TOLERANCE, errors


# --- on a GPU: a network stays on the device -----------------------------------------------------------------

@requires_gpu
@pytest.mark.parametrize("rule", ops.RELU_RULES)
def test_gpu_network_matches_cpu(rule):
    rng = np.random.default_rng(6)
    net = Sequential([
        layers.Conv2D(3, 4, 3, stride=1, pad=1, rng=rng, name="conv1"), layers.ReLU(name="relu1"),
        layers.LRN(n=3, name="norm1"), layers.MaxPool2D(3, 2, name="pool1"),
        layers.Conv2D(4, 5, 3, pad=1, rng=rng, name="conv2"), layers.ReLU(name="relu2"),
        layers.Flatten(name="flat"), layers.Linear(5 * 3 * 3, 4, rng=rng, name="fc"),
    ]).astype(np.float64)
    x = rng.standard_normal((2, 3, 7, 7))
    y = net.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = net.backward(dy, rule=rule)
    grads = {k: v.copy() for k, v in net.named_grads().items()}
    net.to("gpu")
    y_g = net.forward(_dev(x))
    dx_g = net.backward(_dev(dy), rule=rule)
    np.testing.assert_allclose(_host(y_g), y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_host(dx_g), dx, rtol=1e-10, atol=1e-12)
    for key, value in net.named_grads().items():
        np.testing.assert_allclose(_host(value), grads[key], rtol=1e-10, atol=1e-12)
    for key, value in net.named_params().items():
        assert backend.is_gpu_array(value), key
    net.to("cpu")
    assert all(isinstance(v, np.ndarray) for v in net.named_params().values())


@requires_gpu
def test_gpu_dropout_draws_on_the_device():
    drop = layers.Dropout(0.5, seed=0)
    x = _dev(np.ones((64, 32), dtype=np.float32))
    y = drop.forward(x, train=True)
    assert backend.is_gpu_array(y) and backend.is_gpu_array(drop.cache)
    kept = float((y != 0).mean())
    assert 0.3 < kept < 0.7
    np.testing.assert_array_equal(_host(drop.backward(x)), _host(y))
    again = layers.Dropout(0.5, seed=0)
    np.testing.assert_array_equal(_host(again.forward(x, train=True)), _host(y))   # seeded: reproducible


# --- the GPU benchmark script ----------------------------------------------------------------------------------

def test_bench_gpu_exits_clearly_without_a_gpu():
    if backend.gpu_available():
        pytest.skip("a GPU is usable here: the no-GPU message does not apply")
    import pathlib

    script = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    proc = subprocess.run([sys.executable, str(script), "--repeat", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no usable GPU" in proc.stderr and backend.gpu_unavailable_reason() in proc.stderr
