"""What minicnn's thread pool and compiled loops buy: A/B ratios in one process (2 threads).

    python benchmarks/bench_threads.py [--repeats 7] [--quick]

Rows:
    region     the cost of one parallel region with empty shares (median of 2,000; microseconds), for the spinning
               pool (``ops/_parallel._SpinPool``) and for the ThreadPoolExecutor it replaces where Numba is missing
    A/B        time with the new piece / time without it, the two sides timed alternately (``paired_ratio`` of
               bench_ops.py): the spinning pool against the executor (all compiled loops on both sides); the C
               loops (ops/_native.py: pooling, im2col, col2im) against what runs without them (Numba pooling,
               NumPy copies); the Numba pooling loops against the NumPy fast paths (no C loops on either side).
               The pool columns use the spinning pool on both sides.

on the pooling and convolution shapes of issue 7 (fwd+bwd) and a zfnet_small / lenet5 training step at batch 128.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

if __package__ in (None, "") and __name__ == "__main__":    # run as a script from a checkout: find the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_ops import CONV_SHAPES, POOL_SHAPES, TRAIN_CASES, MinicnnStep, paired_ratio  # noqa: E402

from minicnn import ops  # noqa: E402
from minicnn.ops import _jit_loops, _native, _parallel  # noqa: E402

THREADS = 2


def region_cost(pool, calls=2000):
    """Median seconds of one parallel_chunks call with empty shares, on ``pool``."""
    _parallel._pool = pool
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        _parallel.parallel_chunks(_nothing, THREADS, 1 << 30)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _nothing(a, b):
    pass


def on_pool(fn, pool):
    def run():
        _parallel._pool = pool
        return fn()
    return run


def with_loops(fn, native=True, numba=True):
    """fn with the C loops and/or the Numba loops switched off."""
    def run():
        with contextlib.ExitStack() as stack:
            if not native:
                stack.enter_context(_native.disabled())
            if not numba:
                stack.enter_context(_jit_loops.disabled())
            return fn()
    return run


def workloads(rng, quick):
    """(label, fn) for the issue's pooling and convolution rows (fwd+bwd) and the two training steps."""
    out = []
    for label, shape, k, s, ceil in POOL_SHAPES[:5]:
        x = rng.standard_normal(((1,) + shape[1:]) if quick else shape, dtype=np.float32)
        y, cache = ops.max_pool2d_forward(x, k, s, 0, ceil)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        out.append((f"pool {label} {k}x{k}/{s}",
                    lambda x=x, dy=dy, k=k, s=s, ceil=ceil:
                    ops.max_pool2d_backward(dy, ops.max_pool2d_forward(x, k, s, 0, ceil)[1])))
    for label, N, C, F, H, W, k, s, p in CONV_SHAPES[:5]:
        N = 1 if quick else N
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = rng.standard_normal((F, C, k, k), dtype=np.float32) * 0.1
        b = np.zeros(F, np.float32)
        y, _ = ops.conv2d_forward(x, w, b, s, p)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        out.append((f"conv {label}", lambda x=x, w=w, b=b, s=s, p=p, dy=dy:
                    ops.conv2d_backward(dy, ops.conv2d_forward(x, w, b, s, p)[1])))
    for label, build, shape, N in TRAIN_CASES:
        N = 2 if quick else N
        step = MinicnnStep(build())
        x = rng.standard_normal((N,) + shape, dtype=np.float32)
        labels = rng.integers(0, 10, N).astype(np.int64)
        out.append((f"step {label} batch {N}", lambda step=step, x=x, labels=labels: step(x, labels)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one repeat: a smoke test")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    if _jit_loops.waits() is None:
        print("bench_threads: Numba is not importable here (or MINICNN_JIT=0), so there is no spinning pool or "
              "compiled loop to compare")
        return 0
    from threadpoolctl import threadpool_limits
    old_pool, old_threads = _parallel._pool, _parallel.get_num_threads()
    _parallel.set_num_threads(THREADS)
    spin = _parallel._SpinPool(THREADS - 1, _jit_loops.waits())
    executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="minicnn-bench")
    try:
        with threadpool_limits(limits=THREADS):
            calls = 200 if args.quick else 2000
            print(f"bench_threads: {THREADS} threads, median of {repeats} paired ratios")
            print(f"region  empty parallel region: spinning pool {region_cost(spin, calls) * 1e6:6.1f} us, "
                  f"ThreadPoolExecutor {region_cost(executor, calls) * 1e6:6.1f} us")
            c_on = _native.available()
            print(f"{'workload':34s} {'spin / executor':>16s} {'C / without C':>14s} {'Numba / NumPy':>14s}")
            for label, fn in workloads(np.random.default_rng(0), args.quick):
                pool_ratio = paired_ratio(on_pool(fn, spin), on_pool(fn, executor), repeats)
                no_c = with_loops(fn, native=False)
                c_ratio = paired_ratio(on_pool(fn, spin), on_pool(no_c, spin), repeats) if c_on else float("nan")
                numba_ratio = paired_ratio(on_pool(no_c, spin), on_pool(with_loops(fn, False, False), spin), repeats)
                print(f"{label:34s} {pool_ratio:16.2f} {c_ratio:14.2f} {numba_ratio:14.2f}")
    finally:
        spin.close()
        executor.shutdown()
        _parallel._pool = old_pool
        _parallel.set_num_threads(old_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
