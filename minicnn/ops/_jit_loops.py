"""The window loops of the CPU fast paths as plain Python loops, compiled by Numba.

Each function below is the loop a student would write for its op -- over planes, output cells and window taps --
compiled to machine code with ``numba.njit(nogil=True)``. Two things make that fast where NumPy is not:

* One pass. NumPy needs one array pass per window tap and per step (max pooling made ~40 passes over the phase
  grid, see ``_cpu_fast.max_pool2d_forward``); a compiled loop reads each input once and writes each output once,
  with no phase grid and no crops.
* No GIL. ``nogil=True`` releases the interpreter lock for the whole call, so the shares that
  ``_parallel.parallel_chunks`` hands to minicnn's threads run side by side on every core. NumPy threads hand
  the GIL back and forth between their many short calls (which is why the NumPy fast paths gained 1.2-1.8x
  from a second core where PyTorch gains 1.8-2.9x).

Every loop takes a range of planes (``r0, r1``) so that a caller can split the work over threads; no two planes
share an output cell. Every loop visits the taps in the readable ops' order, so the results come out bit for bit
the same (see each docstring). Only max pooling is here: convolution's copies were tried as compiled loops and
were slower than the NumPy ones (benchmarks/RESULTS.md, third session).

Numba is imported on first use, not with minicnn, and compiled code is cached on disk (``cache=True``: the first
call of each loop after an install compiles it, ~0.5 s a loop and dtype). Where Numba cannot be imported (a
Python release it does not support yet, say) ``available()`` is False and the NumPy fast paths run instead;
``disabled()`` switches the loops off for tests and for A/B measurements.
"""
from __future__ import annotations

import contextlib
import os
import types

import numpy as np

__all__ = ["available", "disabled", "compiled"]

_ENV_ON = os.environ.get("MINICNN_JIT", "1") != "0"      # MINICNN_JIT=0: never compile, NumPy fast paths only
_switch = _ENV_ON
_loops = None          # the compiled functions, once built; False when Numba cannot be imported


def available():
    """True when the compiled loops can run (Numba importable and the loops not switched off)."""
    return _switch and _build() is not False


@contextlib.contextmanager
def disabled():
    """Within this block the compiled loops are not used (the NumPy fast paths run instead)."""
    global _switch
    old, _switch = _switch, False
    try:
        yield
    finally:
        _switch = old


# --- the loops (plain Python; ``compiled(name)`` gives the machine-code version) --------------------

def max_pool_forward(x, y, s, offsets, sy, sx, ph, pw, Hp, Wp, neg, r0, r1):
    """y, s (R, oh, ow) from x (R, H, W) for planes r0..r1-1: the window maximum and its tap ky*kw + kx.

    ``offsets``: for every tap in row-major order, ``ky*Wp + kx``, its cell's distance from the window's corner
    in a plane of ``Wp`` columns. A tuple, because a tuple's length is part of the compiled type: the tap loop
    then has a fixed trip count and is unrolled (with ``kh``, ``kw`` as plain arguments it was a loop of unknown
    length, 6-8x slower). ``neg`` is -inf in x's dtype. Where the windows reach past the input (padding, ceil
    mode; ``(Hp, Wp)`` is then the extent they read from the padded corner, else ``(H, W)``), each plane is first
    copied into a scratch plane bordered with -inf, so that the window loop never checks bounds. Arrays are
    indexed flat (3-D indexing cost up to 2x).

    As the readable op: a strictly greater value takes over (the first maximum wins), and so does a NaN over a
    number (the first NaN wins and stays: NaN propagates), cells outside the input are -inf. No branch depends
    on the data: ``best = v if wins else best`` is a select, and since taps only increase,
    ``tap = max(tap, t * wins)`` is the last winner (an ``if wins:`` is mispredicted about every third tap:
    several times slower)."""
    H, W = x.shape[1], x.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    bordered = ph > 0 or pw > 0 or (Hp, Wp) != (H, W)
    plane = np.full(Hp * Wp if bordered else 0, neg)           # the border stays -inf; planes overwrite the rest
    rows, cols = min(H, Hp - ph), min(W, Wp - pw)              # the pixels any window reads
    xf, yf, sf = x.reshape(-1), y.reshape(-1), s.reshape(-1)
    for r in range(r0, r1):
        src, origin = xf, r * H * W
        if bordered:
            for i in range(rows):
                at, start = (ph + i) * Wp + pw, r * H * W + i * W
                for j in range(cols):
                    plane[at + j] = xf[start + j]
            src, origin = plane, 0
        for oy in range(oh):
            corner = origin + oy * sy * Wp
            out = (r * oh + oy) * ow
            for ox in range(ow):
                at = corner + ox * sx
                best = neg
                tap = 0
                for t in range(len(offsets)):
                    v = src[at + offsets[t]]
                    wins = (v > best) | ((v != v) & (best == best))
                    tap = max(tap, t * wins)
                    best = v if wins else best
                yf[out + ox] = best
                sf[out + ox] = tap


def max_pool_backward(dy, s, dx, offsets, sy, sx, ph, pw, Hp, Wp, r0, r1):
    """dx (R, H, W) for planes r0..r1-1: every dy added at its switch (unpooling); a switch in the padding
    drops its dy, as the readable op's crop does.

    ``offsets``: an array, for every tap ``ky*Wp + kx`` in a plane padded to ``Hp x Wp`` (an array: indexing a
    tuple by a switch, a value known only at run time, was 2-3x slower). Each plane is summed in a zeroed
    scratch plane that holds the padding too (no bounds checks), then its inside is copied out. The outputs are visited in reverse row-major order: the windows that cover one
    pixel, taken in reverse, see it at increasing taps, and the readable op adds tap by tap onto zeros -- so the
    sums are bit for bit its (in forward order this loop is ~1.6x faster, and off by a rounding now and then
    where three or four windows share a pixel)."""
    H, W = dx.shape[1], dx.shape[2]
    oh, ow = dy.shape[1], dy.shape[2]
    plane = np.empty(Hp * Wp, dx.dtype)
    dxf, dyf, sf = dx.reshape(-1), dy.reshape(-1), s.reshape(-1)
    for r in range(r0, r1):
        for i in range(Hp * Wp):
            plane[i] = 0
        for oy in range(oh - 1, -1, -1):
            out = (r * oh + oy) * ow
            for ox in range(ow - 1, -1, -1):
                plane[oy * sy * Wp + ox * sx + offsets[sf[out + ox]]] += dyf[out + ox]
        for i in range(H):
            at = r * H * W + i * W
            for j in range(W):
                dxf[at + j] = plane[(ph + i) * Wp + pw + j]


def max_pool_backward_tiles(dy, s, dx, offsets, zero, r0, r1):
    """dx for windows that tile the input (stride = kernel, no padding): every pixel lies in one window, so dy
    is written at its switch, in any order, onto zeros. ``offsets`` as in ``max_pool_backward``, with Wp = W.
    ``dy + zero`` (0 in dx's dtype) turns a -0.0 into the +0.0 that the readable op's ``0 + dy`` gives."""
    H, W = dx.shape[1], dx.shape[2]
    oh, ow = dy.shape[1], dy.shape[2]
    kh, kw = H // oh, W // ow
    dxf, dyf, sf = dx.reshape(-1), dy.reshape(-1), s.reshape(-1)
    for i in range(r0 * H * W, r1 * H * W):
        dxf[i] = 0
    for r in range(r0, r1):
        for oy in range(oh):
            corner = r * H * W + oy * kh * W
            out = (r * oh + oy) * ow
            for ox in range(ow):
                dxf[corner + ox * kw + offsets[sf[out + ox]]] = dyf[out + ox] + zero


_NAMES = ("max_pool_forward", "max_pool_backward", "max_pool_backward_tiles")


def _build():
    """The compiled loops (a namespace), compiled lazily; False when Numba cannot be imported."""
    global _loops
    if _loops is None:
        try:
            import numba
        except Exception:                      # not installed, or not for this Python / NumPy
            _loops = False
        else:
            try:
                _loops = _jit_all(numba.njit(nogil=True, cache=True))
            except Exception:                  # no writable cache directory: compile in every process instead
                _loops = _jit_all(numba.njit(nogil=True))
    return _loops


def _jit_all(jit):
    return types.SimpleNamespace(**{name: jit(globals()[name]) for name in _NAMES})


# --- waiting without the GIL, for the thread pool in _parallel.py ----------------------------------------------

def _spin_until_changed(state, seen, spins):
    """The new value of state[0] once it differs from ``seen``, or ``seen`` after ``spins`` polls. Each poll
    calls sched_yield: the core goes to any other thread that wants it, and the call (opaque to the compiler)
    makes every poll read state[0] from memory again."""
    for _ in range(spins):
        value = state[0]
        if value != seen:
            return value
        _sched_yield()
    return seen


def _spin_until_done(state, task, spins):
    """True once every worker's entry state[1:] has reached ``task``; False after ``spins`` polls."""
    for _ in range(spins):
        done = True
        for i in range(1, state.shape[0]):
            if state[i] != task:
                done = False
        if done:
            return True
        _sched_yield()
    return False


_waits = None
_sched_yield = None        # libc's sched_yield through ctypes, once ``waits`` has looked it up


def waits():
    """(spin_until_changed, spin_until_done) compiled, or None without Numba or sched_yield.

    Compiled on first use in each process and not cached on disk: they call sched_yield through ctypes, whose
    address the compiled code holds and which differs from process to process."""
    global _waits, _sched_yield
    if _waits is None:
        _waits = False
        if _ENV_ON and _build() is not False:
            try:
                import ctypes

                import numba
                _sched_yield = ctypes.CDLL(None).sched_yield
                _sched_yield.restype, _sched_yield.argtypes = ctypes.c_int, []
                jit = numba.njit(nogil=True)
                _waits = (jit(_spin_until_changed), jit(_spin_until_done))
            except Exception:                  # no sched_yield in this C library (not Linux or macOS)
                _waits = False
    return _waits or None


def compiled(name):
    """The compiled version of the loop ``name`` (the module-level function of that name is its source)."""
    loops = _build()
    if loops is False:
        raise RuntimeError(f"minicnn.ops._jit_loops.{name}: Numba is not importable here")
    return getattr(loops, name)
