"""The switch between the two CPU paths (minicnn/ops/dispatch.py): what runs under it, and what says so."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import ops
from minicnn.layers import Conv2D, MaxPool2D, ReLU
from minicnn.net import Sequential

CONV_SOURCE = os.path.abspath(ops.conv.__file__)
# the first line of conv2d_backward's readable body that computes something (where a student puts a breakpoint)
BREAKPOINT = next(i for i, line in enumerate(open(CONV_SOURCE), 1) if "dy_rows = dy.transpose(1, 0, 2, 3)" in line)


def lines_run(fn):
    """The lines of ops/conv.py that run while ``fn()`` runs (what a debugger's breakpoints would see)."""
    hit = set()

    def trace(frame, event, arg):
        if frame.f_code.co_filename == CONV_SOURCE:
            if event == "line":
                hit.add(frame.f_lineno)
            return trace
        return trace if event == "call" else None

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return hit


def _network_step():
    rng = np.random.default_rng(0)
    net = Sequential([Conv2D(3, 4, 3, pad=1, name="conv1"), ReLU(name="relu1"), MaxPool2D(2, name="pool1")])
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = net.forward(x)
    net.backward(rng.standard_normal(y.shape).astype(np.float32))


def test_a_breakpoint_in_the_readable_conv_backward_is_hit_under_the_readable_switch():
    with minicnn.cpu_path("readable"):
        assert BREAKPOINT in lines_run(_network_step)


def test_the_fast_path_does_not_run_the_readable_body():
    from minicnn import fast_cpu
    if not fast_cpu.available():
        pytest.skip(fast_cpu.unavailable_reason())
    with minicnn.cpu_path("fast"):
        assert BREAKPOINT not in lines_run(_network_step)


def test_as_a_plain_call_the_switch_holds_until_switched_back():
    before = minicnn.active_cpu_path()
    minicnn.cpu_path("readable")
    try:
        assert minicnn.active_cpu_path()[0] == "readable"
        assert type(ops.max_pool2d_forward(np.ones((1, 1, 4, 4)), 2)[1]) is ops.pool.PoolCache
    finally:
        minicnn.cpu_path("fast")
    assert minicnn.active_cpu_path() == before


def test_a_backward_follows_the_path_of_its_forward():
    """A cache made on the fast path goes back to the fast backward even after the switch changed (the readable
    backward could not read it), and the results are the readable ones."""
    from minicnn import fast_cpu
    if not fast_cpu.available():
        pytest.skip(fast_cpu.unavailable_reason())
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    y, cache = ops.conv2d_forward(x, W, None, 1, 1)
    dy = rng.standard_normal(y.shape)
    with minicnn.cpu_path("readable"):
        got = ops.conv2d_backward(dy, cache)
        want = ops.conv2d_backward(dy, ops.conv2d_forward(x, W, None, 1, 1)[1])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_summary_says_which_path_runs_and_why():
    net = Sequential([Conv2D(1, 2, 3, name="conv1")])
    with minicnn.cpu_path("readable"):
        text = net.summary((1, 8, 8), print_fn=None)
    assert text.splitlines()[-1] == "CPU path: readable (switched off by cpu_path('readable'))"


def _cli(*args, **env):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-m", "minicnn.cli", *args], capture_output=True, text=True, env=full,
                          timeout=300)


def test_minicnn_info_shows_the_path_the_compiler_flags_cache_and_threads():
    out = _cli("info", MINICNN_CPU_PATH="readable", MINICNN_NUM_THREADS="3")
    assert out.returncode == 0, out.stderr
    assert "CPU path: readable (switched off by MINICNN_CPU_PATH=readable)" in out.stdout
    assert "threads: 3 of" in out.stdout
    for field in ("C compiler:", "C flags: -O3", "C cache:", "C loops (float):", "BLAS threads:"):
        assert field in out.stdout, out.stdout


def test_minicnn_info_shows_a_missing_compiler(tmp_path):
    out = _cli("info", PATH=str(tmp_path), CC="", MINICNN_CACHE_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "CPU path: readable (the fast path is unavailable: no C compiler" in out.stdout, out.stdout
    assert "C compiler: none (no C compiler" in out.stdout
