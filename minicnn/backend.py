"""Array backends: NumPy on the CPU, CuPy on the GPU.

Every op asks ``xp(x)`` for the module that owns its input, so one source serves both devices.
Importing minicnn never imports CuPy eagerly enough to fail: where CuPy is missing or no CUDA
device answers, ``gpu_available()`` is simply False.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["xp", "is_gpu_array", "gpu_available", "gpu_unavailable_reason", "to_device", "to_numpy", "cupy",
           "KERNEL_DIR", "KERNEL_FILES", "kernel_source", "get_kernel", "launch"]


@functools.lru_cache(maxsize=1)
def _import_cupy():
    """Return (cupy module or None, reason string)."""
    try:
        import cupy  # noqa: F401
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy is installed but no CUDA device answers ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "CuPy is installed but reports no CUDA device"
    return cupy, ""


def cupy():
    """The cupy module, or None where no usable GPU exists."""
    return _import_cupy()[0]


def gpu_available() -> bool:
    """True when CuPy imports and at least one CUDA device answers. Never raises."""
    return _import_cupy()[0] is not None


def gpu_unavailable_reason() -> str:
    """Why ``gpu_available()`` is False ('' when it is True); used as the skip reason in tests."""
    return _import_cupy()[1]


def is_gpu_array(x) -> bool:
    """True for a CuPy array. Does not import CuPy for NumPy arrays."""
    return type(x).__module__.split(".")[0] == "cupy"


def xp(x):
    """The array module (numpy or cupy) that owns ``x``."""
    if is_gpu_array(x):
        return cupy()
    return np


def to_device(x, device: str):
    """Move an array to ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy). A no-op when already there."""
    if device == "cpu":
        return to_numpy(x)
    if device == "gpu":
        cp = cupy()
        if cp is None:
            raise RuntimeError(f"to_device(x, 'gpu'): no GPU is usable here: {gpu_unavailable_reason()}")
        return cp.asarray(x)
    raise ValueError(f"to_device: device must be 'cpu' or 'gpu', got {device!r}")


def to_numpy(x):
    """Return ``x`` as a NumPy array (copies a CuPy array to the host)."""
    if is_gpu_array(x):
        return x.get()
    return np.asarray(x)


# --- hand-written CUDA kernels ----------------------------------------------------------------------------
#
# The kernel sources (.cu, and the C of the fast CPU path) live in the repository's top-level kernels/ folder.
# A wheel carries them as minicnn/_kernels/ (setup.cfg maps that package onto kernels/), so an installed minicnn
# finds them next to this file; a source checkout or an editable install has no minicnn/_kernels/ and reads the
# repository's kernels/ one level above the package. ``KERNEL_DIR`` is the one place anything looks them up.
#
# The element type is chosen by prefixing the source with ``#define T float`` (or double) rather than passing
# ``-DT=float``: both NVRTC and nvcc include CUDA headers of their own before the source, and those headers use
# ``T`` as a template parameter name, which a command-line macro would rewrite. A ``#define`` at the top of the
# source takes effect after them. The tests compile exactly this text (g++ with a CPU shim, nvcc to PTX).


def _find_kernel_dir() -> Path:
    """The folder holding the kernel sources: minicnn/_kernels/ when installed from a wheel, else <repo>/kernels/."""
    package = Path(__file__).resolve().parent
    installed, checkout = package / "_kernels", package.parent / "kernels"
    for folder in (installed, checkout):
        if (folder / "cpu_shim.h").is_file():   # a file only minicnn's kernel folder has
            return folder
    return installed   # neither is there: kernel_source names this path in its error


KERNEL_DIR = _find_kernel_dir()
KERNEL_FILES = ("im2col.cu", "pool.cu", "lrn.cu", "relu.cu")
_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
BLOCK = 256            # threads per block; every kernel is a grid-stride loop, so any grid size is correct
MAX_BLOCKS = 65535     # enough blocks to fill any current GPU; larger problems loop (grid stride)


def kernel_source(filename: str, dtype) -> str:
    """The CUDA source of ``kernels/<filename>`` specialised for ``dtype`` (float32 -> float, float64 -> double)."""
    dtype = np.dtype(dtype)
    if dtype not in _C_TYPES:
        raise TypeError(f"minicnn kernels exist for float32 and float64, not {dtype}")
    path = KERNEL_DIR / filename
    if not path.is_file():
        raise FileNotFoundError(f"kernel source {filename} is missing from {KERNEL_DIR} (and from the repository's "
                                f"kernels/ folder); was minicnn installed without its package data?")
    return f"#define T {_C_TYPES[dtype]}\n" + path.read_text()


@functools.lru_cache(maxsize=None)
def _kernel_module(filename: str, dtype_name: str):
    """Compile one kernel file for one dtype, once per process (CuPy also caches the binary on disk)."""
    cp = cupy()
    if cp is None:
        raise RuntimeError(f"CUDA kernels need a GPU: {gpu_unavailable_reason()}")
    return cp.RawModule(code=kernel_source(filename, dtype_name))


def get_kernel(filename: str, name: str, dtype):
    """The kernel ``name`` from ``kernels/<filename>`` compiled for ``dtype`` (cached per file and dtype)."""
    return _kernel_module(filename, np.dtype(dtype).name).get_function(name)


def launch(kernel, total: int, args: tuple) -> None:
    """Run ``kernel`` over ``total`` output elements: one thread per element up to MAX_BLOCKS blocks, the
    grid-stride loop covering the rest. Scalars in ``args`` must already have their C type (np.int32, ...)."""
    if total <= 0:
        return
    blocks = min((total + BLOCK - 1) // BLOCK, MAX_BLOCKS)
    kernel((blocks,), (BLOCK,), args)
