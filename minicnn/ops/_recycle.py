"""Output arrays of the fast CPU paths whose memory is recycled from earlier outputs that nothing refers to any more.

Why: every op returns a new array (nothing the caller holds is ever overwritten), and a new large array is new
pages: the first write to each 4 KiB page is a page fault (0.3-2 us here; an 8 MB activation is 2048 of them, and
two threads writing one array take their faults one after the other). glibc hands a freed block back to the
operating system once enough free memory sits at the top of the heap, so in a training step, where a few dozen
large arrays are freed and allocated again in the same sizes, many allocations came back as new pages.

How it stays safe: the pool keeps one reference to every large array it has handed out. An array is handed out
again only when that reference is the only one left (``sys.getrefcount``): while the caller, a layer's cache or
any view of the array exists, the array counts as in use (a view, or a NumPy/PyTorch/memoryview export of it,
holds a reference to it), so its memory is never given to anyone else. What the pool keeps beyond the arrays in
use is bounded (``_MAX_FREE_BYTES``). ``recycling(False)`` switches it off (then every call is ``np.empty``).
"""
from __future__ import annotations

import contextlib
import sys
import threading

import numpy as np

__all__ = ["empty", "recycling", "release", "pool_stats"]

_MIN_BYTES = 1 << 20           # smaller arrays come from glibc's free lists at no page-fault cost
_MAX_FREE_BYTES = 128 << 20    # memory held by arrays nobody uses any more, at most
_MAX_ENTRIES = 256             # arrays tracked; the oldest are forgotten (never reused) beyond this
_pool = []                     # 1-D uint8 base arrays, least recently handed out first
_lock = threading.Lock()
_enabled = True


def _refs(pool, i):
    """sys.getrefcount of pool[i], taken the same way everywhere (no other local name bound to it)."""
    return sys.getrefcount(pool[i])


def _free_refcount():
    """What ``_refs`` reads for an array that only the pool holds; None where reference counts do not behave
    as this module needs (a view must count), and recycling then stays off."""
    pool = [np.empty(8, dtype=np.uint8)]
    free = _refs(pool, 0)
    view = pool[0][2:]
    held = _refs(pool, 0)
    del view
    return free if held == free + 1 and _refs(pool, 0) == free else None


_FREE_REFS = _free_refcount()


def empty(shape, dtype):
    """An uninitialised array like ``np.empty(shape, dtype)``, its memory recycled when a free one fits exactly."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not _enabled or _FREE_REFS is None or nbytes < _MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    with _lock:
        for i in range(len(_pool)):
            if _pool[i].nbytes == nbytes and _refs(_pool, i) == _FREE_REFS:
                _pool.append(_pool.pop(i))             # most recently handed out last
                break
        else:
            _pool.append(np.empty(nbytes, dtype=np.uint8))
            _trim()
        return _pool[-1].view(dtype).reshape(shape)


def _trim():
    """Forget the least recently handed-out arrays beyond the bounds (a forgotten array is freed as usual, or
    stays with whoever holds it). The newest entry, about to be handed out, is never forgotten."""
    free = sum(_pool[i].nbytes for i in range(len(_pool)) if _refs(_pool, i) == _FREE_REFS)
    i = 0
    while i < len(_pool) - 1 and (free > _MAX_FREE_BYTES or len(_pool) > _MAX_ENTRIES):
        if _refs(_pool, i) == _FREE_REFS:
            free -= _pool[i].nbytes
            del _pool[i]
        elif len(_pool) > _MAX_ENTRIES:
            del _pool[i]
        else:
            i += 1


def release():
    """Forget every array: free ones go back to the allocator, those in use stay with whoever holds them."""
    with _lock:
        _pool.clear()


@contextlib.contextmanager
def recycling(enabled=True):
    """Within this block, recycling is on (default) or off; off also empties the pool."""
    global _enabled
    old, _enabled = _enabled, enabled
    if not enabled:
        release()
    try:
        yield
    finally:
        _enabled = old


def pool_stats():
    """(arrays tracked, bytes tracked, bytes of arrays nobody else holds): for tests and benchmarks."""
    with _lock:
        sizes = [(_pool[i].nbytes, _refs(_pool, i) == _FREE_REFS) for i in range(len(_pool))]
    return len(sizes), sum(n for n, _ in sizes), sum(n for n, free in sizes if free)
