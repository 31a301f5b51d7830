"""minicnn's thread pool (minicnn/fast_cpu/threads.py): coverage, errors, nesting, resizing, forks, the environment,
and the BLAS's thread count beside it."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from minicnn.fast_cpu import threads as T
from minicnn.fast_cpu.tuning import tuned


@pytest.fixture
def threads():
    """Set the thread count for a test (work of any size split), restored afterwards."""
    old = T.get_num_threads()
    with tuned(min_elements_per_thread=1):
        yield T.set_num_threads
    T.set_num_threads(old)


def _cover_once(n):
    hits = np.zeros(n, dtype=np.int64)

    def mark(a, b):
        hits[a:b] += 1
    T.parallel_chunks(mark, n, n)
    return hits


def test_every_item_is_covered_once_and_a_worker_error_is_raised_in_the_caller(threads):
    threads(3)
    for n in (1, 2, 3, 7, 100):
        np.testing.assert_array_equal(_cover_once(n), np.ones(n, dtype=np.int64))

    def fail_in_a_worker(a, b):
        if a > 0:
            raise RuntimeError("worker failed")
    with pytest.raises(RuntimeError, match="worker failed"):
        T.parallel_chunks(fail_in_a_worker, 4, 4)
    np.testing.assert_array_equal(_cover_once(5), np.ones(5, dtype=np.int64))     # the pool still works


def test_a_region_inside_a_share_runs_serially_in_its_thread(threads):
    threads(2)
    seen, inner = {}, {}

    def outer(a, b):
        seen[a] = threading.get_ident()
        T.parallel_chunks(lambda c, d: inner.setdefault(threading.get_ident(), []).append((c, d)), 10, 10)
    T.parallel_chunks(outer, 2, 2)
    assert len(set(seen.values())) == 2                         # caller and worker
    assert set(inner) == set(seen.values()) and all(v == [(0, 10)] for v in inner.values())


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


def test_a_resized_pool_lets_its_old_workers_exit(threads):
    threads(3)
    _cover_once(6)
    old_pool = T._pool[0]
    old_workers = list(old_pool._threads)
    threads(2)
    _cover_once(6)
    assert T._pool[0] is not old_pool and T._pool[1] == 1
    for t in old_workers:
        t.join(5)
        assert not t.is_alive()


def test_set_num_threads_rejects_what_is_not_a_positive_integer():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
            T.set_num_threads(bad)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_a_pool_and_locks_of_its_own(threads):
    """Forked while a worker is busy and the BLAS lock is held: the child must not wait on either."""
    import multiprocessing
    threads(2)
    _cover_once(4)                               # the parent's pool exists
    busy = threading.Event()
    T._blas_lock.acquire()                       # as if another thread were inside blas_single_threaded
    try:
        hold = threading.Thread(target=lambda: T.parallel_chunks(lambda a, b: busy.wait(10), 2, 2))
        hold.start()
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_covers, args=(queue,))
        child.start()
        child.join(60)
        if child.is_alive():
            child.kill()
    finally:
        T._blas_lock.release()
        busy.set()
        hold.join(10)
    assert child.exitcode == 0, "the child hung or failed"
    assert queue.get(timeout=5) == [1] * 9


def _child_covers(queue):
    with tuned(min_elements_per_thread=1), T.blas_single_threaded():
        queue.put(_cover_once(9).tolist())


@pytest.mark.parametrize("value, expected, warned", [("3", "3", False), ("16", "16", False), ("0", "default", True),
                                                     ("", "default", False)])
def test_minicnn_num_threads_is_honoured_and_a_bad_value_does_not_break_the_import(value, expected, warned):
    """Honoured as given, 16 on a 2-core machine too (no cap); the default is every usable core."""
    code = "import minicnn; print(minicnn.get_num_threads())"
    env = dict(os.environ, MINICNN_NUM_THREADS=value)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    default = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    assert proc.stdout.strip() == (default if expected == "default" else expected)
    assert ("MINICNN_NUM_THREADS must be a positive integer" in proc.stderr) == warned


BLAS_CHILD = """
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
import minicnn
from minicnn import ops
from minicnn.fast_cpu import threads as T
from minicnn.fast_cpu.tuning import tuned

def blas_threads():
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

threadpool_limits(3, user_api="blas")            # what the user asked of the BLAS (OPENBLAS_NUM_THREADS alike)
assert minicnn.get_num_threads() == 2, minicnn.get_num_threads()
seen_inside, workers = [], set()
from minicnn.fast_cpu import conv
real = conv._run
def spy(threads, fn, n, elements):             # every share records the BLAS's threads and its own thread
    def share(a, b):
        seen_inside.append(blas_threads())
        workers.add(__import__("threading").get_ident())
        fn(a, b)
    return real(threads, share, n, elements)
conv._run = spy
rng = np.random.default_rng(0)
x, W = rng.standard_normal((8, 16, 12, 12)).astype(np.float32), rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
with tuned(parallel_conv_flops=0, min_elements_per_thread=1, direct_image_bytes=0):
    y, cache = ops.conv2d_forward(x, W, None, 1, 1)
    ops.conv2d_backward(y, cache)
assert type(cache).__name__ == "FastConvCache", cache
assert seen_inside and all(s == [1] for s in seen_inside), seen_inside   # two GEMMs at once: one BLAS thread each
assert len(workers) == 2, workers                                        # on MINICNN_NUM_THREADS threads
assert blas_threads() == [3], blas_threads()                              # and the user's count afterwards
minicnn.set_num_threads(1)                                                # minicnn's threads no longer cover the cores:
seen_inside.clear()
with tuned(parallel_conv_flops=0, min_elements_per_thread=1, direct_image_bytes=0):
    ops.conv2d_backward(*reversed(ops.conv2d_forward(x, W, None, 1, 1)[::-1]))
assert seen_inside and all(s == [3] for s in seen_inside), seen_inside    # the BLAS keeps its own threads
with minicnn.cpu_path("readable"):
    ops.linear_forward(x.reshape(8, -1), np.ones((x[0].size, 4), np.float32))
assert blas_threads() == [3]
print("ok")
"""


def test_minicnn_num_threads_and_the_blas_thread_count_are_honoured():
    """With MINICNN_NUM_THREADS=2 a convolution runs on two threads, one BLAS thread each while both run GEMMs;
    the BLAS's own count (3 here) is left as the user set it everywhere else (threadpoolctl)."""
    pytest.importorskip("threadpoolctl")
    from minicnn import fast_cpu
    if not fast_cpu.available():
        pytest.skip(fast_cpu.unavailable_reason())
    env = dict(os.environ, MINICNN_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", BLAS_CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")
