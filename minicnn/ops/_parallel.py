"""Private helpers for the CPU fast paths: a small thread pool for copies, and reusable scratch buffers.

Why threads: NumPy releases the GIL inside copies and ufunc loops on large arrays, so two Python threads that
each copy half of an array run on two cores. BLAS already uses every core for the GEMMs; the copies around them
(im2col, col2im, pooling, LRN) were single-threaded and on 2 cores took about as long as the GEMMs.

Why a pool of its own (``_SpinPool``): handing a share to a worker that sleeps on a lock costs a wake-up of the
thread, 55-90 us per parallel region on this virtual machine (and as much again for the caller's wake-up when
the worker finishes), while a convolution or pooling of a small batch takes 0.1-1 ms in all. PyTorch's OpenMP
threads spin between regions instead of sleeping. minicnn's workers do the same where Numba is there: between
tasks they poll a shared counter without the GIL (``_jit_loops.waits``, sched_yield between polls) for about
``SPIN_POLLS`` polls, ~1.5 ms, before they go to sleep. An empty region then costs 15-25 us here, most of it the
worker waiting for the GIL to start its share (35-90 us with a sleeping worker). Without Numba the pool is a
``ThreadPoolExecutor``.

Why scratch buffers: a fresh large array is fresh pages, and the first touch of every 4 KiB page is a page fault
(0.3-2 us here). A temporary that never leaves an op (the column gradient of conv backward, for example) can
live in one buffer reused from call to call. Only temporaries go there: an array an op returns, or keeps in a
cache, is always a new array (ops/_recycle.py may give it the memory of an earlier output, but only one that
nothing refers to any more), so nothing the caller holds is ever overwritten by the next call.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["get_num_threads", "set_num_threads", "parallel_chunks", "serial", "can_limit_blas",
           "blas_single_threaded", "scratch"]

def _threads_from_environment():
    """$MINICNN_NUM_THREADS when it is a positive integer, else min(2, cores); a value that is not one is
    reported on stderr (an exception here would make ``import minicnn`` fail)."""
    default = max(1, min(2, os.cpu_count() or 1))
    value = os.environ.get("MINICNN_NUM_THREADS")
    if value is None or value.strip() == "":
        return default
    try:
        n = int(value)
        if n < 1:
            raise ValueError
    except ValueError:
        print(f"minicnn: MINICNN_NUM_THREADS must be a positive integer, got {value!r}; using {default}",
              file=sys.stderr)
        return default
    return n


_num_threads = _threads_from_environment()
_pool = None
_pool_lock = threading.Lock()
# Work below this many elements per extra thread is not worth a hand-off (~20 us per task).
MIN_ELEMENTS_PER_THREAD = 1 << 16


def get_num_threads():
    """Threads used for the copy loops of the CPU fast paths ($MINICNN_NUM_THREADS, else min(2, cores))."""
    return _num_threads


def set_num_threads(n):
    global _num_threads
    _num_threads = max(1, int(n))


# Polls a worker makes for new work before it sleeps (~0.75 us each here: ~1.5 ms, longer than the gaps between
# the ops of a training step, short enough that an idle notebook does not keep a core busy).
SPIN_POLLS = 2000


class _SpinPool:
    """``workers`` threads that take a share of a parallel region each; the caller takes the first share.

    ``state[0]`` counts the regions, ``state[1 + i]`` is the last region worker i finished. A worker polls
    ``state[0]`` without the GIL; after ``SPIN_POLLS`` polls without news it marks itself asleep and waits on its
    event, which the next region sets. Those two steps run holding the GIL and under ``_sleep_lock``, so a region
    published between a worker's last poll and its sleep is never missed. One caller at a time (``busy``): a
    second thread that calls ``parallel_chunks`` meanwhile runs its work serially."""

    def __init__(self, workers, waits):
        self.changed, self.done = waits
        self.state = np.zeros(1 + workers, dtype=np.int64)
        self.shares = [None] * workers
        self.errors = [None] * workers
        self.asleep = [False] * workers
        self.events = [threading.Event() for _ in range(workers)]
        self.busy = threading.Lock()
        self._sleep_lock = threading.Lock()
        self.closed = False
        self.threads = [threading.Thread(target=self._work, args=(i,), name=f"minicnn-{i + 1}", daemon=True)
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def _work(self, i):
        seen = 0
        while True:
            task = self.changed(self.state, seen, SPIN_POLLS)
            if task == seen:                           # nothing for a while: sleep until the next region
                with self._sleep_lock:
                    if self.state[0] != seen:
                        continue
                    self.asleep[i] = True
                    self.events[i].clear()
                self.events[i].wait()
                continue
            if self.closed:
                return
            seen = task
            fn, a, b = self.shares[i]
            try:
                _run_share(fn, a, b)
            except BaseException as exc:               # handed to the caller, which re-raises it
                self.errors[i] = exc
            self.state[1 + i] = task

    def _wake(self):
        with self._sleep_lock:
            for i, asleep in enumerate(self.asleep):
                if asleep:
                    self.asleep[i] = False
                    self.events[i].set()

    def run(self, fn, bounds):
        """fn over bounds[i]..bounds[i+1] for every i, the caller doing the first share. Holds ``busy``."""
        for i in range(len(self.shares)):
            self.shares[i] = (fn, bounds[i + 1], bounds[i + 2]) if i + 2 < len(bounds) else (_nothing, 0, 0)
            self.errors[i] = None
        task = int(self.state[0]) + 1
        self.state[0] = task                           # publish: the spinning workers start now
        self._wake()
        try:
            _run_share(fn, bounds[0], bounds[1])
        finally:
            while not self.done(self.state, task, 1000):   # in slices, so that Ctrl-C is seen between them
                pass
        for exc in self.errors:
            if exc is not None:
                raise exc

    def close(self):
        self.closed = True
        self.state[0] += 1
        self._wake()


def _nothing(a, b):
    pass


def _executor():
    """The pool for ``_num_threads``: a _SpinPool where Numba is importable, else a ThreadPoolExecutor."""
    global _pool
    with _pool_lock:
        workers = _num_threads - 1
        if isinstance(_pool, _SpinPool) and len(_pool.threads) != workers:
            _pool.close()
            _pool = None
        if isinstance(_pool, ThreadPoolExecutor) and _pool._max_workers < _num_threads:
            _pool = None
        if _pool is None:
            from . import _jit_loops
            waits = _jit_loops.waits()
            _pool = _SpinPool(workers, waits) if waits else ThreadPoolExecutor(
                max_workers=_num_threads, thread_name_prefix="minicnn")
        return _pool


def _forget_pool():
    """In a forked child the pool's threads do not exist: start a new pool on first use."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


_region = threading.local()       # .busy: this thread is already running a share of a parallel_chunks call


@contextlib.contextmanager
def serial():
    """Within this block this thread's ``parallel_chunks`` calls run serially, as inside a share: for work too
    small to pay for any hand-off (see ``_cpu_fast._conv_threads``)."""
    old = getattr(_region, "busy", False)
    _region.busy = True
    try:
        yield
    finally:
        _region.busy = old


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
    pool = _executor()
    if isinstance(pool, _SpinPool):
        if not pool.busy.acquire(blocking=False):     # another thread's region is running: do this one alone
            fn(0, n)
            return
        try:
            pool.run(fn, bounds)
        finally:
            pool.busy.release()
        return
    futures = [pool.submit(_run_share, fn, bounds[i], bounds[i + 1]) for i in range(1, parts)]
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
            _blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"] or False
        except Exception:            # not installed: conv keeps BLAS-threaded GEMMs
            _blas = False
    return bool(_blas)


class _SingleThreadedBlas:
    """Sets every BLAS library to one thread, and back to what it had on exit. The libraries' own calls
    (``get_num_threads``/``set_num_threads`` of threadpoolctl's controllers, found once), not a threadpoolctl
    ``limit``: that one looks up every loaded library on each entry, ~10 us, paid by every convolution."""

    def __enter__(self):
        self.old = [lib.get_num_threads() for lib in _blas]
        for lib, n in zip(_blas, self.old):
            if n != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in zip(_blas, self.old):
            if n != 1:
                lib.set_num_threads(n)


def blas_single_threaded():
    """A context in which the BLAS runs one thread per call, or None where threadpoolctl is not installed.

    Used by conv to run whole batch chunks (im2col, GEMM, layout) in our own threads, one GEMM per thread:
    OpenBLAS's own 2-thread GEMM reached ~1.45x one thread here and collapsed when other processes took a
    core; two single-threaded GEMMs side by side do neither. The limit is process-wide while it lasts.
    """
    return _SingleThreadedBlas() if can_limit_blas() else None


_scratch = threading.local()


def scratch(tag, shape, dtype):
    """A reusable uninitialised array for a temporary that never leaves the op (one per tag, per thread).

    The same tag returns the same memory on the next call, so a caller must be done with it before calling
    an op that uses the tag again; ops use it only for arrays they neither return nor cache.
    """
    store = _scratch.__dict__
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize         # not np.prod: ~5 us a call, on every op
    buf = store.get(tag)
    if buf is None or buf.nbytes < size:
        buf = np.empty(size, dtype=np.uint8)
        store[tag] = buf
    return buf[:size].view(dtype).reshape(shape)
