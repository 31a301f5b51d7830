"""The fast CPU path: the public ops' results from C loops and minicnn's own threads.

``minicnn/ops/`` holds the definition of every op, readable NumPy. This package computes the same results
faster on NumPy arrays, for the ops where speed comes from a loop over windows or from threads:

    conv.py      conv2d forward/backward: direct C convolution for small stride-1 layers, else im2col + GEMM
                 by batch chunk in one C call each (kernels/cpu_conv_direct.c, kernels/cpu_im2col.c)
    pool.py      max pooling with switches and unpooling (kernels/cpu_pool.c)
    linear.py    the fully connected layer's GEMMs in minicnn's threads
    lrn.py       LRN in fewer NumPy passes over the threads (a cheaper power, the scale kept for the backward)
    relu.py      ReLU forward over the threads, its backward as a bit mask instead of np.where
    build.py     compiling the C sources at first use, the validated on-disk cache, loading through ctypes
    threads.py   how many threads, the pool, the BLAS's threads beside them, scratch buffers
    tuning.py    every size threshold, in one object (``TUNING``; tests override it with ``tuned(...)``)

linear.py, lrn.py and relu.py are NumPy, not C, and each stays because it pays >= 10% on a zfnet_small training
step (the figures are in their docstrings). Per windowed op there are at most three implementations: the readable NumPy op, the C loops here, the CUDA
kernel. ``ops/dispatch.py`` is the one place that chooses: a forward comes here when the fast path is active
(``minicnn.cpu_path``, ``MINICNN_CPU_PATH``), a backward when its cache is one of ``CACHE_TYPES``. Every function
here takes the public op's arguments, runs the readable op's own checks (so that every path rejects the same
input with the same error), and returns ``NotImplemented`` for input it leaves to the readable body.

Without a C compiler, or where the build fails, ``available()`` is False and the readable path runs;
``unavailable_reason()`` says why (``minicnn info`` prints it with the compiler, flags and cache directory).

Imports point one way: this package imports ``minicnn.ops`` (the readable checks and caches it shares) and
``minicnn.backend`` (where the C sources are), nothing above them; ``ops`` imports it lazily, in
``ops/dispatch.py`` only.
"""
from __future__ import annotations

import numpy as np

from . import build
from .conv import FastConvCache, conv2d_backward, conv2d_forward
from .linear import FastLinearCache, linear_backward, linear_forward
from .lrn import FastLRNCache, lrn_backward, lrn_forward
from .pool import FastPoolCache, max_pool2d_backward, max_pool2d_forward
from .relu import relu_backward, relu_forward
from .threads import get_num_threads, set_num_threads

__all__ = ["available", "unavailable_reason", "describe", "CACHE_TYPES", "get_num_threads", "set_num_threads",
           "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward", "linear_forward",
           "linear_backward", "lrn_forward", "lrn_backward", "relu_forward", "relu_backward"]

CACHE_TYPES = (FastConvCache, FastPoolCache, FastLinearCache, FastLRNCache)


def available():
    """True when the C loops are built (or build now) for both dtypes."""
    return all(build.library(dtype) is not None for dtype in (np.float32, np.float64))


def unavailable_reason():
    """Why the fast path cannot run here ('' when it can)."""
    for dtype in (np.float32, np.float64):
        if build.library(dtype) is None:
            return f"the fast path is unavailable: {build.build_error(dtype).splitlines()[0]}"
    return ""


def describe():
    """One line: the threads and the C loops."""
    gemm = "found" if build.gemm(np.float32) else "not found: only the direct convolution runs in C"
    return f"{get_num_threads()} threads, C loops built ({build.info()['compiler']}), NumPy's BLAS gemm {gemm}"
