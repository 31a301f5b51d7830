"""Recycled output arrays (ops/_recycle.py): memory comes back only when nothing refers to the array any more."""
import numpy as np
import pytest

from minicnn import ops
from minicnn.ops import _recycle

BIG = (1 << 20) // 4 + 7          # float32 elements, just over 1 MiB: well above the recycling threshold


def address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def empty_pool():
    _recycle.release()
    yield
    _recycle.release()


def test_reference_counting_works_here():
    assert _recycle._FREE_REFS is not None      # else recycling would silently be off on this interpreter


def test_a_freed_array_is_recycled_and_a_held_one_is_not():
    a = _recycle.empty((BIG,), np.float32)
    where = address(a)
    b = _recycle.empty((BIG,), np.float32)       # a is held: new memory
    assert not np.shares_memory(a, b)
    del a
    c = _recycle.empty((BIG,), np.float32)       # a's memory, nobody holds it
    assert address(c) == where
    assert not np.shares_memory(b, c)


@pytest.mark.parametrize("hold", ["view", "memoryview", "frombuffer", "reshape", "list"])
def test_anything_that_still_refers_to_the_array_keeps_it(hold):
    def holder(a):
        if hold == "view":
            return a[10:20]
        if hold == "memoryview":
            return memoryview(a)
        if hold == "frombuffer":
            return np.frombuffer(a, dtype=np.uint8)
        if hold == "reshape":
            return a.reshape(-1, 1)
        return [a]

    a = _recycle.empty((BIG,), np.float32)
    a[:] = 1.5
    keep = holder(a)
    del a
    for _ in range(3):
        fresh = _recycle.empty((BIG,), np.float32)
        fresh[:] = -7.0
        arr = np.asarray(keep[0] if hold == "list" else keep).view(np.uint8)
        assert not np.shares_memory(fresh, arr)
    values = np.asarray(keep[0] if hold == "list" else keep).view(np.uint8).view(np.float32)
    assert np.all(values == 1.5)


def test_sizes_must_match_exactly_and_dtype_and_shape_are_as_asked():
    M = 131075                                    # M float64 = 2M float32 = 1,048,600 bytes
    a = _recycle.empty((2 * M,), np.float32)
    where = address(a)
    del a
    b = _recycle.empty((2 * M + 1,), np.float32)  # 4 bytes more: new memory
    assert address(b) != where
    c = _recycle.empty((M // 5, 5), np.float64)   # the same bytes in another dtype and shape: reused, as asked
    assert address(c) == where
    assert c.dtype == np.float64 and c.shape == (M // 5, 5) and c.flags.c_contiguous and c.flags.writeable


def test_small_arrays_and_switched_off_recycling_are_plain_np_empty():
    small = _recycle.empty((10,), np.float32)
    assert small.base is None
    with _recycle.recycling(False):
        a = _recycle.empty((BIG,), np.float32)
        assert a.base is None
        assert _recycle.pool_stats()[0] == 0


def test_memory_held_for_reuse_is_bounded(monkeypatch):
    monkeypatch.setattr(_recycle, "_MAX_FREE_BYTES", 3 * BIG * 4)
    for k in range(10):                           # ten sizes, each freed at once: only about three stay held
        _recycle.empty((BIG + k,), np.float32)
    count, _, free = _recycle.pool_stats()
    assert free <= 4 * (BIG + 10) * 4 and count <= 4


def test_op_outputs_held_by_the_caller_survive_later_calls():
    rng = np.random.default_rng(0)
    x1, x2 = (rng.standard_normal((4, 16, 64, 64)).astype(np.float32) for _ in range(2))   # 1 MiB each
    y1 = ops.relu_forward(x1)[0]
    saved = y1.copy()
    for _ in range(3):
        y2 = ops.relu_forward(x2)[0]
        del y2                                  # freed: the next call may take its memory, never y1's
    assert np.array_equal(y1, saved)
    assert np.array_equal(y1, np.maximum(x1, 0))
