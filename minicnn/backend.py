"""Array backends: NumPy on the CPU, CuPy on the GPU.

Every op asks ``xp(x)`` for the module that owns its input, so one source serves both devices.
Importing minicnn never imports CuPy eagerly enough to fail: where CuPy is missing or no CUDA
device answers, ``gpu_available()`` is simply False.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["xp", "is_gpu_array", "gpu_available", "gpu_unavailable_reason", "to_device", "to_numpy", "cupy"]


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
