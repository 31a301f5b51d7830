"""minicnn's thread pool (ops/_parallel.py): the spinning pool where Numba is importable, the executor otherwise."""
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from minicnn.ops import _jit_loops, _parallel

needs_waits = pytest.mark.skipif(_jit_loops.waits() is None,
                                 reason="no spinning pool: Numba is not importable here, or MINICNN_JIT=0")


@pytest.fixture
def threads(monkeypatch):
    """n threads for parallel_chunks, every split taken however small; the pool rebuilt for the test."""
    old = _parallel.get_num_threads()
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS_PER_THREAD", 1)

    made = []

    def use(n, pool=None):
        _parallel.set_num_threads(n)
        monkeypatch.setattr(_parallel, "_pool", pool)
        made.append(_parallel._executor())
        return made[-1]
    yield use
    _parallel.set_num_threads(old)
    for pool in made:                    # stop the test's workers (the module gets its own pool back)
        if isinstance(pool, _parallel._SpinPool):
            pool.close()
        else:
            pool.shutdown()


def _in_time(fn, seconds=20):
    """fn() in a thread, failing the test (not hanging it) if it has not returned within ``seconds``."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"no result within {seconds} s: a worker never took its share"
    return out[0]


def _cover_once(n_items):
    hits = np.zeros(n_items, dtype=np.int64)

    def mark(a, b):
        hits[a:b] += 1
    _parallel.parallel_chunks(mark, n_items, n_items)
    return hits


@pytest.mark.parametrize("kind", ["spin", "executor"])
@pytest.mark.parametrize("n", [2, 3])
def test_every_pool_covers_the_range_once_and_reraises(threads, kind, n):
    if kind == "spin" and _jit_loops.waits() is None:
        pytest.skip("no spinning pool: Numba is not importable here, or MINICNN_JIT=0")
    pool = None if kind == "spin" else ThreadPoolExecutor(max_workers=n)
    got = threads(n, pool)
    assert isinstance(got, _parallel._SpinPool if kind == "spin" else ThreadPoolExecutor)
    for size in (2, 3, 7, 100):
        np.testing.assert_array_equal(_cover_once(size), np.ones(size, dtype=np.int64))

    def fail_in_a_worker(a, b):
        if a > 0:
            raise RuntimeError("worker failed")
    with pytest.raises(RuntimeError, match="worker failed"):
        _parallel.parallel_chunks(fail_in_a_worker, 4, 4)
    np.testing.assert_array_equal(_cover_once(5), np.ones(5, dtype=np.int64))     # still works afterwards


@needs_waits
def test_shares_run_on_distinct_threads_and_a_nested_call_runs_serially(threads):
    threads(2)
    seen = {}
    inner_threads = set()

    def outer(a, b):
        seen[a] = threading.get_ident()
        _parallel.parallel_chunks(lambda c, d: inner_threads.add(threading.get_ident()), 10, 10)
    _parallel.parallel_chunks(outer, 2, 2)
    assert len(set(seen.values())) == 2                         # caller and worker
    assert inner_threads <= set(seen.values()) and len(inner_threads) == 2     # each nested call in its own thread


@needs_waits
def test_a_sleeping_worker_is_woken_by_the_next_region(threads, monkeypatch):
    pool = threads(2)
    monkeypatch.setattr(_parallel, "SPIN_POLLS", 10)           # the worker gives up spinning almost at once
    _cover_once(4)
    deadline = time.monotonic() + 5
    while not pool.asleep[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.asleep[0], "the worker should have gone to sleep"
    np.testing.assert_array_equal(_in_time(lambda: _cover_once(9)), np.ones(9, dtype=np.int64))


@needs_waits
def test_two_callers_at_once_both_get_their_work_done(threads):
    threads(2)
    results, errors = {}, []

    def caller(key, size):
        try:
            for _ in range(50):
                hits = _cover_once(size)
                if not np.array_equal(hits, np.ones(size, dtype=np.int64)):
                    errors.append((key, hits))
            results[key] = True
        except Exception as exc:         # pragma: no cover - reported below
            errors.append((key, exc))
    callers = [threading.Thread(target=caller, args=(k, 6 + k)) for k in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(30)
    assert not errors
    assert sorted(results) == [0, 1, 2]


@needs_waits
def test_a_resized_pool_stops_its_old_workers(threads):
    old_pool = threads(3)
    _cover_once(6)
    new_pool = threads(2, old_pool)         # the module still holds the 3-thread pool: _executor replaces it
    assert new_pool is not old_pool and len(new_pool.threads) == 1
    for t in old_pool.threads:
        t.join(5)
        assert not t.is_alive()
    np.testing.assert_array_equal(_cover_once(5), np.ones(5, dtype=np.int64))


def test_without_numba_the_numpy_paths_and_the_executor_run():
    """MINICNN_JIT=0 stands for a machine without Numba: NumPy fast paths, a ThreadPoolExecutor, same results."""
    script = """
import numpy as np
from concurrent.futures import ThreadPoolExecutor
from minicnn import ops
from minicnn.ops import _cpu_fast, _jit_loops, _parallel
assert not _jit_loops.available() and _jit_loops.waits() is None
_parallel.set_num_threads(2)
_parallel.MIN_ELEMENTS_PER_THREAD = 1
assert isinstance(_parallel._executor(), ThreadPoolExecutor)
x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
y, cache = ops.max_pool2d_forward(x, 3, 2, 1, True)
with _cpu_fast.reference_paths():
    y_ref, cache_ref = ops.max_pool2d_forward(x, 3, 2, 1, True)
assert np.array_equal(y, y_ref) and np.array_equal(cache.switches, cache_ref.switches)
print("ok")
"""
    env = dict(os.environ, MINICNN_JIT="0")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@needs_waits
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_a_pool_of_its_own(threads):
    import multiprocessing
    threads(2)
    _cover_once(4)                               # the parent's pool exists and its worker is spinning
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_covers, args=(queue,))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the child hung or failed"
    assert queue.get(timeout=5) == [1] * 9


def _child_covers(queue):
    _parallel.MIN_ELEMENTS_PER_THREAD = 1
    queue.put(_cover_once(9).tolist())


@pytest.mark.parametrize("value, expected, warned", [("3", "3", False), ("0", "default", True), ("", "default", False)])
def test_minicnn_num_threads_is_honoured_and_a_bad_value_does_not_break_the_import(value, expected, warned):
    code = "from minicnn.ops import _parallel; import os; print(_parallel.get_num_threads())"
    env = dict(os.environ, MINICNN_NUM_THREADS=value)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    default = str(max(1, min(2, os.cpu_count() or 1)))
    assert proc.stdout.strip() == (default if expected == "default" else expected)
    assert ("MINICNN_NUM_THREADS must be a positive integer" in proc.stderr) == warned
