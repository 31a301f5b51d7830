"""Fast CPU paths of conv2d, max pooling with switches and LRN: same results, fewer and cheaper passes.

The public ops (``ops/conv.py``, ``ops/pool.py``, ``ops/normalization.py``) keep their readable bodies; on NumPy
input they hand over to the functions here (``use(x)``), which compute the same thing. ``reference_paths()``
switches them off, which is how the tests compare each fast path with the readable one.

What each trick buys (2-core machine, float32; see benchmarks/RESULTS.md for the figures):

* Copies split over threads by channel or by sample (``_parallel.parallel_chunks``). NumPy releases the GIL
  inside copies and ufunc loops, so the copies around the GEMMs (im2col, col2im, layout transposes) and the
  whole of pooling and LRN use both cores, as BLAS does -- but only where each NumPy call of a thread's share is
  large: two threads making many short calls spend their time handing the GIL to each other.
* A convolution runs batch chunks in parallel, one single-threaded GEMM per thread, and keeps its columns for
  backward when they total at most one chunk (8 MB). With the C loops even a small batch is one chunk per thread
  (``_batches``), and a convolution under 15 MFLOP runs in one thread (``_conv_threads``). Without them a batch
  whose columns fit one chunk stays in the calling thread and splits only its GEMMs (``_gemm``). The BLAS is
  always single-threaded inside: OpenBLAS's idle workers spin and would slow the copy threads of the next layer.
* Phase-grid rows share their padding with the row below (``_Grid._shared_pad_width``), halving the junk
  columns of a 'same' convolution, and im2col copies all the taps of a stride phase with one strided view.
* Outputs are new arrays, but large ones reuse the memory of earlier outputs nothing refers to any more
  (``ops/_recycle.py``): no page faults. ``_copy`` sidesteps a slow case of glibc's memcpy.
* col2im accumulates into a channel-major scratch (C, N, Hp, Wp), the same axis order as the column matrix
  (C, kh, kw, N, oh, ow): each tap is one ``+=`` of two like-ordered arrays, and the final crop is the one
  transpose into the NCHW output. The readable col2im adds a transposed view into a strided one per tap.
* The forward GEMM writes into a reused scratch (F, N*oh*ow); the bias is added there (long contiguous runs),
  and one plain copy transposes to NCHW into the output (a ufunc over the 4-D transposed view, which loops
  over rows of ow elements, took ~3x as long).
* Temporaries that never leave an op (the transposed dy, the column gradient, pooling masks, LRN squares) live
  in reused scratch buffers: no fresh pages, so no page faults, on every call.
* Where the machine has a C compiler (``ops/_native.py``), max pooling, unpooling, im2col and col2im run as C
  loops, no GIL held: pooling compares 8 float32 outputs per vector instruction on each plane's phase grid
  (kernels/cpu_pool.c; fwd+bwd 2-3x faster than the Numba loops on issue 7's shapes), and im2col builds the exact
  column matrix, no junk columns (kernels/cpu_im2col.c; issue 7's 12x12 5x5 conv: 1.5x fewer GEMM columns).
  Where NumPy's BLAS is found (``_native.gemm``), a convolution's batch chunk, forward or backward, is one C call
  that calls that BLAS itself (``_forward_chunks_in_c``, ``_backward_chunks_in_c``). Stride-1 convolutions
  whose padded image fits the L1 cache skip the column matrix altogether, forward and backward
  (``_forward_direct``, ``_backward_direct``; kernels/cpu_conv_direct.c: the running sums of 8-12 vectors in
  registers; issue 7's 12x12 conv 0.52x / 0.44x the im2col + GEMM time forward / backward, the zfnet_small and
  lenet5 training steps 0.77x and 0.79x; all at 2 threads).
  Without a compiler, or inside ``_native.disabled()``, the paths below run.
* Max pooling with switches and its backward run as compiled loops (``ops/_jit_loops.py``, Numba) where Numba
  is importable: one pass per plane instead of ~40 NumPy passes, and no GIL held, so the planes split over the
  threads really run side by side (1.1-1.9x faster than the NumPy path below on issue 7's shapes, 2 threads).
  Without Numba, or inside ``_jit_loops.disabled()``:
* Max pooling works on the stride-phase grid with unmasked ufuncs writing into ``out=`` (no boolean indexing),
  each pass one flat run over all planes of a thread's share, switches as uint8 inside; its backward is a
  single scatter of dy to the switch positions (``np.add.at`` in the readable path's summation order) instead
  of a masked multiply-and-add per tap.
* ReLU forward is the same ``np.maximum`` split over the threads; ReLU backward runs in L2-sized blocks so its
  temporaries never reach DRAM.
* What the fast paths must not change (issue 14): the answer for any input the readable op accepts. So a
  convolution that keeps no columns for its backward keeps a private copy of x (``private_copy``: the readable
  path's columns are made at forward, and a caller may reuse its input buffer before backward); and a conv
  backward whose dy, weights or input hold NaN or inf runs the readable computation (``finite``): the phase grid,
  the junk columns and the direct loops' padding multiply zeros by every value, and 0 * inf is NaN where the
  definition has nothing. Empty batches return at once.
* LRN sums the channel window by shifted in-place adds (no padded copy), takes ``d**-0.75`` as two square roots
  (much cheaper than ``pow``) and caches the scale for the backward, which thus needs no power at all.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _jit_loops, _native
from ._parallel import blas_single_threaded, can_limit_blas, get_num_threads, parallel_chunks, scratch, serial
from ._recycle import empty as fresh

__all__ = ["use", "reference_paths", "im2col_public", "conv2d_forward", "conv2d_backward",
           "max_pool2d_forward", "max_pool2d_backward", "lrn_forward", "lrn_backward", "channel_window_sum"]

_enabled = True
# Scratch buffers above this size are not kept between calls (a huge batch would otherwise pin its memory).
_SCRATCH_LIMIT = 64 << 20


def use(x):
    """True when the fast CPU path applies: a plain NumPy float array and fast paths not switched off."""
    return _enabled and type(x) is np.ndarray


@contextlib.contextmanager
def reference_paths():
    """Within this block the public ops run their readable bodies (for tests and for teaching)."""
    global _enabled
    old, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = old


def _temp(tag, shape, dtype):
    """A scratch buffer when small enough to keep, else a fresh array."""
    if math.prod(shape) * np.dtype(dtype).itemsize <= _SCRATCH_LIMIT:     # math.prod: np.prod costs ~5 us
        return scratch(tag, shape, dtype)
    return np.empty(shape, dtype=dtype)


def _copy(dst, src):
    """``np.copyto(dst, src)`` for two contiguous arrays of one dtype, minus a slow case of the C library's memcpy.

    glibc 2.36 copies large blocks with ``rep movsb``, which on this machine's AMD EPYC runs at ~2.7 GB/s instead
    of ~30 when the destination starts 1-31 bytes past the source modulo a 4 KiB page (a 256 KiB copy took 7 us or
    89 us by that offset alone). Scratch buffers keep their addresses, so an op whose two buffers happened to sit
    so paid it on every call, in one process and not the next. There a ufunc copy is used instead: np.positive is
    the identity bit for bit (-0.0 and NaN payloads included) and does not call memcpy."""
    if 0 < (dst.ctypes.data - src.ctypes.data) % 4096 < 32 and dst.dtype.kind in "fiu":
        np.positive(src, out=dst)
    else:
        np.copyto(dst, src)


def _taps(kh, kw):
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx


# --- the stride-phase grid shared by convolution and pooling -------------------------------------------------

class _Grid:
    """Phase decomposition of a conv or pooling input, so that every window tap is one long contiguous run.

    The input padded (xp, ph/pw on top/left; with 0 for convolution, -inf for max pooling) is split by stride phase: P[qy, qx][a, b] =
    xp[a*sy + qy, b*sx + qx], each (Hq, Wq). Tap (ky, kx) of output (oy, ox) reads xp[oy*sy + ky, ox*sx + kx] =
    P[ky % sy, kx % sx][oy + ky//sy, ox + kx//sx], so over all outputs it reads the rows oy + ky//sy of one phase.
    Computing the outputs on an (oh, Wq) grid (columns ow..Wq-1 are junk, cropped at the end) turns that read
    into one flat run of oh*Wq elements per plane: each copy or ufunc pass then loops over N*C planes instead
    of N*C*oh short rows of ow elements -- the per-row overhead, not arithmetic, is what made im2col, col2im
    and pooling slow on small images. Convolution pays for it with Wq/ow more GEMM columns (junk, dropped).
    One extra -inf row keeps the last run of a tap with kx//sx > 0 inside the plane.
    """

    def __init__(self, x_shape, kernel, stride, pad, out, exact=False):
        _, _, self.H, self.W = x_shape
        (self.kh, self.kw), (self.sy, self.sx), (self.ph, self.pw), (self.oh, self.ow) = kernel, stride, pad, out
        self.Hq = self.oh + (self.kh - 1) // self.sy + 1
        # exact: a convolution whose columns the C loops build (``_unfold_native``): no junk columns, Wq = ow
        self.exact = exact
        self.Wq = self.ow if exact else self._shared_pad_width()
        # The spare row holds the tail of a tap's run (kx//sx cells past the last output row) only if that tail
        # fits one row: a kernel much wider than a narrow padded image (x 1x1, kernel 5x5, pad 2: Wq = 3, tail 4)
        # needs more spare rows, or its runs would end past the plane (col2im: a broadcast error).
        over = (self.kw - 1) // self.sx - self.Wq
        if over > 0 and not exact:
            self.Hq += -(-over // self.Wq)
        self.L = self.oh * self.Wq
        self.cols = None        # conv: the forward's column matrices by batch chunk, when kept for backward
        self.threads = get_num_threads()    # conv: the threads it runs on (``_conv_threads``)
        if exact:               # no phases: the C loops index the input itself
            return
        self.phases = [(qy, qx) for qy in range(self.sy) for qx in range(self.sx)]
        # tap t -> (phase index, start of its run in the flattened phase)
        self.runs = [(qy * self.sx + qx, (ky // self.sy) * self.Wq + kx // self.sx)
                     for ky, kx in _taps(self.kh, self.kw) for qy, qx in [(ky % self.sy, kx % self.sx)]]
        self.tail = max(start for _, start in self.runs)

    def _shared_pad_width(self):
        """Wq: the narrowest phase row in which every window still reads the right cells.

        A run that goes past the end of a phase row continues in the next row, so a row's right padding can be the
        left padding of the row below: a window reading b >= Wq gets cell b - Wq of the next row, which is padding
        as long as b - Wq < b0 (that phase's first pixel column). A 'same' convolution then carries pw junk
        columns per output row instead of 2*pw (conv 5x5 pad 2 on 16x16: 18 instead of 20 columns, 10% fewer GEMM
        columns and copies). Wq must still hold every pixel column (b1) and every output column (ow)."""
        wide = self.ow + (self.kw - 1) // self.sx          # no sharing: one window never leaves its row
        need = self.ow
        for qx in range(min(self.sx, self.kw)):
            b0, b1 = _valid(qx, self.sx, self.pw, self.W, wide)
            reach = max(kx // self.sx for kx in range(qx, self.kw, self.sx))
            need = max(need, b1, self.ow + reach - b0)
        return min(wide, need)

    def _blocks(self):
        """Per phase: the phase rows/columns that hold input pixels, and the input slices they come from."""
        for q, (qy, qx) in enumerate(self.phases):
            (a0, a1), (b0, b1) = _valid(qy, self.sy, self.ph, self.H, self.Hq), _valid(qx, self.sx, self.pw, self.W, self.Wq)
            if a0 == a1 or b0 == b1:
                continue
            i0, j0 = a0 * self.sy + qy - self.ph, b0 * self.sx + qx - self.pw
            rows = slice(i0, i0 + self.sy * (a1 - a0 - 1) + 1, self.sy)
            cols = slice(j0, j0 + self.sx * (b1 - b0 - 1) + 1, self.sx)
            yield q, (Ellipsis, slice(a0, a1), slice(b0, b1)), (Ellipsis, rows, cols)

    def split(self, a, fill, tag):
        """(..., H, W) -> phases (nq, ..., Hq*Wq) with ``fill`` where no input pixel lands."""
        lead = a.shape[:-2]
        P = _temp(tag, (len(self.phases),) + lead + (self.Hq, self.Wq), a.dtype)
        P.fill(fill)
        for q, inside, source in self._blocks():
            P[q][inside] = a[source]
        return P.reshape((len(self.phases),) + lead + (self.Hq * self.Wq,))

    def split_flat(self, a, fill, tag):
        """(R, H, W) -> phases (nq, R*Hq*Wq + tail), each phase's planes one flat run, plus ``tail`` cells of
        ``fill`` so that every tap's run of R*Hq*Wq cells stays inside the buffer."""
        R, M = a.shape[0], a.shape[0] * self.Hq * self.Wq
        B = _temp(tag, (len(self.phases), M + self.tail), a.dtype)
        B.fill(fill)
        P = B[:, :M].reshape(len(self.phases), R, self.Hq, self.Wq)
        for q, inside, source in self._blocks():
            P[q][inside] = a[source]
        return B

    def crop_flat(self, g, out):
        """out (R, oh, ow) from a flat (R*Hq*Wq) run on the whole phase grid."""
        out[...] = g[:out.shape[0] * self.Hq * self.Wq].reshape(out.shape[0], self.Hq, self.Wq)[:, :self.oh, :self.ow]

    def merge(self, P, out):
        """The inverse of split for the cells that hold input pixels: out (R, H, W) from phases (nq, R, Hq*Wq);
        input pixels beyond every window (stride > kernel, or the floor-mode remainder) get 0."""
        P = P.reshape(P.shape[:-1] + (self.Hq, self.Wq))
        if self.sy * self.Hq < self.ph + self.H or self.sx * self.Wq < self.pw + self.W:
            out.fill(0)
        for q, inside, source in self._blocks():
            out[source] = P[q][inside]

    def widen(self, a, fill, tag):
        """(R, oh, ow) -> (R, oh*Wq) on the output grid, ``fill`` in the junk columns."""
        g = _temp(tag, (a.shape[0], self.oh, self.Wq), a.dtype)
        g[:, :, self.ow:] = fill
        g[:, :, :self.ow] = a
        return g.reshape(a.shape[0], self.L)

    def crop(self, g, out):
        out[...] = g.reshape(g.shape[0], self.oh, self.Wq)[:, :, :self.ow]


# --- convolution -----------------------------------------------------------------------------------------------

# Images per GEMM: enough that the column matrix of one batch chunk is about this many bytes. The chunk's columns
# are written by im2col and read at once by the GEMM while still in the L3 cache, in a reused buffer; the whole
# batch's column matrix (131 MB for zfnet_small's conv2 at batch 128) would be fresh pages in DRAM on every call,
# and would stay in the cache until backward. Backward rebuilds a chunk's columns from the cached input, unless
# the whole batch's columns are at most _KEEP_BYTES: then the forward keeps them.
_CHUNK_BYTES = 8 << 20
_KEEP_BYTES = 8 << 20
# With the C loops (one call per chunk: im2col, GEMM, layout) chunks this small stay in a core's L2 cache (1 MB
# here) from im2col to GEMM: issue 7's convs, 2 threads, fwd+bwd, time with 1 MB / with 8 MB chunks: 0.85, 0.65,
# 1.06, 0.94, 0.94 (issues 1-5, paired ratios) and 0.92, 1.06, 0.95, 0.90 (issues 1-4, interleaved blocks): a
# small gain, and within this machine's noise for issue 2. In NumPy, with many calls per chunk, small chunks
# cost more in per-call overhead.
_C_CHUNK_BYTES = 1 << 20


def _batches(N, bytes_per_image, threads):
    """Batch chunks of about _CHUNK_BYTES (with the C loops _C_CHUNK_BYTES) of columns each; a multiple of
    ``threads`` when there are several.

    With the C loops, a batch whose columns fit one chunk is still split into one chunk per thread: each thread
    then runs its own im2col, GEMM and layout copy, one parallel region per op instead of one per step (issue 7's
    conv 1 and 3, 2 threads, fwd+bwd: 0.85x and 0.64x the time of one chunk with every step split). Without them
    it stays one chunk, its copies in the calling thread and only its GEMMs split over the threads (``_gemm``):
    splitting a small convolution's NumPy copies over Python threads made each thread's copies so short (a few
    us) that the two threads spent their time handing the GIL back and forth (issue 7's 64x6x12x12 conv,
    2 threads, fwd+bwd: 5.0 ms with the copies in two threads, 2.2 ms in one)."""
    native = _native.available()
    count = -(-N * bytes_per_image // min(_CHUNK_BYTES, _C_CHUNK_BYTES if native else _CHUNK_BYTES))
    if count > 1 or native:
        count = min(N, -(-count // threads) * threads)
    return [(N * i // count, N * (i + 1) // count) for i in range(count)]


# A convolution below this many forward GEMM FLOPs runs in one thread, start to end: there a Python thread's
# hand-offs (the GIL, a futex wake-up: 20-100 us each on this 2-core virtual machine) cost more than a second core
# saves. Measured with one chunk per thread above it (A/B, 2 threads, fwd+bwd): issue 7's 64x1x28x28 5x5 conv
# (11 MFLOP) took 0.86x its 2-thread time in one thread, the 64x6x12x12 one (20 MFLOP) 1.26x, the lenet5 training
# step (batch 128; its first conv 22 MFLOP) 1.10x with a 40 MFLOP threshold.
_PARALLEL_CONV_FLOPS = 15e6


def _conv_threads(F, K, P):
    """Threads for a convolution whose forward GEMM is (F x K) @ (K x P)."""
    return 1 if 2.0 * F * K * P < _PARALLEL_CONV_FLOPS else get_num_threads()


# Stride-1 convolutions whose padded input image is at most this many bytes run as the C direct convolution
# (kernels/cpu_conv_direct.c), forward and backward, no column matrix: one image, its dy and the weights stay in a
# core's L1 cache (32 KB on the x86 and ARM cores of the last decade), so two threads scale as compute does,
# where im2col + GEMM streams a column matrix through memory and two threads doing that slow each other down.
# A/B on this 2-core machine, 2 threads, direct / im2col + GEMM, forward and backward: issue 7's 64x6x12x12 5x5
# conv (padded image 3.5 KB) 0.52 and 0.44, its 28x28 1->6 one 0.50 (fwd+bwd), zfnet_small's conv1-5 at batch 128
# (13-26 KB) 0.61-0.83 and 0.57-1.08; issue 7's 32x32x16x16 3x3 conv (41 KB) 1.03-1.10 and 1.02, its
# 64x128x32x32 one (296 KB) 1.44 and 1.44. 0 turns the direct paths off.
_DIRECT_IMAGE_BYTES = 32 << 10
# ... and, for the backward, whose dW running sums (one 32-byte vector per filter, channel and tap: 77 KB for 16
# filters of 6x5x5) stay in the L2 cache when they are at most this many bytes (AlexNet's 13x13 256->384 conv
# holds 28 MB of them and took 3x the GEMM backward's time).
_DIRECT_SUMS_BYTES = 768 << 10


def _direct_fits(x_shape, grid, dtype):
    """Stride 1, the C loops built, and one padded image within _DIRECT_IMAGE_BYTES."""
    C, H, W = x_shape[1:]
    image = C * (H + 2 * grid.ph) * (W + 2 * grid.pw) * np.dtype(dtype).itemsize
    return (grid.sy, grid.sx) == (1, 1) and image <= _DIRECT_IMAGE_BYTES and _native.available(dtype)


def _direct(x_shape, W_shape, grid, dtype):
    """True for a convolution whose forward the direct C loop should run: ``_direct_fits``, and at least half of
    its blocks of 8 filters filled (a 1-filter convolution, as the input gradient of a 1-channel layer, would use
    1 lane in 8)."""
    F = W_shape[0]
    return F * 2 >= -(-F // 8) * 8 and _direct_fits(x_shape, grid, dtype)


def _direct_backward(x_shape, W_shape, grid, dtype):
    """True for a convolution whose backward the direct C loops should run: ``_direct_fits``, and dW's running
    sums (F rounded up to 4, times C*kh*kw vectors of 32 bytes) within _DIRECT_SUMS_BYTES."""
    F, C, kh, kw = W_shape
    return -(-F // 4) * 4 * C * kh * kw * 32 <= _DIRECT_SUMS_BYTES and _direct_fits(x_shape, grid, dtype)


def _weights_by_8(W):
    """(F, C, kh, kw) -> (ceil(F/8), C*kh*kw, 8): the direct convolution's weights, 8 filters side by side."""
    F = W.shape[0]
    K = W[0].size
    blocks = -(-F // 8)
    w8 = np.zeros((blocks * 8, K), W.dtype)
    w8[:F] = W.reshape(F, K)
    return np.ascontiguousarray(w8.reshape(blocks, 8, K).transpose(0, 2, 1))


def _forward_direct(x, W, b, y, grid):
    """y by the C direct convolution, the images split over the threads (kernels/cpu_conv_direct.c, conv_direct)."""
    x = np.ascontiguousarray(x)
    w8 = _weights_by_8(W)
    b = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    loop = _native.library(x.dtype).conv_direct
    sizes = (C, H, Wd, F, kh, kw, grid.ph, grid.pw, grid.oh, grid.ow)
    with serial() if grid.threads == 1 else contextlib.nullcontext():
        parallel_chunks(lambda n0, n1: _native.call(loop, x.ctypes.data, w8.ctypes.data,
                                                    None if b is None else b.ctypes.data, y.ctypes.data, *sizes,
                                                    n0, n1), N, y.size * W[0].size // 8)


def _backward_direct(dy, W, x, grid, need_dx, param_grads):
    """(dx, dW, db) by the C direct backward (kernels/cpu_conv_direct.c, conv_direct_backward), the images split over
    the threads, dW and db summed per thread, then over the threads."""
    dy, W, x = np.ascontiguousarray(dy), np.ascontiguousarray(W), np.ascontiguousarray(x)
    N, F = dy.shape[:2]
    C, H, Wd = x.shape[1:]
    kh, kw = W.shape[2:]
    dx = fresh(x.shape, dy.dtype) if need_dx else None
    loop = _native.library(dy.dtype).conv_direct_backward
    sizes = (C, H, Wd, F, kh, kw, grid.ph, grid.pw, grid.oh, grid.ow)
    parts = {}                                         # thread -> its (dW, db) partial sums

    def share(n0, n1):
        if param_grads and threading.get_ident() not in parts:
            parts[threading.get_ident()] = (np.zeros((F, C * kh * kw), dy.dtype), np.zeros(F, dy.dtype))
        dW, db = parts[threading.get_ident()] if param_grads else (None, None)
        _native.call(loop, dy.ctypes.data, x.ctypes.data, W.ctypes.data, None if dx is None else dx.ctypes.data,
                     None if dW is None else dW.ctypes.data, None if db is None else db.ctypes.data, *sizes, n0, n1)

    with serial() if grid.threads == 1 else contextlib.nullcontext():
        parallel_chunks(share, N, dy.size * W[0].size // 8)
    if not param_grads:
        return dx, None, None
    return (dx, sum(dW for dW, _ in parts.values()).reshape(W.shape), sum(db for _, db in parts.values()))


def _over_chunks(chunks, do_chunk, elements):
    """Run ``do_chunk(n0, n1)`` for every batch chunk, with the BLAS limited to one thread per call (where
    threadpoolctl can limit it, see ``_parallel.blas_single_threaded``): several chunks run in parallel, one
    single-threaded GEMM per thread; a single chunk runs here and splits its GEMMs with ``_gemm``.

    Why never the BLAS's own threads: OpenBLAS's workers spin for up to ~0.1 s after a call, and the copy threads
    of the pooling, LRN and ReLU that follow in a network then share a core with them (the demo network's step
    at batch 128, whose conv1 is a single chunk, took 1.7x as long with a 2-thread BLAS GEMM in it)."""
    limit = blas_single_threaded() if get_num_threads() > 1 else None
    if limit is None:
        for n0, n1 in chunks:
            do_chunk(n0, n1)
        return
    with limit:
        if len(chunks) == 1:
            do_chunk(*chunks[0])
        else:
            parallel_chunks(lambda a, b: [do_chunk(*chunks[i]) for i in range(a, b)], len(chunks), elements)


def _gemm(a, b, out):
    """out = a @ b, the columns of out split over the threads (one single-threaded BLAS call each) when this runs
    outside a parallel region with the BLAS limited (a single-chunk convolution); else one call. One call per
    thread, so no GIL hand-offs: two threads pay from a few MFLOP."""
    if not can_limit_blas():                          # the BLAS keeps its own threads: do not add ours on top
        return np.matmul(a, b, out=out)
    parallel_chunks(lambda c0, c1: np.matmul(a, b[:, c0:c1], out=out[:, c0:c1]), out.shape[1],
                    a.shape[0] * a.shape[1] * out.shape[1] // 64)
    return out


def _unfold(x, grid, kh, kw, keep=False):
    """im2col of x (n, C, H, W) on the grid: (C*kh*kw, n*Wq*oh), one contiguous run per (c, tap, image).

    In scratch, or a fresh array with ``keep`` (when backward reuses it). All the taps that read one stride phase
    are one strided view of that phase -- tap (ky, kx) starts (ky//sy)*Wq + kx//sx cells in, so the taps of a
    phase differ by fixed strides -- and one copy each: 1 copy instead of kh*kw for a stride-1 convolution."""
    if grid.exact:
        return _unfold_native(x, grid, kh, kw, keep)
    n, C = x.shape[:2]
    shape = (C, kh, kw, n, grid.L)
    cols = fresh(shape, x.dtype) if keep else _temp("conv_cols", shape, x.dtype)
    xt = x.transpose(1, 0, 2, 3)                       # (C, n, H, W) view: the column matrix's axis order
    sy, sx = grid.sy, grid.sx

    def work(c0, c1):
        P = grid.split(xt[c0:c1], 0, "im2col_phases")
        for q, (qy, qx) in enumerate(grid.phases):
            taps = (len(range(qy, kh, sy)), len(range(qx, kw, sx)))
            if 0 in taps:
                continue
            Pq = P[q]                                  # (c1 - c0, n, Hq*Wq)
            item = Pq.itemsize
            view = as_strided(Pq, shape=(c1 - c0,) + taps + (n, grid.L),
                              strides=(Pq.strides[0], grid.Wq * item, item, Pq.strides[1], item), writeable=False)
            cols[c0:c1, qy::sy, qx::sx] = view

    parallel_chunks(work, C, cols.size // (kh * kw))      # the size of one tap's copy
    return cols.reshape(C * kh * kw, n * grid.L)


def _fold(dcols, grid, kh, kw, dx):
    """col2im on the grid: dx (n, C, H, W) = the sum of every column entry onto its pixel.

    dcols comes tap-major, (kh*kw*C, n*oh*Wq) (``conv2d_backward`` orders the GEMM's rows so): each tap's
    block is then one (C*n, oh*Wq) array with a single row pitch, and its add onto the phase grid is a 2-D
    ufunc pass; with the channel-major layout of im2col it was a 3-D one, ~1.4x as long per element."""
    if grid.exact:
        return _fold_native(dcols, grid, kh, kw, dx)
    n, C = dx.shape[:2]
    dtaps = dcols.reshape(kh * kw, C, n, grid.L)
    dxt = dx.transpose(1, 0, 2, 3)

    def work(c0, c1):
        G = _temp("col2im_phases", (len(grid.phases), (c1 - c0) * n, grid.Hq * grid.Wq), dx.dtype)
        G.fill(0)
        for t, (q, start) in enumerate(grid.runs):
            G[q][:, start:start + grid.L] += dtaps[t, c0:c1].reshape((c1 - c0) * n, grid.L)
        grid.merge(G.reshape(len(grid.phases), c1 - c0, n, grid.Hq * grid.Wq), dxt[c0:c1])

    parallel_chunks(work, C, dcols.size // (kh * kw))


def _c_sizes(x_shape, grid):
    """(C, H, W, kh, kw, sy, sx, ph, pw, oh, ow): the geometry the C conv loops take (kernels/cpu_im2col.c)."""
    return (*x_shape[1:], grid.kh, grid.kw, grid.sy, grid.sx, grid.ph, grid.pw, grid.oh, grid.ow)


def _unfold_native(x, grid, kh, kw, keep):
    """im2col by the C loop (kernels/cpu_im2col.c): (C*kh*kw, n*oh*ow), exactly the readable layout, its rows
    split over the threads with no GIL held (every row is n*oh runs of ow values: short runs are cheap in C)."""
    x = np.ascontiguousarray(x)
    K, P = x.shape[1] * kh * kw, x.shape[0] * grid.L
    cols = fresh((K, P), x.dtype) if keep else _temp("conv_cols", (K, P), x.dtype)
    loop, sizes = _native.library(x.dtype).im2col, (x.shape[0], *_c_sizes(x.shape, grid))
    parallel_chunks(lambda k0, k1: loop(x.ctypes.data, cols.ctypes.data, *sizes, k0, k1), K, cols.size)
    return cols


def _fold_native(dcols, grid, kh, kw, dx):
    """col2im by the C loop: each (image, channel) plane of dx zeroed and summed from its tap rows of dcols
    (tap-major, as ``conv2d_backward`` orders them), the planes split over the threads."""
    n, C = dx.shape[:2]
    loop, sizes = _native.library(dx.dtype).col2im, (dx.shape[0], *_c_sizes(dx.shape, grid))
    parallel_chunks(lambda p0, p1: loop(dcols.ctypes.data, dx.ctypes.data, *sizes, 1, p0, p1), C * n, dcols.size)


def im2col_public(x, kernel, stride, pad):
    """The fast im2col in ``ops.im2col``'s layout (C*kh*kw, N*oh*ow), junk columns dropped: for tests."""
    kh, kw = kernel
    oh = (x.shape[2] + 2 * pad[0] - kh) // stride[0] + 1
    ow = (x.shape[3] + 2 * pad[1] - kw) // stride[1] + 1
    grid = _Grid(x.shape, kernel, stride, pad, (oh, ow), exact=_native.available(x.dtype))
    cols = _unfold(x, grid, kh, kw)
    wide = cols.reshape(cols.shape[0], x.shape[0], oh, grid.Wq)[:, :, :, :ow]
    return wide.copy().reshape(cols.shape[0], x.shape[0] * oh * ow)       # a copy: cols is scratch


def finite(*arrays):
    """True when no array holds NaN or inf (None is skipped). One pass each: the sum of the values is finite
    exactly when they all are, unless it overflows -- then the caller takes its careful path, still right."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(a is None or a.size == 0 or math.isfinite(np.add.reduce(a, axis=None)) for a in arrays)


def private_copy(x):
    """A C-contiguous copy of x that no caller holds (the conv cache's input, read again by the backward)."""
    out = fresh(x.shape, x.dtype)
    np.copyto(out, x)
    return out


def conv2d_forward(x, W, b, stride, pad, oh, ow, keep_cols=True):
    """y (N, F, oh, ow) and the grid, one GEMM per batch chunk; the bias on its rows, NCHW by one copy.
    ``keep_cols``: keep the chunks' column matrices on the grid for backward (``grid.cols``, by batch range)."""
    N, C = x.shape[:2]
    F, _, kh, kw = W.shape
    grid = _Grid(x.shape, (kh, kw), stride, pad, (oh, ow), exact=_native.available(x.dtype))
    W2 = W.reshape(F, -1)
    y = fresh((N, F, oh, ow), x.dtype)
    bias = None if b is None else b.reshape(F, 1, 1, 1)
    grid.threads = _conv_threads(F, W2.shape[1], N * grid.L)
    chunks = _batches(N, W2.shape[1] * grid.L * x.itemsize, grid.threads)
    # the columns kept for backward (no second im2col) when they are at most _KEEP_BYTES in all (and one chunk's
    # size: the tests shrink _CHUNK_BYTES to cover the backward that rebuilds them)
    keep = (keep_cols and W2.shape[1] * grid.L * N * x.itemsize <= min(_KEEP_BYTES, _CHUNK_BYTES)
            and not (grid.exact and _direct_backward(x.shape, W.shape, grid, x.dtype)))   # that needs no columns
    grid.cols = {} if keep else None
    if grid.exact and _direct(x.shape, W.shape, grid, x.dtype):
        grid.cols = None                               # the backward builds the columns it needs for dW
        _forward_direct(x, W, b, y, grid)
        return y, grid
    if grid.exact and _native.gemm(x.dtype):
        _forward_chunks_in_c(x, W2, b, y, grid, chunks, keep)
        return y, grid

    def chunk(n0, n1):
        cols = _unfold(x[n0:n1], grid, kh, kw, keep)
        if keep:
            grid.cols[n0, n1] = cols
        rows = _temp("conv_fwd_rows", (F, cols.shape[1]), x.dtype)
        _gemm(W2, cols, rows)                                                   # the GEMM
        rows4 = rows.reshape(F, n1 - n0, oh, grid.Wq)

        def to_nchw(a, b_):                            # add the bias, drop the junk columns, transpose
            if bias is not None:                       # on the GEMM rows: runs of (b_ - a)*oh*Wq, not of ow
                np.add(rows4[:, a:b_], bias, out=rows4[:, a:b_])
            y[n0 + a:n0 + b_] = rows4[:, a:b_, :, :ow].transpose(1, 0, 2, 3)    # a plain copy: ~3x a ufunc

        parallel_chunks(to_nchw, n1 - n0, rows.size)

    with serial() if grid.threads == 1 else contextlib.nullcontext():
        _over_chunks(chunks, chunk, W2.shape[1] * N * grid.L)    # the column matrix: what the chunks copy
    return y, grid


def _forward_chunks_in_c(x, W2, b, y, grid, chunks, keep):
    """The forward, each batch chunk one C call (``conv_forward_chunk``: im2col, the BLAS's GEMM, the bias and
    the NCHW copy), chunks split over the threads: the GIL changes hands once per chunk, not once per step."""
    x, W2 = np.ascontiguousarray(x), np.ascontiguousarray(W2)
    b = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    F, K = W2.shape
    loop, gemm = _native.library(x.dtype).conv_forward_chunk, _native.gemm(x.dtype)
    sizes = (*_c_sizes(x.shape, grid), F)

    def chunk(n0, n1):
        P = (n1 - n0) * grid.L
        cols = fresh((K, P), x.dtype) if keep else _temp("conv_cols", (K, P), x.dtype)
        rows = _temp("conv_fwd_rows", (F, P), x.dtype)
        loop(gemm, x.ctypes.data + n0 * x.strides[0], W2.ctypes.data, None if b is None else b.ctypes.data,
             y.ctypes.data + n0 * y.strides[0], cols.ctypes.data, rows.ctypes.data, n1 - n0, *sizes)
        if keep:
            grid.cols[n0, n1] = cols

    with serial() if grid.threads == 1 else contextlib.nullcontext():
        _over_chunks(chunks, chunk, K * x.shape[0] * grid.L)


def _backward_chunks_in_c(dy, W2, x, grid, need_dx, param_grads):
    """(dx, dW, db), each batch chunk one C call (``conv_backward_chunk``), chunks split over the threads; dW and
    db summed per thread, then over the threads."""
    dy, W2, x = np.ascontiguousarray(dy), np.ascontiguousarray(W2), np.ascontiguousarray(x)
    N, F = dy.shape[:2]
    K = W2.shape[1]
    dx = fresh(x.shape, dy.dtype) if need_dx else None
    loop, gemm = _native.library(dy.dtype).conv_backward_chunk, _native.gemm(dy.dtype)
    sizes = (*_c_sizes(x.shape, grid), F)
    parts = {}                                         # thread -> its (dW, db) partial sums

    def chunk(n0, n1):
        P = (n1 - n0) * grid.L
        kept = grid.cols.get((n0, n1)) if grid.cols else None
        cols = kept if kept is not None or not param_grads else _temp("conv_cols", (K, P), dy.dtype)
        rows = _temp("conv_bwd_dy", (F, P), dy.dtype)
        dcols = _temp("conv_bwd_dcols", (K, P), dy.dtype) if need_dx else None
        if param_grads and threading.get_ident() not in parts:
            parts[threading.get_ident()] = (np.zeros((F, K), dy.dtype), np.zeros(F, dy.dtype))
        dW, db = parts[threading.get_ident()] if param_grads else (None, None)
        loop(gemm, dy.ctypes.data + n0 * dy.strides[0], x.ctypes.data + n0 * x.strides[0], W2.ctypes.data,
             None if cols is None else cols.ctypes.data, rows.ctypes.data, None if dcols is None else dcols.ctypes.data,
             None if dW is None else dW.ctypes.data, None if db is None else db.ctypes.data,
             None if dx is None else dx.ctypes.data + n0 * dx.strides[0], int(kept is None), n1 - n0, *sizes)

    with serial() if grid.threads == 1 else contextlib.nullcontext():
        _over_chunks(_batches(N, K * grid.L * dy.itemsize, grid.threads), chunk, K * N * grid.L)
    if not param_grads:
        return dx, None, None
    return dx, sum(dW for dW, _ in parts.values()), sum(db for _, db in parts.values())


def _dx_by_forward_conv(W, grid):
    """True when dx is cheaper as a forward convolution of dy than by col2im: stride 1 (where dx is the 'full'
    correlation of dy with the filters flipped in space and transposed to (C, F, kh, kw)), and F <= C, so that
    the columns of dy (F*kh*kw rows) are no taller than those of x. One im2col and one GEMM then replace a GEMM
    writing C*kh*kw column-gradient rows plus kh*kw adds: zfnet_small conv4 (48->48) dx 4.7 -> 3.8 ms, conv5
    (48->32) 3.9 -> 2.5 ms (2 threads); with F = 2C it was about equal, with F >> C (LeNet's 1->6) slower.
    (Not through the direct C convolution for F > C: the 'full' correlation computes every padded position,
    44 MFLOP against 20 for the column-gradient GEMM on issue 7's 12x12 conv, and came out 1.15x slower.)"""
    F, C, kh, kw = W.shape
    if not ((grid.sy, grid.sx) == (1, 1) and grid.ph <= kh - 1 and grid.pw <= kw - 1):
        return False
    return F <= C


def conv2d_backward(dy, W, x, grid, need_dx, param_grads):
    """(dx, dW, db) as ``ops.conv2d_backward``, chunk by chunk of the batch, from the cached input x.

    dy goes onto the (F, n, oh, Wq) grid with zeros in the junk columns, so those columns add nothing to dW
    and their column gradient is exactly zero (col2im adds them harmlessly)."""
    N, F, oh, ow = dy.shape
    kh, kw = W.shape[2:]
    if N == 0:                                         # an empty batch: no chunks, zero parameter gradients
        return (np.zeros(x.shape, dy.dtype) if need_dx else None,
                np.zeros(W.shape, dy.dtype) if param_grads else None, np.zeros(F, dy.dtype) if param_grads else None)
    W2 = W.reshape(F, -1)
    K = W2.shape[1]
    if grid.exact and _direct_backward(x.shape, W.shape, grid, dy.dtype) and (need_dx or param_grads):
        return _backward_direct(dy, W, x, grid, need_dx, param_grads)
    dx = None
    if need_dx and _dx_by_forward_conv(W, grid):
        flipped = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))      # (C, F, kh, kw)
        dx = conv2d_forward(dy, flipped, None, (1, 1), (kh - 1 - grid.ph, kw - 1 - grid.pw), grid.H, grid.W,
                            keep_cols=False)[0]
        need_dx = False                                # done: the chunks below only make dW
    if grid.exact and _native.gemm(dy.dtype) and (need_dx or param_grads):
        dx_c, dW, db = _backward_chunks_in_c(dy, W2, x, grid, need_dx, param_grads)
        return (dx_c if need_dx else dx), (None if dW is None else dW.reshape(W.shape)), db
    W2t = W.transpose(0, 2, 3, 1).reshape(F, K) if need_dx else None   # rows (ky, kx, c): tap-major dcols
    if need_dx:
        dx = fresh(x.shape, dy.dtype)
    db = dy.sum(axis=(0, 2, 3)) if param_grads else None
    dW_parts = {}                                      # one partial dW per thread, summed at the end
    if not (need_dx or param_grads):
        return dx, None, db

    def chunk(n0, n1):
        rows = _temp("conv_bwd_dy", (F, n1 - n0, oh, grid.Wq), dy.dtype)

        def widen(f0, f1):
            rows[f0:f1, :, :, ow:] = 0
            rows[f0:f1, :, :, :ow] = dy[n0:n1, f0:f1].transpose(1, 0, 2, 3)

        parallel_chunks(widen, F, rows.size)
        rows2 = rows.reshape(F, -1)
        if param_grads:
            cols = grid.cols.get((n0, n1)) if grid.cols else None
            cols = _unfold(x[n0:n1], grid, kh, kw) if cols is None else cols
            part = _gemm(rows2, cols.T, np.empty((F, K), dtype=dy.dtype))
            if threading.get_ident() in dW_parts:
                dW_parts[threading.get_ident()] += part
            else:
                dW_parts[threading.get_ident()] = part
        if need_dx:
            dcols = _temp("conv_bwd_dcols", (K, rows2.shape[1]), dy.dtype)
            _gemm(W2t.T, rows2, dcols)
            _fold(dcols, grid, kh, kw, dx[n0:n1])

    with serial() if grid.threads == 1 else contextlib.nullcontext():
        _over_chunks(_batches(N, K * grid.L * dy.itemsize, grid.threads), chunk, K * N * grid.L)
    dW = sum(dW_parts.values()).reshape(W.shape) if param_grads else None
    return dx, dW, db


# --- max pooling with switches ---------------------------------------------------------------------------------

def _valid(k, s, p, size, out):
    """For window tap k: the outputs o in [o0, o1) whose input index o*s + k - p lies inside [0, size)."""
    o0 = max(0, -((k - p) // s)) if k < p else 0          # ceil((p - k) / s)
    o1 = min(out, (size - 1 + p - k) // s + 1)
    return o0, max(o0, o1)


def _maximum_keeps_second():
    """True when ``np.maximum(a, b)`` returns b for a == b (seen with -0.0 / +0.0), in its short and SIMD loops."""
    for dtype in (np.float32, np.float64):
        for n in (1, 3, 8, 17, 1000):
            a, b = np.full(n, 0.0, dtype), np.full(n, -0.0, dtype)
            if not (np.signbit(np.maximum(a, b)).all() and not np.signbit(np.maximum(b, a)).any()):
                return False
    return True


_MAXIMUM_KEEPS_SECOND = _maximum_keeps_second()


def use_pool_forward(x):
    return use(x) and _MAXIMUM_KEEPS_SECOND


def _switch_dtype(kernel):
    """uint8 switches inside the fast pooling when every tap index fits (kh*kw <= 255, so 255 matches no tap):
    the switch passes then move 1 byte per cell instead of 4 and run as byte-wide SIMD (~5x cheaper)."""
    return np.uint8 if kernel[0] * kernel[1] <= 255 else np.int32


def max_pool2d_forward(x, kernel, stride, pad, out):
    """(y, switches) as ``ops.max_pool2d_forward``: taps in row-major order, a strictly greater value wins.

    On the phase grid (``_Grid``), per tap four unmasked ufunc passes (masked ``where=`` or boolean-index
    updates are ~10x slower): m = v > y;  y = maximum(v, y);  s = max(s, m * t) -- right because taps come in
    increasing order, so a new winner's t exceeds every earlier switch. ``np.maximum`` propagates NaN as the
    readable op does; where a thread's share holds a NaN (one SIMD max to check), m also takes a NaN over a
    number (m |= isnan(v) & ~isnan(y)), so that the switch lands on the first NaN. Two of the four passes are
    on uint8 switches (``_switch_dtype``). On a tie the readable
    path keeps the earlier value, which matters only for -0.0 against +0.0: ``np.maximum`` returns its second
    operand when the two compare equal (checked at import, ``_MAXIMUM_KEEPS_SECOND``).

    Every pass is one flat 1-D run over all the planes of a thread's share (``_Grid.split_flat``): outputs are
    computed on the whole (Hq, Wq) phase grid of each plane, junk rows included (a tap's run then simply
    continues into the next plane, or into the -inf tail), so a pass is one long SIMD loop instead of one
    short loop per plane. The 2-D per-plane runs cost ~40 ns of loop setup per plane and pass, which on
    32x32 planes was more than half the time."""
    N, C, H, W = x.shape
    if x.size == 0:              # an empty batch or image: only padding to pool (-inf), and no max to take
        return np.full((N, C) + tuple(out), -np.inf, x.dtype), np.zeros((N, C) + tuple(out), np.int32)
    if _native.available(x.dtype):
        return _max_pool_native(x, kernel, stride, pad, out)
    if _jit_loops.available():
        return _max_pool_compiled(x, kernel, stride, pad, out)
    if _tiles(x.shape, kernel, stride, pad) and not np.isnan(x.max()):
        return _max_pool_tiles(x, kernel, out)
    grid = _Grid(x.shape, kernel, stride, pad, out)
    sdt = _switch_dtype(kernel)
    x3 = x.reshape(N * C, H, W)
    y = fresh((N, C) + tuple(out), x.dtype)
    switches = fresh((N, C) + tuple(out), np.int32)
    y3, s3 = y.reshape((N * C,) + tuple(out)), switches.reshape((N * C,) + tuple(out))

    def work(r0, r1):
        M = (r1 - r0) * grid.Hq * grid.Wq
        P = grid.split_flat(x3[r0:r1], -np.inf, "pool_phases")
        has_nan = bool(np.isnan(x3[r0:r1].max())) if r1 > r0 else False
        yg = _temp("pool_y", (M,), x.dtype)
        sg = _temp("pool_s", (M,), sdt)
        mask = _temp("pool_mask", (M,), np.bool_)
        tap = _temp("pool_tap", (M,), sdt)
        m = mask.view(np.uint8) if sdt is np.uint8 else mask
        q, start = grid.runs[0]                        # tap 0 holds the maximum so far
        _copy(yg, P[q, start:start + M])
        sg.fill(0)
        for t, (q, start) in enumerate(grid.runs[1:], start=1):
            v = P[q, start:start + M]
            np.greater(v, yg, out=mask)
            if has_nan:                                # a NaN takes over from a number: the first NaN wins
                mask |= np.isnan(v) & ~np.isnan(yg)
            np.maximum(v, yg, out=yg)
            np.multiply(m, sdt(t), out=tap)
            np.maximum(sg, tap, out=sg)
        grid.crop_flat(yg, y3[r0:r1])
        grid.crop_flat(sg, s3[r0:r1])

    parallel_chunks(work, N * C, x.size // 4)        # a thread hand-off (~0.1 ms here) pays from ~0.5 M elements
    return y, switches


@functools.lru_cache(maxsize=64)
def _pool_runs(x_shape, kernel, stride, pad, out):
    """(Hq, Wq, runs) of the phase grid for the C loops: runs[t], where tap t's run starts in a plane's grid of
    all phases (int64). Cached: building the _Grid in Python costs more than pooling a small batch."""
    grid = _Grid(x_shape, kernel, stride, pad, out)
    runs = np.array([q * grid.Hq * grid.Wq + start for q, start in grid.runs], dtype=np.int64)
    runs.flags.writeable = False
    return grid.Hq, grid.Wq, runs


def _native_pool_args(x_shape, kernel, stride, pad, out):
    """The size arguments the C pooling loops share, after their four pointers (see kernels/cpu_pool.c)."""
    Hq, Wq, runs = _pool_runs(tuple(x_shape), tuple(kernel), tuple(stride), tuple(pad), tuple(out))
    return runs, (len(runs), x_shape[2], x_shape[3], out[0], out[1], *stride, *pad, Hq, Wq)


def _max_pool_native(x, kernel, stride, pad, out):
    """The pooling as C loops (``_native``, kernels/cpu_pool.c): each plane split into its phase grid in the
    L1 cache, then every tap one vector pass over the plane's outputs, 8 float32 at a time; planes split over
    the threads, no GIL held."""
    N, C = x.shape[:2]
    x = np.ascontiguousarray(x)
    y = fresh((N, C) + tuple(out), x.dtype)
    switches = fresh((N, C) + tuple(out), np.int32)
    lib = _native.library(x.dtype)
    if _tiles_2x2(x.shape, kernel, stride, pad):      # the rows of all planes as one (N*C*oh)-row problem
        loop, pointers = lib.max_pool_forward_2x2, (x.ctypes.data, y.ctypes.data, switches.ctypes.data)
        parallel_chunks(lambda a, b: _native.call(loop, *pointers, x.shape[3], a, b), N * C * out[0], x.size)
        return y, switches
    runs, sizes = _native_pool_args(x.shape, kernel, stride, pad, out)
    loop, pointers = lib.max_pool_forward, (x.ctypes.data, y.ctypes.data, switches.ctypes.data, runs.ctypes.data)
    parallel_chunks(lambda r0, r1: _native.call(loop, *pointers, *sizes, r0, r1), N * C, x.size)
    return y, switches


def _max_pool_backward_native(dy, switches, x_shape, kernel, stride, pad):
    """Unpooling as C loops: per plane, tap by tap, one vector pass adding dy where the switch is that tap."""
    N, C = x_shape[:2]
    dy, switches = np.ascontiguousarray(dy), np.ascontiguousarray(switches)
    dx = fresh(x_shape, dy.dtype)
    lib = _native.library(dy.dtype)
    if _tiles_2x2(x_shape, kernel, stride, pad):
        loop, pointers = lib.max_pool_backward_2x2, (dy.ctypes.data, switches.ctypes.data, dx.ctypes.data)
        parallel_chunks(lambda a, b: _native.call(loop, *pointers, x_shape[3], a, b), N * C * dy.shape[2], dx.size)
        return dx
    runs, sizes = _native_pool_args(x_shape, kernel, stride, pad, dy.shape[2:])
    loop, pointers = lib.max_pool_backward, (dy.ctypes.data, switches.ctypes.data, dx.ctypes.data, runs.ctypes.data)
    parallel_chunks(lambda r0, r1: _native.call(loop, *pointers, *sizes, r0, r1), N * C, dx.size)
    return dx


def _max_pool_compiled(x, kernel, stride, pad, out):
    """The same pooling as one compiled pass over x (``_jit_loops.max_pool_forward``), planes split over the
    threads: no phase grid, no crops, and no GIL held while it runs."""
    N, C, H, W = x.shape
    (kh, kw), (sy, sx), (ph, pw), (oh, ow) = kernel, stride, pad, out
    x3 = np.ascontiguousarray(x).reshape(N * C, H, W)
    y = fresh((N, C, oh, ow), x.dtype)
    switches = fresh((N, C, oh, ow), np.int32)
    y3, s3 = y.reshape(N * C, oh, ow), switches.reshape(N * C, oh, ow)
    Hp, Wp = pool_read_extent(x.shape, kernel, stride, pad, out)
    offsets = tuple(ky * Wp + kx for ky, kx in _taps(kh, kw))
    loop, neg = _jit_loops.compiled("max_pool_forward"), x.dtype.type(-np.inf)
    share = lambda r0, r1: loop(x3, y3, s3, offsets, sy, sx, ph, pw, Hp, Wp, neg, r0, r1)    # noqa: E731
    parallel_chunks(share, N * C, x.size)               # no GIL held: a second thread pays from ~128 K cells
    return y, switches


def pool_read_extent(x_shape, kernel, stride, pad, out):
    """(Hp, Wp): the plane the compiled forward loop reads -- x itself, (H, W), when every window lies inside it,
    else the extent the windows reach from the padded corner (a -inf-bordered copy of each plane)."""
    (kh, kw), (sy, sx), (oh, ow) = kernel, stride, out
    Hp, Wp = (oh - 1) * sy + kh, (ow - 1) * sx + kw
    if tuple(pad) == (0, 0) and Hp <= x_shape[2] and Wp <= x_shape[3]:
        return tuple(x_shape[2:])
    return Hp, Wp


def _max_pool_backward_compiled(dy, switches, x_shape, kernel, stride, pad):
    """Unpooling as one compiled pass per plane (``_jit_loops.max_pool_backward``), planes split over the threads."""
    N, C, H, W = x_shape
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = dy.shape[2:]
    dx = fresh(x_shape, dy.dtype)
    dx3 = dx.reshape(N * C, H, W)
    dy3 = np.ascontiguousarray(dy).reshape(N * C, oh, ow)
    s3 = np.ascontiguousarray(switches).reshape(N * C, oh, ow)
    if _tiles(x_shape, kernel, stride, pad):
        offsets = np.array([ky * W + kx for ky, kx in _taps(kh, kw)], dtype=np.int64)
        loop, zero = _jit_loops.compiled("max_pool_backward_tiles"), dy.dtype.type(0)
        share = lambda r0, r1: loop(dy3, s3, dx3, offsets, zero, r0, r1)    # noqa: E731
    else:
        Hp, Wp = max(H + ph, (oh - 1) * sy + kh), max(W + pw, (ow - 1) * sx + kw)   # padding and windows
        offsets = np.array([ky * Wp + kx for ky, kx in _taps(kh, kw)], dtype=np.int64)
        loop = _jit_loops.compiled("max_pool_backward")
        share = lambda r0, r1: loop(dy3, s3, dx3, offsets, sy, sx, ph, pw, Hp, Wp, r0, r1)    # noqa: E731
    parallel_chunks(share, N * C, dx.size)
    return dx


def _tiles_2x2(x_shape, kernel, stride, pad):
    """2x2 windows at stride 2 tiling the input: the C loops' special case (kernels/cpu_pool.c)."""
    return tuple(kernel) == (2, 2) and _tiles(x_shape, kernel, stride, pad)


def _tiles(x_shape, kernel, stride, pad):
    """Windows that tile the input exactly (stride = kernel, no padding, sizes divisible: 2x2/2 on even sizes)."""
    return tuple(stride) == tuple(kernel) and not any(pad) and x_shape[2] % kernel[0] == 0 \
        and x_shape[3] % kernel[1] == 0


def _max_pool_tiles(x, kernel, out):
    """Tiling windows without the phase grid: x viewed as (N*C, oh, kh, ow, kw) gives every tap as a strided
    view, so the taps read x itself and y is written in place -- no phase copy, no crop (on small activations
    those copies and their ~50 ufunc calls were most of the time). Same passes and tie rule as the grid path;
    only for NaN-free input (its masks do not move a switch onto the first NaN)."""
    (kh, kw), (oh, ow) = kernel, out
    N, C = x.shape[:2]
    sdt = _switch_dtype(kernel)
    x5 = x.reshape(N * C, oh, kh, ow, kw)
    y = fresh((N, C, oh, ow), x.dtype)
    switches = fresh((N, C, oh, ow), np.int32)
    y3, s3 = y.reshape(N * C, oh, ow), switches.reshape(N * C, oh, ow)

    def work(r0, r1):
        shape = (r1 - r0, oh, ow)
        yv = y3[r0:r1]
        sg, tap = _temp("tile_s", shape, sdt), _temp("tile_tap", shape, sdt)
        mask = _temp("tile_mask", shape, np.bool_)
        m = mask.view(np.uint8) if sdt is np.uint8 else mask
        np.copyto(yv, x5[r0:r1, :, 0, :, 0])
        sg.fill(0)
        for t, (ky, kx) in enumerate(_taps(kh, kw)):
            if t:
                v = x5[r0:r1, :, ky, :, kx]
                np.greater(v, yv, out=mask)
                np.maximum(v, yv, out=yv)
                np.multiply(m, sdt(t), out=tap)
                np.maximum(sg, tap, out=sg)
        s3[r0:r1] = sg

    parallel_chunks(work, N * C, x.size // 4)        # a thread hand-off (~0.1 ms here) pays from ~0.5 M elements
    return y, switches


def max_pool2d_backward(dy, switches, x_shape, kernel, stride, pad):
    """dx as ``ops.max_pool2d_backward``, as one scatter of dy to the switch positions.

    Each output cell sends its dy to exactly one input pixel, ``(oy*sy - ph + ky, ox*sx - pw + kx)`` with
    ``(ky, kx) = divmod(switch, kw)``: the flat destinations are computed with four integer passes over the
    output (not the input), and ``np.add.at`` adds dy there in one pass, summing where windows overlap; with
    non-overlapping windows every destination is distinct and a plain fancy assignment does it (dy + 0.0 first,
    so that a -0.0 lands as the readable path's 0.0 + -0.0 = +0.0). The per-tap version (a masked multiply and
    an add per tap and phase, then merging the phases) made 27 passes over a grid larger than the input; this
    writes dx once. A switch in a border window may point into the padding (only when its whole window was
    -inf); those few border cells are checked and sent to a dump cell past the end of dx.
    The sums are bit for bit those of the readable path, which adds the taps in row-major tap order: the windows
    that cover one pixel p, taken in row-major *output* order, see p at decreasing taps (a window further down
    sees p in a higher window row; one further right in the same window row, at a lower column), so the scatter
    runs over the outputs of each plane in reverse."""
    N, C, H, W = x_shape
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = dy.shape[2:]
    if dy.size == 0 or N * C * H * W == 0:
        return np.zeros(x_shape, dy.dtype)
    if _native.available(dy.dtype):                   # C loops, vectorized, threads without the GIL
        return _max_pool_backward_native(dy, switches, x_shape, kernel, stride, pad)
    if _jit_loops.available():                        # one compiled pass per plane, threads without the GIL
        return _max_pool_backward_compiled(dy, switches, x_shape, kernel, stride, pad)
    HW, dump = H * W, N * C * H * W
    flat = fresh((dump + 1,), dy.dtype)                # + the dump cell
    dy3, s3 = dy.reshape(N * C, oh, ow), switches.reshape(N * C, oh, ow)
    plane = ((np.arange(oh) * sy - ph) * W)[:, None] + (np.arange(ow) * sx - pw)    # window origins, (oh, ow)
    oy_edge = [o for o in range(oh) if o * sy - ph < 0 or o * sy - ph + kh > H]
    ox_edge = [o for o in range(ow) if o * sx - pw < 0 or o * sx - pw + kw > W]
    overlap = sy < kh or sx < kw

    def work(r0, r1):
        R = r1 - r0
        flat[r0 * HW:r1 * HW] = 0
        dest = _temp("unpool_dest", (R, oh, ow), np.intp)
        np.add((np.arange(r0, r1, dtype=np.intp) * HW)[:, None, None], plane, out=dest)
        off = _temp("unpool_off", (R, oh, ow), np.int32)
        s = s3[r0:r1]
        np.floor_divide(s, kw, out=off)                # ky
        np.multiply(off, W - kw, out=off)
        np.add(off, s, out=off)                        # ky*W + kx = s + ky*(W - kw)
        np.add(dest, off, out=dest)
        for o in oy_edge:                              # border windows: destinations in the padding -> dump
            row = o * sy - ph + s[:, o, :] // kw
            dest[:, o, :][(row < 0) | (row >= H)] = dump
        for o in ox_edge:
            col = o * sx - pw + s[:, :, o] % kw
            dest[:, :, o][(col < 0) | (col >= W)] = dump
        if overlap:
            np.add.at(flat, dest.reshape(-1)[::-1], dy3[r0:r1].reshape(-1)[::-1])      # tap order, see above
        else:
            flat[dest.reshape(-1)] = dy3[r0:r1].reshape(-1) + dy.dtype.type(0)

    parallel_chunks(work, N * C, dy.size)
    return flat[:dump].reshape(x_shape)


def use_pool_backward(dy, switches, kernel):
    """The fast unpooling needs every switch inside its window (the readable path ignores any other value)."""
    return (use(dy) and use(switches) and switches.dtype == np.int32
            and (switches.size == 0 or int(switches.view(np.uint32).max()) < kernel[0] * kernel[1]))


# --- LRN -------------------------------------------------------------------------------------------------------

# NumPy copies a non-contiguous ufunc operand into buffers of np.getbufsize() (8192) elements whenever its rows
# are shorter than that, to hand the inner loop longer runs; for a plain add those copies cost more than the add.
# The channel-shifted views of LRN have rows of (C - offset)*H*W elements: with 1024-element buffers NumPy takes
# the rows as they are (LRN fwd+bwd on 32x32x8x8: 0.60 -> 0.44 ms; larger shapes unchanged).
_SHORT_ROW_BUFFER = 1024


def channel_window_sum(a, n, out):
    """out[:, c] = sum of a[:, c'] over |c' - c| <= n//2, by shifted in-place adds (no padded copy)."""
    _copy(out, a)
    old = np.setbufsize(_SHORT_ROW_BUFFER)     # per thread (a context variable): restored before returning
    try:
        for offset in range(1, n // 2 + 1):
            out[:, offset:] += a[:, :-offset]
            out[:, :-offset] += a[:, offset:]
    finally:
        np.setbufsize(old)
    return out


def _neg_power(d, beta, out):
    """out = d ** -beta; for Krizhevsky's beta = 0.75 as 1 / (sqrt(d) * sqrt(sqrt(d))), ~5x cheaper than pow."""
    if beta == 0.75:
        r = np.sqrt(d, out=out)
        q = np.sqrt(r, out=_temp("lrn_fourth_root", d.shape, d.dtype))
        np.multiply(r, q, out=out)
        return np.reciprocal(out, out=out)
    return np.power(d, -beta, out=out)


def lrn_forward(x, n, k, alpha, beta):
    """(y, d, scale) with d = k + alpha * window_sum(x^2), scale = d^-beta, y = x * scale."""
    y, d, scale = (fresh(x.shape, x.dtype) for _ in range(3))

    def work(n0, n1):
        xs, ds = x[n0:n1], d[n0:n1]
        sq = _temp("lrn_sq", xs.shape, x.dtype)
        np.multiply(xs, xs, out=sq)
        channel_window_sum(sq, n, out=ds)
        ds *= x.dtype.type(alpha)
        ds += x.dtype.type(k)
        _neg_power(ds, beta, out=scale[n0:n1])
        np.multiply(xs, scale[n0:n1], out=y[n0:n1])

    parallel_chunks(work, x.shape[0], x.size // 2)        # two threads pay from ~256 K elements (measured)
    return y, d, scale


def lrn_backward(dy, x, y, d, scale, n, alpha, beta):
    """dx = dy * scale - 2 alpha beta x * window_sum(dy * y / d)."""
    dx = fresh(dy.shape, dy.dtype)

    def work(n0, n1):
        t = _temp("lrn_t", dy[n0:n1].shape, dy.dtype)
        coupling = _temp("lrn_coupling", dy[n0:n1].shape, dy.dtype)
        np.multiply(dy[n0:n1], y[n0:n1], out=t)
        np.divide(t, d[n0:n1], out=t)
        channel_window_sum(t, n, out=coupling)
        coupling *= x[n0:n1]
        coupling *= dy.dtype.type(-2 * alpha * beta)
        np.multiply(dy[n0:n1], scale[n0:n1], out=dx[n0:n1])
        dx[n0:n1] += coupling

    parallel_chunks(work, dy.shape[0], dy.size // 2)
    return dx


# --- ReLU backward ---------------------------------------------------------------------------------------------

_SAME_SIZE_INT = {4: np.int32, 8: np.int64}


# Elementwise passes of several temporaries go block by block: a block's temporaries (gate, mask) are written
# and read again while still in the L2 cache, so DRAM sees only the arrays in and out (~24 instead of ~44 bytes
# moved per element of the ReLU backward). ~20 us of ufunc calls per block: 64 Ki elements keeps that small.
_BLOCK = 1 << 16


def use_relu_forward(x):
    return use(x) and x.dtype.kind == "f" and x.flags.c_contiguous


def relu_forward(x):
    """max(x, 0) as ``np.maximum(x, 0)`` (NaN propagates), split over the copy threads."""
    y = fresh(x.shape, x.dtype)
    xf, yf = x.reshape(-1), y.reshape(-1)

    def work(a, b):
        np.maximum(xf[a:b], 0, out=yf[a:b])

    parallel_chunks(work, xf.size, xf.size // 4)
    return y


def use_relu_backward(dy, x):
    return use(dy) and use(x) and dy.dtype == x.dtype and dy.itemsize in _SAME_SIZE_INT


def relu_backward(dy, x, rule):
    """``where(gate, dy, 0)`` without ``np.where`` (~7x slower here than a plain ufunc pass): the gate becomes
    an all-ones/all-zeros integer mask that is ANDed with dy's bits. Exact for every dy, NaN and inf included
    (a closed gate gives +0.0, as where does), unlike ``dy * gate``. In blocks of ``_BLOCK`` elements."""
    ints = _SAME_SIZE_INT[dy.itemsize]
    dyf, xf = dy.reshape(-1), x.reshape(-1)
    out = fresh(dy.shape, dy.dtype)
    if out.size == 0:                                  # an empty batch: no blocks to run
        return out
    outf = out.reshape(-1).view(ints)

    def work(a, b):
        n = min(b - a, _BLOCK)
        gate, mask = _temp("relu_gate", (n,), np.bool_), _temp("relu_mask", (n,), ints)
        both = _temp("relu_gate2", (n,), np.bool_) if rule == "guided" else None
        for a0 in range(a, b, n):
            a1 = min(b, a0 + n)
            g, m = gate[:a1 - a0], mask[:a1 - a0]
            np.greater(dyf[a0:a1] if rule == "deconvnet" else xf[a0:a1], 0, out=g)
            if rule == "guided":
                np.greater(dyf[a0:a1], 0, out=both[:a1 - a0])
                np.logical_and(g, both[:a1 - a0], out=g)
            np.subtract(0, g, out=m, dtype=ints)                 # True -> -1 (all bits set), False -> 0
            np.bitwise_and(dyf[a0:a1].view(ints), m, out=outf[a0:a1])

    parallel_chunks(work, dyf.size, dyf.size // 4)        # two threads pay from ~512 K elements (measured)
    return out


# --- fully connected -------------------------------------------------------------------------------------------

def _rows_in_threads(n, work, elements):
    """``work(a, b)`` over row ranges in minicnn's threads with the BLAS single-threaded where that can be set.

    Why for small GEMMs too: an OpenBLAS call with 2 threads leaves its worker spinning for up to ~0.1 s, and
    the copy threads of the conv, pooling and LRN that follow then share a core with it (a zfnet_small training
    step took 1.4x as long). With every GEMM of a step in our threads, the BLAS workers never wake."""
    limit = blas_single_threaded() if get_num_threads() > 1 else None
    if limit is None:
        work(0, n)
        return
    with limit:
        parallel_chunks(work, n, elements)


def linear_forward(x, W, b):
    """y = x @ W + b, rows of x split over the threads."""
    y = np.empty((x.shape[0], W.shape[1]), dtype=np.result_type(x, W))

    def work(a, c):
        np.matmul(x[a:c], W, out=y[a:c])
        if b is not None:
            y[a:c] += b

    _rows_in_threads(x.shape[0], work, y.size * 64)
    return y


def linear_backward(dy, x, W, need_dx, param_grads):
    """(dx, dW, db) of y = x @ W + b: dx by rows of dy, dW by its columns, each part in one thread."""
    dx = np.empty((dy.shape[0], W.shape[0]), dtype=np.result_type(dy, W)) if need_dx else None
    dW = np.empty((x.shape[1], dy.shape[1]), dtype=np.result_type(x, dy)) if param_grads else None

    def rows(a, c):
        np.matmul(dy[a:c], W.T, out=dx[a:c])

    def cols(a, c):
        np.matmul(x.T, dy[:, a:c], out=dW[:, a:c])

    if need_dx:
        _rows_in_threads(dy.shape[0], rows, dx.size * 64)
    if param_grads:
        _rows_in_threads(dy.shape[1], cols, dW.size * 64)
    return dx, dW, dy.sum(axis=0) if param_grads else None
