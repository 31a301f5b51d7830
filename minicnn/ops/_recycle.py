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
import math
import sys
import threading

import numpy as np

__all__ = ["empty", "recycling", "release", "pool_stats"]

_MIN_BYTES = 128 << 10         # glibc serves smaller blocks from its heap; larger ones are mmap'ed or trimmed
_MAX_FREE_BYTES = 128 << 20    # memory held by arrays nobody uses any more, at most
_MAX_ENTRIES = 256             # arrays tracked; the oldest are forgotten (never reused) beyond this
_pool = {}                     # nbytes -> 1-D uint8 base arrays of that size, least recently handed out first
_order = []                    # every tracked array's nbytes, least recently handed out first (for trimming)
_lock = threading.Lock()
_enabled = True


def _refs(arrays, i):
    """sys.getrefcount of arrays[i], taken the same way everywhere (no other local name bound to it)."""
    return sys.getrefcount(arrays[i])


def _free_refcount():
    """What ``_refs`` reads for an array that only the pool holds; None where reference counts do not behave
    as this module needs (a view must count), and recycling then stays off."""
    arrays = [np.empty(8, dtype=np.uint8)]
    free = _refs(arrays, 0)
    view = arrays[0][2:]
    held = _refs(arrays, 0)
    del view
    return free if held == free + 1 and _refs(arrays, 0) == free else None


_FREE_REFS = _free_refcount()


def empty(shape, dtype):
    """An uninitialised array like ``np.empty(shape, dtype)``, its memory recycled when a free one fits exactly."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize       # not np.prod: ~10 us a call, on every op output
    if not _enabled or _FREE_REFS is None or nbytes < _MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    with _lock:
        same = _pool.setdefault(nbytes, [])
        free = next((i for i in range(len(same)) if _refs(same, i) == _FREE_REFS), None)
        if free is None:
            same.append(np.empty(nbytes, dtype=np.uint8))
        else:
            same.append(same.pop(free))                # most recently handed out last
            _order.remove(nbytes)
        _order.append(nbytes)
        if free is None:
            _trim()                                    # only a new array can take the pool over its bounds
        return same[-1].view(dtype).reshape(shape)


def _trim():
    """Forget the least recently handed-out arrays beyond the bounds (a forgotten array is freed as usual, or
    stays with whoever holds it). The newest entry, about to be handed out, is never forgotten."""
    free = sum(n for n, same in _pool.items() for i in range(len(same)) if _refs(same, i) == _FREE_REFS)
    for nbytes in list(_order[:-1]):
        if free <= _MAX_FREE_BYTES and len(_order) <= _MAX_ENTRIES:
            break
        same = _pool[nbytes]
        if _refs(same, 0) == _FREE_REFS:               # the oldest array of this size
            free -= nbytes
        elif len(_order) <= _MAX_ENTRIES:
            continue                                   # in use, and not over the count: keep tracking it
        del same[0]
        _order.remove(nbytes)


def release():
    """Forget every array: free ones go back to the allocator, those in use stay with whoever holds them."""
    with _lock:
        _pool.clear()
        _order.clear()


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
        sizes = [(n, _refs(same, i) == _FREE_REFS) for n, same in _pool.items() for i in range(len(same))]
    return len(sizes), sum(n for n, _ in sizes), sum(n for n, free in sizes if free)
