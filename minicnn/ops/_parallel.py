"""Private helpers for the CPU fast paths: a small thread pool for copies, and reusable scratch buffers.

Why threads: NumPy releases the GIL inside copies and ufunc loops on large arrays, so two Python threads that
each copy half of an array run on two cores. BLAS already uses every core for the GEMMs; the copies around them
(im2col, col2im, pooling, LRN) were single-threaded and on 2 cores took about as long as the GEMMs.

Why scratch buffers: a fresh large array is fresh pages, and the first touch of every 4 KiB page is a page fault
(0.3-2 us here). A temporary that never leaves an op (the column gradient of conv backward, for example) can
live in one buffer reused from call to call. Only temporaries go there: an array an op returns, or keeps in a
cache, is always a new array (ops/_recycle.py may give it the memory of an earlier output, but only one that
nothing refers to any more), so nothing the caller holds is ever overwritten by the next call.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["get_num_threads", "set_num_threads", "parallel_chunks", "can_limit_blas", "blas_single_threaded",
           "scratch"]

_num_threads = max(1, min(2, int(os.environ.get("MINICNN_NUM_THREADS", os.cpu_count() or 1))))
_pool = None
_pool_lock = threading.Lock()
# Work below this many elements per extra thread is not worth a hand-off (~20 us per task).
MIN_ELEMENTS_PER_THREAD = 1 << 16


def get_num_threads():
    """Threads used for the copy loops of the CPU fast paths (default: min(2, cores), or $MINICNN_NUM_THREADS)."""
    return _num_threads


def set_num_threads(n):
    global _num_threads
    _num_threads = max(1, int(n))


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < _num_threads:
            _pool = ThreadPoolExecutor(max_workers=_num_threads, thread_name_prefix="minicnn")
        return _pool


_region = threading.local()       # .busy: this thread is already running a share of a parallel_chunks call


def _run_share(fn, a, b):
    _region.busy = True
    try:
        fn(a, b)
    finally:
        _region.busy = False


def parallel_chunks(fn, n, elements):
    """Call ``fn(start, stop)`` over a split of ``range(n)``, in parallel when the work is large enough.

    ``elements`` is the work in array elements, used only to decide how many threads pay off: one thread per
    MIN_ELEMENTS_PER_THREAD. Callers pass the size of one NumPy call, not the sum over all their calls: two
    threads that each make many short calls spend their time handing the GIL to each other (an LRN of 65 K
    elements, ~12 passes, took 0.9 ms on two threads and 0.6 ms on one). The chunks
    are disjoint, so ``fn`` may write to disjoint slices of one output without locks. A call made from inside
    another call's share runs serially in its thread (the outer call already keeps every thread busy).
    """
    parts = min(_num_threads, n, max(1, elements // MIN_ELEMENTS_PER_THREAD))
    if parts <= 1 or getattr(_region, "busy", False):
        fn(0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    futures = [_executor().submit(_run_share, fn, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    _run_share(fn, bounds[0], bounds[1])      # the calling thread does the first share itself
    for f in futures:
        f.result()                            # re-raises an exception from a worker


_blas = None


def can_limit_blas():
    """True where threadpoolctl can set the BLAS's thread count (``blas_single_threaded`` then returns a limit)."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController()
        except Exception:            # not installed: conv keeps BLAS-threaded GEMMs
            _blas = False
    return bool(_blas)


def blas_single_threaded():
    """A context in which the BLAS runs one thread per call, or None where threadpoolctl is not installed.

    Used by conv to run whole batch chunks (im2col, GEMM, layout) in our own threads, one GEMM per thread:
    OpenBLAS's own 2-thread GEMM reached ~1.45x one thread here and collapsed when other processes took a
    core; two single-threaded GEMMs side by side do neither. The limit is process-wide while it lasts.
    """
    return _blas.limit(limits=1, user_api="blas") if can_limit_blas() else None


_scratch = threading.local()


def scratch(tag, shape, dtype):
    """A reusable uninitialised array for a temporary that never leaves the op (one per tag, per thread).

    The same tag returns the same memory on the next call, so a caller must be done with it before calling
    an op that uses the tag again; ops use it only for arrays they neither return nor cache.
    """
    store = _scratch.__dict__
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buf = store.get(tag)
    if buf is None or buf.nbytes < size:
        buf = np.empty(size, dtype=np.uint8)
        store[tag] = buf
    return buf[:size].view(dtype).reshape(shape)
