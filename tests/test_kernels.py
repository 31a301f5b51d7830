"""The CUDA kernels of the top-level kernels/ folder, tested on every machine.

Each .cu file is compiled as plain C++ with kernels/cpu_shim.h (a grid of one thread, so every grid-stride
loop visits all its elements) and called through ctypes on NumPy buffers. The CPU runner replaces
``ops._gpu._run`` -- the one function that would launch a kernel through CuPy -- so the wrappers in
``ops/_gpu.py`` (contiguity, output allocation, C-typed scalars) run exactly as they do on a GPU, and the
results are compared with the NumPy ops. Patching ``ops._gpu.handles`` as well sends the public ops and layers
down their GPU branch, so gradient checks run through the kernels too.

Where nvcc is on the PATH every kernel is also compiled to PTX; where an NVRTC library is found (it ships with
CuPy's CUDA packages) the sources are compiled by NVRTC, the compiler CuPy's RawModule uses.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import backend, layers, ops
from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_layer, conv_configs, distinct_values, pool_configs
from minicnn.ops import _gpu

DTYPES = (np.float32, np.float64)
SUM_TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
KERNEL_DECL = re.compile(r'extern "C" __global__ void (\w+)\(')


def kernel_names(filename):
    return KERNEL_DECL.findall((backend.KERNEL_DIR / filename).read_text())


def write_sources(directory, dtypes=DTYPES):
    """Write each kernel file specialised for each dtype, exactly the text the GPU loader compiles."""
    paths = {}
    for filename in backend.KERNEL_FILES:
        for dtype in dtypes:
            path = directory / f"{filename[:-3]}_{np.dtype(dtype).name}.cu"
            path.write_text(backend.kernel_source(filename, dtype))
            paths[filename, np.dtype(dtype)] = path
    return paths


# --- compiling the kernels as C++ ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cpu_kernels(tmp_path_factory):
    """{(filename, dtype): ctypes.CDLL} -- every kernel file built once per session, the builds in parallel."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++ or c++) on the PATH to build the kernels for the CPU")
    build = tmp_path_factory.mktemp("kernels_cpu")
    shim = backend.KERNEL_DIR / "cpu_shim.h"
    jobs = {}
    for key, source in write_sources(build).items():
        lib = source.with_suffix(".so")
        cmd = [cxx, "-O2", "-shared", "-fPIC", "-x", "c++", "-include", str(shim), str(source), "-o", str(lib)]
        jobs[key] = (lib, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    libs = {}
    for key, (lib, proc) in jobs.items():
        out, _ = proc.communicate()
        assert proc.returncode == 0, f"C++ build of {key[0]} ({key[1]}) failed:\n{out}"
        libs[key] = ctypes.CDLL(str(lib))
    return libs


def _c_arg(value):
    """A kernel argument as ctypes needs it. Strict: a Python int would be misread by a CUDA launch too."""
    if isinstance(value, np.ndarray):
        assert value.flags.c_contiguous, "kernels index flat memory; the wrapper must pass C-contiguous arrays"
        return ctypes.c_void_p(value.ctypes.data)
    if isinstance(value, np.int32):
        return ctypes.c_int(int(value))
    if isinstance(value, np.int64):
        return ctypes.c_longlong(int(value))
    if isinstance(value, np.float64):
        return ctypes.c_double(float(value))
    raise TypeError(f"kernel argument of type {type(value).__name__}: give it a C type (np.int32, np.int64, np.float64)")


@contextlib.contextmanager
def on_cpu_kernels(libs, route_ops=False):
    """Run ``ops._gpu`` on the C++ builds; with ``route_ops`` the public ops take their GPU branch for NumPy too."""
    def run(filename, name, dtype, total, args):
        getattr(libs[filename, np.dtype(dtype)], name)(*(_c_arg(a) for a in args))

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(_gpu, "_run", run))
        if route_ops:
            stack.enter_context(mock.patch.object(_gpu, "handles", lambda x: x.dtype in (np.float32, np.float64)))
            # The fast CPU path would take NumPy input before the GPU branch: switch it off.
            from minicnn import cpu_path
            stack.enter_context(cpu_path("readable"))
        yield


def _random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# --- im2col / col2im -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=conv_configs(max_channels=3, max_size=8, max_kernel=4))
def test_im2col_kernel_matches_numpy_exactly(cpu_kernels, dtype, cfg):
    rng = np.random.default_rng(0)
    x = _random(rng, (cfg["N"], cfg["C"], cfg["H"], cfg["W"]), dtype)
    kernel, stride, pad = (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["pad"]
    expected = ops.im2col(x, kernel, stride, pad)
    out = ops.conv_output_shape(x.shape, kernel, stride, pad)
    with on_cpu_kernels(cpu_kernels):
        cols = _gpu.im2col(x, kernel, stride, pad, out)
    assert cols.dtype == x.dtype and cols.shape == expected.shape
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=conv_configs(max_channels=3, max_size=8, max_kernel=4))
def test_col2im_kernel_matches_numpy(cpu_kernels, dtype, cfg):
    rng = np.random.default_rng(1)
    x_shape = (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
    kernel, stride, pad = (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["pad"]
    oh, ow = ops.conv_output_shape(x_shape, kernel, stride, pad)
    cols = _random(rng, (cfg["C"] * cfg["kh"] * cfg["kw"], cfg["N"] * oh * ow), dtype)
    expected = ops.col2im(cols, x_shape, kernel, stride, pad)
    with on_cpu_kernels(cpu_kernels):
        dx = _gpu.col2im(cols, x_shape, kernel, stride, pad, (oh, ow))
    assert dx.dtype == cols.dtype and dx.shape == x_shape
    np.testing.assert_allclose(dx, expected, **SUM_TOL[dtype])


def test_col2im_kernel_is_the_adjoint_of_im2col(cpu_kernels):
    """<im2col(x), c> == <x, col2im(c)> for the kernels alone (no NumPy op involved)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6))
    kernel, stride, pad = (3, 2), (2, 1), (1, 1)
    out = ops.conv_output_shape(x.shape, kernel, stride, pad)
    with on_cpu_kernels(cpu_kernels):
        cols = _gpu.im2col(x, kernel, stride, pad, out)
        c = rng.standard_normal(cols.shape)
        back = _gpu.col2im(c, x.shape, kernel, stride, pad, out)
    assert np.isclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


# --- max pooling with switches, unpooling --------------------------------------------------------------------

def _pool_args(cfg):
    return cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"]


@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=pool_configs())
def test_max_pool_forward_kernel_matches_numpy_exactly(cpu_kernels, dtype, cfg):
    rng = np.random.default_rng(3)
    x = distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), rng).astype(dtype)
    y_ref, cache = ops.max_pool2d_forward(x, *_pool_args(cfg))
    with on_cpu_kernels(cpu_kernels):
        y, switches = _gpu.max_pool2d_forward(x, cache.kernel, cache.stride, cache.pad, cache.out_shape[2:])
    assert switches.dtype == np.int32
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(switches, cache.switches)


@given(cfg=pool_configs(), levels=st.integers(1, 3))
def test_max_pool_forward_kernel_breaks_ties_like_numpy(cpu_kernels, cfg, levels):
    """Inputs full of ties (few distinct values): the first maximum in row-major window order wins in both."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, levels, (cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(np.float32)
    y_ref, cache = ops.max_pool2d_forward(x, *_pool_args(cfg))
    with on_cpu_kernels(cpu_kernels):
        y, switches = _gpu.max_pool2d_forward(x, cache.kernel, cache.stride, cache.pad, cache.out_shape[2:])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(switches, cache.switches)


@pytest.mark.parametrize("dtype", DTYPES)
@given(cfg=pool_configs())
def test_max_pool_backward_kernel_matches_numpy(cpu_kernels, dtype, cfg):
    rng = np.random.default_rng(5)
    x = distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), rng).astype(dtype)
    _, cache = ops.max_pool2d_forward(x, *_pool_args(cfg))
    dy = _random(rng, cache.out_shape, dtype)
    expected = ops.max_pool2d_backward(dy, cache)
    with on_cpu_kernels(cpu_kernels):
        dx = _gpu.max_pool2d_backward(dy, cache.switches, cache.x_shape, cache.kernel, cache.stride, cache.pad)
    assert dx.dtype == dy.dtype and dx.shape == x.shape
    np.testing.assert_array_equal(dx, expected)         # bit for bit: the overlapping windows in the same order


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, stride, pad", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))])
def test_max_pool_forward_kernel_propagates_nan_like_numpy(cpu_kernels, dtype, kernel, stride, pad):
    """A window holding NaN outputs NaN, its switch at the first NaN (as the NumPy op and PyTorch); inf and
    all-NaN windows too."""
    rng = np.random.default_rng(12)
    x = _random(rng, (2, 3, 7, 8), dtype)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[1, 2], x[0, 1, :, ::3] = np.nan, np.inf
    y_ref, cache = ops.max_pool2d_forward(x, kernel, stride, pad)
    assert np.isnan(y_ref).any()
    with on_cpu_kernels(cpu_kernels):
        y, switches = _gpu.max_pool2d_forward(x, cache.kernel, cache.stride, cache.pad, cache.out_shape[2:])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(switches, cache.switches)


def test_unpooling_kernel_adds_overlapping_windows(cpu_kernels):
    """3x3 stride 2: the centre pixel wins all four windows that cover it, so it receives the sum of their dy."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    _, cache = ops.max_pool2d_forward(x, 3, 2)
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    with on_cpu_kernels(cpu_kernels):
        dx = _gpu.max_pool2d_backward(dy, cache.switches, cache.x_shape, cache.kernel, cache.stride, cache.pad)
    assert dx[0, 0, 2, 2] == 10.0 and np.count_nonzero(dx) == 1


# --- LRN -----------------------------------------------------------------------------------------------------

lrn_params = st.fixed_dictionaries(dict(
    n=st.sampled_from([1, 3, 5, 7]), k=st.sampled_from([0.5, 1.0, 2.0]),
    alpha=st.sampled_from([1e-4, 0.1, 0.9]), beta=st.sampled_from([0.5, 0.75, 1.0])))
lrn_shapes = st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4))


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=lrn_shapes, p=lrn_params)
def test_lrn_kernels_match_numpy(cpu_kernels, dtype, shape, p):
    rng = np.random.default_rng(6)
    x = _random(rng, shape, dtype)
    dy = _random(rng, shape, dtype)
    y_ref, cache = ops.lrn_forward(x, **p)
    dx_ref = ops.lrn_backward(dy, cache)
    with on_cpu_kernels(cpu_kernels):
        y, d = _gpu.lrn_forward(x, p["n"], p["k"], p["alpha"], p["beta"])
        dx = _gpu.lrn_backward(dy, x, y, d, p["n"], p["alpha"], p["beta"])
    for got, want in ((y, y_ref), (d, cache.d), (dx, dx_ref)):
        assert got.dtype == x.dtype
        np.testing.assert_allclose(got, want, **SUM_TOL[dtype])


# --- ReLU rules ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ops.RELU_RULES)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_relu_backward_kernel_matches_numpy_exactly(cpu_kernels, dtype, rule, shape):
    rng = np.random.default_rng(7)
    # Whole numbers in [-2, 2]: exact zeros (and -0.0) on both sides of every gate.
    x = rng.integers(-2, 3, shape).astype(dtype)
    dy = rng.integers(-2, 3, shape).astype(dtype) * dtype(-1.0) ** rng.integers(0, 2, shape)
    dy_before = dy.copy()
    expected = ops.relu_backward(dy, x, rule)
    with on_cpu_kernels(cpu_kernels):
        dx = _gpu.relu_backward(dy, x, rule)
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dy, dy_before)


def test_relu_rule_codes_match_the_kernel_table():
    source = (backend.KERNEL_DIR / "relu.cu").read_text()
    for rule, code in _gpu.RELU_RULE_CODES.items():
        assert re.search(rf"//\s+{code}\s+\"{rule}\"", source), f"relu.cu does not document rule {code} as {rule!r}"
    assert set(_gpu.RELU_RULE_CODES) == set(ops.RELU_RULES)


# --- the wrappers and the ops' GPU branch, driven through the CPU builds --------------------------------------

def test_wrappers_make_inputs_contiguous(cpu_kernels):
    rng = np.random.default_rng(8)
    base = rng.standard_normal((3, 2, 9, 8))
    x = base.transpose(1, 0, 3, 2)[:, :, ::2]          # (2, 3, 4, 9), neither C- nor F-contiguous
    assert not x.flags.c_contiguous
    out = ops.conv_output_shape(x.shape, 3, 2, 1)
    with on_cpu_kernels(cpu_kernels):
        np.testing.assert_array_equal(_gpu.im2col(x, (3, 3), (2, 2), (1, 1), out), ops.im2col(x, 3, 2, 1))
        y, _ = _gpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (2, 4))
        np.testing.assert_array_equal(y, ops.max_pool2d_forward(x, 2)[0])
        np.testing.assert_array_equal(_gpu.relu_backward(x, x.T.T, "guided"), ops.relu_backward(x, x, "guided"))


@pytest.mark.parametrize("layer, shape", [
    (layers.Conv2D(2, 3, 3, stride=2, pad=1, rng=np.random.default_rng(0)), (2, 2, 7, 6)),
    (layers.MaxPool2D(3, 2), (2, 2, 7, 7)),
    (layers.MaxPool2D(3, 2, pad=1, ceil_mode=True), (1, 2, 8, 8)),
    (layers.LRN(n=3, k=0.5, alpha=0.9, beta=0.75), (2, 6, 3, 3)),
    (layers.ReLU(), (2, 3, 4, 4)),
], ids=["conv", "maxpool-overlap", "maxpool-pad-ceil", "lrn", "relu"])
def test_layer_gradients_through_the_kernels(cpu_kernels, layer, shape):
    """float64 central differences against the layers' backward with every windowed op on the kernels."""
    rng = np.random.default_rng(9)
    x = distinct_values(shape, rng, spacing=0.02 if isinstance(layer, layers.LRN) else 0.05)
    calls = []
    real_run = None

    def counting(filename, name, dtype, total, args):
        calls.append(name)
        real_run(filename, name, dtype, total, args)

    with on_cpu_kernels(cpu_kernels, route_ops=True):
        real_run = _gpu._run
        with mock.patch.object(_gpu, "_run", counting):
            assert check_layer(layer, x, rng=rng) < GRADCHECK_TOLERANCE
    assert calls, "the op did not take its GPU branch"


@pytest.mark.parametrize("rule", ops.RELU_RULES)
def test_relu_layer_rules_through_the_kernels(cpu_kernels, rule):
    rng = np.random.default_rng(10)
    x, dy = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    relu = layers.ReLU()
    relu.forward(x)
    expected = relu.backward(dy, rule=rule)
    with on_cpu_kernels(cpu_kernels, route_ops=True):
        relu.forward(x)
        np.testing.assert_array_equal(relu.backward(dy, rule=rule), expected)


# --- the CUDA side: every kernel compiles for the GPU ---------------------------------------------------------

def test_kernel_files_are_listed_and_declared():
    on_disk = sorted(os.path.basename(p) for p in glob.glob(str(backend.KERNEL_DIR / "*.cu")))
    assert on_disk == sorted(backend.KERNEL_FILES)
    names = {f: kernel_names(f) for f in backend.KERNEL_FILES}
    assert names == {"im2col.cu": ["im2col", "col2im"], "pool.cu": ["max_pool_forward", "max_pool_backward"],
                     "lrn.cu": ["lrn_forward", "lrn_backward"], "relu.cu": ["relu_backward"]}
    for filename in backend.KERNEL_FILES:
        source = (backend.KERNEL_DIR / filename).read_text()
        assert not re.search(r"\batomic\w*\(", source) and "__shared__" not in source, f"{filename}: gather only"
        # one grid-stride loop per kernel
        assert source.count("i += (long long)blockDim.x * gridDim.x") == len(names[filename]), filename
        assert source.isascii(), f"{filename}: keep kernel sources ASCII for every compiler"


def test_kernel_source_rejects_other_dtypes():
    with pytest.raises(TypeError, match="float32 and float64"):
        backend.kernel_source("relu.cu", np.float16)


def test_kernels_compile_to_ptx_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on the PATH: the PTX check of the CUDA kernels needs the CUDA toolkit")
    sources = write_sources(tmp_path)
    # One nvcc call per dtype, both at once; each source becomes <name>.ptx in the working directory.
    procs = [subprocess.Popen([nvcc, "--ptx", *[p.name for (_, dt), p in sources.items() if dt == dtype]],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for dtype in map(np.dtype, DTYPES)]
    for proc in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0, f"nvcc --ptx failed:\n{out}"
    for (filename, dtype), source in sources.items():
        ptx = source.with_suffix(".ptx").read_text()
        for name in kernel_names(filename):
            assert re.search(rf"\.entry {name}\(", ptx), f"{filename} ({dtype}): no PTX entry for {name}"
        # ".f64" as a type suffix, not "%f64", the 64th float register of a long float kernel
        assert bool(re.search(r"\.f64\b", ptx)) == (dtype == np.float64) or filename == "lrn.cu", \
            f"{filename}: wrong element type"


def _find_nvrtc():
    """libnvrtc from the system or from the nvidia-cuda-nvrtc wheels that CuPy's CUDA packages pull in."""
    candidates = []
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    try:
        import nvidia.cuda_nvrtc
        for root in nvidia.cuda_nvrtc.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    for path in candidates:
        if ".alt." in path:
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def test_kernels_compile_with_nvrtc():
    """NVRTC is what cupy.RawModule calls: compile the very text backend.get_kernel would hand it."""
    nvrtc = _find_nvrtc()
    if nvrtc is None:
        pytest.skip("no NVRTC library found (it comes with the CUDA toolkit or CuPy's nvidia-cuda-nvrtc wheels)")
    for filename in backend.KERNEL_FILES:
        for dtype in DTYPES:
            source = backend.kernel_source(filename, dtype).encode()
            prog = ctypes.c_void_p()
            assert nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source, filename.encode(), 0, None, None) == 0
            try:
                status = nvrtc.nvrtcCompileProgram(prog, 0, None)
                size = ctypes.c_size_t()
                nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
                log = ctypes.create_string_buffer(size.value)
                nvrtc.nvrtcGetProgramLog(prog, log)
                assert status == 0, f"NVRTC failed on {filename} ({np.dtype(dtype)}):\n{log.value.decode()}"
                nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
                ptx = ctypes.create_string_buffer(size.value)
                nvrtc.nvrtcGetPTX(prog, ptx)
                for name in kernel_names(filename):
                    assert f".entry {name}(" in ptx.value.decode()
            finally:
                nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))


# --- the kernel sources: the repository's kernels/, shipped in the wheel as minicnn/_kernels/ --------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_source_checkout_reads_the_repositorys_kernels_folder():
    """Run from the repository (pytest, an editable install), minicnn finds the top-level kernels/ folder."""
    if os.path.dirname(os.path.dirname(os.path.abspath(backend.__file__))) != REPO:
        pytest.skip("minicnn is imported from an installed copy, not from this repository")
    assert backend.KERNEL_DIR == backend.Path(REPO, "kernels")
    assert not os.path.exists(os.path.join(REPO, "minicnn", "kernels")), "the sources moved to the top-level kernels/"


def test_wheel_ships_the_kernels_and_an_installed_minicnn_finds_them(tmp_path):
    """A wheel built from the repository carries every file of kernels/ (CUDA, C, headers) as minicnn/_kernels/,
    and a minicnn installed from it (non-editable, away from the repository) finds and reads them there."""
    pytest.importorskip("setuptools", reason="building a wheel needs setuptools")
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    for folder in ("minicnn", "kernels"):
        shutil.copytree(os.path.join(REPO, folder), src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist")], cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("minicnn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(os.listdir(os.path.join(REPO, "kernels")))
    assert {os.path.splitext(f)[1] for f in sources} == {".cu", ".c", ".h"}
    for filename in sources:
        assert f"minicnn/_kernels/{filename}" in names, f"kernels/{filename} is missing from {wheel.name}"
    # setup.cfg lists the packages by name (one of them is mapped from outside minicnn/): a package added to the
    # tree but not to that list would be left out of the wheel.
    for init in glob.glob(os.path.join(REPO, "minicnn", "**", "__init__.py"), recursive=True):
        member = os.path.relpath(init, REPO).replace(os.sep, "/")
        assert member in names, f"{member} is missing from the wheel: add its package to [options] packages in setup.cfg"

    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = ("import minicnn, numpy; from minicnn import backend; print(minicnn.__file__); print(backend.KERNEL_DIR);"
             "print(all(backend.kernel_source(f, numpy.float32) for f in backend.KERNEL_FILES))")
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    package_file, kernel_dir, read_all = proc.stdout.split("\n")[:3]
    assert package_file.startswith(str(site)), f"the probe imported {package_file}, not the installed wheel"
    assert kernel_dir == str(site / "minicnn" / "_kernels")
    assert read_all == "True"
    assert sorted(os.listdir(kernel_dir)) == sources
