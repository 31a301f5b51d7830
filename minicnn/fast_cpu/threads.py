"""minicnn's own threads: how many, the pool that runs them, and the BLAS's threads beside them.

How many: ``$MINICNN_NUM_THREADS`` when it is a positive integer, else every core this process may run on
(``os.sched_getaffinity``, which honours taskset, cgroups' cpusets and container limits; ``os.cpu_count()``
where it does not exist). ``set_num_threads(n)`` changes it at run time.

The pool: a ``concurrent.futures.ThreadPoolExecutor`` of n - 1 workers; the calling thread takes the first share
of every parallel region itself. The C loops release the GIL (ctypes does), so the shares run side by side.
A region started from inside another region's share runs serially in its thread (the outer region already keeps
every thread busy). A forked child starts a new pool on first use (its parent's workers do not exist in it), and
its locks are fresh.

The BLAS beside them: on more than one thread, the fast path runs its GEMMs (a convolution's batch chunks, the
fully connected layers' rows) one per minicnn thread, and for the duration of such a region the BLAS is set to
one thread (``blas_single_threaded``), so that the GEMMs do not each start the BLAS's own threads on the same
cores and no BLAS worker is left spinning beside the next layer's threads. Everywhere else -- the readable ops,
the rest of the program, and the fast path under ``MINICNN_NUM_THREADS=1`` -- the BLAS keeps its own thread count,
so a many-core machine runs those GEMMs on all its cores.

Scratch buffers: temporaries that never leave an op (a chunk's column matrix and GEMM output) live in one buffer
per tag and thread, reused from call to call, so that a training step does not page-fault fresh memory for them.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .tuning import TUNING

__all__ = ["usable_cores", "get_num_threads", "set_num_threads", "parallel_chunks", "serial",
           "blas_single_threaded", "blas_thread_counts", "scratch"]


def usable_cores():
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _threads_from_environment():
    """$MINICNN_NUM_THREADS when it is a positive integer, else ``usable_cores()``; another value is reported on
    stderr (an exception here would make ``import minicnn`` fail)."""
    value = os.environ.get("MINICNN_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    if value:
        print(f"minicnn: MINICNN_NUM_THREADS must be a positive integer, got {value!r}; using {usable_cores()}",
              file=sys.stderr)
    return usable_cores()


_num_threads = _threads_from_environment()


def _fresh_state():
    """No pool, no region, no BLAS change: at import, and in a forked child, which has none of its parent's
    worker threads, and where a lock held by one of them at the fork would stay held forever."""
    global _pool, _pool_lock, _region, _blas_lock, _blas_users, _blas_saved
    _pool, _pool_lock = None, threading.Lock()    # (ThreadPoolExecutor, its worker count), made on first use
    _region = threading.local()       # .busy: this thread runs a share of a region (nested regions run serially)
    _blas_lock, _blas_users, _blas_saved = threading.Lock(), 0, None  # regions in blas_single_threaded; old counts


_fresh_state()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_state)


def get_num_threads():
    """The threads minicnn's fast CPU path runs on."""
    return _num_threads


def set_num_threads(n):
    """Run the fast CPU path on ``n`` threads from now on (the pool is remade on its next use)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    _num_threads = int(n)


def _executor(workers):
    global _pool
    with _pool_lock:
        if _pool is None or _pool[1] != workers:
            if _pool is not None:
                _pool[0].shutdown(wait=False)      # its idle workers exit; running shares finish first
            _pool = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minicnn"), workers)
        return _pool[0]


@contextlib.contextmanager
def serial():
    """Within this block this thread's parallel regions run serially (work too small for any hand-off)."""
    old = getattr(_region, "busy", False)
    _region.busy = True
    try:
        yield
    finally:
        _region.busy = old


def _share(fn, a, b):
    with serial():
        fn(a, b)


def parallel_chunks(fn, n, elements):
    """Call ``fn(start, stop)`` over a split of ``range(n)`` into disjoint shares, in parallel where it pays.

    ``elements`` is the work in array elements: one thread per ``TUNING.min_elements_per_thread`` of it, at most
    ``get_num_threads()``. The calling thread runs the first share; an exception in any share is re-raised here."""
    parts = min(_num_threads, n, max(1, elements // TUNING.min_elements_per_thread))
    if parts <= 1 or getattr(_region, "busy", False):
        fn(0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    pool = _executor(_num_threads - 1)
    futures = [pool.submit(_share, fn, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    try:
        _share(fn, bounds[0], bounds[1])
    finally:
        for f in futures:
            f.exception()                         # wait for every share before the caller's arrays go away
    for f in futures:
        f.result()


# --- the BLAS's threads ----------------------------------------------------------------------------------------

_blas = None                      # threadpoolctl's controllers of the loaded BLAS libraries, found once


def _blas_libraries():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        except Exception:         # threadpoolctl missing or failing: leave the BLAS alone
            _blas = []
    return _blas


def blas_thread_counts():
    """The thread count of each loaded BLAS library (what a GEMM outside minicnn's regions uses)."""
    return [lib.get_num_threads() for lib in _blas_libraries()]


def _set_blas_threads(counts):
    for lib, n in zip(_blas_libraries(), counts):
        if lib.get_num_threads() != n:
            lib.set_num_threads(n)


@contextlib.contextmanager
def blas_single_threaded():
    """One BLAS thread per GEMM within this block when minicnn runs on more than one thread (process-wide while any
    such block runs; the first block in saves the counts, the last one out restores them); with one thread,
    nothing changes. For regions where minicnn's threads each run GEMMs."""
    global _blas_users, _blas_saved
    if _num_threads == 1:
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = blas_thread_counts()
            _set_blas_threads([1] * len(_blas_saved))
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _set_blas_threads(_blas_saved)


# --- scratch buffers -------------------------------------------------------------------------------------------

_scratch = threading.local()
SCRATCH_LIMIT = 64 << 20          # larger temporaries are fresh arrays: a huge batch would pin its memory


def scratch(tag, shape, dtype):
    """An uninitialised array for a temporary that never leaves the op: the same memory for the same tag on the
    next call in this thread (so the caller must be done with it first). Above SCRATCH_LIMIT, a fresh array."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    if size > SCRATCH_LIMIT:
        return np.empty(shape, dtype)
    buf = _scratch.__dict__.get(tag)
    if buf is None or buf.nbytes < size:
        buf = _scratch.__dict__[tag] = np.empty(size, np.uint8)
    return buf[:size].view(dtype).reshape(shape)
